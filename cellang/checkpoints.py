"""The one place that writes and reads checkpoints.

A checkpoint is a directory:
    model.safetensors        weights (safetensors: loading it never runs code)
    config.json              architecture config, enough to rebuild the model
    vocabulary.json          the tokeniser's vocabulary
    training_record.json     provenance: data hash, command line, losses, device, seed, ...
    training_state.pt        optional, only in our own run directories: optimizer + RNG state
                             for resuming; read back with torch.load(weights_only=True)

Shipped checkpoints have no training_state.pt. Directories are replaced atomically: everything is
written into a sibling staging directory first, so a run killed mid-save keeps the previous
checkpoint.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn as nn
from safetensors import SafetensorError

from cellang import paths
from cellang.errors import CellangError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
RECORD_FILE = "training_record.json"
TRAINING_STATE_FILE = "training_state.pt"


class CheckpointError(CellangError, ValueError):
    """A checkpoint folder that exists but cannot be read: bad JSON or UTF-8, a config the model does not
    take, a corrupt or mismatched weights file. The message names the folder and the reason."""


# What a damaged file raises while it is read: broken JSON/UTF-8 (ValueError), a missing config key
# (KeyError), an unexpected one (TypeError), a bad safetensors header, a tensor of the wrong shape
# (RuntimeError), an unreadable training state (pickle.UnpicklingError, EOFError).
_DAMAGED = (ValueError, KeyError, TypeError, SafetensorError, RuntimeError, EOFError, pickle.UnpicklingError)


@contextmanager
def reading(directory: str | Path) -> Iterator[None]:
    """Errors of a damaged checkpoint raised inside this block become one CheckpointError naming the folder
    (loaders wrap their vocabulary parsing in it too)."""
    try:
        yield
    except CheckpointError:
        raise
    except _DAMAGED as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CheckpointError(f"{Path(directory).name}/ is not a readable checkpoint: {reason[:300]}") from error


def _staging(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.staging")


def _previous(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.previous")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # allow_nan=False: records must stay strict JSON that any reader accepts.
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    *,
    config: dict[str, Any],
    vocabulary_json: dict[str, Any],
    record: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write (or atomically replace) the checkpoint directory; returns its path.

    model: the bare module (not a DDP / torch.compile wrapper); tied weights are stored once.
    training_state: plain tensors/numbers/lists/dicts only (it must load with weights_only=True);
    pass it only for resumable run directories, never for checkpoints that will be shipped.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging, previous = _staging(directory), _previous(directory)
    if staging.exists():
        shutil.rmtree(staging)  # left over by a run killed mid-save
    staging.mkdir()
    try:
        safetensors.torch.save_model(model, str(staging / MODEL_FILE), metadata={"format": "pt"})
        _write_json(staging / CONFIG_FILE, config)
        _write_json(staging / VOCABULARY_FILE, vocabulary_json)
        _write_json(staging / RECORD_FILE, record)
        if training_state is not None:
            torch.save(training_state, staging / TRAINING_STATE_FILE)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # POSIX cannot rename a directory over a non-empty one, so the old one steps aside first;
    # if we die between the two renames, _resolve() finds it under its "previous" name.
    if previous.exists():
        shutil.rmtree(previous)
    if directory.exists():
        os.replace(directory, previous)
    os.replace(staging, directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def _resolve(directory: str | Path) -> Path:
    """The directory holding the newest complete checkpoint (see save_checkpoint)."""
    directory = Path(directory)
    if (directory / MODEL_FILE).is_file():
        return directory
    if (_previous(directory) / MODEL_FILE).is_file():
        return _previous(directory)
    raise FileNotFoundError(f"no checkpoint ({MODEL_FILE}) in {directory}")


def checkpoint_exists(directory: str | Path) -> bool:
    """True when `directory` (or its interrupted-save fallback) holds a complete checkpoint."""
    try:
        _resolve(directory)
    except FileNotFoundError:
        return False
    return True


def read_metadata(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, vocabulary_json, record) of a checkpoint, without touching the weights.
    FileNotFoundError without a checkpoint; CheckpointError when a file is missing or damaged."""
    path = _resolve(directory)
    with reading(directory):
        for name in (CONFIG_FILE, VOCABULARY_FILE, RECORD_FILE):
            if not (path / name).is_file():
                raise ValueError(f"{name} is missing")
        return tuple(  # type: ignore[return-value]
            json.loads((path / name).read_text(encoding="utf-8"))
            for name in (CONFIG_FILE, VOCABULARY_FILE, RECORD_FILE)
        )


