"""Statistics shared by the benchmarks and tasks: overlap tests and multiple-testing correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def overlap_p_value(overlap: int, n_predicted: int, n_true: int, universe: int) -> float:
    """One-sided Fisher exact p that ``n_predicted`` draws hit ``overlap`` or more of ``n_true`` genes.

    Equivalent to ``scipy.stats.fisher_exact(table, alternative="greater")`` on the 2x2 table of
    predicted/not predicted by true/not true within a universe of ``universe`` genes (the
    hypergeometric upper tail).
    """
    if not 0 <= overlap <= min(n_predicted, n_true) or max(n_predicted, n_true) > universe:
        raise ValueError(
            f"impossible overlap: {overlap} of {n_predicted} predicted and {n_true} true in {universe} genes"
        )
    if overlap == 0:
        return 1.0
    return float(stats.hypergeom.sf(overlap - 1, universe, n_true, n_predicted))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p.copy()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be finite numbers between 0 and 1")
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q_sorted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    q = np.empty_like(q_sorted)
    q[order] = q_sorted
    return q
