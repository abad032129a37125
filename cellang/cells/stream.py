"""Cells read from disk chunk by chunk, never whole: what the cell encoders train on at scale.

In:  one or more ``.h5ad`` files (:class:`H5adCells`) or a SOMA experiment such as the CELLxGENE Census
     (:class:`SomaCells`).
Out: :class:`CellChunk` s -- small AnnData objects of consecutive cells (genes as approved symbols,
     ``obs["dataset"]`` and ``obs["value_kind"]`` filled in) -- read one at a time, so memory holds one
     chunk (plus the shuffle buffer of :mod:`cellang.embedding.streaming`) whatever the file size.

Why a reader of our own for ``.h5ad``: an ``.h5ad`` already stores X as CSR rows, so a chunk is three
contiguous slices of the file (``indptr``, ``indices``, ``data``) read through h5py; nothing needs to be
converted or copied first. The field's engines were measured and could not be used here: scverse's
``annbatch`` needs Python >= 3.12, and TileDB-SOMA 2.2.0's ``from_anndata`` ingest fails under pandas 3.1
on any AnnData ("Sparse array writes expect the coordinates of the cells to be written"), so a local file
cannot become a SOMA experiment. Reading an existing SOMA experiment works, and the Census goes through
:class:`SomaCells`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem

from cellang.cells.harmonise import harmonise_var
from cellang.cells.io import CellFileError, _hdf5_kind, _head, _is_hdf5_bytes, _not_hdf5_reason
from cellang.cells.validate import best_gene_ids
from cellang.genes import load_resolver
from cellang.preprocess import detect_value_kind

CHUNK_CELLS = 1024  # cells per read: large enough for fast sequential reads, small next to any memory
KEPT_OBS = ("dataset", "value_kind", "cell_type", "batch", "state")  # obs columns a chunk carries
MIN_KNOWN_GENES = 0.5  # below this share of recognised gene identifiers a file is refused


@dataclass(frozen=True)
class ChunkSpan:
    """Cells [start, stop) of file number ``source``; ``first`` is the number of its first cell over all files."""

    source: int
    start: int
    stop: int
    first: int

    @property
    def n_cells(self) -> int:
        return self.stop - self.start

    def of(self, mask: np.ndarray) -> np.ndarray:
        """This span's part of a per-cell array over all the source's cells."""
        return mask[self.first:self.first + self.n_cells]


CellChunk = ad.AnnData


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(block):
            digest.update(data)
    return digest.hexdigest()


def _labels(node: h5py.Group | h5py.Dataset) -> pd.Categorical:
    """An obs column as categories of strings: a million cells' labels stay a few MB."""
    values = read_elem(node)
    if isinstance(values, pd.Categorical):
        return pd.Categorical.from_codes(values.codes, [str(c) for c in values.categories])
    return pd.Categorical(np.asarray(values).astype(str))


