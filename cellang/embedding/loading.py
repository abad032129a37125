"""Read trained cell encoders back from their checkpoint folders, and list the ones a page can offer.
Embedding, the explorer, the perturbation workflow and the pages import this, never the training module.

In:  a model name (checkpoints/<name>) or a checkpoint folder; for the registry, the shipped checkpoints and the
     user's models folder (:func:`cellang.paths.user_model_dir`, ``CELLANG_MODELS``).
Out: the encoder in eval mode on the CPU, its tokeniser (binned or rank, from the saved vocabulary), and
     its training record, cached until the weights file changes; :func:`cell_models` lists the encoders
     (:class:`CellModel`), :func:`scan_cell_models` also says which folders were skipped and why.

Only JSON and safetensors are read: listing or loading a model never unpickles anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cellang import checkpoints, paths
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.tokenizers.binned import BinnedTokenizer
from cellang.tokenizers.cells import CellVocabulary
from cellang.tokenizers.rank import RankTokenizer

CELL_MODELS: tuple[str, ...] = ("cells-binned", "cells-rank")  # the shipped encoders, checkpoints/<name>
MODES = ("binned", "rank")
MODE_TITLES = {"binned": "binned-expression encoder (scGPT-style)", "rank": "rank-value encoder (Geneformer-style)"}
USER_PREFIX = "my-"  # user models are shown as my-<folder>, so they never share a name with a shipped one
TRAIN_EXAMPLE = "cellang train cells-rank --data my.h5ad --init-from checkpoints/cells-rank"
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
    FileNotFoundError when the checkpoint is missing; CheckpointError when it cannot be read.
    """
    if checkpoint_dir is None and name not in CELL_MODELS:
        raise ValueError(f"unknown cell encoder {name!r}; expected one of {CELL_MODELS}")
    directory = checkpoints.require(name, checkpoint_dir)
    return _load(str(directory.resolve()), checkpoints.stamp(directory))


# --- the registry: shipped encoders and the user's own -------------------------------------------------------

@dataclass(frozen=True)
class CellModel:
    """A cell encoder a page can offer. name: unique and shown (cells-rank, my-cells-rank-finetuned; letters,
    digits, '-' and '_' only, so it is also a safe obsm key and file name part); path: its checkpoint folder;
    mode: "binned" or "rank"; shipped: from checkpoints/ (else the user's models folder); description: one
    line from its training record (what it is, its data and cells, what it was fine-tuned from)."""

    name: str
    path: Path
    mode: str
    shipped: bool
    description: str

    @property
    def folder(self) -> str:
        """Its folder as shown: relative to the repository when inside it (checkpoints/cells-rank)."""
        return shown_path(self.path)

    @property
    def label(self) -> str:
        """One line for a chooser: name, where it is for a user model, description."""
        where = "" if self.shipped else f" (yours, {self.folder})"
        return f"{self.name}{where}: {self.description}"

    def produced_by(self) -> str:
        """Who made a result: 'my-cells-rank-finetuned (models/cells-rank-finetuned)'."""
        return f"{self.name} ({self.folder})"


@dataclass(frozen=True)
class CellModelScan:
    """The encoders found (shipped first, then the user's by name), the folders skipped as (folder shown,
    reason), and the user models folder that was searched."""

    models: tuple[CellModel, ...]
    skipped: tuple[tuple[str, str], ...]
    user_folder: Path


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _data_words(record: dict[str, Any]) -> str:
    """What a record says it was trained on: 'my.h5ad', '2 files (a.h5ad, b.h5ad)', 'a CELLxGENE Census
    query', '6 atlas datasets'; '' when it does not say."""
    data, datasets = record.get("data"), record.get("datasets")
    if isinstance(data, dict):
        files = [str(f.get("name")) for f in data.get("files") or () if isinstance(f, dict) and f.get("name")]
        if files:
            return files[0] if len(files) == 1 else f"{len(files)} files ({', '.join(files[:3])}" + \
                (", ...)" if len(files) > 3 else ")")
        if data.get("kind") == "census":
            return "a CELLxGENE Census query"
        if data.get("kind") == "anndata" and data.get("name"):
            return str(data["name"])  # cells adapted to in memory (a page, the Python API)
        if data.get("kind"):
            return f"{data['kind']} cells"
    if isinstance(datasets, dict) and datasets:
        return f"{len(datasets)} atlas datasets" if len(datasets) > 1 else f"the atlas dataset {next(iter(datasets))}"
    return ""


