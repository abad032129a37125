"""The neighbour datastore (leave-group-out, features) and the retrieval reader (model, examples, completer)."""

from __future__ import annotations

import numpy as np
import torch

from cellang.completion.neighbours import FEATURES, Datastore
from cellang.completion.rerank import RerankCompleter
from cellang.completion.rerank_training import RerankBatcher, make_examples
from cellang.models.reranker import CandidateReranker, RerankerConfig

GENES = [f"G{i:02d}" for i in range(30)]
SETS = [GENES[0:6], GENES[0:5] + ["G20"], GENES[6:12], GENES[6:11] + ["G21"], GENES[12:18], GENES[0:3] + GENES[6:9]]
GROUPS = [0, 0, 1, 1, 2, 3]  # sets 0 and 1 are near-twins, as are 2 and 3


def store() -> Datastore:
    return Datastore(SETS, GENES, GROUPS)


def test_leave_group_out_never_sees_the_example_group() -> None:
    data = store()
    prompt = data.columns(["G00", "G01", "G02"])
    rows, shared = data.overlaps(prompt)
    assert set(rows.tolist()) == {0, 1, 5} and shared.tolist() == [3, 3, 3]
    rows, _ = data.overlaps(prompt, exclude_group=0)
    assert set(rows.tolist()) == {5} and not set(rows.tolist()) & {0, 1}
    found = data.features(prompt, exclude_group=0)
    # only set 5 is left: its genes other than the prompt are the candidates; G20 (only in set 1) is not
    assert [GENES[c] for c in found.columns] == ["G06", "G07", "G08"]


def test_features_exclude_the_prompt_and_are_deterministic() -> None:
    data = store()
    prompt = data.columns(["G00", "G01"])
    found = data.features(prompt)
    assert found.values.shape == (len(found.columns), len(FEATURES))
    assert not set(found.columns.tolist()) & set(prompt.tolist())
    assert np.isfinite(found.values).all()
    again = data.features(prompt)
    assert np.array_equal(found.columns, again.columns) and np.array_equal(found.values, again.values)
    by_name = dict(zip(FEATURES, found.values[found.columns.tolist().index(GENES.index("G02"))]))
    assert by_name["neighbours_1"] == 3 and by_name["best_containment"] == 1.0  # sets 0, 1 and 5 hold G02
    nothing = data.features(data.columns(["G29"]))
    assert len(nothing.columns) == 0 and nothing.values.shape == (0, len(FEATURES))


def test_examples_hold_out_part_of_each_set_and_depend_only_on_the_seed() -> None:
    data = store()
    # set 4 is alone in its group and shares no gene with another set: leave-group-out finds nothing for it
    assert make_examples(data, [4], seed=3) == []
    examples = make_examples(data, [5, 0, 2], seed=3)
    again = make_examples(data, [5, 0, 2], seed=3)
    assert len(examples) >= 1  # set 5 always finds neighbours in the other groups
    assert len(again) == len(examples)
    for a, b in zip(examples, again):
        assert np.array_equal(a.features, b.features) and np.array_equal(a.targets, b.targets)
    features, keep, targets = next(RerankBatcher(examples, batch_size=3, seed=0, drop_last=False).epoch_batches(0))
    assert features.shape[:2] == keep.shape == targets.shape and not targets[~keep].any()


def test_reranker_masks_padding_and_its_loss_reads_only_targets() -> None:
    torch.manual_seed(0)
    model = CandidateReranker(RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=8)).eval()
    features = torch.randn(2, 4, len(FEATURES))
    keep = torch.tensor([[True, True, True, False], [True, True, False, False]])
    targets = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    scores, loss = model(features, keep, targets)
    assert torch.isinf(scores[~keep]).all() and torch.isfinite(scores[keep]).all()
    expected = -torch.log_softmax(scores[0, :3], dim=-1)[1]  # the padded target and the empty row count for nothing
    assert torch.isclose(loss, expected, atol=1e-5)
    changed = features.clone()
    changed[0, 3] = 100.0  # padding content cannot move the real candidates' scores
    assert torch.allclose(model(changed, keep)[0][keep], scores[keep], atol=1e-5)


def test_completer_contract() -> None:
    torch.manual_seed(0)
    model = CandidateReranker(RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=8))
    completer = RerankCompleter(store(), model)
    ranked = completer.rank([["G00", "G01"], ["G29"]], [10, 3])
    assert len(ranked[0]) == 10 and len(ranked[1]) == 3
    assert not {g for g, _ in ranked[0]} & {"G00", "G01"} and len({g for g, _ in ranked[0]}) == 10
    assert "G29" not in {g for g, _ in ranked[1]}  # no candidates: the most frequent genes fill in
    assert ranked == completer.rank([["G00", "G01"], ["G29"]], [10, 3])


