"""cellang.perturbation.validation: every metric, truth set and baseline on inputs with a known answer;
the benchmark script's verdict and table on a made-up result. No real checkpoint runs here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cellang.perturbation import validation as v
from cellang.tokenizers.cells import CLS_ID

GENES = [f"G{i}" for i in range(10)]


# ranking_check -------------------------------------------------------------------------------------------

def test_auroc_of_a_perfect_ranking_is_one_reversed_zero_ties_half() -> None:
    scores = pd.Series(np.arange(10, 0, -1, dtype=float), index=GENES)  # G0 highest
    perfect = v.ranking_check(scores, ["G0", "G1", "G2"], top_n=3)
    assert perfect.auroc == 1.0 and perfect.hits_top_n == 3 and perfect.n_true_scored == 3
    assert perfect.p < 0.05
    reversed_ = v.ranking_check(scores, ["G7", "G8", "G9"], top_n=3)
    assert reversed_.auroc == 0.0 and reversed_.hits_top_n == 0 and reversed_.p > 0.9
    tied = v.ranking_check(pd.Series(1.0, index=GENES), ["G3", "G5"])
    assert tied.auroc == 0.5


def test_ranking_check_counts_only_scored_true_genes_and_drops_nan() -> None:
    scores = {"A": 3.0, "B": 2.0, "C": float("nan"), "D": 1.0}
    check = v.ranking_check(scores, ["A", "C", "Z"], top_n=1)
    assert check.n_genes == 3 and check.n_true == 3 and check.n_true_scored == 1
    assert check.auroc == 1.0 and check.hits_top_n == 1 and check.top_n == 1
    none = v.ranking_check(scores, ["Z"])
    assert math.isnan(none.auroc) and none.p == 1.0 and none.hits_top_n == 0
    assert set(check.as_dict()) == {"auroc", "p", "n_genes", "n_true", "n_true_scored", "top_n", "hits_top_n"}


def test_top_n_ties_are_broken_by_gene_name() -> None:
    scores = pd.Series({"B": 1.0, "A": 1.0, "C": 0.0})
    assert v.ranking_check(scores, ["A"], top_n=1).hits_top_n == 1
    assert v.ranking_check(scores, ["B"], top_n=1).hits_top_n == 0


def test_random_band_holds_one_half_narrows_with_more_genes_and_is_seeded() -> None:
    small = v.random_auroc_band([(5, 50)], draws=500)
    large = v.random_auroc_band([(50, 500)], draws=500)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert v.random_auroc_band([(5, 50)], draws=500) == small
    two_folds = v.random_auroc_band([(5, 50), (5, 50)], draws=500)
    assert two_folds[1] - two_folds[0] < small[1] - small[0]  # the mean of two folds varies less
    assert all(math.isnan(x) for x in v.random_auroc_band([(0, 10)]))


# per-gene scores ----------------------------------------------------------------------------------------

def test_aggregate_pairs_mean_over_expressing_cells_or_all_cells() -> None:
    genes = ["A", "A", "B", "C", "C", "C"]
    values = [1.0, 3.0, 4.0, 1.0, 1.0, float("nan")]
    cells = [0, 1, 0, 0, 1, 2]
    expressing = v.aggregate_pairs(genes, values, cells, n_cells=4)
    assert expressing.to_dict() == {"A": 2.0, "B": 4.0, "C": 1.0}
    everywhere = v.aggregate_pairs(genes, values, cells, n_cells=4, absent_as_zero=True)
    assert everywhere.to_dict() == {"A": 1.0, "B": 1.0, "C": 0.5}
    with pytest.raises(ValueError, match="twice"):
        v.aggregate_pairs(["A", "A"], [1.0, 2.0], [0, 0], n_cells=1)
    with pytest.raises(ValueError, match="n_cells"):
        v.aggregate_pairs(genes, values, cells, n_cells=1, absent_as_zero=True)


def test_expression_rank_scores_top_gene_first_absent_zero() -> None:
    names = {10: "TOP", 11: "MID", 12: "LOW", 13: "ONLY2"}
    tokens = [np.array([CLS_ID, 10, 11, 12]), np.array([CLS_ID, 10, 13])]
    scores = v.expression_rank_scores(tokens, names)
    # cell 1: L=3 -> TOP 1, MID 2/3, LOW 1/3; cell 2: L=2 -> TOP 1, ONLY2 1/2; mean over the 2 cells
    assert scores.to_dict() == pytest.approx({"LOW": 1 / 6, "MID": 1 / 3, "ONLY2": 1 / 4, "TOP": 1.0})
    assert list(scores.index) == sorted(scores.index)
    assert v.expression_rank_scores(tokens, names.__getitem__).equals(scores)


def test_mean_difference_is_start_minus_goal_and_finds_the_planted_gene() -> None:
    rng = np.random.default_rng(0)
    expression = rng.random((20, 5))
    expression[:10, 2] += 3.0  # higher in the start cells
    expression[10:, 4] += 3.0  # higher in the goal cells
    names = ["a", "b", "up", "c", "down"]
    start = np.arange(10)
    diff = v.mean_difference_scores(expression, names, start, np.arange(10, 20))
    assert diff.idxmax() == "up" and diff.idxmin() == "down" and diff["up"] > 2.5 and diff["down"] < -2.5
    mask = np.zeros(20, bool)
    mask[:10] = True
    import scipy.sparse as sp

    assert v.mean_difference_scores(sp.csr_matrix(expression), names, mask, ~mask).equals(diff)
    with pytest.raises(ValueError):
        v.mean_difference_scores(expression, names, np.array([], dtype=int), start)


def test_random_scores_are_seeded_and_depend_only_on_the_gene_set() -> None:
    first = v.random_scores(["c", "a", "b"], seed=3)
    assert first.equals(v.random_scores(["a", "b", "c", "a"], seed=3))
    assert not first.equals(v.random_scores(["a", "b", "c"], seed=4))
    assert list(first.index) == ["a", "b", "c"] and ((first >= 0) & (first < 1)).all()


def test_split_halves_cover_every_cell_once_and_are_seeded() -> None:
    a, b = v.split_halves(11, seed=2)
    assert len(a) == 6 and len(b) == 5 and sorted([*a, *b]) == list(range(11))
    assert all(np.array_equal(x, y) for x, y in zip((a, b), v.split_halves(11, seed=2)))
    assert not np.array_equal(a, v.split_halves(11, seed=3)[0])


# truth: DE genes, derived markers, matched controls ---------------------------------------------------------

def planted_cells(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """60 cells x 30 genes of log-normalised Poisson noise; gene UP is high in the first 30 (start), gene
    DOWN in the last 30 (goal)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, size=(60, 30)).astype(float)
    counts[:30, 0] = rng.poisson(30.0, size=30)
    counts[30:, 1] = rng.poisson(30.0, size=30)
    names = ["UP", "DOWN", *(f"N{i}" for i in range(28))]
    start = np.zeros(60, bool)
    start[:30] = True
    return np.log1p(counts), names, start


