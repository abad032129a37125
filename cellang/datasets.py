"""``cl.datasets``: the data that ships with cellang, ready to use.

    import cellang as cl
    cl.datasets.atlas()                  # the embedded cell atlas: one row per dataset
    adata = cl.datasets.cells("hsmm")    # one dataset as AnnData (human skeletal muscle myoblasts and myotubes)
    cl.datasets.gene_sets("test")        # corpus gene sets of one split, name -> genes
    cl.datasets.corpus()                 # the whole corpus (names, descriptions, sources, licences, splits)
    adata = cl.datasets.read("my_cells.h5ad")   # your own cells: .h5ad, 10x .h5 or a 10x folder, read safely
    cl.datasets.read_upload(data, "my_cells.h5ad").messages()   # an uploaded file, checked: never raises
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import anndata as ad
import pandas as pd

__all__ = ["atlas", "cells", "corpus", "gene_sets", "read", "read_upload"]


def atlas() -> pd.DataFrame:
    """The embedded cell atlas: one row per dataset (name, title, cells, genes, value kind, source, licence).

    Returns
    -------
    pandas.DataFrame indexed by dataset name.
    """
    from cellang.atlas import atlas_manifest

    rows = [{k: v for k, v in entry.items() if not isinstance(v, (dict, list))}
            for entry in atlas_manifest()["datasets"]]
    return pd.DataFrame(rows).set_index("name")


def cells(name: str, *, max_cells: int | None = None, seed: int = 0) -> ad.AnnData:
    """One atlas dataset as AnnData.

    Parameters
    ----------
    name
        A dataset of :func:`atlas` (e.g. "hsmm", "pbmc3k_decoupler").
    max_cells
        At most this many cells, sampled with ``seed`` (None: all).

    Returns
    -------
    anndata.AnnData: var_names approved symbols; obs with ``cell_type``, ``batch``, ``dataset`` and the
    dataset's own labels.
    """
    from cellang.atlas import atlas_datasets, load_atlas_dataset
    from cellang.errors import CellangError

    names = atlas_datasets()
    if name not in names:
        raise CellangError(f"no atlas dataset {name!r}; the atlas has {', '.join(names)}")
    return load_atlas_dataset(name, max_cells=max_cells, seed=seed)


def corpus(folder: str | Path | None = None):
    """The shipped pathway corpus, or one built here.

    Parameters
    ----------
    folder
        A corpus folder built with ``cellang build corpus`` (e.g. the extended corpus, ``--extended``); None
        (default): the shipped corpus. Each folder is read once per process.

    Returns
    -------
    cellang.corpus.Corpus: ``.pathways`` (each with name, description, source, licence, genes, split),
    ``.split("train")``, ``.search(text)``, ``.manifest`` (sources, versions, licences), ``.to_gmt(pathways)``.

    Raises
    ------
    FileNotFoundError
        The folder holds no built corpus; the message names the build command.
    """
    from cellang.corpus import load_corpus

    return load_corpus() if folder is None else load_corpus(Path(folder))


def gene_sets(split: str | None = None) -> dict[str, list[str]]:
    """Corpus gene sets.

    Parameters
    ----------
    split
        "train" (what the pathway models learned from), "test" (held out), or None (all).

    Returns
    -------
    dict mapping each set's name to its genes (approved symbols).
    """
    from cellang.errors import CellangError

    if split not in (None, "train", "test"):
        raise CellangError(f"split {split!r} is not 'train', 'test' or None")
    pathways = corpus().pathways if split is None else corpus().split(split)
    return {p.name: list(p.genes) for p in pathways}


def read(source, *, max_cells: int | None = None, seed: int = 0) -> ad.AnnData:  # type: ignore[no-untyped-def]
    """Read your own cells, safely: nothing is ever unpickled.

    Parameters
    ----------
    source
        A path to an ``.h5ad`` file, a 10x ``.h5`` file or a 10x folder (matrix.mtx, features, barcodes), or the
        file's bytes.
    max_cells
        At most this many cells, sampled with ``seed`` (None: all).

    Returns
    -------
    anndata.AnnData as stored (genes as in the file: :func:`cellang.tl.embed` maps them to approved symbols).

    Raises
    ------
    cellang.CellangError
        A file that is not HDF5 (a pickle, text, an empty file), or one anndata cannot read, named in a sentence.
    """
    from cellang.cells.io import read_cells

    return read_cells(source, max_cells=max_cells, seed=seed)


def read_upload(data: bytes | BinaryIO, name: str, *, max_mb: float | None = None, max_cells: int | None = None,
                seed: int = 0):  # type: ignore[no-untyped-def]
    """Read and check an uploaded cell file without raising: what cannot be used is said, not thrown.

    Parameters
    ----------
    data
        The file's bytes, or a binary buffer (such as a Streamlit upload). Nothing is ever unpickled.
    name
        The file's name, as the messages call it.
    max_mb
        Refuse a file larger than this many MB (None: any size).
    max_cells
        Keep at most this many cells, sampled with ``seed`` (None: all); a note says so.
    seed
        Seeds the sampling.

    Returns
    -------
    cellang.cells.upload.UploadResult
        ``ok`` (the cells can be used), ``adata`` (the cells read, or None), ``messages()`` ((level, sentence)
        pairs: "error", "warning" or "note"), ``label_column()`` and ``label_table()`` (cells per label),
        ``cells_in_file``.
    """
    from cellang.cells.upload import inspect_upload

    return inspect_upload(data, name, max_mb=max_mb, max_cells=max_cells, seed=seed)
