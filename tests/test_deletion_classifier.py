"""Deletion scored in a fine-tuned state classifier: the goal state's probability beside the embedding's goal shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cellang.cells import load_atlas_dataset
from cellang.cells.io import subset_cells
from cellang.embedding.classify import classifier_head, fine_tune_classifier, load_classifier
from cellang.embedding.loading import CellModel
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.request import PerturbationRequest, Selection
from cellang.perturbation.workflow import run_perturbation
from tests.perturb_fixtures import save_tiny_checkpoint

torch.set_num_threads(1)
SELECTION = Selection("state", ("myotube",), ("myoblast",))


@pytest.fixture(scope="module")
def hsmm():
    return load_atlas_dataset("hsmm")


@pytest.fixture(scope="module")
def classifier(hsmm, tmp_path_factory) -> Path:
    """A tiny rank encoder fine-tuned a few steps to tell the HSMM states apart (pooling: mean)."""
    folder = tmp_path_factory.mktemp("models")
    base = save_tiny_checkpoint(folder / "tiny-rank", [hsmm], max_len=64)
    result = fine_tune_classifier(hsmm, "state", base, minutes=None, max_steps=6, out=folder / "tiny-state", seed=0)
    return result.directory


def model_of(folder: Path) -> CellModel:
    return CellModel(f"my-{folder.name}", folder, "rank", False, "test classifier")


def test_a_classifier_run_scores_the_goal_probability_and_ranks_by_it(hsmm, classifier):
    request = PerturbationRequest(SELECTION, genes=None, max_cells=3, min_cells=1, score="goal_probability_shift",
                                  gene_types=None)
    result = run_perturbation(hsmm, request, model=model_of(classifier))
    scores = result.scores
    assert scores["goal_probability_shift"].between(-1, 1).all()
    assert result.settings["score"] == "goal_probability_shift"
    assert result.settings["state_classifier"]["goal_state"] == "myoblast"
    assert "mean_goal_probability_shift" in result.ranked and result.ranked["q"].between(0, 1).all()


def test_the_goal_probability_equals_a_forward_pass_without_the_gene(hsmm, classifier):
    request = PerturbationRequest(SELECTION, genes=None, max_cells=2, min_cells=1, gene_types=None)
    result = run_perturbation(hsmm, request, model=model_of(classifier))
    model, tokenizer, states = load_classifier(classifier)
    goal = states.index("myoblast")
    row = result.scores.iloc[5]
    cell = subset_cells(hsmm, np.flatnonzero(hsmm.obs_names == row["cell"]))
    tokens = tokenizer.tokenize(cell).genes[0]
    without = np.delete(tokens, int(row["position"]))
    with torch.no_grad():
        before, after = (torch.softmax(model(torch.as_tensor(t)[None]), -1)[0, goal].item() for t in (tokens, without))
    assert row["goal_probability_shift"] == pytest.approx(after - before, abs=1e-5)
    assert result.settings["score"] == "goal_shift", "the embedding's goal shift stays the default score"


def test_a_plain_encoder_cannot_rank_by_the_goal_probability(hsmm, classifier):
    base = classifier.parent / "tiny-rank"
    assert classifier_head(base) is None and classifier_head(classifier).states == ["differentiating", "myoblast",
                                                                                    "myotube"]
    request = PerturbationRequest(SELECTION, genes=("MYOG",), max_cells=2, min_cells=1, score="goal_probability_shift")
    with pytest.raises(PerturbError, match="needs a state classifier"):
        run_perturbation(hsmm, request, model=model_of(base))


def test_a_score_needs_a_goal_and_a_known_name():
    with pytest.raises(PerturbError, match="score must be one of"):
        PerturbationRequest(SELECTION, score="probability")
    with pytest.raises(PerturbError, match="toward a goal state"):
        PerturbationRequest(Selection("state", ("myotube",)), score="goal_shift")


def test_the_command_line_ranks_by_the_goal_probability_of_a_fine_tuned_checkpoint(classifier, tmp_path, capsys):
    import json

    from cellang.cli.main import main

    out = tmp_path / "run"
    assert main(["delete", "--checkpoint", str(classifier), "--score", "goal_probability_shift", "--max-cells", "2",
                 "--min-cells", "1", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["hsmm"]["settings"]["score"] == "goal_probability_shift"
    assert main(["delete", "--checkpoint", str(classifier.parent / "tiny-rank"), "--score", "goal_probability_shift",
                 "--max-cells", "2", "--min-cells", "1", "--out", str(out)]) == 2
    assert "needs a state classifier" in capsys.readouterr().err


def test_the_validity_benchmark_scores_deletions_in_a_classifier_it_fine_tunes(hsmm, tmp_path):
    from tests.scripts import load_script

    script = load_script("benchmark_deletion_validity")
    base = save_tiny_checkpoint(tmp_path / "tiny-rank", [hsmm], max_len=64)
    run = script.Run(base, seed=0, fine_tune_minutes=0.1)
    labels = hsmm.obs["state"].astype(str).to_numpy()
    rows = np.flatnonzero(np.isin(labels, ["myotube", "myoblast"]))
    states, perturber = run.classifier(hsmm, rows, "state", "hsmm states")
    assert states == ["myoblast", "myotube"] and perturber.head is not None
    assert run.fine_tuned[0]["test"] == "hsmm states" and run.fine_tuned[0]["states"] == states
    perturber.goal_state = states.index("myoblast")
    encoded = run.encode(hsmm, rows[labels[rows] == "myotube"][:2])
    scores = run.delete(encoded, None, perturber=perturber)
    assert len(scores) == sum(len(g) - 1 for g in encoded.genes)
    assert np.isfinite(scores["goal_probability_shift"]).all()
    assert "goal_probability_shift" not in run.delete(encoded, None)  # the plain encoder has no classifier


def test_fine_tuning_first_learns_only_the_start_and_goal_cells_and_needs_a_goal(hsmm, tmp_path):
    from cellang.perturbation.fine_tune_first import fine_tune_first

    base = save_tiny_checkpoint(tmp_path / "tiny-rank", [hsmm], max_len=64)
    result = fine_tune_first(hsmm, SELECTION, base, minutes=None, max_steps=3, out=tmp_path / "first", seed=0)
    assert result.states == ["myoblast", "myotube"], "the differentiating cells are neither start nor goal"
    assert result.directory == tmp_path / "first" and (result.directory / "classifier.safetensors").exists()
    split = result.split
    both = int(hsmm.obs["state"].isin(["myotube", "myoblast"]).sum())
    assert len(split.train) + len(split.validation) + len(split.test) == both
    with pytest.raises(PerturbError, match="fine-tuning first needs a goal state"):
        fine_tune_first(hsmm, Selection("state", ("myotube",)), base, minutes=None, max_steps=3)
    with pytest.raises(PerturbError, match="exists; choose a new folder"):
        fine_tune_first(hsmm, SELECTION, base, minutes=None, max_steps=3, out=tmp_path / "first")


def test_the_command_line_fine_tunes_first_and_ranks_by_the_goal_probability(hsmm, tmp_path, capsys, monkeypatch):
    import json

    from cellang.cli.main import main

    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path / "models"))
    base = save_tiny_checkpoint(tmp_path / "tiny-rank", [hsmm], max_len=64)
    out = tmp_path / "run"
    assert main(["delete", "--checkpoint", str(base), "--fine-tune", "0.05", "--max-cells", "2", "--min-cells", "1",
                 "--out", str(out)]) == 0
    settings = json.loads(out.with_suffix(".json").read_text())["hsmm"]["settings"]
    assert settings["score"] == "goal_probability_shift"
    assert settings["state_classifier"] == {"column": "state", "states": ["myoblast", "myotube"],
                                            "goal_state": "myoblast"}
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny-rank-classifier-state"]
    assert "fine-tuned first: my-tiny-rank-classifier-state" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):
        main(["delete", "--fine-tune", "1", "--screen", "--out", str(out)])
    assert "a run fine-tuned first is scored exactly" in capsys.readouterr().err


def test_the_api_fine_tunes_first_when_asked(hsmm, tmp_path, monkeypatch):
    import cellang as cl
    from cellang.settings import settings

    monkeypatch.setattr(settings, "models_dir", tmp_path / "models")
    save_tiny_checkpoint(tmp_path / "models" / "tiny-rank", [hsmm], max_len=64)
    cells = hsmm.copy()
    table = cl.tl.rank_deletions(cells, "state", "myotube", "myoblast", model="my-tiny-rank",
                                 max_cells=2, min_cells=1, fine_tune_minutes=0.05)
    entry = cells.uns["rank_deletions"]
    assert entry["params"]["score"] == "goal_probability_shift" == table.attrs["params"]["score"]
    assert entry["params"]["model"] == entry["fine_tuned"]["model"] == "my-tiny-rank-classifier-state"
    assert entry["fine_tuned"]["states"] == ["myoblast", "myotube"] and "test" in entry["fine_tuned"]["metrics"]
