"""The built pathway corpus as the app, the trainer and the benchmarks see it.

``load_corpus()`` reads ``data/corpus`` (GMT + metadata table + manifest) into a :class:`Corpus`:
a list of :class:`Pathway` objects with search, statistics and GMT export. ``load_corpus(EXTENDED_CORPUS_DIR)``
reads the extended corpus, which is not shipped: ``cellang build corpus --extended`` builds it.
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

from cellang.corpus.build import GMT_NAME, MANIFEST_NAME, META_COLUMNS, META_NAME
from cellang.corpus.sources import ALL_SOURCES, TERMS
from cellang.gmt import GeneSet, gmt_bytes, read_gmt
from cellang.paths import CORPUS_DIR, DATA_DIR

SEARCH_FIELDS = ("any", "name", "description", "gene")
# Built locally only (never shipped): the default sources plus those whose terms are not "open".
EXTENDED_CORPUS_DIR = DATA_DIR / "corpus-extended"
BUILD_COMMAND = "cellang build corpus"
EXTENDED_BUILD_COMMAND = f"{BUILD_COMMAND} --extended"
# Columns of Corpus.source_table(); "sets" counts the sets in the corpus (train + test).
SOURCE_COLUMNS = ("source", "title", "corpus", "terms", "terms mean", "licence", "licence basis", "sets", "train",
                  "test", "benchmark", "kept out near benchmark", "genes", "added in version")


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
        self._position = {p.name: i for i, p in enumerate(self.pathways)}

    def __len__(self) -> int:
        return len(self.pathways)

    def __getitem__(self, name: str) -> Pathway:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no pathway named {name!r} in the corpus") from None

    def position(self, name: str) -> int:
        """Where the pathway ``name`` stands in build order (0 first); KeyError when absent."""
        self[name]
        return self._position[name]

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
        """One row per pathway (genes as a space-separated string), with its source's licence and terms."""
        terms = self.source_terms
        rows = [
            {"name": p.name, "description": p.description, "source": p.source, "size": len(p.genes),
             "split": p.split, "benchmark": p.benchmark, "licence": p.licence, "terms": terms.get(p.source, ""),
             "genes": " ".join(p.genes)}
            for p in (self.pathways if pathways is None else pathways)
        ]
        return pd.DataFrame(rows, columns=["name", "description", "source", "size", "split", "benchmark",
                                           "licence", "terms", "genes"])

    @cached_property
    def source_records(self) -> list[dict]:
        """One dict per built source (build order) with every field the app shows, old manifests filled in.

        Keys: key, title, licence, non_commercial, terms, basis, corpus ("default"/"extended"), added_in,
        genes, sets (in the corpus: train + test), train, test, benchmark, kept_out (sets left out of the
        corpus because they resemble a benchmark pathway). A manifest written before terms existed gets
        "non-commercial" for a non-commercial source, else "open"; its basis and version come from the
        source catalogue when the catalogue names the same licence.
        """
        catalogue = {s.key: s for s in ALL_SOURCES}
        records = []
        for entry in self.manifest.get("sources", []):
            key = entry["key"]
            licence = entry.get("licence", "")
            non_commercial = bool(entry.get("non_commercial", False))
            terms = entry.get("terms") or ("non-commercial" if non_commercial else "open")
            known = catalogue.get(key)
            same = known is not None and known.licence == licence
            steps = entry.get("sets_after_step", {})
            in_corpus = steps["train"] + steps["test"] if "train" in steps and "test" in steps else steps.get("unique", 0)
            records.append({
                "key": key, "title": entry.get("title", key), "licence": licence, "non_commercial": non_commercial,
                "terms": terms, "basis": entry.get("licence_basis") or (known.basis if same else ""),
                "corpus": entry.get("corpus") or ("default" if terms == "open" else "extended"),
                "added_in": int(entry.get("added_in") or (known.added_in if same else 1)),
                "genes": int(entry.get("genes", 0)), "sets": int(in_corpus), "train": int(steps.get("train", 0)),
                "test": int(steps.get("test", 0)), "benchmark": int(steps.get("benchmark", 0)),
                "kept_out": int(entry.get("kept_out_near_benchmark", 0)),
            })
        return records

    @cached_property
    def source_terms(self) -> dict[str, str]:
        """{source key: its terms (a key of :data:`~cellang.corpus.sources.TERMS`)}."""
        return {r["key"]: r["terms"] for r in self.source_records}

    @cached_property
    def terms(self) -> list[str]:
        """The terms of the built sources, in the order of ``TERMS`` (unknown ones after)."""
        present = set(self.source_terms.values())
        return [t for t in TERMS if t in present] + sorted(present - set(TERMS))

    def source_table(self) -> pd.DataFrame:
        """Per built source: its terms, licence, basis and corpus, and its sizes: sets in the corpus, in the
        train and test splits and the benchmark, kept out near the benchmark, and genes; plus a total row."""
        rows = [
            {"source": r["key"], "title": r["title"], "corpus": r["corpus"], "terms": r["terms"],
             "terms mean": TERMS.get(r["terms"], ""), "licence": r["licence"], "licence basis": r["basis"],
             "sets": r["sets"], "train": r["train"], "test": r["test"], "benchmark": r["benchmark"],
             "kept out near benchmark": r["kept_out"], "genes": r["genes"], "added in version": r["added_in"]}
            for r in self.source_records
        ]
        totals = self.manifest.get("totals", {})
        rows.append({"source": "all", "title": "after removing identical sets across sources", "corpus": "",
                     "terms": "", "terms mean": "", "licence": "", "licence basis": "",
                     "sets": totals.get("sets", len(self)), "train": totals.get("train", len(self.split("train"))),
                     "test": totals.get("test", len(self.split("test"))),
                     "benchmark": totals.get("benchmark", len(self.benchmark())),
                     "kept out near benchmark": sum(r["kept_out"] for r in self.source_records),
                     "genes": totals.get("genes", len(self.genes)), "added in version": None})
        table = pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))
        table["added in version"] = table["added in version"].astype("Int64")
        return table

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


def build_command(directory: Path) -> str:
    """The command that builds the corpus folder ``directory`` (the extended one by its folder name)."""
    return EXTENDED_BUILD_COMMAND if Path(directory).name == EXTENDED_CORPUS_DIR.name else BUILD_COMMAND


def load_corpus(directory: Path = CORPUS_DIR) -> Corpus:
    """Read a built corpus folder (cached: the same folder gives the same :class:`Corpus`); raises
    FileNotFoundError naming the build command when missing."""
    return _load_corpus(Path(directory).resolve())


@lru_cache(maxsize=4)
def _load_corpus(directory: Path) -> Corpus:
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.exists():
        raise FileNotFoundError(f"no corpus in {directory.name}/: run `{build_command(directory)}` to build it")
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
