"""Pathway completion with the set objective, on a planted-module corpus where the answer is known."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from cellang.completion.completer import CompletionError, PathwayCompleter, mask_pathway
from cellang.completion.training import train_pathway_model
from cellang.genes import GeneRecord, GeneResolver
from cellang.models.gpt import GPT, GPTConfig
from cellang.tokenizers.pathway import PathwayVocabulary, SetBatcher
from cellang.training import TrainConfig

MODULES = [[f"M{m}G{g}" for g in range(10)] for m in range(4)]


def planted_sets(n: int, seed: int = 0) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(MODULES[rng.integers(4)], size=rng.integers(4, 9), replace=False).tolist())
            for _ in range(n)]


@pytest.fixture(scope="module")
def trained() -> tuple[PathwayCompleter, list]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sets = planted_sets(400)
        vocabulary = PathwayVocabulary.from_gene_sets(MODULES)
        result = train_pathway_model(
            sets, vocabulary,
            model_config=GPTConfig(vocab_size=len(vocabulary), block_size=16, n_layer=2, n_head=2, n_embd=32,
                                   dropout=0.0, objective="set"),
            train_config=TrainConfig(max_steps=150, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=10,
                                     eval_interval=50, eval_batches=4, checkpoint_interval=1000, seed=0,
                                     device="cpu"),
            window=8, positions_per_set=4,
        )
    finally:
        torch.set_num_threads(threads)
    return PathwayCompleter(result.model, vocabulary, window=8, n_orders=4), result.history


@pytest.fixture(scope="module")
def resolver() -> GeneResolver:
    return GeneResolver(GeneRecord(g, "", "", "", "", "") for module in MODULES for g in module)


def test_set_objective_loss_falls_towards_the_module_entropy(trained) -> None:
    completer, history = trained
    last = history[-1].val_loss
    untrained = np.log(len(completer.vocabulary))  # a fresh model is near uniform over 44 tokens
    # a module-blind model cannot beat about log(40 - seen); knowing the module gives log(10 - seen)
    assert last < untrained - 1.0
    assert last < np.log(40) - 0.8
    assert last <= history[0].val_loss


def test_ranked_completion_recovers_the_prompts_module(trained, resolver) -> None:
    completer, _ = trained
    for module in MODULES:
        ranked = completer.rank([module[:3]], [7])[0]
        assert {gene for gene, _ in ranked} == set(module[3:])


def test_completion_constraints_hold(trained, resolver) -> None:
    completer, _ = trained
    genes = MODULES[1][:8]
    for mode in ("ranked", "sample"):
        completion = completer.complete(genes, mask_ratio=0.5, seed=3, n=20, mode=mode, resolver=resolver)
        predicted = completion.genes
        assert len(predicted) == 20 and len(set(predicted)) == 20
        assert not set(predicted) & set(completion.prompt)
        assert set(predicted) <= set(completer.vocabulary.genes)
        assert set(completion.prompt) | set(completion.masked) == set(genes)
        scores = [score for _, score in completion.predictions]
        assert scores == sorted(scores, reverse=True)


def test_default_count_is_the_number_masked_and_more_than_exists_is_capped(trained, resolver) -> None:
    completer, _ = trained
    completion = completer.complete(MODULES[2], mask_ratio=0.8, seed=0, resolver=resolver)
    assert len(completion.masked) == 8 and len(completion.genes) == 8
    capped = completer.complete(MODULES[2], mask_ratio=None, n=1000, resolver=resolver)
    assert len(capped.genes) == 40 - 10


def test_same_seed_same_result_other_seed_other_mask(trained, resolver) -> None:
    completer, _ = trained
    genes = MODULES[0] + MODULES[1][:2]
    for mode in ("ranked", "sample"):
        a = completer.complete(genes, mask_ratio=0.8, seed=5, mode=mode, resolver=resolver)
        b = completer.complete(genes, mask_ratio=0.8, seed=5, mode=mode, resolver=resolver)
        assert a.predictions == b.predictions and a.masked == b.masked
    assert completer.complete(genes, mask_ratio=0.8, seed=6, resolver=resolver).masked != a.masked


def test_unknown_genes_are_reported_and_all_unknown_is_refused(trained, resolver) -> None:
    completer, _ = trained
    completion = completer.complete(MODULES[3][:5] + ["NOT_A_GENE"], mask_ratio=0.4, resolver=resolver)
    assert any("NOT_A_GENE" in note for note in completion.notes)
    with pytest.raises(CompletionError, match="none of the genes"):
        completer.complete(["NOPE1", "NOPE2"], resolver=resolver)


def test_too_short_pathway_and_bad_arguments_get_clear_messages(trained, resolver) -> None:
    completer, _ = trained
    with pytest.raises(CompletionError, match="at least 2 known genes"):
        completer.complete(["M0G0"], mask_ratio=0.8, resolver=resolver)
    with pytest.raises(CompletionError, match="mask ratio"):
        completer.complete(MODULES[0], mask_ratio=1.0, resolver=resolver)
    with pytest.raises(CompletionError, match="mode"):
        completer.complete(MODULES[0], mode="beam", resolver=resolver)
    with pytest.raises(CompletionError, match="temperature"):
        completer.complete(MODULES[0], mode="sample", temperature=0, resolver=resolver)


def test_mask_pathway_counts() -> None:
    genes = [f"G{i}" for i in range(10)]
    split = mask_pathway(genes, 0.8, seed=1)
    assert (len(split.prompt), len(split.masked)) == (2, 8)
    assert mask_pathway(genes[:5], 0.8, seed=1).prompt.__len__() == 1
    assert len(mask_pathway(genes[:2], 0.99, seed=1).prompt) == 1  # at least one gene stays
    assert mask_pathway(genes, 0.8, seed=(1, 2)) == mask_pathway(genes, 0.8, seed=(1, 2))


def test_set_batcher_rows_targets_and_positions() -> None:
    sets = planted_sets(64, seed=1)
    vocabulary = PathwayVocabulary.from_gene_sets(MODULES)
    batcher = SetBatcher(sets, vocabulary, batch_size=8, window=4, positions_per_set=3, seed=0)
    for inputs, members, positions in batcher.epoch_batches(0):
        for row in range(len(inputs)):
            n = int((members[row] != 0).sum())
            fed = inputs[row][1:][inputs[row][1:] != 0]
            assert inputs[row, 0].item() == 1 and len(fed) == min(n, 4)
            assert torch.equal(fed, members[row, : len(fed)])  # inputs are the first members fed
            chosen = positions[row][positions[row] >= 0]
            assert len(chosen) == 3 and bool((chosen < n).all()) and bool((chosen <= len(fed)).all())
    first = [tuple(t.clone() for t in b) for b in batcher.epoch_batches(1, start=2)]
    again = [tuple(t.clone() for t in b) for b in islice(batcher(batcher.batches_per_epoch + 2), len(first))]
    assert all(torch.equal(x, y) for a, b in zip(first, again) for x, y in zip(a, b))


def test_set_loss_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=1, n_embd=8, objective="set")).eval()
    members = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 11, 4, 5]])
    inputs = torch.tensor([[1, 5, 6, 0], [1, 9, 10, 11]])
    positions = torch.tensor([[0, 2], [3, -1]])
    _, loss = model(inputs, members, positions)
    log_probs = torch.log_softmax(model.lm_head(model.hidden_states(inputs)), -1)
    expected = torch.stack([
        -log_probs[0, 0, [5, 6, 7, 8]].mean(), -log_probs[0, 2, [7, 8]].mean(), -log_probs[1, 3, [4, 5]].mean(),
    ]).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
