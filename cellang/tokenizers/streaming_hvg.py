"""The binned tokeniser's highly variable genes in one streaming pass (see :mod:`.streaming_stats` for chunks).

:class:`StreamingHVG` rebuilds scanpy 1.11.5 ``highly_variable_genes(flavor="seurat", batch_key=dataset)`` from
per-dataset per-gene sums, sums of squares and cells-expressing counts. Exact: see the class for the last-bit
caveat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from cellang.tokenizers.hvg_selection import HVG_SELECTION, check_hvg_selection, ranked_by_dispersion, take_in_turn
from cellang.tokenizers.streaming_stats import ChunkPart, _Accumulator, _grown, filled

N_MEAN_BINS = 20  # scanpy highly_variable_genes' n_bins default: mean bins of the seurat flavor
HVG_STATISTICS = "streaming, exact"


@dataclass
class _DatasetSums:
    """Per-gene sums of one dataset (gene = accumulator row)."""

    n_cells: int = 0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(0))
    expressed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def grow(self, length: int) -> None:
        self.sums, self.squares = _grown(self.sums, length), _grown(self.squares, length)
        self.expressed = _grown(self.expressed, length)


class StreamingHVG(_Accumulator):
    """Highly variable genes of the streamed corpus, as :func:`.binned.highly_variable_genes` finds them.

    Per dataset and gene it keeps the number of cells, the sum and the sum of squares of
    expm1(float32(log1p(normalised))) -- the values scanpy sees, since the in-memory path hands it
    float32 log1p values -- and how many cells express the gene. That is all the seurat flavor uses.

    Datasets are scanpy's batches (one dataset: no batch_key, as in the in-memory fit).

    Exactness: sums are float64 and every value is added in arrival order (np.add.at), as scanpy's
    kernel adds them with one numba thread (squares as float32 products, as there); with the cells
    streamed in corpus order (datasets in the order of the in-memory list) the per-gene table and the
    gene list equal scanpy's bit for bit (tested on the atlas). scanpy with T numba threads adds T
    interleaved subsets of the cells and then their totals, and a merge adds workers' totals, so
    means and variances can differ from a single pass in the last bits (on the atlas with 2 threads:
    dispersions 5e-13 relative); the gene list can change only if two normalised dispersions tie to
    that precision at the cut-off or a gene's mean sits on a mean-bin edge (on the atlas it does not).
    """

    statistics = HVG_STATISTICS

    def __init__(self, target_sum: float = 1e4) -> None:
        super().__init__(target_sum)
        self.datasets: dict[str, _DatasetSums] = {}

    def _sums(self, dataset: str) -> _DatasetSums:
        sums = self.datasets.setdefault(dataset, _DatasetSums())
        sums.grow(len(self.genes))
        return sums

    def _add(self, part: ChunkPart, rows: np.ndarray) -> None:
        positions, logged = part.entries(logged=True)
        values = np.expm1(logged.astype(np.float32))
        genes = rows[positions]
        sums = self._sums(part.dataset)
        np.add.at(sums.sums, genes, values.astype(np.float64))
        np.add.at(sums.squares, genes, (values * values).astype(np.float64))
        sums.expressed += np.bincount(genes[values > 0], minlength=len(sums.expressed))
        sums.n_cells += part.n_cells

    def _merge(self, other: StreamingHVG, rows: np.ndarray) -> None:  # type: ignore[override]
        for dataset, theirs in other.datasets.items():
            ours, n = self._sums(dataset), len(theirs.sums)
            ours.sums[rows[:n]] += theirs.sums
            ours.squares[rows[:n]] += theirs.squares
            ours.expressed[rows[:n]] += theirs.expressed
            ours.n_cells += theirs.n_cells

    def table(self, n_top: int) -> pd.DataFrame:
        """scanpy's per-gene table, genes sorted: means, dispersions, dispersions_norm (averaged over
        datasets when there are several, with highly_variable_nbatches), highly_variable (bool)."""
        names, rows = self.genes.sorted_rows()
        genes, n_top = pd.Index(names), min(n_top, len(names))
        per_dataset = {name: self._sums(name) for name in _scanpy_order(list(self.datasets))}
        if len(per_dataset) == 1:
            sums = next(iter(per_dataset.values()))
            return _seurat_frame(sums.sums[rows], sums.squares[rows], sums.n_cells, n_top, genes)
        frames = [_dataset_frame(sums, rows, genes, n_top) for sums in per_dataset.values()]
        return _combine_datasets(frames, genes, n_top)

    def result(self, n_top: int, selection: str = HVG_SELECTION) -> list[str]:
        """The highly variable genes, sorted (what :func:`.binned.highly_variable_genes` returns for
        the same selection)."""
        check_hvg_selection(selection)
        if not self.datasets:
            return []
        if selection == "per-dataset":
            return sorted(take_in_turn([self.dispersion_ranking(name) for name in self.datasets], n_top))
        table = self.table(n_top)
        return sorted(str(g) for g in table.index[table["highly_variable"].to_numpy(dtype=bool)])

    def dispersion_ranking(self, dataset: str) -> list[str]:
        """The genes `dataset` expresses, most variable first (normalised dispersion; ties by name)."""
        names, rows = self.genes.sorted_rows()
        frame, _ = _expressed_frame(self._sums(dataset), rows, pd.Index(names), n_top=len(rows))
        return ranked_by_dispersion(frame["dispersions_norm"].to_numpy(), list(frame.index))


def _scanpy_order(datasets: list[str]) -> list[str]:
    """Datasets (in arrival order) in the order scanpy combines them: stack_datasets labels cells with
    the dataset's number and scanpy takes the labels' categories, i.e. the numbers sorted as text
    ("0", "1", "10", "2", ...). The order changes the last bits of the cross-dataset means."""
    return [datasets[int(label)] for label in sorted(str(i) for i in range(len(datasets)))]


def _seurat_frame(sums: np.ndarray, squares: np.ndarray, n_cells: int, n_top: int,
                  genes: pd.Index) -> pd.DataFrame:
    """scanpy 1.11.5 ``_highly_variable_genes_single_batch`` (flavor seurat, n_top_genes) from the
    per-gene sums of the (non-logged) values of n_cells cells: the same steps in the same order."""
    mean = sums / n_cells
    var = squares / n_cells - mean**2
    if n_cells != 1:
        var *= n_cells / (n_cells - 1)
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
    frame = pd.DataFrame({"means": np.log1p(mean), "dispersions": dispersion})
    frame["mean_bin"] = pd.cut(frame["means"], bins=N_MEAN_BINS)
    stats = frame.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    alone = stats["dev"].isnull()  # a bin holding one gene: scanpy sets its normalised dispersion to 1
    stats.loc[alone, "dev"] = stats.loc[alone, "avg"]
    stats.loc[alone, "avg"] = 0
    stats = stats.loc[frame["mean_bin"]].set_index(frame.index)
    frame["dispersions_norm"] = (frame["dispersions"] - stats["avg"]) / stats["dev"]
    frame["highly_variable"] = _top_dispersions(frame["dispersions_norm"].to_numpy(), n_top)
    frame.index = genes
    return frame.drop(columns="mean_bin")


def _top_dispersions(dispersion_norm: np.ndarray, n_top: int) -> np.ndarray:
    """scanpy's ``_subset_genes`` for n_top_genes: every gene at or above the n_top-th highest
    normalised dispersion (NaN never; ties at the cut can give more than n_top)."""
    finite = np.sort(dispersion_norm[~np.isnan(dispersion_norm)])[::-1]
    n = min(n_top, len(dispersion_norm), len(finite))
    if n == 0:
        return np.zeros(len(dispersion_norm), dtype=bool)
    return np.nan_to_num(dispersion_norm, nan=-np.inf) >= finite[n - 1]


def _expressed_frame(sums: _DatasetSums, rows: np.ndarray, genes: pd.Index,
                     n_top: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(one dataset's seurat table on the genes it expresses, which of `genes` those are): scanpy's batched
    path computes each dataset's table on its expressed genes only."""
    expressed = sums.expressed[rows] > 0
    kept = rows[expressed]
    if len(kept) == 0:  # nothing to cut into mean bins
        empty = pd.DataFrame({name: np.zeros(0) for name in ("means", "dispersions", "dispersions_norm")})
        return empty.assign(highly_variable=np.zeros(0, dtype=bool)).set_axis(genes[expressed]), expressed
    return _seurat_frame(sums.sums[kept], sums.squares[kept], sums.n_cells, n_top, genes[expressed]), expressed


