"""The built cell atlas as the app, the trainers and the benchmarks see it.

``data/atlas`` holds one ``.h5ad`` per dataset and ``manifest.json`` (see :mod:`.build`).
:func:`load_atlas_dataset` reads one dataset (optionally a seeded sample of cells);
:func:`atlas_summary` counts cells by dataset, cell type and state from the ``obs`` tables only.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import anndata as ad
import h5py
import pandas as pd
from anndata.io import read_elem

from cellang.cells.io import read_cells
from cellang.paths import DATA_DIR

ATLAS_DIR = DATA_DIR / "atlas"
MANIFEST_NAME = "manifest.json"
BUILD_COMMAND = "cellang build atlas"


@lru_cache(maxsize=4)
def atlas_manifest(directory: Path = ATLAS_DIR) -> dict:
    """The atlas manifest; FileNotFoundError naming the build command when the atlas is missing."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"no cell atlas in {Path(directory).name}/: run `{BUILD_COMMAND}` to build it")
    return json.loads(path.read_text(encoding="utf-8"))


def atlas_datasets(directory: Path = ATLAS_DIR) -> list[str]:
    """Dataset names in build order."""
    return [entry["name"] for entry in atlas_manifest(directory)["datasets"]]


def _entry(name: str, directory: Path) -> dict:
    for entry in atlas_manifest(directory)["datasets"]:
        if entry["name"] == name:
            return entry
    raise KeyError(f"no dataset {name!r} in the cell atlas; it has {', '.join(atlas_datasets(directory))}")


def load_atlas_dataset(name: str, *, max_cells: int | None = None, seed: int = 0,
                       directory: Path = ATLAS_DIR) -> ad.AnnData:
    """One atlas dataset as AnnData (var: approved symbols; obs: standard columns + original labels)."""
    path = Path(directory) / _entry(name, directory)["file"]
    if not path.exists():
        raise FileNotFoundError(f"{path.name} is missing from the cell atlas: run `{BUILD_COMMAND}`")
    return read_cells(path, max_cells=max_cells, seed=seed)


@lru_cache(maxsize=16)
def atlas_obs(name: str, directory: Path = ATLAS_DIR) -> pd.DataFrame:
    """The ``obs`` table of one dataset, read without touching X."""
    path = Path(directory) / _entry(name, directory)["file"]
    with warnings.catch_warnings(), h5py.File(path, "r") as handle:
        warnings.simplefilter("ignore")
        return read_elem(handle["obs"])


def atlas_summary(directory: Path = ATLAS_DIR) -> pd.DataFrame:
    """Cells by dataset, cell type and state (one row per combination, in build order)."""
    frames = []
    for name in atlas_datasets(directory):
        obs = atlas_obs(name, directory)
        counts = (obs.groupby(["cell_type", "state"], observed=True).size()
                  .rename("cells").reset_index())
        counts.insert(0, "dataset", name)
        frames.append(counts)
    table = pd.concat(frames, ignore_index=True)
    for column in ("dataset", "cell_type", "state"):
        table[column] = table[column].astype(str)
    return table[["dataset", "cell_type", "state", "cells"]]


def dataset_table(name: str, directory: Path = ATLAS_DIR) -> pd.DataFrame:
    """Cells of one dataset by cell type (rows) and state (columns), with totals."""
    obs = atlas_obs(name, directory)
    table = pd.crosstab(obs["cell_type"].astype(str), obs["state"].astype(str), margins=True, margins_name="all")
    table.index.name, table.columns.name = "cell type", None
    return table.reset_index()


def atlas_table(directory: Path = ATLAS_DIR) -> pd.DataFrame:
    """One row per dataset: cells, genes, value kind, labels, licence, source packages."""
    rows = []
    for entry in atlas_manifest(directory)["datasets"]:
        packages = sorted({f"{s['package']} {s['version']}" for s in entry["sources"]})
        rows.append({
            "dataset": entry["name"], "title": entry["title"], "cells": entry["cells"], "genes": entry["genes"],
            "value kind": entry["value_kind"], "cell types": len(entry["cell_types"]),
            "labels": entry["labels"], "licence": entry["licence"], "source": ", ".join(packages),
            "MB": round(entry["bytes"] / 1e6, 1),
        })
    return pd.DataFrame(rows)
