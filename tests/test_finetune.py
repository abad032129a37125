"""Training and fine-tuning the cell encoders on streamed .h5ad files (train.py cells-* --data, --init-from)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cellang import checkpoints
from cellang.atlas import load_atlas_dataset
from cellang.cells import write_h5ad
from cellang.cells.stream import H5adCells
from cellang.embedding.finetune import (
    GENE_ROWS, CheckpointKindError, extend_vocabulary, train_cell_encoder_streaming, transfer_weights
)
from cellang.embedding.loading import load_cell_encoder_checkpoint
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.tokenizers.cells import CellVocabulary
from cellang.training import TrainConfig
from tests.scripts import load_script

TINY = dict(n_genes=0, n_layer=1, n_head=2, n_embd=16, dropout=0.0, max_len=32)
SCHEDULE = TrainConfig(max_steps=4, batch_size=8, lr=1e-3, warmup_steps=1, eval_interval=2, checkpoint_interval=2,
                       eval_batches=2, seed=0)


@pytest.fixture(scope="module")
def cell_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cells")
    immune = load_atlas_dataset("celltypist_immune")
    tcells = load_atlas_dataset("wu2020_tcells")
    return {"immune": write_h5ad(immune[:160].copy(), folder / "immune.h5ad"),
            "tcells": write_h5ad(tcells[:120].copy(), folder / "tcells.h5ad")}


def _train(source, out: Path, mode: str = "rank", **kwargs):
    config = EncoderConfig(**TINY, mode=mode, n_bins=11 if mode == "binned" else 0)
    return train_cell_encoder_streaming(source, model_config=config, train_config=SCHEDULE, min_cells=3, n_hvg=200,
                                        val_fraction=0.1, export_dir=out, **kwargs)


@pytest.fixture(scope="module")
def pretrained(cell_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "cells-rank-base"
    _train(H5adCells([cell_files["immune"]], chunk_cells=64), out)
    return out


def test_streamed_training_writes_a_checkpoint_with_its_data(pretrained, cell_files):
    model, tokenizer, record = load_cell_encoder_checkpoint(pretrained)
    assert record["data"]["files"][0]["name"] == "immune.h5ad"
    assert len(record["data"]["files"][0]["sha256"]) == 64
    assert record["n_val_cells"] == 16 and record["n_train_cells"] == 144 and record["steps"] == 4
    assert tokenizer.vocabulary.settings["statistics"].startswith("streaming")
    assert record["fine_tuning"] is None


def test_fine_tuning_adds_the_users_genes_and_keeps_the_rest(pretrained, cell_files, tmp_path):
    base_model, base_tokenizer, _ = load_cell_encoder_checkpoint(pretrained)
    result = _train(H5adCells([cell_files["tcells"]], chunk_cells=64), tmp_path / "tuned", init_from=pretrained)
    record = result.record
    vocabulary = result.tokenizer.vocabulary
    base = base_tokenizer.vocabulary
    assert record["fine_tuning"]["init_from"] == pretrained.name
    added = [g for g in vocabulary.genes if g not in base]
    assert record["fine_tuning"]["genes_added"] == len(added) > 0
    assert record["fine_tuning"]["vocabulary_genes_missing_from_data"] >= 0
    assert set(base.genes) <= set(vocabulary.genes)
    medians = dict(zip(vocabulary.genes, vocabulary.gene_medians))
    assert all(medians[g] == m for g, m in zip(base.genes, base.gene_medians))
    assert result.model.config.n_embd == base_model.config.n_embd  # the checkpoint's architecture is kept


def test_transfer_weights_moves_gene_rows_by_gene():
    base_vocabulary = CellVocabulary(["B", "D"], mode="rank", settings={"max_len": 8}, gene_medians=[1.0, 2.0])
    vocabulary = extend_vocabulary(base_vocabulary, CellVocabulary(["A", "C", "D"], mode="rank",
                                                                   gene_medians=[3.0, 4.0, 5.0]))
    assert vocabulary.genes == ("A", "B", "C", "D") and list(vocabulary.gene_medians) == [3.0, 1.0, 4.0, 2.0]
    torch.manual_seed(0)
    base = CellEncoder(EncoderConfig(n_genes=len(base_vocabulary), n_layer=1, n_head=2, n_embd=8, max_len=8,
                                     mode="rank", n_bins=0))
    model = CellEncoder(EncoderConfig(n_genes=len(vocabulary), n_layer=1, n_head=2, n_embd=8, max_len=8,
                                      mode="rank", n_bins=0))
    transfer_weights(base, base_vocabulary, model, vocabulary)
    rows = model.transformer.wte.weight
    old = base.transformer.wte.weight
    assert torch.equal(rows[:3], old[:3])  # the special tokens
    assert torch.equal(rows[4], old[3]) and torch.equal(rows[6], old[4])  # B and D, now at new places
    assert torch.equal(model.lm_head.weight[6], base.lm_head.weight[4])
    base_state = base.state_dict()
    assert all(torch.equal(t, base_state[k]) for k, t in model.state_dict().items() if k not in GENE_ROWS)


def test_fine_tuning_refuses_another_kind_of_checkpoint(pretrained, cell_files, tmp_path):
    with pytest.raises(CheckpointKindError, match="rank cell encoder"):
        _train(H5adCells([cell_files["tcells"]]), tmp_path / "x", mode="binned", init_from=pretrained)
    with pytest.raises(CheckpointKindError, match="not a cell encoder"):
        _train(H5adCells([cell_files["tcells"]]), tmp_path / "y", init_from=checkpoints.shipped_dir("pathway-set"))


def test_same_seed_same_weights(cell_files, tmp_path):
    source = H5adCells([cell_files["tcells"]], chunk_cells=50)
    first = _train(source, tmp_path / "a").model.state_dict()
    second = _train(source, tmp_path / "b").model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_train_script_streams_user_files_into_the_user_models_folder(cell_files, pretrained, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path / "models"))
    train = load_script("train")
    argv = ["cells-rank", "--data", str(cell_files["tcells"]), "--init-from", str(pretrained), "--max-steps", "2",
            "--batch-size", "8", "--eval-interval", "1", "--run-dir", str(tmp_path / "run"), "--min-cells", "3"]
    assert train.main(argv) == 0
    out = tmp_path / "models" / "cells-rank-finetuned"
    record = json.loads((out / checkpoints.RECORD_FILE).read_text())
    assert record["fine_tuning"]["init_from"] == pretrained.name and record["data"]["files"][0]["name"] == "tcells.h5ad"


def test_train_script_says_what_init_from_needs(pretrained):
    train = load_script("train")
    with pytest.raises(ValueError, match="--data"):
        train.main(["cells-rank", "--init-from", str(pretrained), "--max-steps", "1"])


def _ddp_worker(rank: int, world_size: int, port: int, path: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = _train(H5adCells([path], chunk_cells=32), Path(out) / "model")
    flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    save_file({"weights": flat}, str(Path(out) / f"rank{rank}.safetensors"))


def test_two_gloo_ranks_read_their_own_cells_and_stay_in_step(cell_files, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(cell_files["immune"]), str(tmp_path)), nprocs=2)
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors"))["weights"] for r in range(2))
    assert torch.equal(rank0, rank1)
