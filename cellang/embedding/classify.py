"""Fine-tune a cell encoder to tell states apart (Geneformer's transfer learning): a classification head on the pooled
cell embedding, trained on labelled cells.

    from cellang.embedding.classify import fine_tune_classifier
    result = fine_tune_classifier(adata, "disease", model="cells-binned", minutes=5)
    result.metrics["test"]["macro_f1"], result.name      # a user model: embed and delete with it

In:  cells (var_names approved symbols; counts, log1p, TPM or FPKM), an ``obs`` column naming each cell's state (cell
     type, disease, time point), a base encoder (a listed name or a checkpoint folder), a time budget or a number of
     steps, a seed.
Out: :class:`ClassifierResult`: the held-out cells' macro-F1, accuracy and per-state F1; a user model folder (the
     fine-tuned encoder as a cell-encoder checkpoint, so every page lists it, plus ``classifier.safetensors``, the
     head) whose record holds the states, the split, the settings and the metrics.

The recipe. The cells are split per state (stratified, seeded) into training, validation and test cells; the test
cells are never trained on nor used to choose anything. First a linear probe (LP-FT, Kumar et al. 2022): a logistic
regression on the base encoder's frozen embeddings of the training cells, its pooling (mean or CLS, with "auto") and C
chosen on the validation cells, becomes the head's starting weights, and the starting point of early stopping. Then
each step trains the whole encoder and the head on BATCH_SIZE
training cells with cross-entropy weighted by inverse state frequency, so a rare state counts as much as a common
one. Every EVAL_EVERY steps the validation cells' macro-F1 is measured; the best weights so far are kept, and training
stops after PATIENCE evaluations without a better one, at ``max_steps`` or at the time budget. The kept weights are
scored once on the test cells.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from cellang import checkpoints
from cellang.defaults import FINE_TUNE_MINUTES
from cellang.device import pick_device, seed_everything
from cellang.embedding.loading import load_cell_encoder_checkpoint, user_model_name
from cellang.errors import CellangError
from cellang.models.encoder import CellEncoder, pool
from cellang.progress import Progress, duration, report
from cellang.tokenizers.cells import TokenizedCells, pad_rows

CLASSIFIER_FILE = "classifier.safetensors"
POOLINGS = ("mean", "cls")
PROBE_C = (0.01, 0.1, 1.0, 10.0)  # the linear probe's inverse regularisation, chosen on the validation cells
DEFAULT_MINUTES = FINE_TUNE_MINUTES
TEST_FRACTION = 0.2  # of each state's cells: scored once, at the end
VAL_FRACTION = 0.15  # of each state's cells: early stopping
MIN_CELLS_PER_STATE = 3  # one each for training, validation and test
BATCH_SIZE = 32
ENCODER_LR = 1e-4  # the pretrained weights move slowly ...
HEAD_LR = 1e-3  # ... the new head quickly
WEIGHT_DECAY = 0.01
EVAL_EVERY = 20
PATIENCE = 6
MAX_STEPS = 20_000  # the bound on a budgeted run; the budget or early stopping ends it first


class ClassifierError(CellangError, ValueError):
    """The states cannot be learnt as asked (a missing column, too few cells of a state, a budget out of range)."""


@dataclass(frozen=True)
class ClassifierSplit:
    """Row numbers of the training, validation and test cells (each sorted)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class ClassifierResult:
    """name: how pages and the API call the fine-tuned model (my-<folder>), None when not saved; directory: its
    folder; states: the head's classes in order; metrics: {"validation": ..., "test": ...} each with macro_f1,
    accuracy and per_state F1; record: what was saved beside the weights; model: the classifier, in eval mode."""

    name: str | None
    directory: Path | None
    states: list[str]
    split: ClassifierSplit
    metrics: dict[str, Any]
    record: dict[str, Any]
    model: StateClassifier


