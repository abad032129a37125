"""Train the masked-set transformer (models/set_transformer.py): gene sets -> prompts -> SetTransformer.

Each training example is one set: a random 10-50% of its members is the prompt, the rest are the
targets, and the loss is one softmax over the vocabulary. `cellang train` pathway-set` is the CLI;
`completion.set_model` loads the result for completion and the benchmark.

Co-occurrence distillation (``cooccurrence_weight`` > 0): each example also asks the model for the genes that
share the most training sets with its prompt (co-occurrence's scores over the non-prompt genes, normalised to
sum to the weight), as a second cross-entropy. The held-out members of one curated set say little about the
widely shared genes that other kinds of sets (TF regulons, ChIP targets, phenotype lists) are full of; the
counts over every training set do, and the model learns them in its weights. Chosen on outside-style
validation files (README, *Outside the corpus*); ``init_from`` continues from a trained checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cellang import checkpoints
from cellang.batching import Batch, EpochBatcher
from cellang.completion.loading import load_set_model
from cellang.completion.set_model import MODEL_NAME
from cellang.completion.training import VAL_FRACTION, validation_slice  # every pathway model holds out the same sets
from cellang.device import seed_everything
from cellang.models.set_transformer import SetTransformer, SetTransformerConfig, prompt_tokens
from cellang.training import TrainConfig, fit_and_export

PROMPT_FRACTION_RANGE = (0.1, 0.5)  # share of a training set shown, drawn uniformly per example
POOL = 32  # batches whose sets are sorted by size together (see SetPromptBatcher._epoch_plan)
# `cellang train` pathway-set` without options: about 700 sets/s on 2 CPU cores at the default sizes,
# so 15,000 steps of 128 sets (about 88 passes over the training sets) take about 45 minutes.
TRAINING = TrainConfig(max_steps=15000, batch_size=128, lr=3e-3, min_lr=3e-4, warmup_steps=300, eval_interval=1000)

GeneSets = Sequence[Sequence[str]]


class CooccurrenceTeacher:
    """For a batch of prompts, co-occurrence's scores over the genes (how many training sets each shares with
    the prompt's genes, summed over them), zero on the prompt's own genes, each row normalised to ``weight``."""

    def __init__(self, member_columns: Sequence[np.ndarray], n_genes: int, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"the co-occurrence weight must be > 0, got {weight}")
        indptr = np.cumsum([0, *(len(columns) for columns in member_columns)])
        indices = np.concatenate(member_columns) if len(member_columns) else np.zeros(0, np.int64)
        self.members = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                                     shape=(len(member_columns), n_genes))
        self.members_t = self.members.T.tocsr()
        self.n_genes, self.weight = n_genes, float(weight)

    def __call__(self, prompts: Sequence[np.ndarray]) -> torch.Tensor:
        rows = np.repeat(np.arange(len(prompts)), [len(p) for p in prompts])
        columns = np.concatenate(prompts) if len(prompts) else np.zeros(0, np.int64)
        multi_hot = sp.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)),
                                  shape=(len(prompts), self.n_genes))
        scores = ((multi_hot @ self.members_t) @ self.members).toarray()
        scores[rows, columns] = 0.0
        totals = scores.sum(axis=1, keepdims=True)
        return torch.from_numpy(self.weight * scores / np.maximum(totals, 1e-12)).float()


class SetPromptBatcher(EpochBatcher):
    """(tokens, targets) batches: per set, a prompt of round(f * size) members (f uniform in
    ``prompt_fraction_range``, at least one member shown and one held out, at most ``max_prompt``
    shown) and the multi-hot of the others; with a ``teacher``, (tokens, targets, its weights for the
    prompts). Batch n of epoch e depends only on (seed, e, n)."""

    def __init__(self, gene_sets: GeneSets, genes: Sequence[str], config: SetTransformerConfig, *,
                 batch_size: int, seed: int, drop_last: bool = True,
                 prompt_fraction_range: tuple[float, float] = PROMPT_FRACTION_RANGE,
                 teacher: CooccurrenceTeacher | None = None) -> None:
        low, high = prompt_fraction_range
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"prompt_fraction_range must satisfy 0 < low <= high < 1, got {prompt_fraction_range}")
        super().__init__(n_items=len(gene_sets), batch_size=batch_size, seed=seed, drop_last=drop_last,
                         what="gene sets")
        index = {gene: i for i, gene in enumerate(genes)}
        self._items: list[np.ndarray] = []
        for gene_set in gene_sets:
            members = sorted({index[g] for g in gene_set if g in index})
            if len(members) < 2:
                raise ValueError(f"a set needs >= 2 vocabulary genes to show one and hold one out: {list(gene_set)[:5]}")
            self._items.append(np.array(members, dtype=np.int64))
        self.config = config
        self.prompt_fraction_range = (float(low), float(high))
        self.teacher = teacher

    @property
    def member_columns(self) -> list[np.ndarray]:
        """Each set's sorted vocabulary ids."""
        return list(self._items)

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """A seeded order, then sets of similar size batched together within pools of ``POOL`` batches
        (a batch is as wide as its longest prompt, so mixing sizes would mostly compute padding), and
        the batches shuffled."""
        rng = np.random.default_rng((self.seed, epoch, 0))
        order = rng.permutation(len(self._items))
        pool = POOL * self.batch_size
        sizes = np.array([len(members) for members in self._items])
        order = np.concatenate([chunk[np.argsort(sizes[chunk], kind="stable")]
                                for chunk in np.split(order, range(pool, len(order), pool))])
        batches = [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.batches_per_epoch)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _make_batch(self, sets: list[np.ndarray], rng: np.random.Generator) -> Batch:
        low, high = self.prompt_fraction_range
        prompts, targets = [], torch.zeros(len(sets), self.config.n_genes)
        for row, members in enumerate(sets):
            shown = min(max(1, round(rng.uniform(low, high) * len(members))), len(members) - 1,
                        self.config.max_prompt)
            shuffled = members[rng.permutation(len(members))]
            prompts.append(shuffled[:shown])
            targets[row, torch.from_numpy(shuffled[shown:])] = 1.0
        if self.teacher is not None:
            return prompt_tokens(prompts, self.config), targets, self.teacher(prompts)
        return prompt_tokens(prompts, self.config), targets


