"""Train the pathway language model: gene sets -> vocabulary -> batches -> GPT -> checkpoint.

`cellang train` pathway` is a thin CLI over `train_pathway_model`; `load_pathway_model` reads
the result back (see completion.loading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellang.batching import split_validation
from cellang.device import seed_everything
from cellang.models.gpt import GPT, GPTConfig
from cellang.tokenizers.pathway import PathwayBatcher, PathwayVocabulary, SetBatcher
from cellang.training import HistoryEntry, TrainConfig, fit_and_export

MODEL_NAME = "pathway-gpt"
VAL_FRACTION = 0.02  # training sets held out for the validation loss
# The held-out slice is drawn with this seed whatever a run's --seed: every pathway model (GPT, DAE, set
# transformer, reader) and `cellang tune completer` share it, so no model trains on the sets tuning validates on.
VALIDATION_SEED = 0
WINDOW = 128  # set objective: genes fed per pathway (at most block_size - 1)
POSITIONS_PER_SET = 16  # set objective: input positions scored per pathway
# `cellang train` pathway` without options; the shipped model's own schedule is in its training record.
TRAINING = TrainConfig(max_steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=200, eval_interval=250)

GeneSets = Sequence[Sequence[str]]


def validation_slice(train_sets: Sequence, val_fraction: float = VAL_FRACTION) -> tuple[list, list]:
    """(train, validation): the pathway models' shared held-out slice of the corpus's training sets (or of
    their indices), the same for every training seed."""
    return split_validation(list(train_sets), val_fraction, VALIDATION_SEED)


@dataclass
class PathwayTrainingResult:
    model: GPT
    vocabulary: PathwayVocabulary
    history: list[HistoryEntry]
    record: dict[str, Any]


def train_pathway_model(
    train_sets: GeneSets,
    vocabulary: PathwayVocabulary,
    *,
    model_config: GPTConfig,
    train_config: TrainConfig,
    run_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    val_fraction: float = VAL_FRACTION,
    resume: bool = False,
    record_extra: dict[str, Any] | None = None,
    window: int = WINDOW,
    positions_per_set: int = POSITIONS_PER_SET,
) -> PathwayTrainingResult:
    """Train a GPT on pathways, each sequence one set `<bos> shuffled genes <eos>`.

    train_sets: gene sets of the corpus train split (all genes in `vocabulary`); a seeded
        `val_fraction` of them (`validation_slice`, whatever the seed) is held out for validation loss.
    model_config: its vocab_size must equal len(vocabulary).
    run_dir: resumable checkpoints (with optimizer state) go here; None = no checkpoints.
    resume: continue from run_dir's checkpoint if it has one (same model config and vocabulary only).
    export_dir: the finished model (no optimizer state) is written here, ready to ship.
    record_extra: provenance merged into the training record (corpus hash, command line, ...).
    window, positions_per_set: for the set objective, genes fed per row and positions scored per row.
    """
    if model_config.vocab_size != len(vocabulary):
        raise ValueError(f"vocab_size {model_config.vocab_size} != vocabulary size {len(vocabulary)}")
    seed = train_config.seed
    train, val = validation_slice(train_sets, val_fraction)
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
