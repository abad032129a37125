"""Train a cell encoder on cells streamed from disk: the user's ``.h5ad`` files or a Census query, from scratch or
fine-tuned from a checkpoint (``cellang train`` cells-rank --data my.h5ad --init-from checkpoints/cells-rank``).

One pass over the training cells fits the tokeniser's statistics (highly variable genes, gene medians) and
sets the validation cells aside; training then streams shuffled batches (:mod:`.streaming`).

Fine-tuning keeps the checkpoint's tokeniser for the genes it knows (their medians, their settings) and adds the
user's genes that it lacks: their embedding rows (and output rows) start fresh, every other weight is the
checkpoint's. The record names the genes added and the vocabulary genes the user's data never has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch

from cellang import checkpoints
from cellang.cells.stream import CellSource
from cellang.device import seed_everything
from cellang.embedding.loading import Tokenizer, load_cell_encoder_checkpoint, tokenizer_from_vocabulary
from cellang.embedding.streaming import StreamingBatches, ValidationCells, validation_mask
from cellang.embedding.training import (
    INIT_STD, MODEL_NAMES, VAL_FRACTION, CellTrainingResult, init_from_pathway, make_batcher, views_of
)
from cellang.errors import CellangError
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.tokenizers import binned, rank
from cellang.tokenizers.binned import BinnedTokenizer
from cellang.tokenizers.cells import CELL_VOCABULARY_FORMAT, CellVocabulary, TokenizedCells
from cellang.tokenizers.rank import RankTokenizer
from cellang.training import StepCallback, TrainConfig, distributed_env, fit_and_export

GENE_ROWS = ("transformer.wte.weight", "lm_head.weight")  # weights with one row per vocabulary token
MIN_SHARED_GENES = 0.2  # fine-tuning needs at least this share of the checkpoint's genes in the user's data


class CheckpointKindError(CellangError, ValueError):
    """The checkpoint to fine-tune is not a cell encoder of the requested kind."""


def _genes_seen(chunks: Iterable[ad.AnnData], seen: set[str]) -> Iterator[ad.AnnData]:
    for chunk in chunks:
        seen.update(map(str, chunk.var_names))
        yield chunk


def fit_tokenizer_streaming(mode: str, chunks: Iterable[ad.AnnData], *, max_len: int, n_hvg: int, n_bins: int,
                            min_cells: int, hvg_selection: str = binned.HVG_SELECTION,
                            input_panel: int = 0, window: int = 0) -> Tokenizer:
    """The mode's tokeniser fitted in one pass over ``chunks`` (training cells only)."""
    if mode == "binned":
        return BinnedTokenizer.fit_streaming(chunks, n_hvg=n_hvg, n_bins=n_bins, max_len=max_len,
                                             hvg_selection=hvg_selection, input_panel=input_panel)
    if mode == "rank":
        return RankTokenizer.fit_streaming(chunks, max_len=max_len, min_cells=min_cells, window=window)
    raise ValueError(f"mode must be 'binned' or 'rank', got {mode!r}")


def extend_vocabulary(base: CellVocabulary, fitted: CellVocabulary) -> CellVocabulary:
    """``base`` plus the genes of ``fitted`` that it lacks (rank mode: base medians kept, new genes take the fitted
    ones); the settings stay the base's, so tokens mean what they meant in pretraining."""
    if base.mode != fitted.mode:
        raise CheckpointKindError(f"a {base.mode} checkpoint cannot be extended with a {fitted.mode} vocabulary")
    new = [g for g in fitted.genes if g not in base]
    genes = list(base.genes) + new
    medians = None
    if base.mode == "rank":
        assert base.gene_medians is not None and fitted.gene_medians is not None
        fitted_median = dict(zip(fitted.genes, fitted.gene_medians))
        medians = list(base.gene_medians) + [fitted_median[g] for g in new]
    return CellVocabulary(genes, mode=base.mode, settings=base.settings, gene_medians=medians)


