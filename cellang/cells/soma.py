"""Write cells into a SOMA experiment shaped like the CELLxGENE Census, chunk by chunk.

In:  an :class:`~cellang.cells.stream.H5adCells` (one or more ``.h5ad`` files) and a new folder.
Out: a TileDB-SOMA experiment (obs ``dataset_id`` / ``cell_type``, ``ms/RNA`` with var ``feature_name`` and X
     ``raw``) that :class:`~cellang.cells.stream.SomaCells` and ``tiledbsoma_ml`` read like the Census.

TileDB-SOMA's own ``tiledbsoma.io.from_h5ad`` fails under pandas 3.1 here, so the arrays are written with its
low-level API, one chunk at a time (memory holds one chunk). Training does not need this step (it streams the
``.h5ad`` directly); it exists to measure ``tiledbsoma_ml`` on the same cells, and for users who want SOMA.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from cellang.cells.io import CellFileError
from cellang.cells.stream import H5adCells, iterate_chunks

BYTES_PER_VALUE = 16  # two int64 coordinates + float32 value, before TileDB's compression (a safe upper bound)


def _stored_values(source: H5adCells) -> int:
    return sum(int(f.indptr[-1]) if f.indptr is not None else f.n_cells * len(f.var_names) for f in source.files)


def check_disk(source: H5adCells, folder: Path) -> int:
    """Bytes the experiment may take; CellFileError when the disk under ``folder`` has less free."""
    need = _stored_values(source) * BYTES_PER_VALUE
    existing = folder if folder.exists() else next(p for p in folder.parents if p.exists())
    free = shutil.disk_usage(existing).free
    if need > free:
        raise CellFileError(f"the SOMA experiment for {source.n_cells:,} cells may need up to {need / 1e9:.1f} GB, "
                            f"and only {free / 1e9:.1f} GB are free under {existing}; free space or stream the "
                            ".h5ad files directly (cellang train --data), which needs no copy")
    return need


def write_soma(source: H5adCells, uri: str | Path) -> str:
    """Write every cell of ``source`` to a new SOMA experiment at ``uri`` (refused if it exists)."""
    import pyarrow as pa
    import tiledbsoma as soma

    folder = Path(uri)
    if folder.exists():
        raise CellFileError(f"{folder} already exists; a SOMA experiment is written to a new folder")
    check_disk(source, folder)
    genes = sorted({g for f in source.files for g in f.genes})
    column = {g: i for i, g in enumerate(genes)}
    text = pa.large_string()
    with soma.Experiment.create(str(folder)) as experiment:
        obs = experiment.add_new_dataframe("obs", schema=pa.schema([("dataset_id", text), ("cell_type", text)]),
                                           domain=[[0, source.n_cells - 1]])
        rna = experiment.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
        var = rna.add_new_dataframe("var", schema=pa.schema([("feature_name", text)]), domain=[[0, len(genes) - 1]])
        var.write(pa.table({"soma_joinid": pa.array(np.arange(len(genes)), pa.int64()),
                            "feature_name": pa.array(genes, text)}))
        raw = rna.add_new_collection("X").add_new_sparse_ndarray("raw", type=pa.float32(),
                                                                 shape=(source.n_cells, len(genes)))
        first = 0
        for chunk in iterate_chunks(source):
            joinids = np.arange(first, first + chunk.n_obs, dtype=np.int64)
            labels = chunk.obs["cell_type"].astype(str) if "cell_type" in chunk.obs else ["unknown"] * chunk.n_obs
            obs.write(pa.table({"soma_joinid": pa.array(joinids),
                                "dataset_id": pa.array(chunk.obs["dataset"].astype(str).tolist(), text),
                                "cell_type": pa.array(list(labels), text)}))
            matrix = (chunk.layers["counts"] if "counts" in chunk.layers else chunk.X).tocoo()
            columns = np.array([column[g] for g in chunk.var_names], dtype=np.int64)
            raw.write(pa.table({"soma_dim_0": pa.array(joinids[matrix.row]),
                                "soma_dim_1": pa.array(columns[matrix.col]),
                                "soma_data": pa.array(matrix.data.astype(np.float32))}))
            first += chunk.n_obs
    return str(folder)
