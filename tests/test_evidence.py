"""Evidence for every prediction: the supporting training sets and the model's share add up to the score."""

from __future__ import annotations

import numpy as np
import pytest

from cellang.completion.evidence import explain
from cellang.completion.retrieval import SetRetrievalCompleter

UNIVERSE = [f"G{i:02d}" for i in range(30)]


def random_sets(n: int, seed: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(UNIVERSE, size=rng.integers(2, 9), replace=False).tolist()) for _ in range(n)]


@pytest.mark.parametrize("alpha,power", [(0.0, 1.0), (1.5, 6.0)])
def test_set_shares_add_up_to_the_retrieval_probability(alpha: float, power: float) -> None:
    sets = random_sets(40, 1)
    retrieval = SetRetrievalCompleter(sets, UNIVERSE, alpha=alpha, power=power, names=[f"S{i}" for i in range(40)])
    prompt = ["G01", "G02", "G03", "G04"]
    probabilities = retrieval.probabilities([prompt])[0]
    support = retrieval.support(prompt, UNIVERSE)
    for gene, rows in zip(UNIVERSE, support):
        assert sum(share for _, _, share in rows) == pytest.approx(float(probabilities[UNIVERSE.index(gene)]), abs=1e-6)
        for row, overlap, share in rows:  # each supporting set holds the gene and shares `overlap` prompt genes
            assert gene in sets[row] and overlap == len(set(prompt) & set(sets[row])) > 0 and share > 0
        assert [s for _, _, s in rows] == sorted((s for _, _, s in rows), reverse=True)
    assert support[UNIVERSE.index("G01")] == []  # a prompt gene has no support


@pytest.mark.parametrize("weight", [0.0, 0.4, 1.0])
def test_evidence_rows_add_up_to_the_score(weight: float) -> None:
    retrieval = SetRetrievalCompleter(random_sets(40, 2), UNIVERSE, alpha=1.0, power=2.0,
                                      names=[f"S{i}" for i in range(40)])
    prompt = ["G05", "G06", "G07"]
    scores = np.random.default_rng(0).random(5)
    predictions = [(gene, float(score)) for gene, score in zip(["G08", "G09", "G10", "G11", "G29"], scores)]
    evidence = explain(retrieval, prompt, predictions, weight)
    assert [e.gene for e in evidence] == [g for g, _ in predictions]
    probabilities = retrieval.probabilities([prompt])[0]
    for item, (gene, score) in zip(evidence, predictions):
        assert item.from_retrieval == pytest.approx(weight * probabilities[UNIVERSE.index(gene)], abs=1e-6)
        for top in (None, 2):  # with every set named, or two and the rest summed in one row
            rows = item.rows(top)
            assert sum(row["contribution"] for row in rows) == pytest.approx(score, abs=1e-9)
            assert rows[-1]["source"] == "model"
        assert item.from_model == pytest.approx(score - item.from_retrieval)


def test_evidence_refuses_a_weight_outside_zero_to_one() -> None:
    retrieval = SetRetrievalCompleter(random_sets(5, 3), UNIVERSE)
    with pytest.raises(ValueError, match="retrieval weight"):
        explain(retrieval, ["G01"], [("G02", 0.5)], 1.5)


def test_supporting_sets_show_their_description_beside_their_id() -> None:
    sets = [("G00", "G01", "G02"), ("G00", "G01", "G03")]
    retrieval = SetRetrievalCompleter(sets, UNIVERSE, names=["GO:0006096", "KEGG_hsa00010"],
                                      descriptions=["glycolytic process", "Glycolysis / Gluconeogenesis (KEGG hsa00010, "
                                                                          "2011 gene list)"])
    evidence = explain(retrieval, ["G00", "G01"], [("G02", 0.5), ("G03", 0.5)], 1.0)
    assert evidence[0].summary() == "GO:0006096 glycolytic process (2/3)"
    assert evidence[1].summary().startswith("KEGG_hsa00010 Glycolysis / Gluconeogenesis")
    plain = SetRetrievalCompleter(sets, UNIVERSE, names=["S1", "S2"])  # no descriptions: the id alone
    assert explain(plain, ["G00", "G01"], [("G02", 0.5)], 1.0)[0].summary() == "S1 (2/3)"
    with pytest.raises(ValueError, match="descriptions"):
        SetRetrievalCompleter(sets, UNIVERSE, names=["S1", "S2"], descriptions=["one"])


def test_kegg_sets_are_named_from_keggs_own_table(tmp_path) -> None:
    from cellang.corpus import load_corpus
    from cellang.corpus.readers import kegg_names

    table = tmp_path / "kegg.csv"
    table.write_text(",Pathway_name,0\nhsa00010,Glycolysis / Gluconeogenesis - Homo sapiens (human),C00221\n")
    assert kegg_names(table) == {"hsa00010": "Glycolysis / Gluconeogenesis"}
    kegg = [p for p in load_corpus().pathways if p.source == "KEGG"]
    named = [p for p in kegg if "2011 gene list" in p.description]
    assert len(named) >= 0.95 * len(kegg)
    assert next(p for p in kegg if p.name == "KEGG_hsa00010").description.startswith("Glycolysis / Gluconeogenesis")
