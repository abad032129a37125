"""Pair deletions: two genes deleted at once, beside each alone, and their interaction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellang.perturbation.engine import Perturber, PerturbError
from cellang.perturbation.pairs import pair_rows, rank_pairs, score_pairs
from tests.perturb_fixtures import cells, tiny_encoder


def test_pairs_are_the_genes_a_cell_holds_together():
    table = pair_rows(cells([3, 4, 5, 6], [4, 7], [5, 3]), [3, 5, 7, 4])
    got = sorted(zip(table["row"], table["first"], table["second"]))
    assert got == [(0, 3, 4), (0, 3, 5), (0, 4, 5), (1, 4, 7), (2, 3, 5)]
    first = table[(table["row"] == 2)].iloc[0]
    assert (first["first_position"], first["second_position"]) == (2, 1)  # positions in that cell's encoding


def test_pair_scores_equal_a_forward_pass_of_the_cell_without_both_genes():
    model = tiny_encoder()
    tokens = cells([3, 4, 5, 6, 8], [4, 5, 9, 10])
    perturber = Perturber(model)
    goal = torch.ones(16)
    pairs = score_pairs(perturber, tokens, [4, 5, 6], goal)
    assert len(pairs) == 4  # (4,5), (4,6), (5,6) in cell 0; (4,5) in cell 1
    for row in pairs.itertuples():
        kept = [t for p, t in enumerate(tokens[row.row]) if p not in (row.first_position, row.second_position)]
        original = perturber.embed([tokens[row.row]])[0]
        deleted = perturber.embed([np.array(kept)])[0]
        expected = float(torch.nn.functional.cosine_similarity(deleted[None].double(), goal[None].double())
                         - torch.nn.functional.cosine_similarity(original[None].double(), goal[None].double()))
        assert row.goal_shift == pytest.approx(expected, abs=1e-6)
        assert row.interaction == pytest.approx(row.goal_shift - row.first_alone - row.second_alone)
        assert row.shift > 0
    ranked = rank_pairs(pairs, {4: "A", 5: "B", 6: "C"})
    assert set(ranked["pair"]) == {"A+B", "A+C", "B+C"}
    assert ranked.set_index("pair").loc["A+B", "cells"] == 2 and "mean_interaction" in ranked


def test_what_a_pair_screen_cannot_do_is_said():
    perturber = Perturber(tiny_encoder())
    with pytest.raises(PerturbError, match="at least two genes"):
        score_pairs(perturber, cells([3, 4]), [3], None)
    with pytest.raises(PerturbError, match="no cell expresses two"):
        score_pairs(perturber, cells([3, 4], [5, 6]), [3, 5], None)
    with pytest.raises(PerturbError, match="at most 30 genes"):
        score_pairs(perturber, cells([3, 4]), list(range(3, 40)), None)
