"""Train the cell encoders: atlas cells -> tokeniser fit on training cells -> masked batches -> encoder.

`cellang train` cells-binned` and `cells-rank` are thin CLIs over :func:`train_cell_encoder`;
:func:`load_cell_encoder_checkpoint` reads the result back (the app and benchmarks go through
``cellang.embedding.embed``).

Pathway initialisation (`init_from_pathway`): encoder genes that the pathway GPT also knows start
from its gene embeddings (`transformer.wte.weight` rows 4.. of checkpoints/pathway-gpt). When the
encoder is narrower than the GPT (128 vs 192), the GPT's gene embeddings are projected on their top
principal components (deterministic, and the projection that keeps the most of their geometry);
a wider encoder is refused. The copied rows are rescaled to the encoder's initial spread (std 0.02)
so they do not swamp the value or position embeddings they are added to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch
from safetensors import safe_open

from cellang import checkpoints
from cellang.batching import holdout
from cellang.device import seed_everything
from cellang.embedding.loading import Tokenizer
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.paths import CHECKPOINT_DIR
from cellang.tokenizers import binned, rank
from cellang.tokenizers.binned import BinnedBatcher, BinnedTokenizer
from cellang.tokenizers.cells import N_SPECIAL, CellVocabulary, TokenizedCells, subset_rows
from cellang.tokenizers.rank import RankBatcher, RankTokenizer
from cellang.training import HistoryEntry, TrainConfig, fit_and_export

MODEL_NAMES = {"binned": "cells-binned", "rank": "cells-rank"}
PATHWAY_CHECKPOINT = CHECKPOINT_DIR / "pathway-gpt"
PATHWAY_SPECIALS = 4  # <pad> <bos> <eos> <unk> precede the genes in the pathway vocabulary
INIT_STD = 0.02  # the encoder's embedding initialisation (CellEncoder._init_weights)
VAL_FRACTION = 0.05  # cells held out for the validation loss
MASK_RATIOS = {"binned": binned.MASK_RATIO, "rank": rank.MASK_RATIO}
# `cellang train` cells-<mode>` without options: the shipped models' schedules. binned: 12000 steps of
# 32 cells (~130 epochs of the 7-dataset atlas, 83 min on 2 CPU cores; with the per-dataset vocabulary
# the CLS scored mean AvgBIO 0.561 at 4000 steps and 0.622 at 12000, over six labelled datasets); rank:
# 7000 steps (~82 epochs of the 6-dataset atlas, 84 min; mean-pooled AvgBIO 0.494 at 1200 steps, 0.561
# at 3000, 0.604 at 7000, over five).
_CELL_SCHEDULE = TrainConfig(lr=2e-3, min_lr=2e-4, warmup_steps=50, eval_interval=100, checkpoint_interval=200)
TRAINING = {"binned": dataclasses.replace(_CELL_SCHEDULE, max_steps=12000),
            "rank": dataclasses.replace(_CELL_SCHEDULE, max_steps=7000)}


@dataclass
class CellTrainingResult:
    model: CellEncoder
    tokenizer: Tokenizer
    history: list[HistoryEntry]
    record: dict[str, Any]


def load_atlas_corpus(names: Sequence[str] | None = None) -> tuple[list[ad.AnnData], str]:
    """(the atlas datasets, in build order or as named; sha256 of the atlas manifest file)."""
    from cellang.atlas import ATLAS_DIR, atlas_datasets, load_atlas_dataset

    chosen = list(names) if names else atlas_datasets()
    digest = hashlib.sha256((ATLAS_DIR / "manifest.json").read_bytes()).hexdigest()
    return [load_atlas_dataset(name) for name in chosen], digest


def split_cells(n_cells: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) cell indices, sorted: a seeded `fraction` (at least one cell) held out."""
    return holdout(n_cells, fraction, seed, stream=3, what="cells")


def fit_tokenizer(mode: str, adatas: Sequence[ad.AnnData], *, max_len: int, n_hvg: int = binned.N_HVG,
                  n_bins: int = EncoderConfig.n_bins, min_cells: int = rank.MIN_CELLS,
                  hvg_selection: str = binned.HVG_SELECTION, input_panel: int = 0,
                  extra_genes: Sequence[str] = (), window: int = 0) -> Tokenizer:
    """The mode's tokeniser fitted on `adatas` (training cells only); input_panel, extra_genes: binned mode only;
    window: rank mode only (training windows, see :mod:`cellang.tokenizers.rank`)."""
    if mode == "binned":
        return BinnedTokenizer.fit(adatas, n_hvg=n_hvg, n_bins=n_bins, max_len=max_len, hvg_selection=hvg_selection,
                                   input_panel=input_panel, extra_genes=extra_genes)
    if mode == "rank":
        return RankTokenizer.fit(adatas, max_len=max_len, min_cells=min_cells, window=window)
    raise ValueError(f"mode must be 'binned' or 'rank', got {mode!r}")


