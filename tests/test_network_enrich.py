"""Co-membership network and corpus enrichment on tiny synthetic gene sets with known answers."""

from __future__ import annotations

import re
import socket

import numpy as np
import pandas as pd
import pytest

from cellang.completion.network import ROLE_COLOURS, CoMembership, co_membership_graph, render_network_html
from cellang.enrich import COLUMNS, enrich_against_corpus, format_q, plain_reading, significance_note
from cellang.stats import overlap_p_value
from cellang.text import out_of_range, plural

# A, B, C are the prompt; X shares 3 sets with A, 2 with B, 1 with C; Y shares 1 with B and C; Z none.
TRAIN = [["A", "B", "X"], ["A", "X"], ["B", "X", "Y"], ["C", "Y"], ["A", "C", "X"], ["Q", "R"]]
EVIL = "<img src=x onerror=alert(1)>"


def test_co_membership_counts_shared_sets() -> None:
    co = CoMembership(TRAIN)
    counts = co.shared(["X", "Y", "Z"], ["A", "B", "C"])
    assert counts.tolist() == [[3, 2, 1], [0, 1, 1], [0, 0, 0]]
    assert co.shared(["A"], ["A"]).tolist() == [[3]]
    assert co.shared([], ["A"]).shape == (0, 1)
    assert "X" in co and "Z" not in co and co.n_sets == len(TRAIN)


def test_graph_links_each_prediction_to_its_strongest_prompt_genes() -> None:
    graph = co_membership_graph(["A", "B", "C"], [("X", 0.5), ("Y", 0.3), ("Z", 0.1)], TRAIN,
                                max_edges_per_gene=2, masked={"X", "C"})
    assert {g: d["role"] for g, d in graph.nodes(data=True)} == {
        "A": "prompt", "B": "prompt", "C": "prompt", "X": "recovered", "Y": "novel", "Z": "novel"}
    assert graph.nodes["X"]["score"] == 0.5 and graph.nodes["Z"]["rank"] == 3
    edges = {frozenset((a, b)): d["weight"] for a, b, d in graph.edges(data=True)}
    assert edges == {frozenset("XA"): 3, frozenset("XB"): 2, frozenset("YB"): 1, frozenset("YC"): 1}
    assert graph.degree("Z") == 0  # no shared set: no edge of weight 0


def test_graph_edge_limit_prebuilt_index_and_edge_cases() -> None:
    co = CoMembership(TRAIN)
    one = co_membership_graph(["A", "B", "C"], [("X", 0.5)], co, max_edges_per_gene=1)
    assert [(a, b, d["weight"]) for a, b, d in one.edges(data=True)] == [("A", "X", 3)]
    assert one.nodes["X"]["role"] == "novel"  # no masked set given: predictions are novel
    none = co_membership_graph(["A"], [("X", 0.5)], co, max_edges_per_gene=0)
    assert none.number_of_edges() == 0
    # a predicted prompt gene stays a prompt node; a repeated prediction keeps its first score
    odd = co_membership_graph(["A", "B"], [("A", 0.9), ("X", 0.5), ("X", 0.1)], co)
    assert odd.nodes["A"]["role"] == "prompt" and odd.nodes["X"]["score"] == 0.5
    trimmed = co_membership_graph(["A", "B", "C", "Q"], [("Y", 0.3)], co, keep_isolated_prompt=False)
    assert set(trimmed.nodes) == {"B", "C", "Y"}
    with pytest.raises(ValueError):
        co_membership_graph(["A"], [], co, max_edges_per_gene=-1)


def _network_page() -> str:
    graph = co_membership_graph(["A", "B", EVIL], [("X", 0.5), ("Y", 0.3), (EVIL + "2", 0.2)],
                                TRAIN + [[EVIL, "X"]], masked={"X"})
    return render_network_html(graph)


def test_network_html_is_offline_escaped_and_deterministic() -> None:
    page = _network_page()
    assert "vis.Network" in page and "new vis.DataSet" in page  # the library is inlined
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b[^>]*\bhref\s*=", page, re.IGNORECASE)
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.IGNORECASE)
    assert EVIL not in page and "<img" not in page
    for colour in ROLE_COLOURS.values():
        assert colour in page
    assert _network_page() == page


def test_network_html_of_an_empty_graph_renders() -> None:
    page = render_network_html(co_membership_graph([], [], TRAIN))
    assert "new vis.DataSet([])" in page


# --- enrichment -------------------------------------------------------------------------------

def _corpus(seed: int = 0) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """40 random sets over 400 genes (upper case) and a planted set of C..orf.. genes placed last,
    so gseapy's 'is the query mostly upper case?' check would upper-case a query of them."""
    rng = np.random.default_rng(seed)
    universe = [f"GENE{i}" for i in range(380)] + [f"C{i}orf{i + 7}" for i in range(20)]
    sets = {f"RANDOM_{i:02d}": list(rng.choice(universe[:380], size=rng.integers(10, 40), replace=False))
            for i in range(40)}
    planted = universe[380:]
    sets["PLANTED"] = planted
    query = planted[:12] + ["GENE1", "GENE2", "GENE3"]
    return sets, universe, query


