"""Binned-expression cell tokeniser (after scGPT): a cell is a SET of (gene, value bin) pairs.

Fit (on the training corpus only): the vocabulary is the `n_hvg` highly variable genes, computed on
log1p(normalise_total(1e4)) values, chosen one of two ways (``hvg_selection``):
  * "per-dataset" (the default and the shipped model): each dataset ranks the genes it expresses by
    scanpy's normalised dispersion, and genes are taken in order of their best rank in any dataset until
    n_hvg are chosen, so every dataset's own most variable genes are in the vocabulary, not only the
    genes variable in many of them;
  * "shared": scanpy's ``highly_variable_genes`` (flavor "seurat", one batch per dataset): genes
    variable in the most datasets first, so no dataset's scale dominates.

Tokenise one cell:
  1. values on a linear scale by value kind (see :mod:`.cells`), scaled to 1e4 per cell, log1p;
  2. keep the vocabulary genes with a non-zero value (zeros and genes absent from the input are
     both "not expressed": the model never sees them);
  3. bin those values by the cell's OWN quantiles into bins 1..n_bins-1 (bin 0 = zero, reserved);
     per-cell quantiles make FPKM, TPM, counts and log1p data comparable;
  4. sequence `<cls>` + the up to max_len-1 highest-valued genes (ties: smaller token id), with value
     bins `0` + their bins. No random subsampling: the same cell always gives the same tokens.

Input panel (``input_panel`` > 0 in the settings): a broad vocabulary, of which each cell reads only the
`input_panel` vocabulary genes most variable IN THE CELLS BEING TOKENISED (the same normalised dispersion,
computed on the AnnData given: one dataset in training, the user's cells at inference). HVG + PCA reads a
dataset through its own variable genes; a fixed 1,200-gene vocabulary read cells of an unseen tissue
through genes chosen on other tissues. Inputs of fewer than PANEL_MIN_CELLS cells have no dispersion to
speak of and read every vocabulary gene, as without a panel.

:class:`BinnedBatcher` turns tokenised cells into masked-value training batches
(genes, targets, values) for :class:`cellang.models.encoder.CellEncoder`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import anndata as ad
import numpy as np
import pandas as pd
import torch

from cellang.preprocess import gather_columns, log1p, normalise_total
from cellang.tokenizers.cells import (
    CLS_ID, MAX_LEN, N_BINS, PAD_ID, CellBatcher, CellVocabulary, TokenizedCells, linear_expression, pad_rows,
    present_genes, stack_datasets
)
from cellang.tokenizers.hvg_selection import (
    HVG_SELECTION, HVG_SELECTIONS, check_hvg_selection, ranked_by_dispersion, take_in_turn
)
from cellang.tokenizers.streaming_hvg import StreamingHVG
from cellang.tokenizers.streaming_stats import Source, filled

IGNORE_VALUE = -1.0  # targets at positions that are not scored
N_HVG = 1200  # vocabulary size of the shipped cells-binned model
MASK_RATIO = 0.4  # gene values masked per cell in training
INPUT_PANEL = 0  # the shipped cells-binned reads every vocabulary gene (see the module docstring)
PANEL_MIN_CELLS = 20  # fewer cells than this: no input panel (see the module docstring)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bins 1..n_bins-1 of one cell's non-zero values, cut at that cell's own quantiles.

    n_bins counts bin 0 (zero). Equal values share a bin; the largest value is always in the top bin.
    E.g. values [1, 2, 3, 4] with n_bins=3: edges [1, 2.5, 4] -> bins [1, 1, 2, 2].
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins))  # n_bins edges = n_bins-1 intervals
    return (np.digitize(values, edges[1:-1]) + 1).astype(np.int64)


def highly_variable_genes(adatas: Sequence[ad.AnnData], n_top: int, target_sum: float = 1e4,
                          selection: str = HVG_SELECTION) -> list[str]:
    """The n_top highly variable genes of the corpus, sorted (see the module for the two selections)."""
    import scanpy as sc  # imported here: scanpy pulls numba, slow to import

    check_hvg_selection(selection)
    if selection == "per-dataset":
        return sorted(take_in_turn([_dispersion_ranking(a, target_sum) for a in adatas], n_top))
    matrix, genes, labels = stack_datasets(adatas, target_sum, log1p=True)
    combined = ad.AnnData(X=matrix.astype(np.float32),
                          obs=pd.DataFrame({"dataset": pd.Categorical(labels.astype(str))},
                                           index=[str(i) for i in range(matrix.shape[0])]),
                          var=pd.DataFrame(index=genes))
    n_top = min(n_top, len(genes))
    with _scanpy_quietly():
        sc.pp.highly_variable_genes(combined, n_top_genes=n_top, flavor="seurat",
                                    batch_key="dataset" if len(adatas) > 1 else None)
    chosen = combined.var.index[combined.var["highly_variable"].to_numpy(dtype=bool)]
    return sorted(str(g) for g in chosen)


@contextmanager
def _scanpy_quietly() -> Iterator[None]:
    """Silences pandas deprecations inside scanpy/anndata and restores PyTorch's thread count, which
    scanpy's numba start-up resets."""
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(threads)


