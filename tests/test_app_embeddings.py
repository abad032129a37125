"""AppTest of the Cell embeddings page: choose cells, encoder and colour; map, scores, downloads; bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import streamlit as st
from streamlit.testing.v1 import AppTest

from cellang import paths
from cellang.atlas import ATLAS_DIR, atlas_manifest
from cellang.cells import inspect_upload, write_h5ad
from cellang.registry import sha256_of
from tests import embedding_standin
from tests.conftest import REPO_ROOT
from tests.user_models import RANK_NAME, add_folders_to_skip, save_user_binned_model, save_user_rank_model

TIMEOUT = 120
PAGE = "pages/3_Cell_embeddings.py"
CHECKPOINT = REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors"
STANDIN = os.environ.get("CELLANG_EMBED_STANDIN") == "1"  # develop the page before the encoders exist


def _encoders_ready() -> bool:
    try:
        import cellang.embedding.embed  # noqa: F401
    except ImportError:
        return False
    return CHECKPOINT.exists()


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Empty Streamlit caches, and an empty user models folder (whatever the developer's models/ holds)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path_factory.mktemp("no-user-models")))


@pytest.fixture()
def encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real cell encoders, or skip; CELLANG_EMBED_STANDIN=1 swaps in a model-free stand-in."""
    if STANDIN:
        embedding_standin.install(monkeypatch)
    elif not _encoders_ready():
        pytest.skip("no cell encoder: checkpoints/cells-binned/model.safetensors (or cellang.embedding.embed) "
                    "is missing; train the cell encoders to run the page tests")


def page(app: AppTest | None = None) -> AppTest:
    app = (AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT) if app is None else app).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def widget(items, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in items if w.label == label)


def embed(app: AppTest, dataset: str, model: str = "cells-binned") -> AppTest:
    widget(app.selectbox, "Cells").select(dataset).run()
    widget(app.selectbox, "Cell encoder").select(model).run()
    next(b for b in app.button if b.label == "Embed cells").click().run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def downloads(app: AppTest) -> list[str]:
    return [d.label for d in app.get("download_button")]


def test_page_says_which_cells_and_offers_datasets_and_encoders() -> None:
    app = page()
    text = " ".join(c.value for c in app.caption)
    assert "no cardiomyocytes" in text and "hsmm" in text and "striated-muscle stand-in" in text
    assert list(app.selectbox[0].options) == [f"{e['name']}: {e['title']} ({e['cells']:,} cells, {e['value_kind']})"
                                              for e in atlas_manifest()["datasets"]]
    assert list(widget(app.selectbox, "Cell encoder").options) == [
        "cells-binned: binned-expression encoder (scGPT-style), trained on 7 atlas datasets (3,074 cells), 12,000 steps",
        "cells-rank: rank-value encoder (Geneformer-style), trained on 6 atlas datasets (2,874 cells), 7,000 steps"]
    assert "Your own encoders are read from" in text and "cellang train cells-rank --data my.h5ad" in text
    assert not app.get("plotly_chart") and not downloads(app)


def test_an_upload_from_the_data_page_is_offered(tmp_path: Path) -> None:
    app = AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT)
    app.session_state["uploaded_cells"] = inspect_upload(upload_bytes(tmp_path), "mine.h5ad")
    app.session_state["uploaded_cells_id"] = "from-the-data-page"
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.selectbox[0].value == "upload"
    assert app.selectbox[0].options[0] == "Your upload: mine.h5ad (12 cells)"


def test_embed_a_dataset_map_scores_colour_and_downloads(encoder) -> None:  # type: ignore[no-untyped-def]
    app = page()
    assert any("press **Embed cells**" in i.value for i in app.info)  # nothing is embedded before the button
    assert not app.get("plotly_chart") and not downloads(app)
    app = embed(app, "oligodendroglioma")
    assert len(app.get("plotly_chart")) == 1
    table = next(d.value for d in app.dataframe if "AvgBIO" in d.value.columns)
    assert list(table.columns) == ["embedding", "AvgBIO", "NMI", "ARI", "ASW", "batch ASW"]
    assert list(table["embedding"]) == ["cells-binned CLS", "cells-binned mean", "PCA (HVG)"]
    assert table[["AvgBIO", "NMI", "ARI", "ASW"]].notna().all().all()
    assert table["batch ASW"].between(0, 1).all()  # five patients: batch ASW is scored
    assert widget(app.selectbox, "Colour by").value == "cell_type"
    assert widget(app.selectbox, "Score against the labels in").value == "cell_type"
    assert any("Embedded with cells-binned (checkpoints/cells-binned)" in s.value for s in app.success)
    assert downloads(app) == ["Download the embedding (CSV)", "Download the AnnData with embeddings (.h5ad)"]

    widget(app.selectbox, "Colour by").select("batch").run()  # colour by patient: the same map, no new embedding
    assert not app.exception
    widget(app.radio, "Embedding").set_value("mean").run()
    assert not app.exception and len(app.get("plotly_chart")) == 1
    assert any("UMAP of the cells-binned mean-pooled genes" in h.value for h in app.subheader)


