"""The public API, ``import cellang as cl``: namespaces, return shapes, errors, and results equal to the code
before the package move.

tests/data/before_the_move.json was written by the code before the move (package ``cellang_core``, commit
7526340) through its internal calls (run_completion, embed_cells, run_perturbation) on the same inputs and seeds.
Its two pathway completions are written again whenever the shipped pathway models change (the mixture of the
masked-set transformer into the reader's ranking, then the transformer's third run): a change of model, not of code path.
"""

from __future__ import annotations

import ast
import inspect
import importlib
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import cellang as cl
from tests.conftest import REPO_ROOT

BEFORE = json.loads((REPO_ROOT / "tests" / "data" / "before_the_move.json").read_text())
GENES = BEFORE["genes"]
MYOGENIC = ["MYOD1", "MYOG", "MYF5", "MYF6", "MEF2C"]


@pytest.fixture(autouse=True)
def quiet() -> None:
    cl.settings.progress_bar = False


@pytest.fixture(scope="module")
def hsmm():  # type: ignore[no-untyped-def]
    return cl.datasets.cells("hsmm")


def test_namespaces_and_version() -> None:
    for name in ("pw", "tl", "pl", "datasets"):
        assert getattr(cl, name).__name__ == f"cellang.{name}"
        for function in getattr(cl, name).__all__:
            member = getattr(getattr(cl, name), function)
            if inspect.isfunction(member):
                assert "Returns\n    -------" in (member.__doc__ or ""), f"cl.{name}.{function}: numpydoc Returns"
    assert cl.__version__
    assert "version" in (REPO_ROOT / "pyproject.toml").read_text()
    with pytest.raises(AttributeError):
        cl.nothing_here  # noqa: B018


def test_every_error_raised_on_purpose_derives_from_cellang_error() -> None:
    found = {}
    for path in (REPO_ROOT / "cellang").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and (node.name.endswith("Error") or node.name.endswith("Unavailable")):
                module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
                found[f"{module}.{node.name}"] = getattr(importlib.import_module(module), node.name)
    assert len(found) >= 12
    not_derived = [name for name, cls in found.items() if not issubclass(cls, cl.CellangError)]
    assert not_derived == []


def test_complete_expands_by_default_and_matches_the_code_before_the_move() -> None:
    table = cl.pw.complete(GENES, n=10)
    assert list(table.columns[:5]) == ["rank", "gene", "score", "status", "evidence"]
    assert table.attrs["hidden"] == [] and table.attrs["prompt"] == BEFORE["complete_expand"]["prompt"]
    assert set(table["status"]) == {"novel"} and table["rank"].tolist() == list(range(1, 11))
    before = BEFORE["complete_expand"]["predictions"]
    assert table["gene"].tolist() == [g for g, _ in before]
    assert np.allclose(table["score"], [s for _, s in before], atol=1e-6)
    assert table["evidence"].str.len().min() > 0  # the shipped completer names its supporting sets


def test_complete_hides_with_a_seed_and_reports_the_test() -> None:
    table = cl.pw.complete(GENES, hide=0.5, seed=0)
    before = BEFORE["complete_hide"]
    assert table.attrs["hidden"] == before["hidden"] and table.attrs["prompt"] == before["prompt"]
    assert table["gene"].tolist() == [g for g, _ in before["predictions"]]
    metrics = table.attrs["metrics"]
    assert metrics["n_masked"] == len(before["hidden"]) and 0 <= metrics["p_value"] <= 1
    assert set(table.loc[table["status"] == "recovered", "gene"]) <= set(before["hidden"])
    again = cl.pw.complete(GENES, hide=0.5, seed=0)
    pd.testing.assert_frame_equal(table, again)
    assert cl.pw.complete(GENES, hide=0.5, seed=1).attrs["hidden"] != table.attrs["hidden"]


def test_complete_names_unknown_genes_and_refuses_what_cannot_run() -> None:
    table = cl.pw.complete("MYOD1, MYOG, DES, NOT_A_GENE_X", n=3)
    assert table.attrs["unknown"] == ["NOT_A_GENE_X"] and len(table) == 3
    with pytest.raises(cl.CellangError, match="no genes"):
        cl.pw.complete([])
    with pytest.raises(cl.CellangError, match="Mask ratio"):
        cl.pw.complete(GENES, hide=1.5)
    with pytest.raises(cl.CellangError, match="ranking"):
        cl.pw.complete(GENES, ranking="oracle")


