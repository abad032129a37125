"""Read trained cell encoders back from their checkpoint folders. Embedding, the explorer, the perturbation
workflow and the pages import this, never the training module.

In:  a model name (checkpoints/<name>) or a checkpoint folder.
Out: the encoder in eval mode on the CPU, its tokeniser (binned or rank, from the saved vocabulary), and
its training record; cached until the weights file changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from cellang_core import checkpoints
from cellang_core.models.encoder import CellEncoder, EncoderConfig
from cellang_core.tokenizers.binned import BinnedTokenizer
from cellang_core.tokenizers.cells import CellVocabulary
from cellang_core.tokenizers.rank import RankTokenizer

CELL_MODELS: tuple[str, ...] = ("cells-binned", "cells-rank")
Tokenizer = BinnedTokenizer | RankTokenizer


def tokenizer_from_vocabulary(vocabulary: CellVocabulary) -> Tokenizer:
    return BinnedTokenizer(vocabulary) if vocabulary.mode == "binned" else RankTokenizer(vocabulary)


def load_cell_encoder_checkpoint(directory: str | Path) -> tuple[CellEncoder, Tokenizer, dict[str, Any]]:
    """(encoder in eval mode on CPU, its tokeniser, training record) from a checkpoint directory."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: CellEncoder(EncoderConfig(**config)))
    assert isinstance(model, CellEncoder)
    with checkpoints.reading(directory):
        tokenizer = tokenizer_from_vocabulary(CellVocabulary.from_json(vocabulary_json))
    return model, tokenizer, record


@lru_cache(maxsize=8)
def _load(directory: str, stamp: str) -> tuple[Any, Any, dict[str, Any]]:
    return load_cell_encoder_checkpoint(directory)


def load_cell_encoder(name: str = "cells-binned", checkpoint_dir: str | Path | None = None):
    """(encoder in eval mode on CPU, tokeniser, training record); cached until the file changes.

    name: one of CELL_MODELS (used for checkpoints/<name> when checkpoint_dir is None).
    FileNotFoundError when the checkpoint is missing.
    """
    if checkpoint_dir is None and name not in CELL_MODELS:
        raise ValueError(f"unknown cell encoder {name!r}; expected one of {CELL_MODELS}")
    directory = checkpoints.require(name, checkpoint_dir)
    return _load(str(directory.resolve()), checkpoints.stamp(directory))


__all__ = ["CELL_MODELS", "Tokenizer", "load_cell_encoder", "load_cell_encoder_checkpoint",
           "tokenizer_from_vocabulary"]
