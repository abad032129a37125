"""The Data page's sources: licence terms per source, the terms filter, the corpus choice, and search that
ranks a TF's target sets first for the TF's symbol; on a tiny corpus written to a temporary folder."""

from __future__ import annotations

import re

import csv
import gzip
import io
import json
from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from cellang.app import data as browse
from cellang.app.data import filter_sources, selection_file_stem, selection_problem, sort_hits, unbuilt_sources
from cellang.browse import GENE_ONLY, NAMED_AFTER, SUBSTRING, WHOLE_WORD, match_rank, rank_hits, search_corpus
from cellang.corpus import Corpus, Pathway, load_corpus, store
from cellang.corpus.build import GMT_NAME, MANIFEST_NAME, META_COLUMNS, META_NAME
from cellang.corpus.sources import ALL_SOURCES, TERMS
from cellang.genes import load_resolver
from cellang.gmt import GeneSet, gmt_bytes, parse_gmt
from tests.conftest import REPO_ROOT

SPECS = {s.key: s for s in ALL_SOURCES}
BUILT = ("GO_BP", "STRING", "Enrichr_ChEA_2022", "MSigDB_H", "CollecTRI", "ENCODE_ChIP")
CELL_CYCLE = ("CCND1", "CDK4", "E2F1", "MYC", "RB1")
# (name, description, source, genes, split, benchmark), in build order: the sets named after MYC come last,
# so ranking (not corpus order) has to bring them to the top.
SETS = [
    ("GO:0000010", "mycotoxin metabolic process", "GO_BP", ("CYP1A2", "CYP3A4", "GSTA1", "GSTM1", "GSTP1"),
     "train", False),
    ("GO:0000020", "cell cycle", "GO_BP", CELL_CYCLE, "test", True),
    ("GO:0000030", "apoptotic process", "GO_BP", ("BAX", "BCL2", "CASP3", "CASP9", "TP53"), "train", False),
    ("STRING_MYCN", "MYCN and its physical partners (STRING v12, score >= 900)", "STRING",
     ("MAX", "MYCN", "AURKA", "MYC", "TP53"), "train", False),
    ("MYC 18555785 ChIP-Seq MESCs Mouse", "MYC 18555785 ChIP-Seq MESCs Mouse", "Enrichr_ChEA_2022",
     ("CCND2", "CDK4", "NPM1", "ODC1", "NCL"), "train", False),
    ("HALLMARK_MYC_TARGETS_V1", "Hallmark MYC targets v1", "MSigDB_H", ("CCND2", "NPM1", "ODC1", "NCL", "HSPD1"),
     "train", False),
    ("CollecTRI_TP53", "Targets of TP53 (CollecTRI)", "CollecTRI", ("CDKN1A", "MDM2", "BAX", "MYC", "GADD45A"),
     "train", False),
    ("CollecTRI_MYC", "Targets of MYC (CollecTRI)", "CollecTRI", ("CCND2", "CDK4", "NPM1", "ODC1", "TERT"),
     "train", False),
    ("CollecTRI_MYC_activated", "Genes activated by MYC (CollecTRI)", "CollecTRI",
     ("CCND2", "CDK4", "NPM1", "ODC1", "LDHA"), "train", False),
    ("ENCODE_ChIP_MYCN_SK-N-SH", "ChIP-seq targets of MYCN in SK-N-SH (ENCODE)", "ENCODE_ChIP",
     ("ALK", "LIN28B", "PHOX2B", "HAND2", "GATA2"), "train", False),
    ("ENCODE_ChIP_MYC_K562", "ChIP-seq targets of MYC in K562 (ENCODE)", "ENCODE_ChIP",
     ("NPM1", "NCL", "ODC1", "CAD", "SRM"), "train", False),
]
REGULATOR_SETS = ["MYC 18555785 ChIP-Seq MESCs Mouse", "CollecTRI_MYC", "CollecTRI_MYC_activated",
                  "ENCODE_ChIP_MYC_K562"]


