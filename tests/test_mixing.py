"""The validation study of how to combine the reader and the set model (cellang/completion/mixing.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellang.completion import benchmark as bench
from cellang.completion import mixing
from cellang.completion import stacking
from cellang.completion.stacking import PromptScores
from cellang.completion.rerank import RerankCompleter, mixture, set_model_probabilities
from cellang.completion.ranking import top_excluding
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.tuning import ValidationSource
from tests.test_retrieval import UNIVERSE, _tiny_reader_and_set_model, random_sets

GENES = [f"G{i:03d}" for i in range(400)]


def test_the_pool_holds_every_gene_any_share_of_the_mixture_ranks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stacking, "POOL_FLOOR", 3)  # a pool far smaller than the universe, so the claim is tested
    reader = _tiny_reader_and_set_model(tmp_path)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu", single_gene_share=0.0)
    train = random_sets(6, 8)  # few neighbours: the reader's candidates leave most of the universe out
    source = ValidationSource("a", bench.make_cases([(f"P{i}", s) for i, s in enumerate(random_sets(15, 9))], 0.6, 0),
                              train)
    scored = mixing.score_prompts(source, reader, set_model, UNIVERSE, batch=4)
    completer = RerankCompleter(RerankCompleter.load(tmp_path / "reader", train, UNIVERSE).store, reader)
    prompts = [case.prompt for case in source.cases]
    whole = (completer.probabilities(prompts), set_model_probabilities(set_model, UNIVERSE, prompts))
    assert len(scored) == len(source.cases) and any(len(p.columns) < len(UNIVERSE) - 8 for p in scored)
    for share in (0.0, 0.3, 0.9, 1.0):
        for case, prompt, row in zip(source.cases, scored, mixture(*whole, share)):
            expected = top_excluding(row, completer.store.columns(case.prompt), len(case.masked))
            scores = stacking.mixture_scores(prompt, (0.0, share))
            order = np.argsort(-scores, kind="stable")[: prompt.wanted]
            scored_above_zero = int((scores[order] > 0).sum())  # past them, genes tied at 0 fill in any order
            # the same genes in the same order (the full ranking breaks ties by column, as the pool does)
            assert prompt.columns[order][:scored_above_zero].tolist() == expected[:scored_above_zero].tolist()
            assert (row[expected[scored_above_zero:]] == 0).all()
            assert prompt.targets.sum() == len(set(case.masked) & {UNIVERSE[c] for c in prompt.columns})


def _prompt(rng: np.random.Generator, size: int, informative: str, hidden: int = 4) -> PromptScores:
    """A synthetic prompt over 40 pool genes: ``informative`` ("reader" or "set") puts its mass on the hidden
    members, the other model on four decoys."""
    columns = np.sort(rng.choice(len(GENES), 40, replace=False))
    targets = np.zeros(40, dtype=bool)
    targets[rng.choice(40, hidden, replace=False)] = True
    decoys = rng.choice(np.flatnonzero(~targets), hidden, replace=False)
    good, bad = np.full(40, 0.005), np.full(40, 0.005)
    good[targets], bad[decoys], bad[targets] = 0.2, 0.2, 0.001  # at an even share the decoys still lead
    reader, set_model = (good, bad) if informative == "reader" else (bad, good)
    return PromptScores(columns, reader / reader.sum(), {0.0: set_model / set_model.sum()}, np.zeros(40), size,
                        hidden, targets)


def _source(prompts: list[PromptScores]) -> tuple[list[bench.Case], list[PromptScores]]:
    cases = []
    for i, p in enumerate(prompts):
        hidden = tuple(GENES[c] for c in p.columns[p.targets])
        prompt = tuple(g for g in GENES if g not in hidden)[: p.prompt_size]
        cases.append(bench.Case(f"P{i}", prompt + hidden, prompt, hidden))
    return cases, prompts


def test_a_share_by_prompt_size_wins_where_short_and_long_prompts_want_different_models() -> None:
    rng = np.random.default_rng(0)
    # short prompts: the reader knows; long ones: the set model; no single share serves both
    prompts = [_prompt(rng, size, "reader" if size <= mixing.SMALL_PROMPT else "set")
               for size in rng.choice([1, 2, 5, 9], 120)]
    rows, fitted = mixing.compare_rules({"s": _source(prompts)}, GENES, seed=0, cuts=2)
    summary = mixing.summarise_rules(rows).set_index("rule")
    # (any share above 0.5 puts the informative model's members first: the smallest such share wins the tie)
    assert all(f["share_small_prompts"] < 0.5 < f["share_longer_prompts"] for f in fitted)
    assert summary.loc["share by prompt size", "s"] == 2 * len(prompts)
    assert summary.loc["share by prompt size", "mean fraction significant"] > summary.loc["mixture",
                                                                                          "mean fraction significant"]
    # every rule scores every set once per cut, each half with settings fitted on the other
    assert sorted(rows.groupby("rule").pathways.sum().tolist()) == [2 * len(prompts)] * 3
    assert set(zip(rows.cut, rows.scored_half)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert [(f["cut"], f["fitted_on_half"]) for f in fitted] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_the_mixture_rule_chooses_the_informative_model_and_the_stacker_learns_it_too() -> None:
    rng = np.random.default_rng(1)
    prompts = [_prompt(rng, int(size), "set") for size in rng.choice([1, 3, 6], 80)]
    rows, fitted = mixing.compare_rules({"s": _source(prompts)}, GENES, seed=1, cuts=1)
    summary = mixing.summarise_rules(rows).set_index("rule")
    assert all(f["mixture_share"] > 0.5 for f in fitted)
    assert summary.loc["mixture", "s"] == summary.loc["stacker", "s"] == len(prompts)
    # and with the informative model reversed, the stacker's weight on the set model's log-probability turns
    reader_wins = [_prompt(rng, int(size), "reader") for size in rng.choice([1, 3, 6], 80)]
    stacker = stacking.fit_stacker(reader_wins, [1.0] * 80, (0.0, 0.5))
    assert stacker.weights[1] > 0 > stacker.weights[3]  # log reader, log set model
    assert all(p.targets[np.argsort(-stacker.scores(p))[: p.wanted]].all() for p in reader_wins)


def test_halves_are_balanced_seeded_and_differ_by_seed_and_cut() -> None:
    a, b = mixing.halves(101, 0), mixing.halves(101, 0)
    assert (a == b).all() and abs(int(a.sum()) - 50) <= 1
    assert not (mixing.halves(101, 1) == a).all() and not (mixing.halves(101, 0, cut=1) == a).all()


def test_memorisation_scores_both_groups_with_the_same_masks(tmp_path: Path) -> None:
    _tiny_reader_and_set_model(tmp_path)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu")
    seen = [(f"S{i}", s) for i, s in enumerate(random_sets(10, 3))]
    unseen = [(f"U{i}", s) for i, s in enumerate(random_sets(6, 4))]
    table = mixing.memorisation(set_model, seen, unseen, len(UNIVERSE), 0.6, 0)
    assert table.pathways.tolist() == [10, 6]
    cases = bench.make_cases(unseen, 0.6, 0)
    ranked = set_model.rank([c.prompt for c in cases], [len(c.masked) for c in cases])
    recall = bench.score(cases, [[g for g, _ in r] for r in ranked], len(UNIVERSE), "m").recall.mean()
    assert table.mean_recall.iloc[1] == pytest.approx(recall)