def check_readable(directory: str | Path) -> None:
    """Read a checkpoint's JSON files and its weights header now, so a damaged one fails (CheckpointError)
    before any training or benchmarking starts; FileNotFoundError without a checkpoint."""
    read_metadata(directory)
    with reading(directory), safetensors.safe_open(str(_resolve(directory) / MODEL_FILE), framework="pt"):
        pass


def load_weights(directory: str | Path, model: nn.Module) -> None:
    """Copy a checkpoint's weights into `model` in place (strict: every tensor must match);
    CheckpointError when the file is damaged or does not fit the model."""
    path = _resolve(directory) / MODEL_FILE
    with reading(directory):
        safetensors.torch.load_model(model, path, strict=True)


def load_checkpoint(
    directory: str | Path, model_factory: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Rebuild a model from a checkpoint directory.

    model_factory: builds an untrained model from the saved config dict,
    e.g. `lambda c: GPT(GPTConfig(**c))`.
    Returns (model in eval mode on CPU, config, vocabulary_json, record).
    """
    config, vocabulary_json, record = read_metadata(directory)
    with reading(directory):  # a config.json the model does not take
        model = model_factory(config)
    load_weights(directory, model)
    model.eval()
    return model, config, vocabulary_json, record


def load_training_state(directory: str | Path) -> dict[str, Any] | None:
    """The resumable training state saved with a checkpoint, or None if it has none.

    Only for our own run directories; weights_only=True refuses anything but plain data.
    """
    path = _resolve(directory) / TRAINING_STATE_FILE
    if not path.is_file():
        return None
    with reading(directory):
        return torch.load(path, map_location="cpu", weights_only=True)


# --- the registry: shipped model name -> folder, presence, stamp, why it is missing ------------------------

SHIPPED: dict[str, str] = {  # name -> what it is (checkpoints/<name>/)
    "pathway-gpt": "Pathway language model (decoder-only transformer over gene sets)",
    "pathway-set": "Masked-set transformer over gene sets (reads part of a set, scores every gene)",
    "pathway-rerank": "Retrieval reader (re-ranks the candidate genes set retrieval finds, from their features)",
    "cells-binned": "Binned-expression cell encoder (scGPT-style)",
    "cells-rank": "Rank-value cell encoder (Geneformer-style)",
}
TRAIN_COMMANDS = {"pathway-gpt": "pathway", "pathway-dae": "pathway-dae", "pathway-set": "pathway-set",
                  "pathway-rerank": "pathway-rerank", "cells-binned": "cells-binned", "cells-rank": "cells-rank"}  # model name -> cellang train sub-command


def shipped_dir(name: str) -> Path:
    """checkpoints/<name> (read at call time, so tests can point CHECKPOINT_DIR elsewhere)."""
    return paths.CHECKPOINT_DIR / name


def weights_sha256(directory: str | Path) -> str:
    """The sha256 of the newest complete checkpoint's weights file: which weights a record means."""
    from cellang.registry import sha256_of

    return sha256_of(_resolve(directory) / MODEL_FILE)


def stamp(directory: str | Path) -> str:
    """Changes whenever the weights file is replaced: a cache key ("missing" without one)."""
    path = Path(directory) / MODEL_FILE
    return f"{path.stat().st_mtime_ns}:{path.stat().st_size}" if path.is_file() else "missing"


def why_missing(name: str, directory: str | Path | None = None) -> str | None:
    """A sentence saying why model ``name`` cannot be used from ``directory`` (default checkpoints/<name>),
    or None when a complete checkpoint is there."""
    folder = Path(directory) if directory is not None else shipped_dir(name)
    if checkpoint_exists(folder):
        return None
    shown = f"checkpoints/{name}" if directory is None else str(folder)
    command = TRAIN_COMMANDS.get(name, name)
    return (f"The {name} model is not available: {shown}/{MODEL_FILE} is missing. Train it with "
            f"`cellang train {command}`, which writes it to checkpoints/{name}/.")


def require(name: str, directory: str | Path | None = None) -> Path:
    """The checkpoint folder of model ``name``; FileNotFoundError saying how to make it when it is missing."""
    problem = why_missing(name, directory)
    if problem:
        raise FileNotFoundError(problem)
    return Path(directory) if directory is not None else shipped_dir(name)