def source_entry(key: str, old: bool = False) -> dict:
    """A manifest record as the build writes it; ``old``: as written before terms existed."""
    spec = SPECS[key]
    sets = [s for s in SETS if s[2] == key]
    steps = {"loaded": len(sets) + 2, "unique": len(sets) + 1, "apart_from_benchmark": len(sets),
             "train": sum(s[4] == "train" for s in sets), "test": sum(s[4] == "test" for s in sets),
             "benchmark": sum(s[5] for s in sets)}
    entry = {"key": key, "title": spec.title, "licence": spec.licence, "non_commercial": spec.non_commercial,
             "genes": len({g for s in sets for g in s[3]}), "sets_after_step": steps, "files": []}
    if not old:
        entry.update(terms=spec.terms, licence_basis=spec.basis, added_in=spec.added_in, kept_out_near_benchmark=1,
                     corpus="default" if spec.in_default_corpus else "extended")
    return entry


def manifest(old: bool = False) -> dict:
    return {"sources": [source_entry(key, old) for key in BUILT],
            "totals": {"sets": len(SETS), "genes": len({g for s in SETS for g in s[3]}),
                       "train": sum(s[4] == "train" for s in SETS), "test": sum(s[4] == "test" for s in SETS),
                       "benchmark": sum(s[5] for s in SETS)}}


def pathways() -> list[Pathway]:
    return [Pathway(name, description, source, SPECS[source].licence, SPECS[source].non_commercial,
                    tuple(sorted(genes)), split, i, benchmark)
            for i, (name, description, source, genes, split, benchmark) in enumerate(SETS)]


@pytest.fixture()
def corpus() -> Corpus:
    return Corpus(pathways(), manifest())


def write_corpus(directory: Path, old: bool = False) -> Path:
    """The tiny corpus as a corpus folder that load_corpus reads."""
    directory.mkdir(parents=True)
    chosen = pathways()
    (directory / GMT_NAME).write_bytes(gmt_bytes([GeneSet(p.name, p.description, p.genes) for p in chosen],
                                                 compress=True))
    table = io.StringIO()
    writer = csv.writer(table, delimiter="\t", lineterminator="\n")
    writer.writerow(META_COLUMNS)
    for p in chosen:
        writer.writerow([p.name, p.source, p.split, p.group, int(p.benchmark), len(p.genes), len(p.genes), 1.0])
    (directory / META_NAME).write_bytes(gzip.compress(table.getvalue().encode()))
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest(old)))
    return directory


# --- search ranking ------------------------------------------------------------------------------------------

def test_match_rank_whole_words_then_substrings_then_genes() -> None:
    by_name = {p.name: p for p in pathways()}
    # named after the query: it leads the name once the source's prefix is off
    assert match_rank(by_name["CollecTRI_MYC_activated"], "MYC") == NAMED_AFTER
    assert match_rank(by_name["CollecTRI_MYC_activated"], "myc activated") == NAMED_AFTER  # several tokens
    assert match_rank(by_name["ENCODE_ChIP_MYC_K562"], "myc") == NAMED_AFTER
    assert match_rank(by_name["MYC 18555785 ChIP-Seq MESCs Mouse"], "myc") == NAMED_AFTER  # split on spaces
    assert match_rank(by_name["GO:0000020"], "GO:0000020") == NAMED_AFTER  # the whole name
    assert match_rank(by_name["STRING_MYCN"], "MYCN") == NAMED_AFTER
    # whole words elsewhere in the name or in the description
    assert match_rank(by_name["HALLMARK_MYC_TARGETS_V1"], "MYC") == WHOLE_WORD
    assert match_rank(by_name["ENCODE_ChIP_MYC_K562"], "K562") == WHOLE_WORD
    assert match_rank(by_name["GO:0000010"], "GO") == WHOLE_WORD
    assert match_rank(by_name["CollecTRI_TP53"], "targets of tp53") == WHOLE_WORD  # words of the description
    assert match_rank(by_name["GO:0000030"], "apoptotic") == WHOLE_WORD
    assert match_rank(by_name["STRING_MYCN"], "MYC") == SUBSTRING
    assert match_rank(by_name["GO:0000010"], "MYC") == SUBSTRING  # mycotoxin
    assert match_rank(by_name["GO:0000020"], "MYC") == GENE_ONLY  # only holds the gene
    assert match_rank(by_name["GO:0000020"], "  ") == GENE_ONLY