def describe_record(record: dict[str, Any], mode: str) -> str:
    """One line from a training record: 'rank-value encoder (Geneformer-style), fine-tuned from cells-rank on
    my.h5ad (5,000 cells), 300 steps'. Fields it lacks are left out; it never raises on odd records."""
    words = MODE_TITLES.get(mode, f"{mode} encoder")
    if not isinstance(record, dict):
        return words
    tuning = record.get("fine_tuning")
    base = (tuning.get("init_from") or tuning.get("base_model")) if isinstance(tuning, dict) else None
    words += f", fine-tuned from {base}" if base else ", trained"
    data = _data_words(record)
    cells = _number(record.get("n_cells"))
    if cells is None and _number(record.get("n_train_cells")) is not None:
        cells = _number(record.get("n_train_cells")) + (_number(record.get("n_val_cells")) or 0)
    words += f" on {data}" if data else ""
    words += f" ({cells:,} cells)" if cells is not None else ""
    steps = _number(record.get("steps"))
    return words + (f", {steps:,} steps" if steps is not None else "")


def _files_stamp(directory: Path) -> tuple:
    """Changes when any of a checkpoint's files is replaced (a cache key for :func:`_read_model`)."""
    names = (checkpoints.MODEL_FILE, checkpoints.CONFIG_FILE, checkpoints.VOCABULARY_FILE, checkpoints.RECORD_FILE)
    stats = [(directory / n).stat() if (directory / n).is_file() else None for n in names]
    return tuple((s.st_mtime_ns, s.st_size) if s else None for s in stats)


@lru_cache(maxsize=64)
def _read_model(directory: str, stamp: tuple) -> tuple[str, str]:
    """(mode, description) of a cell-encoder checkpoint folder; CheckpointError / FileNotFoundError /
    ValueError say why it is not one. Reads the JSON files and the weights header, not the weights."""
    folder = Path(directory)
    checkpoints.check_readable(folder)
    config, vocabulary_json, record = checkpoints.read_metadata(folder)
    mode = config.get("mode") if isinstance(config, dict) else None
    if mode not in MODES:
        raise ValueError("not a cell encoder (its config.json has no mode binned or rank)")
    with checkpoints.reading(folder):
        EncoderConfig(**config)
        vocabulary = CellVocabulary.from_json(vocabulary_json)
        if vocabulary.mode != mode or len(vocabulary) != config["n_genes"]:
            raise ValueError(f"its vocabulary ({vocabulary.mode}, {len(vocabulary):,} tokens) does not fit its "
                             f"config ({mode}, {config['n_genes']:,} tokens)")
    return mode, describe_record(record, mode)


def _cell_model(name: str, folder: Path, shipped: bool) -> CellModel:
    """The CellModel in ``folder``; FileNotFoundError or ValueError (CheckpointError) say why there is none."""
    mode, description = _read_model(str(folder.resolve()), _files_stamp(folder))
    return CellModel(name, folder, mode, shipped, description)


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    return re.sub(r"^\S+/ is not a readable checkpoint: ", "not a readable checkpoint: ", text)[:300]


def user_model_name(folder: Path) -> str:
    """my-<folder name>, with characters other than letters, digits, '-' and '_' replaced by '_'."""
    return USER_PREFIX + re.sub(r"[^A-Za-z0-9_-]+", "_", folder.name).strip("_")


def _shipped_models(skipped: list[tuple[str, str]]) -> list[CellModel]:
    """The shipped encoders present in checkpoints/; unreadable ones go to ``skipped``."""
    found = []
    for name in CELL_MODELS:
        folder = checkpoints.shipped_dir(name)
        if checkpoints.checkpoint_exists(folder):
            try:
                found.append(_cell_model(name, folder, shipped=True))
            except (FileNotFoundError, ValueError) as error:
                skipped.append((shown_path(folder), _reason(error)))
    return found


