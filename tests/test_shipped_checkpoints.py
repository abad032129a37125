"""Every shipped checkpoint is safetensors + JSON, under 30 MB, and records its data, config, command
and metrics; the pathway model's vocabulary fits the corpus that ships beside it (a corpus version may
be newer than the model: the model keeps its own vocabulary until it is retrained)."""

from __future__ import annotations

import json

import pytest

from cellang.corpus import load_corpus
from cellang.paths import CHECKPOINT_DIR

SHIPPED = sorted(p for p in CHECKPOINT_DIR.iterdir() if p.is_dir() and (p / "model.safetensors").exists()) \
    if CHECKPOINT_DIR.exists() else []


def test_the_pathway_model_ships() -> None:
    assert CHECKPOINT_DIR / "pathway-gpt" in SHIPPED


@pytest.mark.parametrize("directory", SHIPPED, ids=lambda p: p.name)
def test_checkpoint_files_size_and_record(directory) -> None:  # type: ignore[no-untyped-def]
    names = {p.name for p in directory.iterdir()}
    assert {"model.safetensors", "config.json", "vocabulary.json", "training_record.json"} <= names
    assert not {n for n in names if n.endswith((".pt", ".pkl", ".bin", ".pickle"))}, "no pickles ship"
    assert sum(p.stat().st_size for p in directory.iterdir()) < 30 * 1024 * 1024
    record = json.loads((directory / "training_record.json").read_text())
    assert record["command_line"].startswith(("python ", "cellang "))  # a command anyone can type again
    assert not any(f"/{folder}/" in record["command_line"] for folder in ("work", "root"))  # no machine paths
    assert record["steps"] > 0 and record["final_val_loss"] is not None
    assert record["train_config"]["seed"] is not None
    json.loads((directory / "config.json").read_text())


def test_pathway_model_fits_the_shipped_corpus_and_is_tuned() -> None:
    directory = CHECKPOINT_DIR / "pathway-gpt"
    record = json.loads((directory / "training_record.json").read_text())
    assert len(record["corpus_manifest_sha256"]) == 64
    corpus = load_corpus()
    vocabulary = set(json.loads((directory / "vocabulary.json").read_text())["genes"])
    assert vocabulary <= set(corpus.genes)
    assert all(set(p.genes) <= vocabulary for p in corpus.benchmark()), "every benchmark gene can be predicted"
    completer = json.loads((directory / "completer.json").read_text())
    assert 0.0 <= completer["weight"] <= 1.0 and completer["validation"]["pathways"] > 100
