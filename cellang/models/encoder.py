"""A small bidirectional transformer encoder for cells (after nanoGPT's model.py, minus the causal mask).

In:  tokens (B, T): `<cls>` at position 0, then gene token ids, right-padded with `<pad>` (= 0);
     in binned mode also values (B, T): value bins 0..n_bins-1, or n_bins for a masked value.
     In rank mode, optionally ranks (B, T): each token's rank in its cell (default 0..T-1; a training
     window of a longer cell passes the ranks of the genes it kept).
Out: forward -> (output, loss); embed -> (CLS state, mean of the gene states), each (B, n_embd).

Two modes (``EncoderConfig.mode``), one per tokeniser:

* ``binned`` (scGPT-like): input = gene embedding + value-bin embedding; no positions (a cell is a
  set). Targets (B, T) float: the true value (bin / (n_bins-1)) at masked positions, < 0 elsewhere.
  Profile (B, n_genes) float: the cell's value of EVERY vocabulary gene by token id (0 = not
  expressed). Loss = masked-value MSE from each position's state + gepc_weight x GEPC, where GEPC
  predicts the whole profile from the CLS state alone: pred_g = <W cls, q(gene_emb_g)>, with the
  expressed and the unexpressed genes weighted equally. scGPT's GEPC scores only the masked genes;
  scoring absent genes too asks the CLS state for the presence/absence pattern that marks cell
  types, and raised the CLS embedding's AvgBIO on the atlas in development runs (README, "Cell
  encoders"). Without a profile, GEPC falls back to the masked positions. Output: the per-position
  predictions (B, T).
* ``rank`` (Geneformer-like): input = gene embedding + position embedding (the order IS the
  expression). ``rank_positions`` says what a position embedding stands for: "index", one row per place
  in the sequence (Geneformer's), or "log", one row per rank bucket (every rank below LOG_EXACT_RANKS,
  then LOG_BUCKETS_PER_DOUBLING per doubling), so that a model trained on windows of a long cell (genes
  sampled from its ranking, each at its true rank) reads the whole cell, or only its top genes, with
  positions that mean what they meant in training. Targets (B, T) long: original token ids at masked positions, -100 elsewhere. Loss =
  cross-entropy through a head tied to the gene embedding, computed only at scored positions.
  Output: the logits at the scored positions (K, n_genes), or all logits (B, T, n_genes) without
  targets.

Two views (``contrastive_weight`` > 0): the batcher puts every cell in a batch twice, rows i and i + B/2
(rank mode: two disjoint random halves of the cell's genes, each at its own ranks; binned mode: two copies with
their own random masks), and the loss adds contrastive_weight x InfoNCE that asks each view's CLS state,
and its mean state, to pick out the other view of the same cell among the batch (SimCLR's NT-Xent at
``contrastive_temperature``). Masked modelling alone learns what genes go together; the contrastive term asks
the pooled states to keep what tells cells apart and to ignore which of a cell's genes a view happened to
hold, which is what a clustering of the embeddings reads. Measured: it did not help adaptation (README).

Attention is full (bidirectional) with a key-padding mask, so a pad never influences a real token,
and a cell's states do not depend on how much padding its batch has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cellang.models.layers import Block, init_weights
from cellang.tokenizers.cells import MAX_LEN, N_BINS

PAD_ID = 0  # the cell tokenisers' <pad> (cellang.tokenizers.cells.PAD_ID)
IGNORE_LABEL = -100  # rank-mode targets not scored
MODES = ("binned", "rank")
RANK_POSITIONS = ("index", "log")
LOG_EXACT_RANKS = 64  # "log" rank positions: ranks below this keep a row each (a cell's top genes matter most)
LOG_BUCKETS_PER_DOUBLING = 16


def rank_bucket(ranks: torch.Tensor) -> torch.Tensor:
    """The "log" position row of each rank (long tensor): the rank itself below LOG_EXACT_RANKS, then
    LOG_BUCKETS_PER_DOUBLING rows per doubling of the rank."""
    above = ranks.clamp(min=LOG_EXACT_RANKS).double() / LOG_EXACT_RANKS
    buckets = LOG_EXACT_RANKS + torch.floor(LOG_BUCKETS_PER_DOUBLING * torch.log2(above)).long()
    return torch.where(ranks < LOG_EXACT_RANKS, ranks, buckets)


def position_rows(config: EncoderConfig) -> int:
    """Rows of the rank encoder's position embedding: one per place, or one per rank bucket up to max_len."""
    if config.rank_positions == "index":
        return config.max_len
    return int(rank_bucket(torch.tensor([config.max_len - 1]))[0]) + 1


