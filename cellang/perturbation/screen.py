"""Two-stage deletion screen: estimate every deletion at once, then score the most promising ones exactly.

Deleting gene i from a rank encoding (a) removes it as a key from every attention layer and from the
mean-pooled embedding, and (b) moves every later gene up one position. With S = cos(embedding, goal):

* (a) is estimated to first order for every gene from one forward and one backward pass per cell:
  -dS/db_i (b_i an additive attention bias on key i in every layer, 0 in the real model) plus the exact
  change of the mean m of n gene states when h_i leaves it, (m - h_i) / (n - 1) . dS/dm;
* (b) is computed exactly, without deleting anything, for every ``stride``-th position (the cell's genes
  after that position moved up one place; one batched forward pass each) and interpolated linearly
  between them. On the shipped model the position shift carries most of a deletion's effect: a
  first-order estimate of it is what made a gradient-only screen poor (Spearman 0.36 with exact on
  validation cells), while (a) with (b) computed at every position reaches 0.999. The interpolation is
  what the estimate loses: (b) has a rough, position-specific part that no anchor spacing follows.

Stage 2 works on genes, because genes are what the ranking orders: the ``candidates`` genes with the best
estimated ranking score (genes in at least ``min_cells`` cells, plus half as many more among all genes) are
re-scored exactly by :class:`~cellang.perturbation.engine.Perturber` in at most ``cells_per_gene`` of their
cells each (a seeded draw; all of them when fewer). Their other cells keep the estimate corrected by the
gene's mean error in the re-scored cells (a control variate), so a gene's mean costs a few exact deletions
however many cells express it; genes outside the candidates keep their estimate. Choosing by cell (the best
k deletions of each cell) was tried first: on validation cells it missed 15-20% of the exact top 100 genes
at any k, because a gene's mean is decided by the cells where it is not among the best. Exact mode stays
the reference (measured against it in ``cellang benchmark perturb``).

In:  a rank-mode encoder, the cells' token arrays, a ``delete`` plan, the goal embedding (mean pooling or CLS).
Out: :class:`ScreenScores`: ``goal_shift`` per pair (exact where ``exact``, else the calibrated estimate), ``shift``
     (NaN where not exact: it has no estimate), the stage-1 ``estimate``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cellang.models.encoder import pool
from cellang.perturbation.engine import PerturbationPlan, PerturbationScores, Perturber, PerturbError
from cellang.perturbation.stats import ranking_score
from cellang.progress import Progress
from cellang.tokenizers.cells import PAD_ID, pad_rows

# Chosen on validation cells (cellang tune screen, results/tune_screen.md and
# results/tune_screen_cells_per_gene.md: 200 spectra_immune CD4 T cells scored toward the Treg mean, never the
# benchmark's HSMM cells): 16 cells per gene recalled 0.96 of the exact top 100 (0.96 for genes in >= 3 cells)
# with 7.9 shifted-position passes and 11.4 exact deletions per cell of 253 genes; 8 cells 0.92 (0.93), 12 cells
# 0.95 (0.95); 300 candidates 0.96 (0.98) for half again the exact deletions; stride 16 as good as 32 for twice
# the passes, stride 48 worse.
CANDIDATES = 200  # genes re-scored exactly (plus half as many among genes below the ranking's cell floor)
CELLS_PER_GENE = 16  # exact deletions per candidate gene
STRIDE = 32  # positions between exact position-shift evaluations
CELLS_PER_PASS = 16
SHIFT_ROWS_PER_PASS = 64


@dataclass(frozen=True)
class ScreenScores(PerturbationScores):
    exact: np.ndarray = None  # type: ignore[assignment]  # bool per planned pair: scored exactly
    estimate: np.ndarray = None  # type: ignore[assignment]  # the stage-1 estimate of goal_shift per pair
    candidates: int = 0  # genes re-scored


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


def pair_estimates(plan: PerturbationPlan, per_cell: Sequence[np.ndarray]) -> np.ndarray:
    """The estimate of each planned pair from :func:`estimate_deletions`' per-cell, per-position estimates."""
    return np.array([per_cell[r][p] for r, p in zip(plan.rows, plan.positions)], dtype=np.float64)