def _dataset_frame(sums: _DatasetSums, rows: np.ndarray, genes: pd.Index, n_top: int) -> pd.DataFrame:
    """One dataset's table over all genes: :func:`_expressed_frame`, every other gene given zeros as scanpy
    gives them."""
    found, expressed = _expressed_frame(sums, rows, genes, n_top)
    columns = {}
    for name in ("means", "dispersions", "dispersions_norm", "highly_variable"):
        column = np.zeros(len(genes), dtype=found[name].dtype)
        column[expressed] = found[name].to_numpy()
        columns[name] = column
    return pd.DataFrame(columns, index=genes)


def _combine_datasets(frames: list[pd.DataFrame], genes: pd.Index, n_top: int) -> pd.DataFrame:
    """scanpy's ``_highly_variable_genes_batched`` for n_top_genes: genes ranked by the number of
    datasets they are highly variable in, then by mean normalised dispersion (NaN last), top n_top.
    frames: one per dataset, in :func:`_scanpy_order`."""
    frame = pd.concat(frames, axis=0)
    frame["highly_variable"] = frame["highly_variable"].astype(int)
    frame = frame.groupby(frame.index, observed=True).agg(
        dict(means="mean", dispersions="mean", dispersions_norm="mean", highly_variable="sum"))
    frame["highly_variable_nbatches"] = frame["highly_variable"]
    frame = frame.loc[genes]
    frame = frame.sort_values(["highly_variable_nbatches", "dispersions_norm"], ascending=False,
                              na_position="last")
    frame["highly_variable"] = np.arange(frame.shape[0]) < n_top
    return frame.loc[genes]


def streaming_highly_variable_genes(chunks: Iterable[ad.AnnData], n_top: int, target_sum: float = 1e4) -> list[str]:
    """:func:`.binned.highly_variable_genes` of the cells in `chunks`, in one pass."""
    return filled(chunks, StreamingHVG, target_sum).result(n_top)