def _dispersion_ranking(adata: ad.AnnData, target_sum: float) -> list[str]:
    """The genes one dataset expresses, most variable first (scanpy seurat normalised dispersion, as its
    batched path computes it per dataset; ties by name)."""
    import scanpy as sc

    matrix, genes, _ = stack_datasets([adata], target_sum, log1p=True)
    expressed = np.flatnonzero(matrix.getnnz(axis=0) > 0)
    if len(expressed) == 0:
        return []
    one = ad.AnnData(X=matrix[:, expressed].astype(np.float32), var=pd.DataFrame(index=[genes[i] for i in expressed]))
    with _scanpy_quietly():
        table = sc.pp.highly_variable_genes(one, n_top_genes=len(expressed), flavor="seurat", inplace=False)
    return ranked_by_dispersion(table["dispersions_norm"].to_numpy(), list(one.var_names))


def _settings(n_hvg: int, n_bins: int, max_len: int, target_sum: float, selection: str,
              input_panel: int) -> dict[str, object]:
    """The fitted vocabulary's settings, as both fits record them."""
    check_hvg_selection(selection)
    if input_panel < 0:
        raise ValueError(f"input_panel must be >= 0 (0 = no panel), got {input_panel}")
    return {"n_hvg": n_hvg, "n_bins": n_bins, "max_len": max_len, "target_sum": target_sum,
            "hvg": HVG_SELECTIONS[selection], "hvg_selection": selection, "input_panel": input_panel}


class BinnedTokenizer:
    """Cells -> `<cls>` + gene tokens with value bins; settings live in the vocabulary."""

    mode = "binned"

    def __init__(self, vocabulary: CellVocabulary) -> None:
        if vocabulary.mode != self.mode:
            raise ValueError(f"a {vocabulary.mode} vocabulary cannot drive the binned tokeniser")
        self.vocabulary = vocabulary
        self.n_bins = int(vocabulary.settings["n_bins"])
        self.max_len = int(vocabulary.settings["max_len"])
        self.target_sum = float(vocabulary.settings.get("target_sum", 1e4))
        self.input_panel = int(vocabulary.settings.get("input_panel", 0))
        if self.n_bins < 3 or self.max_len < 2:
            raise ValueError("n_bins must be >= 3 and max_len >= 2")

    @classmethod
    def fit(cls, adatas: Sequence[ad.AnnData], *, n_hvg: int = N_HVG, n_bins: int = N_BINS, max_len: int = MAX_LEN,
            target_sum: float = 1e4, hvg_selection: str = HVG_SELECTION, input_panel: int = 0,
            extra_genes: Sequence[str] = ()) -> BinnedTokenizer:
        """Learn the highly variable genes of the training corpus `adatas` (var = approved symbols); extra_genes
        join the vocabulary as well (e.g. the pathway model's, so genes the corpus lacks still have a token)."""
        settings = _settings(n_hvg, n_bins, max_len, target_sum, hvg_selection, input_panel)
        genes = highly_variable_genes(adatas, n_hvg, target_sum, hvg_selection)
        if extra_genes:
            settings["extra_genes"] = len(set(extra_genes) - set(genes))
            genes = sorted(set(genes) | set(map(str, extra_genes)))
        return cls(CellVocabulary(genes, mode=cls.mode, settings=settings))

    @classmethod
    def fit_streaming(cls, chunks: Source, *, n_hvg: int = N_HVG, n_bins: int = N_BINS, max_len: int = MAX_LEN,
                      target_sum: float = 1e4, hvg_selection: str = HVG_SELECTION,
                      input_panel: int = 0) -> BinnedTokenizer:
        """fit() in one pass over chunks of cells (AnnData iterable, a callable returning one, or a filled
        StreamingHVG; see :mod:`.streaming_stats`): the same genes, computed exactly."""
        settings = _settings(n_hvg, n_bins, max_len, target_sum, hvg_selection, input_panel)
        hvg = filled(chunks, StreamingHVG, target_sum)
        settings["statistics"] = hvg.statistics
        return cls(CellVocabulary(hvg.result(n_hvg, hvg_selection), mode=cls.mode, settings=settings))

    def tokenize(self, adata: ad.AnnData) -> TokenizedCells:
        """Tokens of every cell of `adata` (var_names = gene symbols); see the module docstring."""
        linear, kind = linear_expression(adata)
        logged = log1p(normalise_total(linear, self.target_sum))  # over ALL input genes, as scanpy does
        columns = self.vocabulary.column_ids(list(map(str, adata.var_names)))
        if self.input_panel and adata.n_obs >= PANEL_MIN_CELLS:
            outside = np.ones(len(columns), dtype=bool)
            outside[self.panel_columns(adata, columns)] = False
            columns = np.where(outside, -1, columns)
        matrix = gather_columns(logged, columns)
        genes, values = [], []
        for row in range(matrix.shape[0]):
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            ids, data = matrix.indices[start:end].astype(np.int64), matrix.data[start:end]
            bins = quantile_bins(data, self.n_bins)  # over all expressed vocabulary genes, before truncation
            order = np.lexsort((ids, -data))[: self.max_len - 1]
            genes.append(np.concatenate(([CLS_ID], ids[order])))
            values.append(np.concatenate(([0], bins[order])))
        present, fraction = present_genes(self.vocabulary, columns)
        return TokenizedCells(genes, values, present, fraction, kind)

    def panel_columns(self, adata: ad.AnnData, columns: np.ndarray) -> np.ndarray:
        """Input columns of the `input_panel` vocabulary genes most variable in `adata` (column_ids given)."""
        position = {str(name): i for i, name in enumerate(adata.var_names)}
        in_vocabulary = [g for g in _dispersion_ranking(adata, self.target_sum) if columns[position[g]] >= 0]
        return np.array([position[g] for g in in_vocabulary[: self.input_panel]], dtype=np.int64)


