"""Set retrieval, its interpolation with the GPT, and the validation split used to tune them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cellang import checkpoints
from cellang.batching import split_validation
from cellang.completion.baselines import CooccurrenceCompleter
from cellang.completion.completer import (
    BEST_ON_VALIDATION,
    COMPLETER_CONFIG,
    LANGUAGE_MODEL_ONLY,
    PathwayCompleter,
    RetrievalAugmentedCompleter,
    load_completer,
)
from cellang.completion.ranking import top_excluding
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.completion.training import VALIDATION_SEED
from cellang.completion.tuning import validation_split
from cellang.corpus import Corpus, Pathway
from cellang.models.gpt import GPT, GPTConfig
from cellang.tokenizers.pathway import PathwayVocabulary

UNIVERSE = [f"G{i:02d}" for i in range(30)]


def random_sets(n: int, seed: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(UNIVERSE, size=rng.integers(2, 9), replace=False).tolist()) for _ in range(n)]


def brute_force(train, prompt, alpha, power):  # type: ignore[no-untyped-def]
    scores = dict.fromkeys(UNIVERSE, 0.0)
    for s in train:
        weight = len(set(prompt) & set(s)) ** power / len(s) ** alpha
        for g in s:
            scores[g] += weight
    for g in prompt:
        scores[g] = 0.0
    total = sum(scores.values())
    return np.array([scores[g] / total if total else 0.0 for g in UNIVERSE])


@pytest.mark.parametrize("alpha,power", [(0.0, 1.0), (1.0, 2.0), (1.5, 4.0)])
def test_retrieval_matches_brute_force(alpha: float, power: float) -> None:
    train, prompts = random_sets(40, 0), [tuple(p[:3]) for p in random_sets(12, 1)]
    retrieval = SetRetrievalCompleter(train, UNIVERSE, alpha=alpha, power=power, batch_size=5)
    got = retrieval.probabilities(prompts)
    for row, prompt in zip(got, prompts):
        np.testing.assert_allclose(row, brute_force(train, prompt, alpha, power), rtol=1e-5, atol=1e-7)


def test_plain_retrieval_ranks_like_cooccurrence() -> None:
    train, prompts = random_sets(60, 2), [tuple(p[:2]) for p in random_sets(10, 3)]
    plain = SetRetrievalCompleter(train, UNIVERSE, alpha=0.0, power=1.0)
    cooccurrence = CooccurrenceCompleter(train, UNIVERSE)
    counts = cooccurrence.scores(prompts).astype(float)
    for row, prompt in zip(counts, prompts):
        row[[UNIVERSE.index(g) for g in prompt]] = 0.0
    expected = counts / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(plain.probabilities(prompts), expected, rtol=1e-5, atol=1e-7)


def test_retrieval_rank_constraints_and_untouched_prompt() -> None:
    train = [("G00", "G01", "G02"), ("G00", "G01", "G03", "G04")]
    retrieval = SetRetrievalCompleter(train, UNIVERSE, alpha=1.0, power=2.0)
    (ranked,) = retrieval.rank([("G00", "G01")], [5])
    assert [g for g, _ in ranked][:1] == ["G02"]  # the smaller set holding both prompt genes wins
    assert len(ranked) == 5 and not {"G00", "G01"} & {g for g, _ in ranked}
    assert retrieval.probabilities([("G29",)]).sum() == 0.0


def make_tiny_gpt() -> tuple[GPT, PathwayVocabulary]:
    torch.manual_seed(0)
    vocabulary = PathwayVocabulary(UNIVERSE)
    return GPT(GPTConfig(vocab_size=len(vocabulary), block_size=8, n_layer=1, n_head=1, n_embd=8,
                         objective="set")).eval(), vocabulary


@pytest.fixture()
def tiny_gpt() -> tuple[GPT, PathwayVocabulary]:
    return make_tiny_gpt()


def test_interpolation_endpoints(tiny_gpt) -> None:
    model, vocabulary = tiny_gpt
    train, prompts = random_sets(40, 4), [("G01", "G02"), ("G05",)]
    retrieval = SetRetrievalCompleter(train, UNIVERSE, alpha=1.0, power=2.0)
    gpt = PathwayCompleter(model, vocabulary, window=7, n_orders=2)
    only_gpt = RetrievalAugmentedCompleter(model, vocabulary, retrieval, 0.0, window=7, n_orders=2)
    only_retrieval = RetrievalAugmentedCompleter(model, vocabulary, retrieval, 1.0, window=7, n_orders=2)
    np.testing.assert_allclose(only_gpt.probabilities(prompts), gpt.probabilities(prompts), rtol=1e-6)
    np.testing.assert_allclose(only_retrieval.probabilities(prompts), retrieval.probabilities(prompts), rtol=1e-6)
    with pytest.raises(ValueError, match="one gene universe"):
        RetrievalAugmentedCompleter(model, vocabulary, SetRetrievalCompleter(train, UNIVERSE[::-1]), 0.5)


def test_rankings_offer_the_mixture_first_then_the_model_alone(tiny_gpt) -> None:
    model, vocabulary = tiny_gpt
    retrieval = SetRetrievalCompleter(random_sets(40, 4), UNIVERSE, alpha=1.0, power=2.0)
    gpt = PathwayCompleter(model, vocabulary, window=7, n_orders=2)
    mixed = RetrievalAugmentedCompleter(model, vocabulary, retrieval, 1.0, window=7, n_orders=2)
    assert gpt.rankings() == {LANGUAGE_MODEL_ONLY: gpt}
    offered = mixed.rankings()
    assert list(offered) == [BEST_ON_VALIDATION, LANGUAGE_MODEL_ONLY] and offered[BEST_ON_VALIDATION] is mixed
    alone = offered[LANGUAGE_MODEL_ONLY]
    assert type(alone) is PathwayCompleter and alone.model is model
    assert alone.rank([("G01", "G02")], [5]) == gpt.rank([("G01", "G02")], [5])
    assert not any(label in mixed.describe() for label in offered)  # the page quotes labels, not the core


def test_top_excluding_breaks_ties_by_column_and_never_returns_excluded() -> None:
    scores = np.array([0.1, 0.5, 0.5, 0.0, 0.5, 0.2], dtype=np.float32)
    assert top_excluding(scores, [2], 3).tolist() == [1, 4, 5]
    assert top_excluding(scores, np.array([1, 1]), 10).tolist() == [2, 4, 5, 0, 3]
    assert top_excluding(scores, range(6), 3).tolist() == []
    rng = np.random.default_rng(0)
    for _ in range(50):
        keys = rng.integers(0, 4, size=40).astype(float)
        excluded = rng.choice(40, size=5, replace=False)
        k = int(rng.integers(0, 40))
        masked = keys.copy()
        masked[excluded] = -1.0
        expected = np.argsort(-masked, kind="stable")[: min(k, 35)]
        assert top_excluding(keys, excluded, k).tolist() == expected.tolist()


def test_load_completer_follows_completer_json(tiny_gpt, tmp_path: Path) -> None:
    model, vocabulary = tiny_gpt
    checkpoints.save_checkpoint(tmp_path, model, config=model.config_dict(), vocabulary_json=vocabulary.to_json(),
                                record={"window": 7})
    train = random_sets(20, 5)
    assert type(load_completer(tmp_path, train)) is PathwayCompleter
    (tmp_path / COMPLETER_CONFIG).write_text(json.dumps({"alpha": 1.0, "power": 3.0, "weight": 0.8}))
    completer = load_completer(tmp_path, train)
    assert isinstance(completer, RetrievalAugmentedCompleter)
    assert (completer.weight, completer.retrieval.power, completer.window) == (0.8, 3.0, 7)


def test_validation_split_uses_the_gpt_slice_without_near_twins() -> None:
    sets = random_sets(200, 6)
    pathways = [Pathway(f"S{i}", "", "src", "", False, s, "train", i // 2 if i < 40 else i, False)
                for i, s in enumerate(sets)] + [Pathway("T", "", "src", "", False, sets[0], "test", 999, True)]
    corpus = Corpus(pathways, {"sources": []})
    split = validation_split(corpus, 0.1)
    _, held = split_validation(list(range(200)), 0.1, VALIDATION_SEED)
    names = {name for name, _ in split.pathways}
    assert names == {f"S{i}" for i in held if i >= 40}  # sets with a group twin (i < 40) are left out
    assert len(split.datastore) == 200 - len(held) and "T" not in names


def test_load_completer_builds_the_reader_completer_with_evidence(tiny_gpt, tmp_path: Path) -> None:
    from cellang.completion.completer import SET_RETRIEVAL_ONLY
    from cellang.completion.neighbours import FEATURES
    from cellang.completion.rerank import ReaderCompleter
    from cellang.models.reranker import CandidateReranker, RerankerConfig

    model, vocabulary = tiny_gpt
    gpt_dir, reader_dir = tmp_path / "gpt", tmp_path / "reader"
    checkpoints.save_checkpoint(gpt_dir, model, config=model.config_dict(), vocabulary_json=vocabulary.to_json(),
                                record={"window": 7})
    torch.manual_seed(0)
    reader = CandidateReranker(RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=8))
    checkpoints.save_checkpoint(reader_dir, reader, config=reader.config_dict(),
                                vocabulary_json={"features": list(FEATURES)}, record={})
    validation = {"reader": {"pathways": 9, "significant": 5, "median_recall": 0.4},
                  "retrieval": {"pathways": 9, "significant": 4, "median_recall": 0.3}}
    (gpt_dir / COMPLETER_CONFIG).write_text(json.dumps({"alpha": 1.5, "power": 6.0, "weight": 1.0, "reader": "reader",
                                                        "reader_validation": validation}))
    train = random_sets(40, 6)
    completer = load_completer(gpt_dir, train, names=[f"S{i}" for i in range(40)])
    assert isinstance(completer, ReaderCompleter)
    assert list(completer.rankings()) == [BEST_ON_VALIDATION, SET_RETRIEVAL_ONLY, LANGUAGE_MODEL_ONLY]
    assert "5 significant" in completer.describe()
    genes = ["G01", "G02", "G03", "G04", "G05"]
    result = completer.complete(genes, mask_ratio=None, n=6, resolver=_Identity())
    assert result == completer.complete(genes, mask_ratio=None, n=6, resolver=_Identity())  # deterministic
    assert len(result.evidence) == len(result.predictions) == 6
    for item, (gene, score) in zip(result.evidence, result.predictions):
        assert item.gene == gene and sum(row["contribution"] for row in item.rows()) == pytest.approx(score)
        assert all(gene in train[int(s.name[1:])] for s in item.sets)
    by_retrieval = completer.rankings()[SET_RETRIEVAL_ONLY].complete(genes, mask_ratio=None, n=6, resolver=_Identity())
    assert all(item.from_model == pytest.approx(0.0, abs=1e-6) for item in by_retrieval.evidence)


class _Identity:
    """A resolver that takes every identifier as an approved symbol (the tiny universe is not human)."""

    def harmonise(self, genes):  # type: ignore[no-untyped-def]
        from cellang.genes import GeneMatch, Harmonisation

        return Harmonisation([GeneMatch(g, g, None, "approved") for g in genes])


def _tiny_reader_and_set_model(tmp_path: Path):  # type: ignore[no-untyped-def]
    from cellang.completion.neighbours import FEATURES
    from cellang.models.reranker import CandidateReranker, RerankerConfig
    from cellang.models.set_transformer import SetTransformer, SetTransformerConfig

    torch.manual_seed(0)
    reader = CandidateReranker(RerankerConfig(n_features=len(FEATURES), n_layer=1, n_head=2, n_embd=8)).eval()
    checkpoints.save_checkpoint(tmp_path / "reader", reader, config=reader.config_dict(),
                                vocabulary_json={"features": list(FEATURES)}, record={})
    set_model = SetTransformer(SetTransformerConfig(n_genes=len(UNIVERSE), n_layer=1, n_head=2, n_embd=8,
                                                    max_prompt=8)).eval()
    checkpoints.save_checkpoint(tmp_path / "set", set_model, config=set_model.config_dict(),
                                vocabulary_json={"genes": UNIVERSE}, record={"model": "pathway-set"})
    return reader


def test_reader_mixed_with_the_set_model_ranks_by_the_mixture_and_loads_from_completer_json(tiny_gpt,
                                                                                            tmp_path: Path) -> None:
    from cellang.completion.rerank import ReaderCompleter, RerankCompleter, mixed_rank
    from cellang.completion.set_model import SetModelCompleter

    model, vocabulary = tiny_gpt
    _tiny_reader_and_set_model(tmp_path)
    checkpoints.save_checkpoint(tmp_path / "gpt", model, config=model.config_dict(),
                                vocabulary_json=vocabulary.to_json(), record={"window": 7})
    train = random_sets(40, 7)
    reader = RerankCompleter.load(tmp_path / "reader", train, UNIVERSE)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu", single_gene_share=0.3)
    prompts, n = [("G01", "G02", "G03"), ("G10",)], [5, 29]
    probabilities = reader.probabilities(prompts)
    assert np.allclose(probabilities.sum(1), 1.0) and probabilities[0, [1, 2, 3]].sum() == 0.0
    alone = [[g for g, _ in r] for r in set_model.rank(prompts, n)]
    assert [[g for g, _ in r] for r in mixed_rank(reader, set_model, 1.0, prompts, n)] == alone
    mixed = mixed_rank(reader, set_model, 0.4, prompts, n)
    expected = 0.6 * probabilities + 0.4 * set_model.probabilities(prompts)
    for row, ranked, prompt in zip(expected, mixed, prompts):
        assert [s for _, s in ranked] == pytest.approx(sorted((row[i] for i in range(30) if UNIVERSE[i] not in prompt),
                                                              reverse=True)[: len(ranked)])
    assert len(mixed[1]) == 29 and "G10" not in {g for g, _ in mixed[1]}

    (tmp_path / "gpt" / COMPLETER_CONFIG).write_text(json.dumps(
        {"alpha": 1.5, "power": 6.0, "weight": 1.0, "reader": "reader", "set_model": "set", "set_model_share": 0.4,
         "set_model_single_gene_share": 0.3}))
    completer = load_completer(tmp_path / "gpt", train, names=[f"S{i}" for i in range(40)])
    assert isinstance(completer, ReaderCompleter) and completer.set_model_share == 0.4
    assert completer.set_model.single_gene_share == 0.3
    assert completer.rank(prompts, n) == mixed and "0.4 on the model" in completer.describe()
    result = completer.complete(["G01", "G02", "G03", "G04"], mask_ratio=None, n=6, resolver=_Identity())
    for item, (gene, score) in zip(result.evidence, result.predictions):  # the sets explain the reader's part only
        assert sum(row["contribution"] for row in item.rows()) == pytest.approx(score)
    assert completer.retrieval_weight == pytest.approx(0.6)
    with pytest.raises(ValueError, match="share"):
        ReaderCompleter(model, vocabulary, completer.retrieval, reader, set_model=None, set_model_share=0.5)


def test_set_model_probabilities_follow_the_readers_universe(tmp_path: Path) -> None:
    from cellang.completion.rerank import set_model_probabilities
    from cellang.completion.set_model import SetModelCompleter

    _tiny_reader_and_set_model(tmp_path)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu")
    universe = ["NEW1", *UNIVERSE[::-1][:20]]  # another order, a gene the set model lacks, ten it has left out
    prompts = [("G01", "G02"), ("G29",)]
    projected = set_model_probabilities(set_model, universe, prompts)
    full = set_model.probabilities(prompts)
    assert projected.shape == (2, 21) and (projected[:, 0] == 0).all()
    assert np.allclose(projected[:, 1:], full[:, [UNIVERSE.index(g) for g in universe[1:]]])


def test_the_set_model_share_is_chosen_by_the_mean_share_significant_over_sources(tmp_path: Path) -> None:
    from cellang.completion import benchmark as bench
    from cellang.completion.set_model import SetModelCompleter
    from cellang.completion.tuning import ValidationSource, choose_set_model_share

    reader = _tiny_reader_and_set_model(tmp_path)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu")
    train = random_sets(60, 8)
    sources = [ValidationSource(name, bench.make_cases([(f"P{i}", s) for i, s in enumerate(random_sets(12, seed))],
                                                       0.6, 0), train) for name, seed in (("a", 9), ("b", 10))]
    choice = choose_set_model_share(sources, reader, set_model, UNIVERSE, shares=(0.0, 0.5, 1.0),
                                    single_gene_shares=(0.0, 0.5))
    grid = choice["grid"]
    pairs = [(s, w) for s in (0.0, 0.5) for w in (0.0, 0.5, 1.0)]
    assert {(row["source"], row["single_gene_share"], row["share"]) for row in grid} == {
        (source, s, w) for source in "ab" for s, w in pairs}
    mean = {(s, w): np.mean([r["significant"] / r["pathways"] for r in grid
                             if (r["single_gene_share"], r["share"]) == (s, w)]) for s, w in pairs}
    best = max(mean.values())
    assert (choice["single_gene_share"], choice["share"]) == min(pair for pair, v in mean.items() if v == best)
    # share 1.0 is the set model alone, as the benchmark ranks it, in each way of reading a prompt
    cases = sources[0].cases
    for s in (0.0, 0.5):
        reading = SetModelCompleter.load(tmp_path / "set", device="cpu", single_gene_share=s)
        alone = bench.score(cases, [[g for g, _ in r] for r in reading.rank([c.prompt for c in cases],
                                                                            [len(c.masked) for c in cases])], 30, "m")
        assert next(r for r in grid if (r["source"], r["single_gene_share"], r["share"]) == ("a", s, 1.0)
                    )["significant"] == alone.significant.sum()