def test_de_truth_picks_the_planted_up_gene_only() -> None:
    expression, names, start = planted_cells()
    assert v.de_truth(expression, names, start, ~start) == ["UP"]
    assert v.de_truth(expression, names, ~start, start) == ["DOWN"]  # the other direction
    assert v.de_truth(expression, names, start, ~start, min_logfc=10.0) == []  # the fold-change threshold holds
    table = v.rank_genes_groups_table(expression, names, start)
    assert list(table.columns) == ["gene", "score", "logfc", "padj"] and table["gene"].iloc[0] == "UP"
    with pytest.raises(ValueError, match="both"):
        v.rank_genes_groups_table(expression, names, start, start)


def test_derive_markers_needs_every_table_that_measured_the_gene() -> None:
    one = pd.DataFrame({"gene": ["M1", "M2", "X"], "score": [9.0, 8.0, 7.0], "logfc": [3.0, 2.0, 2.0],
                        "padj": [1e-5, 1e-4, 1e-3]})
    two = pd.DataFrame({"gene": ["M1", "X"], "score": [5.0, 1.0], "logfc": [2.0, 0.1], "padj": [1e-3, 0.5]})
    # X fails in the second table; M2 is not measured there, so its mean score is 8 against M1's (9 + 5) / 2
    assert v.derive_markers([one, two]) == ["M2", "M1"]
    assert v.derive_markers([one, two], top=1) == ["M2"]
    assert v.derive_markers([]) == []


