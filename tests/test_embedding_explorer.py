"""The Cell embeddings page's task: embed, map, score, download; and the map figure.

A model-free stand-in encoder (tests/embedding_standin.py) keeps these fast and independent of the
trained checkpoints; the last test runs the real encoder when its checkpoint is there.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang import paths, plots
from cellang.cells import load_atlas_dataset, read_cells
from cellang.cells.labels import batch_column, default_label_column, label_choices
from cellang.app import explorer as embedding_explorer
from cellang.embedding import workflow as embedding_workflow
from cellang.app.explorer import ExplorerError, explore, hover_frame
from cellang.app.exports import embedding_csv, embedding_h5ad, embedding_table, file_stem
from cellang.embedding.loading import find_cell_model
from tests import embedding_standin
from tests.conftest import REPO_ROOT
from tests.user_models import RANK_NAME, save_user_rank_model

KEYS = {"X_cells_binned_cls", "X_cells_binned_mean", "X_pca", "X_umap_cls", "X_umap_mean", "X_umap_pca"}


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    embedding_standin.install(monkeypatch)


def cells(n_cells: int = 60, n_genes: int = 200, seed: int = 0) -> ad.AnnData:
    """Counts with three planted cell types in two batches, mixed within each type."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n_cells) % 3
    rates = rng.gamma(0.5, 3.0, size=(3, n_genes))
    counts = rng.poisson(rates[groups]).astype(np.float32)
    obs = pd.DataFrame({"cell_type": [f"type {g}" for g in groups],
                        "batch": ["b1", "b1", "b2", "b2"] * (n_cells // 4) + ["b1"] * (n_cells % 4),
                        "value_kind": "counts"}, index=[f"cell{i}" for i in range(n_cells)])
    return ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))


@pytest.fixture(scope="module")
def explored() -> Iterator[tuple[ad.AnnData, embedding_explorer.ExplorerResult, list[tuple[float, str]]]]:
    """cells() explored once with the stand-in encoder: (input, result, progress reports)."""
    with pytest.MonkeyPatch.context() as monkeypatch:  # undone before the tests run
        embedding_standin.install(monkeypatch)
        adata, steps = cells(), []
        result = explore(adata, "cells-binned", "cell_type", seed=0, progress=lambda f, t: steps.append((f, t)))
    yield adata, result, steps


def with_obs(result: embedding_explorer.ExplorerResult, **columns: object) -> embedding_explorer.ExplorerResult:
    """``result`` with some obs columns replaced (same cells, same embeddings)."""
    copy = result.adata.copy()
    for name, values in columns.items():
        copy.obs[name] = values
    return embedding_explorer.ExplorerResult(copy, result.model, result.seed, result.umap)


def test_explore_embeds_maps_and_scores_against_pca(explored, standin) -> None:  # type: ignore[no-untyped-def]
    adata, result, steps = explored
    assert KEYS <= set(result.adata.obsm) and not adata.obsm  # the input is not changed
    assert result.umap["cls"].shape == (60, 2) and result.embedding("pca").shape[0] == 60
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0
    table = result.metrics
    assert list(table.columns) == ["embedding", "AvgBIO", "NMI", "ARI", "ASW", "batch ASW"]
    assert list(table["embedding"]) == ["cells-binned CLS", "cells-binned mean", "PCA (HVG)"]
    pca = table.set_index("embedding").loc["PCA (HVG)"]
    assert pca["NMI"] == pytest.approx(1.0) and pca["ARI"] == pytest.approx(1.0)  # planted types are found
    assert table["batch ASW"].between(0, 1).all()  # two batches mixed within each type
    again = explore(adata, "cells-binned", "cell_type", seed=0)
    assert np.array_equal(again.umap["mean"], result.umap["mean"])
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_one_batch_is_not_scored_for_mixing(explored) -> None:  # type: ignore[no-untyped-def]
    scores = embedding_explorer.score(with_obs(explored[1], batch="only"), "cell_type")
    # no empty column (it printed "None" in every row): the note says why there is no batch score
    assert "batch ASW" not in scores.table.columns and scores.table["AvgBIO"].notna().all()
    assert any("One batch only" in m for _, m in scores.messages)


def test_data_without_labels_are_mapped_not_scored(explored) -> None:  # type: ignore[no-untyped-def]
    result = with_obs(explored[1], cell_type="unknown")
    assert default_label_column(result.adata.obs) is None
    scores = embedding_explorer.score(result, None)
    assert scores.table is None and any("has no cell labels" in m for _, m in scores.messages)
    scores = embedding_explorer.score(result, "cell_type")
    assert scores.table is None and any("holds no known labels" in m for _, m in scores.messages)
    scores = embedding_explorer.score(with_obs(explored[1], cell_type=["x"] + ["unknown"] * 59), "cell_type")
    assert scores.table is None and any("holds only 'x'" in m for _, m in scores.messages)


