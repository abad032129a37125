"""What the Cell embeddings page offers for download: one row per cell (CSV) and the AnnData (.h5ad).

In:  an :class:`~.explorer.ExplorerResult` and the view (cls, mean, pca).
Out: bytes to download, and a safe file name stem. Both downloads name the encoder that made the result: the
     CSV in its ``model`` and ``checkpoint`` columns, the .h5ad in ``uns["cellang_embedding"][<model>]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from cellang.cells.io import write_h5ad
from cellang.embedding import embed
from cellang.app.explorer import ExplorerResult

MODEL_COLUMNS = ("model", "checkpoint")  # the CSV's columns naming the encoder (obs columns of these names are
# written as obs_<name>)


def embedding_table(result: ExplorerResult, view: str) -> pd.DataFrame:
    """One row per cell: cell id, the model and its checkpoint folder (the PCA view too: its table comes with
    the model's result), every obs column, the view's dimensions and its UMAP coordinates."""
    obs = result.adata.obs
    folder = result.cell_model.folder if result.cell_model is not None else ""
    table = pd.DataFrame({"cell_id": np.asarray(obs.index.astype(str), dtype=object), "model": result.model,
                          "checkpoint": folder})
    for column in obs.columns:
        name = f"obs_{column}" if str(column) in ("cell_id", *MODEL_COLUMNS) else str(column)
        table[name] = obs[column].to_numpy()
    matrix = result.embedding(view)
    stem = result.obsm_key(view).removeprefix("X_")
    dims = pd.DataFrame(matrix, columns=[f"{stem}_{i}" for i in range(matrix.shape[1])])
    coords = pd.DataFrame(result.umap[view], columns=["umap_1", "umap_2"])
    return pd.concat([table, dims, coords], axis=1)


def embedding_csv(result: ExplorerResult, view: str) -> bytes:
    """:func:`embedding_table` as UTF-8 CSV."""
    return embedding_table(result, view).to_csv(index=False, float_format="%.6g").encode("utf-8")


def embedding_h5ad(result: ExplorerResult) -> bytes:
    """The AnnData (X, obs, var as given) with the embeddings and UMAPs in ``obsm`` and the encoder's report
    (name, checkpoint folder, description) in ``uns["cellang_embedding"]``, as .h5ad bytes."""
    adata = result.adata
    with tempfile.TemporaryDirectory(prefix="cellang-embedding-") as folder:
        try:
            path = write_h5ad(adata, Path(folder) / "embedding.h5ad")
        except Exception:  # noqa: BLE001 - an upload's uns may hold what .h5ad cannot store: leave it out
            bare = ad.AnnData(X=adata.X, obs=adata.obs, var=adata.var, obsm=dict(adata.obsm),
                              layers=dict(adata.layers), uns={embed.UNS_KEY: _model_only(adata)})
            path = write_h5ad(bare, Path(folder) / "embedding.h5ad")
        return path.read_bytes()


def _model_only(adata: ad.AnnData) -> dict:
    """The embedding report without the gene lists: what names the encoder, in types .h5ad can always store."""
    plain = (str, int, float, bool)
    return {str(name): {str(k): v for k, v in entry.items() if isinstance(v, plain)}
            for name, entry in dict(adata.uns.get(embed.UNS_KEY, {})).items() if isinstance(entry, dict)}


def file_stem(dataset: str, model: str, view: str | None = None) -> str:
    """A safe file name stem: letters, digits, '-' and '_' only."""
    text = "_".join(p for p in (dataset, model, view) if p)
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:120] or "cells"
