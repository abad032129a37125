"""A transformer that reads what retrieval found for a prompt and scores each candidate gene.

In:  features (B, C, F) float: per prompt, C candidate genes described by F retrieval features
     (see completion/neighbours.py); keep (B, C) bool, False for padding; optionally targets (B, C)
     multi-hot of the candidates that are held-out members.
Out: scores (B, C) (padding -inf) and, with targets, a loss.

Each candidate's standardised features pass through a small MLP; the blocks let candidates attend to
one another (a gene that fits the other strong candidates can rise); a linear read-out of the raw
standardised features is added to the transformer's score, so training starts from a linear ranker.
Loss: listwise, the mean of -log softmax(scores) over the held-out candidates, as the set models do
over the vocabulary; prompts whose candidates hold no held-out gene are left out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cellang.models.layers import Block, init_weights


@dataclass
class RerankerConfig:
    n_features: int
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1
    bias: bool = False
    # per-feature mean and standard deviation of the training examples, applied inside the model
    feature_mean: list[float] = field(default_factory=list)
    feature_std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if min(self.n_features, self.n_layer, self.n_head, self.n_embd) < 1:
            raise ValueError(f"sizes must be >= 1, got {self}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("feature_mean", "feature_std"):
            values = getattr(self, name)
            if values and len(values) != self.n_features:
                raise ValueError(f"{name} has {len(values)} values for {self.n_features} features")


class CandidateReranker(nn.Module):
    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        mean = torch.tensor(config.feature_mean or [0.0] * config.n_features)
        std = torch.tensor(config.feature_std or [1.0] * config.n_features).clamp(min=1e-6)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.embed = nn.Sequential(nn.Linear(config.n_features, config.n_embd), nn.GELU(),
                                   nn.Linear(config.n_embd, config.n_embd))
        self.blocks = nn.ModuleList([Block(config, causal=False) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, 1)
        self.linear = nn.Linear(config.n_features, 1)
        init_weights(self, config.n_layer)

    def forward(self, features: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = (features - self.mean) / self.std
        h = self.embed(x)
        attend = keep[:, None, None, :]
        for block in self.blocks:
            h = block(h, attend)
        scores = (self.head(self.ln_f(h)) + self.linear(x)).squeeze(-1).float()
        scores = scores.masked_fill(~keep, float("-inf"))
        if targets is None:
            return scores, None
        log_probs = F.log_softmax(scores, dim=-1)
        wanted = (targets > 0) & keep
        counts = wanted.sum(-1)
        per_row = -torch.where(wanted, log_probs, torch.zeros_like(log_probs)).sum(-1) / counts.clamp(min=1)
        rows = counts > 0
        loss = per_row[rows].mean() if bool(rows.any()) else per_row.sum() * 0.0
        return scores, loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)