def test_matched_controls_have_similar_expression_and_never_markers() -> None:
    rng = np.random.default_rng(1)
    levels = pd.Series(rng.gamma(1.0, 1.0, size=400), index=[f"g{i}" for i in range(400)])
    markers = list(levels.sort_values().index[::40])  # 10 markers across the whole range
    excluded = ["g1", "g2", "g3"]
    controls = v.matched_controls(levels, markers, exclude=excluded, neighbours=5, seed=0)
    assert sorted(controls) == sorted(markers)
    chosen = list(controls.values())
    assert len(set(chosen)) == len(chosen)  # each control once
    assert not set(chosen) & (set(markers) | set(excluded))
    gaps = [abs(levels[m] - levels[c]) for m, c in controls.items()]
    assert max(gaps) < 0.2 * levels.std()
    assert controls == v.matched_controls(levels, markers, exclude=excluded, neighbours=5, seed=0)
    assert controls != v.matched_controls(levels, markers, exclude=excluded, neighbours=5, seed=1)
    assert v.matched_controls(levels, ["not_a_gene"]) == {}
    with pytest.raises(ValueError, match="no control"):
        v.matched_controls(levels.head(3), list(levels.index[:2]), exclude=[levels.index[2]])


# a tiny encoder end to end: the model finds the planted gene, the expression-rank baseline does not --------

def test_planted_gene_model_beats_expression_rank() -> None:
    from cellang.perturbation.engine import Perturber, plan_perturbations
    from tests.perturb_fixtures import cells, planted_encoder

    model = planted_encoder(planted=7)
    tokens = cells([11, 12, 13, 7], [11, 12, 13, 14, 7], [12, 11, 13, 7], [11, 12, 13])
    plan = plan_perturbations(tokens, None, "delete")
    scores = Perturber(model, pooling="cls").score(tokens, plan)

    def name(token: int) -> str:
        return f"T{token}"

    genes = [name(int(g)) for g in plan.gene_ids]
    model_scores = v.aggregate_pairs(genes, scores.shift, plan.rows, len(tokens))
    baseline = v.expression_rank_scores(tokens, name)
    assert v.ranking_check(model_scores, ["T7"]).auroc == 1.0
    assert v.ranking_check(baseline, ["T7"]).auroc == 0.25  # last in each cell: above T14 (in one cell) only
    assert v.ranking_check(v.random_scores(model_scores.index, 0), ["T7"]).n_true_scored == 1


# the script: verdict and table ----------------------------------------------------------------------------

def test_script_verdict_and_markdown() -> None:
    from tests.scripts import load_script

    script = load_script("benchmark_deletion_validity")
    row = {"validation": "state consistency", "data": "x: a -> b", "cells_scored": 10, "genes": 100, "positives": 5,
           "auroc": {"model vs controls": 0.65, "model": 0.8, "model, all cells": 0.7, "expression rank": 0.6,
                     "mean difference": 0.75, "random": 0.5}, "hits_top_n": dict.fromkeys(script.SCORERS, 1), "top_n": 50,
           "random_band": (0.4, 0.6)}
    assert script.verdict(row) == "yes"
    assert script.verdict({**row, "auroc": {**row["auroc"], "mean difference": 0.9}}) == "no: below mean difference"
    assert script.verdict({**row, "random_band": (0.2, 0.85)}) == "no: within random range"
    missing = dict.fromkeys(script.MODELS, float("nan"))
    assert script.verdict({**row, "auroc": {**row["auroc"], **missing}}) == "n/a"
    assert script.verdict({**row, "auroc": {**row["auroc"], "model": 0.7, "model vs controls": 0.8}}) == "yes"
    text = script.markdown({"model": "m", "checkpoint": "c", "cells_note": "n.", "pairs": 10, "model_seconds": 6.0,
                            "seconds": 60.0, "threads": 2, "platform": "p", "rows": [row], "command": "python x"})
    assert "| state consistency | x: a -> b | 10 | 100 (5) | 0.650 | 0.800 | 0.700 | 0.600 | 0.750 | 0.500 | 0.40-0.60 " \
           "| yes |" \
        in text and "Command: `python x`" in text