def test_search_puts_a_tfs_target_sets_first(corpus: Corpus) -> None:
    resolver = load_resolver()
    result = search_corpus(corpus, resolver, "MYC")
    names = [p.name for p in result.hits]
    # every hit of the plain search, none lost or added, only reordered
    assert sorted(names) == sorted(p.name for p in corpus.search("MYC"))
    assert names[:4] == REGULATOR_SETS  # named after MYC, in corpus order
    assert names[4] == "HALLMARK_MYC_TARGETS_V1"  # MYC as a word of the name
    assert names[5:8] == ["GO:0000010", "STRING_MYCN", "ENCODE_ChIP_MYCN_SK-N-SH"]  # substrings, corpus order
    assert names[8:] == ["GO:0000020", "CollecTRI_TP53"]  # only contain the gene MYC
    assert [p.name for p in search_corpus(corpus, resolver, "myc").hits] == names
    # the name field ranks too; a gene search keeps to sets holding the gene
    assert [p.name for p in search_corpus(corpus, resolver, "MYC", "name").hits][:5] == [
        *REGULATOR_SETS, "HALLMARK_MYC_TARGETS_V1"]
    assert [p.name for p in search_corpus(corpus, resolver, "MYC", "gene").hits] == [
        "GO:0000020", "STRING_MYCN", "CollecTRI_TP53"]
    # an empty query lists everything in corpus order
    assert search_corpus(corpus, resolver, "").hits == corpus.pathways


def test_alias_search_ranks_sets_named_after_the_symbol_first(corpus: Corpus) -> None:
    result = search_corpus(corpus, load_resolver(), "p53")
    assert "alias of TP53" in result.note
    names = [p.name for p in result.hits]
    assert names[0] == "CollecTRI_TP53"  # named after TP53, which p53 stands for
    assert sorted(names) == sorted(p.name for p in corpus.pathways if "TP53" in p.genes or p.name == "CollecTRI_TP53")
    assert names[1:] == [p.name for p in corpus.pathways if "TP53" in p.genes]  # then corpus order
    cmyc = [p.name for p in search_corpus(corpus, load_resolver(), "c-Myc").hits]
    assert cmyc[:5] == [*REGULATOR_SETS, "HALLMARK_MYC_TARGETS_V1"]  # ranked as the symbol it stands for
    assert "GO:0000010" not in cmyc  # 'mycotoxin' only matches MYC, not c-Myc, as a substring


def test_search_finds_word_variants_after_the_words_as_typed() -> None:
    from cellang.browse import stem

    assert stem("apoptosis") == stem("apoptotic") == "apopt"
    assert stem("signalling") == stem("signaling") == stem("signal")
    assert stem("glycolysis") == stem("glycolytic") and stem("regulation") == stem("regulated")
    corpus, resolver = load_corpus(), load_resolver()
    for typed, other in (("apoptosis", "apoptotic"), ("apoptotic", "apoptosis")):
        result = search_corpus(corpus, resolver, typed)
        names = [p.name for p in result.hits]
        as_typed = [p.name for p in corpus.search(typed)]
        assert names[:len(as_typed)] == [p.name for p in rank_hits(corpus.search(typed), [typed])]  # first, ranked
        whole_word = {p.name for p in corpus.search(other)
                      if other in re.findall(r"[a-z0-9]+", f"{p.name.replace('_', ' ')} {p.description}".lower())}
        assert whole_word and whole_word <= set(names)  # the other form is found too (as a word; not "proapoptotic")
        assert "another form" in result.note and len(names) == len(set(names))
    # every word must be there in some form; short words (T) are not required
    tcr = search_corpus(corpus, resolver, "T cell receptor signalling").hits
    assert tcr and all({"cell", "receptor"} <= set(p.description.lower().replace("-", " ").split()) or
                       "CELL_RECEPTOR" in p.name for p in tcr)
    assert search_corpus(corpus, resolver, "MYC", "gene").note == ""  # genes have no variants


