"""The cell tokenisers' corpus statistics in ONE streaming pass over chunks of cells.

The in-memory fits (:meth:`.binned.BinnedTokenizer.fit`, :meth:`.rank.RankTokenizer.fit`) stack the
whole training corpus with :func:`.cells.stack_datasets`; the accumulators here see it one chunk (a
small AnnData) at a time and keep only per-gene arrays, so a corpus larger than memory can be fitted.
Accumulators of different workers combine with ``merge``.

* :class:`~.streaming_hvg.StreamingHVG` (its own module): the binned tokeniser's highly variable genes.
* :class:`StreamingMedians`: the rank tokeniser's per-gene non-zero medians from a log-spaced histogram
  per gene; every median within :data:`MEDIAN_RELATIVE_ERROR` (1.55 %) of the exact one.
* :func:`prepare_chunk` converts a chunk once (:func:`.cells.linear_expression`, then
  :func:`~cellang.preprocess.normalise_total`), so one pass can feed both accumulators:
  :func:`accumulate` does that loop.

Chunks: ``obs["dataset"]`` names each cell's dataset (scanpy's batch; one chunk may mix datasets;
cells without the column form one dataset named ""); ``obs["value_kind"]`` as in the atlas, else the
kind is guessed per chunk (and must agree across a dataset's chunks). var_names are gene symbols and
may differ between chunks: genes are unioned, and a gene a dataset lacks counts as 0 there, as
``stack_datasets`` does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellang import preprocess
from cellang.tokenizers.cells import CellValuesError, linear_expression, subset_rows

MEDIAN_BINS = 600  # histogram bins per gene: 20,000 genes x 600 x 4 bytes = 48 MB
MEDIAN_LOWEST = 1e-8  # histogram lower edge as a fraction of target_sum: 1 count in a cell of 100 million
MEDIAN_BIN_WIDTH = math.log(1.0 / MEDIAN_LOWEST) / MEDIAN_BINS  # natural-log width; values <= target_sum
MEDIAN_RELATIVE_ERROR = math.expm1(MEDIAN_BIN_WIDTH / 2)  # half a bin in log space: 0.01547
_BLOCK = 2048  # genes per histogram block: blocks are added as genes appear, never copied to grow
MEDIAN_STATISTICS = f"streaming, median relative error <= {MEDIAN_RELATIVE_ERROR:.4f}"


@dataclass(frozen=True)
class ChunkPart:
    """One dataset's cells of one chunk, converted as the in-memory fits convert them.

    genes: the chunk's distinct gene symbols, sorted; columns: for every column of the chunk, its
    position in genes; normalised: cells x chunk columns, float64, linear values scaled to
    target_sum per cell."""

    dataset: str
    genes: list[str]
    columns: np.ndarray
    normalised: sp.csr_matrix
    value_kind: str
    target_sum: float

    @property
    def n_cells(self) -> int:
        return self.normalised.shape[0]

    def entries(self, logged: bool) -> tuple[np.ndarray, np.ndarray]:
        """(position in genes, value) of every non-zero value, cell after cell; values are log1p'd when
        logged. Repeated symbols are summed after log1p when logged (stack_datasets' HVG input) and before
        it otherwise (its rank input)."""
        if len(self.genes) < len(self.columns):
            matrix = preprocess.log1p(self.normalised) if logged else self.normalised
            gathered = preprocess.gather_columns(matrix, self.columns, len(self.genes))
            return gathered.indices.astype(np.int64), gathered.data
        # distinct symbols: gathering only renumbers columns; a gene's values keep their cell order
        data = np.log1p(self.normalised.data) if logged else self.normalised.data
        nonzero = data != 0
        return self.columns[self.normalised.indices[nonzero]], data[nonzero]


def prepare_chunk(chunk: ad.AnnData, target_sum: float = 1e4) -> list[ChunkPart]:
    """A chunk of cells -> one ChunkPart per dataset in it (first-seen order, cells in chunk order).
    CellValuesError when values cannot be tokenised (see :func:`.cells.linear_expression`)."""
    genes, columns = np.unique(np.asarray(chunk.var_names, dtype=str), return_inverse=True)
    names = (chunk.obs["dataset"].astype(str).to_numpy() if "dataset" in chunk.obs.columns
             else np.full(chunk.n_obs, "", dtype=object))
    parts = []
    for dataset in pd.unique(names):
        rows = np.flatnonzero(names == dataset)
        cells = chunk if len(rows) == chunk.n_obs else subset_rows(chunk, rows)
        linear, kind = linear_expression(cells)
        parts.append(ChunkPart(str(dataset), genes.tolist(), columns.astype(np.int64).ravel(),
                               preprocess.normalise_total(linear, target_sum), kind, float(target_sum)))
    return parts


class _GeneIndex:
    """Gene symbol <-> accumulator row, rows in first-seen order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._rows: dict[str, int] = {}
        self._last: tuple[list[str], np.ndarray] = ([], np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.names)

    def rows(self, genes: list[str]) -> np.ndarray:
        """The row of every gene, adding new ones (the common case, a chunk with the same genes as the
        one before, is one list comparison)."""
        if genes == self._last[0]:
            return self._last[1]
        for gene in genes:
            if gene not in self._rows:
                self._rows[gene] = len(self.names)
                self.names.append(gene)
        rows = np.array([self._rows[gene] for gene in genes], dtype=np.int64)
        self._last = (list(genes), rows)
        return rows

    def sorted_rows(self) -> tuple[list[str], np.ndarray]:
        """(gene symbols sorted, their rows): the gene order of stack_datasets."""
        order = sorted(range(len(self.names)), key=self.names.__getitem__)
        return [self.names[i] for i in order], np.array(order, dtype=np.int64)


def _grown(array: np.ndarray, length: int) -> np.ndarray:
    """array padded with zeros to length (unchanged when already that long)."""
    if len(array) >= length:
        return array
    return np.concatenate((array, np.zeros(length - len(array), dtype=array.dtype)))


Chunk = ad.AnnData | Sequence[ChunkPart]


class _Accumulator:
    """What both accumulators share: target_sum, the gene index, one value kind per dataset, merging."""

    statistics = ""

    def __init__(self, target_sum: float = 1e4) -> None:
        self.target_sum = float(target_sum)
        self.genes = _GeneIndex()
        self.value_kinds: dict[str, str] = {}

    def update(self, chunk: Chunk) -> None:
        """Add a chunk of cells: an AnnData, or the parts :func:`prepare_chunk` made of one (to convert
        a chunk once for several accumulators)."""
        parts = prepare_chunk(chunk, self.target_sum) if isinstance(chunk, ad.AnnData) else chunk
        for part in parts:  # every check before anything is added: a refused chunk leaves no trace
            if part.target_sum != self.target_sum:
                raise ValueError(f"chunk normalised to {part.target_sum}, accumulator to {self.target_sum}")
            self._note_kind(part.dataset, part.value_kind)
        for part in parts:
            self._add(part, self.genes.rows(part.genes))

    def merge(self, other: _Accumulator) -> None:
        """Add what `other` (same class and target_sum, e.g. another worker's) accumulated."""
        if type(other) is not type(self) or other.target_sum != self.target_sum:
            raise ValueError("only accumulators of the same kind and target_sum can be merged")
        for dataset, kind in other.value_kinds.items():
            self._note_kind(dataset, kind)
        self._merge(other, self.genes.rows(other.genes.names))

    def _note_kind(self, dataset: str, kind: str) -> None:
        if kind == "empty":  # a chunk with no non-zero value says nothing about the dataset's kind
            return
        seen = self.value_kinds.setdefault(dataset, kind)
        if seen != kind:
            raise CellValuesError(f"dataset {dataset!r} arrived as {seen} in one chunk and {kind} in another; "
                                  'state it in obs["value_kind"]')

    def _add(self, part: ChunkPart, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _merge(self, other: _Accumulator, rows: np.ndarray) -> None:
        raise NotImplementedError


class _Histograms:
    """uint32 counts (up to 4.29e9 values per gene and bin), genes x MEDIAN_BINS, in blocks of _BLOCK genes."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def grow(self, n_genes: int) -> None:
        while len(self.blocks) * _BLOCK < n_genes:
            self.blocks.append(np.zeros((_BLOCK, MEDIAN_BINS), dtype=np.uint32))

    def add(self, genes: np.ndarray, bins: np.ndarray, counts: np.ndarray | int = 1) -> None:
        """Add counts at (gene, bin) pairs (repeats accumulate)."""
        counts = np.broadcast_to(np.asarray(counts, dtype=np.uint32), genes.shape)
        block = genes // _BLOCK
        for number in np.unique(block):
            chosen = block == number
            flat = (genes[chosen] % _BLOCK) * MEDIAN_BINS + bins[chosen]
            np.add.at(self.blocks[number].reshape(-1), flat, counts[chosen])

    def rows(self, genes: np.ndarray) -> np.ndarray:
        """A (len(genes), MEDIAN_BINS) copy of the genes' histograms."""
        out = np.zeros((len(genes), MEDIAN_BINS), dtype=np.uint32)
        block = genes // _BLOCK
        for number in np.unique(block):
            chosen = np.flatnonzero(block == number)
            out[chosen] = self.blocks[number][genes[chosen] % _BLOCK]
        return out


class StreamingMedians(_Accumulator):
    """Per-gene medians of the non-zero normalised values, as :func:`.rank.nonzero_medians` computes them
    on the stacked corpus, from a histogram per gene.

    Bins are log-spaced between target_sum x MEDIAN_LOWEST and target_sum (a normalised value never
    exceeds target_sum); smaller values are counted in the lowest bin. A median is reported as the
    geometric midpoint of the bin holding it (the mean of the two bins' midpoints when an even count
    splits them), so it is within MEDIAN_RELATIVE_ERROR (half a bin in log space) of the exact median,
    up to float rounding at bin edges -- except for a gene whose median falls among values below the
    lowest edge (warned about by :meth:`result`). Cells-expressing counts are exact.
    """

    statistics = MEDIAN_STATISTICS

    def __init__(self, target_sum: float = 1e4) -> None:
        super().__init__(target_sum)
        self.histograms = _Histograms()
        self.expressed = np.zeros(0, dtype=np.int64)
        self.below = np.zeros(0, dtype=np.int64)  # values under the lowest edge, per gene
        self.lowest = self.target_sum * MEDIAN_LOWEST

    def _grow(self) -> None:
        self.histograms.grow(len(self.genes))
        self.expressed, self.below = _grown(self.expressed, len(self.genes)), _grown(self.below, len(self.genes))

    def _add(self, part: ChunkPart, rows: np.ndarray) -> None:
        self._grow()
        positions, values = part.entries(logged=False)
        genes = rows[positions]
        position = np.floor((np.log(values) - math.log(self.lowest)) / MEDIAN_BIN_WIDTH)
        self.histograms.add(genes, np.clip(position, 0, MEDIAN_BINS - 1).astype(np.int64))
        self.expressed += np.bincount(genes, minlength=len(self.expressed))
        self.below += np.bincount(genes[values < self.lowest], minlength=len(self.below))

    def _merge(self, other: StreamingMedians, rows: np.ndarray) -> None:  # type: ignore[override]
        self._grow()
        for start in range(0, len(other.expressed), _BLOCK):
            theirs = np.arange(start, min(start + _BLOCK, len(other.expressed)))
            counts = other.histograms.rows(theirs)
            genes, bins = np.nonzero(counts)
            self.histograms.add(rows[theirs][genes], bins, counts[genes, bins])
        n = len(other.expressed)
        self.expressed[rows[:n]] += other.expressed
        self.below[rows[:n]] += other.below

    def midpoints(self) -> np.ndarray:
        """The geometric midpoint of every bin (what a median in that bin is reported as)."""
        return self.lowest * np.exp((np.arange(MEDIAN_BINS) + 0.5) * MEDIAN_BIN_WIDTH)

    def estimate(self, min_cells: int) -> MedianEstimate:
        """The medians of the genes expressed in >= max(1, min_cells) cells (the rank fit's rule)."""
        self._grow()
        names, rows = self.genes.sorted_rows()
        chosen = np.flatnonzero(self.expressed[rows] >= max(1, min_cells))
        rows = rows[chosen]
        medians, bounded = np.zeros(len(rows)), np.ones(len(rows), dtype=bool)
        for start in range(0, len(rows), _BLOCK):
            block = slice(start, start + _BLOCK)
            medians[block], lowest_bin = self._medians(rows[block])
            bounded[block] = ~(lowest_bin & (self.below[rows[block]] > 0))
        return MedianEstimate([names[i] for i in chosen], medians, self.expressed[rows].copy(), bounded)

    def result(self, min_cells: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(genes expressed in >= max(1, min_cells) cells, sorted; their medians; their cells-expressing
        counts), as RankTokenizer.fit keeps them; warns when some medians are not within the bound."""
        estimate = self.estimate(min_cells)
        if not estimate.bounded.all():
            warnings.warn(f"{int((~estimate.bounded).sum())} of {len(estimate.genes)} gene medians involve values "
                          f"below the histogram's lowest edge ({self.lowest:.3g}) and are reported near it, not "
                          f"within {MEDIAN_RELATIVE_ERROR:.2%}", stacklevel=2)
        return estimate.genes, estimate.medians, estimate.counts

    def _medians(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(median estimates of the genes at rows, whether the median's lower value is in the lowest bin)."""
        cumulative = np.cumsum(self.histograms.rows(rows), axis=1, dtype=np.int64)
        total = cumulative[:, -1]
        lower = np.sum(cumulative <= ((total - 1) // 2)[:, None], axis=1)  # bin of order statistic (n-1)//2
        upper = np.sum(cumulative <= (total // 2)[:, None], axis=1)  # bin of order statistic n//2
        middle = self.midpoints()
        return (middle[lower] + middle[upper]) / 2, lower == 0


@dataclass(frozen=True)
class MedianEstimate:
    """genes (sorted), their median estimates and cells-expressing counts; bounded[i] is False when gene
    i's median involves values below the histogram's lowest edge, so the error bound does not hold."""

    genes: list[str]
    medians: np.ndarray
    counts: np.ndarray
    bounded: np.ndarray


A = TypeVar("A", bound=_Accumulator)
Source = Iterable[ad.AnnData] | Callable[[], Iterable[ad.AnnData]] | _Accumulator


def accumulate(chunks: Iterable[ad.AnnData], *accumulators: _Accumulator) -> None:
    """Feed every chunk to all the accumulators (same target_sum), converting each chunk once."""
    sums = {a.target_sum for a in accumulators}
    if len(sums) != 1:
        raise ValueError(f"need accumulators sharing one target_sum, got {sorted(sums)}")
    for chunk in chunks:
        parts = prepare_chunk(chunk, accumulators[0].target_sum)
        for accumulator in accumulators:
            accumulator.update(parts)


def filled(source: Source, kind: type[A], target_sum: float = 1e4) -> A:
    """An accumulator of `kind` holding `source`: returned as it is when already one (its target_sum must
    equal target_sum), else filled from the chunks (an iterable, or a callable returning one)."""
    if isinstance(source, _Accumulator):
        if not isinstance(source, kind) or source.target_sum != float(target_sum):
            raise ValueError(f"need a {kind.__name__} with target_sum {target_sum}")
        return source
    accumulator = kind(target_sum)
    accumulate(source() if callable(source) else source, accumulator)
    return accumulator


def streaming_nonzero_medians(chunks: Iterable[ad.AnnData], min_cells: int,
                              target_sum: float = 1e4) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(genes, non-zero medians, cells-expressing counts) of the cells in `chunks`, in one pass
    (see :class:`StreamingMedians`)."""
    return filled(chunks, StreamingMedians, target_sum).result(min_cells)
