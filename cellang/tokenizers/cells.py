"""What the two cell tokenisers share: the gene vocabulary, expression values, padded batches.

* :class:`CellVocabulary`: `<pad>`=0, `<cls>`=1, `<mask>`=2, then genes (sorted). It also stores what
  the tokeniser learned from the TRAINING corpus (highly variable genes are the genes themselves;
  the rank tokeniser's per-gene non-zero medians) and its settings, so a checkpoint's
  `vocabulary.json` alone rebuilds its tokeniser.
* :func:`linear_expression`: any AnnData -> (cells x genes CSR on a linear scale, value kind);
  :class:`CellValuesError` when the values cannot be tokenised (NaN, negative, not numbers...).
  Normalising, log1p and moving columns to token ids are :mod:`cellang.preprocess`'s, shared with
  the PCA baseline.
* :class:`TokenizedCells`: per-cell token arrays (each starting with `<cls>`) and what was matched.
* :func:`pad_rows`: ragged int arrays -> one padded LongTensor.

Value kinds (the atlas's ``obs["value_kind"]``; otherwise guessed by
:func:`~cellang.preprocess.detect_value_kind`):
  counts                 used as they are;
  a ``counts`` layer     preferred over X whatever X holds (pbmc3k_decoupler: log1p X + counts);
  log1p                  expm1 back to the linear scale it was computed from;
  FPKM / TPM / normalised used as they are (already linear; gene-length normalised, which the
                         per-cell scaling that follows does not undo);
  scaled (negatives)     refused: z-scores cannot be turned back into expression.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from cellang import preprocess
from cellang.batching import Batch, EpochBatcher
from cellang.errors import CellangError
from cellang.preprocess import (
    detect_value_kind,
    gather_columns,
    is_numeric_matrix,
    normalise_total,
    stated_value_kinds,
    value_errors,
)

PAD, CLS, MASK = "<pad>", "<cls>", "<mask>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, CLS, MASK)
PAD_ID, CLS_ID, MASK_ID = 0, 1, 2
N_SPECIAL = len(SPECIAL_TOKENS)
MODES = ("binned", "rank")
MAX_LEN = 256  # genes per cell, <cls> included: the encoders' input length (EncoderConfig.max_len)
N_BINS = 51  # expression value bins of the binned encoding, bin 0 included (EncoderConfig.n_bins)
LINEAR_KINDS = ("counts", "FPKM", "TPM", "normalised", "linear")

CELL_VOCABULARY_FORMAT = "cellang-cell-vocabulary"
_VERSION = 1


class CellVocabulary:
    """Special tokens then genes in sorted order; gene id = N_SPECIAL + position in `genes`."""

    def __init__(self, genes: Iterable[str], *, mode: str, settings: dict[str, Any] | None = None,
                 gene_medians: Sequence[float] | None = None) -> None:
        """genes: unique approved symbols (sorted here); mode: "binned" or "rank";
        settings: the tokeniser's parameters (JSON-ready); gene_medians: one positive value per gene
        in the order given (rank mode), re-ordered with the genes."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        given = list(genes)
        if len(set(given)) != len(given):
            raise ValueError("genes must be unique")
        for gene in given:
            if not isinstance(gene, str) or not gene.strip() or gene in SPECIAL_TOKENS:
                raise ValueError(f"not a usable gene symbol: {gene!r}")
        order = sorted(range(len(given)), key=given.__getitem__)
        self.genes: tuple[str, ...] = tuple(given[i] for i in order)
        self.mode = mode
        self.settings = dict(settings or {})
        self.gene_medians: np.ndarray | None = None
        if gene_medians is not None:
            medians = np.asarray(gene_medians, dtype=np.float64)
            if medians.shape != (len(given),) or not np.all(medians > 0):
                raise ValueError("gene_medians needs one positive value per gene")
            self.gene_medians = medians[order]
        self._ids = {gene: N_SPECIAL + i for i, gene in enumerate(self.genes)}

    def __len__(self) -> int:
        """Number of tokens, specials included (the encoder's n_genes)."""
        return N_SPECIAL + len(self.genes)

    def __contains__(self, gene: object) -> bool:
        return gene in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellVocabulary) and self.to_json() == other.to_json()

    def token(self, token_id: int) -> str:
        return SPECIAL_TOKENS[token_id] if token_id < N_SPECIAL else self.genes[token_id - N_SPECIAL]

    def column_ids(self, var_names: Sequence[str]) -> np.ndarray:
        """For each input gene, its token id, or -1 when the vocabulary does not have it."""
        return np.array([self._ids.get(str(name), -1) for name in var_names], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": CELL_VOCABULARY_FORMAT, "version": _VERSION, "mode": self.mode,
                                "special_tokens": list(SPECIAL_TOKENS), "settings": self.settings,
                                "genes": list(self.genes)}
        if self.gene_medians is not None:
            data["gene_medians"] = [float(v) for v in self.gene_medians]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellVocabulary:
        if data.get("format") != CELL_VOCABULARY_FORMAT or data.get("version") != _VERSION:
            raise ValueError(f"not a {CELL_VOCABULARY_FORMAT} v{_VERSION} vocabulary: format={data.get('format')!r}")
        if tuple(data.get("special_tokens", ())) != SPECIAL_TOKENS:
            raise ValueError(f"special tokens {data.get('special_tokens')!r} != {SPECIAL_TOKENS!r}")
        vocabulary = cls(data["genes"], mode=data["mode"], settings=data.get("settings"),
                         gene_medians=data.get("gene_medians"))
        if list(vocabulary.genes) != list(data["genes"]):
            raise ValueError("vocabulary genes must be sorted")  # ids are positions: never remap silently
        return vocabulary

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CellVocabulary:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