def test_rank_hits_is_stable_and_sort_orders(corpus: Corpus) -> None:
    hits = list(reversed(corpus.pathways))
    assert rank_hits(hits, []) == hits
    assert rank_hits(hits, ["zzz"]) == hits  # all tie: order kept
    ranked = search_corpus(corpus, load_resolver(), "MYC").hits
    assert sort_hits(ranked, "best match", corpus) == ranked
    assert sort_hits(ranked, "corpus order", corpus) == [p for p in corpus.pathways if p in ranked]
    assert sort_hits(ranked, "best match") == ranked
    with pytest.raises(ValueError, match="order must be one of best match"):
        sort_hits(ranked, "relevance")


# --- source table and its fallbacks --------------------------------------------------------------------------

def test_source_table_has_terms_basis_corpus_and_sizes(corpus: Corpus) -> None:
    table = corpus.source_table()
    assert tuple(table.columns) == store.SOURCE_COLUMNS
    assert list(table["source"]) == [*BUILT, "all"]
    rows = table.set_index("source")
    for key in BUILT:
        spec = SPECS[key]
        row = rows.loc[key]
        assert (row["terms"], row["terms mean"], row["licence"], row["licence basis"]) == (
            spec.terms, TERMS[spec.terms], spec.licence, spec.basis)
        assert row["corpus"] == ("default" if spec.in_default_corpus else "extended")
        assert row["sets"] == sum(s[2] == key for s in SETS) == row["train"] + row["test"]
        assert row["kept out near benchmark"] == 1
        assert row["added in version"] == spec.added_in
    assert rows.loc["CollecTRI", "terms"] == "mixed" and rows.loc["ENCODE_ChIP", "terms"] == "unclear"
    assert rows.loc["Enrichr_ChEA_2022", "terms"] == "non-commercial"
    assert rows.loc["all", "sets"] == len(SETS) == table["sets"].iloc[:-1].sum()
    assert rows.loc["all", "kept out near benchmark"] == len(BUILT)
    assert rows.loc["all", "benchmark"] == 1
    assert corpus.terms == ["open", "non-commercial", "mixed", "unclear"]
    assert set(corpus.to_frame()["terms"]) == set(corpus.terms)


def test_old_manifest_falls_back_to_non_commercial_flag_and_catalogue() -> None:
    old = Corpus(pathways(), manifest(old=True))
    rows = old.source_table().set_index("source")
    # without "terms": non-commercial when flagged, else open (so CollecTRI and ENCODE read as open)
    assert rows.loc["Enrichr_ChEA_2022", "terms"] == "non-commercial"
    assert rows.loc["CollecTRI", "terms"] == "open" and rows.loc["GO_BP", "terms"] == "open"
    assert rows.loc["Enrichr_ChEA_2022", "corpus"] == "extended" and rows.loc["GO_BP", "corpus"] == "default"
    assert rows.loc["GO_BP", "terms mean"] == TERMS["open"]
    # basis and version from the catalogue when it names the same licence
    assert rows.loc["GO_BP", "licence basis"] == SPECS["GO_BP"].basis
    assert rows.loc["STRING", "added in version"] == 2
    assert rows.loc["GO_BP", "kept out near benchmark"] == 0
    changed = manifest(old=True)
    changed["sources"][0]["licence"] = "some other licence"
    changed["sources"][0]["key"] = "Unknown_source"
    record = Corpus([], changed).source_records[0]
    assert (record["basis"], record["added_in"], record["terms"], record["corpus"]) == ("", 1, "open", "default")
    # no sets_after_step "train": the unique count stands for the sets
    bare = {"sources": [{"key": "X", "title": "X", "licence": "CC0", "non_commercial": True, "genes": 3,
                         "sets_after_step": {"unique": 4}}]}
    table = Corpus([], bare).source_table()
    assert list(table["sets"]) == [4, 0] and list(table["terms"]) == ["non-commercial", ""]