@dataclass
class EncoderConfig:
    n_genes: int  # vocabulary size, special tokens included
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    # No dropout: attention dropout sends CPU attention down PyTorch's slow path (~1.75x per step), and
    # a few hundred steps over the atlas do not overfit (validation loss keeps falling).
    dropout: float = 0.0
    # Longest sequence, <cls> included; 256 tokens keep a step near half a second on 2 CPU cores, and
    # most atlas cells have fewer genes.
    max_len: int = MAX_LEN
    n_bins: int = N_BINS  # value bins incl. bin 0 (binned mode); 0 = rank mode
    mode: str = "binned"
    bias: bool = False
    gepc_weight: float = 1.0  # binned mode: weight of the CLS expression-prediction loss
    rank_positions: str = "index"  # rank mode: what a position embedding stands for (module docstring)
    # Weight of the two-view contrastive loss (module docstring); 0 = masked modelling alone. Batches
    # then hold every cell twice, as two views.
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.rank_positions not in RANK_POSITIONS:
            raise ValueError(f"rank_positions must be one of {RANK_POSITIONS}, got {self.rank_positions!r}")
        if (self.mode == "rank") != (self.n_bins == 0):
            raise ValueError("n_bins must be 0 in rank mode and >= 3 in binned mode")
        if self.mode == "binned" and self.n_bins < 3:
            raise ValueError(f"binned mode needs n_bins >= 3, got {self.n_bins}")
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError("contrastive_weight must be >= 0 and contrastive_temperature > 0")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


