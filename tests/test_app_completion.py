"""AppTest: the Pathway completion page renders, completes, explains bad input and never shows a traceback.

The checkpoint in checkpoints/pathway-gpt may be a placeholder: these tests check behaviour, not the
biological quality of the predictions.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cellang.completion.completer import PathwayCompleter, mask_pathway
from cellang.completion.tables import EVIDENCE_SETS
from cellang.completion.request import EXPAND, TEST
from cellang.corpus import load_corpus
from tests.conftest import REPO_ROOT

PAGE = str(REPO_ROOT / "pages" / "2_Pathway_completion.py")
TIMEOUT = 120
PASTED = "TP53, MDM2\tCDKN1A\nBAX;BBC3 PMAIP1 GADD45A SESN1 RRM2B FAS NOTAGENE123"
PASTED_GENES = {"TP53", "MDM2", "CDKN1A", "BAX", "BBC3", "PMAIP1", "GADD45A", "SESN1", "RRM2B", "FAS"}
METRICS = ["Recall", "Precision", "Overlap", "Fisher p (one-sided)"]
EVIDENCE_TILES = ["Score", "From retrieval", "From the model", "Supporting sets"]
TABLE = ["rank", "gene", "score", "from_retrieval", "from_model", "supporting_sets", "top_supporting_sets"]

needs_model = pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "pathway-gpt" / "model.safetensors").exists(),
                                 reason="no pathway model checkpoint")


def open_page() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def paste(app: AppTest, text: str) -> AppTest:
    app.radio[0].set_value("Paste genes").run()
    app.text_area[0].input(text).run()
    return app


def hide_and_recover(app: AppTest) -> AppTest:
    app.radio(key="task").set_value(TEST).run()
    return app


def complete(app: AppTest) -> AppTest:
    """Click Complete; a request refused when it is made (no genes, too many, a setting out of range) leaves the
    button disabled with the reasons beside it, and there is nothing to click."""
    if not app.button[0].disabled:
        app.button[0].click().run()
    assert not app.exception, [e.message for e in app.exception]
    return app


@needs_model
def test_page_renders_and_defaults_to_a_benchmark_pathway() -> None:
    app = open_page()
    corpus = load_corpus()
    assert app.title[0].value == "Pathway completion"
    assert app.radio[0].value == "A corpus pathway"
    default = corpus[app.selectbox[0].value]
    assert default.benchmark and default.split == "test" and 15 <= len(default.genes) <= 60
    assert any("never saw them" in c.value for c in app.caption)
    # expanding the list is the default: no mask slider, 20 genes to add, and the ranking says what it is
    assert app.radio(key="task").value == EXPAND and not app.slider
    assert app.number_input(key="n_add").value == 20
    from cellang.completion.completer import load_completer

    assert any(c.value == load_completer().describe() for c in app.caption)
    assert not app.error and not app.metric  # nothing computed before the button
    hide_and_recover(app)
    assert app.slider(key="mask_ratio").value == 0.8 and not app.exception


@needs_model
def test_pasted_genes_complete_with_warning_table_metrics_network_and_downloads() -> None:
    app = complete(hide_and_recover(paste(open_page(), PASTED)))
    assert not app.error
    assert any("NOTAGENE123" in w.value and "unknown" in w.value for w in app.warning)
    labels = [m.label for m in app.metric]
    assert labels == METRICS + EVIDENCE_TILES  # the test's metrics, then the chosen gene's evidence
    novel = app.dataframe[0].value
    assert list(novel.columns) == TABLE and len(novel) > 0
    assert not set(novel["gene"]) & PASTED_GENES  # an input gene predicted again would be "recovered" or absent
    frames = app.get("iframe")
    assert len(frames) == 1 and "new vis.DataSet" in frames[0].proto.srcdoc
    assert "<script src" not in frames[0].proto.srcdoc
    assert any(m.value.startswith("The completed genes") for m in app.markdown)
    downloads = [d.label for d in app.get("download_button")]
    assert downloads == ["Download the completion (CSV)", "Download the completed set (GMT)",
                         "Download the evidence (CSV)"]
    # a later change of settings says the shown result is stale instead of silently mixing them
    app.slider(key="mask_ratio").set_value(0.5).run()
    assert not app.exception and any("changed since the last completion" in i.value for i in app.info)


@needs_model
@pytest.mark.parametrize("text, message", [("", "no genes given"),
                                           ("NOTAGENE1 NOTAGENE2, ZZZ999", "none of the genes")])
def test_bad_input_gives_an_error_not_an_exception(text: str, message: str) -> None:
    app = complete(paste(open_page(), text))
    assert any(message in e.value for e in app.error), [e.value for e in app.error]
    assert not app.metric and not app.get("download_button")


@needs_model
def test_one_gene_can_be_expanded_but_not_tested_and_5000_genes_are_refused() -> None:
    app = complete(hide_and_recover(paste(open_page(), "TP53")))
    assert any("only one of the genes given (TP53)" in e.value and "Expand the list" in e.value
               for e in app.error), [e.value for e in app.error]
    assert not app.dataframe and not app.get("download_button")
    app.radio(key="task").set_value(EXPAND).run()
    app = complete(app)
    assert not app.error and len(app.dataframe[0].value) == 20
    app = complete(paste(app, " ".join(f"GENE{i}" for i in range(5000))))
    assert any("5,000 identifiers given; at most 2,000" in e.value for e in app.error), [e.value for e in app.error]
    assert not app.get("download_button")  # the earlier result is not shown as if it answered this input


@needs_model
def test_expand_mode_proposes_genes_to_add_with_their_evidence() -> None:
    app = paste(open_page(), PASTED)
    app.number_input(key="n_add").set_value(12).run()
    app = complete(app)
    assert not app.error and not [m for m in app.metric if m.label == "Recall"]  # nothing hidden, nothing to score
    assert any(s.value == "Genes to add (12)" for s in app.subheader)
    table = app.dataframe[0].value
    assert list(table.columns) == TABLE and len(table) == 12 and list(table["rank"]) == list(range(1, 13))
    assert not set(table["gene"]) & PASTED_GENES
    assert (table["supporting_sets"] > 0).all() and table["top_supporting_sets"].str.contains(r"\(\d+/\d+\)").all()
    assert (table["from_retrieval"] + table["from_model"]).tolist() == pytest.approx(table["score"].tolist(), rel=1e-4)

    # per gene: pick one, see its supporting sets and the shares, adding up to its score
    picker = app.selectbox(key="evidence_gene")
    assert picker.options == [f"#{r} {g}" for r, g in zip(table["rank"], table["gene"])]
    for index in (0, 2):
        picker.set_value(table["gene"][index]).run()
        assert not app.exception
        tiles = {m.label: m.value for m in app.metric}
        assert list(tiles) == EVIDENCE_TILES and tiles["Score"] == f"{table['score'][index]:.3g}"
        assert tiles["Supporting sets"] == f"{table['supporting_sets'][index]:,}"
        sets = app.dataframe[1].value
        assert list(sets.columns) == ["source", "set", "description", "overlap", "size", "contribution"]
        assert sets["source"].iloc[-1] == "model" and len(sets) == table["supporting_sets"][index] + 1
        assert sets["contribution"].sum() == pytest.approx(table["score"][index], rel=1e-4)
        named = sets[sets["source"] == "training set"]
        assert (named["overlap"] >= 1).all() and (named["overlap"] <= named["size"]).all()
        assert (named["description"] != "").all()  # a biologist reads the set's name in words
    assert any(c.value.startswith("Score = from retrieval + from the model") for c in app.caption)

    # the evidence download: every prediction, contributions adding up to its score
    report = app.session_state["completion"][1]
    evidence = pd.read_csv(io.BytesIO(report.evidence_csv))
    assert list(evidence.columns) == ["rank", "gene", "source", "set", "description", "overlap", "size",
                                      "contribution"]
    assert list(dict.fromkeys(evidence["gene"])) == list(table["gene"])
    sums = evidence.groupby("gene", sort=False)["contribution"].sum()
    assert sums.tolist() == pytest.approx(table["score"].tolist(), rel=1e-4)
    assert (evidence.groupby("gene")["source"].apply(lambda s: (s == "training set").sum()) <= EVIDENCE_SETS).all()
    assert "Download the evidence (CSV)" in [d.label for d in app.get("download_button")]


@needs_model
def test_searched_corpus_pathway_completes_with_its_split() -> None:
    app = open_page()
    hide_and_recover(app)
    app.text_input[0].input("apoptotic").run()
    corpus = load_corpus()
    chosen = app.selectbox[0].options[1]
    name = next(p.name for p in corpus.search("apoptotic") if chosen.startswith(p.name + ":"))
    app.selectbox[0].set_value(name).run()
    app = complete(app)
    expected = mask_pathway(corpus[name].genes, 0.8, 0)
    assert any(m.value.startswith(f"**Prompt** ({len(expected.prompt)} genes") for m in app.markdown)
    assert [m.label for m in app.metric][0] == "Recall"
    assert app.metric[0].value.endswith(f"/{len(expected.masked)})")


@needs_model
def test_sample_mode_and_no_masking() -> None:
    app = paste(open_page(), PASTED)
    app.radio(key="mode").set_value("sample").run()
    app.number_input(key="n_add").set_value(5).run()
    app = complete(app)
    assert not app.error and [m.label for m in app.metric] == EVIDENCE_TILES  # nothing hidden: no recall
    assert len(app.dataframe[0].value) == 5
    assert any("Nothing was hidden" in c.value for c in app.caption)
    assert any(c.value.startswith("Retrieval has no part in this ranking") for c in app.caption)


@needs_model
def test_uploaded_gmt_with_a_bad_line_and_an_oversized_file() -> None:
    app = open_page()
    app.radio[0].set_value("Upload a file").run()
    gmt = b"MY_SET\tmy set\tTP53\tMDM2\tCDKN1A\tBAX\tBBC3\nno tabs here\nOTHER\t\tEGFR\tERBB2\tGRB2\n"
    app.file_uploader[0].upload("mine.gmt", gmt, "text/plain").run()
    assert not app.exception
    assert any("line 2" in w.value for w in app.warning)
    assert app.selectbox[0].options == ["MY_SET (5 genes)", "OTHER (3 genes)"]
    app = complete(hide_and_recover(app))
    assert not app.error and app.metric[0].label == "Recall"
    app.file_uploader[0].upload("huge.txt", b"TP53 " * (1_100_000), "text/plain").run()
    assert not app.exception and any("the limit is 5.0 MB" in e.value for e in app.error)


def test_missing_model_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    load = PathwayCompleter.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(PathwayCompleter, "load",
                        classmethod(lambda cls, *args, **kwargs: load(cls, tmp_path / "pathway-gpt")))
    st.cache_resource.clear()
    try:
        app = open_page()
        assert any("model is not available" in e.value and "cellang train pathway" in e.value for e in app.error)
        assert not app.button  # nothing to press without a model
    finally:
        st.cache_resource.clear()  # the next page run loads the real model again


@needs_model
def test_language_model_only_ranking_differs_from_the_best_ranking() -> None:
    from cellang.completion.completer import RetrievalAugmentedCompleter, load_completer

    shipped = load_completer()
    if not isinstance(shipped, RetrievalAugmentedCompleter):
        pytest.skip("the shipped completer has no retrieval part")
    app = paste(open_page(), PASTED)
    tables = {}
    for choice in ("best on validation", "language model only"):
        app.radio(key="ranking").set_value(choice).run()
        assert any(c.value == shipped.rankings()[choice].describe() for c in app.caption)
        app = complete(app)
        tables[choice] = list(app.dataframe[0].value["gene"])
    assert tables["language model only"] != tables["best on validation"]
    assert set(tables["language model only"]) <= set(shipped.vocabulary.genes)


@needs_model
def test_out_of_range_numbers_are_named_beside_the_button_and_block_it() -> None:
    app = paste(open_page(), PASTED)
    app.number_input(key="seed").set_value(-5).run()
    app.number_input(key="n_add").set_value(100000).run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert any(e.startswith("Seed must be between 0 and") and "got -5" in e for e in errors)
    assert any(e.startswith("Genes to add must be between 0 and 500") for e in errors)
    assert app.button[0].disabled
    app.number_input(key="seed").set_value(0).run()
    app.number_input(key="n_add").set_value(20).run()
    assert not app.error and not app.button[0].disabled
    hide_and_recover(app)
    app.number_input(key="n_predict").set_value(100000).run()
    assert any(e.value.startswith("Genes to predict must be between 0 and 500") for e in app.error)


@needs_model
def test_sampling_is_labelled_as_the_language_model_and_repeats_are_noted() -> None:
    app = paste(open_page(), "TP53 TP53 TP53 MDM2 CDKN1A BAX BBC3 PMAIP1 GADD45A SESN1")
    app.radio(key="mode").set_value("sample").run()
    app = complete(app)
    assert any("Method: pathway-gpt (sample)" in c.value for c in app.caption)
    assert any("2 identifiers named a gene already given" in w.value for w in app.warning)


@needs_model
def test_an_uploaded_file_is_parsed_once_whatever_else_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from cellang.app import completion_report  # where the page takes read_gene_file from

    calls = []
    real = completion_report.read_gene_file
    monkeypatch.setattr(completion_report, "read_gene_file", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    st.cache_data.clear()
    app = open_page()
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("mine.gmt", b"MY_SET\tmy set\tTP53\tMDM2\tCDKN1A\tBAX\tBBC3\n", "text/plain").run()
    app.radio(key="mode").set_value("sample").run()  # unrelated widgets rerun the page
    hide_and_recover(app)
    app.slider(key="mask_ratio").set_value(0.5).run()
    assert not app.exception and calls == ["mine.gmt"]
