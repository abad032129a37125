"""The reference perturber: Python list edits and one forward pass per perturbation.

Slow on purpose and simple enough to check by eye; :class:`~cellang.perturbation.engine.Perturber`
must give the same scores (``tests/test_perturb.py``), and ``cellang benchmark perturb`` measures the
engine's speed-up over it.

In:  an encoder, the cells' token arrays and a :class:`~cellang.perturbation.engine.PerturbationPlan`.
Out: :class:`~cellang.perturbation.engine.PerturbationScores`, as ``Perturber.score`` returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from cellang.device import autocast_context, pick_device
from cellang.perturbation.engine import (
    PerturbationPlan,
    PerturbationScores,
    PerturbError,
    check_mode,
    cosine,
    pooled,
)
from cellang.progress import Progress


def edit_sequence(cell: Sequence[int], gene: int, position: int, mode: str, max_len: int) -> list[int]:
    """One perturbed encoding by list edits (the reference for :func:`perturbed_tokens`)."""
    check_mode(mode)
    sequence = [int(t) for t in cell]
    if mode == "delete":
        if position < 1 or sequence[position] != gene:
            raise PerturbError(f"gene {gene} is not at position {position}")
        del sequence[position]
        return sequence
    if position >= 1:
        del sequence[position]
    sequence.insert(1, int(gene))
    return sequence[:max_len]


def naive_scores(encoder: torch.nn.Module, cell_tokens: Sequence[np.ndarray], plan: PerturbationPlan, *,
                 pooling: str = "mean", goal: torch.Tensor | None = None, device: str | None = None,
                 progress: Progress | None = None, precision: str = "float32") -> PerturbationScores:
    """The same scores as :meth:`Perturber.score`, one forward pass per cell and per perturbation."""
    began = time.perf_counter()
    target = pick_device(device)
    encoder = encoder.eval().to(target)  # outside inference mode, as in Perturber
    with torch.inference_mode():
        return _naive_scores(encoder, cell_tokens, plan, pooling, goal, target, progress, precision, began)


def _naive_scores(encoder: torch.nn.Module, cell_tokens: Sequence[np.ndarray], plan: PerturbationPlan, pooling: str,
                  goal: torch.Tensor | None, target: torch.device, progress: Progress | None, precision: str,
                  began: float) -> PerturbationScores:
    max_len = int(encoder.config.max_len)

    def embed_one(sequence: Sequence[int]) -> torch.Tensor:
        with autocast_context(target, precision):
            return pooled(encoder, torch.tensor([list(sequence)], dtype=torch.long, device=target), pooling)[0]

    original = [embed_one(t) for t in cell_tokens]
    goal_dev = None if goal is None else goal.float().to(target)
    shift, goal_shift = np.full(len(plan), np.nan), np.full(len(plan), np.nan)
    for k in range(len(plan)):
        row = int(plan.rows[k])
        sequence = edit_sequence(cell_tokens[row], int(plan.gene_ids[k]), int(plan.positions[k]), plan.mode, max_len)
        perturbed = embed_one(sequence)
        shift[k] = 1.0 - float(cosine(original[row], perturbed))
        if goal_dev is not None:
            goal_shift[k] = float(cosine(perturbed, goal_dev) - cosine(original[row], goal_dev))
        if progress is not None and (k + 1) % 100 == 0:
            progress((k + 1) / len(plan), f"naive: {k + 1:,} of {len(plan):,}")
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    return PerturbationScores(shift, goal_shift, time.perf_counter() - began, len(plan) + len(cell_tokens),
                              str(target))
