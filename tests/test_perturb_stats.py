"""Statistics of perturbation scores against scipy / sklearn on fixtures with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from cellang.perturbation.stats import (
    PRIOR_CELLS,
    RANK_COLUMNS,
    enrich_top_hits,
    prerank_enrichment,
    rank_genes,
    score_column,
    validate_known,
)
from cellang.stats import auroc, benjamini_hochberg, mann_whitney_one_vs_rest


def scores_fixture(seed: int = 0) -> pd.DataFrame:
    """30 genes in 12 cells; gene G00 shifts cells far more than the others; shifts rounded so they tie."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in range(12):
        for g in range(30):
            if rng.random() < 0.2:
                continue  # not every gene is in every cell
            shift = 0.5 + rng.normal(0, 0.05) if g == 0 else abs(rng.normal(0.1, 0.05))
            rows.append({"cell": f"c{cell}", "gene": f"G{g:02d}", "position": g + 1, "shift": round(shift, 2),
                         "goal_shift": round(rng.normal(0.2 if g < 3 else 0.0, 0.05), 2)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_one_vs_rest_rank_sum_equals_scipy(alternative: str) -> None:
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=400), 1)  # many ties
    groups = rng.integers(0, 9, size=400).astype(str)
    names, u, p = mann_whitney_one_vs_rest(values, groups, alternative)
    for name, u_k, p_k in zip(names, u, p):
        expected = stats.mannwhitneyu(values[groups == name], values[groups != name], alternative=alternative,
                                      method="asymptotic")
        assert u_k == pytest.approx(expected.statistic) and p_k == pytest.approx(expected.pvalue, rel=1e-10)


def test_rank_sum_edge_cases() -> None:
    names, _, p = mann_whitney_one_vs_rest([1.0, 1.0, 1.0], ["a", "b", "b"])
    assert list(names) == ["a", "b"] and list(p) == [1.0, 1.0]  # all tied: no evidence
    assert mann_whitney_one_vs_rest([1.0, 2.0], ["a", "a"])[2].tolist() == [1.0]  # no rest
    assert mann_whitney_one_vs_rest([0.3], ["a"])[2].tolist() == [1.0]  # one value: no rest, no tie term
    assert mann_whitney_one_vs_rest([], [])[0].size == 0
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_one_vs_rest([1.0], ["a"], "bigger")


def test_rank_genes_one_gene_in_one_cell() -> None:
    table = rank_genes(pd.DataFrame({"cell": ["c0"], "gene": ["MYOD1"], "shift": [0.2], "goal_shift": [0.1]}))
    assert table["gene"].tolist() == ["MYOD1"] and table["p"].tolist() == [1.0] and table["q"].tolist() == [1.0]


def test_rank_genes_planted_gene_first_with_scipy_p_and_bh_q() -> None:
    scores = scores_fixture()
    table = rank_genes(scores, "shift")
    assert list(table.columns) == RANK_COLUMNS
    assert table.iloc[0]["gene"] == "G00" and table.iloc[0]["rank"] == 1
    mine = scores.loc[scores["gene"] == "G00", "shift"]
    rest = scores.loc[scores["gene"] != "G00", "shift"]
    expected = stats.mannwhitneyu(mine, rest, alternative="greater", method="asymptotic").pvalue
    assert table.iloc[0]["p"] == pytest.approx(expected, rel=1e-10)
    assert table.iloc[0]["cells"] == len(mine) and table.iloc[0]["mean_score"] == pytest.approx(mine.mean())
    np.testing.assert_allclose(table["q"], benjamini_hochberg(table["p"]))
    assert table["ranking_score"].is_monotonic_decreasing
    expected = table["mean_score"] * table["cells"] / (table["cells"] + PRIOR_CELLS)
    assert np.allclose(table["ranking_score"], expected)
    assert table.iloc[0]["q"] < 0.05 and (table["q"].iloc[1:] > 0.05).all()


