"""AppTest: every page renders without an exception and its widgets do what they say."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from cellang.app.data import selection_file_stem
from cellang.corpus import load_corpus
from cellang.gmt import parse_gmt
from tests.conftest import REPO_ROOT

TIMEOUT = 120


def run_page(path: str) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / path), default_timeout=TIMEOUT).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_home_page_reports_corpus_models_and_device() -> None:
    app = run_page("app.py")
    corpus = load_corpus()
    values = [m.value for m in app.metric]
    assert f"{len(corpus):,} gene sets" in values
    assert any(v.startswith(("CPU", "CUDA")) for v in values)
    models = app.table[0].value
    assert "checkpoints/pathway-gpt" in models.to_string()


def shown_set(app: AppTest) -> str:
    return next(box for box in app.selectbox if box.label == "Show a gene set").value


@pytest.fixture(scope="module")
def data_page() -> AppTest:
    return run_page("pages/1_Data.py")


def test_data_page_lists_whole_corpus_without_query(data_page: AppTest) -> None:
    assert f"{len(load_corpus()):,} of {len(load_corpus()):,} gene sets match." in [c.value for c in data_page.caption]


def test_data_page_gene_search_harmonises_alias_and_downloads_only_hits() -> None:
    app = run_page("pages/1_Data.py")
    app.text_input[0].input("p53").run()
    assert not app.exception
    assert any("alias of TP53" in i.value for i in app.info)
    corpus = load_corpus()
    expected = {p.name for p in corpus.search("TP53", "gene")} | {p.name for p in corpus.search("p53", "any")}
    assert f"{len(expected):,} of" in " ".join(c.value for c in app.caption)
    shown = shown_set(app)
    assert shown in expected
    app.selectbox[0].select("gene").run()
    shown = shown_set(app)
    assert "TP53" in corpus[shown].genes


def test_data_page_search_by_description_and_source_filter() -> None:
    app = run_page("pages/1_Data.py")
    app.text_input[0].input("apoptotic process").run()
    app.selectbox[0].select("description").run()
    app.multiselect[0].set_value(["GO_BP"]).run()
    assert not app.exception
    names = list(app.dataframe[0].value["name"])
    assert names and all(n.startswith("GO:") for n in names)
    assert all("apoptotic process" in d.lower() for d in app.dataframe[0].value["description"])


def test_data_page_no_match_gives_clear_message() -> None:
    app = run_page("pages/1_Data.py")
    app.text_input[0].input("zzzz-no-such-pathway").run()
    assert not app.exception
    assert any("No gene set matches" in w.value for w in app.warning)


def test_data_page_ambiguous_gene_query_is_explained() -> None:
    app = run_page("pages/1_Data.py")
    app.selectbox[0].select("gene").run()
    app.text_input[0].input("MLL2").run()  # previous symbol with one successor: not ambiguous
    assert not app.exception
    assert any("previous symbol of KMT2D" in i.value for i in app.info)


def test_statistics_tab_has_source_table(data_page: AppTest) -> None:
    tables = [d.value for d in data_page.dataframe]
    source_tables = [t for t in tables if "licence" in t.columns and "sets" in t.columns]
    assert source_tables, "source table missing"
    table = source_tables[0]
    assert set(load_corpus().sources) | {"all"} == set(table["source"])


def test_corpus_gmt_download_bytes_round_trip() -> None:
    corpus = load_corpus()
    hits = corpus.search("TP53", "gene")
    parsed = parse_gmt(corpus.to_gmt(hits)).gene_sets
    assert [s.name for s in parsed] == [p.name for p in hits]
    assert all("TP53" in s.genes for s in parsed)


def test_data_page_sorts_every_hit_before_listing_and_names_downloads_by_query() -> None:
    app = run_page("pages/1_Data.py")
    next(box for box in app.selectbox if box.label == "Sort by").select("size, largest first").run()
    assert not app.exception
    largest = max(len(p.genes) for p in load_corpus().pathways)
    assert len(load_corpus()[shown_set(app)].genes) == largest  # the largest of all, not of the first 1000
    assert selection_file_stem("apoptotic process") == "cellang-pathways-apoptotic-process"
    assert selection_file_stem("p53", "gene", ["GO_BP"], ["GO_BP", "KEGG"]) == "cellang-pathways-p53-in-gene-GO_BP"
    assert selection_file_stem("  ", "any", ["KEGG"], ["KEGG"]) == "cellang-pathways-all"


def test_census_settings_out_of_range_or_empty_are_named() -> None:
    app = run_page("pages/1_Data.py")
    census = next(n for n in app.number_input if n.label.startswith("At most this many cells"))
    census.set_value(5).run()
    assert any(e.value.startswith("Cells to fetch must be between 100 and 200,000") for e in app.error)
    assert next(b for b in app.button if b.label == "Fetch from the Census").disabled
    census.set_value(5000).run()
    next(m for m in app.multiselect if m.label == "Compare cardiomyocytes of").set_value([]).run()
    assert any("Choose at least one disease state" in e.value for e in app.error)
