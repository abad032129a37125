"""Models with known answers for the in-silico perturbation tests, and a tiny cells-rank checkpoint.

* :func:`tiny_encoder`: a randomly initialised rank-mode CellEncoder (batched == naive checks).
* :func:`planted_encoder`: a real CellEncoder in which every gene token has the same embedding except
  gene ``planted``, and positions carry nothing (wpe = 0): every cell is then "many copies of one gene
  plus maybe the planted one", so deleting the planted gene must move the CLS state most, and deleting
  any other gene barely moves it.
* :class:`BagModel`: a hand-written "encoder": embedding = sum of one fixed vector per gene (position
  weighted), so the direction each deletion moves a cell is known exactly (goal-state sign tests).
* :func:`save_tiny_checkpoint`: a random cells-rank checkpoint fitted on the given cells, so the page
  runs before the real encoder is trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import torch
import torch.nn as nn

from cellang import checkpoints
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.tokenizers.cells import CLS_ID, N_SPECIAL, PAD_ID
from cellang.tokenizers.rank import RankTokenizer


def tiny_encoder(n_genes: int = 40, max_len: int = 16, seed: int = 0, n_layer: int = 2) -> CellEncoder:
    torch.manual_seed(seed)
    config = EncoderConfig(n_genes=n_genes, n_layer=n_layer, n_head=2, n_embd=16, max_len=max_len, mode="rank", n_bins=0)
    return CellEncoder(config).eval()


def planted_encoder(n_genes: int = 40, planted: int = 7, max_len: int = 16, seed: int = 0) -> CellEncoder:
    model = tiny_encoder(n_genes, max_len, seed, n_layer=1)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed + 1)
        common = torch.randn(model.config.n_embd, generator=generator)
        model.transformer.wpe.weight.zero_()
        model.transformer.wte.weight[N_SPECIAL:] = common
        model.transformer.wte.weight[planted] = -3.0 * common + torch.randn(model.config.n_embd, generator=generator)
    return model


@dataclass
class BagConfig:
    n_genes: int
    n_embd: int
    max_len: int
    n_head: int = 1
    mode: str = "rank"


class BagModel(nn.Module):
    """embed(tokens) = (sum_j vector[token_j] * 0.9**j over genes, the plain mean of those vectors)."""

    def __init__(self, vectors: torch.Tensor, max_len: int = 16) -> None:
        super().__init__()
        self.config = BagConfig(n_genes=vectors.shape[0], n_embd=vectors.shape[1], max_len=max_len)
        self.vectors = nn.Parameter(vectors.clone(), requires_grad=False)

    @torch.no_grad()
    def embed(self, tokens: torch.Tensor, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        genes = (tokens != PAD_ID) & (tokens != CLS_ID)
        weights = genes.float() * 0.9 ** torch.arange(tokens.shape[1], device=tokens.device).float()
        vectors = self.vectors[tokens]
        cls = (vectors * weights.unsqueeze(-1)).sum(1)
        mean = (vectors * genes.unsqueeze(-1).float()).sum(1) / genes.sum(1, keepdim=True).clamp(min=1)
        return cls, mean


def cells(*rows: list[int]) -> list[np.ndarray]:
    """Token arrays with <cls> in front."""
    return [np.array([CLS_ID, *row], dtype=np.int64) for row in rows]


def save_tiny_checkpoint(directory: Path, adatas: list[ad.AnnData], max_len: int = 32, seed: int = 0,
                         record: dict | None = None) -> Path:
    """A random cells-rank checkpoint (1 layer, 16 dims) with a rank tokeniser fitted on `adatas`; `record`
    replaces the default training record."""
    tokenizer = RankTokenizer.fit(adatas, max_len=max_len, min_cells=3)
    model = tiny_encoder(len(tokenizer.vocabulary), max_len, seed, n_layer=1)
    return checkpoints.save_checkpoint(directory, model, config=asdict(model.config),
                                       vocabulary_json=tokenizer.vocabulary.to_json(),
                                       record=record or {"model": "cells-rank", "note": "random test stand-in"})


def genes_in_sampled_myotubes(tokenizer: RankTokenizer, n_cells: int, seed: int = 0, per_cell: int = 2) -> list[str]:
    """The top `per_cell` genes of each HSMM myotube the workflow samples for max_cells=n_cells, seed=seed
    (so a small gene list is certainly in the rank encodings of the cells perturbed)."""
    from cellang.cells import load_atlas_dataset
    from cellang.cells.io import sample_indices, subset_cells

    hsmm = load_atlas_dataset("hsmm")
    start = np.flatnonzero(hsmm.obs["state"].astype(str).to_numpy() == "myotube")
    chosen = sample_indices(start.size, n_cells, seed)
    start = start if chosen is None else start[chosen]
    tokens = tokenizer.tokenize(subset_cells(hsmm, start)).genes
    return list(dict.fromkeys(tokenizer.vocabulary.token(int(i)) for t in tokens for i in t[1:per_cell + 1]))
