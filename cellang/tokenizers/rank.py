"""Rank-value cell tokeniser (after Geneformer): a cell is its genes ordered by relative expression.

Fit (on the training corpus only): the vocabulary is every gene expressed (non-zero) in at least
`min_cells` training cells, each with its non-zero median over those cells of the value scaled to
1e4 per cell. Dividing by this median lifts genes that are high for THIS cell relative to
everywhere else (e.g. transcription factors) above housekeeping genes that are high everywhere.

Tokenise one cell:
  1. values on a linear scale by value kind (see :mod:`.cells`: counts as they are, expm1 of log1p,
     FPKM/TPM as given), scaled to 1e4 per cell over all its genes;
  2. each vocabulary gene divided by its corpus median; genes not in the vocabulary are dropped;
  3. non-zero genes ranked descending (ties: smaller token id), `<cls>` first, then at most
     max_len-1 genes. Deterministic: no subsampling.

:class:`RankBatcher` makes masked-token batches (tokens, labels): 15% of gene positions chosen;
of those 80% -> `<mask>`, 10% -> a random gene, 10% unchanged; labels are the original ids there
and IGNORE_LABEL elsewhere.

Windows (settings["window"] > 0, with a long max_len): a cell is read whole (up to max_len genes) when it is
embedded, but trained on in windows, so a long context costs no more to train than a short one. A window is
`<cls>` and window-1 of the cell's genes drawn at random, kept in rank order; the batch then carries each
token's rank in the whole cell, (tokens, labels, ranks), for a model whose positions are rank buckets.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from cellang.preprocess import gather_columns, normalise_total
from cellang.tokenizers.cells import (
    CLS_ID, MASK_ID, MAX_LEN, N_SPECIAL, PAD_ID, CellBatcher, CellVocabulary, TokenizedCells, linear_expression,
    pad_rows, present_genes, stack_datasets
)
from cellang.tokenizers.streaming_stats import Source, StreamingMedians, filled

IGNORE_LABEL = -100  # F.cross_entropy's default ignore_index
MIN_CELLS = 10  # vocabulary: genes expressed in at least this many training cells
MASK_RATIO = 0.15  # genes masked per cell in training (BERT's and Geneformer's rate)
Batch = tuple[torch.Tensor, torch.Tensor]


def nonzero_medians(matrix: sp.csr_matrix, min_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns expressed in >= min_cells rows, their medians over the non-zero entries)."""
    columns = sp.csc_matrix(matrix)
    counts = np.diff(columns.indptr)
    keep = np.flatnonzero(counts >= max(1, min_cells))
    medians = np.array([np.median(columns.data[columns.indptr[j]:columns.indptr[j + 1]]) for j in keep])
    return keep, medians


def window_setting(window: int) -> dict[str, int]:
    """The tokeniser setting of a training window ({} for none, so older vocabularies read the same)."""
    if window < 0 or window == 1:
        raise ValueError(f"a training window holds <cls> and at least one gene (>= 2), or is 0 for none; got {window}")
    return {"window": int(window)} if window else {}


class RankTokenizer:
    """Cells -> `<cls>` + genes by descending median-normalised expression."""

    mode = "rank"

    def __init__(self, vocabulary: CellVocabulary) -> None:
        if vocabulary.mode != self.mode or vocabulary.gene_medians is None:
            raise ValueError("the rank tokeniser needs a rank vocabulary with gene medians")
        self.vocabulary = vocabulary
        self.max_len = int(vocabulary.settings["max_len"])
        self.window = int(vocabulary.settings.get("window", 0))
        self.target_sum = float(vocabulary.settings.get("target_sum", 1e4))
        if self.max_len < 2:
            raise ValueError("max_len must be >= 2")
        # Divisor per token id (specials never get a value; 1.0 keeps the division defined).
        self._divisor = np.concatenate((np.ones(N_SPECIAL), vocabulary.gene_medians))

    @classmethod
    def fit(cls, adatas: Sequence[ad.AnnData], *, max_len: int = MAX_LEN, min_cells: int = MIN_CELLS,
            target_sum: float = 1e4, window: int = 0) -> RankTokenizer:
        """Vocabulary and gene medians of the training corpus `adatas` (var = approved symbols); window: tokens
        per training window (0 = train on whole encodings; see the module docstring)."""
        matrix, genes, _ = stack_datasets(adatas, target_sum, log1p=False)
        keep, medians = nonzero_medians(matrix, min_cells)
        settings = {"max_len": max_len, "min_cells": min_cells, "target_sum": target_sum, **window_setting(window)}
        vocabulary = CellVocabulary([genes[j] for j in keep], mode=cls.mode, settings=settings,
                                    gene_medians=medians)
        return cls(vocabulary)

    @classmethod
    def fit_streaming(cls, chunks: Source, *, max_len: int = MAX_LEN, min_cells: int = MIN_CELLS,
                      target_sum: float = 1e4, window: int = 0) -> RankTokenizer:
        """fit() in one pass over chunks of cells (AnnData iterable, a callable returning one, or a filled
        StreamingMedians; see :mod:`.streaming_stats`): the same genes, medians within MEDIAN_RELATIVE_ERROR."""
        medians = filled(chunks, StreamingMedians, target_sum)
        genes, values, _ = medians.result(min_cells)
        settings = {"max_len": max_len, "min_cells": min_cells, "target_sum": target_sum,
                    "statistics": medians.statistics, **window_setting(window)}
        return cls(CellVocabulary(genes, mode=cls.mode, settings=settings, gene_medians=values))

    def tokenize(self, adata: ad.AnnData) -> TokenizedCells:
        """Tokens of every cell of `adata` (var_names = gene symbols); see the module docstring."""
        linear, kind = linear_expression(adata)
        scaled = normalise_total(linear, self.target_sum)
        columns = self.vocabulary.column_ids(list(map(str, adata.var_names)))
        matrix = gather_columns(scaled, columns)
        genes = []
        for row in range(matrix.shape[0]):
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            ids = matrix.indices[start:end].astype(np.int64)
            relative = matrix.data[start:end] / self._divisor[ids]
            order = np.lexsort((ids, -relative))[: self.max_len - 1]
            genes.append(np.concatenate(([CLS_ID], ids[order])))
        present, fraction = present_genes(self.vocabulary, columns)
        return TokenizedCells(genes, None, present, fraction, kind)