def test_cells_without_a_label_are_left_out_and_bad_columns_refused(explored) -> None:  # type: ignore[no-untyped-def]
    adata, result, _ = explored
    labels = list(adata.obs["cell_type"])
    scores = embedding_explorer.score(with_obs(result, cell_type=["unknown"] * 6 + labels[6:]), "cell_type")
    assert scores.table is not None
    assert any("6 cells without a known 'cell_type' are left out" in m for _, m in scores.messages)
    serial = embedding_explorer.score(with_obs(result, serial=[f"s{i}" for i in range(60)]), "serial")
    assert serial.table is None and any("too many to score" in m for _, m in serial.messages)
    with pytest.raises(ExplorerError, match="There is no column 'tissue'"):
        embedding_explorer.score(result, "tissue")
    with pytest.raises(ExplorerError, match="There is no column 'tissue'"):
        explore(adata, "cells-binned", "tissue")  # refused before any work: no encoder needed


def test_tiny_data_cap_the_map_neighbours(standin) -> None:  # type: ignore[no-untyped-def]
    result = explore(cells(n_cells=8), "cells-rank", "cell_type")
    assert {"X_cells_rank_cls", "X_cells_rank_mean"} <= set(result.adata.obsm)
    assert result.umap["cls"].shape == (8, 2)
    assert any("Only 8 cells" in m and "7 neighbours" in m for _, m in result.messages)
    with pytest.raises(ExplorerError, match="at least 3"):
        explore(cells(n_cells=2), "cells-binned")


