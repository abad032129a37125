"""Overlap tests and BH correction agree with scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests

from cellang.stats import benjamini_hochberg, overlap_p_value


@pytest.mark.parametrize("overlap,n_pred,n_true,universe", [
    (0, 5, 5, 100), (1, 4, 4, 18000), (3, 10, 12, 500), (10, 10, 10, 20), (2, 50, 3, 1000), (7, 40, 30, 18342),
])
def test_overlap_p_matches_scipy_fisher_greater(overlap, n_pred, n_true, universe) -> None:
    table = [[overlap, n_pred - overlap], [n_true - overlap, universe - n_pred - n_true + overlap]]
    expected = fisher_exact(table, alternative="greater").pvalue
    assert overlap_p_value(overlap, n_pred, n_true, universe) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_overlap_p_rejects_impossible_tables() -> None:
    with pytest.raises(ValueError, match="impossible overlap"):
        overlap_p_value(6, 5, 10, 100)
    with pytest.raises(ValueError, match="impossible overlap"):
        overlap_p_value(1, 5, 10, 8)


def test_bh_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 7, 1000):
        p = np.concatenate([rng.uniform(size=size), rng.uniform(0, 1e-4, size=size // 3)])
        p[: size // 5] = p[size // 5]  # ties
        expected = multipletests(p, alpha=0.05, method="fdr_bh")[1]
        np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12)


def test_bh_bad_input() -> None:
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([0.1, float("nan")])