class StateClassifier(nn.Module):
    """A cell encoder and a linear head on its pooled state (the mean over gene positions, or the CLS state)."""

    def __init__(self, encoder: CellEncoder, n_states: int, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:  # "auto" is resolved by the linear probe before a classifier is made
            raise ClassifierError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.encoder, self.pooling = encoder, pooling
        self.head = nn.Linear(encoder.config.n_embd, n_states)

    def forward(self, tokens: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) tokens (and value bins for a binned encoder) -> (B, n_states) logits."""
        cls, mean = pool(self.encoder.hidden_states(tokens, values), tokens)
        return self.head(cls if self.pooling == "cls" else mean)


def too_rare_states(labels: Sequence[str]) -> list[str]:
    """The states with fewer than MIN_CELLS_PER_STATE cells (sorted), which :func:`stratified_split` refuses."""
    states, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    return sorted(str(s) for s in states[counts < MIN_CELLS_PER_STATE])


def stratified_split(labels: Sequence[str], *, test_fraction: float = TEST_FRACTION,
                     val_fraction: float = VAL_FRACTION, seed: int = 0) -> ClassifierSplit:
    """Each state's cells shuffled (seeded) and cut into test, validation and training parts, at least one cell
    each; ClassifierError names a state with fewer than MIN_CELLS_PER_STATE cells."""
    labels = np.asarray(labels).astype(str)
    if not (0 < test_fraction < 1 and 0 < val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ClassifierError("the test and validation fractions must be above 0 and add up to less than 1")
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for number, state in enumerate(sorted(set(labels.tolist()))):
        rows = np.flatnonzero(labels == state)
        if rows.size < MIN_CELLS_PER_STATE:
            raise ClassifierError(f"the state {state!r} has {rows.size} cell{'s' if rows.size != 1 else ''}; each "
                                  f"state needs at least {MIN_CELLS_PER_STATE} (training, validation and test): merge "
                                  "or drop it")
        rows = rows[np.random.default_rng((seed, 7, number)).permutation(rows.size)]
        n_test = max(1, round(test_fraction * rows.size))
        n_val = max(1, min(round(val_fraction * rows.size), rows.size - n_test - 1))
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test:n_test + n_val])
        parts[0].append(rows[n_test + n_val:])
    train, validation, test = (np.sort(np.concatenate(p)) for p in parts)
    return ClassifierSplit(train, validation, test)


def state_weights(labels: np.ndarray, n_states: int) -> torch.Tensor:
    """Cross-entropy weights n / (n_states x count): every state weighs the same in the loss."""
    counts = np.bincount(labels, minlength=n_states).astype(float)
    return torch.tensor(labels.size / (n_states * np.maximum(counts, 1.0)), dtype=torch.float32)


def _batch(cells: TokenizedCells, rows: Sequence[int], device: torch.device) -> tuple[torch.Tensor, ...]:
    tokens = pad_rows([cells.genes[i] for i in rows]).to(device)
    if cells.values is None:
        return (tokens,)
    return tokens, pad_rows([cells.values[i] for i in rows]).to(device)


@torch.no_grad()
def predict(model: StateClassifier, cells: TokenizedCells, rows: Sequence[int] | None = None, *,
            batch_size: int = 64) -> np.ndarray:
    """(len(rows), n_states) state probabilities of the cells (all when rows is None), in eval mode."""
    rows = np.arange(len(cells)) if rows is None else np.asarray(rows)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [F.softmax(model(*_batch(cells, rows[i:i + batch_size], device)).float(), -1).cpu().numpy()
           for i in range(0, rows.size, batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), dtype=np.float32)


def scores(truth: np.ndarray, predicted: np.ndarray, states: Sequence[str]) -> dict[str, Any]:
    """macro_f1 (over the states present in ``truth``), accuracy and per-state F1 of predicted state numbers."""
    from sklearn.metrics import f1_score

    present = np.unique(truth)
    per_state = f1_score(truth, predicted, labels=present, average=None, zero_division=0)
    return {"macro_f1": float(np.mean(per_state)), "accuracy": float(np.mean(truth == predicted)),
            "cells": int(truth.size), "per_state": {states[s]: float(f) for s, f in zip(present, per_state)}}


@torch.no_grad()
def pooled_features(encoder: CellEncoder, cells: TokenizedCells, rows: np.ndarray,
                    batch_size: int = 64) -> dict[str, np.ndarray]:
    """{"cls": ..., "mean": ...} (len(rows), n_embd) embeddings of the cells by a frozen encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    parts: dict[str, list[np.ndarray]] = {"cls": [], "mean": []}
    for start in range(0, rows.size, batch_size):
        cls, mean = encoder.embed(*_batch(cells, rows[start:start + batch_size], device))
        parts["cls"].append(cls.float().cpu().numpy())
        parts["mean"].append(mean.float().cpu().numpy())
    encoder.train(was_training)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def linear_probe(encoder: CellEncoder, cells: TokenizedCells, targets: np.ndarray, split: ClassifierSplit,
                 states: Sequence[str], poolings: Sequence[str], seed: int) -> tuple[str, nn.Linear, float]:
    """(pooling, head, validation macro-F1) of the best logistic regression on the frozen embeddings of the
    training cells (balanced class weights; pooling and C chosen on the validation cells), as a linear head."""
    from sklearn.linear_model import LogisticRegression

    train, validation = pooled_features(encoder, cells, split.train), pooled_features(encoder, cells,
                                                                                       split.validation)
    best: tuple[float, str, Any] | None = None
    for pooling in poolings:
        for c in PROBE_C:
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
            model.fit(train[pooling], targets[split.train])
            f1 = scores(targets[split.validation], model.predict(validation[pooling]), states)["macro_f1"]
            if best is None or f1 > best[0]:
                best = (f1, pooling, model)
    f1, pooling, model = best  # type: ignore[misc]
    weight = np.zeros((len(states), encoder.config.n_embd), dtype=np.float32)
    bias = np.zeros(len(states), dtype=np.float32)
    classes = model.classes_.astype(int)
    if classes.size == 2 and model.coef_.shape[0] == 1:  # sklearn's binary form: one row for the second class
        weight[classes[1]], bias[classes[1]] = model.coef_[0] / 2, model.intercept_[0] / 2
        weight[classes[0]], bias[classes[0]] = -model.coef_[0] / 2, -model.intercept_[0] / 2
    else:
        weight[classes], bias[classes] = model.coef_, model.intercept_
    head = nn.Linear(encoder.config.n_embd, len(states))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return pooling, head, float(f1)


def check_states(adata: ad.AnnData, column: str) -> np.ndarray:
    """The cells' states as strings; ClassifierError for a missing column, missing values or a single state."""
    if column not in adata.obs:
        raise ClassifierError(f"the cells have no obs column {column!r}; the columns are "
                              f"{', '.join(map(str, adata.obs.columns)) or 'none'}")
    values = adata.obs[column]
    if values.isna().any():
        raise ClassifierError(f"{int(values.isna().sum()):,} cells have no {column!r}: drop them or fill them in")
    labels = values.astype(str).to_numpy()
    if len(set(labels)) < 2:
        raise ClassifierError(f"{column!r} has one state ({labels[0] if labels.size else 'none'}); a classifier "
                              "needs at least two")
    return labels


def fine_tune_classifier(adata: ad.AnnData, column: str, model: str | Path = "cells-binned", *,
                         minutes: float | None = DEFAULT_MINUTES, max_steps: int | None = None, pooling: str = "auto",
                         out: str | Path | None = None, save: bool = True, seed: int = 0, device: str | None = None,
                         test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION,
                         data_name: str | None = None, progress: Progress | None = None) -> ClassifierResult:
    """Fine-tune ``model`` to predict ``adata.obs[column]``; see the module docstring.

    minutes: the training budget (None: no budget, ``max_steps`` or early stopping ends the run); max_steps: at most
    this many steps (None: MAX_STEPS). With max_steps and no budget the run is the same for the same cells and seed.
    out: the model's folder (must not exist; default ``<models>/<base>-classifier-<column>``, numbered past those
    there); save False: nothing written (benchmarks). device: a preference for pick_device (None: cl.settings).
    pooling: "mean", "cls", or "auto" (the one whose linear probe scores better on the validation cells).
    """
    from cellang.embedding.adapt import base_checkpoint, default_output  # training code: loaded only to train

    began = time.perf_counter()
    labels = check_states(adata, column)
    if minutes is not None and not 0 < minutes < 240:
        raise ClassifierError(f"minutes must be above 0 and below 240, got {minutes}")
    if max_steps is not None and (int(max_steps) != max_steps or max_steps < 1):
        raise ClassifierError(f"max_steps must be a whole number >= 1, got {max_steps}")
    base_name, base_folder = base_checkpoint(model)
    out_folder = None
    if save:
        out_folder = Path(out) if out is not None else default_output(base_name, column, kind="classifier")
        if out_folder.exists():
            raise ClassifierError(f"{out_folder} exists; choose a new folder (a model is never overwritten)")
    if pooling not in (*POOLINGS, "auto"):
        raise ClassifierError(f"pooling must be one of {', '.join(POOLINGS)} or auto; got {pooling!r}")
    states = sorted(set(labels.tolist()))
    targets = np.searchsorted(states, labels)
    split = stratified_split(labels, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)

    seed_everything(seed)
    encoder, tokenizer, base_record = load_cell_encoder_checkpoint(base_folder)
    encoder = copy.deepcopy(encoder)
    target = pick_device(device)
    encoder.to(target)
    report(progress, 0.0, f"Tokenising {adata.n_obs:,} cells...")
    cells = tokenizer.tokenize(adata)
    report(progress, 0.02, "Linear probe on the frozen embeddings...")
    pooling, probe_head, probe_f1 = linear_probe(encoder, cells, targets, split, states,
                                                 POOLINGS if pooling == "auto" else (pooling,), seed)
    classifier = StateClassifier(encoder, len(states), pooling)
    classifier.head = probe_head.to(target)
    classifier.train()
    optimizer = torch.optim.AdamW([{"params": classifier.encoder.parameters(), "lr": ENCODER_LR},
                                   {"params": classifier.head.parameters(), "lr": HEAD_LR}],
                                  weight_decay=WEIGHT_DECAY)
    weights = state_weights(targets[split.train], len(states)).to(target)
    rng = np.random.default_rng((seed, 11))
    order, cursor = rng.permutation(split.train), 0
    limit = MAX_STEPS if max_steps is None else int(max_steps)
    deadline = None if minutes is None else began + 60.0 * minutes
    best_f1, best_step, waited, step, out_of_time = probe_f1, 0, 0, 0, False
    best_state = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
    history = [{"step": 0, "train_loss": None, "validation_macro_f1": round(probe_f1, 5)}]
    while step < limit:
        if cursor + BATCH_SIZE > order.size:
            order, cursor = rng.permutation(split.train), 0
        rows = order[cursor:cursor + BATCH_SIZE]
        cursor += BATCH_SIZE
        logits = classifier(*_batch(cells, rows, target))
        loss = F.cross_entropy(logits.float(), torch.as_tensor(targets[rows], device=target), weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
        optimizer.step()
        step += 1
        out_of_time = deadline is not None and time.perf_counter() > deadline
        if step % EVAL_EVERY == 0 or step == limit or out_of_time:
            f1 = scores(targets[split.validation], predict(classifier, cells, split.validation).argmax(1),
                        states)["macro_f1"]
            history.append({"step": step, "train_loss": round(float(loss.detach()), 5), "validation_macro_f1": round(f1, 5)})
            if f1 > best_f1:
                best_f1, best_step, waited = f1, step, 0
                best_state = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
            else:
                waited += 1
            left = (deadline - time.perf_counter()) if deadline is not None else None
            report(progress, min(0.95, step / limit if deadline is None else 1 - max(left or 0, 0) / (60 * minutes)),
                   f"Step {step:,}: validation macro-F1 {f1:.3f} (best {best_f1:.3f})"
                   + (f", about {duration(max(left, 0.0))} left" if left is not None else ""))
            if waited >= PATIENCE or out_of_time:
                break
    classifier.load_state_dict(best_state)
    classifier.eval()
    metrics = {name: scores(targets[rows], predict(classifier, cells, rows).argmax(1), states)
               for name, rows in (("validation", split.validation), ("test", split.test))}
    stopped = "early stopping" if waited >= PATIENCE else "time budget" if out_of_time else "max_steps"
    record = {
        "model": base_record.get("model"),
        "task": "classification",
        "fine_tuning": {"init_from": base_name, "base_model": base_record.get("model"), "task": "classification"},
        "classifier": {"column": column, "states": states, "pooling": pooling,
                       "cells": {"train": int(split.train.size), "validation": int(split.validation.size),
                                 "test": int(split.test.size)},
                       "test_cells_sha256": hashlib.sha256(json.dumps(
                           [str(n) for n in adata.obs_names[split.test]]).encode()).hexdigest(),
                       "metrics": metrics, "best_step": best_step, "stopped_by": stopped,
                       "linear_probe_validation_macro_f1": round(probe_f1, 5)},
        "data": {"kind": "anndata", "name": data_name or "cells"},
        "n_cells": int(adata.n_obs),
        "steps": step,
        "seed": seed,
        "budget_minutes": minutes,
        "settings": {"batch_size": BATCH_SIZE, "encoder_lr": ENCODER_LR, "head_lr": HEAD_LR,
                     "weight_decay": WEIGHT_DECAY, "eval_every": EVAL_EVERY, "patience": PATIENCE,
                     "test_fraction": test_fraction, "val_fraction": val_fraction},
        "history": history,
        "seconds": round(time.perf_counter() - began, 1),
        "tokenizer": tokenizer.vocabulary.settings,
    }
    classifier.to("cpu")
    name = None
    if out_folder is not None:
        checkpoints.save_checkpoint(out_folder, classifier.encoder, config=classifier.encoder.config_dict(),
                                    vocabulary_json=tokenizer.vocabulary.to_json(), record=record)
        save_file({k: v.contiguous() for k, v in classifier.head.state_dict().items()},
                  str(out_folder / CLASSIFIER_FILE), metadata={"states": json.dumps(states), "pooling": pooling})
        name = user_model_name(out_folder)
    report(progress, 1.0, f"Test macro-F1 {metrics['test']['macro_f1']:.3f} on {split.test.size:,} held-out cells.")
    return ClassifierResult(name, out_folder, states, split, metrics, record, classifier)


@dataclass(frozen=True)
class ClassifierHead:
    """A saved classifier's head (pooled embedding -> state logits) and what it was trained on."""

    head: nn.Linear
    states: list[str]
    pooling: str
    column: str


def classifier_head(folder: str | Path) -> ClassifierHead | None:
    """The state classifier head saved in an encoder folder, or None when the folder holds a plain encoder."""
    folder = Path(folder)
    if not (folder / CLASSIFIER_FILE).is_file():
        return None
    _, _, record = checkpoints.read_metadata(folder)
    about = record.get("classifier") or {}
    weights = load_file(str(folder / CLASSIFIER_FILE))
    head = nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
    head.load_state_dict(weights)
    return ClassifierHead(head.eval(), [str(s) for s in about.get("states", [])], str(about.get("pooling", "mean")),
                          str(about.get("column", "")))


def load_classifier(folder: str | Path) -> tuple[StateClassifier, Any, list[str]]:
    """(classifier in eval mode on the CPU, its tokeniser, its states) from a folder :func:`fine_tune_classifier`
    wrote; ClassifierError when the folder holds no classifier head."""
    saved = classifier_head(folder)
    if saved is None:
        raise ClassifierError(f"{folder} holds no {CLASSIFIER_FILE}: it is an encoder, not a state classifier")
    encoder, tokenizer, _ = load_cell_encoder_checkpoint(folder)
    model = StateClassifier(encoder, len(saved.states), saved.pooling)
    model.head = saved.head
    return model.eval(), tokenizer, saved.states


__all__ = ["CLASSIFIER_FILE", "ClassifierError", "ClassifierHead", "ClassifierResult", "ClassifierSplit",
           "StateClassifier", "check_states", "classifier_head", "fine_tune_classifier", "load_classifier", "predict",
           "scores", "state_weights", "stratified_split", "too_rare_states"]
