"""Scale fixtures: large ``.h5ad`` files made by resampling real atlas cells, to measure loaders -- never biology.

Each fixture cell copies a randomly chosen real cell's depth and draws its counts from a multinomial over that
cell's expressed genes (so the sparsity and library sizes of real cells are kept, while no two cells are the
same). Every cell is labelled ``dataset = "scale fixture (resampled <sources>)"`` and ``cell_type = "scale
fixture"``. The file is written chunk by chunk straight into HDF5 (anndata's CSR encoding), so a fixture
larger than memory can be built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import write_elem

from cellang.cells.io import h5ad_frame

FIXTURE_LABEL = "scale fixture"
WRITE_CHUNK = 4096


def _union_counts(sources: Sequence[ad.AnnData]) -> tuple[sp.csr_matrix, list[str]]:
    genes = sorted({str(g) for a in sources for g in a.var_names})
    index = {g: i for i, g in enumerate(genes)}
    blocks = []
    for adata in sources:
        if set(adata.obs.get("value_kind", pd.Series(["counts"])).astype(str)) != {"counts"}:
            raise ValueError(f"scale fixtures resample raw counts; {adata.obs['dataset'].iloc[0]} is not counts")
        columns = np.array([index[str(g)] for g in adata.var_names])
        matrix = sp.csr_matrix(adata.X)
        blocks.append(sp.csr_matrix((matrix.data, columns[matrix.indices], matrix.indptr),
                                    shape=(matrix.shape[0], len(genes))))
    return sp.csr_matrix(sp.vstack(blocks)), genes


def resampled_rows(template: sp.csr_matrix, n_cells: int, rng: np.random.Generator) -> sp.csr_matrix:
    """``n_cells`` cells, each a multinomial redraw of a random template cell (same depth, same genes possible)."""
    picks = rng.integers(0, template.shape[0], size=n_cells)
    data, indices, indptr = [], [], [0]
    for row in picks:
        start, end = template.indptr[row], template.indptr[row + 1]
        values = template.data[start:end].astype(np.float64)
        counts = rng.multinomial(int(round(values.sum())), values / values.sum()) if end > start else np.zeros(0)
        kept = counts > 0
        data.append(counts[kept].astype(np.float32))
        indices.append(template.indices[start:end][kept].astype(np.int32))
        indptr.append(indptr[-1] + int(kept.sum()))
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr, dtype=np.int64)),
                         shape=(n_cells, template.shape[1]))


def write_scale_fixture(path: str | Path, n_cells: int, sources: Sequence[ad.AnnData], seed: int = 0) -> Path:
    """Write an ``n_cells`` scale fixture resampled from ``sources`` (raw-count AnnData) to ``path``."""
    path = Path(path)
    template, genes = _union_counts(sources)
    names = "+".join(sorted({str(a.obs["dataset"].iloc[0]) for a in sources}))
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        handle.attrs["encoding-type"], handle.attrs["encoding-version"] = "anndata", "0.1.0"
        group = handle.create_group("X")
        group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                            "shape": np.array([n_cells, len(genes)])})
        data = group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 16,))
        indices = group.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 16,))
        indptr = [np.zeros(1, dtype=np.int64)]
        for start in range(0, n_cells, WRITE_CHUNK):
            block = resampled_rows(template, min(WRITE_CHUNK, n_cells - start), rng)
            offset = data.shape[0]
            data.resize((offset + block.nnz,))
            indices.resize((offset + block.nnz,))
            data[offset:], indices[offset:] = block.data, block.indices
            indptr.append(block.indptr[1:] + offset)
        group.create_dataset("indptr", data=np.concatenate(indptr))
        obs = pd.DataFrame({"dataset": pd.Categorical([f"{FIXTURE_LABEL} (resampled {names})"] * n_cells),
                            "cell_type": pd.Categorical([FIXTURE_LABEL] * n_cells),
                            "value_kind": pd.Categorical(["counts"] * n_cells)},
                           index=pd.Index([f"fixture{i}" for i in range(n_cells)], dtype=object))
        write_elem(handle, "obs", h5ad_frame(obs))
        write_elem(handle, "var", h5ad_frame(pd.DataFrame(index=pd.Index(genes, dtype=object))))
    return path
