"""The batched perturbation engine: known answers, batched == naive, determinism, edits, memory checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from cellang.perturbation.engine import (
    CPU_BATCH_TOKENS,
    Perturber,
    PerturbError,
    default_batch_tokens,
    estimate_memory,
    perturbed_tokens,
    plan_perturbations,
)
from cellang.perturbation.naive import edit_sequence, naive_scores
from cellang.tokenizers.cells import CLS_ID, PAD_ID, pad_rows
from tests.perturb_fixtures import BagModel, cells, planted_encoder, tiny_encoder

RNG = np.random.default_rng(0)
RANDOM_CELLS = [np.concatenate(([CLS_ID], RNG.choice(np.arange(3, 40), size=n, replace=False))) for n in (15, 3, 9, 1, 12)]


def test_deleting_the_planted_gene_moves_the_cell_most() -> None:
    # CLS pooling: the <cls> state sees "n copies of one gene (+ the planted one)", so only the planted
    # gene carries information (with mean pooling, dropping one of 2 common genes would change the mix)
    model = planted_encoder(planted=7)
    tokens = cells([11, 7, 12, 13, 14, 15], [20, 21, 22, 7, 23, 24, 25, 26], [30, 31, 7])
    plan = plan_perturbations(tokens, None, "delete")
    scores = Perturber(model, pooling="cls").score(tokens, plan)
    for row in range(3):
        mine = plan.rows == row
        planted = mine & (plan.gene_ids == 7)
        others = mine & (plan.gene_ids != 7)
        assert scores.shift[planted].item() > 3 * scores.shift[others].max()  # in every cell, by far
    assert (plan.gene_ids[np.argsort(-scores.shift)][:3] == 7).all()


@pytest.mark.parametrize("mode", ["delete", "overexpress"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("genes", [None, [5, 6, 7, 8, 9, 10, 11, 39]])
def test_batched_scores_equal_the_naive_loop(mode: str, pooling: str, genes: list[int] | None) -> None:
    model = tiny_encoder()
    plan = plan_perturbations(RANDOM_CELLS, genes, mode)
    goal = torch.randn(16, generator=torch.Generator().manual_seed(1))
    batched = Perturber(model, pooling=pooling, max_batch_tokens=40).score(RANDOM_CELLS, plan, goal)
    naive = naive_scores(model, RANDOM_CELLS, plan, pooling=pooling, goal=goal)
    assert len(plan) > 0 and batched.batches > 1
    np.testing.assert_allclose(batched.shift, naive.shift, atol=1e-5)
    np.testing.assert_allclose(batched.goal_shift, naive.goal_shift, atol=1e-5)


def test_scores_are_deterministic_and_do_not_depend_on_the_batch_size() -> None:
    model = tiny_encoder()
    plan = plan_perturbations(RANDOM_CELLS, None, "delete")
    first = Perturber(model, max_batch_tokens=40).score(RANDOM_CELLS, plan)
    again = Perturber(model, max_batch_tokens=40).score(RANDOM_CELLS, plan)
    large = Perturber(model, max_batch_tokens=10_000).score(RANDOM_CELLS, plan)
    assert np.array_equal(first.shift, again.shift)
    np.testing.assert_allclose(first.shift, large.shift, atol=1e-5)
    assert first.batches > large.batches == 1


def test_bf16_scores_keep_the_float32_ranking() -> None:
    model = tiny_encoder()
    plan = plan_perturbations(RANDOM_CELLS, None, "delete")
    goal = torch.randn(16, generator=torch.Generator().manual_seed(1))
    exact = Perturber(model, max_batch_tokens=40).score(RANDOM_CELLS, plan, goal)
    low = Perturber(model, max_batch_tokens=40, precision="bfloat16").score(RANDOM_CELLS, plan, goal)
    naive_low = naive_scores(model, RANDOM_CELLS, plan, goal=goal, precision="bfloat16")
    assert not np.array_equal(exact.shift, low.shift)  # bf16 really ran
    assert stats.spearmanr(exact.goal_shift, low.goal_shift)[0] > 0.9
    np.testing.assert_allclose(low.goal_shift, naive_low.goal_shift, atol=2e-2)
    with pytest.raises(PerturbError, match="precision must be one of"):
        Perturber(model, precision="float8")


def test_gathered_sequences_match_list_edits() -> None:
    tokens, lengths = pad_rows(RANDOM_CELLS), torch.tensor([len(c) for c in RANDOM_CELLS])
    for mode, genes in (("delete", None), ("overexpress", None), ("overexpress", [4, 5, 6, 7, 30])):
        plan = plan_perturbations(RANDOM_CELLS, genes, mode)
        out = perturbed_tokens(tokens, lengths, *(torch.from_numpy(a) for a in (plan.rows, plan.positions)),
                               torch.from_numpy(plan.gene_ids), mode, max_len=16)
        for k in range(len(plan)):
            expected = edit_sequence(RANDOM_CELLS[plan.rows[k]], plan.gene_ids[k], plan.positions[k], mode, 16)
            row = out[k].tolist()
            assert row[:len(expected)] == expected and set(row[len(expected):]) <= {PAD_ID}


def test_overexpression_moves_the_gene_right_after_cls() -> None:
    tokens = cells([10, 11, 12, 13])
    plan = plan_perturbations(tokens, [12, 20], "overexpress")
    assert plan.positions.tolist() == [3, -1] and plan.gene_ids.tolist() == [12, 20]
    out = perturbed_tokens(pad_rows(tokens), torch.tensor([5]), torch.tensor([0, 0]), torch.tensor([3, -1]),
                           torch.tensor([12, 20]), "overexpress", max_len=5)
    assert out[0].tolist() == [CLS_ID, 12, 10, 11, 13]  # moved to position 1, the rest in order
    assert out[1].tolist() == [CLS_ID, 20, 10, 11, 12]  # inserted; the last gene drops at max_len
    deleted = perturbed_tokens(pad_rows(tokens), torch.tensor([5]), torch.tensor([0]), torch.tensor([2]),
                               torch.tensor([11]), "delete", max_len=5)
    assert deleted[0].tolist() == [CLS_ID, 10, 12, 13]


def test_goal_scores_have_the_known_sign() -> None:
    # genes 3..5 point along x (the start state), genes 6..8 along y (the goal state)
    vectors = torch.zeros(10, 2)
    vectors[3:6, 0] = 1.0
    vectors[6:9, 1] = 1.0
    model = BagModel(vectors)
    start = cells([3, 4, 6, 5], [4, 6, 3])
    goal = Perturber(model).embed(cells([6, 7, 8], [8, 7])).mean(0)
    plan = plan_perturbations(start, None, "delete")
    scores = Perturber(model).score(start, plan, goal)
    start_genes = np.isin(plan.gene_ids, [3, 4, 5])
    assert (scores.goal_shift[start_genes] > 0).all()  # deleting a start gene: toward the goal
    assert (scores.goal_shift[~start_genes] < 0).all()  # deleting the goal gene: away from it
    over = plan_perturbations(start, [7], "overexpress")
    assert (Perturber(model).score(start, over, goal).goal_shift > 0).all()


def test_plans_skip_genes_a_cell_lacks_and_order_by_cell_and_position() -> None:
    tokens = cells([10, 11, 12], [12, 13])
    plan = plan_perturbations(tokens, [12, 14], "delete")
    assert list(zip(plan.rows, plan.gene_ids, plan.positions)) == [(0, 12, 3), (1, 12, 1)]
    assert len(plan_perturbations(tokens, [99], "delete")) == 0
    everything = plan_perturbations(tokens, None, "delete")
    assert everything.rows.tolist() == [0, 0, 0, 1, 1] and everything.positions.tolist() == [1, 2, 3, 1, 2]


def test_bad_requests_get_clear_messages() -> None:
    model = tiny_encoder()
    with pytest.raises(PerturbError, match="mode must be one of"):
        plan_perturbations(RANDOM_CELLS, None, "knockdown")
    with pytest.raises(PerturbError, match="pooling"):
        Perturber(model, pooling="max")
    with pytest.raises(PerturbError, match="Too many genes for memory"):
        Perturber(model, ram_budget=10_000).check_memory(5_000 * 20_000, 256, 5_000, 20_000)
    with pytest.raises(PerturbError, match="lower max_batch_tokens"):
        Perturber(model, max_batch_tokens=10**9, device_budget=10**6).check_memory(10, 16, 1, 10)
    plan = plan_perturbations(RANDOM_CELLS, None, "delete")
    with pytest.raises(PerturbError, match="Too many genes for memory"):  # score() checks before running
        Perturber(model, ram_budget=100).score(RANDOM_CELLS, plan)
    model.config.mode = "binned"
    with pytest.raises(PerturbError, match="a binned encoder needs each cell's value bins"):
        Perturber(model).embed(RANDOM_CELLS)


def test_memory_estimate_grows_with_pairs_and_batch_and_device_defaults() -> None:
    model = tiny_encoder()
    small = estimate_memory(100, 16, model, 1_000, torch.device("cpu"), ram_budget=10**9)
    big = estimate_memory(10_000, 16, model, 100_000, torch.device("cpu"), ram_budget=10**9)
    assert big.result_bytes == 100 * small.result_bytes and big.batch_bytes > small.batch_bytes and big.fits
    assert default_batch_tokens(torch.device("cpu")) == CPU_BATCH_TOKENS
    assert Perturber(model).max_batch_tokens == CPU_BATCH_TOKENS


def test_progress_says_how_long_is_left() -> None:
    from cellang.perturbation.engine import time_left

    assert time_left(10.0, 100, 1000) == "about 90 s left"
    assert time_left(100.0, 10, 1000) == "about 165 min left"
    assert time_left(1.0, 0, 5) == "estimating time left" and time_left(3.0, 5, 5) == "done"
    model = tiny_encoder()
    tokens = cells([3, 4, 5, 6], [7, 8, 9])
    reports: list[str] = []
    Perturber(model).score(tokens, plan_perturbations(tokens, mode="delete"), progress=lambda f, t: reports.append(t))
    assert reports and reports[-1].endswith("done)")