def _user_folders(user_folder: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """The visible sub-folders of the user models folder, by name (none when it does not exist)."""
    try:
        return sorted(p for p in user_folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if user_folder.is_dir() else []
    except OSError as error:
        skipped.append((shown_path(user_folder), f"cannot be listed: {error.strerror}"))
        return []


def _user_models(user_folder: Path, shipped: list[CellModel], skipped: list[tuple[str, str]]) -> list[CellModel]:
    """The cell encoders among the user folder's sub-folders; the others go to ``skipped`` with the reason."""
    found: list[CellModel] = []
    taken = {m.name for m in shipped}
    shipped_folders = {m.path.resolve() for m in shipped}
    for folder in _user_folders(user_folder, skipped):
        name = user_model_name(folder)
        if folder.resolve() in shipped_folders:
            continue  # the user folder is (or holds) checkpoints/: already listed as shipped
        if name in taken:
            skipped.append((shown_path(folder), f"its name {name} is taken by another folder: rename it"))
        elif not checkpoints.checkpoint_exists(folder):
            skipped.append((shown_path(folder), f"no {checkpoints.MODEL_FILE} (not a checkpoint, or still being "
                                                "written)"))
        else:
            try:
                found.append(_cell_model(name, folder, shipped=False))
                taken.add(name)
            except (FileNotFoundError, ValueError) as error:
                skipped.append((shown_path(folder), _reason(error)))
    return found


def scan_cell_models(mode: str | None = None) -> CellModelScan:
    """Every usable cell encoder: the shipped ones present in checkpoints/, then each sub-folder of the user
    models folder that is a readable cell-encoder checkpoint. mode: "binned" or "rank" keeps only those.
    Folders that are not (pathway models, junk, a half-written save) are skipped with the reason; hidden
    folders (a save's staging and previous copies) are passed over."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}")
    skipped: list[tuple[str, str]] = []
    user_folder = paths.user_model_dir()
    shipped = _shipped_models(skipped)
    found = shipped + _user_models(user_folder, shipped, skipped)
    models = tuple(m for m in found if mode is None or m.mode == mode)
    return CellModelScan(models, tuple(skipped), user_folder)


def cell_models(mode: str | None = None) -> list[CellModel]:
    """The usable cell encoders (see :func:`scan_cell_models`), shipped first."""
    return list(scan_cell_models(mode).models)


def find_cell_model(name: str) -> CellModel | None:
    """The listed encoder called ``name``, or None."""
    return next((m for m in cell_models() if m.name == name), None)


def shipped_cell_model(name: str) -> CellModel:
    """CellModel of a shipped encoder by name, without reading it (its description from the record when it can
    be read); loading it later says what is wrong. ValueError for a name not in CELL_MODELS."""
    if name not in CELL_MODELS:
        raise ValueError(f"unknown cell encoder {name!r}; expected one of {CELL_MODELS}")
    folder = checkpoints.shipped_dir(name)
    try:
        return _cell_model(name, folder, shipped=True)
    except (FileNotFoundError, ValueError):
        mode = name.removeprefix("cells-")
        return CellModel(name, folder, mode, True, MODE_TITLES[mode])


def no_models_message(scan: CellModelScan, mode: str | None = None) -> str:
    """Why ``scan`` offers no encoder (of ``mode``): each shipped one missing or unreadable, and how to add one of
    your own."""
    skipped = dict(scan.skipped)
    reasons = []
    for name in (n for n in CELL_MODELS if mode is None or n == f"cells-{mode}"):
        shown = shown_path(checkpoints.shipped_dir(name))
        reasons.append(checkpoints.why_missing(name) or f"The {name} model in {shown} cannot be used: "
                                                         f"{skipped.get(shown, 'it is not a cell encoder')}.")
    kind = f"{mode} " if mode else ""
    return " ".join(reasons) + f" No {kind}encoder of your own is in {shown_path(scan.user_folder)}/ either: " \
                               f"train one with `{TRAIN_EXAMPLE}`."


def models_caption(scan: CellModelScan) -> str:
    """Where the pages look for the user's models and how to add one, in one or two sentences; names the folders
    skipped and why."""
    folder = shown_path(scan.user_folder)
    text = (f"Your own encoders are read from {folder}/ (set CELLANG_MODELS to use another folder); add one with "
            f"`{TRAIN_EXAMPLE}`, which writes {folder}/cells-rank-finetuned.")
    if scan.skipped:
        text += " Not offered: " + "; ".join(f"{where} ({why})" for where, why in scan.skipped) + "."
    return text


__all__ = ["CELL_MODELS", "CellModel", "CellModelScan", "MODES", "MODE_TITLES", "TRAIN_EXAMPLE", "Tokenizer",
           "cell_models", "describe_record", "find_cell_model", "load_cell_encoder", "load_cell_encoder_checkpoint",
           "models_caption", "no_models_message", "scan_cell_models", "shipped_cell_model", "shown_path",
           "tokenizer_from_vocabulary", "user_model_name"]