def test_unbuilt_sources_name_their_build_command(corpus: Corpus) -> None:
    table = unbuilt_sources(corpus)
    assert tuple(table.columns) == browse.UNBUILT_COLUMNS
    assert set(table["source"]) == {s.key for s in ALL_SOURCES} - set(BUILT)
    rows = table.set_index("source")
    assert rows.loc["CORUM", "build with"] == "cellang build corpus --extended"
    assert rows.loc["CORUM", "terms"] == "non-commercial" and rows.loc["TRRUST", "terms"] == "unclear"
    assert rows.loc["PROGENy", "build with"] == "cellang build corpus"  # a default source not built
    everything = Corpus([], {"sources": [{"key": s.key, "licence": s.licence, "non_commercial": s.non_commercial}
                                          for s in ALL_SOURCES]})
    assert unbuilt_sources(everything).empty


# --- filters ---------------------------------------------------------------------------------------------------

def test_terms_filter_and_download_names(corpus: Corpus) -> None:
    assert filter_sources(corpus) == list(BUILT)
    assert filter_sources(corpus, terms=["mixed"]) == ["CollecTRI"]
    assert filter_sources(corpus, terms=["mixed", "unclear"]) == ["CollecTRI", "ENCODE_ChIP"]
    assert filter_sources(corpus, ["GO_BP", "CollecTRI"], ["open"]) == ["GO_BP"]
    assert filter_sources(corpus, ["GO_BP"], ["mixed"]) == []
    hits = search_corpus(corpus, load_resolver(), "MYC", "any", filter_sources(corpus, terms=["open"])).hits
    assert [p.name for p in hits] == ["GO:0000010", "STRING_MYCN", "GO:0000020"]  # open sources only
    assert selection_problem(corpus, BUILT, corpus.terms) is None
    assert selection_problem(corpus, [], corpus.terms) == "Choose at least one source to list gene sets."
    assert "at least one kind of licence terms" in selection_problem(corpus, BUILT, [])
    assert "None of the chosen sources has mixed terms" in selection_problem(corpus, ["GO_BP"], ["mixed"])
    assert selection_file_stem("MYC", "any", BUILT, BUILT, ["mixed", "open"], corpus.terms) == (
        "cellang-pathways-MYC-mixed-open")
    assert selection_file_stem("MYC", "any", BUILT, BUILT, corpus.terms, corpus.terms) == "cellang-pathways-MYC"
    assert selection_file_stem("", "any", ["GO_BP"], BUILT, ["open"], corpus.terms) == (
        "cellang-pathways-all-GO_BP-open")


# --- the corpus folders --------------------------------------------------------------------------------------

def test_corpus_choices_offer_the_extended_corpus_only_when_built(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "corpus-extended"
    monkeypatch.setattr(store, "EXTENDED_CORPUS_DIR", folder)
    assert list(browse.corpus_choices()) == [browse.DEFAULT_CHOICE]
    assert "cellang build corpus --extended" in browse.extended_corpus_note()
    with pytest.raises(FileNotFoundError, match=r"cellang build corpus --extended"):
        load_corpus(folder)
    write_corpus(folder)
    assert browse.corpus_choices() == {browse.DEFAULT_CHOICE: store.CORPUS_DIR, browse.EXTENDED_CHOICE: folder}
    loaded = load_corpus(folder)
    assert [p.name for p in loaded.pathways] == [s[0] for s in SETS]
    assert load_corpus(tmp_path / "." / "corpus-extended") is loaded  # one cache entry per folder
    assert loaded.source_terms["CollecTRI"] == "mixed"
    assert store.EXTENDED_CORPUS_DIR.name == "corpus-extended"


# --- the page ------------------------------------------------------------------------------------------------

def run_data_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "pages" / "1_Data.py"), default_timeout=120).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def record_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """{file name: bytes} of every download button the AppTest runs draw (Streamlit 1.67's mock media store)."""
    downloads: dict[str, bytes] = {}

    class Recording(MemoryMediaFileStorage):
        def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
            if filename is not None and isinstance(path_or_data, bytes):
                downloads[filename] = path_or_data
            return super().load_and_get_id(path_or_data, mimetype, kind, filename)

    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", Recording)
    return downloads


def source_table(app: AppTest):  # type: ignore[no-untyped-def]
    return next(d.value for d in app.dataframe if {"terms", "licence", "sets"} <= set(d.value.columns))