def transfer_weights(base: CellEncoder, base_vocabulary: CellVocabulary, model: CellEncoder,
                     vocabulary: CellVocabulary) -> None:
    """Copy ``base`` into ``model``: gene rows by gene (specials by position), every other weight as it is."""
    mapping = np.full(len(vocabulary), -1, dtype=np.int64)
    mapping[:len(vocabulary) - len(vocabulary.genes)] = np.arange(len(vocabulary) - len(vocabulary.genes))
    mapping[len(vocabulary) - len(vocabulary.genes):] = base_vocabulary.column_ids(vocabulary.genes)
    known = torch.from_numpy(np.flatnonzero(mapping >= 0))
    source = torch.from_numpy(mapping[mapping >= 0])
    base_state, state = base.state_dict(), model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if name in GENE_ROWS:
                tensor.normal_(0.0, INIT_STD)
                tensor[known] = base_state[name][source]
            else:
                tensor.copy_(base_state[name])


def cell_encoder_kind(directory: Path) -> str:
    """"binned" or "rank": the kind of cell encoder ``directory`` holds; CheckpointKindError when it holds none.
    Reads its JSON files only."""
    try:
        _, vocabulary_json, _ = checkpoints.read_metadata(directory)
    except (FileNotFoundError, ValueError) as error:
        raise CheckpointKindError(f"{directory} is not a cell encoder checkpoint: {error}") from error
    kind = vocabulary_json.get("mode") if vocabulary_json.get("format") == CELL_VOCABULARY_FORMAT else None
    if kind is None:
        raise CheckpointKindError(f"{directory} is not a cell encoder checkpoint: its vocabulary is not a cell "
                                  "vocabulary")
    return str(kind)


def check_base_kind(directory: Path, mode: str) -> None:
    """CheckpointKindError unless ``directory`` holds a ``mode`` cell encoder; reads its JSON files only."""
    kind = cell_encoder_kind(directory)
    if kind != mode:
        raise CheckpointKindError(f"{directory} is a {kind} cell encoder; train cells-{kind} to fine-tune it, not "
                                  f"cells-{mode}")


def load_base_checkpoint(directory: Path, mode: str) -> tuple[CellEncoder, Tokenizer, dict]:
    """(encoder, tokeniser, record) of the checkpoint to fine-tune; CheckpointKindError unless it is a ``mode``
    cell encoder."""
    check_base_kind(directory, mode)
    try:
        return load_cell_encoder_checkpoint(directory)
    except (FileNotFoundError, TypeError, KeyError, ValueError) as error:
        raise CheckpointKindError(f"{directory} is not a cell encoder checkpoint: {error}") from error