class CellValuesError(CellangError, ValueError):
    """The cells' expression values cannot be tokenised (not numbers, NaN, infinite, negative, or of an
    unknown or mixed value kind); the message says why in plain words."""


def value_kind(adata: ad.AnnData) -> str:
    """The value kind of X: the single ``obs["value_kind"]`` when the data say so, else guessed."""
    kinds = stated_value_kinds(adata)
    if len(kinds) > 1:
        raise CellValuesError(f"cells of several value kinds ({kinds}): tokenise each kind separately")
    return kinds[0] if kinds else detect_value_kind(adata.X).kind


def linear_expression(adata: ad.AnnData) -> tuple[sp.csr_matrix, str]:
    """(cells x genes float64 CSR on a linear scale, the value kind used) -- see the module docstring.
    CellValuesError when the values cannot be used (NaN, negative, not numbers, unknown value kind)."""
    if "counts" in adata.layers:
        matrix, kind, where = adata.layers["counts"], "counts", "the counts layer"
    else:
        matrix, kind, where = adata.X, "", "X"
    if matrix is None:
        raise CellValuesError("the cells have no expression matrix (X is missing)")
    if not is_numeric_matrix(matrix):
        raise CellValuesError(" ".join(value_errors(matrix, where)))
    kind = kind or value_kind(adata)
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    matrix.sum_duplicates()
    if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or matrix.data.min() < 0):
        problems = value_errors(matrix, where)  # a sample on huge data: the check above is the exact one
        raise CellValuesError(" ".join(problems) + " The tokenisers need finite, non-negative values: counts, "
                              "log1p, TPM or FPKM.")
    if kind == "log1p":
        matrix.data = np.expm1(matrix.data)
    elif kind not in LINEAR_KINDS and kind != "empty":
        raise CellValuesError(f"cannot tokenise value kind {kind!r}; expected counts, log1p, TPM or FPKM")
    matrix.eliminate_zeros()
    return matrix, kind


def subset_rows(adata: ad.AnnData, rows: np.ndarray) -> ad.AnnData:
    """A copy of the chosen cells (anndata 0.12.6 warns under pandas 3; harmless here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return adata[np.asarray(rows)].copy()


@dataclass
class TokenizedCells:
    """Token arrays per cell and how the input's genes met the vocabulary.

    genes[i]: int64 token ids of cell i, `<cls>` first; values[i]: its value bins (binned mode, 0 at
    `<cls>`) or None (rank mode). genes_present: vocabulary genes the input has (sorted);
    fraction_present: len(genes_present) / vocabulary genes.
    """

    genes: list[np.ndarray]
    values: list[np.ndarray] | None
    genes_present: list[str] = field(default_factory=list)
    fraction_present: float = 0.0
    value_kind: str = ""

    def __len__(self) -> int:
        return len(self.genes)

    def subset(self, rows: Sequence[int]) -> TokenizedCells:
        return TokenizedCells([self.genes[i] for i in rows],
                              None if self.values is None else [self.values[i] for i in rows],
                              self.genes_present, self.fraction_present, self.value_kind)

    @staticmethod
    def concat(parts: Sequence[TokenizedCells]) -> TokenizedCells:
        with_values = [p.values is not None for p in parts]
        if any(with_values) and not all(with_values):
            raise ValueError("cannot mix binned and rank tokens")
        genes = [g for p in parts for g in p.genes]
        values = [v for p in parts for v in p.values] if parts and all(with_values) else None
        present = sorted({g for p in parts for g in p.genes_present})
        return TokenizedCells(genes, values, present)


def present_genes(vocabulary: CellVocabulary, columns: np.ndarray) -> tuple[list[str], float]:
    """Vocabulary genes among the input columns (token ids, -1 = unknown) and their fraction."""
    ids = sorted(set(int(c) for c in columns if c >= 0))
    genes = [vocabulary.token(i) for i in ids]
    return genes, len(genes) / max(1, len(vocabulary.genes))


def pad_rows(rows: Sequence[np.ndarray], pad: int | float = PAD_ID, length: int | None = None,
             dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Ragged 1-D arrays -> (len(rows), length or longest) tensor, right-padded with `pad`."""
    width = length if length is not None else max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), pad, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(np.asarray(row)[:width], dtype=dtype)
    return out