def test_enrichment_finds_the_planted_set_first_and_reads_it() -> None:
    sets, universe, query = _corpus()
    descriptions = {name: name.lower().replace("_", " ") for name in sets} | {"PLANTED": "planted module"}
    for background in (len(universe), universe):
        table = enrich_against_corpus(query, sets, background, descriptions=descriptions)
        assert list(table.columns) == COLUMNS
        top = table.iloc[0]
        assert top["name"] == "PLANTED" and top["description"] == "planted module"
        assert top["overlap"] == "12/20"
        assert top["genes"].split() == query[:12]  # mixed-case symbols kept exactly, in query order
        assert top["p"] == pytest.approx(overlap_p_value(12, len(query), 20, len(universe)), rel=1e-9)
        assert top["q"] < 1e-10
        assert table["p"].is_monotonic_increasing and (table["q"] >= table["p"] - 1e-15).all()
        assert len(table) <= 10
    reading = plain_reading(table)
    assert reading.startswith("The completed genes most resemble: planted module (q = ")
    assert reading.endswith(".")


def test_enrichment_q_counts_every_set_tested() -> None:
    sets = {f"S{i}": [f"G{i}_{j}" for j in range(5)] for i in range(50)}
    table = enrich_against_corpus(["G0_0", "G0_1"], sets, 1000, top=None)
    assert list(table["name"]) == ["S0"]
    assert table["q"].iloc[0] == pytest.approx(min(1.0, table["p"].iloc[0] * 50))


def test_enrichment_empty_inputs_give_an_empty_table() -> None:
    sets, universe, query = _corpus()
    cases = [
        enrich_against_corpus([], sets, 400),
        enrich_against_corpus(["NOT_A_GENE"], sets, 400),  # no overlap
        enrich_against_corpus(query, {}, 400),
        enrich_against_corpus(query, sets, ["OTHER"]),  # nothing in the background
        enrich_against_corpus(["", "  "], sets, 400),
    ]
    for table in cases:
        assert table.empty and list(table.columns) == COLUMNS
    assert plain_reading(cases[0]) == ("The completed genes do not resemble any corpus pathway "
                                       "(no term with q < 0.05).")
    with pytest.raises(TypeError):
        enrich_against_corpus(query, sets, "hsapiens_gene_ensembl")  # would download from BioMart


def test_enrichment_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    sets, universe, query = _corpus()
    assert enrich_against_corpus(query, sets, universe).iloc[0]["name"] == "PLANTED"
    numeric = {"N1": ["1", "2", "3", "4"], "N2": ["5", "6", "7"]}  # all-digit symbols are not Entrez ids here
    assert enrich_against_corpus(["1", "2", "3"], numeric, 100).iloc[0]["overlap"] == "3/4"


def test_plain_reading_lists_up_to_n_significant_terms() -> None:
    table = pd.DataFrame({"name": list("abcd"), "description": ["alpha", "beta", "gamma", "delta"],
                          "overlap": ["1/2"] * 4, "p": [1e-10, 1e-6, 1e-3, 0.2],
                          "q": [1.23e-8, 4.5e-5, 0.012, 0.4], "genes": ["X"] * 4})
    assert plain_reading(table) == ("The completed genes most resemble: alpha (q = 1.2e-8), beta (q = 4.5e-5), "
                                    "and gamma (q = 0.012).")
    assert plain_reading(table, n=2) == "The completed genes most resemble: alpha (q = 1.2e-8) and beta (q = 4.5e-5)."
    assert plain_reading(table.iloc[2:]) == "The completed genes most resemble: gamma (q = 0.012)."
    assert plain_reading(table.iloc[3:]).endswith("do not resemble any corpus pathway (no term with q < 0.05).")
    assert format_q(0.0) == "< 1e-300"


def test_significance_note_only_when_nothing_is_significant() -> None:
    table = pd.DataFrame({"q": [0.2, 0.9]})
    assert significance_note(table).startswith("No gene set is significant (every q >= 0.05)")
    assert significance_note(pd.DataFrame({"q": [0.01, 0.9]})) == ""
    assert significance_note(pd.DataFrame({"q": []})) == "No gene set overlaps these genes."


def test_counts_agree_with_their_nouns_and_ranges_are_named() -> None:
    assert [plural(n, "cell") for n in (0, 1, 2, 2874)] == ["0 cells", "1 cell", "2 cells", "2,874 cells"]
    assert plural(1, "gene set", "gene sets") == "1 gene set"
    assert out_of_range("Seed", -5, 0, 10) == "Seed must be between 0 and 10; got -5."
    assert out_of_range("Top-k", 0, 1) == "Top-k must be at least 1; got 0." and out_of_range("Seed", 3, 0, 10) is None
    assert out_of_range("Ratio", float("nan"), 0.0, 1.0) is not None