def pathway_gene_embeddings(vocabulary: CellVocabulary, n_embd: int,
                            directory: str | Path = PATHWAY_CHECKPOINT) -> tuple[np.ndarray, torch.Tensor]:
    """(token ids of the vocabulary genes the pathway GPT knows, their initial rows (k, n_embd)).

    See the module docstring: principal-component projection when n_embd < the GPT's width, then
    rescaled to std INIT_STD over the copied rows.
    """
    directory = Path(directory)
    with safe_open(str(directory / checkpoints.MODEL_FILE), framework="pt") as handle:
        # Tied weights are stored once; the metadata names the stored alias (lm_head.weight).
        key = "transformer.wte.weight"
        if key not in handle.keys():
            key = (handle.metadata() or {}).get(key, "lm_head.weight")
        weights = handle.get_tensor(key).double()
    pathway_genes = pathway_vocabulary_genes(directory)
    source = weights[PATHWAY_SPECIALS:]
    if source.shape[0] != len(pathway_genes):
        raise ValueError(f"{directory.name}: {source.shape[0]} embedding rows for {len(pathway_genes)} genes")
    width = source.shape[1]
    if n_embd > width:
        raise ValueError(f"cannot initialise {n_embd}-dim gene embeddings from {width}-dim pathway embeddings")
    if n_embd < width:
        centred = source - source.mean(0, keepdim=True)
        _, _, vt = torch.linalg.svd(centred, full_matrices=False)
        components = vt[:n_embd]
        # SVD signs are arbitrary: fix each component so its largest loading is positive.
        signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
        source = centred @ (components * signs).T
    index = {gene: i for i, gene in enumerate(pathway_genes)}
    matched = [(N_SPECIAL + k, index[g]) for k, g in enumerate(vocabulary.genes) if g in index]
    token_ids = np.array([t for t, _ in matched], dtype=np.int64)
    rows = source[[s for _, s in matched]] if matched else source[:0]
    if len(matched) > 1:
        rows = rows * (INIT_STD / rows.std().clamp(min=1e-12))
    return token_ids, rows.float()


def init_from_pathway(model: CellEncoder, vocabulary: CellVocabulary,
                      directory: str | Path = PATHWAY_CHECKPOINT) -> dict[str, Any]:
    """Copy pathway-GPT gene embeddings into the encoder's gene embedding; returns what was done."""
    token_ids, rows = pathway_gene_embeddings(vocabulary, model.config.n_embd, directory)
    with torch.no_grad():
        model.transformer.wte.weight[torch.from_numpy(token_ids)] = rows
    weights_sha256 = hashlib.sha256((Path(directory) / checkpoints.MODEL_FILE).read_bytes()).hexdigest()
    return {"pathway_checkpoint": Path(directory).name, "pathway_weights_sha256": weights_sha256,
            "genes_initialised": int(len(token_ids)),
            "genes_in_vocabulary": len(vocabulary.genes),
            "projection": "identity" if rows.shape[1] == _pathway_width(directory) else "principal components"}


def pathway_vocabulary_genes(directory: str | Path = PATHWAY_CHECKPOINT) -> list[str]:
    """The genes of a pathway model checkpoint's vocabulary."""
    return list(json.loads((Path(directory) / checkpoints.VOCABULARY_FILE).read_text(encoding="utf-8"))["genes"])


def _pathway_width(directory: str | Path) -> int:
    return int(json.loads((Path(directory) / checkpoints.CONFIG_FILE).read_text(encoding="utf-8"))["n_embd"])


def make_batcher(mode: str, cells: TokenizedCells, vocabulary: CellVocabulary, *, batch_size: int,
                 seed: int, drop_last: bool, mask_ratio: float | None = None,
                 n_bins: int = EncoderConfig.n_bins, views: int = 1) -> BinnedBatcher | RankBatcher:
    """mask_ratio: None = the mode's MASK_RATIOS; a rank vocabulary's training window comes from its settings;
    views: 2 for a model with a contrastive loss (:func:`views_of`)."""
    mask_ratio = MASK_RATIOS[mode] if mask_ratio is None else mask_ratio
    if mode == "binned":
        return BinnedBatcher(cells, n_bins=n_bins, vocabulary_size=len(vocabulary), batch_size=batch_size,
                             seed=seed, drop_last=drop_last, mask_ratio=mask_ratio, views=views)
    return RankBatcher(cells, vocabulary_size=len(vocabulary), batch_size=batch_size, seed=seed,
                       drop_last=drop_last, mask_ratio=mask_ratio, window=int(vocabulary.settings.get("window", 0)),
                       views=views)


def views_of(config: EncoderConfig) -> int:
    """How many views of each cell a batch for this model holds: 2 when it learns contrastively."""
    return 2 if config.contrastive_weight > 0 else 1


