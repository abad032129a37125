"""The cell encoders the cell pages (Cell embeddings, In-silico deletion) offer: the shipped ones and the user's, as
the library lists them (:mod:`cellang.embedding.loading`, also behind :func:`cellang.tl.models`), with what the pages
say about them and the stamp that tells a page its cached result is stale."""

from __future__ import annotations

from pathlib import Path

from cellang import checkpoints
from cellang.embedding import loading


def scan_cell_models() -> loading.CellModelScan:
    """Every usable cell encoder (``.models``, shipped first, each with ``name``, ``label``, ``path``) and the
    folders skipped with why."""
    return loading.scan_cell_models()


def find_cell_model(name: str) -> loading.CellModel | None:
    """The listed encoder called ``name``, or None."""
    return loading.find_cell_model(name)


def models_caption(scan: loading.CellModelScan) -> str:
    """Where the pages look for the user's models and how to add one; names the folders skipped and why."""
    return loading.models_caption(scan)


def no_models_message(scan: loading.CellModelScan) -> str:
    """Why ``scan`` offers no encoder, and how to add one."""
    return loading.no_models_message(scan)


def checkpoint_stamp(folder: str | Path) -> str:
    """Changes whenever an encoder's weights are replaced: part of a page's cache key ("missing" without them)."""
    return checkpoints.stamp(folder)