def stack_datasets(adatas: Sequence[ad.AnnData], target_sum: float = 1e4,
                   log1p: bool = False) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """The training corpus as one matrix over the union of genes (a gene a dataset lacks is 0 there).

    Every dataset goes through :func:`linear_expression` and :func:`~cellang.preprocess.normalise_total`
    (then log1p when asked). Returns (cells x union-genes CSR, union genes sorted, dataset number of every cell).
    """
    union = sorted({str(g) for a in adatas for g in a.var_names})
    index = {gene: i for i, gene in enumerate(union)}
    blocks, labels = [], []
    for number, adata in enumerate(adatas):
        linear, _ = linear_expression(adata)
        matrix = normalise_total(linear, target_sum)
        columns = np.array([index[str(g)] for g in adata.var_names], dtype=np.int64)
        blocks.append(gather_columns(preprocess.log1p(matrix) if log1p else matrix, columns, len(union)))
        labels.append(np.full(adata.n_obs, number))
    stacked = sp.csr_matrix(sp.vstack(blocks)) if blocks else sp.csr_matrix((0, len(union)))
    return stacked, union, np.concatenate(labels) if labels else np.zeros(0, dtype=int)


def epoch_rows(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, drop_last: bool,
               bucket_batches: int = 16) -> list[np.ndarray]:
    """The cells of every batch of one epoch, in the order the batches are served.

    Cells are shuffled with a generator seeded by (seed, epoch, 0); each run of bucket_batches x
    batch_size of them is sorted by token count and cut into batches, and the batches are shuffled
    again by (seed, epoch, 2). Batches of similar lengths need less padding (about a third less
    compute on the atlas) while every epoch still mixes cells freely. A pure function of its
    arguments, so batch n of epoch e can be rebuilt anywhere (exact resume).
    """
    n = len(lengths)
    order = np.random.default_rng((seed, epoch, 0)).permutation(n)
    if drop_last:
        order = order[: (n // batch_size) * batch_size]
    lengths = np.asarray(lengths)
    chunk = batch_size * max(1, bucket_batches)
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    shuffle = np.random.default_rng((seed, epoch, 2)).permutation(len(batches))
    return [batches[i] for i in shuffle]


class CellBatcher(EpochBatcher):
    """Base of the cell batchers: items are cell row numbers, and each epoch's batches come from
    `epoch_rows` (cells of similar lengths together) instead of a plain permutation. Subclasses
    implement ``make_batch(rows, rng)``; batch b of epoch e draws from a generator seeded by
    (seed, e, 1, b), so batch number n is a pure function of n (exact resume). views=2: each batch holds its
    cells twice (rows i and i + B), each copy masked on its own, for the encoder's contrastive loss."""

    def __init__(self, cells: TokenizedCells, *, batch_size: int, mask_ratio: float, seed: int,
                 drop_last: bool, views: int = 1) -> None:
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        self.views = views
        super().__init__(n_items=len(cells), batch_size=batch_size, seed=seed, drop_last=drop_last, what="cells")
        self.cells, self.mask_ratio = cells, mask_ratio
        self._items = list(range(len(cells)))
        self._lengths = [len(g) for g in cells.genes]

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        return epoch_rows(self._lengths, self.batch_size, self.seed, epoch, self.drop_last)

    def _make_batch(self, items: list[Any], rng: np.random.Generator) -> Batch:
        return self.make_batch(list(items) * self.views, rng)

    def make_batch(self, rows: Sequence[int], rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def masked_positions(self, row: int, rng: np.random.Generator, length: int | None = None) -> np.ndarray | None:
        """round(mask_ratio x n) of the cell's n gene positions 1..n (at least one), or None when n = 0;
        length: the tokens actually read (a training window), default the cell's whole encoding."""
        n = (len(self.cells.genes[row]) if length is None else length) - 1  # position 0 is <cls>
        if n == 0:
            return None
        return 1 + rng.permutation(n)[: max(1, round(self.mask_ratio * n))]