def test_search_and_enrich_return_tables() -> None:
    hits = cl.pw.search("p53")
    assert "TP53" in hits.attrs["note"] and len(hits) > 0
    assert {"name", "description", "source", "size", "split", "genes"} <= set(hits.columns)
    assert "TP53" in hits["name"].iloc[0]
    assert all("TP53" in row.genes.split() or "P53" in f"{row.name} {row.description}".upper()
               for row in hits.itertuples())
    table = cl.pw.enrich(MYOGENIC + ["NOT_A_GENE_X"], top=5)
    assert len(table) == 5 and table["p"].is_monotonic_increasing and (table["q"] >= table["p"]).all()
    assert table.attrs["unknown"] == ["NOT_A_GENE_X"]
    with pytest.raises(cl.CellangError):
        cl.pw.search("x", field="title")


def test_embed_writes_obsm_returns_nothing_and_matches_the_code_before_the_move(hsmm) -> None:  # type: ignore[no-untyped-def]
    cells = hsmm[:12].copy()
    genes_before = cells.var_names.copy()
    for model in ("cells-binned", "cells-rank"):
        assert cl.tl.embed(cells, model=model) is None
        key = f"X_{model.replace('-', '_')}"
        for view in ("cls", "mean"):
            assert cells.obsm[f"{key}_{view}"].dtype == np.float32
            assert np.allclose(cells.obsm[f"{key}_{view}"], BEFORE[f"embed_{model}"][view], atol=1e-4)
        assert cells.uns["cellang_embedding"][model]["n_genes_used"] > 0
    assert cells.var_names.equals(genes_before), "the user's genes are not changed"
    with pytest.raises(cl.CellangError, match="no cell encoder"):
        cl.tl.embed(cells, model="no-such-model")
    with pytest.raises(cl.CellangError, match="AnnData"):
        cl.tl.embed(cells.X, model="cells-binned")  # type: ignore[arg-type]


def test_rank_deletions_writes_uns_and_matches_the_code_before_the_move(hsmm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table = cl.tl.rank_deletions(hsmm, groupby="state", start="myotube", goal="myoblast",
                                 genes=BEFORE["deleted"], max_cells=4, min_cells=1, seed=0)
    # The ranking is now by effect against expression-matched controls; each gene's own deletions, and so its raw
    # mean shift toward the goal (the ranking score before), are what the code before the move computed.
    before = dict(zip(BEFORE["deletion"]["gene"], BEFORE["deletion"]["mean_score"]))
    assert set(table["gene"]) == set(before)
    assert np.allclose(table["mean_goal_shift"], [before[g] for g in table["gene"]], atol=1e-6)
    assert list(table["effect"]) == sorted(table["effect"], reverse=True)
    entry = hsmm.uns["rank_deletions"]
    assert entry["params"]["start"] == ["myotube"] and entry["params"]["start_cells"] == 4
    pd.testing.assert_frame_equal(entry["ranked"], table, check_like=True)
    hsmm.write_h5ad(tmp_path / "with-deletions.h5ad")  # anndata's own writer, as a user saves their work
    saved = ad.read_h5ad(tmp_path / "with-deletions.h5ad")
    assert saved.uns["rank_deletions"]["ranked"]["gene"].tolist() == table["gene"].tolist()
    with pytest.raises(cl.CellangError, match="no obs column"):
        cl.tl.rank_deletions(hsmm, groupby="nope", start="myotube")
    with pytest.raises(cl.CellangError, match="unknown start state"):
        cl.tl.rank_deletions(hsmm, groupby="state", start="neuron")


def test_adapt_returns_a_model_name_that_embed_reads(hsmm, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    cells = hsmm[:40].copy()
    name = cl.tl.adapt(cells, model="cells-binned", steps=2, seed=0)
    assert name.startswith("my-") and any(tmp_path.iterdir())
    cl.tl.embed(cells, model=name)
    assert f"X_{name.replace('-', '_')}_cls" in cells.obsm


def test_plots_draw_what_the_tools_wrote(hsmm) -> None:  # type: ignore[no-untyped-def]
    cells = hsmm[:30].copy()
    cl.tl.embed(cells, model="cells-binned")
    figure = cl.pl.umap(cells, rep="X_cells_binned_cls", color="cell_type")
    assert figure.data and cells.obsm["X_cells_binned_cls_umap"].shape == (30, 2)
    with pytest.raises(cl.CellangError, match="cl.tl.embed"):
        cl.pl.umap(cells, rep="X_nothing")
    table = pd.DataFrame({"gene": ["A<b>", "B"], "cells": [3, 4], "effect": [0.1, -0.2], "q": [0.01, 0.5]})
    with pytest.raises(cl.CellangError, match="cells"):
        cl.pl.volcano(table.drop(columns="cells"))
    assert cl.pl.volcano(table, known=["B"]).data
    drawing = cl.pl.network(cl.pw.complete(MYOGENIC, n=5))
    assert "<script" in drawing.html and drawing.graph.number_of_nodes() == 10
    assert "srcdoc" in drawing._repr_html_()


def test_models_list_the_encoders_and_read_opens_a_users_file_safely(hsmm, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     monkeypatch) -> None:
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path / "none-yet"))
    table = cl.tl.models()
    assert table["name"].tolist()[:2] == ["cells-binned", "cells-rank"] and table["shipped"].all()
    assert cl.tl.models("rank")["kind"].tolist() == ["rank"]
    with pytest.raises(cl.CellangError, match="kind"):
        cl.tl.models("transformer")
    hsmm[:5].copy().write_h5ad(tmp_path / "mine.h5ad")
    assert cl.datasets.read(tmp_path / "mine.h5ad").n_obs == 5
    (tmp_path / "pickle.h5ad").write_bytes(b"\x80\x04\x95 not hdf5")
    with pytest.raises(cl.CellangError, match="pickles are never loaded"):
        cl.datasets.read(tmp_path / "pickle.h5ad")