def check_initial_checkpoint(directory: str | Path) -> None:
    """Refuse, before any work, a folder that holds no readable pathway-set checkpoint (ValueError naming it)."""
    checkpoints.check_readable(directory)
    kind = checkpoints.read_metadata(directory)[2].get("model")
    if kind != MODEL_NAME:
        raise ValueError(f"{Path(directory).name}/ holds a {kind} checkpoint, not a {MODEL_NAME} one to continue")


def initial_weights(model: SetTransformer, genes: Sequence[str], directory: str | Path) -> dict[str, Any]:
    """Load a trained checkpoint's weights into ``model`` (same config and genes, else ValueError); returns what
    the new record says about it: its folder name, weights' sha256, and its own command, steps and losses."""
    check_initial_checkpoint(directory)
    trained, trained_genes, record = load_set_model(checkpoints.require(MODEL_NAME, directory))
    if trained.config != model.config:
        raise ValueError(f"{Path(directory).name}/ has config {trained.config}, this run {model.config}")
    if list(trained_genes) != list(genes):
        raise ValueError(f"{Path(directory).name}/ was trained on another gene vocabulary; train from scratch")
    model.load_state_dict(trained.state_dict())
    kept = ("command_line", "steps", "final_train_loss", "final_val_loss", "wall_time_s", "cooccurrence_weight",
            "init_from")
    return {"checkpoint": Path(directory).name, "weights_sha256": checkpoints.weights_sha256(directory),
            **{key: record[key] for key in kept if key in record}}