def test_rank_genes_defaults_to_the_goal_score_two_sided_and_filters_by_cells() -> None:
    scores = scores_fixture()
    assert score_column(scores) == "goal_shift"
    assert score_column(scores.assign(goal_shift=np.nan)) == "shift"
    table = rank_genes(scores)
    assert table.attrs["score"] == "goal_shift" and table.attrs["alternative"] == "two-sided"
    assert set(table["gene"].head(3)) == {"G00", "G01", "G02"}  # the planted goal movers
    few = rank_genes(scores, min_cells=1000)
    assert few.empty and list(few.columns) == RANK_COLUMNS


def test_auroc_equals_sklearn_and_known_answers() -> None:
    rng = np.random.default_rng(2)
    scores = np.round(rng.normal(size=200), 1)
    labels = rng.random(200) < 0.3
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert np.isnan(auroc([1, 2], [False, False]))


def test_validate_known_auroc_and_hypergeometric_top_n() -> None:
    table = pd.DataFrame({"rank": np.arange(1, 201), "gene": [f"G{i:03d}" for i in range(200)],
                          "mean_score": np.linspace(1, 0, 200)})
    known = {"G000", "G001", "G005", "G150", "NOT_RANKED"}
    result = validate_known(table, known, top_n=10)
    labels = table["gene"].isin(known)
    assert result.auroc == pytest.approx(roc_auc_score(labels, table["mean_score"]))
    assert (result.n_known, result.n_known_ranked, result.n_ranked) == (5, 4, 200)
    assert result.hits_top_n == 3 and result.p_top_n == pytest.approx(stats.hypergeom.sf(2, 200, 4, 10))
    assert result.known_ranks == {"G000": 1, "G001": 2, "G005": 6, "G150": 151}
    expected = stats.mannwhitneyu(table["mean_score"][labels], table["mean_score"][~labels], alternative="greater",
                                  method="asymptotic").pvalue
    assert result.p_auroc == pytest.approx(expected)
    assert "AUROC" in result.sentence() and "Top 10: 3 known" in result.sentence()
    nothing = validate_known(table, {"XYZ"})
    assert np.isnan(nothing.auroc) and "cannot be validated" in nothing.sentence()


def corpus_fixture() -> dict[str, list[str]]:
    genes = [f"G{i:03d}" for i in range(200)]
    return {"TOP_SET": genes[:20], "BOTTOM_SET": genes[-20:], "MIXED": genes[::10], "TINY": genes[:2]}


def ranking_fixture() -> pd.DataFrame:
    return pd.DataFrame({"rank": np.arange(1, 201), "gene": [f"G{i:03d}" for i in range(200)],
                         "mean_score": np.linspace(1, -1, 200)})


def test_top_hit_enrichment_finds_the_planted_set() -> None:
    table = enrich_top_hits(ranking_fixture(), corpus_fixture(), top_n=20)
    assert table.iloc[0]["name"] == "TOP_SET" and table.iloc[0]["overlap"] == "20/20"
    assert table.iloc[0]["q"] < 1e-10 and "BOTTOM_SET" not in set(table["name"])


def test_prerank_is_offline_seeded_and_signed() -> None:
    first = prerank_enrichment(ranking_fixture(), corpus_fixture(), permutations=50, seed=3, min_size=5)
    again = prerank_enrichment(ranking_fixture(), corpus_fixture(), permutations=50, seed=3, min_size=5)
    pd.testing.assert_frame_equal(first, again)
    by_name = first.set_index("name")
    assert "TINY" not in by_name.index  # below min_size
    assert by_name.loc["TOP_SET", "nes"] > 0 > by_name.loc["BOTTOM_SET", "nes"]
    assert by_name.loc["TOP_SET", "p"] < 0.05 and set(by_name.loc["TOP_SET", "lead_genes"].split()) <= \
        set(corpus_fixture()["TOP_SET"])
    # 50 permutations cannot show p < 1/51: the planted set sits at that floor, not at 0
    assert (first["p"] >= 1 / 51).all() and (first["fdr"] >= 1 / 51).all()
    assert by_name.loc["TOP_SET", "p"] == 1 / 51