def train_cell_encoder(
    adatas: Sequence[ad.AnnData],
    *,
    model_config: EncoderConfig,
    train_config: TrainConfig,
    n_hvg: int = binned.N_HVG,
    hvg_selection: str = binned.HVG_SELECTION,
    input_panel: int = 0,
    pathway_genes: bool = False,
    min_cells: int = rank.MIN_CELLS,
    mask_ratio: float | None = None,
    window: int = 0,
    val_fraction: float = VAL_FRACTION,
    init_pathway: str | Path | None = None,
    run_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    resume: bool = False,
    record_extra: dict[str, Any] | None = None,
) -> CellTrainingResult:
    """Train a cell encoder on the cells of `adatas` (var = approved symbols, obs value_kind).

    model_config: its mode picks the tokeniser; its max_len and n_bins are the tokeniser's; its
        n_genes is replaced by the fitted vocabulary's size.
    A seeded `val_fraction` of all cells is held out; the tokeniser (HVGs / gene medians) is fitted
    on the remaining training cells only. mask_ratio: None = the mode's MASK_RATIOS. input_panel (binned
    mode): each dataset is read through its own most variable vocabulary genes (see :mod:`.binned`). window (rank
    mode): train on windows of this many tokens of each cell's max_len (see :mod:`cellang.tokenizers.rank`).
    pathway_genes (binned mode): the pathway model's genes (init_pathway, else PATHWAY_CHECKPOINT) join the
    vocabulary, so a gene the training cells lack still has a token (and, with init_pathway, a meaning).
    init_pathway: a pathway GPT checkpoint directory to initialise gene embeddings from, or None.
    run_dir / resume / export_dir: as for the pathway GPT (resumable run, shipped model).
    """
    mode, seed = model_config.mode, train_config.seed
    sizes = [a.n_obs for a in adatas]
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    train_index, val_index = split_cells(int(offsets[-1]), val_fraction, seed)

    def rows_of(index: np.ndarray, number: int) -> np.ndarray:
        inside = index[(index >= offsets[number]) & (index < offsets[number + 1])]
        return inside - offsets[number]

    train_sets = [subset_rows(a, rows_of(train_index, k)) for k, a in enumerate(adatas)]
    tokenizer = fit_tokenizer(mode, [a for a in train_sets if a.n_obs], max_len=model_config.max_len,
                              n_hvg=n_hvg, n_bins=model_config.n_bins, min_cells=min_cells,
                              hvg_selection=hvg_selection, input_panel=input_panel, window=window,
                              extra_genes=pathway_vocabulary_genes(init_pathway or PATHWAY_CHECKPOINT) if pathway_genes
                              else ())
    vocabulary = tokenizer.vocabulary
    everything = TokenizedCells.concat([tokenizer.tokenize(a) for a in adatas])
    train_cells, val_cells = everything.subset(train_index), everything.subset(val_index)
    batch_size = train_config.batch_size
    views = views_of(model_config)
    train_batches = make_batcher(mode, train_cells, vocabulary, batch_size=batch_size, seed=seed,
                                 drop_last=True, mask_ratio=mask_ratio, n_bins=model_config.n_bins, views=views)
    val_batcher = make_batcher(mode, val_cells, vocabulary, batch_size=batch_size, seed=seed,
                               drop_last=False, mask_ratio=mask_ratio, n_bins=model_config.n_bins, views=views)

    config = dataclasses.replace(model_config, n_genes=len(vocabulary))
    seed_everything(seed)  # initialisation depends on the seed only
    model = CellEncoder(config)
    pathway_info = init_from_pathway(model, vocabulary, init_pathway) if init_pathway is not None else None

    datasets = [str(a.obs["dataset"].iloc[0]) if "dataset" in a.obs and a.n_obs else f"#{k}"
                for k, a in enumerate(adatas)]
    static_record = {
        "model": MODEL_NAMES[mode],
        "parameters": model.num_parameters(),
        "vocabulary_genes": len(vocabulary.genes),
        "tokenizer": vocabulary.settings,
        "datasets": {name: {"cells": size, "train": int(len(rows_of(train_index, k))),
                            "validation": int(len(rows_of(val_index, k)))}
                     for k, (name, size) in enumerate(zip(datasets, sizes))},
        "n_train_cells": int(len(train_index)),
        "n_val_cells": int(len(val_index)),
        "val_fraction": val_fraction,
        "mean_tokens_per_cell": round(float(np.mean([len(g) for g in everything.genes])), 1),
        "mask_ratio": train_batches.mask_ratio,
        "init_from_pathway": pathway_info,
        **(record_extra or {}),
    }

    history, record = fit_and_export(model, train_batches, val_batcher, train_config,
                                     static_record=static_record, vocabulary_json=vocabulary.to_json(),
                                     run_dir=run_dir, export_dir=export_dir, resume=resume)
    model.eval()
    return CellTrainingResult(model=model, tokenizer=tokenizer, history=history, record=record)
