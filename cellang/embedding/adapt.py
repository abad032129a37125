"""Adapt a cell encoder to your cells in minutes: self-supervised fine-tuning (no labels) within a time budget.

    from cellang.embedding.adapt import adapt_encoder
    result = adapt_encoder(adata, "cells-binned", minutes=5)        # -> models/cells-binned-adapted-cells
    embed_cells(adata, model=result.name, checkpoint_dir=result.directory)

In:  cells (an AnnData whose var_names are approved symbols, or ``.h5ad`` files, streamed), a base encoder (a
     listed name such as ``cells-binned`` or ``my-...``, or a checkpoint folder), a time budget in minutes or an
     exact number of steps, a seed.
Out: a user model folder (safetensors + config + vocabulary + record) that every page lists beside the shipped
     encoders. Its record says what was adapted: the data (file or content sha256), the base model, the budget,
     the steps taken, the seed and the loss curve.

The recipe is the fine-tuning of :mod:`.finetune` (the base's genes, medians and settings kept, the cells' genes it
lacks added) on ADAPT_SCHEDULE. With a budget, the trainer times its warm-up steps and fixes the number of steps
from their pace (:mod:`cellang.training`); the record keeps that number, so ``steps=N`` repeats the run exactly
(same cells, seed and steps: the same weights). An interrupted run keeps its state in a hidden folder beside the
output (``.NAME.run``) and continues with ``resume=True``; a finished model folder is never overwritten.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad

from cellang import checkpoints, paths
from cellang.cells.stream import H5adCells, MemoryCells
from cellang.defaults import ADAPT_MINUTES
from cellang.embedding.finetune import cell_encoder_kind, train_cell_encoder_streaming
from cellang.embedding.loading import CELL_MODELS, find_cell_model, shown_path, user_model_name
from cellang.errors import CellangError
from cellang.models.encoder import EncoderConfig
from cellang.progress import Progress, duration, report, time_left
from cellang.training import TrainConfig, portable_command_line

DEFAULT_MINUTES = ADAPT_MINUTES
MAX_MINUTES = 240.0  # exclusive
# Preparation (reading the base, one pass over the cells for their genes) and the final save happen outside the
# trainer's clock: this much of the budget is kept for them.
PREPARATION_S = 10.0
MIN_TRAINING_S = 20.0
MAX_STEPS = 100_000  # the bound on a budgeted run; the budget decides
# lr chosen on validation cells outside the leave-out benchmark (`cellang tune adapt`, results/tune_adapt.md: the
# binned encoder pretrained without wu2020_tcells / spectra_immune, adapted 600 steps; mean AvgBIO of the better
# view 0.370 at 5e-4, 0.418 at 1e-3, 0.409 at 2e-3, 0.392 at 4e-3).
ADAPT_SCHEDULE = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, eval_interval=50, eval_batches=4,
                             checkpoint_interval=50, max_steps=MAX_STEPS)


class AdaptError(CellangError, ValueError):
    """What was asked cannot be adapted (unknown base model, a budget out of range, an output that exists)."""


@dataclass(frozen=True)
class AdaptResult:
    """name: how the pages and :func:`~.embed.embed_cells` call the adapted model (my-<folder>); directory: its
    checkpoint folder; record: its training record; seconds: wall time of the whole call."""

    name: str
    directory: Path
    record: dict[str, Any]
    seconds: float


def base_checkpoint(model: str | Path) -> tuple[str, Path]:
    """(name, folder) of the encoder to adapt: a listed encoder's name (cells-binned, my-...) or a checkpoint folder."""
    if isinstance(model, Path) or "/" in str(model) or Path(str(model)).is_dir():
        folder = Path(model)
        if not checkpoints.checkpoint_exists(folder):
            raise AdaptError(f"{folder} is not a checkpoint folder (no {checkpoints.MODEL_FILE})")
        return folder.name, folder
    found = find_cell_model(str(model))
    if found is None:
        raise AdaptError(f"no cell encoder called {model!r}; the shipped ones are {', '.join(CELL_MODELS)}, and "
                         "your own are listed as my-<folder> from the models folder")
    return found.name, found.path