def test_data_page_without_extended_corpus_says_how_to_build_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "EXTENDED_CORPUS_DIR", tmp_path / "corpus-extended")
    app = run_data_page()
    assert not app.radio  # nothing to choose
    assert any("cellang build corpus --extended" in c.value for c in app.caption)
    table = source_table(app)
    assert set(table["source"]) == set(load_corpus().sources) | {"all"}
    assert set(table["terms"]) - {""} == set(load_corpus().terms)
    unbuilt = next(d.value for d in app.dataframe if "build with" in d.value.columns)
    assert "CORUM" in set(unbuilt["source"])
    assert set(unbuilt["build with"]) >= {"cellang build corpus --extended"}


def test_data_page_browses_the_extended_corpus_by_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "EXTENDED_CORPUS_DIR", write_corpus(tmp_path / "corpus-extended"))
    downloads = record_downloads(monkeypatch)
    app = run_data_page()
    assert app.radio[0].options == [browse.DEFAULT_CHOICE, browse.EXTENDED_CHOICE]
    app.radio[0].set_value(browse.EXTENDED_CHOICE).run()
    assert not app.exception, [e.message for e in app.exception]
    assert any("terms are not open" in w.value for w in app.warning)
    table = source_table(app)
    assert list(table["source"]) == [*BUILT, "all"]
    assert list(table["terms"]) == [SPECS[key].terms for key in BUILT] + [""]
    assert list(table["terms mean"])[:-1] == [TERMS[SPECS[key].terms] for key in BUILT]
    assert {"licence basis", "corpus", "kept out near benchmark", "benchmark", "train"} <= set(table.columns)
    assert f"{len(SETS)} of {len(SETS)} gene sets match." in [c.value for c in app.caption]

    # a TF's symbol lists the sets of its targets first
    app.text_input[0].input("MYC").run()
    assert list(app.dataframe[0].value["name"])[:4] == REGULATOR_SETS
    # the terms filter keeps to sources with those terms (the listing, so the downloads made of the same hits)
    terms = next(m for m in app.multiselect if m.label == "Licence terms")
    assert terms.options == ["open", "non-commercial", "mixed", "unclear"]
    terms.set_value(["mixed"]).run()
    assert not app.exception
    listed = app.dataframe[0].value
    assert list(listed["name"]) == ["CollecTRI_MYC", "CollecTRI_MYC_activated", "CollecTRI_TP53"]
    assert set(listed["terms"]) == {"mixed"} and set(listed["source"]) == {"CollecTRI"}
    assert f"3 of {len(SETS)} gene sets match." in [c.value for c in app.caption]
    labels = [d.label for d in app.get("download_button")]
    assert "Download matching sets (GMT)" in labels and "Download the whole extended corpus (GMT, gzip)" in labels
    gmt = parse_gmt(downloads["cellang-pathways-MYC-mixed.gmt"]).gene_sets
    assert [s.name for s in gmt] == list(listed["name"])
    frame = downloads["cellang-pathways-MYC-mixed.csv"].decode()
    assert frame.splitlines()[0].split(",")[:4] == ["name", "description", "source", "size"]
    assert [line.split(",")[0] for line in frame.splitlines()[1:]] == list(listed["name"])
    assert len(parse_gmt(downloads["cellang-pathways-extended.gmt.gz"]).gene_sets) == len(SETS)

    # an empty or impossible selection is named, and nothing crashes
    next(m for m in app.multiselect if m.label == "Licence terms").set_value([]).run()
    assert not app.exception
    assert any("Choose at least one kind of licence terms" in w.value for w in app.warning)
    next(m for m in app.multiselect if m.label == "Licence terms").set_value(["unclear"]).run()
    next(m for m in app.multiselect if m.label == "Sources").set_value(["GO_BP"]).run()
    assert not app.exception
    assert any("None of the chosen sources has unclear terms" in w.value for w in app.warning)
    next(m for m in app.multiselect if m.label == "Sources").set_value([]).run()
    assert any("Choose at least one source" in w.value for w in app.warning)
