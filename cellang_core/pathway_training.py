"""Train the pathway language model: gene sets -> vocabulary -> batches -> GPT -> checkpoint.

`scripts/train.py pathway` is a thin CLI over `train_pathway_model`; `load_pathway_model` reads
the result back for the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellang_core import checkpoints
from cellang_core.device import seed_everything
from cellang_core.models.gpt import GPT, GPTConfig
from cellang_core.tokenizers.pathway import PathwayBatcher, PathwayVocabulary, SetBatcher
from cellang_core.training import HistoryEntry, TrainConfig, fit_and_export

MODEL_NAME = "pathway-gpt"

GeneSets = Sequence[Sequence[str]]


@dataclass
class PathwayTrainingResult:
    model: GPT
    vocabulary: PathwayVocabulary
    history: list[HistoryEntry]
    record: dict[str, Any]


def split_validation(gene_sets: GeneSets, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a seeded random `fraction` (at least one set) of training sets for validation.

    Returns (train, validation). Validation comes from the train split so the test split stays
    untouched until benchmarking.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if len(gene_sets) < 2:
        raise ValueError("need at least two gene sets to hold one out for validation")
    order = np.random.default_rng((seed, 2)).permutation(len(gene_sets))
    n_val = max(1, round(fraction * len(gene_sets)))
    val_index = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(gene_sets) if i not in val_index]
    val = [s for i, s in enumerate(gene_sets) if i in val_index]
    return train, val


def _check_resumable(run_dir: Path, model: GPT, vocabulary: PathwayVocabulary) -> None:
    """Refuse to resume a run whose architecture or vocabulary differ from this one."""
    config, vocabulary_json, _ = checkpoints.read_metadata(run_dir)
    if config != model.config_dict():
        raise ValueError(f"cannot resume {run_dir}: model config {config} != {model.config_dict()}")
    if PathwayVocabulary.from_json(vocabulary_json) != vocabulary:
        raise ValueError(f"cannot resume {run_dir}: its vocabulary differs from this corpus's")


def train_pathway_model(
    train_sets: GeneSets,
    vocabulary: PathwayVocabulary,
    *,
    model_config: GPTConfig,
    train_config: TrainConfig,
    run_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    val_fraction: float = 0.02,
    resume: bool = False,
    record_extra: dict[str, Any] | None = None,
    window: int = 128,
    positions_per_set: int = 16,
) -> PathwayTrainingResult:
    """Train a GPT on pathways, each sequence one set `<bos> shuffled genes <eos>`.

    train_sets: gene sets of the corpus train split (all genes in `vocabulary`); a seeded
        `val_fraction` of them is held out for validation loss.
    model_config: its vocab_size must equal len(vocabulary).
    run_dir: resumable checkpoints (with optimizer state) go here; None = no checkpoints.
    export_dir: the finished model (no optimizer state) is written here, ready to ship.
    record_extra: provenance merged into the training record (corpus hash, command line, ...).
    window, positions_per_set: for the set objective, genes fed per row and positions scored per row.
    """
    if model_config.vocab_size != len(vocabulary):
        raise ValueError(f"vocab_size {model_config.vocab_size} != vocabulary size {len(vocabulary)}")
    seed = train_config.seed
    train, val = split_validation(train_sets, val_fraction, seed)
    if model_config.objective == "set":
        window = min(window, model_config.block_size - 1)

        def batcher(sets: GeneSets, drop_last: bool) -> PathwayBatcher:
            return SetBatcher(sets, vocabulary, batch_size=train_config.batch_size, window=window,
                              positions_per_set=positions_per_set, seed=seed, drop_last=drop_last)
    else:
        def batcher(sets: GeneSets, drop_last: bool) -> PathwayBatcher:
            return PathwayBatcher(sets, vocabulary, batch_size=train_config.batch_size,
                                  block_size=model_config.block_size, seed=seed, drop_last=drop_last)

    train_batches = batcher(train, True)
    val_batcher = batcher(val, False)

    seed_everything(seed)  # model initialisation depends on the seed only
    model = GPT(model_config)
    if resume and run_dir is not None and checkpoints.checkpoint_exists(run_dir):
        _check_resumable(Path(run_dir), model, vocabulary)

    static_record = {
        "model": MODEL_NAME,
        "parameters": model.num_parameters(),
        "vocabulary_size": len(vocabulary),
        "n_train_sets": len(train),
        "n_val_sets": len(val),
        "val_fraction": val_fraction,
        **({"window": window, "positions_per_set": positions_per_set} if model_config.objective == "set" else {}),
        **(record_extra or {}),
    }

    history, record = fit_and_export(model, train_batches, val_batcher, train_config,
                                     static_record=static_record, vocabulary_json=vocabulary.to_json(),
                                     run_dir=run_dir, export_dir=export_dir, resume=resume)
    return PathwayTrainingResult(model=model, vocabulary=vocabulary, history=history, record=record)


def load_pathway_model(directory: str | Path) -> tuple[GPT, PathwayVocabulary, dict[str, Any]]:
    """(model in eval mode on CPU, vocabulary, training record) from a checkpoint directory."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: GPT(GPTConfig(**config))
    )
    assert isinstance(model, GPT)
    with checkpoints.reading(directory):
        return model, PathwayVocabulary.from_json(vocabulary_json), record

