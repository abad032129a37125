"""The stacker over the reader and the set model: fitted by tuning, saved in completer.json, ranked by the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellang import checkpoints
from cellang.completion import benchmark as bench
from cellang.completion import mixing, stacking
from cellang.completion.completer import COMPLETER_CONFIG, load_completer
from cellang.completion.rerank import ReaderCompleter, RerankCompleter
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.tuning import ValidationSource
from tests.test_retrieval import UNIVERSE, _Identity, _tiny_reader_and_set_model, make_tiny_gpt, random_sets


def _sources(train: list[tuple[str, ...]]) -> list[ValidationSource]:
    return [ValidationSource(name, bench.make_cases([(f"P{i}", s) for i, s in enumerate(random_sets(16, seed))],
                                                    0.6, 0), train) for name, seed in (("a", 9), ("b", 10))]


def test_tuning_keeps_the_stacker_only_when_it_beats_the_mixture_on_halves_it_was_not_fitted_on(
        tmp_path: Path) -> None:
    reader = _tiny_reader_and_set_model(tmp_path)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu")
    sources = _sources(random_sets(40, 8))
    choice = mixing.choose_stacker(sources, reader, set_model, UNIVERSE, (0.5, 0.6), seed=0)
    measured = choice["stacker_validation"]["mean_fraction_significant"]
    assert set(measured) == {"mixture", "stacker"}
    kept = measured["stacker"] > measured["mixture"]
    assert choice["stacker_validation"]["chosen"] == ("stacker" if kept else "mixture")
    assert (choice["stacker"] is not None) == kept
    # the comparison scores each half with rules fitted on the other half only
    rows = choice["stacker_validation"]["per_half"]
    assert {(r["rule"], r["cut"], r["scored_half"]) for r in rows} == {
        (rule, c, h) for rule in ("mixture", "stacker") for c in range(mixing.CUTS) for h in (0, 1)}
    assert sum(r["pathways"] for r in rows if r["rule"] == "stacker") == 32 * mixing.CUTS
    # when kept, it is fitted on every set at the mixture tuning chose, and survives completer.json
    scored = {s.name: (s.cases, mixing.score_prompts(s, reader, set_model, UNIVERSE)) for s in sources}
    fitted = mixing.fit_on(scored, (0.5, 0.6))
    again = stacking.Stacker.from_json(json.loads(json.dumps(fitted.to_json())))
    assert again.mixing == (0.5, 0.6) and again.readings == (0.0, 0.5)
    np.testing.assert_allclose(again.weights, fitted.weights, rtol=1e-6)
    if kept:
        np.testing.assert_allclose(choice["stacker"]["weights"], fitted.weights, rtol=1e-6)


def test_a_damaged_stacker_is_refused_with_the_reason() -> None:
    good = stacking.Stacker(np.ones(9, np.float32), np.zeros(9, np.float32), np.ones(9, np.float32), (0.0, 0.9),
                            (0.0, 0.5)).to_json()
    stacking.Stacker.from_json(good)
    with pytest.raises(ValueError, match="needs 9 weights"):
        stacking.Stacker.from_json({**good, "weights": good["weights"][:5]})
    with pytest.raises(ValueError, match="not one of its readings"):
        stacking.Stacker.from_json({**good, "single_gene_share": 0.3})
    with pytest.raises(KeyError):
        stacking.Stacker.from_json({k: v for k, v in good.items() if k != "std"})


def test_the_shipped_completer_ranks_by_its_stacker_and_its_evidence_adds_up(tmp_path: Path) -> None:
    model, vocabulary = make_tiny_gpt()
    reader_model = _tiny_reader_and_set_model(tmp_path)
    checkpoints.save_checkpoint(tmp_path / "gpt", model, config=model.config_dict(),
                                vocabulary_json=vocabulary.to_json(), record={"window": 7})
    train = random_sets(40, 7)
    set_model = SetModelCompleter.load(tmp_path / "set", device="cpu", single_gene_share=0.0)
    sources = _sources(train)
    scored = {s.name: (s.cases, mixing.score_prompts(s, reader_model, set_model, UNIVERSE)) for s in sources}
    stacker = mixing.fit_on(scored, (0.0, 0.7))
    config = {"alpha": 1.5, "power": 6.0, "weight": 1.0, "reader": "reader", "set_model": "set",
              "set_model_share": 0.7, "set_model_single_gene_share": 0.0, "stacker": stacker.to_json()}
    (tmp_path / "gpt" / COMPLETER_CONFIG).write_text(json.dumps(config))
    completer = load_completer(tmp_path / "gpt", train, names=[f"S{i}" for i in range(40)])
    assert isinstance(completer, ReaderCompleter) and completer.stacker is not None
    assert "stacked" in completer.name and "stacker" in completer.describe()
    prompts, n = [("G01", "G02", "G03"), ("G10",)], [5, 29]
    ranked = completer.rank(prompts, n)
    reader = RerankCompleter.load(tmp_path / "reader", train, UNIVERSE)
    pooled = stacking.pooled_scores(reader, set_model, (0.0, 0.5), prompts, n)
    for row, prompt, count in zip(ranked, pooled, n):
        scores = stacker.scores(prompt)
        assert [g for g, _ in row] == [UNIVERSE[prompt.columns[i]] for i in np.argsort(-scores, kind="stable")[:count]]
        assert [p for _, p in row] == sorted((p for _, p in row), reverse=True)
    assert len(ranked[1]) == 29 and "G10" not in {g for g, _ in ranked[1]}
    result = completer.complete(["G01", "G02", "G03", "G04"], mask_ratio=None, n=6, resolver=_Identity())
    for item, (_, score) in zip(result.evidence, result.predictions):
        assert sum(row["contribution"] for row in item.rows()) == pytest.approx(score)
    # a damaged stacker in completer.json names the folder, not a traceback from deep inside
    (tmp_path / "gpt" / COMPLETER_CONFIG).write_text(json.dumps({**config, "stacker": {"weights": [1.0]}}))
    with pytest.raises(checkpoints.CheckpointError, match="gpt/ is not a readable checkpoint"):
        load_completer(tmp_path / "gpt", train, names=[f"S{i}" for i in range(40)])
