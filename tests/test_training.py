"""Trainer, checkpoints, device and the pathway training pipeline, on a synthetic corpus.

The corpus has planted structure: 40 genes in 5 disjoint modules of 8, and every set is drawn
from inside one module. A model that learns the modules beats the best module-blind model by a
wide margin, which makes "it learned something" checkable.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cellang import checkpoints
from cellang.batching import split_validation
from cellang.completion.loading import load_pathway_model
from cellang.completion.training import train_pathway_model
from cellang.device import autocast_context, describe_device, pick_device, seed_everything
from cellang.models.gpt import GPT, GPTConfig
from cellang.paths import REPO_ROOT
from cellang.tokenizers.pathway import PathwayBatcher, PathwayVocabulary
from cellang.training import TrainConfig, Trainer, learning_rate, portable_command_line
from tests.scripts import load_script

MODULES = [[f"M{m}G{g}" for g in range(8)] for m in range(5)]
SIZES = (3, 4, 5, 6)


def synthetic_sets(n: int, seed: int = 0) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        module = MODULES[rng.integers(len(MODULES))]
        sets.append(tuple(rng.choice(module, size=rng.choice(SIZES), replace=False).tolist()))
    return sets


def optimal_loss(module_aware: bool) -> float:
    """Expected per-token cross-entropy of the best model that does / does not know the modules."""
    n_genes, module_size = sum(map(len, MODULES)), len(MODULES[0])
    total = 0.0
    for k in SIZES:
        for j in range(1, k + 2):  # predicting token j of <bos> g1..gk <eos>
            alive = [size for size in SIZES if size >= j - 1]
            stop = sum(size == j - 1 for size in alive) / len(alive)
            if j > k:
                total -= math.log(stop)
            else:
                choices = module_size - (j - 1) if module_aware and j > 1 else n_genes
                total += -math.log(1 - stop) + math.log(choices)
    return total / len(SIZES) / (sum(SIZES) / len(SIZES) + 1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Models here are tiny: extra threads only add sync overhead, badly so on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VOCABULARY = PathwayVocabulary(g for module in MODULES for g in module)
MODEL = dict(vocab_size=len(VOCABULARY), block_size=8, n_layer=2, n_head=2, n_embd=32, dropout=0.0,
             objective="next_token")


def make_trainer(out_dir: Path | None, *, seed: int = 0, max_steps: int = 30, **overrides) -> Trainer:
    """A tiny GPT + batcher + Trainer; everything derived from `seed`."""
    options = dict(
        max_steps=max_steps, batch_size=8, grad_accum_steps=2, lr=1e-2, min_lr=1e-3, warmup_steps=5,
        eval_interval=15, eval_batches=2, checkpoint_interval=20, seed=seed, device="cpu",
    )
    options.update(overrides)
    config = TrainConfig(**options)
    sets = synthetic_sets(120)
    batcher = PathwayBatcher(sets[20:], VOCABULARY, batch_size=8, block_size=8, seed=seed)
    val = PathwayBatcher(sets[:20], VOCABULARY, batch_size=8, block_size=8, seed=seed, drop_last=False)
    seed_everything(seed)
    model = GPT(GPTConfig(**{**MODEL, "dropout": 0.1}))

    def save(directory, bare, record, state):
        checkpoints.save_checkpoint(
            directory, bare, config=bare.config_dict(), vocabulary_json=VOCABULARY.to_json(),
            record=record, training_state=state,
        )

    return Trainer(model, batcher, lambda: val.epoch_batches(0), config, out_dir=out_dir, save_fn=save)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == [], f"weights differ in {different}"


# --- learning --------------------------------------------------------------------------------


def test_pathway_model_learns_the_planted_modules(tmp_path) -> None:
    sets = synthetic_sets(400)
    result = train_pathway_model(
        sets, VOCABULARY, model_config=GPTConfig(**MODEL),
        train_config=TrainConfig(max_steps=100, batch_size=16, lr=1e-2, min_lr=1e-3, warmup_steps=10,
                                 eval_interval=10, eval_batches=0, checkpoint_interval=1000, device="cpu"),
        export_dir=tmp_path / "model", val_fraction=0.1,
    )
    first, last = result.history[0], result.history[-1]
    assert last.step == 100 and len(result.history) == 10
    assert last.train_loss < first.train_loss - 0.8, "training loss must fall clearly"
    assert last.val_loss < first.val_loss - 0.4, "validation loss must fall"
    blind, aware = optimal_loss(False), optimal_loss(True)  # about 3.27 and 2.00
    assert last.val_loss < blind - 0.3, "the model must use the module structure"
    assert last.val_loss > aware - 0.3, "no model can beat the planted optimum by much"

    # The exported model is the trained model, ready to ship: safetensors + json, no pickle.
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["config.json", "model.safetensors", "training_record.json", "vocabulary.json"]
    loaded, vocabulary, record = load_pathway_model(tmp_path / "model")
    assert vocabulary == VOCABULARY
    assert record["steps"] == 100 and record["final_val_loss"] == pytest.approx(last.val_loss)
    assert record["parameters"] == result.model.num_parameters()
    idx = torch.tensor([VOCABULARY.encode(sets[0])])
    assert torch.equal(loaded(idx)[0], result.model.eval()(idx)[0])


def test_validation_slice_is_seeded_and_disjoint() -> None:
    sets = [(f"G{i}",) for i in range(100)]
    train, val = split_validation(sets, 0.1, seed=1)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert split_validation(sets, 0.1, seed=1) == (train, val)
    assert split_validation(sets, 0.1, seed=2)[1] != val


# --- determinism and resume ------------------------------------------------------------------


def test_same_seed_gives_bitwise_identical_weights() -> None:
    first, second, other = make_trainer(None), make_trainer(None), make_trainer(None, seed=1)
    for trainer in (first, second, other):
        trainer.fit()
    assert_same_weights(weights(first.model), weights(second.model))
    assert first.history == second.history
    assert not torch.equal(first.model.lm_head.weight, other.model.lm_head.weight)


class Killed(Exception):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path) -> None:
    uninterrupted = make_trainer(tmp_path / "straight")
    uninterrupted.fit()

    victim = make_trainer(tmp_path / "killed")
    source = victim.train_batches

    def dies_in_step_25(position: int):
        for index, batch in enumerate(source(position)):
            if position + index == 25 * 2:  # 2 micro-batches per step
                raise Killed
            yield batch

    victim.train_batches = dies_in_step_25
    with pytest.raises(Killed):
        victim.fit()
    assert checkpoints.read_metadata(tmp_path / "killed")[2]["steps"] == 20

    torch.manual_seed(1234)  # the resumed model starts from other weights and RNG state
    resumed = make_trainer(tmp_path / "killed", seed=0)
    with torch.no_grad():
        resumed.model.lm_head.weight.add_(1.0)
    resumed.fit(resume=True)
    assert resumed.step == 30
    assert_same_weights(weights(uninterrupted.model), weights(resumed.model))
    assert resumed.history == uninterrupted.history
    saved = checkpoints.load_training_state(tmp_path / "killed")
    assert saved is not None and saved["step"] == 30


def test_resume_without_a_checkpoint_starts_fresh(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "new", max_steps=5)
    trainer.fit(resume=True)
    assert trainer.step == 5 and checkpoints.checkpoint_exists(tmp_path / "new")


def test_learning_rate_warms_up_then_decays_to_min() -> None:
    config = TrainConfig(max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    rates = [learning_rate(step, config) for step in range(101)]
    assert all(a < b for a, b in zip(rates[:10], rates[1:10]))
    assert rates[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[100] == pytest.approx(0.1)


def test_each_rank_takes_a_disjoint_slice_of_the_batch() -> None:
    trainer = make_trainer(None)
    inputs = torch.arange(10).view(5, 2)
    trainer.world_size = 2
    slices = []
    for rank in range(2):
        trainer.rank = rank
        slices.append(trainer._shard((inputs, inputs + 100))[0])
    assert torch.equal(torch.cat(slices), inputs)


def _ddp_worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = make_trainer(Path(run_dir), max_steps=6, eval_interval=3, checkpoint_interval=3)
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    save_file({"weights": flat}, str(Path(run_dir).parent / f"rank{rank}.safetensors"))


def test_distributed_training_keeps_ranks_in_step(tmp_path) -> None:
    # Two gloo processes on CPU stand in for torchrun on GPUs.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path / "run")), nprocs=2)
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors"))["weights"] for r in range(2))
    assert torch.equal(rank0, rank1), "DDP ranks must end with identical weights"
    _, _, record = checkpoints.read_metadata(tmp_path / "run")
    assert record["world_size"] == 2 and record["steps"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.safetensors", "rank1.safetensors", "run"]


# --- checkpoints ------------------------------------------------------------------------------


def save_tiny(directory: Path, model: GPT, **extra) -> None:
    checkpoints.save_checkpoint(
        directory, model, config=model.config_dict(), vocabulary_json=VOCABULARY.to_json(),
        record={"note": "test"}, **extra,
    )


def test_checkpoint_round_trip_is_safetensors_and_json_only(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**MODEL)).eval()
    save_tiny(tmp_path / "ckpt", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging leftovers
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), framework="pt") as f:
        assert "transformer.wpe.weight" in f.keys()
    for name in ("config.json", "vocabulary.json", "training_record.json"):
        json.loads((tmp_path / "ckpt" / name).read_text())

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading a checkpoint must not unpickle anything")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded, config, vocabulary_json, record = checkpoints.load_checkpoint(
        tmp_path / "ckpt", lambda c: GPT(GPTConfig(**c))
    )
    assert config == model.config_dict() and record == {"note": "test"}
    assert PathwayVocabulary.from_json(vocabulary_json) == VOCABULARY
    assert loaded.lm_head.weight is loaded.transformer.wte.weight, "tying must survive loading"
    idx = torch.randint(4, len(VOCABULARY), (2, 8))
    assert torch.equal(loaded(idx)[0], model(idx)[0])


@pytest.mark.parametrize("damage", ["weights", "config_bytes", "config_keys", "vocabulary", "missing_record",
                                    "other_shape"])
def test_a_damaged_checkpoint_is_one_error_naming_the_folder(tmp_path, damage: str) -> None:
    torch.manual_seed(0)
    save_tiny(tmp_path / "ckpt", GPT(GPTConfig(**MODEL)))
    folder = tmp_path / "ckpt"
    if damage == "weights":
        (folder / "model.safetensors").write_bytes(b"\x9e not safetensors")
    elif damage == "config_bytes":
        (folder / "config.json").write_bytes(b"\x9e\x00")
    elif damage == "config_keys":
        (folder / "config.json").write_text(json.dumps({**MODEL, "n_wings": 2}))
    elif damage == "vocabulary":
        (folder / "vocabulary.json").write_text("{}")
    elif damage == "missing_record":
        (folder / "training_record.json").unlink()
    else:  # weights of another architecture
        (folder / "config.json").write_text(json.dumps({**MODEL, "n_embd": MODEL["n_embd"] * 2}))
    with pytest.raises(checkpoints.CheckpointError, match=r"^ckpt/ is not a readable checkpoint: "):
        checkpoints.check_readable(folder)
        load_pathway_model(folder)
    with pytest.raises(FileNotFoundError):
        checkpoints.check_readable(tmp_path / "nothing")


def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**MODEL))
    save_tiny(tmp_path / "ckpt", model)
    before = weights(model)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", disk_full)  # dies after the weights are written
    with pytest.raises(OSError, match="disk full"):
        save_tiny(tmp_path / "ckpt", model, training_state={"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    restored = GPT(GPTConfig(**MODEL))
    checkpoints.load_weights(tmp_path / "ckpt", restored)
    assert_same_weights(before, weights(restored))


def test_a_kill_between_the_renames_is_recovered(tmp_path) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**MODEL))
    save_tiny(tmp_path / "ckpt", model)
    # As if killed after moving the old checkpoint aside but before the new one moved in.
    os.replace(tmp_path / "ckpt", tmp_path / ".ckpt.previous")
    assert checkpoints.checkpoint_exists(tmp_path / "ckpt")
    restored = GPT(GPTConfig(**MODEL))
    checkpoints.load_weights(tmp_path / "ckpt", restored)
    assert_same_weights(weights(model), weights(restored))
    save_tiny(tmp_path / "ckpt", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_training_state_refuses_arbitrary_pickles(tmp_path) -> None:
    torch.manual_seed(0)
    save_tiny(tmp_path / "ckpt", GPT(GPTConfig(**MODEL)), training_state={"step": 3})
    assert checkpoints.load_training_state(tmp_path / "ckpt") == {"step": 3}
    torch.save({"payload": SimpleNamespace(x=1)}, tmp_path / "ckpt" / checkpoints.TRAINING_STATE_FILE)
    with pytest.raises(Exception, match="[Ww]eights only"):
        checkpoints.load_training_state(tmp_path / "ckpt")


# --- device ------------------------------------------------------------------------------------


def test_pick_device_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu") and pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")


def test_cpu_runs_in_fp32_and_is_described() -> None:
    with autocast_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert describe_device(torch.device("cpu")) == f"CPU ({torch.get_num_threads()} threads)"


def test_seed_everything_makes_all_generators_repeat() -> None:
    import random

    seed_everything(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# --- the CLI ---------------------------------------------------------------------------------


def test_command_line_has_no_machine_paths() -> None:
    argv = [str(REPO_ROOT / "scripts" / "train.py"), "pathway", "--out", str(REPO_ROOT / "checkpoints" / "x"),
            "--corpus=/somewhere/else/corpus", "--lr", "0.001"]
    line = portable_command_line(argv)
    assert line == "python scripts/train.py pathway --out checkpoints/x '--corpus=<external>/corpus' --lr 0.001"


def test_train_script_pathway_command(tmp_path, monkeypatch) -> None:
    sets = synthetic_sets(60)
    test_only = ("T1", "T2", "T3")
    pathways = [SimpleNamespace(genes=s, split="train") for s in sets] + [
        SimpleNamespace(genes=test_only, split="test")
    ]
    corpus = SimpleNamespace(pathways=pathways, manifest_sha256="abc123")
    import cellang.corpus

    monkeypatch.setattr(cellang.corpus, "load_corpus", lambda *args: corpus, raising=False)
    script = load_script("train")
    args = ["pathway", "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"), "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "8", "--max-steps", "6",
            "--warmup", "2", "--eval-interval", "3", "--checkpoint-interval", "3", "--device", "cpu",
            "--val-fraction", "0.1"]
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "scripts" / "train.py"), *args])
    assert script.main(args) == 0

    model, vocabulary, record = load_pathway_model(tmp_path / "out")
    assert "T1" in vocabulary, "test-split genes must be in the vocabulary"
    assert record["corpus_manifest_sha256"] == "abc123"
    assert record["n_train_sets"] + record["n_val_sets"] == len(sets), "validation comes from train only"
    assert record["command_line"].startswith("python scripts/train.py pathway --out '<external>/out'")
    assert record["steps"] == 6 and record["seed"] == 0 and record["device"].startswith("CPU")
    assert record["parameters"] == model.num_parameters()
    assert not (tmp_path / "out" / checkpoints.TRAINING_STATE_FILE).exists()
    assert (tmp_path / "run" / checkpoints.TRAINING_STATE_FILE).exists()


@pytest.mark.parametrize("model", ["pathway", "pathway-dae", "pathway-set", "pathway-rerank", "cells-binned",
                                   "cells-rank"])
def test_train_cli_without_options_trains_each_models_own_schedule(model: str) -> None:
    import argparse
    import dataclasses

    from cellang.completion import dae_training, rerank_training, set_training
    from cellang.completion import training as pathway_training
    from cellang.embedding import training as cell_training
    from cellang.train_arguments import add_training_arguments, train_config_from

    schedule = {"pathway": pathway_training.TRAINING, "pathway-dae": dae_training.TRAINING,
                "pathway-set": set_training.TRAINING, "pathway-rerank": rerank_training.TRAINING,
                "cells-binned": cell_training.TRAINING["binned"], "cells-rank": cell_training.TRAINING["rank"]}[model]
    parser = argparse.ArgumentParser()
    add_training_arguments(parser, schedule)
    parsed = train_config_from(parser.parse_args([]))  # min_lr: lr / 10, as every schedule has it
    assert dataclasses.replace(parsed, min_lr=schedule.min_lr) == schedule
    assert parsed.min_lr == pytest.approx(schedule.min_lr, rel=1e-12)
    changed = train_config_from(parser.parse_args(["--lr", "0.5", "--max-steps", "7"]))
    assert (changed.lr, changed.max_steps) == (0.5, 7) and changed.min_lr == pytest.approx(0.05)


def test_train_script_pathway_set_continues_a_checkpoint_with_the_cooccurrence_teacher(tmp_path, monkeypatch) -> None:
    from cellang.completion.loading import load_set_model

    pathways = [SimpleNamespace(genes=s, split="train") for s in synthetic_sets(60)]
    corpus = SimpleNamespace(pathways=pathways, manifest_sha256="abc123")
    import cellang.corpus

    monkeypatch.setattr(cellang.corpus, "load_corpus", lambda *args: corpus, raising=False)
    script = load_script("train")
    sizes = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--max-prompt", "8", "--batch-size", "8",
             "--warmup", "1", "--eval-interval", "2", "--device", "cpu"]
    base = ["pathway-set", "--out", str(tmp_path / "base"), "--max-steps", "2", *sizes]
    monkeypatch.setattr(sys, "argv", ["scripts/train.py", *base])
    assert script.main(base) == 0
    more = ["pathway-set", "--out", str(tmp_path / "next"), "--init-from", str(tmp_path / "base"),
            "--cooccurrence-weight", "1", "--max-steps", "3", *sizes]
    monkeypatch.setattr(sys, "argv", ["scripts/train.py", *more])
    assert script.main(more) == 0
    _, _, record = load_set_model(tmp_path / "next")
    assert record["cooccurrence_weight"] == 1.0 and record["steps"] == 3
    assert record["init_from"]["weights_sha256"] == checkpoints.weights_sha256(tmp_path / "base")
    assert record["init_from"]["command_line"].startswith("python scripts/train.py pathway-set")
    missing = ["pathway-set", "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "nothing"), *sizes]
    with pytest.raises(FileNotFoundError):
        script.main(missing)
    assert not (tmp_path / "x").exists()
