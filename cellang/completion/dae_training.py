"""Train the gene-set denoising autoencoder (models/dae.py): gene sets -> masked batches -> SetDAE.

`cellang train` pathway-dae` is a thin CLI over `train_dae`; `load_dae` reads the result back
(the completion baselines wrap it as `completion.baselines.DAECompleter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellang.batching import Batch, EpochBatcher
from cellang.completion.completer import masked_count
from cellang.completion.training import VAL_FRACTION, validation_slice  # every pathway model holds out the same sets
from cellang.device import seed_everything
from cellang.models.dae import DAEConfig, SetDAE
from cellang.training import TrainConfig, fit_and_export

MODEL_NAME = "pathway-dae"
MASK_RATIO_RANGE = (0.5, 0.9)  # fraction of each training set hidden, drawn uniformly per row
# `cellang train` pathway-dae` without options. lr 1e-2: on the real corpus 500 steps reach val loss
# 7.15 (1e-3: ~8.7, 3e-3: 8.31, 3e-2: 7.65).
TRAINING = TrainConfig(max_steps=1500, batch_size=128, lr=1e-2, min_lr=1e-3, warmup_steps=100, eval_interval=100)

GeneSets = Sequence[Sequence[str]]


class DAEBatcher(EpochBatcher):
    """(inputs, targets) multi-hot batches of shape (batch, len(genes)) for the DAE.

    For each set, a fraction r drawn uniformly from `mask_ratio_range` (per row) of its members is
    hidden: round(r * size) members, clipped so that at least one is hidden and one kept.
    inputs = multi-hot of the kept members, targets = multi-hot of the hidden ones.

    Every epoch draws a new order of sets from a generator seeded by (seed, epoch, 0), and each
    batch draws its masks from one seeded by (seed, epoch, 1, batch), so batch number n is a pure
    function of n: iteration is reproducible and resumes from any position.
    """

    def __init__(
        self,
        gene_sets: GeneSets,
        genes: Sequence[str],
        *,
        batch_size: int,
        mask_ratio_range: tuple[float, float] = MASK_RATIO_RANGE,
        seed: int,
        drop_last: bool = True,
    ) -> None:
        """gene_sets: sets of gene symbols, all in `genes` and each with >= 2 distinct members;
        genes: the gene universe, in column order; drop_last: skip each epoch's final short batch."""
        low, high = mask_ratio_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"mask_ratio_range must satisfy 0 <= low <= high <= 1, got {mask_ratio_range}")
        super().__init__(n_items=len(gene_sets), batch_size=batch_size, seed=seed, drop_last=drop_last,
                         what="gene sets")
        index = {gene: i for i, gene in enumerate(genes)}
        if len(index) != len(genes):
            raise ValueError("genes must be unique")
        self._items: list[np.ndarray] = []
        for gene_set in gene_sets:
            members = sorted(set(gene_set))
            if len(members) < 2:
                raise ValueError(f"a set needs >= 2 distinct genes to keep one and hide one, got {members}")
            missing = [g for g in members if g not in index]
            if missing:
                raise KeyError(f"genes not in the gene universe ({len(genes)} genes): {missing[:5]}")
            self._items.append(np.array([index[g] for g in members], dtype=np.int64))
        self.n_genes = len(genes)
        self.mask_ratio_range = (float(low), float(high))

    def _make_batch(self, sets: list[np.ndarray], rng: np.random.Generator) -> Batch:
        inputs = torch.zeros(len(sets), self.n_genes)
        targets = torch.zeros(len(sets), self.n_genes)
        low, high = self.mask_ratio_range
        for row, members in enumerate(sets):
            ratio = rng.uniform(low, high)
            n_hidden = masked_count(len(members), ratio)
            shuffled = members[rng.permutation(len(members))]
            targets[row, torch.from_numpy(shuffled[:n_hidden])] = 1.0
            inputs[row, torch.from_numpy(shuffled[n_hidden:])] = 1.0
        return inputs, targets


def train_dae(
    train_sets: GeneSets,
    genes: Sequence[str],
    *,
    config: DAEConfig,
    train_config: TrainConfig,
    export_dir: str | Path | None = None,
    val_fraction: float = VAL_FRACTION,
    record_extra: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    mask_ratio_range: tuple[float, float] = MASK_RATIO_RANGE,
) -> tuple[SetDAE, dict[str, Any]]:
    """Train a SetDAE to recover the hidden members of training sets; returns (model, record).

    train_sets: gene sets (all genes in `genes`); `val_fraction` of them (the shared slice) is held out
        for the validation loss.
    genes: the gene universe in column order; config.n_genes must equal len(genes).
    export_dir: the finished model (no optimizer state) is written here, ready to ship.
    record_extra: provenance merged into the training record (corpus hash, command line, ...).
    run_dir, resume: optional resumable checkpoints (with optimizer state), as for the GPT.
    """
    genes = list(genes)
    if config.n_genes != len(genes):
        raise ValueError(f"config.n_genes {config.n_genes} != number of genes {len(genes)}")
    seed = train_config.seed
    train, val = validation_slice(train_sets, val_fraction)
    train_batches = DAEBatcher(train, genes, batch_size=train_config.batch_size,
                               mask_ratio_range=mask_ratio_range, seed=seed, drop_last=True)
    val_batcher = DAEBatcher(val, genes, batch_size=train_config.batch_size,
                             mask_ratio_range=mask_ratio_range, seed=seed, drop_last=False)

    seed_everything(seed)  # model initialisation depends on the seed only
    model = SetDAE(config)

    static_record = {
        "model": MODEL_NAME,
        "parameters": model.num_parameters(),
        "n_genes": len(genes),
        "n_train_sets": len(train),
        "n_val_sets": len(val),
        "val_fraction": val_fraction,
        "mask_ratio_range": list(mask_ratio_range),
        **(record_extra or {}),
    }

    _, record = fit_and_export(model, train_batches, val_batcher, train_config,
                               static_record=static_record, vocabulary_json={"genes": genes},
                               run_dir=run_dir, export_dir=export_dir, resume=resume)
    return model, record
