"""Read single-cell files into AnnData, and write them reproducibly. Nothing is ever unpickled.

:func:`read_cells` takes a path or an open binary buffer (an upload) and understands

- ``.h5ad`` (AnnData): read *backed* through h5py: only the chosen cells' rows of X (and layers)
  are read from disk, so a million-cell file never lands in memory whole;
- 10x Genomics ``.h5`` (CellRanger ``filtered_feature_bc_matrix.h5``, v2 or v3) through scanpy;
- 10x ``mtx`` folders (``matrix.mtx[.gz]``, ``features.tsv[.gz]`` or ``genes.tsv``, ``barcodes.tsv[.gz]``).

``max_cells`` keeps a seeded random sample of cells (in file order), the same for the same seed.
Anything unreadable raises :class:`CellFileError` with a plain sentence saying why.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem

from cellang.errors import CellangError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
Source = str | Path | BinaryIO | bytes


class CellFileError(CellangError, ValueError):
    """The input cannot be read as single-cell data; the message says why in plain words."""


def _describe(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return getattr(source, "name", None) or "the uploaded file"


def _is_hdf5_bytes(head: bytes) -> bool:
    """HDF5 files start with the signature at byte 0 or 512, 1024, 2048, ... (after a user block)."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= len(head):
        if head[offset:offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _head(source: str | Path | BinaryIO | bytes, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of a file, bytes or seekable buffer (the buffer's position is kept)."""
    if isinstance(source, bytes):
        return source[:size]
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            return handle.read(size)
    position = source.tell()
    try:
        return source.read(size)
    finally:
        source.seek(position)


# Formats people save cells in that are not HDF5 (told apart by their first bytes), and what to do instead.
_NOT_HDF5: tuple[tuple[tuple[bytes, ...], str], ...] = (
    ((b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"),
     "is a Python pickle, not an .h5ad (HDF5) file; pickles are never loaded here, because loading one can run "
     "any code. Load it where you made it and save it with AnnData's write_h5ad"),
    ((b"\x1f\x8b",), "is gzip-compressed; decompress it first (gunzip) and give the .h5ad or .h5 inside"),
    ((b"PK\x03\x04",),
     "is a zip archive; unpack it and give the .h5ad, the 10x .h5 or the folder of a 10x matrix.mtx inside"),
    ((b"\x93NUMPY",), "is a NumPy array file, which names no genes or cells; save the cells with AnnData's "
                      "write_h5ad"),
)


def _not_hdf5_reason(name: str, head: bytes) -> str:
    if not head:
        return f"{name} is empty (0 bytes)."
    for signatures, reason in _NOT_HDF5:
        if head.startswith(signatures):
            return f"{name} {reason}."
    return (f"{name} is not an HDF5 file, so it is neither an .h5ad nor a 10x .h5 file. "
            "Save your data with AnnData's write_h5ad, or give the folder of a 10x matrix.mtx.")


def is_hdf5(source: Source) -> bool:
    """True when ``source`` (a path, bytes or a seekable buffer) is an HDF5 file."""
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        return False
    return _is_hdf5_bytes(_head(source))


def sample_indices(n_cells: int, max_cells: int | None, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a seeded random sample of ``max_cells`` cells, or None to keep all."""
    if max_cells is None or n_cells <= max_cells:
        return None
    if max_cells < 1:
        raise ValueError("max_cells must be at least 1")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_cells, size=max_cells, replace=False))


def _hdf5_kind(handle: h5py.File) -> str:
    """'h5ad' (AnnData) or '10x' (CellRanger matrix), from the groups the file holds."""
    keys = set(handle.keys())
    if "X" in keys or ("obs" in keys and "var" in keys):
        return "h5ad"
    if "matrix" in keys or any(isinstance(handle[k], h5py.Group) and "barcodes" in handle[k] for k in keys):
        return "10x"
    return "unknown"


def read_cells(source: Source, *, max_cells: int | None = None, seed: int = 0) -> ad.AnnData:
    """Read an ``.h5ad``, 10x ``.h5`` or 10x mtx folder into memory, optionally subsampled.

    ``source`` is a path, raw bytes, or a binary buffer (such as a Streamlit upload). Anything that is
    not HDF5 (a pickle, an empty file, text) is refused from its first bytes with :class:`CellFileError`.
    """
    name = _describe(source)
    if max_cells is not None and max_cells < 1:
        raise CellFileError(f"max_cells must be at least 1 (or None for every cell), got {max_cells}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return _subsample(_read_10x_mtx(path), max_cells, seed)
        if not path.exists():
            raise CellFileError(f"{name} does not exist.")
        if not path.is_file():
            raise CellFileError(f"{name} is not a file (a device, pipe or socket?); give an .h5ad, a 10x .h5 "
                                "or the folder of a 10x matrix.mtx.")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    head = _head(source)
    if not _is_hdf5_bytes(head):  # never handed to a reader that might unpickle or execute it
        raise CellFileError(_not_hdf5_reason(name, head))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with h5py.File(source, "r") as handle:
                kind = _hdf5_kind(handle)
            if hasattr(source, "seek"):
                source.seek(0)
            if kind == "h5ad":
                return _read_h5ad(source, max_cells, seed)
            if kind == "10x":
                return _subsample(_read_10x_h5(source), max_cells, seed)
    except CellFileError:
        raise
    except Exception as error:  # h5py/anndata raise many types for damaged files
        raise CellFileError(f"{name} could not be read as single-cell data: {error}") from error
    raise CellFileError(
        f"{name} is an HDF5 file but holds neither AnnData groups (X, obs, var) nor a 10x matrix."
    )


def subset_cells(adata: ad.AnnData, chosen: np.ndarray | None) -> ad.AnnData:
    """A copy holding only the ``chosen`` cells (all when None)."""
    if chosen is None:
        return adata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata 0.12.6 touches a pandas option that pandas 3 deprecates
        return adata[chosen].copy()


def _subsample(adata: ad.AnnData, max_cells: int | None, seed: int) -> ad.AnnData:
    return subset_cells(adata, sample_indices(adata.n_obs, max_cells, seed))


def _read_h5ad(source: str | Path | BinaryIO, max_cells: int | None, seed: int) -> ad.AnnData:
    """Read the chosen cells of an .h5ad through h5py, X row block by row block.

    This is what ``anndata.read_h5ad(backed="r")`` promises; anndata 0.12.6's backed sparse indexing
    fails under SciPy 1.17 (it returns X = None), so the rows are read here. obs, var, obsm, layers
    and uns are kept (obsm and layers subset to the same cells); raw, obsp, varm and varp are not.
    Files from anndata < 0.7 (no encoding attributes) are read whole by anndata, then sampled.
    """
    with h5py.File(source, "r") as handle:
        if "encoding-type" not in handle.attrs:
            legacy = True
        else:
            legacy = False
            obs = read_elem(handle["obs"])
            chosen = sample_indices(len(obs), max_cells, seed)
            adata = ad.AnnData(
                X=read_rows(handle["X"], chosen) if "X" in handle else None,
                obs=obs if chosen is None else obs.iloc[chosen],
                var=read_elem(handle["var"]),
                layers={k: read_rows(v, chosen) for k, v in handle["layers"].items()} if "layers" in handle else None,
                obsm=_optional(lambda: {k: _rows(read_elem(v), chosen) for k, v in handle["obsm"].items()}),
                uns=_optional(lambda: read_elem(handle["uns"])),
            )
    if legacy:
        if hasattr(source, "seek"):
            source.seek(0)
        return _subsample(ad.read_h5ad(source), max_cells, seed)
    return adata


def _optional(read: Callable[[], dict]) -> dict:
    """obsm and uns are extras: a part that is absent or unreadable is left out, not fatal."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - any failure here only loses the extra
        return {}


def _rows(values: object, chosen: np.ndarray | None) -> object:
    if chosen is None:
        return values
    return values.iloc[chosen] if isinstance(values, pd.DataFrame) else values[chosen]


def _runs(chosen: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Blocks [first, last] of sorted row indices, joining rows at most ``max_gap`` apart."""
    breaks = np.flatnonzero(np.diff(chosen) > max_gap)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(chosen) - 1]))
    return [(int(chosen[a]), int(chosen[b])) for a, b in zip(starts, ends)]


def read_rows(node: h5py.Dataset | h5py.Group, chosen: np.ndarray | None, max_gap: int = 16) -> object:
    """Rows ``chosen`` (sorted) of a stored matrix: dense, CSR (read block by block) or CSC (read whole)."""
    if chosen is None:
        return read_elem(node)
    if isinstance(node, h5py.Dataset):
        return node[chosen] if len(chosen) else node[0:0]
    encoding = node.attrs.get("encoding-type", "")
    if encoding == "csc_matrix":
        return sp.csr_matrix(read_elem(node))[chosen]
    if encoding != "csr_matrix":
        raise CellFileError(f"a matrix is stored as {encoding or 'an unknown type'!r}, which cannot be read")
    n_columns = int(node.attrs["shape"][1])
    indptr = node["indptr"][...].astype(np.int64)
    data, indices, lengths = [], [], []
    for first, last in _runs(chosen, max_gap) if len(chosen) else []:
        low, high = indptr[first], indptr[last + 1]
        block_data, block_indices = node["data"][low:high], node["indices"][low:high]
        for row in chosen[(chosen >= first) & (chosen <= last)]:
            start, end = indptr[row] - low, indptr[row + 1] - low
            data.append(block_data[start:end])
            indices.append(block_indices[start:end])
            lengths.append(end - start)
    dtype = node["data"].dtype
    new_indptr = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    return sp.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, dtype), np.concatenate(indices) if indices
         else np.zeros(0, np.int64), new_indptr), shape=(len(chosen), n_columns),
    )


def _read_10x_h5(source: str | Path | BinaryIO) -> ad.AnnData:
    import scanpy as sc  # imported here: scanpy pulls numba, which is slow to import

    if isinstance(source, (str, Path)):
        adata = sc.read_10x_h5(source)
    else:  # scanpy wants a file name: spool the buffer to a private temporary file
        with tempfile.NamedTemporaryFile(suffix=".h5") as spool:
            spool.write(source.read())
            spool.flush()
            adata = sc.read_10x_h5(spool.name)
    adata.var_names_make_unique()
    return adata


def _read_10x_mtx(folder: Path) -> ad.AnnData:
    import scanpy as sc

    names = {p.name for p in folder.iterdir()}
    if not names & {"matrix.mtx", "matrix.mtx.gz"}:
        raise CellFileError(f"{folder.name}/ holds no matrix.mtx or matrix.mtx.gz, so it is not a 10x folder.")
    if not names & {"features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz"}:
        raise CellFileError(f"{folder.name}/ holds a matrix but no features.tsv(.gz) or genes.tsv naming the genes.")
    if not names & {"barcodes.tsv", "barcodes.tsv.gz"}:
        raise CellFileError(f"{folder.name}/ holds a matrix but no barcodes.tsv(.gz) naming the cells.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adata = sc.read_10x_mtx(folder, var_names="gene_symbols", make_unique=True)
    except Exception as error:
        raise CellFileError(f"{folder.name}/ could not be read as a 10x matrix: {error}") from error
    return adata


# ---------------------------------------------------------------------------------------------
# Writing: deterministic, gzip-compressed .h5ad that anndata can write under pandas 3.

def _object_index(index: pd.Index) -> pd.Index:
    return pd.Index(np.asarray(index.astype(str), dtype=object), dtype=object, name=index.name)


def h5ad_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose strings are plain object arrays (anndata cannot write pandas 3's str dtype)."""
    out = pd.DataFrame(index=_object_index(frame.index))
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            categories = values.cat.categories
            if not pd.api.types.is_numeric_dtype(categories):
                categories = _object_index(categories)
            out[column] = pd.Categorical.from_codes(values.cat.codes.to_numpy(), categories=categories)
        elif pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            out[column] = values.to_numpy()
        else:
            strings = np.asarray(values.astype(str), dtype=object)
            categories = sorted(set(strings))
            if len(categories) < len(strings):  # as anndata does on writing, but with object categories
                index = pd.Index(categories, dtype=object)
                out[column] = pd.Categorical.from_codes(index.get_indexer(strings), categories=index)
            else:
                out[column] = pd.Series(strings, index=out.index, dtype=object)
    return out


def write_h5ad(adata: ad.AnnData, path: Path) -> Path:
    """Write ``adata`` as gzip-compressed ``.h5ad`` (atomically). The same data gives the same bytes."""
    out = ad.AnnData(
        X=adata.X, obs=h5ad_frame(adata.obs), var=h5ad_frame(adata.var),
        layers=dict(adata.layers), obsm=dict(adata.obsm), uns=dict(adata.uns),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.write_h5ad(partial, compression="gzip")
    partial.replace(path)
    return path


def content_sha256(adata: ad.AnnData) -> dict[str, str]:
    """Hashes of X, obs and var contents, independent of how HDF5 lays out the bytes."""
    matrix = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    x_hash = hashlib.sha256()
    for part in (np.asarray(matrix.shape, dtype=np.int64), matrix.indptr.astype(np.int64),
                 matrix.indices.astype(np.int64), matrix.data.astype(np.float32)):
        x_hash.update(np.ascontiguousarray(part).tobytes())
    return {
        "X": x_hash.hexdigest(),
        "obs": hashlib.sha256(adata.obs.to_csv().encode("utf-8")).hexdigest(),
        "var": hashlib.sha256(adata.var.to_csv().encode("utf-8")).hexdigest(),
    }