def train_set_model(train_sets: GeneSets, genes: Sequence[str], *, config: SetTransformerConfig,
                    train_config: TrainConfig, export_dir: str | Path | None = None,
                    run_dir: str | Path | None = None, resume: bool = False, val_fraction: float = VAL_FRACTION,
                    cooccurrence_weight: float = 0.0, init_from: str | Path | None = None,
                    record_extra: dict[str, Any] | None = None) -> tuple[SetTransformer, dict[str, Any]]:
    """Train a SetTransformer on ``train_sets`` (``val_fraction`` held out, whatever the seed, for the validation
    loss, the same sets the GPT holds out); returns (model, record). Checkpoints as for every model.
    ``cooccurrence_weight`` > 0 adds the co-occurrence teacher (counted over the training part only);
    ``init_from`` starts from a trained checkpoint's weights instead of a fresh initialisation."""
    genes = list(genes)
    if config.n_genes != len(genes):
        raise ValueError(f"config.n_genes {config.n_genes} != number of genes {len(genes)}")
    seed = train_config.seed
    train, val = validation_slice(train_sets, val_fraction)
    train_batches = SetPromptBatcher(train, genes, config, batch_size=train_config.batch_size, seed=seed)
    if cooccurrence_weight > 0:
        train_batches.teacher = CooccurrenceTeacher(train_batches.member_columns, len(genes), cooccurrence_weight)
    val_batcher = SetPromptBatcher(val, genes, config, batch_size=train_config.batch_size, seed=seed,
                                   drop_last=False, teacher=train_batches.teacher)
    seed_everything(seed)  # model initialisation depends on the seed only
    model = SetTransformer(config)
    initial = initial_weights(model, genes, init_from) if init_from is not None else None
    static_record = {
        "model": MODEL_NAME, "parameters": model.num_parameters(), "n_genes": len(genes),
        "n_train_sets": len(train), "n_val_sets": len(val), "val_fraction": val_fraction,
        "prompt_fraction_range": list(PROMPT_FRACTION_RANGE), "cooccurrence_weight": float(cooccurrence_weight),
        **({"init_from": initial} if initial else {}), **(record_extra or {}),
    }
    _, record = fit_and_export(model, train_batches, val_batcher, train_config, static_record=static_record,
                               vocabulary_json={"genes": genes}, run_dir=run_dir, export_dir=export_dir,
                               resume=resume)
    return model, record


@torch.no_grad()
def average_set_models(directories: Sequence[str | Path], train_sets: GeneSets, genes: Sequence[str], *,
                       export_dir: str | Path | None = None, val_fraction: float = VAL_FRACTION, seed: int = 0,
                       record_extra: dict[str, Any] | None = None) -> tuple[SetTransformer, dict[str, Any]]:
    """The uniform average of trained checkpoints' weights (a "model soup": runs continued from one
    checkpoint stay in one basin, so their mean is a working model of its own, at one model's cost).
    Every checkpoint must share the config and ``genes``; the record lists each (as ``init_from`` does) and the
    average's validation loss on the shared held-out slice, with the members' co-occurrence weight when they
    agree. Returns (model in eval mode, record); written to ``export_dir`` like a trained model."""
    if len(directories) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(directories)}")
    check_initial_checkpoint(directories[0])  # a pathway-set checkpoint before its config is read
    model = SetTransformer(SetTransformerConfig(**checkpoints.read_metadata(directories[0])[0]))
    members, states = [], []
    for directory in directories:
        members.append(initial_weights(model, genes, directory))
        states.append({key: value.detach().clone().float() for key, value in model.state_dict().items()})
    model.load_state_dict({key: sum(state[key] for state in states) / len(states) for key in states[0]})
    model.eval()
    weights = {member.get("cooccurrence_weight", 0.0) for member in members}
    weight = weights.pop() if len(weights) == 1 else 0.0
    train, val = validation_slice(train_sets, val_fraction)
    batch_size, teacher = TRAINING.batch_size, None
    if weight > 0:  # the members' teacher, counted over the training part as in training
        members_of = SetPromptBatcher(train, genes, model.config, batch_size=batch_size, seed=seed, drop_last=False)
        teacher = CooccurrenceTeacher(members_of.member_columns, len(genes), weight)
    val_batcher = SetPromptBatcher(val, genes, model.config, batch_size=batch_size, seed=seed, drop_last=False,
                                   teacher=teacher)
    losses = [float(model(*batch)[1]) for batch in val_batcher.epoch_batches(0)]
    record = {
        "model": MODEL_NAME, "parameters": model.num_parameters(), "n_genes": len(genes),
        "n_train_sets": len(train), "n_val_sets": len(val), "val_fraction": val_fraction,
        "cooccurrence_weight": float(weight), "averaged_from": members, "steps": 0,
        "final_val_loss": float(np.mean(losses)) if losses else None, **(record_extra or {}),
    }
    if export_dir is not None:
        checkpoints.save_checkpoint(export_dir, model, config=model.config_dict(),
                                    vocabulary_json={"genes": list(genes)}, record=record)
    return model, record
