"""What the app has loaded: device, corpus, gene table and shipped checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cellang_core.checkpoints import checkpoint_exists
from cellang_core.corpus import load_corpus
from cellang_core.device import describe_device, pick_device
from cellang_core.genes import load_resolver
from cellang_core.paths import CHECKPOINT_DIR

SHIPPED_MODELS = {
    "pathway-gpt": "Pathway language model (decoder-only transformer over gene sets)",
    "cells-binned": "Binned-expression cell encoder (scGPT-style)",
    "cells-rank": "Rank-value cell encoder (Geneformer-style)",
}


@dataclass(frozen=True)
class ModelStatus:
    key: str
    title: str
    available: bool


@dataclass(frozen=True)
class Overview:
    device: str
    corpus_sets: int
    corpus_genes: int
    corpus_sources: int
    gene_table_genes: int
    models: list[ModelStatus]


def overview(checkpoint_dir: Path = CHECKPOINT_DIR) -> Overview:
    """Collect the facts the home page shows; loads the corpus and gene table once per process."""
    corpus = load_corpus()
    return Overview(
        device=describe_device(pick_device()),
        corpus_sets=len(corpus),
        corpus_genes=len(corpus.genes),
        corpus_sources=len(corpus.manifest["sources"]),
        gene_table_genes=len(load_resolver()),
        models=[ModelStatus(key, title, checkpoint_exists(checkpoint_dir / key))
                for key, title in SHIPPED_MODELS.items()],
    )
