"""Train the retrieval reader (models/reranker.py) leave-group-out on the corpus's training sets.

An example is one training set: a random 10-50% of it is the prompt, the datastore is every training
set except the set's own near-duplicate group (so the model learns to use neighbours as it must on an
unseen pathway), the candidates and their features come from completion/neighbours.py, and the
targets are the candidates that are held-out members. `cellang train` pathway-rerank` is the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellang.batching import Batch, EpochBatcher, holdout
from cellang.completion import training as pathway_training
from cellang.completion.neighbours import FEATURES, Datastore
from cellang.completion.rerank import MODEL_NAME
from cellang.corpus import Corpus
from cellang.device import seed_everything
from cellang.models.reranker import CandidateReranker, RerankerConfig
from cellang.progress import Progress, report
from cellang.training import TrainConfig, fit_and_export

PROMPT_FRACTION_RANGE = (0.1, 0.5)
N_EXAMPLES = 8000  # training sets drawn as examples (features take about 10 ms each)
VAL_FRACTION = 0.05  # examples held out for the validation loss
# about 10 passes over the examples; 1,674 s on 2 CPU cores beside other jobs (validation loss 4.07 -> 4.00)
TRAINING = TrainConfig(max_steps=1200, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_steps=100, eval_interval=200,
                       checkpoint_interval=200)


@dataclass(frozen=True)
class RerankExample:
    features: np.ndarray  # (candidates, len(FEATURES)) float32
    targets: np.ndarray  # (candidates,) bool: a held-out member of the set


def make_examples(store: Datastore, set_rows: Sequence[int], *, seed: int,
                  prompt_fraction_range: tuple[float, float] = PROMPT_FRACTION_RANGE,
                  progress: Progress | None = None) -> list[RerankExample]:
    """One example per datastore row in ``set_rows``, its own group left out of the datastore; rows
    whose prompt finds no candidate are skipped. Example i depends only on (seed, row)."""
    low, high = prompt_fraction_range
    examples = []
    for done, row in enumerate(set_rows):
        rng = np.random.default_rng((seed, int(row)))
        members = store.members[row].indices
        if len(members) < 2:
            continue
        shown = min(max(1, round(rng.uniform(low, high) * len(members))), len(members) - 1)
        order = rng.permutation(members)
        prompt, held = np.sort(order[:shown]), set(order[shown:].tolist())
        found = store.features(prompt, exclude_group=int(store.groups[row]))
        if len(found.columns):
            examples.append(RerankExample(found.values, np.array([c in held for c in found.columns.tolist()])))
        if (done + 1) % 200 == 0 or done + 1 == len(set_rows):
            report(progress, (done + 1) / len(set_rows), f"examples: {done + 1} of {len(set_rows)} sets")
    return examples


def leave_group_out_datastore(corpus: Corpus, universe: Sequence[str]) -> tuple[Datastore, list[int]]:
    """(the corpus's training sets with their near-duplicate groups, the rows never drawn as examples: the
    validation pathways that tuning and the benchmark's validation part complete)."""
    from cellang.completion.tuning import validation_split

    train = corpus.split("train")
    validation = {name for name, _ in validation_split(corpus, pathway_training.VAL_FRACTION).pathways}
    store = Datastore([p.genes for p in train], universe, [p.group for p in train])
    return store, [i for i, p in enumerate(train) if p.name in validation]


def example_rows(store: Datastore, n_examples: int, exclude_rows: Sequence[int], seed: int) -> list[int]:
    """The datastore rows drawn as examples: ``n_examples`` of them (seeded, sorted), never ``exclude_rows``."""
    allowed = np.setdiff1d(np.arange(store.members.shape[0]), np.asarray(exclude_rows, dtype=np.int64))
    rows = np.random.default_rng((seed, 3)).choice(allowed, size=min(n_examples, len(allowed)), replace=False)
    return np.sort(rows).tolist()


class RerankBatcher(EpochBatcher):
    """(features (B, C, F), keep (B, C), targets (B, C)) batches, C the most candidates in the batch."""

    def __init__(self, examples: Sequence[RerankExample], *, batch_size: int, seed: int, drop_last: bool = True):
        super().__init__(n_items=len(examples), batch_size=batch_size, seed=seed, drop_last=drop_last,
                         what="examples")
        self._items = list(examples)

    def _make_batch(self, examples: list[RerankExample], rng: np.random.Generator) -> Batch:
        width = max(len(e.targets) for e in examples)
        features = torch.zeros(len(examples), width, len(FEATURES))
        keep = torch.zeros(len(examples), width, dtype=torch.bool)
        targets = torch.zeros(len(examples), width)
        for row, example in enumerate(examples):
            n = len(example.targets)
            features[row, :n] = torch.from_numpy(example.features)
            keep[row, :n] = True
            targets[row, :n] = torch.from_numpy(example.targets.astype(np.float32))
        return features, keep, targets


def feature_scale(examples: Sequence[RerankExample]) -> tuple[list[float], list[float]]:
    """Per-feature mean and standard deviation over every candidate of ``examples``."""
    stacked = np.vstack([e.features for e in examples]).astype(np.float64)
    return stacked.mean(axis=0).tolist(), stacked.std(axis=0).tolist()


def train_reranker(store: Datastore, *, config: RerankerConfig, train_config: TrainConfig,
                   n_examples: int = N_EXAMPLES, exclude_rows: Sequence[int] = (),
                   export_dir: str | Path | None = None, run_dir: str | Path | None = None, resume: bool = False,
                   record_extra: dict[str, Any] | None = None,
                   progress: Progress | None = None) -> tuple[CandidateReranker, dict[str, Any]]:
    """Draw ``n_examples`` datastore rows (never ``exclude_rows``, e.g. validation pathways), build their
    leave-group-out examples, and train; ``config``'s feature scale is filled from the examples."""
    seed = train_config.seed
    examples = make_examples(store, example_rows(store, n_examples, exclude_rows, seed), seed=seed, progress=progress)
    kept, held = holdout(len(examples), VAL_FRACTION, seed, stream=4, what="examples")
    train = [examples[i] for i in kept]
    mean, std = feature_scale(train)
    config = RerankerConfig(**{**config.__dict__, "feature_mean": mean, "feature_std": std,
                               "n_features": len(FEATURES)})
    seed_everything(seed)
    model = CandidateReranker(config)
    static_record = {"model": MODEL_NAME, "parameters": model.num_parameters(), "features": list(FEATURES),
                     "n_examples": len(examples), "n_train_examples": len(train), "n_val_examples": len(held),
                     "prompt_fraction_range": list(PROMPT_FRACTION_RANGE),
                     "datastore_sets": int(store.members.shape[0]), **(record_extra or {})}
    _, record = fit_and_export(
        model, RerankBatcher(train, batch_size=train_config.batch_size, seed=seed),
        RerankBatcher([examples[i] for i in held], batch_size=train_config.batch_size, seed=seed, drop_last=False),
        train_config, static_record=static_record, vocabulary_json={"features": list(FEATURES)},
        run_dir=run_dir, export_dir=export_dir, resume=resume)
    return model, record
