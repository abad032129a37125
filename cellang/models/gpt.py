"""A small GPT decoder (after nanoGPT's model.py) for token sequences such as pathways.

In:  token ids (B, T) with T <= block_size, and optionally training targets.
Out: logits and, with targets, a loss. Two objectives (``GPTConfig.objective``):

* ``next_token``: targets (B, T) are next-token ids; mean cross-entropy over non-pad targets.
* ``set``: a pathway is a set fed in a random order. Targets (B, S) hold the whole set in the order
  it is fed (``idx`` = <bos> + its first T-1 members); ``positions`` (B, K) name the input positions
  scored (-1 = none). At position t the model has seen t members, and its target is the uniform
  distribution over all members not seen yet, including those beyond the window. This is the
  next-token objective in expectation over orders, with lower variance and whole-set targets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cellang.models.layers import Block, init_weights

# Targets equal to this id (the pathway tokeniser's <pad>) do not count towards the loss.
IGNORE_TARGET = 0
OBJECTIVES = ("next_token", "set")


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.1
    bias: bool = False
    objective: str = "set"  # see the module docstring; "next_token" is the plain language model

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


class GPT(nn.Module):
    """Token + learned position embeddings, n_layer blocks, final LayerNorm, tied output head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                # causal attention needs no key mask for pads: they only follow <eos>, so no real token
                # attends to them, and outputs at pad positions meet only ignored targets
                h=nn.ModuleList([Block(config, causal=True) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: a token's input embedding is also its output direction (fewer parameters,
        # and rare genes get gradient from both ends).
        self.transformer.wte.weight = self.lm_head.weight

        init_weights(self, config.n_layer)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, n_embd) final-LayerNorm states; logits are lm_head of these."""
        _, length = idx.shape
        if length > self.config.block_size:
            raise ValueError(f"sequence length {length} exceeds block_size {self.config.block_size}")
        positions = torch.arange(length, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids; targets and positions as the module docstring says per objective.

        Returns logits (B, T, vocab_size) — for the set objective with targets, only at the scored
        positions, (B, K, vocab_size) — and the loss (None when targets is None).
        """
        hidden = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(hidden), None
        if self.config.objective == "set":
            if positions is None:
                raise ValueError("the set objective needs the positions to score")
            return self._set_loss(hidden, targets, positions)
        logits = self.lm_head(hidden)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            targets.reshape(-1),
            ignore_index=IGNORE_TARGET,
        )
        return logits, loss

    def _set_loss(
        self, hidden: torch.Tensor, members: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scored = positions.clamp(min=0)
        picked = hidden.gather(1, scored.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        logits = self.lm_head(picked)  # (B, K, V): the head runs only where the loss is taken
        log_probs = F.log_softmax(logits.float(), dim=-1)
        member_log_probs = log_probs.gather(2, members.unsqueeze(1).expand(-1, positions.size(1), -1))
        member_index = torch.arange(members.size(1), device=members.device)
        # members[:, s] is unseen at input position t when s >= t (idx[:, t] is members[:, t-1])
        unseen = (member_index.view(1, 1, -1) >= positions.unsqueeze(-1)) & (members != IGNORE_TARGET).unsqueeze(1)
        unseen &= (positions >= 0).unsqueeze(-1)
        counts = unseen.sum(-1)
        per_position = -(member_log_probs * unseen).sum(-1) / counts.clamp(min=1)
        valid = counts > 0
        loss = per_position[valid].mean() if bool(valid.any()) else per_position.sum() * 0.0
        return logits, loss

    def num_parameters(self) -> int:
        """Number of trainable parameters, counting the tied embedding/head matrix once."""
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict; `GPT(GPTConfig(**d))` rebuilds the architecture."""
        return dataclasses.asdict(self.config)
