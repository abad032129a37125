"""AppTest of the "Adapt to these cells" panel on both cell pages: the button adapts the chosen encoder, saves it
as a user model that the encoder lists then offer, and the embedding page shows PCA, base and adapted side by side.
Adaptation runs a few exact steps here (the budgeted run is tested in test_adapt.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cellang.app import adapt_panel
from cellang import paths
from cellang.atlas import load_atlas_dataset
from cellang.embedding import adapt as adapt_module
from tests.conftest import REPO_ROOT
from tests.perturb_fixtures import save_tiny_checkpoint

TIMEOUT = 300
STEPS = 3


def fresh_models_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty Streamlit caches and an empty user models folder (returned) for one page test."""
    st.cache_data.clear()
    st.cache_resource.clear()
    models = tmp_path / "models"
    monkeypatch.setenv("CELLANG_MODELS", str(models))
    return models


def embedded_pbmc3k() -> AppTest:
    """The Cell embeddings page with pbmc3k_decoupler embedded by the shipped cells-binned."""
    app = run(AppTest.from_file(str(REPO_ROOT / "pages/3_Cell_embeddings.py"), default_timeout=TIMEOUT))
    app = run(widget(app.selectbox, "Cells").select("pbmc3k_decoupler"))
    return run(next(b for b in app.button if b.label == "Embed cells").click())


@pytest.fixture(autouse=True)
def quick_adaptation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list[float]]:
    """An empty user models folder, empty caches, and adaptation cut to a few steps (whatever the budget asked)."""
    models = fresh_models_folder(monkeypatch, tmp_path)
    asked: list[float] = []

    def few_steps(cells, model, *, minutes, **options):  # type: ignore[no-untyped-def]
        asked.append(minutes)
        return adapt_module.adapt_encoder(cells, model, steps=STEPS, **options)

    monkeypatch.setattr(adapt_panel, "adapt_encoder", few_steps)
    return models, asked


def run(app) -> AppTest:  # type: ignore[no-untyped-def]
    app = app.run()  # an AppTest, or an element whose run() returns its AppTest
    assert not app.exception, [e.message for e in app.exception]
    return app


def widget(items, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in items if w.label == label)


def adapt(app: AppTest, model: str, minutes: float) -> AppTest:
    widget(app.number_input, "Time budget (minutes)").set_value(minutes)
    return run(next(b for b in app.button if b.label == f"Adapt {model} to these cells").click())


@pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors").exists(),
                    reason="the shipped cells-binned encoder is missing")
def test_embedding_page_adapts_and_shows_pca_base_and_adapted_side_by_side(quick_adaptation) -> None:  # type: ignore[no-untyped-def]
    models, asked = quick_adaptation
    app = adapt(embedded_pbmc3k(), "cells-binned", 2.5)
    assert asked == [2.5]
    name = "my-cells-binned-adapted-pbmc3k_decoupler"
    assert (models / name.removeprefix("my-") / "model.safetensors").is_file()
    assert any(name in s.value and f"{STEPS} steps" in s.value for s in app.success)
    assert any(o.startswith(name) and "on pbmc3k_decoupler (160 cells), 3 steps" in o
               for o in widget(app.selectbox, "Cell encoder").options)
    assert any(h.value == f"PCA, cells-binned and {name}, side by side" for h in app.subheader)
    tables = [t.value for t in app.dataframe]
    compared = next(t for t in tables if name + " CLS" in set(t["embedding"]))
    assert list(compared["embedding"]) == ["cells-binned CLS", "cells-binned mean", f"{name} CLS", f"{name} mean",
                                           "PCA (HVG)"]
    assert compared["AvgBIO"].between(0, 1).all()


def test_deletion_page_adapts_the_rank_encoder_and_offers_it(quick_adaptation, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    models, _ = quick_adaptation
    checkpoints_folder = tmp_path / "checkpoints"
    save_tiny_checkpoint(checkpoints_folder / "cells-rank", [load_atlas_dataset("hsmm")], max_len=256)
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", checkpoints_folder)
    app = run(AppTest.from_file(str(REPO_ROOT / "pages/4_In_silico_deletion.py"), default_timeout=TIMEOUT))
    app = adapt(app, "cells-rank", 1.0)
    name = "my-cells-rank-adapted-hsmm"
    assert any(name in s.value for s in app.success)
    assert any(o.startswith(name) for o in widget(app.selectbox, "Encoder").options)
    # a second press makes a second model; nothing is overwritten
    app = adapt(app, "cells-rank", 1.0)
    assert (models / "cells-rank-adapted-hsmm").is_dir() and (models / "cells-rank-adapted-hsmm-2").is_dir()