def candidate_genes(gene_ids: np.ndarray, estimate: np.ndarray, candidates: int, min_cells: int) -> np.ndarray:
    """Token ids of the ``candidates`` genes with the best estimated ranking score among genes in at least
    ``min_cells`` cells, then up to half as many more among all genes (ties: lower token id first)."""
    genes, inverse, cells = np.unique(gene_ids, return_inverse=True, return_counts=True)
    mean = np.bincount(inverse, weights=estimate, minlength=len(genes)) / cells
    order = np.lexsort((genes, -ranking_score(mean, cells)))
    chosen = genes[order][cells[order] >= min_cells][:candidates]
    if min_cells > 1:
        others = genes[order][~np.isin(genes[order], chosen)]
        chosen = np.concatenate((chosen, others[:candidates // 2]))
    return chosen.astype(gene_ids.dtype)


def exact_sample(gene_ids: np.ndarray, genes: np.ndarray, cells_per_gene: int, seed: int) -> np.ndarray:
    """Indices of the pairs to score exactly: for each of ``genes``, ``cells_per_gene`` of its pairs (seeded), or
    all of them when it has fewer. Sorted."""
    rng = np.random.default_rng(seed)
    out = []
    for gene in genes:
        pairs = np.flatnonzero(gene_ids == gene)
        out.append(pairs if len(pairs) <= cells_per_gene else rng.choice(pairs, cells_per_gene, replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def calibrate(gene_ids: np.ndarray, estimate: np.ndarray, chosen: np.ndarray, exact_values: np.ndarray) -> np.ndarray:
    """Per pair: the exact value where ``chosen``, else the estimate plus its gene's mean error over the
    chosen pairs (0 for a gene without any)."""
    genes, inverse = np.unique(gene_ids, return_inverse=True)
    error = np.zeros(len(genes))
    counts = np.bincount(inverse[chosen], minlength=len(genes))
    np.add.at(error, inverse[chosen], exact_values - estimate[chosen])
    out = estimate + np.where(counts > 0, error / np.maximum(counts, 1), 0.0)[inverse]
    out[chosen] = exact_values
    return out


def screen(perturber: Perturber, cell_tokens: Sequence[np.ndarray], plan: PerturbationPlan, goal: torch.Tensor, *,
           candidates: int = CANDIDATES, cells_per_gene: int = CELLS_PER_GENE, stride: int = STRIDE,
           min_cells: int = 1, seed: int = 0, original: torch.Tensor | None = None,
           progress: Progress | None = None) -> ScreenScores:
    """Stage 1 for every pair of ``plan``, stage 2 (exact, calibrated) for the candidate genes; see the module.
    min_cells: the ranking's floor of cells per gene, which candidates are chosen under."""
    if plan.mode != "delete":
        raise PerturbError("the screen estimates deletions; score overexpression exactly")
    if goal is None:
        raise PerturbError("the screen ranks deletions by how far they move cells toward a goal state: choose a "
                           "goal, or use exact mode")
    for name, value in (("candidates", candidates), ("cells_per_gene", cells_per_gene)):
        if value < 0:
            raise PerturbError(f"{name} must be at least 0, got {value}")
    began = time.perf_counter()
    if progress is not None:
        progress(0.0, f"Estimating all {len(plan):,} deletions at once ({len(cell_tokens):,} cells)")
    per_cell = estimate_deletions(perturber.encoder, cell_tokens, goal, pooling=perturber.pooling, stride=stride,
                                  device=perturber.device)
    estimate = pair_estimates(plan, per_cell)
    genes = candidate_genes(plan.gene_ids, estimate, candidates, min_cells) if cells_per_gene else plan.gene_ids[:0]
    chosen = exact_sample(plan.gene_ids, genes, cells_per_gene, seed)
    exact = np.zeros(len(plan), dtype=bool)
    exact[chosen] = True
    subplan = PerturbationPlan(plan.rows[chosen], plan.gene_ids[chosen], plan.positions[chosen], plan.mode)

    def rescoring(fraction: float, text: str) -> None:
        if progress is not None:
            progress(0.1 + 0.9 * fraction, f"Exact scores of {len(genes):,} candidate genes: {text}")

    scored = perturber.score(cell_tokens, subplan, goal, progress=rescoring, original=original)
    goal_shift = calibrate(plan.gene_ids, estimate, chosen, scored.goal_shift)
    shift = np.full(len(plan), np.nan)
    shift[chosen] = scored.shift
    return ScreenScores(shift, goal_shift, time.perf_counter() - began, scored.batches, scored.device,
                        exact=exact, estimate=estimate, candidates=len(genes))


__all__ = ["CANDIDATES", "CELLS_PER_GENE", "CELLS_PER_PASS", "STRIDE", "ScreenScores", "calibrate", "candidate_genes",
           "estimate_deletions", "exact_sample", "pair_estimates", "screen"]
