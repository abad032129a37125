"""Embed cells with a trained cell encoder: AnnData in, the same AnnData out with embeddings in obsm.

    from cellang.embedding.embed import embed_cells
    adata = embed_cells(adata, model="cells-rank")   # var_names: approved gene symbols
    adata.obsm["X_cells_rank_cls"], adata.obsm["X_cells_rank_mean"]
    adata.uns["cellang_embedding"]["cells-rank"]     # genes used, fraction of model genes present

Values may be counts, log1p, TPM or FPKM (``obs["value_kind"]`` when present, else detected; a
``counts`` layer is preferred): see :mod:`cellang.tokenizers.cells`. Model genes missing from
the input are treated as not expressed and reported, never guessed. Call
``cellang.cells.harmonise_var`` first when var_names are not approved symbols.

Deterministic: eval mode, no random gene choice, and a key-padding mask so a cell's embedding does
not depend on which cells share its batch (batch 1 and 64 agree to float rounding).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import torch

from cellang.device import pick_device
from cellang.embedding.loading import load_cell_encoder
from cellang.tokenizers.cells import pad_rows

UNS_KEY = "cellang_embedding"


def obsm_keys(model: str) -> tuple[str, str]:
    """(CLS key, mean key) in obsm, e.g. ("X_cells_binned_cls", "X_cells_binned_mean")."""
    stem = f"X_{model.replace('-', '_')}"
    return f"{stem}_cls", f"{stem}_mean"


def embed_cells(adata: ad.AnnData, model: str = "cells-binned", *, batch_size: int = 64,
                device: str | None = None, checkpoint_dir: str | Path | None = None) -> ad.AnnData:
    """Write the CLS and mean-pooled embeddings of every cell of `adata` into obsm; returns `adata`.

    obsm[X_<model>_cls], obsm[X_<model>_mean]: float32 (cells x n_embd).
    uns["cellang_embedding"][model]: model, checkpoint, genes_used (model genes present in the input),
    n_genes_used, n_model_genes, fraction_model_genes_present, value_kind, cells_without_genes.
    device: None/"auto", "cpu" or "cuda" (see cellang.device).
    Raises CellValuesError (cellang.tokenizers.cells; a ValueError) when the values cannot be
    tokenised (no X, not numbers, NaN, infinite, negative, mixed value kinds), before the encoder runs;
    ValueError for batch_size < 1 or an unknown model; FileNotFoundError for a missing checkpoint.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoder, tokenizer, _ = load_cell_encoder(model, checkpoint_dir)
    cells = tokenizer.tokenize(adata)
    target = pick_device(device)
    encoder = encoder.to(target)
    n_embd = encoder.config.n_embd
    cls_out = np.zeros((adata.n_obs, n_embd), dtype=np.float32)
    mean_out = np.zeros((adata.n_obs, n_embd), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, adata.n_obs, batch_size):
            rows = range(start, min(start + batch_size, adata.n_obs))
            tokens = pad_rows([cells.genes[i] for i in rows]).to(target)
            values = None if cells.values is None else pad_rows([cells.values[i] for i in rows]).to(target)
            cls, mean = encoder.embed(tokens, values)  # fp32 even on CUDA: embeddings must reproduce
            cls_out[start:start + len(rows)] = cls.float().cpu().numpy()
            mean_out[start:start + len(rows)] = mean.float().cpu().numpy()
    encoder.to("cpu")  # the cached model stays on the CPU for the next caller
    cls_key, mean_key = obsm_keys(model)
    adata.obsm[cls_key] = cls_out
    adata.obsm[mean_key] = mean_out
    report = dict(adata.uns.get(UNS_KEY, {}))
    report[model] = {
        "model": model,
        "checkpoint": Path(checkpoint_dir).name if checkpoint_dir is not None else model,
        "genes_used": np.array(cells.genes_present, dtype=object),
        "n_genes_used": len(cells.genes_present),
        "n_model_genes": len(tokenizer.vocabulary.genes),
        "fraction_model_genes_present": float(cells.fraction_present),
        "value_kind": cells.value_kind,
        "cells_without_genes": int(sum(len(g) == 1 for g in cells.genes)),
    }
    adata.uns[UNS_KEY] = report
    return adata
