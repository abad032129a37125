"""AppTest of the In-silico deletion page: defaults, a run on a few HSMM cells, downloads, bad inputs.

The page runs on a tiny random cells-rank checkpoint written to a temporary folder (fast, and
independent of training); one test uses the real checkpoints/cells-rank when it is there.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import streamlit as st
from streamlit.testing.v1 import AppTest

from cellang import paths
from cellang.cells import inspect_upload, load_atlas_dataset, write_h5ad
from tests.conftest import REPO_ROOT
from tests.perturb_fixtures import genes_in_sampled_myotubes, save_tiny_checkpoint
from tests.user_models import RANK_FOLDER, RANK_NAME, add_folders_to_skip, save_user_binned_model, save_user_rank_model

TIMEOUT = 120
PAGE = "pages/4_In_silico_deletion.py"
REAL_CHECKPOINT = REPO_ROOT / "checkpoints" / "cells-rank" / "model.safetensors"


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Empty Streamlit caches, and an empty user models folder (whatever the developer's models/ holds)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path_factory.mktemp("no-user-models")))


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    save_tiny_checkpoint(root / "cells-rank", [load_atlas_dataset("hsmm")], max_len=256)  # the real length
    return root


@pytest.fixture()
def tiny_model(monkeypatch: pytest.MonkeyPatch, tiny_checkpoints: Path) -> Path:
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", tiny_checkpoints)
    return tiny_checkpoints


def widget(items, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in items if w.label == label)


def page(app: AppTest | None = None) -> AppTest:
    app = (AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT) if app is None else app).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def plain_embedding(app: AppTest) -> AppTest:
    """Untick the default fine-tuning first: the tests of everything else stay fast."""
    return widget(app.checkbox, "Fine-tune on the start and goal states first").uncheck().run()


def run_on_genes(app: AppTest, genes: str, cells: int = 3) -> AppTest:
    plain_embedding(app)
    widget(app.radio, "Genes to perturb").set_value("list").run()
    widget(app.text_area, "Gene symbols (spaces, commas or lines)").input(genes).run()
    widget(app.number_input, "At most this many start cells (random sample)").set_value(cells).run()
    widget(app.number_input, "Rank genes scored in at least this many cells").set_value(1).run()
    widget(app.button, "Run").click().run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_page_says_which_data_and_offers_hsmm_defaults(tiny_model: Path) -> None:
    app = page()
    text = " ".join(c.value for c in app.caption) + " ".join(i.value for i in app.info)
    assert "HSMM skeletal myoblasts/myotubes" in text and "no cardiomyocyte dataset ships" in text
    assert "query the Census on a connected machine" in text
    assert widget(app.selectbox, "Cells").value == "hsmm"
    assert widget(app.selectbox, "State column").value == "state"
    assert widget(app.selectbox, "Start state: the cells to perturb").value == "myotube"
    assert widget(app.selectbox, "Goal state").value == "myoblast"
    assert widget(app.selectbox, "Known genes (validation)").value.startswith("myogenic regulators")
    shipped = "cells-rank: rank-value encoder (Geneformer-style), trained"  # the tiny stand-in's record says no more
    assert widget(app.selectbox, "Encoder").options == [shipped]
    assert "a binned encoder (cells-binned) drops the gene's token and value" in text
    assert "Your own encoders are read from" in text
    assert "By default the encoder is first fine-tuned to tell the start cells from the goal cells" in text
    assert widget(app.checkbox, "Fine-tune on the start and goal states first").value, "the validity winner"
    assert widget(app.radio, "Rank by").value == "goal_probability_shift"
    widget(app.selectbox, "Goal state").set_value("(none: score how far the cells move)").run()
    assert widget(app.checkbox, "Fine-tune on the start and goal states first").disabled, "no states to tell apart"
    assert not app.get("download_button") and not app.get("plotly_chart")  # nothing runs before the button
    assert any("press **Run**" in i.value for i in app.info)


def sampled_genes(checkpoints: Path, n_cells: int = 3) -> list[str]:
    from cellang.embedding.loading import load_cell_encoder_checkpoint

    return genes_in_sampled_myotubes(load_cell_encoder_checkpoint(checkpoints / "cells-rank")[1], n_cells)


def test_run_on_a_few_cells_ranks_validates_plots_and_downloads(tiny_model: Path) -> None:
    genes = sampled_genes(tiny_model)
    app = run_on_genes(page(), " ".join(genes + ["MYOG", "NOT_A_GENE"]))
    ranked = ranked_tables(app)
    assert {"rank", "gene", "direction", "effect", "cells", "p", "q", "mean_difference", "expression_rank",
            "known"} <= set(ranked.columns)
    assert set(genes) <= set(ranked["gene"]) <= set(genes) | {"MYOG"}
    assert (ranked["cells"] <= 3).all() and ranked["q"].between(0, 1).all()
    assert [d.label for d in app.get("download_button")] == ["Download the ranked genes (CSV)"]
    assert len(app.get("plotly_chart")) == 1
    assert widget(app.metric, "Cells perturbed").value == "3"
    assert any("NOT_A_GENE" in w.value for w in app.warning)
    assert any("AUROC of myogenic regulators" in c.value or "None of myogenic" in c.value for c in app.caption)
    assert any("Data shown: HSMM" in i.value for i in app.info)
    assert any(("No deletion moves these cells toward the goal" in i.value or "beyond their expression-matched "
                "controls at q < 0.05" in i.value) for i in app.info), "the page says whether any gene is a hit"
    assert any(f"embedded with cells-rank ({tiny_model / 'cells-rank'})" in c.value for c in app.caption)
    widget(app.radio, "Perturbation").set_value("overexpress").run()  # a changed request waits for Run
    assert not app.get("download_button") and any("press **Run**" in i.value for i in app.info)


def ranked_tables(app: AppTest) -> pd.DataFrame:
    """The page's two ranked tables (toward the goal; away from it, in an expander) as one."""
    tables = [d.value for d in app.dataframe if "effect" in d.value.columns]
    assert 1 <= len(tables) <= 2
    return pd.concat(tables, ignore_index=True)