def test_script_cell_type_labels_exist_in_the_atlas() -> None:
    from cellang.atlas import atlas_obs
    from cellang.perturbation.immune_markers import GMT_SETS, IMMUNE_TYPES
    from tests.scripts import load_script

    script = load_script("benchmark_deletion_validity")
    for dataset, types in IMMUNE_TYPES.items():
        labels = set(atlas_obs(dataset)["cell_type"].astype(str))
        assert set(types) <= labels, dataset
        assert set(types.values()) <= set(GMT_SETS) | {"Treg"}
    for pair in script.STATE_PAIRS:
        labels = set(atlas_obs(pair.dataset)[pair.column].astype(str))
        assert {pair.start, pair.goal} <= labels


def test_derived_markers_come_from_the_other_datasets_only() -> None:
    from cellang.perturbation.immune_markers import IMMUNE_TYPES, derived_markers

    markers, notes = derived_markers(v.atlas_expression)
    assert set(markers) == {(d, k) for d, types in IMMUNE_TYPES.items() for k in set(types.values())}
    for key, note in notes.items():
        dataset, kind = key.split("/")
        assert dataset not in note["from"] and note["markers"] == markers[(dataset, kind)]
    assert {"CD8A", "CD8B"} & set(markers[("wu2020_tcells", "CD8 T")])
    assert {"MS4A1", "CD79A"} & set(markers[("spectra_immune", "B")])


def test_added_information_finds_a_model_that_knows_more_than_the_baseline() -> None:
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(400)]
    baseline = pd.Series(rng.normal(size=400), index=genes)
    informative = pd.Series(rng.normal(size=400), index=genes)
    logit = 1.5 * baseline + 1.5 * informative
    truth = [g for g, x in zip(genes, logit) if rng.random() < 1 / (1 + np.exp(-x))]
    knows = v.added_information(informative, baseline, truth)
    assert knows["coef"] > 0.5 and knows["p"] < 1e-6 and knows["genes"] == 400
    noise = v.added_information(pd.Series(rng.normal(size=400), index=genes), baseline, truth)
    assert noise["p"] > 0.01 and noise["baseline_coef"] > 0.5
    assert np.isnan(v.added_information(informative[:5], baseline[:5], truth)["p"]), "too few genes to ask"


def test_fine_tuned_state_consistency_never_trains_on_the_half_the_truth_comes_from(monkeypatch) -> None:
    import cellang.embedding.classify as classify
    from tests.scripts import load_script

    script = load_script("benchmark_deletion_validity")
    seen: list[set[str]] = []

    class Stop(Exception):
        pass

    def record_cells(adata, column, model, **settings):  # type: ignore[no-untyped-def]
        seen.append(set(adata.obs_names.astype(str)))
        assert column == "state" and set(adata.obs["state"].astype(str)) == {"myotube", "myoblast"}
        raise Stop

    monkeypatch.setattr(classify, "fine_tune_classifier", record_cells)
    run = script.Run(None, seed=0, fine_tune_minutes=1.0)
    pair = script.STATE_PAIRS[0]
    with pytest.raises(Stop):
        script.state_consistency(run, pair, cells_per_fold=3, top_n=10)
    adata = run.data(pair.dataset)[0]
    labels = adata.obs[pair.column].astype(str).to_numpy()
    start, goal = np.flatnonzero(labels == pair.start), np.flatnonzero(labels == pair.goal)
    held_start = start[v.split_halves(start.size, 0)[1]]
    held_goal = goal[v.split_halves(goal.size, 1)[1]]
    held = set(adata.obs_names[np.concatenate((held_start, held_goal))].astype(str))
    assert seen and seen[0] and not seen[0] & held
