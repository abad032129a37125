"""An uploaded cell file: size limit, read (never unpickled), validate, summarise; never raises.

The result lives in the caller's session only; nothing is written to disk or into the shipped atlas. The limits
are the caller's (the app's are in :mod:`cellang.app.uploads`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import anndata as ad
import pandas as pd

from cellang.cells.io import CellFileError, read_cells, sample_indices, subset_cells
from cellang.cells.labels import LABEL_COLUMNS
from cellang.cells.validate import CellValidation, validate_cells
from cellang.genes import GeneResolver

@dataclass
class UploadResult:
    name: str
    size_bytes: int
    adata: ad.AnnData | None = None
    validation: CellValidation | None = None
    error: str | None = None  # the file could not be read at all
    cells_in_file: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.validation is not None and self.validation.ok

    def messages(self) -> list[tuple[str, str]]:
        """(level, sentence) pairs for the page: error, warning or note."""
        if self.error is not None:
            return [("error", self.error)]
        out = self.validation.messages() if self.validation else []
        if self.adata is not None and self.cells_in_file > self.adata.n_obs:
            out.append(("note", f"The file holds {self.cells_in_file:,} cells; a random sample of "
                                f"{self.adata.n_obs:,} (seed 0) is kept for this session."))
        return out

    def label_column(self) -> str | None:
        if self.adata is None:
            return None
        columns = {c.lower(): c for c in self.adata.obs.columns}
        return next((columns[c] for c in LABEL_COLUMNS if c in columns), None)

    def label_table(self) -> pd.DataFrame:
        """Cells per label (the first known label column), largest first; empty when there is none."""
        column = self.label_column()
        if column is None:
            return pd.DataFrame(columns=["label", "cells"])
        counts = self.adata.obs[column].astype(str).value_counts()
        return pd.DataFrame({"label": counts.index.astype(str), "cells": counts.to_numpy()})


def _size(data: bytes | BinaryIO) -> int:
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    position = data.tell()
    data.seek(0, io.SEEK_END)
    size = data.tell()
    data.seek(position)
    return size


def inspect_upload(data: bytes | BinaryIO, name: str, *, max_mb: float | None = None,
                   max_cells: int | None = None, seed: int = 0,
                   resolver: GeneResolver | None = None) -> UploadResult:
    """Check the size (at most ``max_mb``; None: any), read the file, subsample to ``max_cells`` (None: keep
    every cell) and validate it."""
    size = _size(data)
    result = UploadResult(name=name, size_bytes=size)
    if max_mb is not None and size > max_mb * 1024 * 1024:
        result.error = (f"{name} is {size / 1024 / 1024:,.0f} MB; uploads are limited to {max_mb:,.0f} MB. "
                        "Subsample the cells (for example scanpy.pp.sample) or keep fewer genes, then upload "
                        "again; or run the app on your own machine and read the file with read_cells().")
        return result
    if size == 0:
        result.error = f"{name} is empty (0 bytes)."
        return result
    buffer = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    if not hasattr(buffer, "name"):
        buffer.name = name  # type: ignore[attr-defined]
    try:
        adata = read_cells(buffer)
    except CellFileError as error:
        result.error = str(error)
        return result
    result.cells_in_file = adata.n_obs
    result.adata = subset_cells(adata, sample_indices(adata.n_obs, max_cells, seed))
    result.validation = validate_cells(result.adata, resolver)
    return result
