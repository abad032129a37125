"""Synthetic cells with planted structure for the cell-encoder tests.

`n_types` cell types over 30 genes G00..G29: type t expresses its own module of genes strongly
(Poisson mean 30) and every other gene weakly (mean 1), so a model that learns anything learns the
modules, and the cell type is recoverable from the embedding.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

GENES = [f"G{i:02d}" for i in range(30)]


def synthetic_cells(n_cells: int = 120, n_types: int = 3, seed: int = 0, value_kind: str = "counts",
                    dataset: str = "synthetic") -> ad.AnnData:
    """Counts (or log1p of 1e4-normalised counts with value_kind="log1p") for n_cells cells."""
    rng = np.random.default_rng(seed)
    types = np.arange(n_cells) % n_types
    module = len(GENES) // n_types
    means = np.ones((n_cells, len(GENES)))
    for t in range(n_types):
        means[types == t, t * module:(t + 1) * module] = 30.0
    counts = rng.poisson(means).astype(np.float32)
    values = counts
    if value_kind == "log1p":
        values = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    obs = pd.DataFrame({"dataset": dataset, "cell_type": [f"type{t}" for t in types], "batch": dataset,
                        "value_kind": value_kind}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(X=sp.csr_matrix(values), obs=obs, var=pd.DataFrame(index=GENES))