def train_cell_encoder_streaming(
    source: CellSource,
    *,
    model_config: EncoderConfig,
    train_config: TrainConfig,
    n_hvg: int = binned.N_HVG,
    hvg_selection: str = binned.HVG_SELECTION,
    input_panel: int = 0,
    min_cells: int = rank.MIN_CELLS,
    mask_ratio: float | None = None,
    window: int = 0,
    val_fraction: float = VAL_FRACTION,
    init_from: str | Path | None = None,
    init_pathway: str | Path | None = None,
    run_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    resume: bool = False,
    record_extra: dict[str, Any] | None = None,
    on_step: StepCallback | None = None,
    contrastive_weight: float | None = None,
) -> CellTrainingResult:
    """Train (or, with ``init_from``, fine-tune) a cell encoder on a streamed cell source.

    model_config: its mode picks the tokeniser; ignored but for the mode when ``init_from`` is given (the
        checkpoint's architecture is kept). on_step: the trainer's step callback. contrastive_weight: the
        model's weight of the two-view loss (None: the config's, or the base checkpoint's). Everything else as
        :func:`~.training.train_cell_encoder`.
    """
    mode, seed = model_config.mode, train_config.seed
    held_out = validation_mask(source.n_cells, val_fraction, seed)
    validation = ValidationCells(held_out, [])
    seen: set[str] = set()
    base = load_base_checkpoint(Path(init_from), mode) if init_from is not None else None
    if base is not None:
        model_config = EncoderConfig(**base[0].config_dict())
    if contrastive_weight is not None:
        model_config = dataclasses.replace(model_config, contrastive_weight=float(contrastive_weight))
    views = views_of(model_config)
    fitted = fit_tokenizer_streaming(mode, _genes_seen(validation.training_chunks(source), seen),
                                     max_len=model_config.max_len, n_hvg=n_hvg, n_bins=model_config.n_bins,
                                     min_cells=min_cells, hvg_selection=hvg_selection, input_panel=input_panel,
                                     window=window)
    fine_tuning = None
    if base is not None:
        base_model, base_tokenizer, base_record = base
        vocabulary = extend_vocabulary(base_tokenizer.vocabulary, fitted.vocabulary)
        tokenizer = tokenizer_from_vocabulary(vocabulary)
        added = [g for g in vocabulary.genes if g not in base_tokenizer.vocabulary]
        missing = [g for g in base_tokenizer.vocabulary.genes if g not in seen]
        shared = 1 - len(missing) / max(1, len(base_tokenizer.vocabulary.genes))
        if shared < MIN_SHARED_GENES:
            raise ValueError(
                f"only {shared:.0%} of the {len(base_tokenizer.vocabulary.genes):,} genes of {Path(init_from).name} "
                "occur in your data, so fine-tuning would relearn almost everything: check that the genes are "
                "symbols or Ensembl ids of human genes, or train from scratch (leave out --init-from)")
        fine_tuning = {"init_from": Path(init_from).name, "base_model": base_record.get("model"),
                       "genes_added": len(added), "genes_added_examples": added[:50],
                       "vocabulary_genes_missing_from_data": len(missing),
                       "missing_examples": missing[:50]}
    else:
        tokenizer = fitted
    vocabulary = tokenizer.vocabulary
    if not validation.parts:
        raise ValueError("no validation cell was read")
    val_cells = TokenizedCells.concat([tokenizer.tokenize(part) for part in validation.parts])

    world_size, rank_number, _ = distributed_env()

    def group_batcher(cells: TokenizedCells, group_seed: int):
        return make_batcher(mode, cells, vocabulary, batch_size=train_config.batch_size // world_size,
                            seed=group_seed, drop_last=True, mask_ratio=mask_ratio, n_bins=model_config.n_bins,
                            views=views)

    train_batches = StreamingBatches(source, tokenizer, group_batcher, batch_size=train_config.batch_size,
                                     seed=seed, held_out=held_out, rank=rank_number, world_size=world_size)
    val_batcher = make_batcher(mode, val_cells, vocabulary, batch_size=train_config.batch_size, seed=seed,
                               drop_last=False, mask_ratio=mask_ratio, n_bins=model_config.n_bins, views=views)
    config = dataclasses.replace(model_config, n_genes=len(vocabulary))
    seed_everything(seed)
    model = CellEncoder(config)
    if base is not None:
        transfer_weights(base[0], base[1].vocabulary, model, vocabulary)
    pathway_info = init_from_pathway(model, vocabulary, init_pathway) if init_pathway and base is None else None
    static_record = {
        "model": MODEL_NAMES[mode],
        "parameters": model.num_parameters(),
        "vocabulary_genes": len(vocabulary.genes),
        "tokenizer": vocabulary.settings,
        "data": source.describe(),
        "n_cells": source.n_cells,
        "n_train_cells": int(source.n_cells - held_out.sum()),
        "n_val_cells": int(held_out.sum()),
        "val_fraction": val_fraction,
        "mask_ratio": getattr(val_batcher, "mask_ratio", mask_ratio),
        "streaming": {"chunk_cells": source.chunk_cells, "buffer_chunks": train_batches.buffer_chunks},
        "fine_tuning": fine_tuning,
        "init_from_pathway": pathway_info,
        **(record_extra or {}),
    }
    history, record = fit_and_export(model, train_batches, val_batcher, train_config, static_record=static_record,
                                     vocabulary_json=vocabulary.to_json(), run_dir=run_dir, export_dir=export_dir,
                                     resume=resume, on_step=on_step)
    model.eval()
    return CellTrainingResult(model=model, tokenizer=tokenizer, history=history, record=record)