def test_the_fast_screen_runs_from_the_page_and_says_what_is_estimated(tiny_model: Path) -> None:
    app = page()
    widget(app.checkbox, "Fast screen").check().run()
    rank_by = widget(app.radio, "Rank by")
    assert rank_by.disabled, "the screen estimates the embedding's goal shift, not a classifier's probability"
    app = run_on_genes(app, " ".join(sampled_genes(tiny_model)))
    assert any(c.value.startswith("Fast screen: ") and "were scored exactly" in c.value for c in app.caption)
    widget(app.radio, "Perturbation").set_value("overexpress").run()  # refused when the request is made
    assert not app.exception and widget(app.button, "Run").disabled
    assert any("the screen ranks deletions toward a goal state" in e.value for e in app.error)


def test_unknown_genes_and_missing_checkpoint_get_clear_messages(tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    app = run_on_genes(page(), "NOT_A_GENE XYZ1")
    assert any("is in the cells-rank vocabulary" in e.value for e in app.error)
    assert not app.get("download_button")
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", tmp_path)
    app = page()
    assert any("checkpoints/cells-rank/model.safetensors is missing" in e.value for e in app.error)
    assert widget(app.button, "Run").disabled


def test_one_gene_in_one_cell_is_ranked_not_a_crash(tiny_model: Path) -> None:
    gene = sampled_genes(tiny_model, n_cells=1)[0]
    app = run_on_genes(page(), gene, cells=1)
    ranked = ranked_tables(app)
    assert ranked["gene"].tolist() == [gene] and ranked["p"].tolist() == [1.0], "one cell: no test, p = 1"
    assert sum("Data shown" in m.value for m in [*app.info, *app.caption]) == 1  # the data note once


def test_out_of_range_settings_are_named_beside_run(tiny_model: Path) -> None:
    app = page()
    widget(app.number_input, "Rank genes scored in at least this many cells").set_value(60).run()
    widget(app.number_input, "Seed").set_value(-5).run()
    errors = [e.value for e in app.error]
    assert any("min_cells is 60 but only 50 start cells are perturbed" in e for e in errors)
    assert any(e.startswith("seed must be a whole number from 0 to") for e in errors)
    assert widget(app.button, "Run").disabled
    widget(app.number_input, "At most this many start cells (random sample)").set_value(0).run()
    assert any(e.startswith("Start cells must be between 1 and 500") for e in (e.value for e in app.error))


def heart_upload(tmp_path: Path) -> bytes:
    genes = ["MYH7", "TTN", "LMNA", "MYBPC3", "TNNT2", "ACTC1", "PLN", "RBM20", "NPPA", "NPPB", "ACTB", "GAPDH"]
    counts = np.random.default_rng(0).poisson(4, size=(24, len(genes))).astype(np.float32) + 1
    obs = pd.DataFrame({"cell_type": ["cardiomyocyte", "fibroblast"] * 12,
                        "disease": ["normal"] * 12 + ["dilated cardiomyopathy"] * 12}, index=[f"c{i}" for i in range(24)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    return write_h5ad(adata, tmp_path / "heart.h5ad").read_bytes()


def test_an_upload_from_the_data_page_gets_heart_defaults(tiny_model: Path, tmp_path: Path) -> None:
    app = AppTest.from_file(str(REPO_ROOT / PAGE), default_timeout=TIMEOUT)
    app.session_state["uploaded_cells"] = inspect_upload(heart_upload(tmp_path), "heart.h5ad")
    app.session_state["uploaded_cells_id"] = "from-the-data-page"
    app = page(app)
    cells = widget(app.selectbox, "Cells")
    assert cells.options[1] == "Your upload: heart.h5ad (24 cells, this session)"
    assert cells.value == "upload", "cells the user brought are what the page opens on"
    assert any("need an internet connection; offline, upload your own .h5ad here" in c.value for c in app.caption)
    assert len(app.get("file_uploader")) == 1, "the page takes an upload itself"
    cells.select("upload").run()
    assert widget(app.selectbox, "State column").value == "disease"
    assert widget(app.selectbox, "Start state: the cells to perturb").value == "normal"
    assert widget(app.selectbox, "Goal state").value == "dilated cardiomyopathy"
    assert widget(app.selectbox, "Known genes (validation)").value == "HPO: Dilated cardiomyopathy"
    assert any("Data shown: your upload heart.h5ad (24 cells)" in i.value for i in app.info)
    assert not any("HSMM" in c.value for c in [*app.caption, *app.info])  # the demo's note goes with the demo


@pytest.mark.skipif(not REAL_CHECKPOINT.exists(), reason="checkpoints/cells-rank/model.safetensors is not trained yet")
def test_real_encoder_on_a_few_hsmm_cells() -> None:
    genes = sampled_genes(REPO_ROOT / "checkpoints", n_cells=2)
    app = run_on_genes(page(), " ".join(genes), cells=2)
    ranked = ranked_tables(app)
    assert set(ranked["gene"]) == set(genes) and ranked["effect"].notna().all()


@pytest.mark.skipif(not REAL_CHECKPOINT.exists(), reason="checkpoints/cells-rank/model.safetensors is not trained yet")
def test_real_encoder_myod1_alone_with_the_hsmm_defaults() -> None:
    app = plain_embedding(page())
    widget(app.radio, "Genes to perturb").set_value("list").run()
    widget(app.text_area, "Gene symbols (spaces, commas or lines)").input("MYOD1").run()
    widget(app.button, "Run").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.get("download_button") or any("MYOD1" in e.value for e in app.error)  # ranked, or said why not


def test_a_user_rank_model_is_offered_run_and_named(tiny_model: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cellang.embedding.loading import load_cell_encoder_checkpoint

    hsmm = load_atlas_dataset("hsmm")
    root = tmp_path / "my-models"
    save_user_rank_model(root, [hsmm])
    save_user_binned_model(root, list(hsmm.var_names[:30]))  # binned: offered too, deleting token and value
    add_folders_to_skip(root)
    monkeypatch.setenv("CELLANG_MODELS", str(root))
    app = page()
    encoder = widget(app.selectbox, "Encoder")
    assert [o.split(" ")[0].rstrip(":") for o in encoder.options] == ["cells-rank", "my-cells-binned-mine", RANK_NAME]
    assert encoder.value.startswith("cells-rank")
    assert encoder.options[2] == (f"{RANK_NAME} (yours, {root / RANK_FOLDER}): rank-value encoder (Geneformer-style), "
                                  "fine-tuned from cells-rank on mine.h5ad (271 cells), 3 steps")
    captions = " ".join(c.value for c in app.caption)
    assert "drops the gene's token and value" in captions and f"read from {root}/" in captions
    assert "junk (no model.safetensors" in captions
    encoder.select(RANK_NAME).run()
    genes = genes_in_sampled_myotubes(load_cell_encoder_checkpoint(root / RANK_FOLDER)[1], 2)
    app = run_on_genes(app, " ".join(genes), cells=2)
    assert any(f"embedded with {RANK_NAME} ({root / RANK_FOLDER})" in c.value for c in app.caption)
    result = app.session_state["deletion_result"]
    assert result.settings["model"] == RANK_NAME and set(result.ranked["gene"]) == set(genes)
    assert [d.label for d in app.get("download_button")] == ["Download the ranked genes (CSV)"]
    widget(app.selectbox, "Encoder").select("cells-rank").run()  # another model: a new run, after Run
    assert not app.get("download_button") and any("press **Run**" in i.value for i in app.info)

