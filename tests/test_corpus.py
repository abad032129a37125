"""Tests of the shipped corpus (data/corpus) and of cellang.corpus.store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from cellang.completion import benchmark as bench
from cellang.corpus.readers import _name_key
from cellang.corpus import Corpus, frozen, load_corpus, qc
from cellang.corpus.build import GMT_NAME, MANIFEST_NAME, META_NAME
from cellang.corpus.sources import DEFAULT_SOURCES
from cellang.genes import load_resolver
from cellang.gmt import parse_gmt
from cellang.paths import CORPUS_DIR, GENE_TABLE
from cellang.registry import sha256_of

STEPS = ["loaded", "harmonised_nonempty", "mapped_at_least_90pct", "size_5_to_500", "unique",
         "apart_from_benchmark", "train", "test", "benchmark"]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


@pytest.fixture(scope="module")
def near_pairs(corpus: Corpus) -> list[tuple[int, int]]:
    """Every near-duplicate pair of the whole corpus, recomputed from the genes (a few seconds)."""
    return qc.near_duplicate_pairs([p.genes for p in corpus.pathways], corpus.manifest["qc_params"]["near_duplicate_jaccard"])


def test_loads(corpus: Corpus) -> None:
    assert len(corpus) > 10_000
    assert load_corpus() is corpus
    assert {p.split for p in corpus.pathways} == {"train", "test"}
    assert {p.source for p in corpus.pathways} == {s.key for s in DEFAULT_SOURCES}


def test_sizes_and_genes(corpus: Corpus) -> None:
    params = corpus.manifest["qc_params"]
    assert (params["min_size"], params["max_size"]) == (5, 500)
    sizes = [len(p.genes) for p in corpus.pathways]
    assert min(sizes) >= 5 and max(sizes) <= 500
    for p in corpus.pathways:
        assert list(p.genes) == sorted(set(p.genes)), p.name
    # every gene is an approved symbol of the shipped gene table
    assert set(corpus.genes) <= set(load_resolver().records)
    # and occurs in at least min_gene_count sets of the corpus (it did before later steps removed sets)
    assert len(corpus.genes) == len(set(corpus.genes))


def test_names_unique(corpus: Corpus) -> None:
    names = [p.name for p in corpus.pathways]
    assert len(names) == len(set(names))
    assert all(name.strip() == name and name for name in names)


def test_no_identical_sets(corpus: Corpus) -> None:
    assert len({p.genes for p in corpus.pathways}) == len(corpus)


def test_manifest_totals_equal_what_is_loaded(corpus: Corpus) -> None:
    totals = corpus.manifest["totals"]
    assert totals["sets"] == len(corpus)
    assert totals["genes"] == len(corpus.genes)
    assert totals["train"] == len(corpus.split("train"))
    assert totals["test"] == len(corpus.split("test"))
    assert totals["benchmark"] == len(corpus.benchmark())
    assert totals["train"] + totals["test"] == totals["sets"]
    assert totals["near_duplicate_groups"] == len({p.group for p in corpus.pathways})


def test_manifest_per_source_counts_equal_what_is_loaded(corpus: Corpus) -> None:
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    genes: dict[str, set[str]] = defaultdict(set)
    for p in corpus.pathways:
        by_source[p.source].update(["apart_from_benchmark", p.split] + (["benchmark"] if p.benchmark else []))
        genes[p.source].update(p.genes)
    for source in corpus.manifest["sources"]:
        steps = source["sets_after_step"]
        for step in ("apart_from_benchmark", "train", "test", "benchmark"):
            assert steps[step] == by_source[source["key"]][step], (source["key"], step)
        assert source["genes"] == len(genes[source["key"]])
        funnel = [steps[s] for s in STEPS[:6]]
        assert funnel == sorted(funnel, reverse=True), source["key"]
        assert steps["train"] + steps["test"] == steps["apart_from_benchmark"]
        assert steps["unique"] - steps["apart_from_benchmark"] == source["kept_out_near_benchmark"]


def test_benchmark(corpus: Corpus) -> None:
    benchmark = corpus.benchmark()
    assert len(benchmark) == 1000 == corpus.manifest["qc_params"]["benchmark_size"]
    assert all(p.split == "test" for p in benchmark)
    assert len(corpus.split("test")) >= 1000


def test_no_near_duplicate_crosses_the_split(corpus: Corpus, near_pairs: list[tuple[int, int]]) -> None:
    pathways = corpus.pathways
    assert len(near_pairs) > 1000  # the corpus has many near-twins, so this check has teeth
    crossing = [(pathways[i].name, pathways[j].name) for i, j in near_pairs
                if pathways[i].split != pathways[j].split]
    assert crossing == []


def test_groups_are_the_near_duplicate_components(corpus: Corpus, near_pairs: list[tuple[int, int]]) -> None:
    pathways = corpus.pathways
    assert all(pathways[i].group == pathways[j].group for i, j in near_pairs)
    # groups are numbered by first member, and no group is larger than its near-duplicate edges allow
    seen: list[int] = []
    for p in pathways:
        if p.group not in seen:
            seen.append(p.group)
    assert seen == list(range(len(seen)))
    members = Counter(p.group for p in pathways)
    linked = Counter(pathways[i].group for i, j in near_pairs)
    assert all(linked[g] >= members[g] - 1 for g in members if members[g] > 1)


def test_test_groups_have_no_train_member(corpus: Corpus) -> None:
    splits_of_group: dict[int, set[str]] = defaultdict(set)
    for p in corpus.pathways:
        splits_of_group[p.group].add(p.split)
    test_groups = {p.group for p in corpus.split("test")}
    assert test_groups
    assert all(splits_of_group[g] == {"test"} for g in test_groups)


def test_manifest_file_hashes_match_disk(corpus: Corpus) -> None:
    files = corpus.manifest["files"]
    assert set(files) == {GMT_NAME, META_NAME}
    for name, digest in files.items():
        assert sha256_of(CORPUS_DIR / name) == digest, name
    assert corpus.manifest["gene_table_sha256"] == sha256_of(GENE_TABLE)
    assert corpus.manifest_sha256 == sha256_of(CORPUS_DIR / MANIFEST_NAME)


def test_gene_manifest_matches_gene_table() -> None:
    import json

    manifest = json.loads((GENE_TABLE.parent / "manifest.json").read_text())
    assert manifest["file"] == {"name": GENE_TABLE.name, "sha256": sha256_of(GENE_TABLE)}
    resolver = load_resolver()
    assert manifest["genes"] == len(resolver)
    assert manifest["genes_with_hgnc_id"] == sum(bool(r.hgnc_id) for r in resolver.records.values())
    assert manifest["genes_with_ensembl_id"] == sum(bool(r.ensembl_id) for r in resolver.records.values())
    for entry in manifest["sources"]:
        assert set(entry) == {"registry", "package", "version", "member", "sha256", "licence"}


def test_manifest_records_provenance(corpus: Corpus) -> None:
    manifest = corpus.manifest
    assert manifest["qc_steps"] == STEPS
    assert manifest["qc_params"] == dataclasses.asdict(qc.QcParams())
    specs = {s.key: s for s in DEFAULT_SOURCES}
    assert [s["key"] for s in manifest["sources"]] == [s.key for s in DEFAULT_SOURCES]
    for source in manifest["sources"]:
        spec = specs[source["key"]]
        assert (source["title"], source["licence"], source["non_commercial"]) == (
            spec.title, spec.licence, spec.non_commercial)
        assert (source["terms"], source["licence_basis"], source["added_in"]) == (spec.terms, spec.basis,
                                                                                 spec.added_in)
        assert source["terms"] == "open" and source["corpus"] == "default"
        assert source["licence"]
        assert len(source["files"]) == len(spec.files)
        for entry, package_file in zip(source["files"], spec.files):
            assert set(entry) == {"registry", "package", "version", "member", "sha256", "licence"}
            assert {k: v for k, v in entry.items() if k != "sha256"} == dataclasses.asdict(package_file)
            assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
        assert list(source["sets_after_step"]) == sorted(STEPS)  # json keys are sorted
        assert set(source["sets_after_step"]) == set(manifest["qc_steps"])


def test_search_by_gene(corpus: Corpus) -> None:
    hits = corpus.search("TP53", field="gene")
    assert hits and all("TP53" in p.genes for p in hits)
    assert len(hits) == sum("TP53" in p.genes for p in corpus.pathways)
    assert corpus.search("tp53", field="gene") == hits
    assert corpus.search("TP5", field="gene") == []  # whole symbols only


def test_search_by_name_and_description(corpus: Corpus) -> None:
    first = corpus.pathways[0]
    assert corpus.search(first.name, field="name") == [first]
    assert corpus.search(first.name.lower(), field="name") == [first]
    assert corpus.search(first.name, field="description") == [
        p for p in corpus.pathways if first.name.lower() in p.description.lower()]
    reactome = corpus.search("reactome_", field="name")
    assert reactome and reactome == [p for p in corpus.pathways if p.name.startswith("REACTOME_")]
    assert {p.source for p in reactome} == {"Reactome"}
    hpo = corpus.search("HP:00012", field="name")
    assert hpo and hpo == [p for p in corpus.pathways if "HP:00012" in p.name]
    hits = corpus.search("Apoptotic", field="description")
    assert hits and all("apoptotic" in p.description.lower() for p in hits)
    assert hits == [p for p in corpus.pathways if "apoptotic" in p.description.lower()]


def test_search_any_is_the_union(corpus: Corpus) -> None:
    query = "kinase"
    union = {p.name for f in ("name", "description", "gene") for p in corpus.search(query, field=f)}
    any_hits = corpus.search(query)
    assert {p.name for p in any_hits} == union
    order = {p.name: i for i, p in enumerate(corpus.pathways)}
    assert [order[p.name] for p in any_hits] == sorted(order[p.name] for p in any_hits)
    gene_hits = {p.name for p in corpus.search("EGFR", field="any")}
    assert {p.name for p in corpus.search("EGFR", field="gene")} <= gene_hits


def test_search_limit_empty_and_bad_field(corpus: Corpus) -> None:
    assert corpus.search("") == corpus.pathways
    assert corpus.search("   ", field="gene") == corpus.pathways
    assert corpus.search("TP53", field="gene", limit=3) == corpus.search("TP53", field="gene")[:3]
    assert corpus.search("", limit=0) == []
    with pytest.raises(ValueError, match="unknown search field 'genes'"):
        corpus.search("TP53", field="genes")


def test_getitem(corpus: Corpus) -> None:
    first = corpus.pathways[0]
    assert corpus[first.name] is first
    with pytest.raises(KeyError) as caught:
        corpus["missing"]
    assert caught.value.args[0] == "no pathway named 'missing' in the corpus"


def test_to_gmt_round_trip(corpus: Corpus) -> None:
    chosen = corpus.benchmark()[:50] + corpus.split("train")[:50]
    for compress in (False, True):
        data = Corpus.to_gmt(chosen, compress=compress)
        assert data[:2] == b"\x1f\x8b" if compress else data[:2] != b"\x1f\x8b"
        back = parse_gmt(data).gene_sets
        assert [(s.name, s.description, s.genes) for s in back] == [(p.name, p.description, p.genes) for p in chosen]


def test_to_gmt_of_everything_is_the_shipped_file(corpus: Corpus) -> None:
    assert Corpus.to_gmt(corpus.pathways, compress=True) == (CORPUS_DIR / GMT_NAME).read_bytes()


def test_to_frame(corpus: Corpus) -> None:
    frame = corpus.to_frame(corpus.benchmark())
    assert len(frame) == 1000 and frame["benchmark"].all() and (frame["split"] == "test").all()
    assert list(frame["size"]) == [len(p.genes) for p in corpus.benchmark()]
    assert len(corpus.to_frame()) == len(corpus)


def test_source_table(corpus: Corpus) -> None:
    table = corpus.source_table()
    keys = [s.key for s in DEFAULT_SOURCES]
    assert list(table["source"]) == keys + ["all"]
    counts = Counter(p.source for p in corpus.pathways)
    for row in table.itertuples():
        if row.source == "all":
            assert (row.sets, row.genes) == (len(corpus), len(corpus.genes))
        else:
            assert row.sets == counts[row.source]
            assert row.genes == len({g for p in corpus.pathways if p.source == row.source for g in p.genes})
    assert table["sets"].iloc[:-1].sum() == table["sets"].iloc[-1]


def test_pathway_licences_come_from_sources(corpus: Corpus) -> None:
    licences = {s.key: (s.licence, s.non_commercial) for s in DEFAULT_SOURCES}
    assert all((p.licence, p.non_commercial) == licences[p.source] for p in corpus.pathways)


def test_load_corpus_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cellang build corpus"):
        load_corpus(tmp_path / "no_corpus")


# The frozen benchmark: the same 1,000 pathways, genes, order and masks in every corpus version.
FROZEN_MASKS_SHA256 = "89c92ea9e372993bcd31db8b0c83f9fe5d2fc9cc7d641f4aef1dae92dbfb13aa"


def test_frozen_benchmark_file_is_unchanged() -> None:
    assert sha256_of(frozen.BENCHMARK_FILE) == frozen.BENCHMARK_SHA256
    assert len(frozen.load_frozen_benchmark()) == 1000


def test_reactome_sets_read_in_reactomes_capitalisation(corpus: Corpus) -> None:
    reactome = {p.name: p.description for p in corpus.pathways if p.source == "Reactome"}
    assert reactome["REACTOME_MAPK3_ERK1_ACTIVATION"] == "MAPK3 (ERK1) activation"
    assert reactome["REACTOME_APOPTOSIS"] == "Apoptosis"
    named = [d for name, d in reactome.items() if d != d.capitalize()]  # not MSigDB's words, capitalised
    assert len(named) >= 0.5 * len(reactome)
    assert all(_name_key(d) == _name_key(name.removeprefix("REACTOME_")) for name, d in reactome.items())


def test_corpus_benchmark_is_the_frozen_benchmark(corpus: Corpus) -> None:
    frozen_sets = frozen.load_frozen_benchmark()
    assert [(p.name, p.genes) for p in corpus.benchmark()] == [(s.name, tuple(s.genes)) for s in frozen_sets]
    # descriptions are labels: the same, except that KEGG and Reactome pathways now carry their sources' own names
    for pathway, frozen_set in zip(corpus.benchmark(), frozen_sets):
        if pathway.source == "KEGG" and pathway.description != frozen_set.description:
            assert pathway.description.endswith(f"(KEGG {pathway.name.removeprefix('KEGG_')}, 2011 gene list)")
        elif pathway.source == "Reactome":  # the same words, in Reactome's capitalisation
            assert _name_key(pathway.description) == _name_key(frozen_set.description)
        else:
            assert pathway.description == frozen_set.description
    assert corpus.split("test") == corpus.benchmark()
    record = corpus.manifest["frozen_benchmark"]
    assert record["sha256"] == frozen.BENCHMARK_SHA256 and record["sets"] == 1000
    kept_out = sum(s["kept_out_near_benchmark"] for s in corpus.manifest["sources"])
    assert kept_out == sum(record["kept_out"].values())


def test_frozen_benchmark_masks_are_unchanged() -> None:
    cases = bench.make_cases([(p.name, p.genes) for p in frozen.load_frozen_benchmark()], 0.8, 0)
    payload = json.dumps([[c.name, list(c.prompt), list(c.masked)] for c in cases]).encode()
    assert hashlib.sha256(payload).hexdigest() == FROZEN_MASKS_SHA256


def test_later_sources_have_no_near_copy_of_a_benchmark_pathway(corpus: Corpus) -> None:
    later = {s.key for s in DEFAULT_SOURCES if not s.predates_benchmark}
    later_sets = [p.genes for p in corpus.pathways if p.source in later]
    assert later_sets, "the corpus has sets of sources added after the benchmark"
    best = qc.max_jaccard_to([p.genes for p in corpus.benchmark()], later_sets)
    assert best.max() < frozen.KEEP_OUT_JACCARD


def test_edited_benchmark_file_is_refused(tmp_path: Path) -> None:
    edited = tmp_path / "benchmark.gmt"
    edited.write_bytes(b"P1\tdesc\tA\tB\tC\n")
    with pytest.raises(frozen.FrozenBenchmarkError, match="was changed"):
        frozen.load_frozen_benchmark(edited)
    with pytest.raises(frozen.FrozenBenchmarkError, match="not found"):
        frozen.load_frozen_benchmark(tmp_path / "missing.gmt.gz")
    assert frozen.load_frozen_benchmark(edited, sha256=None)[0].genes == ("A", "B", "C")
