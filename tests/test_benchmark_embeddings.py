"""scripts/benchmark_embeddings.py: pairing of pathway-initialised and random variants, the tables."""

from __future__ import annotations

import json

from cellang import checkpoints
from tests.scripts import load_script


def fake_checkpoint(directory, command_line: str, pathway: bool) -> None:
    directory.mkdir(parents=True)
    (directory / checkpoints.MODEL_FILE).write_bytes(b"")
    for name in (checkpoints.CONFIG_FILE, checkpoints.VOCABULARY_FILE):
        (directory / name).write_text("{}")
    record = {"command_line": command_line, "steps": 10, "final_val_loss": 0.5, "wall_time_s": 3.0,
              "init_from_pathway": {"genes_initialised": 7} if pathway else None}
    (directory / checkpoints.RECORD_FILE).write_text(json.dumps(record))


def test_pathway_pairs_and_markdown(tmp_path) -> None:
    script = load_script("benchmark_embeddings")
    base = "python scripts/train.py cells-binned --max-steps 10"
    fake_checkpoint(tmp_path / "p", f"{base} --init-from-pathway", pathway=True)
    fake_checkpoint(tmp_path / "r", f"{base} --out runs/r/model --run-dir runs/r/run", pathway=False)
    fake_checkpoint(tmp_path / "other", "python scripts/train.py cells-binned --max-steps 99", pathway=False)
    models = {"p": tmp_path / "p", "r": tmp_path / "r", "other": tmp_path / "other"}
    scores = {"avg_bio": 0.5, "nmi": 0.4, "ari": 0.3, "asw": 0.8, "batch_asw": None}
    mean = {f"{m} {v}": dict(scores, avg_bio=0.5 + 0.1 * (m == "p")) for m in models for v in ("CLS", "mean")}
    mean["HVG+PCA"] = scores
    pairs = script.pathway_comparison(mean, models)
    assert [(p["pathway_init"], p["random_init"]) for p in pairs] == [("p CLS", "r CLS"), ("p mean", "r mean")]
    assert abs(pairs[0]["difference"] - 0.1) < 1e-9
    result = {"clustering": "k-means", "seed": 0, "mean": mean, "pathway_init": pairs,
              "datasets": {"d": {"cells": 5, "cell_types": 2, "batches": 1, "methods": {"HVG+PCA": scores}}},
              "models": {m: str(p) for m, p in models.items()},
              "records": {m: script._record_summary(p) for m, p in models.items()}}
    text = script.markdown(result)
    assert "| HVG+PCA | 0.500 | 0.400 | 0.300 | 0.800 | – |" in text
    assert "| p CLS | 0.600 | r CLS | 0.500 | 0.100 |" in text
    assert "| d | 5 | 2 | 1 | HVG+PCA |" in text