class _H5adFile:
    """One ``.h5ad`` opened for chunked reading: where its counts are, its genes, its stated labels."""

    def __init__(self, path: Path) -> None:
        self.path = path
        name = path.name
        if not path.is_file():
            raise CellFileError(f"{name} does not exist or is not a file.")
        head = _head(path)
        if not _is_hdf5_bytes(head):
            raise CellFileError(_not_hdf5_reason(name, head))
        with h5py.File(path, "r") as handle:
            if _hdf5_kind(handle) != "h5ad" or "encoding-type" not in handle.attrs:
                raise CellFileError(f"{name} is not an AnnData .h5ad file written by anndata >= 0.7; "
                                    "only such files can be streamed.")
            self.matrix_key = "layers/counts" if "layers" in handle and "counts" in handle["layers"] else "X"
            if self.matrix_key not in handle:
                raise CellFileError(f"{name} has no expression matrix (X is missing).")
            node = handle[self.matrix_key]
            encoding = node.attrs.get("encoding-type", "array") if isinstance(node, h5py.Group) else "array"
            if encoding not in ("csr_matrix", "array"):
                raise CellFileError(
                    f"{name} stores {self.matrix_key} as {encoding}, which cannot be read cell by cell; write it "
                    "as CSR first (adata.X = scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(...)).")
            self.sparse = encoding == "csr_matrix"
            self.n_cells = int(node.attrs["shape"][0] if self.sparse else node.shape[0])
            self.indptr = node["indptr"][...].astype(np.int64) if self.sparse else None
            self.var = read_elem(handle["var"])
            self.var.index = self.var.index.astype(str)
            self.var_names = list(self.var.index)
            obs_group = handle["obs"]
            self.obs = pd.DataFrame({c: _labels(obs_group[c]) for c in KEPT_OBS if c in obs_group})
        if self.n_cells == 0:
            raise CellFileError(f"{name} holds no cells.")
        if "dataset" not in self.obs:
            self.obs["dataset"] = pd.Categorical([path.stem] * self.n_cells)
        guess = detect_value_kind(self._read_matrix(0, min(self.n_cells, CHUNK_CELLS)))
        if guess.kind == "scaled":
            raise CellFileError(f"{name}: {guess.sentence} The encoders need raw counts (best) or normalised "
                                "expression (log1p, TPM, CPM); give the file with its counts layer or unscaled X.")
        if "value_kind" not in self.obs or self.matrix_key != "X":
            # One value kind for the whole file, decided once from its first cells.
            kind = "counts" if self.matrix_key != "X" else guess.kind
            self.obs["value_kind"] = pd.Categorical([kind] * self.n_cells)
        self._check_genes()

    def _check_genes(self) -> None:
        probe = ad.AnnData(X=sp.csr_matrix((1, len(self.var_names))), var=self.var)
        self.id_source, share = best_gene_ids(probe, load_resolver())
        if share < MIN_KNOWN_GENES:
            raise CellFileError(f"{self.path.name}: only {share:.0%} of its {len(self.var_names):,} gene identifiers "
                                "are known human genes (HGNC symbols or Ensembl ids); is var_names the genes?")
        self.genes, self.membership = gene_map(self.var, self.id_source)

    def _read_matrix(self, start: int, stop: int) -> sp.csr_matrix:
        with h5py.File(self.path, "r") as handle:
            node = handle[self.matrix_key]
            if not self.sparse:
                return sp.csr_matrix(node[start:stop])
            assert self.indptr is not None
            low, high = self.indptr[start], self.indptr[stop]
            indptr = self.indptr[start:stop + 1] - low
            return sp.csr_matrix((node["data"][low:high], node["indices"][low:high], indptr),
                                 shape=(stop - start, len(self.var_names)))

    def read(self, start: int, stop: int) -> CellChunk:
        """Cells [start, stop) with genes mapped to approved symbols (duplicates merged)."""
        obs = self.obs.iloc[start:stop].reset_index(drop=True)
        obs.index = [f"{self.path.stem}:{i}" for i in range(start, stop)]
        matrix = to_symbols(self._read_matrix(start, stop), self.membership, obs["value_kind"].iloc[0])
        layers = {"counts": matrix} if self.matrix_key != "X" else {}
        return ad.AnnData(X=None if layers else matrix, obs=obs, var=pd.DataFrame(index=self.genes), layers=layers)


def gene_map(var: pd.DataFrame, id_source: str) -> tuple[list[str], sp.csr_matrix]:
    """(approved symbols, genes x symbols 0/1 matrix) for a file's genes: what harmonise_var does to every
    cell, worked out once so that each chunk is one sparse product."""
    identity = ad.AnnData(X=sp.identity(len(var), format="csr", dtype=np.float32), var=var)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        harmonised, _ = harmonise_var(identity, id_source=id_source, aggregation="sum")
    return [str(g) for g in harmonised.var_names], sp.csr_matrix(harmonised.X)


def to_symbols(matrix: sp.csr_matrix, membership: sp.csr_matrix, value_kind: str) -> sp.csr_matrix:
    """Columns merged into symbols: summed, on the linear scale for log1p values (as harmonise_var does)."""
    if value_kind != "log1p":
        return sp.csr_matrix(matrix @ membership.astype(matrix.dtype))
    linear = matrix.copy()
    linear.data = np.expm1(linear.data)
    merged = sp.csr_matrix(linear @ membership.astype(linear.dtype))
    merged.data = np.log1p(merged.data)
    return merged


