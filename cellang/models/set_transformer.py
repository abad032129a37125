"""A masked-set transformer over gene sets: read some members of a set, score every gene as a member.

In:  tokens (B, L) long: a query token first, then the prompt's gene ids, padded with the pad id;
     optionally targets (B, n_genes) multi-hot of the held-out members to recover.
     optionally teacher (B, n_genes) non-negative weights over the non-prompt genes (a distillation target).
Out: logits (B, n_genes) and, with targets, a loss.

Genes have embeddings and no positions (a set has no order); the blocks attend both ways over the
prompt, padding masked out; the query token's final state, dotted with the (tied) gene embeddings,
scores every gene. Loss, as for the DAE: the mean of -log p(g) over the held-out genes g, prompt genes
masked to -inf before the softmax; one softmax per set, whatever its size, so an example costs one
vocabulary-sized product. With a teacher the loss adds the cross-entropy -sum_g teacher(g) log p(g)
(teacher rows summing to its weight; see completion/set_training.py's co-occurrence teacher).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cellang.models.layers import Block, init_weights


@dataclass
class SetTransformerConfig:
    n_genes: int
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 128
    max_prompt: int = 128  # prompt genes read (a longer prompt is subsampled by the caller)
    dropout: float = 0.1
    bias: bool = False

    def __post_init__(self) -> None:
        if min(self.n_genes, self.n_layer, self.n_head, self.n_embd, self.max_prompt) < 1:
            raise ValueError(f"sizes must be >= 1, got {self}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def pad_id(self) -> int:
        return self.n_genes

    @property
    def query_id(self) -> int:
        return self.n_genes + 1


class SetTransformer(nn.Module):
    def __init__(self, config: SetTransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.n_genes + 2, config.n_embd)
        self.blocks = nn.ModuleList([Block(config, causal=False) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.gene_bias = nn.Parameter(torch.zeros(config.n_genes))
        init_weights(self, config.n_layer)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens (B, L) with the query id at position 0; targets (B, n_genes) multi-hot or None; teacher
        (B, n_genes) non-negative weights, zero on the prompt's genes, or None."""
        config = self.config
        keep = (tokens != config.pad_id)[:, None, None, :]
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, keep)
        query = self.ln_f(x[:, 0])
        logits = query @ self.embed.weight[: config.n_genes].T + self.gene_bias
        if targets is None:
            return logits, None
        shown = torch.zeros(tokens.size(0), config.n_genes + 2, dtype=torch.bool, device=tokens.device)
        shown.scatter_(1, tokens, True)  # the pad and query ids land in the two extra columns
        shown = shown[:, : config.n_genes]
        log_probs = F.log_softmax(logits.float().masked_fill(shown, float("-inf")), dim=-1)
        wanted = (targets > 0) & ~shown
        counts = wanted.sum(-1)
        per_row = -torch.where(wanted, log_probs, torch.zeros_like(log_probs)).sum(-1) / counts.clamp(min=1)
        if teacher is not None:
            per_row = per_row - torch.where(shown, torch.zeros_like(log_probs), teacher * log_probs).sum(-1)
        rows = counts > 0
        loss = per_row[rows].mean() if bool(rows.any()) else per_row.sum() * 0.0
        return logits, loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict; `SetTransformer(SetTransformerConfig(**d))` rebuilds it."""
        return dataclasses.asdict(self.config)


def prompt_tokens(columns: Sequence[np.ndarray], config: SetTransformerConfig) -> torch.Tensor:
    """(B, 1 + longest prompt) token ids: the query id, then each prompt's gene ids, padded."""
    width = 1 + max((len(c) for c in columns), default=0)
    tokens = torch.full((len(columns), width), config.pad_id, dtype=torch.long)
    tokens[:, 0] = config.query_id
    for row, cols in enumerate(columns):
        tokens[row, 1 : 1 + len(cols)] = torch.from_numpy(np.asarray(cols, dtype=np.int64))
    return tokens
