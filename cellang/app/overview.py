"""What the app has loaded: device, corpus, gene table and shipped checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from cellang import checkpoints
from cellang.corpus import load_corpus
from cellang.device import describe_device, pick_device
from cellang.genes import load_resolver


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


def overview() -> Overview:
    """Collect the facts the home page shows; loads the corpus and gene table once per process."""
    corpus = load_corpus()
    return Overview(
        device=describe_device(pick_device()),
        corpus_sets=len(corpus),
        corpus_genes=len(corpus.genes),
        corpus_sources=len(corpus.manifest["sources"]),
        gene_table_genes=len(load_resolver()),
        models=[ModelStatus(name, title, checkpoints.why_missing(name) is None)
                for name, title in checkpoints.SHIPPED.items()],
    )
