"""Two-stage deletion screen: estimate every deletion at once, then score the most promising ones exactly.

Deleting gene i from a rank encoding (a) removes it as a key from every attention layer and from the
mean-pooled embedding, and (b) moves every later gene up one position. With S = cos(embedding, goal):

* (a) is estimated to first order for every gene from one forward and one backward pass per cell:
  -dS/db_i (b_i an additive attention bias on key i in every layer, 0 in the real model) plus the exact
  change of the mean m of n gene states when h_i leaves it, (m - h_i) / (n - 1) . dS/dm;
* (b) is computed exactly, without deleting anything, for every ``stride``-th position (the cell's genes
  after that position moved up one place; one batched forward pass each) and interpolated linearly
  between them. On the shipped model the position shift carries most of a deletion's effect, and it
  varies smoothly along the encoding: a first-order estimate of it is what made a gradient-only screen
  poor.

Stage 2: the ``top_k`` deletions of each cell with the largest estimate are scored exactly by
:class:`~cellang_core.perturbation.engine.Perturber`; the others keep their estimate. Exact mode stays the
reference (measured against it in ``scripts/benchmark_perturb.py``).

In:  a rank-mode encoder, the cells' token arrays, a ``delete`` plan, the goal embedding (mean pooling or CLS).
Out: :class:`ScreenScores`: ``goal_shift`` per pair (exact where ``exact``, else the estimate), ``shift``
     (NaN where not exact: it has no estimate), the stage-1 ``estimate``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cellang_core.models.encoder import pool
from cellang_core.perturbation.engine import PerturbationPlan, PerturbationScores, Perturber, PerturbError
from cellang_core.progress import Progress
from cellang_core.tokenizers.cells import PAD_ID, pad_rows

TOP_K = 16  # deletions per cell re-scored exactly
STRIDE = 8  # positions between exact position-shift evaluations
CELLS_PER_PASS = 16
SHIFT_ROWS_PER_PASS = 64


@dataclass(frozen=True)
class ScreenScores(PerturbationScores):
    exact: np.ndarray = None  # type: ignore[assignment]  # bool per planned pair: scored exactly
    estimate: np.ndarray = None  # type: ignore[assignment]  # the stage-1 estimate of goal_shift per pair


def _pooled_similarity(encoder: torch.nn.Module, tokens: torch.Tensor, positions: torch.Tensor, goal: torch.Tensor,
                       pooling: str, bias: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cos(pooled, goal) per row, final states, the pooled embeddings) of tokens at the given positions."""
    bias = torch.zeros(tokens.shape[0], 1, 1, tokens.shape[1], device=tokens.device) if bias is None else bias
    hidden = encoder.hidden_states(tokens, positions=positions, key_bias=bias)
    cls, mean = pool(hidden, tokens)
    pooled = cls if pooling == "cls" else mean
    return F.cosine_similarity(pooled, goal[None, :], dim=-1), hidden, pooled


