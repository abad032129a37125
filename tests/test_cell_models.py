"""The cell-encoder registry: shipped encoders plus the user's models folder (CELLANG_MODELS), what it skips and why,
and that listing and loading read JSON and safetensors only."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from cellang import paths
from cellang.cells import load_atlas_dataset
from cellang.embedding import loading
from cellang.embedding.loading import (
    TRAIN_EXAMPLE,
    cell_models,
    describe_record,
    find_cell_model,
    load_cell_encoder,
    models_caption,
    no_models_message,
    scan_cell_models,
)
from tests.user_models import (
    RANK_FOLDER,
    RANK_NAME,
    SKIPPED,
    add_folders_to_skip,
    save_user_binned_model,
    save_user_rank_model,
)

SHIPPED = ["cells-binned", "cells-rank"]


@pytest.fixture(scope="module")
def user_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user models folder: a rank and a binned encoder, and three folders to skip."""
    root = tmp_path_factory.mktemp("my-models")
    hsmm = load_atlas_dataset("hsmm")
    save_user_rank_model(root, [hsmm])
    save_user_binned_model(root, list(hsmm.var_names[:30]))
    add_folders_to_skip(root)
    return root


@pytest.fixture()
def user_models(monkeypatch: pytest.MonkeyPatch, user_root: Path) -> Path:
    monkeypatch.setenv("CELLANG_MODELS", str(user_root))
    return user_root


def test_shipped_and_user_models_are_listed_and_junk_is_skipped_with_a_reason(user_models: Path) -> None:
    scan = scan_cell_models()
    assert [m.name for m in scan.models] == SHIPPED + ["my-cells-binned-mine", RANK_NAME]
    assert [m.shipped for m in scan.models] == [True, True, False, False]
    mine = find_cell_model(RANK_NAME)
    assert mine is not None and mine.path == user_models / RANK_FOLDER and mine.mode == "rank"
    assert mine.description == ("rank-value encoder (Geneformer-style), fine-tuned from cells-rank on mine.h5ad "
                                "(271 cells), 3 steps")
    assert mine.folder == str(user_models / RANK_FOLDER)  # outside the repository: shown as configured
    assert mine.label.startswith(f"{RANK_NAME} (yours, {user_models / RANK_FOLDER}): rank-value encoder")
    assert scan.models[1].folder == "checkpoints/cells-rank" and scan.models[1].label.startswith("cells-rank: rank")
    skipped = {Path(folder).name: reason for folder, reason in scan.skipped}
    assert sorted(skipped) == sorted(SKIPPED)  # hidden folders and loose files are passed over
    assert "no model.safetensors" in skipped["junk"] and "no model.safetensors" in skipped["half-written"]
    assert "not a cell encoder" in skipped["pathway-set-copy"]


def test_mode_keeps_only_rank_or_binned_encoders(user_models: Path) -> None:
    assert [m.name for m in cell_models("rank")] == ["cells-rank", RANK_NAME]
    assert [m.name for m in cell_models("binned")] == ["cells-binned", "my-cells-binned-mine"]
    with pytest.raises(ValueError, match="mode must be one of"):
        cell_models("gpt")


def test_a_user_model_loads_cached_without_unpickling(user_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pickle(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("listing or loading a cell encoder must not unpickle anything")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loading._read_model.cache_clear()
    mine = find_cell_model(RANK_NAME)
    encoder, tokenizer, record = load_cell_encoder(mine.name, mine.path)
    assert tokenizer.mode == "rank" and encoder.config.n_embd == 16
    assert record["fine_tuning"]["init_from"] == "cells-rank"
    assert load_cell_encoder(mine.name, mine.path)[0] is encoder  # cached until the weights change


def test_damaged_or_clashing_user_folders_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hsmm = load_atlas_dataset("hsmm")
    save_user_rank_model(tmp_path, [hsmm], folder="a b")
    shutil.copytree(tmp_path / "a b", tmp_path / "a_b")  # both would be shown as my-a_b
    shutil.copytree(tmp_path / "a b", tmp_path / "broken")
    (tmp_path / "broken" / "config.json").write_text("{not json")
    shutil.copytree(tmp_path / "a b", tmp_path / "misfit")
    config = json.loads((tmp_path / "misfit" / "config.json").read_text())
    (tmp_path / "misfit" / "config.json").write_text(json.dumps({**config, "n_genes": config["n_genes"] + 1}))
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    scan = scan_cell_models()
    assert [m.name for m in scan.models] == SHIPPED + ["my-a_b"]
    skipped = {Path(folder).name: reason for folder, reason in scan.skipped}
    assert "name my-a_b is taken" in skipped["a_b"]
    assert skipped["broken"].startswith("not a readable checkpoint")
    assert "does not fit its config" in skipped["misfit"]
    caption = models_caption(scan)
    assert str(tmp_path) in caption and "CELLANG_MODELS" in caption and TRAIN_EXAMPLE in caption
    assert f"{tmp_path / 'broken'} (not a readable checkpoint" in caption


def test_a_replaced_user_model_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hsmm = load_atlas_dataset("hsmm")
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    save_user_rank_model(tmp_path, [hsmm])
    assert "(271 cells)" in find_cell_model(RANK_NAME).description
    save_user_rank_model(tmp_path, [hsmm[:40].copy()])
    assert "(40 cells)" in find_cell_model(RANK_NAME).description


def test_the_default_folder_and_no_models_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELLANG_MODELS", raising=False)
    assert paths.user_model_dir() == paths.REPO_ROOT / "models"
    assert models_caption(scan_cell_models()).startswith("Your own encoders are read from models/ (set CELLANG_MODELS")
    monkeypatch.setattr(paths, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path / "not-there"))
    scan = scan_cell_models("rank")
    assert scan.models == () and scan.skipped == ()
    message = no_models_message(scan, "rank")
    assert "checkpoints/cells-rank/model.safetensors is missing" in message and "cells-binned" not in message
    assert f"No rank encoder of your own is in {tmp_path / 'not-there'}/" in message and TRAIN_EXAMPLE in message


def test_descriptions_of_odd_records_never_raise() -> None:
    assert describe_record({"fine_tuning": "x", "n_cells": "many", "data": [1], "steps": True}, "rank") == \
        "rank-value encoder (Geneformer-style), trained"
    assert describe_record([], "binned") == "binned-expression encoder (scGPT-style)"
    census = {"data": {"kind": "census"}, "n_cells": 1200, "fine_tuning": {"init_from": "cells-rank"}}
    assert describe_record(census, "rank").endswith("fine-tuned from cells-rank on a CELLxGENE Census query "
                                                    "(1,200 cells)")
    files = {"data": {"files": [{"name": f"f{i}.h5ad"} for i in range(5)]}}
    assert describe_record(files, "rank").endswith("trained on 5 files (f0.h5ad, f1.h5ad, f2.h5ad, ...)")
