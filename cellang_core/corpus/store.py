"""The built pathway corpus as the app, the trainer and the benchmarks see it.

``load_corpus()`` reads ``data/corpus`` (GMT + metadata table + manifest) into a :class:`Corpus`:
a list of :class:`Pathway` objects with search, statistics and GMT export.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd

from cellang_core.corpus.build import GMT_NAME, MANIFEST_NAME, META_COLUMNS, META_NAME
from cellang_core.gmt import GeneSet, gmt_bytes, read_gmt
from cellang_core.paths import CORPUS_DIR

SEARCH_FIELDS = ("any", "name", "description", "gene")


@dataclass(frozen=True)
class Pathway:
    """One corpus gene set with its provenance and split."""

    name: str
    description: str
    source: str
    licence: str
    non_commercial: bool
    genes: tuple[str, ...]
    split: str  # "train" or "test"
    group: int  # near-duplicate group id; sets sharing it are near-twins
    benchmark: bool  # member of the fixed benchmark sample (a subset of the test split)


def vocabulary_genes(pathways: Iterable[Pathway]) -> list[str]:
    """The gene universe of the pathway models (GPT vocabulary, DAE columns), sorted: every gene of the
    train AND test splits, so test sets can be scored; the test sets themselves are never trained on."""
    return sorted({g for p in pathways if p.split in ("train", "test") for g in p.genes})


class Corpus:
    """Pathways in build order, with lookups by name and gene."""

    def __init__(self, pathways: Sequence[Pathway], manifest: dict, manifest_sha256: str = ""):
        self.pathways = list(pathways)
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self._by_name = {p.name: p for p in self.pathways}

    def __len__(self) -> int:
        return len(self.pathways)

    def __getitem__(self, name: str) -> Pathway:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no pathway named {name!r} in the corpus") from None

    @cached_property
    def genes(self) -> list[str]:
        """Every gene in the corpus, sorted."""
        return sorted({g for p in self.pathways for g in p.genes})

    def split(self, name: str) -> list[Pathway]:
        return [p for p in self.pathways if p.split == name]

    def benchmark(self) -> list[Pathway]:
        return [p for p in self.pathways if p.benchmark]

    @cached_property
    def sources(self) -> list[str]:
        """Source keys in build order."""
        return [s["key"] for s in self.manifest.get("sources", [])]

    def search(self, query: str, field: str = "any", sources: Collection[str] | None = None,
               limit: int | None = None) -> list[Pathway]:
        """Pathways matching ``query`` (case-insensitive), optionally only from ``sources``.

        ``field``: ``name`` or ``description`` match a substring; ``gene`` matches a whole gene symbol;
        ``any`` tries all three. An empty query matches everything.
        """
        if field not in SEARCH_FIELDS:
            raise ValueError(f"unknown search field {field!r}: choose one of {', '.join(SEARCH_FIELDS)}")
        text = query.strip().lower()
        pool = self.pathways if sources is None else [p for p in self.pathways if p.source in sources]
        if not text:
            hits = pool
        else:
            gene = text.upper()
            hits = [
                p for p in pool
                if (field in ("any", "name") and text in p.name.lower())
                or (field in ("any", "description") and text in p.description.lower())
                or (field in ("any", "gene") and gene in p.genes)
            ]
        return hits[:limit] if limit is not None else hits

    def to_frame(self, pathways: Iterable[Pathway] | None = None) -> pd.DataFrame:
        """One row per pathway (genes as a space-separated string)."""
        rows = [
            {"name": p.name, "description": p.description, "source": p.source, "size": len(p.genes),
             "split": p.split, "benchmark": p.benchmark, "licence": p.licence, "genes": " ".join(p.genes)}
            for p in (self.pathways if pathways is None else pathways)
        ]
        return pd.DataFrame(rows, columns=["name", "description", "source", "size", "split", "benchmark",
                                           "licence", "genes"])

    def source_table(self) -> pd.DataFrame:
        """Sets, genes and licence per source, plus a total row, as built."""
        rows = [
            {"source": s["key"], "title": s["title"], "sets": s["sets_after_step"].get("unique", 0),
             "genes": s["genes"], "licence": s["licence"]}
            for s in self.manifest.get("sources", [])
        ]
        totals = self.manifest.get("totals", {})
        rows.append({"source": "all", "title": "after removing identical sets across sources",
                     "sets": totals.get("sets", len(self)), "genes": totals.get("genes", len(self.genes)),
                     "licence": ""})
        return pd.DataFrame(rows)

    @staticmethod
    def to_gmt(pathways: Iterable[Pathway], compress: bool = False) -> bytes:
        """GMT bytes for download; the description field keeps the description."""
        return gmt_bytes([GeneSet(p.name, p.description, p.genes) for p in pathways], compress=compress)


def _read_meta(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if tuple(reader.fieldnames or ()) != META_COLUMNS:
            raise ValueError(f"{path.name}: unexpected columns {reader.fieldnames}")
        return list(reader)


@lru_cache(maxsize=4)
def load_corpus(directory: Path = CORPUS_DIR) -> Corpus:
    """Read a built corpus folder; raises FileNotFoundError naming the build command when missing."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"no corpus in {directory.name}/: run `python scripts/build_corpus.py` to build it"
        )
    manifest_bytes = manifest_path.read_bytes()
    manifest = json.loads(manifest_bytes)
    sources = {s["key"]: s for s in manifest["sources"]}
    gene_sets = {s.name: s for s in read_gmt(directory / GMT_NAME).gene_sets}
    pathways = []
    for row in _read_meta(directory / META_NAME):
        gene_set = gene_sets[row["name"]]
        source = sources[row["source"]]
        pathways.append(Pathway(
            name=gene_set.name, description=gene_set.description, source=row["source"],
            licence=source["licence"], non_commercial=bool(source["non_commercial"]), genes=gene_set.genes,
            split=row["split"], group=int(row["group"]), benchmark=row["benchmark"] == "1",
        ))
    return Corpus(pathways, manifest, hashlib.sha256(manifest_bytes).hexdigest())
