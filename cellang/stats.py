"""Statistics shared by the benchmarks and workflows: overlap tests and multiple-testing correction."""

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


def mann_whitney_one_vs_rest(values: Sequence[float], groups: Sequence[object],
                             alternative: str = "two-sided") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each group's values against the pooled values of every other group (Wilcoxon rank-sum).

    Returns (groups sorted, U of the group, p), identical to
    ``scipy.stats.mannwhitneyu(group, rest, alternative=..., method="asymptotic")`` (normal
    approximation, tie correction, continuity correction) for every group, from one global ranking:
    a group's rank sum within (group + rest) is its rank sum within all values. A group with no rest,
    or values that are all tied, gets p = 1.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")
    x = np.asarray(values, dtype=float)
    labels = np.asarray(groups)
    if x.shape != labels.shape or x.ndim != 1:
        raise ValueError("values and groups must be 1-D and of one length")
    if np.any(~np.isfinite(x)):
        raise ValueError("values must be finite")
    names, inverse = np.unique(labels, return_inverse=True)
    n = x.size
    ranks = stats.rankdata(x)
    n1 = np.bincount(inverse, minlength=names.size).astype(float)
    n2 = n - n1
    u1 = np.bincount(inverse, weights=ranks, minlength=names.size) - n1 * (n1 + 1) / 2
    _, tie_counts = np.unique(x, return_counts=True)
    tie_term = float(np.sum(tie_counts.astype(float) ** 3 - tie_counts))
    # With one value there is no rest to compare with (n2 = 0): the tie term is moot, and n(n-1) is 0.
    tie_share = tie_term / (n * (n - 1)) if n > 1 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_share))
        u = {"greater": u1, "less": n1 * n2 - u1, "two-sided": np.maximum(u1, n1 * n2 - u1)}[alternative]
        z = (u - n1 * n2 / 2 - 0.5) / s
    p = stats.norm.sf(z) * (2 if alternative == "two-sided" else 1)
    p = np.where((n2 > 0) & (s > 0) & np.isfinite(z), np.clip(p, 0.0, 1.0), 1.0)
    return names, u1, p


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for the positives in ``labels`` (ties count one half),
    by the rank formula U / (n_pos n_neg); equals ``sklearn.metrics.roc_auc_score``. NaN without
    positives or negatives."""
    x = np.asarray(scores, dtype=float)
    positive = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if x.shape != positive.shape:
        raise ValueError("scores and labels must have one length")
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(x)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