def test_datasets_and_settings(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    atlas = cl.datasets.atlas()
    assert "hsmm" in atlas.index and atlas.loc["hsmm", "cells"] == 271
    assert len(cl.datasets.gene_sets("test")) > 100
    with pytest.raises(cl.CellangError, match="no atlas dataset"):
        cl.datasets.cells("heart")
    for setting, value in (("device", "gpu"), ("verbosity", "loud"), ("n_threads", 0)):
        with pytest.raises(ValueError, match=f"settings.{setting}"):
            setattr(cl.settings, setting, value)
    cl.settings.device = "CPU"
    assert cl.settings.device == "cpu"
    from cellang.device import pick_device

    assert pick_device().type == "cpu"
    cl.settings.device = "auto"
    monkeypatch.delenv("CELLANG_MODELS", raising=False)
    cl.settings.models_dir = tmp_path
    assert cl.settings.models_dir == tmp_path
    assert cl.settings.data_dir.name == "data" and (cl.settings.data_dir / "corpus").is_dir()


def test_read_upload_says_what_is_wrong_and_keeps_the_limits_asked(hsmm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hsmm[:30].copy().write_h5ad(tmp_path / "mine.h5ad")
    data = (tmp_path / "mine.h5ad").read_bytes()
    whole = cl.datasets.read_upload(data, "mine.h5ad")
    assert whole.ok and whole.adata.n_obs == 30 and whole.cells_in_file == 30
    sampled = cl.datasets.read_upload(data, "mine.h5ad", max_cells=10, seed=1)
    assert sampled.adata.n_obs == 10 and any("a random sample of 10" in m for _, m in sampled.messages())
    too_big = cl.datasets.read_upload(data, "mine.h5ad", max_mb=0.001)
    assert not too_big.ok and "uploads are limited to" in too_big.error
    pickled = cl.datasets.read_upload(b"\x80\x04\x95 not hdf5", "pickle.h5ad")  # said, never raised
    assert not pickled.ok and [level for level, _ in pickled.messages()] == ["error"]


def test_corpus_reads_the_shipped_folder_or_one_named(tmp_path: Path) -> None:
    shipped = cl.datasets.corpus()
    assert cl.datasets.corpus(cl.settings.data_dir / "corpus") is shipped  # read once per folder
    assert shipped.to_gmt(shipped.pathways[:2]).count(b"\n") == 2
    with pytest.raises(FileNotFoundError, match="cellang build corpus"):
        cl.datasets.corpus(tmp_path)