class H5adCells:
    """The cells of one or more ``.h5ad`` files, in :data:`CHUNK_CELLS`-cell chunks.

    In:  paths (refused with :class:`CellFileError`, naming the file and the problem, when a file is missing,
         not HDF5, not an AnnData file, stored column-wise, empty, or not about human genes).
    Out: ``spans`` (every chunk, in file order) and ``read(span)`` -> :data:`CellChunk`. A ``counts`` layer is
         read in place of X, as the tokenisers do. ``describe()`` records the files and their sha256.
    """

    def __init__(self, paths: Sequence[str | Path], chunk_cells: int = CHUNK_CELLS) -> None:
        if not paths:
            raise CellFileError("no .h5ad file given to train on.")
        if chunk_cells < 1:
            raise ValueError(f"chunk_cells must be >= 1, got {chunk_cells}")
        self.files = [_H5adFile(Path(p)) for p in paths]
        self.chunk_cells = chunk_cells
        firsts = np.concatenate(([0], np.cumsum([f.n_cells for f in self.files])))
        self.spans = [ChunkSpan(k, start, min(start + chunk_cells, f.n_cells), int(firsts[k]) + start)
                      for k, f in enumerate(self.files) for start in range(0, f.n_cells, chunk_cells)]

    @property
    def n_cells(self) -> int:
        return sum(f.n_cells for f in self.files)

    def read(self, span: ChunkSpan) -> CellChunk:
        return self.files[span.source].read(span.start, span.stop)

    def describe(self) -> dict:
        return {"kind": "h5ad", "files": [{"name": f.path.name, "cells": f.n_cells, "genes": len(f.var_names),
                                           "matrix": f.matrix_key, "sha256": file_sha256(f.path)}
                                          for f in self.files]}


class SomaCells:
    """The cells of a SOMA experiment (a local one, or the CELLxGENE Census opened by :mod:`cellang.census`),
    in chunks of consecutive ``soma_joinid`` s that match ``obs_value_filter``.

    In:  an open ``tiledbsoma.Experiment``; the measurement and X layer (the Census: "RNA", "raw"); an obs filter.
    Out: as :class:`H5adCells`. Raw Census counts are integer counts (value kind "counts").
    """

    def __init__(self, experiment, *, measurement: str = "RNA", layer: str = "raw", obs_value_filter: str | None = None,
                 gene_column: str = "feature_name", dataset_column: str = "dataset_id", chunk_cells: int = CHUNK_CELLS,
                 description: dict | None = None) -> None:
        self.experiment, self.layer, self.chunk_cells = experiment, layer, chunk_cells
        self.measurement = experiment.ms[measurement]
        columns = ["soma_joinid"] + [c for c in (dataset_column, "cell_type") if c in experiment.obs.schema.names]
        obs = experiment.obs.read(value_filter=obs_value_filter, column_names=columns).concat().to_pandas()
        if obs.empty:
            raise CellFileError(f"the query {obs_value_filter!r} matches no cell.")
        self.obs = obs.sort_values("soma_joinid").reset_index(drop=True)
        if dataset_column in self.obs:
            self.obs = self.obs.rename(columns={dataset_column: "dataset"})
        else:
            self.obs["dataset"] = "soma"
        var = self.measurement.var.read(column_names=["soma_joinid", gene_column]).concat().to_pandas()
        var = var.sort_values("soma_joinid")
        self.var_joinids = var["soma_joinid"].to_numpy(np.int64)
        self.var_names = var[gene_column].astype(str).tolist()
        self.genes, self.membership = gene_map(pd.DataFrame(index=self.var_names), "var_names")
        self.description = description or {"kind": "soma", "filter": obs_value_filter}
        self.spans = [ChunkSpan(0, start, min(start + chunk_cells, len(self.obs)), start)
                      for start in range(0, len(self.obs), chunk_cells)]

    @property
    def n_cells(self) -> int:
        return len(self.obs)

    def read(self, span: ChunkSpan) -> CellChunk:
        rows = self.obs.iloc[span.start:span.stop]
        joinids = rows["soma_joinid"].to_numpy(np.int64)
        table = self.measurement.X[self.layer].read(coords=(joinids, self.var_joinids)).tables().concat()
        row_of = pd.Index(joinids).get_indexer(table["soma_dim_0"].to_numpy())
        col_of = pd.Index(self.var_joinids).get_indexer(table["soma_dim_1"].to_numpy())
        matrix = sp.csr_matrix((table["soma_data"].to_numpy().astype(np.float32), (row_of, col_of)),
                               shape=(len(joinids), len(self.var_names)))
        obs = pd.DataFrame({"dataset": rows["dataset"].astype(str).to_numpy(), "value_kind": "counts"},
                           index=[str(j) for j in joinids])
        if "cell_type" in rows:
            obs["cell_type"] = rows["cell_type"].astype(str).to_numpy()
        return ad.AnnData(X=to_symbols(matrix, self.membership, "counts"), obs=obs,
                          var=pd.DataFrame(index=self.genes))

    def describe(self) -> dict:
        return dict(self.description)