def slug(text: str) -> str:
    """Letters, digits, '-' and '_' only (a folder and model name part)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "cells"


def default_output(base_name: str, data_name: str, resume: bool = False, kind: str = "adapted") -> Path:
    """models/<base>-<kind>-<data name>, or with -2, -3 ... past the finished models there and (unless resuming,
    which continues the first of them) the unfinished runs."""
    stem = paths.user_model_dir() / f"{base_name.removeprefix('my-')}-{kind}-{slug(data_name)}"
    number = 1
    while True:
        candidate = stem if number == 1 else stem.with_name(f"{stem.name}-{number}")
        if not candidate.exists() and (resume or not run_folder(candidate).exists()):
            return candidate
        number += 1


def run_folder(out: Path) -> Path:
    """The hidden folder beside ``out`` where an unfinished adaptation keeps its state (the pages skip it)."""
    return out.parent / f".{out.name}.run"


def check_budget(minutes: float | None, steps: int | None) -> None:
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise AdaptError(f"steps must be a whole number >= 1, got {steps}")
        return
    if minutes is None or not (0 < minutes < MAX_MINUTES):
        raise AdaptError(f"minutes must be above 0 and below {MAX_MINUTES:g}, got {minutes}")


def adapt_encoder(cells: ad.AnnData | Sequence[str | Path], model: str | Path = "cells-binned", *,
                  minutes: float | None = DEFAULT_MINUTES, steps: int | None = None, out: str | Path | None = None,
                  seed: int = 0, resume: bool = False, device: str = "auto", data_name: str | None = None,
                  progress: Progress | None = None, lr: float | None = None,
                  contrastive_weight: float | None = None) -> AdaptResult:
    """Adapt ``model`` to ``cells`` without labels; see the module docstring.

    Parameters
    ----------
    cells : AnnData (var_names approved symbols; raw counts, log1p, TPM or FPKM) or paths of ``.h5ad`` files.
    model : the base encoder: a listed name (``cells-binned``, ``cells-rank``, ``my-...``) or a checkpoint folder.
    minutes : the time budget of the whole call; ignored when ``steps`` is given. PREPARATION_S of it is kept for
        the pass over the cells that finds their genes before training starts; on a file of very many cells that
        pass takes longer, and the call runs over by the difference.
    steps : an exact number of optimizer steps (reproducible to the bit for the same cells and seed).
    out : the new model's folder; must not exist (``resume`` continues an unfinished run into it). Default: in the
        models folder, ``<base>-adapted-<data name>``, numbered -2, -3 ... past the folders already there.
    seed : seeds the validation split, the masking and the batches.
    resume : continue the unfinished run of ``out`` (its ``.NAME.run`` folder) instead of refusing.
    data_name : names the cells in the default folder and the record (default: the file stem, or "cells").
    progress : ``progress(fraction, text)``, told the steps done and the time left.
    lr : the peak learning rate (default: ADAPT_SCHEDULE's, chosen on validation datasets by ``cellang tune
        adapt``); the schedule decays to a tenth of it.
    contrastive_weight : weight of the two-view contrastive loss while adapting (0 = masked modelling alone);
        default: the base model's.

    Returns
    -------
    AdaptResult: the model's name (``my-<folder>``), folder, record and the call's wall time.

    Raises AdaptError (bad budget, unknown model, an existing output), CellFileError / CellValuesError (cells that
    cannot be read), CheckpointKindError (a base that is not a cell encoder).
    """
    started = time.perf_counter()
    check_budget(minutes, steps)
    if lr is not None and not 0 < lr <= 0.1:
        raise AdaptError(f"lr must be above 0 and at most 0.1, got {lr}")
    if contrastive_weight is not None and not 0 <= contrastive_weight <= 10:
        raise AdaptError(f"contrastive_weight must be between 0 and 10, got {contrastive_weight}")
    base_name, base_folder = base_checkpoint(model)
    checkpoints.check_readable(base_folder)
    mode = cell_encoder_kind(base_folder)
    if isinstance(cells, ad.AnnData):
        source = MemoryCells(cells, name=data_name or "cells")
        data_name = data_name or "cells"
    else:
        files = [Path(p) for p in cells]
        source = H5adCells(files)
        data_name = data_name or (files[0].stem if len(files) == 1 else f"{files[0].stem}-and-{len(files) - 1}-more")
    out = Path(out) if out is not None else default_output(base_name, data_name, resume)
    run_dir = run_folder(out)
    if out.exists():
        raise AdaptError(f"{shown_path(out)} already exists; nothing was changed: choose another output folder "
                         "or delete that one")
    if resume and not checkpoints.checkpoint_exists(run_dir):
        resume = False  # nothing to continue: start afresh
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # an abandoned run of the same output; its model was never finished
    base_schedule = ADAPT_SCHEDULE if lr is None else dataclasses.replace(ADAPT_SCHEDULE, lr=lr, min_lr=lr / 10)
    if steps is not None:
        schedule = dataclasses.replace(base_schedule, max_steps=int(steps), seed=seed, device=device)
        budget_s = None
    else:
        budget_s = float(minutes) * 60.0
        training_s = max(MIN_TRAINING_S, budget_s - PREPARATION_S - (time.perf_counter() - started))
        schedule = dataclasses.replace(base_schedule, time_budget_s=training_s, seed=seed, device=device)

    def on_step(done: int, planned: int, seconds: float) -> None:
        left = (f"about {duration(max(0.0, budget_s - (time.perf_counter() - started)))} left" if budget_s
                else time_left(seconds, done, planned))
        report(progress, done / planned, f"adapting {base_name}: step {done:,} of {planned:,}, {left}")

    report(progress, 0.0, f"adapting {base_name} to {data_name}: reading the cells")
    adaptation = {"base_model": base_name, "base_folder": shown_path(base_folder), "data_name": data_name,
                  "minutes": None if steps is not None else float(minutes), "steps_asked": steps, "seed": seed,
                  "lr": schedule.lr, "contrastive_weight": contrastive_weight}
    result = train_cell_encoder_streaming(
        source, model_config=EncoderConfig(n_genes=0, mode=mode, n_bins=0 if mode == "rank" else EncoderConfig.n_bins),
        train_config=schedule, init_from=base_folder, run_dir=run_dir, export_dir=out, resume=resume,
        record_extra={"adaptation": adaptation, "command_line": portable_command_line(sys.argv)}, on_step=on_step,
        contrastive_weight=contrastive_weight)
    shutil.rmtree(run_dir, ignore_errors=True)  # finished: the state for resuming is no longer needed
    seconds = time.perf_counter() - started
    report(progress, 1.0, f"adapted {base_name} to {data_name} in {result.record['steps']:,} steps, "
                          f"{duration(seconds)}")
    return AdaptResult(user_model_name(out), out, result.record, seconds)
