"""AppTest of the "Fine-tune on these cells' states" panel on both cell pages: the button fine-tunes the chosen encoder
on a state column, says its held-out macro-F1, and the encoder lists then offer the new model. Fine-tuning runs a few
steps here (the budgeted run is tested in test_classify.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cellang import paths
from cellang.app import fine_tune_panel
from cellang.atlas import load_atlas_dataset
from cellang.embedding import classify
from tests.conftest import REPO_ROOT
from tests.perturb_fixtures import save_tiny_checkpoint
from tests.test_app_adapt import embedded_pbmc3k, fresh_models_folder, run, widget

TIMEOUT = 300
STEPS = 3


@pytest.fixture(autouse=True)
def quick_fine_tuning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list[tuple[str, float]]]:
    """An empty user models folder, empty caches, and fine-tuning cut to a few steps (whatever the budget asked)."""
    models = fresh_models_folder(monkeypatch, tmp_path)
    asked: list[tuple[str, float]] = []

    def few_steps(cells, column, model, *, minutes, **options):  # type: ignore[no-untyped-def]
        asked.append((column, minutes))
        return classify.fine_tune_classifier(cells, column, model, minutes=None, max_steps=STEPS, **options)

    monkeypatch.setattr(fine_tune_panel, "fine_tune_classifier", few_steps)
    return models, asked


def fine_tune(app: AppTest, model: str, column: str, minutes: float) -> AppTest:
    widget(app.selectbox, "States to learn (obs column)").select(column)
    app = run(app)
    next(w for w in app.number_input if (w.key or "").endswith("_ft_minutes")).set_value(minutes)
    return run(next(b for b in app.button if b.label == f"Fine-tune {model} on {column}").click())


def test_deletion_page_fine_tunes_the_rank_encoder_on_the_states_and_offers_it(quick_fine_tuning,  # type: ignore[no-untyped-def]
                                                                             monkeypatch, tmp_path) -> None:
    models, asked = quick_fine_tuning
    checkpoints_folder = tmp_path / "checkpoints"
    save_tiny_checkpoint(checkpoints_folder / "cells-rank", [load_atlas_dataset("hsmm")], max_len=256)
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", checkpoints_folder)
    app = run(AppTest.from_file(str(REPO_ROOT / "pages/4_In_silico_deletion.py"), default_timeout=TIMEOUT))
    assert widget(app.selectbox, "States to learn (obs column)").value == "state"
    app = fine_tune(app, "cells-rank", "state", 2.0)
    assert asked == [("state", 2.0)]
    name = "my-cells-rank-classifier-state"
    assert (models / name.removeprefix("my-") / classify.CLASSIFIER_FILE).is_file()
    assert any(name in s.value and "held-out macro-F1" in s.value and "myotube" in s.value for s in app.success)
    assert any(o.startswith(name) for o in widget(app.selectbox, "Encoder").options)


@pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors").exists(),
                    reason="the shipped cells-binned encoder is missing")
def test_embedding_page_fine_tunes_and_lists_the_model(quick_fine_tuning) -> None:  # type: ignore[no-untyped-def]
    models, asked = quick_fine_tuning
    app = fine_tune(embedded_pbmc3k(), "cells-binned", "cell_type", 1.5)
    assert asked == [("cell_type", 1.5)]
    name = "my-cells-binned-classifier-cell_type"
    assert any(name in s.value for s in app.success)
    assert any(o.startswith(name) for o in widget(app.selectbox, "Cell encoder").options)


def test_deletion_page_fine_tunes_on_the_states_first_once_and_ranks_by_the_goal_probability(  # type: ignore[no-untyped-def]
        quick_fine_tuning, monkeypatch, tmp_path) -> None:
    from cellang.embedding.loading import load_cell_encoder_checkpoint
    from tests.perturb_fixtures import genes_in_sampled_myotubes

    models, _ = quick_fine_tuning
    tuned: list[str] = []

    def few_steps(cells, column, model, *, minutes, max_steps=None, **options):  # type: ignore[no-untyped-def]
        tuned.append(column)
        assert set(cells.obs["state"]) == {"myotube", "myoblast"}, "only the start and goal cells are learnt"
        return fine_tune_classifier(cells, column, model, minutes=None, max_steps=STEPS, **options)

    fine_tune_classifier = classify.fine_tune_classifier
    monkeypatch.setattr(classify, "fine_tune_classifier", few_steps)  # what fine_tune_first calls
    checkpoints_folder = tmp_path / "checkpoints"
    save_tiny_checkpoint(checkpoints_folder / "cells-rank", [load_atlas_dataset("hsmm")], max_len=256)
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", checkpoints_folder)
    genes = genes_in_sampled_myotubes(load_cell_encoder_checkpoint(checkpoints_folder / "cells-rank")[1], 3)
    app = run(AppTest.from_file(str(REPO_ROOT / "pages/4_In_silico_deletion.py"), default_timeout=TIMEOUT))
    app = run(widget(app.radio, "Genes to perturb").set_value("list"))
    app = run(widget(app.text_area, "Gene symbols (spaces, commas or lines)").input(" ".join(genes)))
    app = run(widget(app.number_input, "At most this many start cells (random sample)").set_value(3))
    app = run(widget(app.number_input, "Rank genes scored in at least this many cells").set_value(1))
    app = run(widget(app.checkbox, "Fine-tune on the start and goal states first").check())
    app = run(widget(app.radio, "Rank by").set_value("goal_probability_shift"))
    app = run(widget(app.button, "Run").click())
    assert tuned == ["state"]
    name = "my-cells-rank-classifier-state"
    assert any(f"embedded with {name}" in c.value and "goal state's probability" in c.value for c in app.caption)
    app = run(widget(app.number_input, "Rank genes scored in at least this many cells").set_value(2))
    app = run(widget(app.button, "Run").click())
    assert tuned == ["state"], "the fine-tuned model is reused within the session"
    assert (models / name.removeprefix("my-")).is_dir()