def paired_views_loss(states: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of (2N, C) states where rows i and i + N are two views of one cell: each row's other view
    against the 2N - 2 rows of other cells."""
    n = states.shape[0] // 2
    z = F.normalize(states.float(), dim=-1)
    similarity = (z @ z.T) / temperature
    similarity.fill_diagonal_(float("-inf"))
    partner = torch.cat((torch.arange(n, 2 * n), torch.arange(n))).to(states.device)
    return F.cross_entropy(similarity, partner)


def pool(hidden: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CLS state, mean state over the gene positions) of final states (B, T, C); no genes: a zero mean."""
    genes = (tokens != PAD_ID).clone()
    genes[:, 0] = False  # position 0 is <cls>
    weights = genes.unsqueeze(-1).to(hidden.dtype)
    return hidden[:, 0], (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class CellEncoder(nn.Module):
    """Gene (+ value-bin or position) embeddings, n_layer blocks, final LayerNorm, mode heads."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        parts: dict[str, nn.Module] = dict(
            wte=nn.Embedding(config.n_genes, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, causal=False) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        )
        if config.mode == "binned":
            parts["wve"] = nn.Embedding(config.n_bins + 1, config.n_embd)  # last row: the <mask> bin
        else:
            parts["wpe"] = nn.Embedding(position_rows(config), config.n_embd)
        self.transformer = nn.ModuleDict(parts)
        if config.mode == "binned":
            self.value_head = nn.Sequential(nn.Linear(config.n_embd, config.n_embd), nn.GELU(),
                                            nn.Linear(config.n_embd, 1))
            self.gepc_query = nn.Linear(config.n_embd, config.n_embd)
            self.gepc_cls = nn.Linear(config.n_embd, config.n_embd, bias=False)
        else:
            self.lm_head = nn.Linear(config.n_embd, config.n_genes, bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # tied, as in the GPT

        init_weights(self, config.n_layer)

    def hidden_states(self, tokens: torch.Tensor, values: torch.Tensor | None = None, *,
                      positions: torch.Tensor | None = None, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) tokens (+ (B, T) value bins in binned mode) -> (B, T, n_embd) final-LN states.

        Rank mode only: positions, (B, T) ranks instead of 0..T-1 (a training window, the deletion screen);
        key_bias, (B, 1, 1, T) added to every attention score of each key (0 = the model as trained)."""
        _, length = tokens.shape
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.config.max_len}")
        x = self.transformer.wte(tokens)
        if self.config.mode == "binned":
            if values is None:
                raise ValueError("binned mode needs the value bins")
            x = x + self.transformer.wve(values)
        else:
            ranks = torch.arange(length, device=tokens.device) if positions is None else positions
            x = x + self.transformer.wpe(rank_bucket(ranks) if self.config.rank_positions == "log" else ranks)
        keep = (tokens != PAD_ID)[:, None, None, :]
        if key_bias is not None:
            keep = torch.where(keep, key_bias, torch.full_like(key_bias, float("-inf")))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, keep)
        return self.transformer.ln_f(x)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                values: torch.Tensor | None = None,
                profile: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batches come as (tokens, targets, values, profile) in binned mode and (tokens, targets) or
        (tokens, targets, ranks) in rank mode, where the third tensor is each token's rank in its cell (see the
        module docstring); returns (output, loss), loss None without targets. Binned mode without a profile
        scores GEPC on the masked positions only."""
        if self.config.mode == "rank":
            hidden = self.hidden_states(tokens, positions=values)
            if targets is None:
                return self.lm_head(hidden), None
            scored = targets != IGNORE_LABEL
            logits = self.lm_head(hidden[scored])  # the head runs only where the loss is taken
            if logits.numel() == 0:
                return logits, hidden.sum() * 0.0 + self.views_loss(hidden, tokens)
            return logits, F.cross_entropy(logits.float(), targets[scored]) + self.views_loss(hidden, tokens)
        hidden = self.hidden_states(tokens, values)
        predicted = self.value_head(hidden).squeeze(-1)
        if targets is None:
            return predicted, None
        return predicted, self.masked_value_loss(hidden, predicted, tokens, targets, profile) + self.views_loss(
            hidden, tokens)

    def views_loss(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor | float:
        """contrastive_weight x the mean NT-Xent of the CLS and mean states (module docstring); 0 when off."""
        if not self.config.contrastive_weight:
            return 0.0
        if hidden.shape[0] % 2:
            raise ValueError("a two-view batch has an even number of rows (each cell twice)")
        cls, mean = pool(hidden, tokens)
        temperature = self.config.contrastive_temperature
        return self.config.contrastive_weight * 0.5 * (paired_views_loss(cls, temperature)
                                                       + paired_views_loss(mean, temperature))

    def masked_value_loss(self, hidden: torch.Tensor, predicted: torch.Tensor, tokens: torch.Tensor,
                          targets: torch.Tensor, profile: torch.Tensor | None) -> torch.Tensor:
        """Binned mode: masked-value MSE + gepc_weight x GEPC (module docstring)."""
        scored = targets >= 0
        if not bool(scored.any()):
            return predicted.sum() * 0.0
        value_loss = F.mse_loss(predicted[scored].float(), targets[scored].float())
        cell = self.gepc_cls(hidden[:, 0])  # (B, C)
        if profile is None:
            query = F.gelu(self.gepc_query(self.transformer.wte(tokens)))  # (B, T, C): what each gene asks
            from_cls = (query * cell[:, None, :]).sum(-1)  # (B, T)
            gepc_loss = F.mse_loss(from_cls[scored].float(), targets[scored].float())
        else:
            query = F.gelu(self.gepc_query(self.transformer.wte.weight))  # (n_genes, C)
            from_cls = (cell @ query.T).float()  # (B, n_genes)
            expressed = profile > 0
            errors = (from_cls - profile.float()) ** 2
            # sum / count rather than mean(): a batch with no expressed gene must not give NaN
            gepc_loss = 0.5 * (errors[expressed].sum() / expressed.sum().clamp(min=1)
                               + errors[~expressed].sum() / (~expressed).sum().clamp(min=1))
        return value_loss + self.config.gepc_weight * gepc_loss

    @torch.no_grad()
    def embed(self, tokens: torch.Tensor, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(CLS state, mean state over the gene positions), each (B, n_embd); a cell with no genes
        gets a zero mean. Call in eval mode for deterministic embeddings."""
        return pool(self.hidden_states(tokens, values), tokens)

    def trunk_flops(self, length: int) -> int:
        """FLOPs (2 per multiply-add) of the transformer blocks on one sequence of `length` tokens: the
        attention and MLP matmuls, which are nearly all the work of `embed`. Embedding lookups, norms,
        activations and the heads are left out (as in nanoGPT's estimate_mfu)."""
        d = self.config.n_embd
        # per token: qkv (3d x d), output projection (d x d), MLP (4d x d, twice); per token pair: QK^T and AV
        per_layer = 2 * length * 12 * d * d + 4 * length * length * d
        return self.config.n_layer * per_layer

    def num_parameters(self) -> int:
        """Trainable parameters, counting a tied embedding/head matrix once."""
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict[str, Any]:
        """JSON-ready config; `CellEncoder(EncoderConfig(**d))` rebuilds the architecture."""
        return dataclasses.asdict(self.config)
