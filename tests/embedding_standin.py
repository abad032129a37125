"""A stand-in for ``cellang.embedding.embed`` in tests: fast, deterministic, model-free embeddings.

``install(monkeypatch)`` swaps it in for ``embed.embed_cells`` and marks both encoders' checkpoints as present,
so the explorer and the page run without trained encoders (a user model's folder is listed, never read).
CLS: a fixed random projection of the log-normalised expression; mean: another one. Genes are projected by a seed derived from their name,
so the same gene always lands on the same direction.
"""

from __future__ import annotations

import zlib

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

CELL_MODELS = ("cells-binned", "cells-rank")
DIMS = 16


def _directions(genes: list[str], offset: int) -> np.ndarray:
    return np.stack([np.random.default_rng(zlib.crc32(f"{gene}:{offset}".encode())).normal(size=DIMS)
                     for gene in genes]).astype(np.float32)


def embed_cells(adata: ad.AnnData, model: str = "cells-binned", checkpoint_dir: object = None) -> ad.AnnData:
    """Like embed.embed_cells: any model name (a user model's too); the checkpoint folder is not read."""
    matrix = sp.csr_matrix(adata.X, dtype=np.float32)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    matrix = sp.csr_matrix(sp.diags(np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)) @ matrix)
    matrix.data = np.log1p(matrix.data)
    genes = [str(g) for g in adata.var_names]
    stem = model.replace("-", "_")
    offset = CELL_MODELS.index(model) * 2 if model in CELL_MODELS else 4 + zlib.crc32(model.encode()) % 100 * 2
    adata.obsm[f"X_{stem}_cls"] = np.asarray(matrix @ _directions(genes, offset))
    adata.obsm[f"X_{stem}_mean"] = np.asarray(matrix @ _directions(genes, offset + 1)) / max(1, len(genes))
    report = dict(adata.uns.get("cellang_embedding", {}))
    report[model] = {"model": model, "n_genes_used": len(genes), "n_model_genes": 2 * len(genes),
                     "fraction_model_genes_present": 0.5, "cells_without_genes": int((totals == 0).sum())}
    adata.uns["cellang_embedding"] = report
    return adata


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cellang import checkpoints
    from cellang.embedding import embed

    monkeypatch.setattr(embed, "embed_cells", embed_cells)
    monkeypatch.setattr(checkpoints, "why_missing", lambda name, directory=None: None)
    monkeypatch.setattr(checkpoints, "stamp", lambda directory: f"stand-in:{directory}")