def test_a_large_request_continues_past_the_candidates_in_set_retrievals_order() -> None:
    """A set asking for more genes than the reader's candidates (ChIP-seq target lists of thousands) continues with
    the genes set retrieval votes for, best first, before any gene no neighbour holds."""
    torch.manual_seed(0)
    model = CandidateReranker(RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=8))
    data = store()
    completer = RerankCompleter(data, model)
    prompt = data.columns(["G00", "G01"])
    few = data.features(prompt, per_variant=1)  # a reader whose candidates run out early
    completer.store = type("FewCandidates", (), {**{k: getattr(data, k) for k in ("universe", "columns",
                                                                                  "retrieval_order")},
                                                  "features": lambda self, columns: few})()
    ranked = [g for g, _ in completer.rank([["G00", "G01"]], [12])[0]]
    voted = {GENES[c] for c in data.retrieval_order(prompt)}  # G02-G08 and G20: the genes of sets 0, 1 and 5
    assert set(ranked[: len(voted)]) == voted, "every gene a neighbour holds comes before any it does not"
    assert len(ranked) == len(set(ranked)) == 12 and not {"G00", "G01"} & set(ranked)
    order = [GENES[c] for c in data.retrieval_order(prompt) if c not in set(few.columns.tolist())]
    assert [g for g in ranked if g not in {GENES[c] for c in few.columns}][: len(order)] == order


def planted_datastore() -> tuple[Datastore, list[list[str]], list[set[str]]]:
    """A module of 20 genes (M00-M19). Module sets: 4 module genes each. Decoy sets: 3 module genes and 3 junk
    genes of their own. Test prompts: 3 module genes whose own decoy is in the store, so set retrieval (which
    trusts the set with the largest overlap) ranks that decoy's junk first, while only module genes recur
    across many neighbours. Returns the datastore (every set its own group), the test prompts and, for each,
    the rest of the module as the truth."""
    rng = np.random.default_rng(0)
    module = [f"M{i:02d}" for i in range(20)]
    sets = [rng.choice(module, size=4, replace=False).tolist() for _ in range(60)]
    sets += [rng.choice(module, size=3, replace=False).tolist() + [f"J{i:02d}_{k}" for k in range(3)]
             for i in range(60)]
    prompts = [rng.choice(module, size=3, replace=False).tolist() for _ in range(10)]
    sets += [prompt + [f"T{i:02d}_{k}" for k in range(3)] for i, prompt in enumerate(prompts)]
    universe = sorted({g for s in sets for g in s})
    return Datastore(sets, universe), prompts, [set(module) - set(prompt) for prompt in prompts]


def test_reader_beats_retrieval_where_retrieval_is_planted_wrong() -> None:
    from cellang.completion.rerank_training import train_reranker
    from cellang.completion.retrieval import SetRetrievalCompleter
    from cellang.training import TrainConfig

    store, prompts, truths = planted_datastore()
    train_config = TrainConfig(max_steps=120, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=10,
                               eval_interval=60, seed=0)
    model, _ = train_reranker(store, config=RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=16),
                              train_config=train_config, n_examples=120, exclude_rows=range(120, 130))
    reader = RerankCompleter(store, model)
    sets = [[store.universe[c] for c in store.members[row].indices] for row in range(store.members.shape[0])]
    retrieval = SetRetrievalCompleter(sets, store.universe, alpha=1.5, power=6.0)
    n = [3] * len(prompts)

    def hits(ranked: list[list[tuple[str, float]]]) -> int:
        return sum(len({g for g, _ in r} & truth) for r, truth in zip(ranked, truths))

    wanted = 3 * len(prompts)
    assert hits(retrieval.rank(prompts, n)) <= 0.2 * wanted  # the planted failure: a prompt's decoy's junk comes first
    assert hits(reader.rank(prompts, n)) >= 0.9 * wanted


def test_gradient_boosted_baseline_reads_the_same_features() -> None:
    from cellang.completion.gbm_reader import train_gbm_reader

    store, prompts, truths = planted_datastore()
    gbm = train_gbm_reader(store, seed=0, n_examples=120, exclude_rows=range(120, 130))
    ranked = gbm.rank(prompts, [3] * len(prompts))
    assert ranked == gbm.rank(prompts, [3] * len(prompts))
    assert sum(len({g for g, _ in r} & truth) for r, truth in zip(ranked, truths)) >= 0.9 * 3 * len(prompts)