class BinnedBatcher(CellBatcher):
    """Masked-value batches (genes, targets, values, profile) from tokenised cells; resumable, seeded.

    For each cell, round(mask_ratio * n) of its n gene positions (at least one when n > 0) are
    masked: their input value becomes the `<mask>` bin (id n_bins) and their target is the true bin
    scaled to [0, 1] (bin / (n_bins - 1)); other targets are IGNORE_VALUE. profile (B, vocabulary
    size) holds every token's scaled bin (0 for genes the cell does not express, and for specials),
    the target of the CLS expression prediction (GEPC). Batches are cut by `cells.epoch_rows` (cells
    of similar lengths together); batch b of epoch e masks with a generator seeded by
    (seed, e, 1, b), so batch number n is a pure function of n.
    """

    def __init__(self, cells: TokenizedCells, *, n_bins: int, vocabulary_size: int, batch_size: int,
                 mask_ratio: float = MASK_RATIO, seed: int = 0, drop_last: bool = True, views: int = 1) -> None:
        if cells.values is None:
            raise ValueError("binned batches need value bins")
        super().__init__(cells, batch_size=batch_size, mask_ratio=mask_ratio, seed=seed, drop_last=drop_last,
                         views=views)
        self.n_bins, self.vocabulary_size = n_bins, vocabulary_size

    def make_batch(self, rows: Sequence[int], rng: np.random.Generator) -> Batch:
        assert self.cells.values is not None
        genes = pad_rows([self.cells.genes[i] for i in rows], PAD_ID)
        inputs = pad_rows([self.cells.values[i] for i in rows], 0)
        targets = torch.full(genes.shape, IGNORE_VALUE)
        profile = torch.zeros(len(rows), self.vocabulary_size)
        profile.scatter_(1, genes, inputs.float() / (self.n_bins - 1))  # pads and <cls> scatter zeros
        profile[:, PAD_ID] = 0.0
        for row in range(len(rows)):
            chosen = self.masked_positions(rows[row], rng)
            if chosen is None:
                continue
            chosen_t = torch.from_numpy(chosen)
            targets[row, chosen_t] = inputs[row, chosen_t].float() / (self.n_bins - 1)
            inputs[row, chosen_t] = self.n_bins  # the <mask> value bin
        return genes, targets, inputs, profile
