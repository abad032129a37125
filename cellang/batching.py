"""Seeded hold-out splits, and epoch-based batch sources that the trainer can resume at any micro-batch.

A subclass says how many items it has and how to turn the items of one batch into tensors. Every
epoch draws a new item order from a generator seeded by (seed, epoch, 0), and each batch draws its
own randomness (gene orders, masks) from one seeded by (seed, epoch, 1, batch), so batch number n is
a pure function of n: iteration is reproducible and resumes without replaying the past.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

Batch = tuple[torch.Tensor, ...]


def holdout(n: int, fraction: float, seed: int, stream: int, what: str = "items") -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices of ``n`` items, each sorted: a seeded ``fraction`` (at least one) held out.
    ``stream`` keeps the splits of different data (gene sets, cells) independent for one seed."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"need at least two {what} to hold one out for validation")
    order = np.random.default_rng((seed, stream)).permutation(n)
    n_held = max(1, round(fraction * n))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def split_validation(gene_sets: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, validation) gene sets, in their order: the validation part comes from the train split,
    so the test split stays untouched until benchmarking."""
    kept, held = holdout(len(gene_sets), fraction, seed, stream=2, what="gene sets")
    return [gene_sets[i] for i in kept], [gene_sets[i] for i in held]


class EpochBatcher:
    """Base class: subclasses set ``self._items`` (a list) and implement ``_make_batch``."""

    _items: list[Any]

    def __init__(self, *, n_items: int, batch_size: int, seed: int, drop_last: bool = True,
                 what: str = "items") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if n_items == 0:
            raise ValueError(f"{type(self).__name__} needs at least one of its {what}")
        if drop_last and n_items < batch_size:
            raise ValueError(f"{n_items} {what} cannot fill one batch of {batch_size} with drop_last=True")
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last

    def __len__(self) -> int:
        """Number of items (gene sets, cells, ...)."""
        return len(self._items)

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(len(self._items), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """Item indices of each batch of an epoch: a fresh seeded order of the items."""
        order = np.random.default_rng((self.seed, epoch, 0)).permutation(len(self._items))
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.batches_per_epoch)]

    def _make_batch(self, items: list[Any], rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of one epoch, starting at batch number `start` within it."""
        plan = self._epoch_plan(epoch)
        for index in range(start, self.batches_per_epoch):
            rng = np.random.default_rng((self.seed, epoch, 1, index))
            yield self._make_batch([self._items[i] for i in plan[index]], rng)

    def stream(self, start: int = 0) -> Iterator[Batch]:
        """Endless batches over successive epochs, starting at global batch number `start`."""
        epoch, index = divmod(start, self.batches_per_epoch)
        while True:
            yield from self.epoch_batches(epoch, index)
            epoch, index = epoch + 1, 0

    def __call__(self, start: int = 0) -> Iterator[Batch]:
        """Same as `stream`, so a batcher can be handed to the trainer as its batch source."""
        return self.stream(start)
