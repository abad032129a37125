"""Adapting an encoder to a user's cells (embedding/adapt.py), the trainer's time budget, and leave-one-dataset-out
pretraining (embedding/leaveout.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cellang import checkpoints
from cellang.cells.stream import MemoryCells
from cellang.embedding import adapt as adapt_module
from cellang.embedding import leaveout
from cellang.embedding import training as cell_training
from cellang.embedding.adapt import ADAPT_SCHEDULE, AdaptError, adapt_encoder, run_folder
from cellang.embedding.embed import embed_cells, obsm_keys
from cellang.embedding.finetune import train_cell_encoder_streaming
from cellang.models.encoder import EncoderConfig
from cellang.training import TrainConfig, Trainer
from tests.synthetic_cells import synthetic_cells

TINY = dict(n_genes=0, n_layer=1, n_head=2, n_embd=16, dropout=0.0, max_len=32)
# Checkpoints every 2 steps so that an interrupted run has something to resume from.
QUICK = dataclasses.replace(adapt_module.ADAPT_SCHEDULE, batch_size=8, warmup_steps=3, eval_interval=4, eval_batches=1,
                            checkpoint_interval=2)


@pytest.fixture(autouse=True)
def quick_schedule(monkeypatch):
    monkeypatch.setattr(adapt_module, "ADAPT_SCHEDULE", QUICK)


@pytest.fixture(scope="module", params=["binned", "rank"])
def base(request, tmp_path_factory) -> Path:
    """A tiny encoder of each kind, trained on synthetic cells of other types than the ones adapted to."""
    mode = request.param
    out = tmp_path_factory.mktemp("base") / f"tiny-{mode}"
    config = EncoderConfig(**TINY, mode=mode, n_bins=11 if mode == "binned" else 0)
    train_cell_encoder_streaming(MemoryCells(synthetic_cells(96, n_types=3, seed=1), name="pretraining"),
                                 model_config=config, min_cells=3, n_hvg=30, val_fraction=0.1, export_dir=out,
                                 train_config=TrainConfig(max_steps=4, batch_size=8, warmup_steps=1, eval_interval=2,
                                                          eval_batches=1, seed=0))
    return out


def cells():
    return synthetic_cells(80, n_types=4, seed=5, dataset="mine")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / checkpoints.MODEL_FILE))


def same_weights(a: Path, b: Path) -> bool:
    left, right = weights(a), weights(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_adapting_writes_a_user_model_with_its_record(base, tmp_path):
    data = cells()
    result = adapt_encoder(data, base, steps=5, out=tmp_path / "mine-adapted", seed=3)
    record = result.record
    assert result.name == "my-mine-adapted" and result.directory == tmp_path / "mine-adapted"
    assert record["steps"] == 5 and record["seed"] == 3
    assert record["adaptation"] == {"base_model": base.name, "base_folder": str(base), "data_name": "cells",
                                    "minutes": None, "steps_asked": 5, "seed": 3, "lr": ADAPT_SCHEDULE.lr,
                                    "contrastive_weight": None}
    assert record["data"]["kind"] == "anndata" and len(record["data"]["sha256"]) == 64
    assert record["data"]["sha256"] == MemoryCells(data).sha256()
    assert record["fine_tuning"]["init_from"] == base.name
    assert not run_folder(result.directory).exists(), "a finished run leaves no resumable state behind"
    embed_cells(data, model="adapted", checkpoint_dir=result.directory)
    assert data.obsm[obsm_keys("adapted")[0]].shape[0] == data.n_obs


def test_adapting_with_two_views_records_the_weight_in_the_model(base, tmp_path):
    import json

    result = adapt_encoder(cells(), base, steps=2, out=tmp_path / "views", seed=0, contrastive_weight=0.5)
    assert result.record["adaptation"]["contrastive_weight"] == 0.5
    assert json.loads((result.directory / "config.json").read_text())["contrastive_weight"] == 0.5
    with pytest.raises(AdaptError, match="contrastive_weight"):
        adapt_encoder(cells(), base, steps=2, out=tmp_path / "bad", contrastive_weight=-1.0)


def test_adapting_is_deterministic_for_a_seed(base, tmp_path):
    first = adapt_encoder(cells(), base, steps=6, out=tmp_path / "a", seed=0)
    second = adapt_encoder(cells(), base, steps=6, out=tmp_path / "b", seed=0)
    other = adapt_encoder(cells(), base, steps=6, out=tmp_path / "c", seed=1)
    assert same_weights(first.directory, second.directory)
    assert not same_weights(first.directory, other.directory)


class Interrupted(Exception):
    pass


def test_an_interrupted_adaptation_resumes_to_the_same_weights(base, tmp_path):
    whole = adapt_encoder(cells(), base, steps=8, out=tmp_path / "whole")

    def stop_at_step_5(fraction: float, text: str) -> None:
        if "step 5 of" in text:
            raise Interrupted

    with pytest.raises(Interrupted):
        adapt_encoder(cells(), base, steps=8, out=tmp_path / "resumed", progress=stop_at_step_5)
    assert not (tmp_path / "resumed").exists() and checkpoints.checkpoint_exists(run_folder(tmp_path / "resumed"))
    resumed = adapt_encoder(cells(), base, steps=8, out=tmp_path / "resumed", resume=True)
    assert same_weights(whole.directory, resumed.directory)
    assert [h["step"] for h in resumed.record["history"]] == [h["step"] for h in whole.record["history"]]


def test_a_time_budget_sizes_the_run_and_the_steps_repeat_it(base, tmp_path, monkeypatch):
    monkeypatch.setattr(adapt_module, "PREPARATION_S", 1.0)
    monkeypatch.setattr(adapt_module, "MIN_TRAINING_S", 1.0)
    started = time.perf_counter()
    budgeted = adapt_encoder(cells(), base, minutes=0.1, out=tmp_path / "budget")
    elapsed = time.perf_counter() - started
    record = budgeted.record
    assert elapsed < 6 + 30, "the budget plus the 30 s the issue allows"
    assert record["adaptation"]["minutes"] == 0.1
    assert record["train_config"]["time_budget_s"] > 0
    assert record["train_config"]["max_steps"] == record["steps"] > QUICK.warmup_steps
    if not record["stopped_at_time_budget"]:  # sized from the warm-up's pace: the steps alone repeat it exactly
        repeat = adapt_encoder(cells(), base, steps=record["steps"], out=tmp_path / "repeat")
        assert same_weights(budgeted.directory, repeat.directory)


def test_progress_says_the_steps_and_the_time_left(base, tmp_path):
    seen: list[tuple[float, str]] = []
    adapt_encoder(cells(), base, steps=4, out=tmp_path / "p", progress=lambda f, t: seen.append((f, t)))
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0
    assert any("step 2 of 4" in text and "left" in text for _, text in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_the_default_folder_is_numbered_past_the_models_already_there(base, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path))
    first = adapt_encoder(cells(), base, steps=2, data_name="heart 1.h5ad")
    second = adapt_encoder(cells(), base, steps=2, data_name="heart 1.h5ad")
    assert first.directory == tmp_path / f"{base.name}-adapted-heart_1_h5ad"
    assert second.directory == tmp_path / f"{base.name}-adapted-heart_1_h5ad-2"
    assert second.name == f"my-{base.name}-adapted-heart_1_h5ad-2"


def test_an_existing_folder_is_never_overwritten(base, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(AdaptError, match="already exists"):
        adapt_encoder(cells(), base, steps=2, out=mine)
    assert (mine / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("minutes", "steps"), [(0, None), (-1, None), (None, None), (240, None), (5, 0), (5, 1.5)])
def test_a_budget_out_of_range_is_refused(base, tmp_path, minutes, steps):
    with pytest.raises(AdaptError):
        adapt_encoder(cells(), base, minutes=minutes, steps=steps, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_unknown_model_name_is_refused(tmp_path):
    with pytest.raises(AdaptError, match="no cell encoder called 'cells-nope'"):
        adapt_encoder(cells(), "cells-nope", steps=2, out=tmp_path / "x")


# --- the trainer's time budget --------------------------------------------------------------------------------


class Line(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(4))

    def forward(self, x, y):  # type: ignore[no-untyped-def]
        time.sleep(0.01)  # a step that takes time, so that the pace is measurable
        return None, ((x @ self.weight - y) ** 2).mean()


def batches(start: int):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 4, generator=generator), torch.randn(8, generator=generator)) for _ in range(1000)]
    yield from data[start:]


def test_a_budgeted_run_equals_a_run_of_its_steps():
    config = TrainConfig(max_steps=10_000, warmup_steps=5, eval_interval=1000, lr=0.05, time_budget_s=0.6)
    budgeted = Trainer(Line(), batches, None, config)
    started = time.perf_counter()
    budgeted.fit()
    assert time.perf_counter() - started < 0.6 + 0.5
    steps = budgeted.step
    assert budgeted.record["train_config"]["max_steps"] == steps and 5 <= steps < 10_000
    if not budgeted.stopped_at_budget:
        exact = Trainer(Line(), batches, None, dataclasses.replace(config, max_steps=steps, time_budget_s=0.0))
        exact.fit()
        assert torch.equal(exact.model.weight, budgeted.model.weight)


def test_a_budget_needs_a_warm_up_to_measure_the_pace():
    with pytest.raises(ValueError, match="warmup_steps"):
        Trainer(Line(), batches, None, TrainConfig(warmup_steps=1, time_budget_s=5))


# --- leave-one-dataset-out ------------------------------------------------------------------------------------


def test_the_left_out_dataset_is_never_a_training_dataset():
    names = ["a", "b", "c"]
    assert leaveout.training_datasets("b", names) == ["a", "c"]
    with pytest.raises(ValueError, match="no dataset 'd'"):
        leaveout.training_datasets("d", names)


def test_pretraining_without_a_dataset_never_reads_its_cells(monkeypatch, tmp_path):
    read: list[str] = []
    real = cell_training.load_atlas_corpus

    def spying(names=None):  # type: ignore[no-untyped-def]
        read.extend(names)
        adatas, digest = real(names)
        return [a[:40].copy() for a in adatas], digest

    monkeypatch.setattr(cell_training, "load_atlas_corpus", spying)
    monkeypatch.setitem(cell_training.TRAINING, "binned", dataclasses.replace(
        cell_training.TRAINING["binned"], batch_size=8, eval_interval=2, checkpoint_interval=2, eval_batches=1))
    recipe = leaveout.Recipe("tiny-panel", "binned", 2, options={"n_hvg": 300, "input_panel": 100})
    folder = leaveout.pretrain_without("hsmm", recipe, tmp_path / "model")
    assert "hsmm" not in read and len(read) >= 2
    _, vocabulary, record = checkpoints.read_metadata(folder)
    assert "hsmm" not in record["datasets"] and set(record["datasets"]) == set(read)
    assert record["leave_out"]["dataset"] == "hsmm" and vocabulary["settings"]["input_panel"] == 100
    stamp = checkpoints.stamp(folder)
    read.clear()
    assert leaveout.pretrain_without("hsmm", recipe, folder) == folder and not read, "a finished model is reused"
    assert checkpoints.stamp(folder) == stamp
    with pytest.raises(ValueError, match="holds another model"):
        leaveout.pretrain_without("oligodendroglioma", recipe, folder)


def test_the_leave_out_benchmark_reports_its_targets_from_the_scores():
    from tests.scripts import load_script

    bench = load_script("benchmark_leaveout")
    scores = {"a": {"HVG+PCA": 0.40, "binned-zero-shot CLS": 0.39, "rank-zero-shot mean": 0.30,
                    "binned-adapted CLS": 0.50, "rank-adapted mean": 0.41},
              "b": {"HVG+PCA": 0.60, "binned-zero-shot CLS": 0.50, "rank-zero-shot mean": 0.58,
                    "binned-adapted CLS": 0.63, "rank-adapted mean": 0.66}}
    result = {"datasets": {d: {"methods": {m: {"avg_bio": v} for m, v in row.items()}} for d, row in scores.items()},
              "mean_avg_bio": {m: (scores["a"][m] + scores["b"][m]) / 2 for m in scores["a"]}}
    zero, rank, adapted = bench.targets(result)
    assert zero["met"] is False and "binned-zero-shot CLS 0.445 vs 0.500" in zero["measured"]  # -0.055
    assert rank["met"] is False and "rank-zero-shot mean 0.440" in rank["measured"]  # -0.060, below -0.05
    assert adapted["met"] is True and "a: binned-adapted CLS +0.100" in adapted["measured"] and \
        "b: rank-adapted mean +0.060" in adapted["measured"]
    assert bench.recipe_steps(["900", "rank=100"], ["binned", "rank"]) == {"binned": 900, "rank": 100}
    scores["b"]["rank-adapted-views mean"] = 0.70  # adapted with two views counts as an adapted encoder too
    result["datasets"]["b"]["methods"]["rank-adapted-views mean"] = {"avg_bio": 0.70}
    assert "b: rank-adapted-views mean +0.100" in bench.targets(result)[2]["measured"]


def test_the_learning_rate_is_recorded_and_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cellang.cells import load_atlas_dataset
    from cellang.embedding.adapt import ADAPT_SCHEDULE, AdaptError, adapt_encoder

    cells = load_atlas_dataset("hsmm")[:30].copy()
    with pytest.raises(AdaptError, match="lr must be above 0"):
        adapt_encoder(cells, "cells-binned", steps=1, out=tmp_path / "bad", lr=0.5)
    result = adapt_encoder(cells, "cells-binned", steps=1, out=tmp_path / "fast", lr=2e-3)
    assert result.record["adaptation"]["lr"] == 2e-3 and result.record["train_config"]["min_lr"] == 2e-4
    default = adapt_encoder(cells, "cells-binned", steps=1, out=tmp_path / "default")
    assert default.record["adaptation"]["lr"] == ADAPT_SCHEDULE.lr
