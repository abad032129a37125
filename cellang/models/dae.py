"""A denoising autoencoder over gene sets (after GSFM, the gene-set foundation model).

In:  a multi-hot (B, V) float tensor of the genes of each set that the model is shown, and
     optionally a (B, V) multi-hot of the hidden genes it should recover.
Out: logits (B, V) over the gene universe and, with targets, a loss.

Architecture: Linear(V, hidden) -> GELU -> dropout -> Linear(hidden, latent) -> GELU
-> Linear(latent, hidden) -> GELU -> Linear(hidden, V).

Loss: per row, the cross-entropy between softmax(logits) and the uniform distribution over that
row's target genes, i.e. the mean of -log p(g) over hidden genes g. Input genes are masked to -inf
before the softmax: they are never predicted, so the model gains nothing from scoring them.
Rows without targets are ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DAEConfig:
    n_genes: int
    # The first and last layers are genes x hidden each: hidden=192 keeps ~18k genes under 30 MB.
    hidden: int = 192
    latent: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.n_genes, self.hidden, self.latent) < 1:
            raise ValueError(f"n_genes, hidden and latent must be >= 1, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SetDAE(nn.Module):
    """Multi-hot gene set -> logits over the gene universe."""

    def __init__(self, config: DAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(
            nn.Linear(config.n_genes, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.latent),
            nn.GELU(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.latent, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.n_genes),
        )

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """inputs, targets: (B, n_genes) multi-hot floats. Returns (logits (B, n_genes), loss or None)."""
        if inputs.size(-1) != self.config.n_genes:
            raise ValueError(f"inputs have {inputs.size(-1)} genes, the model {self.config.n_genes}")
        logits = self.decoder(self.encoder(inputs))
        if targets is None:
            return logits, None
        masked = logits.float().masked_fill(inputs > 0, float("-inf"))
        log_probs = F.log_softmax(masked, dim=-1)
        wanted = (targets > 0) & (inputs <= 0)  # a gene both shown and hidden cannot be a target
        counts = wanted.sum(-1)
        # where() rather than a product: -inf * 0 would be NaN at the masked input genes.
        per_row = -torch.where(wanted, log_probs, torch.zeros_like(log_probs)).sum(-1) / counts.clamp(min=1)
        valid = counts > 0
        loss = per_row[valid].mean() if bool(valid.any()) else per_row.sum() * 0.0
        return logits, loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict; `SetDAE(DAEConfig(**d))` rebuilds the architecture."""
        return dataclasses.asdict(self.config)
