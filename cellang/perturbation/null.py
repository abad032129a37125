"""The null of every perturbation run: each gene's score against expression-matched controls in the same cells.

A deletion near the top of a cell's encoding moves the cell more than one near the bottom, whatever the gene (the
encoder reads order), so a raw mean shift ranks highly expressed genes first, and "moves the cell" says nothing
until it is compared with what deleting some other gene of the same expression does. Each (cell, gene) pair is
compared with its controls: the ``neighbours`` scored pairs nearest to it by position in the same cell (the genes
ranked just above and below it; for a gene the cell lacks, other absent genes):

    z = (score - line(position)) / scatter

where line is the least-squares line through the controls' (position, score) and scatter their root-mean-square
distance from it (dividing by n - 2). The line follows the trend where every control sits on one side, at the top of
a cell. A gene's ``effect`` is the sum of its z over the cells it was scored in divided by (cells + PRIOR_CELLS):
its mean z, shrunk toward 0 when it was seen in few cells. Its p is the two-sided Wilcoxon signed-rank test of its z
values against 0, which is the exact sign-flip permutation test of their ranks (under no effect a pair's z is
symmetric about 0); q is Benjamini-Hochberg over the genes reported.

In a run over every expressed gene the controls of each pair are already scored; a run over a gene list first gets
control pairs added to its plan (:func:`with_controls`), and only the asked genes are reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from cellang.perturbation.engine import PerturbationPlan
from cellang.stats import benjamini_hochberg
from cellang.tokenizers.cells import N_SPECIAL

NEIGHBOURS = 10  # controls per (cell, gene) pair
MIN_CONTROLS = 3  # a line through fewer controls has no scatter to measure
PRIOR_CELLS = 3  # effect = sum of z / (cells + PRIOR_CELLS): a gene seen in one cell keeps a quarter of its z
EFFECT_COLUMNS = ["gene", "cells", "effect", "p", "q"]


def window(i: int, n: int, size: int) -> tuple[int, int]:
    """[lo, hi) of the ``size`` + 1 places around place i of n sorted places (i itself inside, not a control)."""
    size = min(size, n - 1)
    lo = min(max(i - size // 2, 0), n - size - 1)
    return lo, lo + size + 1


def with_controls(plan: PerturbationPlan, tokens: list[np.ndarray], vocabulary_size: int, *,
                  neighbours: int = NEIGHBOURS, seed: int = 0) -> tuple[PerturbationPlan, np.ndarray]:
    """(the plan with each pair's control pairs added, True where a pair is there only as a control).

    A present gene's controls are the genes at the places around it in the same cell (:func:`window`); an absent
    gene's (overexpressed into a cell that lacks it) are ``neighbours`` vocabulary genes that cell lacks, drawn
    with a generator seeded by (seed, cell). Pairs already planned are not added twice."""
    rows, genes, positions = [plan.rows], [plan.gene_ids], [plan.positions]
    seen = set(zip(plan.rows.tolist(), plan.gene_ids.tolist()))
    for row in np.unique(plan.rows).tolist():
        cell = np.asarray(tokens[row], dtype=np.int64)
        for position in plan.positions[plan.rows == row].tolist():
            if position >= 1:
                lo, hi = window(position - 1, len(cell) - 1, neighbours)
                candidates = [(int(cell[q + 1]), q + 1) for q in range(lo, hi)]
            else:
                absent = np.setdiff1d(np.arange(N_SPECIAL, vocabulary_size), cell)
                picked = np.random.default_rng((seed, row)).choice(absent, size=min(neighbours, absent.size),
                                                                   replace=False)
                candidates = [(int(g), -1) for g in picked]
            for gene, place in candidates:
                if (row, gene) not in seen:
                    seen.add((row, gene))
                    rows.append(np.array([row]))
                    genes.append(np.array([gene]))
                    positions.append(np.array([place]))
    all_rows, all_genes, all_positions = (np.concatenate(a).astype(np.int64) for a in (rows, genes, positions))
    control = np.zeros(all_rows.size, dtype=bool)
    control[len(plan):] = True
    order = np.lexsort((all_genes, all_positions < 0, np.where(all_positions < 0, 0, all_positions), all_rows))
    return (PerturbationPlan(all_rows[order], all_genes[order], all_positions[order], plan.mode), control[order])


def matched_z(cells: np.ndarray, positions: np.ndarray, values: np.ndarray,
              neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Each pair's z against its controls (module docstring); NaN for a pair whose cell has fewer than
    MIN_CONTROLS other scored pairs of its kind (present or absent) or whose value is NaN.

    cells: the cell of each pair (any labels); positions: the gene's place in that cell's encoding (1 = top;
    < 1 = a gene the cell lacks); values: the score (goal shift, or shift)."""
    cells, positions = np.asarray(cells), np.asarray(positions, dtype=float)
    values = np.asarray(values, dtype=float)
    z = np.full(values.size, np.nan)
    finite = np.isfinite(values)
    spread = float(np.std(values[finite])) if finite.any() else 0.0
    floor = 1e-3 * spread + 1e-12  # a scatter of 0 (identical controls) must not give an infinite z
    absent = positions < 1
    groups = pd.DataFrame({"cell": cells, "absent": absent}).groupby(["cell", "absent"], sort=False).indices
    for index in groups.values():
        index = index[finite[index]]
        if index.size < MIN_CONTROLS + 1:
            continue
        index = index[np.argsort(positions[index], kind="stable")]
        x, y = positions[index], values[index]
        sums = [np.concatenate(([0.0], np.cumsum(a))) for a in (np.ones_like(x), x, y, x * x, x * y, y * y)]
        n = index.size
        size = min(neighbours, n - 1)
        lo = np.clip(np.arange(n) - size // 2, 0, n - size - 1)
        hi = lo + size + 1
        k, sx, sy, sxx, sxy, syy = (s[hi] - s[lo] - own for s, own in zip(sums, (1.0, x, y, x * x, x * y, y * y)))
        denominator = k * sxx - sx * sx
        slope = np.where(denominator > 1e-12 * np.maximum(k * sxx, 1.0), (k * sxy - sx * sy) / np.where(
            denominator == 0, 1.0, denominator), 0.0)
        intercept = (sy - slope * sx) / k
        residual = np.maximum(syy - intercept * sy - slope * sxy, 0.0)
        scatter = np.sqrt(residual / np.maximum(k - 2, 1))
        z[index] = (y - (intercept + slope * x)) / np.maximum(scatter, floor)
    return z


def signed_rank_p(groups: dict[str, np.ndarray]) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank p of each group's values against 0 (1.0 for a group of one value or of
    zeros). Groups of the same size are tested together (scipy along an axis), which is what keeps thousands of
    genes fast."""
    by_size: dict[int, list[str]] = {}
    for name, values in groups.items():
        by_size.setdefault(values.size, []).append(name)
    out: dict[str, float] = {}
    for size, names in by_size.items():
        if size < 2:
            out.update({name: 1.0 for name in names})
            continue
        stacked = np.vstack([groups[name] for name in names])
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.atleast_1d(wilcoxon(stacked, axis=1, zero_method="wilcox").pvalue)
        out.update({name: float(v) if np.isfinite(v) else 1.0 for name, v in zip(names, p)})
    return out


def gene_effects(genes: np.ndarray, z: np.ndarray, *, reported: np.ndarray | None = None,
                 min_cells: int = 1) -> pd.DataFrame:
    """One row per gene (EFFECT_COLUMNS): the cells with a z, the effect, p and q (module docstring).

    genes: the gene of each pair; z: :func:`matched_z`; reported: False for pairs that are only controls (their
    genes get no row); genes with a z in fewer than ``min_cells`` cells get no row. Sorted by gene name."""
    genes = np.asarray(genes).astype(str)
    keep = np.isfinite(z) & (np.ones(genes.size, bool) if reported is None else np.asarray(reported, bool))
    frame = pd.DataFrame({"gene": genes[keep], "z": z[keep]})
    groups = {name: group.to_numpy() for name, group in frame.groupby("gene", sort=True)["z"]}
    groups = {name: values for name, values in groups.items() if values.size >= max(1, min_cells)}
    if not groups:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "gene" else float) for c in EFFECT_COLUMNS})
    names = sorted(groups)
    cells = np.array([groups[n].size for n in names])
    effect = np.array([groups[n].sum() for n in names]) / (cells + PRIOR_CELLS)
    p_of = signed_rank_p(groups)
    p = np.array([p_of[n] for n in names])
    return pd.DataFrame({"gene": names, "cells": cells, "effect": effect, "p": p, "q": benjamini_hochberg(p)})


__all__ = ["EFFECT_COLUMNS", "MIN_CONTROLS", "NEIGHBOURS", "PRIOR_CELLS", "gene_effects", "matched_z",
           "signed_rank_p", "with_controls", "window"]