class MemoryCells:
    """The cells of an AnnData already in memory (var_names = approved symbols), served in chunks as
    :class:`H5adCells` serves a file's: what adapting an encoder to loaded cells (the API, the pages) trains on.
    ``obs["value_kind"]`` is decided once for all cells (stated, else detected) so that every chunk agrees;
    ``describe()`` records the cells' content sha256 (X or its counts layer, cell and gene names)."""

    def __init__(self, adata: ad.AnnData, name: str = "cells", chunk_cells: int = CHUNK_CELLS) -> None:
        from cellang.tokenizers.cells import value_kind

        if adata.n_obs == 0 or adata.n_vars == 0:
            raise CellFileError(f"{name} holds no cells or no genes.")
        if chunk_cells < 1:
            raise ValueError(f"chunk_cells must be >= 1, got {chunk_cells}")
        self.name, self.chunk_cells = name, chunk_cells
        matrix = adata.layers["counts"] if "counts" in adata.layers else adata.X
        self.matrix_key = "counts" if "counts" in adata.layers else "X"
        self.matrix = sp.csr_matrix(matrix)
        obs = pd.DataFrame({c: adata.obs[c].astype(str).to_numpy() for c in KEPT_OBS if c in adata.obs},
                           index=adata.obs_names.astype(str))
        obs["dataset"] = obs["dataset"] if "dataset" in obs else name
        obs["value_kind"] = "counts" if self.matrix_key == "counts" else value_kind(adata)
        self.obs, self.var = obs, pd.DataFrame(index=adata.var_names.astype(str))
        self.spans = [ChunkSpan(0, start, min(start + chunk_cells, adata.n_obs), start)
                      for start in range(0, adata.n_obs, chunk_cells)]

    @property
    def n_cells(self) -> int:
        return self.matrix.shape[0]

    def read(self, span: ChunkSpan) -> CellChunk:
        rows = slice(span.start, span.stop)
        matrix = self.matrix[rows]
        layers = {"counts": matrix} if self.matrix_key == "counts" else {}
        return ad.AnnData(X=None if layers else matrix, obs=self.obs.iloc[rows].copy(), var=self.var.copy(),
                          layers=layers)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        matrix = self.matrix.copy()
        matrix.sort_indices()
        for part in (matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), matrix.data.astype(np.float64)):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\n".join(map(str, self.obs.index)).encode())
        digest.update("\n".join(map(str, self.var.index)).encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {"kind": "anndata", "name": self.name, "cells": self.n_cells, "genes": int(self.matrix.shape[1]),
                "matrix": self.matrix_key, "sha256": self.sha256()}


CellSource = H5adCells | SomaCells | MemoryCells


def iterate_chunks(source: CellSource, spans: Sequence[ChunkSpan] | None = None,
                   drop: np.ndarray | None = None) -> Iterator[CellChunk]:
    """Chunks of ``source`` in the order of ``spans`` (all, in order, by default).

    drop: a boolean mask over all the source's cells (in span order); masked cells are left out of every
    chunk (the validation cells, when training statistics are gathered)."""
    for span in source.spans if spans is None else spans:
        chunk = source.read(span)
        if drop is not None:
            keep = ~span.of(drop)
            if not keep.all():
                chunk = chunk[keep].copy()
        if chunk.n_obs:
            yield chunk
