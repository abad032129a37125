"""Read trained pathway models back from their checkpoint folders. Inference (completer, baselines, pages,
benchmarks) imports this, never the training modules.

In:  a checkpoint folder (see :mod:`cellang.checkpoints`).
Out: the model in eval mode on the CPU, its vocabulary, and its training record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellang import checkpoints
from cellang.models.dae import DAEConfig, SetDAE
from cellang.models.gpt import GPT, GPTConfig
from cellang.models.set_transformer import SetTransformer, SetTransformerConfig
from cellang.tokenizers.pathway import PathwayVocabulary


def load_pathway_model(directory: str | Path) -> tuple[GPT, PathwayVocabulary, dict[str, Any]]:
    """(model in eval mode on CPU, vocabulary, training record) from a checkpoint directory."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: GPT(GPTConfig(**config))
    )
    assert isinstance(model, GPT)
    with checkpoints.reading(directory):
        return model, PathwayVocabulary.from_json(vocabulary_json), record


def load_dae(directory: str | Path) -> tuple[SetDAE, list[str], dict[str, Any]]:
    """(model in eval mode on CPU, genes in column order, training record) from a checkpoint."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: SetDAE(DAEConfig(**config))
    )
    assert isinstance(model, SetDAE)
    with checkpoints.reading(directory):
        return model, list(vocabulary_json["genes"]), record


def load_set_model(directory: str | Path) -> tuple[SetTransformer, list[str], dict[str, Any]]:
    """(masked-set transformer in eval mode on CPU, genes in id order, training record) from a checkpoint."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: SetTransformer(SetTransformerConfig(**config))
    )
    assert isinstance(model, SetTransformer)
    with checkpoints.reading(directory):
        return model, list(vocabulary_json["genes"]), record


__all__ = ["load_dae", "load_pathway_model", "load_set_model"]