def test_cells_without_labels_are_mapped_not_scored(encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # like the atlas's celltypist_immune (every cell 'unknown'), but 12 cells so that the test stays fast
    app = AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT)
    app.session_state["uploaded_cells"] = inspect_upload(upload_bytes(tmp_path, labels=False), "unlabelled.h5ad")
    app.session_state["uploaded_cells_id"] = "unlabelled"
    app.run()
    next(b for b in app.button if b.label == "Embed cells").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert len(app.get("plotly_chart")) == 1
    assert any("has no cell labels" in i.value for i in app.info)
    assert not any("AvgBIO" in d.value.columns for d in app.dataframe)
    assert len(downloads(app)) == 2


def test_cells_without_any_obs_column_are_mapped_in_one_colour(encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT)
    app.session_state["uploaded_cells"] = inspect_upload(upload_bytes(tmp_path, labels=None), "bare.h5ad")
    app.session_state["uploaded_cells_id"] = "bare"
    app.run()
    assert app.session_state["uploaded_cells"].ok  # the Data page calls it usable: so must this page
    next(b for b in app.button if b.label == "Embed cells").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert len(app.get("plotly_chart")) == 1 and widget(app.selectbox, "Colour by").value is None
    assert any("has no cell labels" in i.value for i in app.info) and len(downloads(app)) == 2


def test_out_of_range_seed_is_named_and_blocks_embedding() -> None:
    app = page()
    app.number_input[0].set_value(-5).run()
    assert not app.exception and any(e.value.startswith("Seed must be between 0 and") for e in app.error)
    assert next(b for b in app.button if b.label == "Embed cells").disabled


def test_missing_checkpoint_is_said_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", tmp_path)
    app = page()
    assert any("checkpoints/cells-binned/model.safetensors is missing" in e.value and
               "checkpoints/cells-rank/model.safetensors is missing" in e.value for e in app.error)
    assert next(b for b in app.button if b.label == "Embed cells").disabled
    assert not app.get("plotly_chart")


def upload_bytes(tmp_path: Path, labels: bool | None = True) -> bytes:
    """12 cells over 12 real genes (of two types, or all 'unknown'; labels None: obs has no column at all),
    as .h5ad bytes."""
    genes = ["ACTB", "GAPDH", "MYH3", "DES", "TTN", "MYOD1", "MYOG", "CD3E", "MS4A1", "LYZ", "NKG7", "PTPRC"]
    counts = np.random.default_rng(0).poisson(2, size=(12, len(genes))).astype(np.float32) + 1
    types = ["myoblast", "<b>T cell</b>"] * 6 if labels else ["unknown"] * 12
    obs = pd.DataFrame({"cell_type": types} if labels is not None else {}, index=[f"c{i}" for i in range(12)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    return write_h5ad(adata, tmp_path / "mine.h5ad").read_bytes()


def test_upload_is_embedded_atlas_untouched(encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = {p.name: sha256_of(p) for p in ATLAS_DIR.iterdir()}
    app = page()
    app.file_uploader[0].set_value(("mine.h5ad", upload_bytes(tmp_path), "application/octet-stream")).run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.selectbox[0].value == "upload"
    next(b for b in app.button if b.label == "Embed cells").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert any("Only 12 cells" in i.value for i in app.info)  # UMAP neighbours capped
    assert any("Genes harmonised to approved symbols" in i.value for i in app.info)
    assert len(app.get("plotly_chart")) == 1
    assert {p.name: sha256_of(p) for p in ATLAS_DIR.iterdir()} == before


def test_a_user_model_is_offered_and_named_in_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny real rank encoder in CELLANG_MODELS embeds 12 uploaded cells; the page says it made the map."""
    root = tmp_path / "my-models"
    cells = inspect_upload(upload_bytes(tmp_path), "mine.h5ad")
    save_user_rank_model(root, [cells.adata])
    save_user_binned_model(root, [str(g) for g in cells.adata.var_names])
    add_folders_to_skip(root)
    monkeypatch.setenv("CELLANG_MODELS", str(root))
    app = AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT)
    app.session_state["uploaded_cells"], app.session_state["uploaded_cells_id"] = cells, "mine"
    app = page(app)
    encoder = widget(app.selectbox, "Cell encoder")
    mine = f"{RANK_NAME} (yours, {root / 'cells-rank-finetuned'}): rank-value encoder (Geneformer-style), " \
           "fine-tuned from cells-rank on mine.h5ad (12 cells), 3 steps"
    assert len(encoder.options) == 4 and encoder.options[3] == mine
    assert encoder.options[0].startswith("cells-binned: ") and encoder.options[1].startswith("cells-rank: ")
    assert encoder.options[2].startswith(f"my-cells-binned-mine (yours, {root / 'cells-binned-mine'}): binned")
    captions = " ".join(c.value for c in app.caption)
    assert f"read from {root}/" in captions and "junk (no model.safetensors" in captions
    assert "pathway-set-copy (not a cell encoder" in captions
    encoder.select(RANK_NAME).run()
    next(b for b in app.button if b.label == "Embed cells").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert [s.value for s in app.success] == [f"Embedded with {RANK_NAME} ({root / 'cells-rank-finetuned'}): "
                                              "rank-value encoder (Geneformer-style), fine-tuned from cells-rank on "
                                              "mine.h5ad (12 cells), 3 steps."]
    assert any(f"UMAP of the {RANK_NAME} CLS token" in h.value for h in app.subheader)
    table = next(d.value for d in app.dataframe if "AvgBIO" in d.value.columns)
    assert list(table["embedding"]) == [f"{RANK_NAME} CLS", f"{RANK_NAME} mean", "PCA (HVG)"]
