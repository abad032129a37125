"""The null of every deletion run: expression-matched controls, effects, p and q (cellang.perturbation.null)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from cellang.perturbation.engine import PerturbationPlan, plan_perturbations
from cellang.perturbation.null import gene_effects, matched_z, with_controls, window


def _run(n_cells: int = 60, n_genes: int = 400, length: int = 120, planted: dict[int, float] | None = None,
         always_top: int | None = None, seed: int = 0):
    """Per-pair scores of a deletion run in which the score depends on the position only (falling fastest at the
    top), plus noise, plus a planted offset for the genes in ``planted``."""
    rng = np.random.default_rng(seed)
    cells, genes, positions = [], [], []
    for cell in range(n_cells):
        order = rng.permutation(n_genes)[:length]
        if always_top is not None:
            order = np.concatenate(([always_top], order[order != always_top][: length - 1]))
        cells += [cell] * length
        genes += order.tolist()
        positions += list(range(1, length + 1))
    positions = np.array(positions)
    genes = np.array(genes)
    values = np.exp(-positions / 40) + rng.normal(0, 0.05, positions.size)
    for gene, offset in (planted or {}).items():
        values[genes == gene] += offset
    return np.array(cells), genes.astype(str), positions, values


def test_with_no_effect_the_p_values_are_uniform():
    cells, genes, positions, values = _run()
    table = gene_effects(genes, matched_z(cells, positions, values), min_cells=5)
    assert len(table) > 300
    assert kstest(table["p"], "uniform").pvalue > 0.01
    assert (table["q"] < 0.05).sum() == 0


def test_a_gene_always_at_the_top_is_not_a_hit_for_being_there():
    cells, genes, positions, values = _run(always_top=7)
    table = gene_effects(genes, matched_z(cells, positions, values), min_cells=5).set_index("gene")
    assert table.loc["7", "cells"] == 60
    raw_mean = {gene: values[genes == gene].mean() for gene in table.index}
    assert max(raw_mean, key=raw_mean.get) == "7", "by its raw mean shift it would lead the list"
    assert table.loc["7", "q"] > 0.05, "the line through the controls follows the top of the cell"


def test_a_planted_gene_is_found_and_one_that_moves_away_has_a_negative_effect():
    cells, genes, positions, values = _run(planted={3: 0.1, 5: -0.1})
    table = gene_effects(genes, matched_z(cells, positions, values), min_cells=5)
    ordered = table.sort_values("effect", ascending=False)["gene"].tolist()
    assert ordered[0] == "3" and ordered[-1] == "5"
    hits = set(table.loc[table["q"] < 0.05, "gene"])
    assert hits == {"3", "5"}


def test_z_needs_controls_and_ignores_nan():
    z = matched_z(np.zeros(3), np.arange(1, 4), np.array([1.0, 2.0, 3.0]))
    assert np.isnan(z).all(), "two controls are too few"
    values = np.array([0.1, np.nan, 0.3, 0.2, 0.5, 0.4])
    z = matched_z(np.zeros(6), np.arange(1, 7), values)
    assert np.isnan(z[1]) and np.isfinite(np.delete(z, 1)).all()


def test_absent_genes_are_compared_with_absent_genes():
    cells = np.zeros(12)
    positions = np.array([1, 2, 3, 4, 5, 6, -1, -1, -1, -1, -1, -1])
    values = np.array([9, 8, 7, 6, 5, 4, 0.0, 0.1, -0.1, 0.05, -0.05, 0.0])
    z = matched_z(cells, positions, values)
    assert np.all(np.abs(z[6:]) < 5), "absent genes are not measured against the present genes' large shifts"


def test_window_keeps_its_size_at_the_edges():
    assert window(0, 100, 10) == (0, 11)
    assert window(99, 100, 10) == (89, 100)
    assert window(50, 100, 10) == (45, 56)
    assert window(0, 3, 10) == (0, 3)


def test_a_gene_list_gets_its_controls_and_only_its_genes_are_reported():
    tokens = [np.array([1, *range(10, 40)]), np.array([1, *range(39, 9, -1)])]
    plan = plan_perturbations(tokens, np.array([12, 30]), "delete")
    full, control = with_controls(plan, tokens, vocabulary_size=50, neighbours=4)
    assert len(full) > len(plan) and control.sum() == len(full) - len(plan)
    asked = set(zip(plan.rows.tolist(), plan.gene_ids.tolist()))
    assert {(r, g) for r, g, c in zip(full.rows.tolist(), full.gene_ids.tolist(), control) if not c} == asked
    assert len(set(zip(full.rows.tolist(), full.gene_ids.tolist()))) == len(full), "no pair twice"
    for row, gene, position in zip(full.rows, full.gene_ids, full.positions):
        assert tokens[row][position] == gene, "each control sits where it is in its cell"
    # in cell 0, gene 12 sits at place 3 and gene 30 at place 21: their controls are the two places either side
    assert set(full.positions[(full.rows == 0) & control].tolist()) == {1, 2, 4, 5, 19, 20, 22, 23}


def test_overexpressing_an_absent_gene_gets_absent_controls():
    tokens = [np.array([1, 10, 11, 12])]
    plan = PerturbationPlan(np.array([0]), np.array([30]), np.array([-1]), "overexpress")
    full, control = with_controls(plan, tokens, vocabulary_size=40, neighbours=5, seed=0)
    extra = full.gene_ids[control]
    assert len(extra) == 5 and not set(extra) & {1, 10, 11, 12, 30} and (full.positions[control] == -1).all()
    again, _ = with_controls(plan, tokens, vocabulary_size=40, neighbours=5, seed=0)
    assert np.array_equal(again.gene_ids, full.gene_ids), "seeded"


@pytest.mark.parametrize("min_cells", [1, 61])
def test_min_cells_drops_rarely_seen_genes(min_cells):
    cells, genes, positions, values = _run(n_cells=60)
    table = gene_effects(genes, matched_z(cells, positions, values), min_cells=min_cells)
    assert (table["cells"] >= min_cells).all() and (len(table) == 0) == (min_cells > 60)


def test_the_page_says_plainly_when_no_gene_is_a_hit():
    import pandas as pd

    from cellang.app.deletion import hits_sentence
    from cellang.perturbation.workflow import DeletionResult

    def result(q: list[float]) -> DeletionResult:
        ranked = pd.DataFrame({"gene": ["A", "B", "C"], "effect": [1.0, 0.5, -1.0], "q": q})
        return DeletionResult(pd.DataFrame(), ranked, None, None, "", {"score": "goal_shift", "mode": "delete"}, None)

    assert hits_sentence(result([0.2, 0.5, 0.01])).startswith("No deletion moves these cells toward the goal")
    assert hits_sentence(result([0.01, 0.5, 0.01])) == ("1 gene moves these cells toward the goal beyond their "
                                                        "expression-matched controls at q < 0.05: A.")


def test_baselines_sit_beside_the_effect_and_the_consensus_ranks_what_both_agree_on():
    import pandas as pd

    from cellang.app.deletion import ranked_frame
    from cellang.perturbation.stats import add_baselines, baseline_agreement
    from cellang.perturbation.workflow import DeletionResult

    table = pd.DataFrame({"rank": [1, 2, 3, 4], "gene": ["A", "B", "C", "D"], "direction": "toward goal",
                          "effect": [3.0, 2.0, 1.0, -1.0], "cells": 5, "p": 0.01, "q": 0.02})
    difference = pd.Series({"A": 0.1, "B": 2.0, "C": 1.0, "D": -1.0})
    expression = pd.Series({"A": 5.0, "B": 1.0, "C": 3.0, "D": 2.0})
    out = add_baselines(table, difference, expression)
    assert out["mean_difference"].tolist() == [0.1, 2.0, 1.0, -1.0]
    assert out["expression_rank"].tolist() == [1, 4, 2, 3]
    assert out.loc[out["gene"] == "B", "consensus"].item() == pytest.approx((0.75 + 1.0) / 2)
    assert baseline_agreement(out)["mean_difference"] == pytest.approx(0.4)
    result = DeletionResult(pd.DataFrame(), out, None, None, "", {"score": "goal_shift", "mode": "delete"}, None)
    assert ranked_frame(result, "targets", "consensus")["gene"].tolist() == ["B", "A", "C"]
    assert ranked_frame(result, "targets")["gene"].tolist() == ["A", "B", "C"]
    assert ranked_frame(result, "away")["gene"].tolist() == ["D"]
    no_goal = add_baselines(table, None, expression)
    assert no_goal["mean_difference"].isna().all() and "consensus" not in no_goal