class RankBatcher(CellBatcher):
    """Masked-token batches (tokens, labels), or (tokens, labels, ranks) with a window (module docstring);
    resumable and seeded like BinnedBatcher (batch b of epoch e draws from a generator seeded by (seed, e, 1, b))."""

    def __init__(self, cells: TokenizedCells, *, vocabulary_size: int, batch_size: int,
                 mask_ratio: float = MASK_RATIO, seed: int = 0, drop_last: bool = True, window: int = 0,
                 views: int = 1) -> None:
        super().__init__(cells, batch_size=batch_size, mask_ratio=mask_ratio, seed=seed, drop_last=drop_last,
                         views=views)
        window_setting(window)
        self.vocabulary_size, self.window = vocabulary_size, window

    def window_ranks(self, row: int, rng: np.random.Generator) -> np.ndarray:
        """The ranks (0 = <cls>) a cell's window keeps: all of a short cell, else <cls> and window-1 genes."""
        length = len(self.cells.genes[row])
        if not self.window or length <= self.window:
            return np.arange(length)
        return np.concatenate(([0], 1 + np.sort(rng.choice(length - 1, self.window - 1, replace=False))))

    def split_halves(self, rows: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
        """Two views of each cell (rows i and i + B hold the same cell): its genes split at random into two
        disjoint halves, each kept at its ranks (and cut to a window's length, if the vocabulary trains on
        windows), so the views share the cell's state but no gene token."""
        half = len(rows) // 2
        kept: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(rows)
        for k in range(half):
            order = 1 + rng.permutation(len(self.cells.genes[rows[k]]) - 1)
            for view, genes in ((k, order[0::2]), (half + k, order[1::2])):
                if self.window:
                    genes = genes[: self.window - 1]
                kept[view] = np.concatenate(([0], np.sort(genes)))
        return kept

    def make_batch(self, rows: Sequence[int], rng: np.random.Generator) -> Batch:
        if self.views == 2:
            kept = self.split_halves(rows, rng)
        else:
            kept = [self.window_ranks(i, rng) for i in rows] if self.window else None
        sequences = [self.cells.genes[i] if kept is None else self.cells.genes[i][kept[k]] for k, i in enumerate(rows)]
        tokens = pad_rows(sequences, PAD_ID)
        labels = torch.full(tokens.shape, IGNORE_LABEL, dtype=torch.long)
        for row in range(len(rows)):
            chosen = self.masked_positions(rows[row], rng, length=len(sequences[row]))
            if chosen is None:
                continue
            action = rng.random(len(chosen))  # < 0.8: <mask>; < 0.9: random gene; else unchanged
            random_genes = rng.integers(N_SPECIAL, self.vocabulary_size, size=len(chosen))
            chosen_t = torch.from_numpy(chosen)
            labels[row, chosen_t] = tokens[row, chosen_t]
            masked = torch.from_numpy(chosen[action < 0.8])
            swapped = (action >= 0.8) & (action < 0.9)
            tokens[row, masked] = MASK_ID
            tokens[row, torch.from_numpy(chosen[swapped])] = torch.from_numpy(random_genes[swapped])
        if kept is None:
            return tokens, labels
        return tokens, labels, pad_rows(kept, 0)
