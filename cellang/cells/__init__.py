"""Single-cell data: read files into AnnData, validate them, harmonise genes to approved symbols.

- :func:`read_cells`: ``.h5ad`` (backed, seeded subsampling to ``max_cells``), 10x ``.h5``, 10x mtx folders;
- :func:`validate_cells`: errors, warnings and notes as plain sentences (:class:`CellValidation`);
- :func:`harmonise_var`: ``var`` re-indexed by approved symbol (:class:`VarHarmonisation` says how);
- :func:`inspect_upload`: an uploaded file checked (size limit, read, validate), never raising;
- :func:`load_atlas_dataset`, :func:`atlas_summary`: the embedded atlas (:mod:`cellang.atlas`).
"""

from __future__ import annotations

from typing import Any

from cellang.cells.harmonise import VarHarmonisation, harmonise_var
from cellang.cells.io import CellFileError, is_hdf5, read_cells, sample_indices, write_h5ad
from cellang.cells.upload import UploadResult, inspect_upload
from cellang.cells.validate import CellValidation, validate_cells
from cellang.preprocess import ValueKind, detect_value_kind

__all__ = [
    "CellFileError", "CellValidation", "UploadResult", "ValueKind", "VarHarmonisation", "atlas_summary",
    "detect_value_kind", "harmonise_var", "inspect_upload", "is_hdf5", "load_atlas_dataset", "read_cells",
    "sample_indices", "validate_cells", "write_h5ad",
]


def __getattr__(name: str) -> Any:
    # The atlas reads through this package, so it is imported on first use, not at import time.
    if name in ("load_atlas_dataset", "atlas_summary"):
        from cellang import atlas

        return getattr(atlas, name)
    raise AttributeError(f"module 'cellang.cells' has no attribute {name!r}")