def _removal_estimates(encoder: torch.nn.Module, tokens: torch.Tensor, goal: torch.Tensor,
                       pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """((B, T) first-order effect on S of removing each gene's key and pooled state, (B,) S of the cells)."""
    batch, length = tokens.shape
    positions = torch.arange(length, device=tokens.device).expand(batch, length)
    bias = torch.zeros(batch, 1, 1, length, device=tokens.device, requires_grad=True)
    similarity, hidden, pooled = _pooled_similarity(encoder, tokens, positions, goal, pooling, bias)
    grad_bias, grad_pooled = torch.autograd.grad(similarity.sum(), [bias, pooled])
    estimate = -grad_bias[:, 0, 0, :]
    if pooling == "mean":
        genes = tokens != PAD_ID
        genes[:, 0] = False
        n = genes.sum(1).clamp(min=2).to(hidden.dtype)
        leave = (pooled.detach()[:, None, :] - hidden.detach()) / (n - 1)[:, None, None]
        estimate = estimate + (leave * grad_pooled[:, None, :]).sum(-1)
    return estimate.detach(), similarity.detach()


def _shift_effects(encoder: torch.nn.Module, cell: np.ndarray, base: float, goal: torch.Tensor, pooling: str,
                   stride: int, device: torch.device) -> np.ndarray:
    """S change when the genes after position i move up one place (nothing deleted), for every gene position i:
    exact at every ``stride``-th position and the last, linear in between. Index 0 (<cls>) is 0."""
    length = len(cell)
    sampled = np.unique(np.append(np.arange(1, length, stride), length - 1))
    if length < 2:
        return np.zeros(length)
    tokens = torch.as_tensor(np.asarray(cell), dtype=torch.long, device=device)
    out = []
    for start in range(0, len(sampled), SHIFT_ROWS_PER_PASS):
        points = torch.as_tensor(sampled[start:start + SHIFT_ROWS_PER_PASS], device=device)
        positions = torch.arange(length, device=device).expand(len(points), length).clone()
        positions -= (positions > points[:, None]).long()
        similarity, _, _ = _pooled_similarity(encoder, tokens.expand(len(points), length), positions, goal, pooling)
        out.append(similarity.double().cpu().numpy() - base)
    values = np.concatenate(out)
    effects = np.zeros(length)
    effects[1:] = np.interp(np.arange(1, length), sampled, values)
    return effects


def estimate_deletions(encoder: torch.nn.Module, cell_tokens: Sequence[np.ndarray], goal: torch.Tensor, *,
                       pooling: str = "mean", stride: int = STRIDE, cells_per_pass: int = CELLS_PER_PASS,
                       device: torch.device | None = None) -> list[np.ndarray]:
    """Per cell, the estimated goal shift of deleting the gene at each position (index 0 = <cls>, always 0)."""
    if stride < 1:
        raise PerturbError(f"stride must be at least 1, got {stride}")
    device = device or torch.device("cpu")
    encoder = encoder.eval().to(device)
    with torch.no_grad():
        for parameter in encoder.parameters():
            if parameter.is_inference():  # moved to the device under inference mode: a copy can be differentiated
                parameter.data = parameter.data.clone()
    goal = goal.float().to(device)
    out: list[np.ndarray] = [np.zeros(0)] * len(cell_tokens)
    order = np.argsort([-len(t) for t in cell_tokens], kind="stable")
    for start in range(0, len(order), cells_per_pass):
        chosen = order[start:start + cells_per_pass]
        tokens = pad_rows([cell_tokens[i] for i in chosen]).to(device)
        with torch.enable_grad():
            removal, similarity = _removal_estimates(encoder, tokens, goal, pooling)
        with torch.no_grad():
            for row, cell in enumerate(chosen):
                length = len(cell_tokens[cell])
                base = float(similarity[row])
                shift = _shift_effects(encoder, cell_tokens[cell], base, goal, pooling, stride, device)
                estimate = removal[row, :length].double().cpu().numpy() + shift
                estimate[0] = 0.0
                out[cell] = estimate
    return out


def top_per_cell(plan: PerturbationPlan, estimate: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the plan's pairs with the ``top_k`` largest estimates in each cell (ties: plan order)."""
    order = np.lexsort((np.arange(len(plan)), -estimate, plan.rows))
    first = np.searchsorted(plan.rows[order], plan.rows[order], side="left")
    return np.sort(order[np.arange(len(order)) - first < top_k])


def screen(perturber: Perturber, cell_tokens: Sequence[np.ndarray], plan: PerturbationPlan, goal: torch.Tensor, *,
           top_k: int = TOP_K, stride: int = STRIDE, original: torch.Tensor | None = None,
           progress: Progress | None = None) -> ScreenScores:
    """Stage 1 for every pair of ``plan``, stage 2 (exact) for the ``top_k`` best of each cell; see the module."""
    if plan.mode != "delete":
        raise PerturbError("the screen estimates deletions; score overexpression exactly")
    if goal is None:
        raise PerturbError("the screen ranks deletions by how far they move cells toward a goal state: choose a "
                           "goal, or use exact mode")
    if top_k < 0:
        raise PerturbError(f"top_k must be at least 0, got {top_k}")
    began = time.perf_counter()
    if progress is not None:
        progress(0.0, f"Estimating all {len(plan):,} deletions at once ({len(cell_tokens):,} cells)")
    per_cell = estimate_deletions(perturber.encoder, cell_tokens, goal, pooling=perturber.pooling, stride=stride,
                                  device=perturber.device)
    estimate = np.array([per_cell[r][p] for r, p in zip(plan.rows, plan.positions)], dtype=np.float64)
    chosen = top_per_cell(plan, estimate, top_k)
    exact = np.zeros(len(plan), dtype=bool)
    exact[chosen] = True
    subplan = PerturbationPlan(plan.rows[chosen], plan.gene_ids[chosen], plan.positions[chosen], plan.mode)

    def rescoring(fraction: float, text: str) -> None:
        if progress is not None:
            progress(0.1 + 0.9 * fraction, f"Exact scores of the {len(chosen):,} best estimates: {text}")

    scored = perturber.score(cell_tokens, subplan, goal, progress=rescoring, original=original)
    goal_shift = estimate.copy()
    goal_shift[chosen] = scored.goal_shift
    shift = np.full(len(plan), np.nan)
    shift[chosen] = scored.shift
    return ScreenScores(shift, goal_shift, time.perf_counter() - began, scored.batches, scored.device,
                        exact=exact, estimate=estimate)


__all__ = ["CELLS_PER_PASS", "STRIDE", "TOP_K", "ScreenScores", "estimate_deletions", "screen", "top_per_cell"]