def test_large_data_are_embedded_in_chunks(explored, standin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    adata, whole, _ = explored
    monkeypatch.setattr(embedding_workflow, "EMBED_CHUNK", 16)
    empty = adata.copy()
    empty.X = sp.csr_matrix(sp.diags([0.0, 0.0] + [1.0] * 58) @ adata.X)  # two cells with no expression
    steps: list[str] = []
    chunked = embedding_explorer.embed_and_map(empty, "cells-binned", progress=lambda f, t: steps.append(t))
    assert [t for t in steps if t.startswith("Embedding cells")] == [
        f"Embedding cells {a} to {b} of 60 with cells-binned..." for a, b in ((1, 16), (17, 32), (33, 48), (49, 60))]
    assert np.allclose(chunked.embedding("cls")[2:], whole.embedding("cls")[2:], rtol=1e-4, atol=1e-3)
    assert any("2 cells express none of the encoder's genes" in m for _, m in chunked.messages)
    assert any("(50%) are in these cells" in m for _, m in whole.messages)


def test_uploads_are_harmonised_to_approved_symbols(standin) -> None:  # type: ignore[no-untyped-def]
    symbols = list(load_atlas_dataset("pbmc68k_reduced").var_names[:40])
    adata = cells(n_cells=12, n_genes=41)
    adata.var_names = symbols + ["NOTAGENE123"]
    result = explore(adata, "cells-binned", "cell_type", harmonise=True)
    assert set(result.adata.var_names) == set(symbols)
    assert any("Genes harmonised to approved symbols" in m and "1 unknown dropped" in m
               for _, m in result.messages)
    adata.var_names = [f"NOTAGENE{i}" for i in range(41)]
    with pytest.raises(ExplorerError, match="None of the gene identifiers"):
        explore(adata, "cells-binned", harmonise=True)


def test_missing_checkpoint_and_unknown_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(ExplorerError, match="checkpoints/cells-binned/model.safetensors is missing"):
        explore(cells(), "cells-binned", "cell_type")
    with pytest.raises(ExplorerError, match="no cell encoder called 'cells-gpt'"):
        explore(cells(), "cells-gpt")
    with pytest.raises(ExplorerError, match="no cell encoder called 'my-nothing'"):
        explore(cells(), "my-nothing")


def test_encoder_refusal_becomes_a_plain_message(standin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(adata, model, checkpoint_dir=None):  # type: ignore[no-untyped-def]
        raise ValueError("X holds scaled values (z-scores)")

    monkeypatch.setattr(sys.modules["cellang.embedding.embed"], "embed_cells", refuse)
    with pytest.raises(ExplorerError, match="cannot embed these cells: X holds scaled values"):
        explore(cells(), "cells-binned")


def test_csv_and_h5ad_downloads_round_trip(explored) -> None:  # type: ignore[no-untyped-def]
    adata, result, _ = explored
    table = pd.read_csv(io.BytesIO(embedding_csv(result, "cls")))
    dims = result.embedding("cls").shape[1]
    assert len(table) == 60 and list(table["cell_id"]) == list(adata.obs_names)
    assert list(table.columns[:6]) == ["cell_id", "model", "checkpoint", "cell_type", "batch", "value_kind"]
    assert set(table["model"]) == {"cells-binned"} and set(table["checkpoint"]) == {"checkpoints/cells-binned"}
    assert [c for c in table.columns if c.startswith("cells_binned_cls_")] == [f"cells_binned_cls_{i}"
                                                                                for i in range(dims)]
    assert np.allclose(table[[f"cells_binned_cls_{i}" for i in range(dims)]], result.embedding("cls"), rtol=1e-5)
    assert np.allclose(table[["umap_1", "umap_2"]], result.umap["cls"], rtol=1e-5)

    back = read_cells(embedding_h5ad(result))
    assert KEYS <= set(back.obsm)
    assert back.uns["cellang_embedding"]["cells-binned"]["checkpoint_folder"] == "checkpoints/cells-binned"
    assert np.allclose(back.obsm["X_cells_binned_mean"], result.embedding("mean"))
    assert (back.X != adata.X).nnz == 0 and list(back.obs["cell_type"]) == list(adata.obs["cell_type"])
    assert embedding_h5ad(result) == embedding_h5ad(result)  # reproducible bytes


def test_result_cache_keeps_the_newest(explored) -> None:  # type: ignore[no-untyped-def]
    cache, made = embedding_explorer.ResultCache(size=2), []

    def make(key: str):  # type: ignore[no-untyped-def]
        return lambda: made.append(key) or explored[1]

    for key in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(key, make(key)) is explored[1]
    assert made == ["a", "b", "c", "b"] and len(cache) == 2  # "b" was dropped when "c" came


def test_label_and_batch_columns_of_the_atlas() -> None:
    from cellang.atlas import atlas_obs

    hsmm = atlas_obs("hsmm")
    assert default_label_column(hsmm) == "cell_type" and label_choices(hsmm)[0] == "cell_type"
    assert "pseudotime" not in label_choices(hsmm)  # floats are not labels
    assert batch_column(hsmm) == "batch"
    unlabelled = atlas_obs("celltypist_immune")
    assert default_label_column(unlabelled) is None and batch_column(unlabelled) is None
    assert batch_column(atlas_obs("oligodendroglioma")) == "batch"


def test_hover_and_file_names(explored) -> None:  # type: ignore[no-untyped-def]
    hover = hover_frame(explored[1], ["cell_type", None, "cell_type", "absent", "batch"])
    assert list(hover.columns) == ["cell", "cell_type", "batch"] and len(hover) == 60
    assert file_stem("my data/../x.h5ad", "cells-binned", "cls") == "my_data____x_h5ad_cells-binned_cls"


def test_embedding_scatter_categorical_numeric_and_escaped() -> None:
    coords = np.random.default_rng(0).normal(size=(40, 2))
    hover = pd.DataFrame({"cell": [f"c{i}" for i in range(40)], "<i>label</i>": ["<script>x</script>"] * 40})
    labels = ["<b>T cell</b>", "B cell"] * 20
    figure = plots.embedding_scatter(coords, labels, "cell type", hover)
    assert sorted(t.name for t in figure.data) == ["&lt;b&gt;T cell&lt;/b&gt;", "B cell"]
    assert all("<script>" not in str(t.customdata.tolist()) for t in figure.data)
    assert "&lt;i&gt;label&lt;/i&gt;" in figure.data[0].hovertemplate
    assert sum(len(t.x) for t in figure.data) == 40

    numeric = plots.embedding_scatter(coords, np.linspace(0, 1, 40), "pseudotime", hover)
    assert len(numeric.data) == 1 and numeric.data[0].marker.showscale
    few_numbers = plots.embedding_scatter(coords, [0, 24, 48, 72] * 10, "hours", hover)
    assert len(few_numbers.data) == 4  # few distinct numbers: categories
    with_missing = plots.embedding_scatter(coords, [np.nan] * 5 + list(np.linspace(0, 1, 35)), "score", hover)
    assert [t.name for t in with_missing.data] == ["missing", "score"]

    many = plots.embedding_scatter(np.zeros((100, 2)), [f"v{i}" for i in range(100)], "id", hover_frame_of(100))
    assert len(many.data) == plots.MAX_COLOUR_CATEGORIES and many.data[-1].name == "other (71 values)"
    with pytest.raises(ValueError):
        plots.embedding_scatter(coords, labels[:10], "cell type", hover)


def test_embedding_scatter_without_colour_column_and_legend_below() -> None:
    figure = plots.embedding_scatter(np.zeros((6, 2)), None, None, hover_frame_of(6))
    assert [t.name for t in figure.data] == ["all cells"] and len(figure.data[0].x) == 6
    assert figure.layout.legend.orientation == "h"  # a long legend must not take half the map's width


def test_volcano_names_top_and_known_genes_apart() -> None:
    table = pd.DataFrame({"gene": [f"G{i}" for i in range(30)] + ["MYOD1"], "cells": 3,
                          "mean_score": np.linspace(1, 0, 31), "q": np.linspace(0.001, 1, 31)})
    figure = plots.perturbation_volcano(table, ["MYOD1", "<b>X</b>"], label_top=5)
    labels = {a.text: a for a in figure.layout.annotations if a.showarrow}
    assert set(labels) == {"G0", "G1", "G2", "G3", "G4", "MYOD1"}
    assert len({(a.ax, a.ay) for a in labels.values()}) == 6  # every label on its own spot
    assert labels["MYOD1"].font.color == "crimson" and labels["G0"].font.color == "black"


def hover_frame_of(n: int) -> pd.DataFrame:
    return pd.DataFrame({"cell": [f"c{i}" for i in range(n)]})


@pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors").exists(),
                    reason="no cells-binned checkpoint: checkpoints/cells-binned/model.safetensors is missing")
def test_real_encoder_on_a_small_atlas_dataset() -> None:
    pytest.importorskip("cellang.embedding.embed", reason="cellang.embedding.embed is not there yet")
    adata = load_atlas_dataset("pbmc3k_decoupler", max_cells=64, seed=0)  # 8 types, a seeded sample
    result = explore(adata, "cells-binned", "cell_type")
    assert KEYS <= set(result.adata.obsm)
    assert result.embedding("cls").shape[0] == adata.n_obs
    assert result.metrics[["AvgBIO", "NMI", "ARI", "ASW"]].notna().all().all()


@pytest.fixture()
def user_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tiny real rank encoder fitted on cells(), in a temporary CELLANG_MODELS folder; its CellModel."""
    save_user_rank_model(tmp_path, [cells()])
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    return find_cell_model(RANK_NAME)


def test_a_user_model_embeds_and_every_output_names_it(user_model) -> None:  # type: ignore[no-untyped-def]
    adata = cells(n_cells=24)
    result = explore(adata, user_model, "cell_type")  # the real encoder code on the tiny checkpoint
    keys = {"X_my_cells_rank_finetuned_cls", "X_my_cells_rank_finetuned_mean"}
    assert keys <= set(result.adata.obsm) and result.embedding("cls").shape == (24, 16)
    assert result.model == RANK_NAME and result.cell_model == user_model
    assert result.produced_by() == (f"Embedded with {RANK_NAME} ({user_model.folder}): rank-value encoder "
                                    "(Geneformer-style), fine-tuned from cells-rank on mine.h5ad (60 cells), 3 steps.")
    assert list(result.metrics["embedding"]) == [f"{RANK_NAME} CLS", f"{RANK_NAME} mean", "PCA (HVG)"]
    by_name = explore(adata, RANK_NAME, "cell_type")  # the same model chosen by its name
    assert np.array_equal(by_name.embedding("mean"), result.embedding("mean"))
    table = pd.read_csv(io.BytesIO(embedding_csv(result, "mean")))
    assert set(table["model"]) == {RANK_NAME} and set(table["checkpoint"]) == {user_model.folder}
    assert "my_cells_rank_finetuned_mean_0" in table.columns
    report = read_cells(embedding_h5ad(result)).uns["cellang_embedding"][RANK_NAME]
    assert report["checkpoint_folder"] == user_model.folder and not report["shipped"]
    assert "fine-tuned from cells-rank" in report["description"]
    assert file_stem("hsmm", result.model, "mean") == "hsmm_my-cells-rank-finetuned_mean"


def test_an_obs_column_called_model_is_kept_apart(explored) -> None:  # type: ignore[no-untyped-def]
    table = embedding_table(with_obs(explored[1], model="from the lab"), "pca")
    assert list(table.columns[:3]) == ["cell_id", "model", "checkpoint"] and set(table["obs_model"]) == {"from the lab"}


def test_an_unreadable_user_model_is_a_plain_message(user_model) -> None:  # type: ignore[no-untyped-def]
    (user_model.path / "vocabulary.json").write_text("{}")  # damaged after it was listed
    with pytest.raises(ExplorerError, match=f"The {RANK_NAME} encoder \\(.*\\) cannot be read"):
        explore(cells(n_cells=6), user_model)


def test_up_to_ten_labels_get_ten_different_hues() -> None:
    import pandas as pd

    from cellang import plots

    labels = [f"type {i}" for i in range(10)] * 3
    figure = plots.embedding_scatter([[i, i] for i in range(30)], labels, "cell_type", pd.DataFrame(index=range(30)))
    colours = [trace.marker.color for trace in figure.data]
    assert len(colours) == len(set(colours)) == 10
    assert not {"#2E91E5", "#511CFB"} <= set(colours)  # Dark24's two blues, once the 1st and 10th labels
