"""What the Pathway completion page shows, computed without Streamlit: inputs, metrics, tables, downloads."""

from __future__ import annotations

import gzip
import io
import math

import pandas as pd
import pytest

from cellang.completion.completer import Completion, CompletionError
from cellang.completion.gene_input import (
    GeneInput,
    pathway_choices,
    pathway_label,
    read_gene_file,
)
from cellang.completion.network import CoMembership
from cellang.app.completion_report import CorpusResources, build_report
from cellang.completion.tables import (
    completion_csv,
    completion_gmt,
    completion_metrics,
    completion_table,
    metric_rows,
    prediction_table,
)
from cellang.completion.request import MAX_SAMPLED, CompletionRequest, planned_count, run_completion
from cellang.corpus import load_corpus
from cellang.genes import GeneRecord, GeneResolver, load_resolver, split_genes
from cellang.gmt import parse_gmt
from cellang.stats import overlap_p_value

COMPLETION = Completion(prompt=("A", "B"), predictions=[("C", 0.5), ("D", 0.3), ("E", 0.1)], method="test (ranked)",
                        masked=("C", "F"))


def test_split_genes_accepts_any_separators() -> None:
    text = "TP53, MDM2\tCDKN1A\nBAX;  'BBC3' | \"PMAIP1\"\r\n\n ,, TP53"
    assert split_genes(text) == ["TP53", "MDM2", "CDKN1A", "BAX", "BBC3", "PMAIP1", "TP53"]
    assert split_genes("") == [] and split_genes(" ,\n\t") == []


def test_read_gene_file_gmt_reports_bad_lines() -> None:
    data = b"SET_A\tfirst set\tTP53\tMDM2\tBAX\nbroken line\nSET_B\t\tEGFR\tERBB2\n"
    result = read_gene_file("mine.gmt", data)
    assert [s.name for s in result.gene_sets] == ["SET_A", "SET_B"]
    assert result.gene_sets[0].genes == ("TP53", "MDM2", "BAX")
    assert result.gene_sets[1].description == "SET_B"  # blank description falls back to the name
    assert len(result.problems) == 1 and result.problems[0].startswith("line 2: missing fields")
    zipped = read_gene_file("mine.gmt.gz", gzip.compress(data))
    assert [s.name for s in zipped.gene_sets] == ["SET_A", "SET_B"]
    with pytest.raises(CompletionError, match="no gene set could be read"):
        read_gene_file("bad.gmt", b"only one field\n")


def test_read_gene_file_plain_list_and_limits() -> None:
    result = read_gene_file("genes.txt", b"gene\nTP53\nMDM2, BAX\n\xff\n")
    assert result.gene_sets[0].genes[:3] == ("TP53", "MDM2", "BAX")
    assert result.gene_sets[0].name == "genes"
    assert result.problems == ["some bytes are not UTF-8 text and were replaced"]
    with pytest.raises(CompletionError, match="limit is 5.0 MB"):
        read_gene_file("huge.txt", b"A " * (3 * 1024 * 1024))
    with pytest.raises(CompletionError, match="no gene identifiers"):
        read_gene_file("empty.txt", b" \n\t ")
    zipped = read_gene_file("list.txt.gz", gzip.compress(b"TP53\nMDM2\n"))
    assert zipped.gene_sets[0].genes == ("TP53", "MDM2") and zipped.gene_sets[0].name == "list"
    bomb = gzip.compress(b"A\tB\tTP53\n" * (3 * 1024 * 1024))  # 60 kB that expands to 30 MB
    assert len(bomb) < 100_000
    for name in ("bomb.txt.gz", "bomb.gmt.gz"):  # refused at the upload limit, far below the corpus's 512 MiB
        with pytest.raises(CompletionError, match="over 20.0 MB once decompressed"):
            read_gene_file(name, bomb)
    with pytest.raises(CompletionError, match="not a valid gzip"):
        read_gene_file("broken.txt.gz", b"\x1f\x8bnot really")


def test_metrics_and_tables_of_a_completion() -> None:
    metrics = completion_metrics(COMPLETION, universe=100)
    assert (metrics.overlap, metrics.n_masked, metrics.n_predicted) == (1, 2, 3)
    assert metrics.recall == 0.5 and metrics.precision == pytest.approx(1 / 3)
    assert metrics.p_value == pytest.approx(overlap_p_value(1, 3, 2, 100))
    assert metric_rows(metrics)["Recall"] == "50% (1/2)"
    assert completion_metrics(Completion(("A",), [("B", 1.0)], "m"), universe=10) is None  # nothing masked

    table = prediction_table(COMPLETION)
    assert table.to_dict("list") == {"rank": [1, 2, 3], "gene": ["C", "D", "E"], "score": [0.5, 0.3, 0.1],
                                     "status": ["recovered", "novel", "novel"]}
    rows = completion_table(COMPLETION)
    assert list(rows["status"]) == ["prompt", "prompt", "recovered", "novel", "novel", "missed"]
    assert rows["score"].isna().sum() == 3 and rows["gene"].iloc[-1] == "F"  # hidden, not predicted
    assert rows["rank"].tolist()[2:5] == [1, 2, 3] and rows["rank"].isna().sum() == 3


def test_csv_and_gmt_downloads_round_trip() -> None:
    frame = pd.read_csv(io.BytesIO(completion_csv(COMPLETION)))
    assert list(frame.columns) == ["rank", "gene", "score", "status", "method", "mask_ratio", "seed"]
    assert list(frame["gene"]) == ["A", "B", "C", "D", "E", "F"]
    assert math.isnan(frame["score"][0]) and frame["score"][2] == 0.5 and frame["rank"][2] == 1
    assert set(frame["method"]) == {"test (ranked)"} and set(frame["mask_ratio"]) == {0.0}
    gene_set = parse_gmt(completion_gmt(COMPLETION, "GO:0000001\tmine", "my pathway")).gene_sets[0]
    assert gene_set.name == "GO:0000001 mine_completed"  # a tab cannot break the GMT line
    assert gene_set.genes == ("A", "B", "C", "D", "E")
    assert "my pathway" in gene_set.description and "test (ranked)" in gene_set.description


def test_planned_count() -> None:
    assert planned_count(CompletionRequest(("A",) * 10, mask_ratio=0.8), 10) == 8
    assert planned_count(CompletionRequest(("A",), mask_ratio=0.0), 10) == 20
    assert planned_count(CompletionRequest(("A",), n=7), 10) == 7
    assert planned_count(CompletionRequest(("A",), mask_ratio=0.8, mode="sample"), 400) == MAX_SAMPLED


def test_a_request_is_checked_once_when_it_is_made() -> None:
    with pytest.raises(CompletionError, match="no genes given") as caught:
        CompletionRequest(())
    assert caught.value.problems == ["no genes given: pick a pathway, paste genes or upload a file"]
    with pytest.raises(CompletionError) as caught:
        CompletionRequest(("A", "B"), mask_ratio=1.5, seed=-1)
    assert len(caught.value.problems) == 2 and all("Mask ratio" in p or "Seed" in p for p in caught.value.problems)
    with pytest.raises(CompletionError, match="mode must be one of"):
        CompletionRequest(("A",), mode="beam")
    assert CompletionRequest(["A", "B"]).genes == ("A", "B") and CompletionRequest(("A",)).mask_ratio == 0.0


class FakeVocabulary:
    def __init__(self, genes: list[str]) -> None:
        self.genes = tuple(genes)

    def __contains__(self, gene: object) -> bool:
        return gene in self.genes


class FakeCompleter:
    """Records what it was asked; predicts genes G0, G1, ... (not the input)."""

    def __init__(self, genes: list[str]) -> None:
        self.vocabulary = FakeVocabulary(genes)
        self.calls: list[dict] = []

    def complete(self, genes, *, mask_ratio, seed, n, mode, temperature, top_k, n_samples, resolver):  # type: ignore[no-untyped-def]
        self.calls.append({"genes": genes, "mask_ratio": mask_ratio, "n": n, "mode": mode})
        known = [g for g in resolver.harmonise(genes).symbols if g in self.vocabulary]
        cut = max(1, round((mask_ratio or 0) * len(known))) if mask_ratio else 0
        return Completion(tuple(known[cut:]), [(f"G{i}", 1.0 / (i + 1)) for i in range(n)], f"fake ({mode})",
                          tuple(known[:cut]), resolver.harmonise(genes), [])


@pytest.fixture(scope="module")
def small_resolver() -> GeneResolver:
    return GeneResolver(GeneRecord(f"P{i}", "", "", "", "", "") for i in range(300))


def test_run_completion_caps_sampling_and_explains(small_resolver: GeneResolver) -> None:
    completer = FakeCompleter([f"P{i}" for i in range(300)])
    genes = tuple(f"P{i}" for i in range(100))
    completion = run_completion(completer, CompletionRequest(genes, 0.8, mode="sample"), small_resolver)
    assert completer.calls[-1]["n"] == MAX_SAMPLED and len(completion.predictions) == MAX_SAMPLED
    assert any(f"at most {MAX_SAMPLED}" in note for note in completion.notes)
    run_completion(completer, CompletionRequest(genes, 0.0, n=5), small_resolver)
    assert completer.calls[-1]["mask_ratio"] is None and completer.calls[-1]["n"] == 5
    with pytest.raises(CompletionError, match="no genes given"):
        run_completion(completer, CompletionRequest(()), small_resolver)
    with pytest.raises(CompletionError, match="at most"):
        run_completion(completer, CompletionRequest(tuple(f"X{i}" for i in range(5000))), small_resolver)


def test_build_report_puts_everything_together() -> None:
    train = [["A", "B", "C"], ["A", "C"], ["B", "D"], ["A", "B", "C", "F"]]
    resources = CorpusResources(CoMembership(train), {"S1": ["A", "B", "C", "F"], "S2": ["D", "E", "X", "Y"]},
                                {"S1": "set one", "S2": "set two"})
    universe = ["A", "B", "C", "D", "E", "F"] + [f"U{i}" for i in range(200)]
    report = build_report(COMPLETION, GeneInput(("A", "B", "C", "F"), "my set", "my description"), resources,
                          universe)
    assert report.metrics is not None and report.metrics.universe == len(universe)
    assert report.missed == ["F"]
    assert {g: d["role"] for g, d in report.graph.nodes(data=True)} == {
        "A": "prompt", "B": "prompt", "C": "recovered", "D": "novel", "E": "novel"}
    assert report.graph["C"]["A"]["weight"] == 3
    assert "<script src" not in report.network_html
    assert list(report.enrichment["name"]) == ["S2", "S1"]  # predictions C, D, E: two of S2, one of S1
    assert report.reading.startswith("The completed genes")
    assert report.file_stem == "my_set_completion"
    assert parse_gmt(report.gmt).gene_sets[0].name == "my set_completed"
    assert report.csv.decode().splitlines()[0] == "rank,gene,score,status,method,mask_ratio,seed"


def test_pathway_choices_default_to_the_benchmark_and_label_the_split() -> None:
    corpus = load_corpus()
    default = pathway_choices(corpus, load_resolver(), "")
    assert default.pathways and all(p.benchmark for p in default.pathways)
    assert default.total == len(corpus.benchmark()) and 15 <= len(default.pathways[default.default_index].genes) <= 60
    assert "never trained on" in pathway_label(default.pathways[0])
    hits = pathway_choices(corpus, load_resolver(), "p53", limit=50)
    assert "alias of TP53" in hits.note and len(hits.pathways) <= 50 and hits.default_index == 0
    if hits.total > 50:
        assert f"first 50 of {hits.total:,}" in hits.note
    splits = [p.split for p in hits.pathways]
    assert splits == sorted(splits, key=lambda s: s != "test")  # held-out pathways first
    train = next(p for p in corpus.pathways if p.split == "train")
    assert "seen in training" in pathway_label(train)


# --- evidence: a small retrieval-augmented completer (an untrained GPT mixed half and half with retrieval) ---

EVIDENCE_GENES = [f"M{m}G{g}" for m in range(4) for g in range(10)]


@pytest.fixture(scope="module")
def evidence_completer():  # type: ignore[no-untyped-def]
    import numpy as np
    import torch

    from cellang.completion.completer import RetrievalAugmentedCompleter
    from cellang.completion.retrieval import SetRetrievalCompleter
    from cellang.models.gpt import GPT, GPTConfig
    from cellang.tokenizers.pathway import PathwayVocabulary

    rng = np.random.default_rng(0)
    modules = [EVIDENCE_GENES[m * 10:(m + 1) * 10] for m in range(4)]
    sets = [tuple(rng.choice(modules[rng.integers(4)], size=rng.integers(3, 8), replace=False).tolist())
            for _ in range(60)]
    names = [f"SET{i}" for i in range(len(sets))]
    vocabulary = PathwayVocabulary.from_gene_sets(modules)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocabulary), block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    retrieval = SetRetrievalCompleter(sets, vocabulary.genes, alpha=1.0, power=2.0, names=names)
    completer = RetrievalAugmentedCompleter(model, vocabulary, retrieval, 0.5, window=12, n_orders=2,
                                            device=torch.device("cpu"))
    resolver = GeneResolver(GeneRecord(g, "", "", "", "", "") for g in EVIDENCE_GENES)
    descriptions = {name: f"set number {i}" for i, name in enumerate(names)}
    return completer, resolver, descriptions


def test_prediction_table_and_csv_carry_each_predictions_evidence(evidence_completer) -> None:  # type: ignore[no-untyped-def]
    from cellang.completion.tables import EVIDENCE_COLUMNS

    completer, resolver, _ = evidence_completer
    genes = tuple(EVIDENCE_GENES[:8])  # module 0, most of it
    completion = run_completion(completer, CompletionRequest(genes, mask_ratio=0.5, n=6), resolver)
    assert len(completion.evidence) == 6 and len(completion.masked) == 4
    table = prediction_table(completion)
    assert list(table.columns) == ["rank", "gene", "score", "status", *EVIDENCE_COLUMNS]
    assert (table["from_retrieval"] + table["from_model"]).tolist() == pytest.approx(table["score"].tolist())
    assert table["from_retrieval"].gt(0).any() and table["from_model"].abs().gt(1e-4).any()  # both parts count
    for row, item in zip(table.itertuples(index=False), completion.evidence):
        assert row.gene == item.gene and row.supporting_sets == len(item.sets)
        assert row.top_supporting_sets == item.summary() and ("SET" in row.top_supporting_sets) == bool(item.sets)

    frame = pd.read_csv(io.BytesIO(completion_csv(completion)), keep_default_na=False)
    assert list(frame.columns) == ["rank", "gene", "score", "status", *EVIDENCE_COLUMNS, "method", "mask_ratio",
                                   "seed"]
    others = frame[frame["status"].isin(["prompt", "missed"])]
    assert len(others) >= 4 and (others[EVIDENCE_COLUMNS] == "").all().all()  # blank, not 0
    predicted = frame[frame["status"].isin(["recovered", "novel"])]
    assert predicted["gene"].tolist() == table["gene"].tolist()
    assert predicted["supporting_sets"].astype(int).tolist() == table["supporting_sets"].tolist()
    assert predicted["from_model"].astype(float).tolist() == pytest.approx(table["from_model"].tolist(), rel=1e-5)
    assert set(frame["mask_ratio"]) == {0.5}


def test_a_test_on_a_training_set_says_it_measures_memory(evidence_completer) -> None:  # type: ignore[no-untyped-def]
    completer, resolver, _ = evidence_completer
    trained = completer.evidence.members[0].indices
    genes = tuple(completer.evidence.universe[i] for i in trained)
    name, jaccard = completer.evidence.nearest_set(genes)
    assert jaccard == 1.0
    tested = run_completion(completer, CompletionRequest(genes, mask_ratio=0.5), resolver)
    assert tested.notes[0].startswith(f"This gene set is the training set {name}") and "memory" in tested.notes[0]
    expanded = run_completion(completer, CompletionRequest(genes, mask_ratio=0.0, n=3), resolver)
    assert not any("memory" in note for note in expanded.notes)  # expanding a list is no test
    mixed = tuple(EVIDENCE_GENES[g] for g in (0, 11, 22, 33, 1, 12))  # one or two genes of each module
    assert not any("memory" in note for note in
                   run_completion(completer, CompletionRequest(mixed, mask_ratio=0.5), resolver).notes)


def test_sample_mode_says_it_draws_from_the_language_model_with_its_benchmark_row(evidence_completer) -> None:  # type: ignore[no-untyped-def]
    completer, resolver, _ = evidence_completer
    completion = run_completion(completer, CompletionRequest(tuple(EVIDENCE_GENES[:6]), mask_ratio=0.0, n=3,
                                                             mode="sample"), resolver)
    note = next(note for note in completion.notes if note.startswith("Sample mode"))
    assert "language model alone" in note and "of 1,000 pathways" in note and "shipped completer's" in note


def test_evidence_table_rows_add_up_to_each_predictions_score(evidence_completer) -> None:  # type: ignore[no-untyped-def]
    from cellang.completion.tables import evidence_csv, evidence_table, gene_evidence, gene_evidence_table

    completer, resolver, descriptions = evidence_completer
    completion = run_completion(completer, CompletionRequest(tuple(EVIDENCE_GENES[:5]), mask_ratio=0.0, n=8),
                                resolver)
    scores = dict(completion.predictions)
    for top in (10, 2):
        table = evidence_table(completion, descriptions, top=top)
        assert list(table.columns) == ["rank", "gene", "source", "set", "description", "overlap", "size",
                                       "contribution"]
        assert list(dict.fromkeys(table["gene"])) == completion.genes  # every prediction, best first
        assert list(dict.fromkeys(table["rank"])) == list(range(1, 9))
        for gene, rows in table.groupby("gene", sort=False):
            item = gene_evidence(completion, gene)
            assert rows["contribution"].sum() == pytest.approx(scores[gene], rel=1e-4)
            assert rows["source"].iloc[-1] == "model"
            named = rows[rows["source"] == "training set"]
            assert len(named) == min(top, len(item.sets))
            assert list(named["set"]) == [s.name for s in item.sets[:top]]
            assert (named["description"] == [descriptions[n] for n in named["set"]]).all()
            assert ((named["overlap"] >= 1) & (named["overlap"] <= named["size"])).all()
            rest = rows[rows["source"].str.endswith("other training sets")]
            assert len(rest) == (len(item.sets) > top)
        assert (table["source"] == "model").sum() == 8
    assert table["source"].str.endswith("other training sets").any()  # top=2 leaves sets over for some gene

    frame = pd.read_csv(io.BytesIO(evidence_csv(completion, descriptions)))
    assert frame.groupby("gene", sort=False)["contribution"].sum().tolist() == pytest.approx(
        [scores[g] for g in completion.genes], rel=1e-4)
    item = gene_evidence(completion, completion.genes[0])
    whole = gene_evidence_table(item, descriptions)
    assert len(whole) == len(item.sets) + 1 and whole["contribution"].sum() == pytest.approx(item.score, rel=1e-4)
    assert gene_evidence(completion, "NOT_PREDICTED") is None


def test_expanding_a_list_hides_nothing_and_proposes_genes_to_add(evidence_completer) -> None:  # type: ignore[no-untyped-def]
    from cellang.completion.request import EXPAND_N

    completer, resolver, descriptions = evidence_completer
    genes = ("M1G0", "M1G1", "M1G2", "NOTAGENE")
    completion = run_completion(completer, CompletionRequest(genes, mask_ratio=0.0), resolver)
    assert completion.prompt == genes[:3] and not completion.masked and completion.mask_ratio is None
    assert len(completion.predictions) == EXPAND_N and not set(completion.genes) & set(genes)
    assert set(prediction_table(completion)["status"]) == {"novel"}
    assert completion_metrics(completion, 40) is None
    resources = CorpusResources(CoMembership([list(genes[:3])]), {"SET0": ["M1G0", "M1G5"]}, descriptions)
    report = build_report(completion, GeneInput(genes, "hits", "my hits"), resources, EVIDENCE_GENES)
    assert report.expanded and len(report.evidence) >= EXPAND_N * 2
    assert report.evidence_csv.decode().splitlines()[0] == "rank,gene,source,set,description,overlap,size,contribution"
    assert report.csv.decode().splitlines()[0].startswith("rank,gene,score,status,from_retrieval,from_model,")
    assert report.set_descriptions is descriptions
    # one known gene: expanding it works; hiding part of it cannot
    assert len(run_completion(completer, CompletionRequest(("M2G3",), mask_ratio=0.0, n=3), resolver).genes) == 3
    with pytest.raises(CompletionError, match=r"only one of the genes given \(M2G3\).*Expand the list"):
        run_completion(completer, CompletionRequest(("M2G3", "NOTAGENE"), mask_ratio=0.5), resolver)
    with pytest.raises(CompletionError, match="none of the genes"):
        run_completion(completer, CompletionRequest(("NOTAGENE",), mask_ratio=0.0), resolver)


def test_a_completion_without_evidence_keeps_the_plain_columns() -> None:
    from cellang.completion.tables import evidence_note, evidence_table, gene_evidence

    assert list(completion_table(COMPLETION).columns) == ["rank", "gene", "score", "status", "method", "mask_ratio",
                                                          "seed"]
    assert evidence_table(COMPLETION).empty and list(evidence_table(COMPLETION).columns)[:3] == ["rank", "gene",
                                                                                                 "source"]
    assert gene_evidence(COMPLETION, "C") is None and evidence_note(COMPLETION) == ""


def test_evidence_tiles_show_the_shares_and_hide_rounding_noise() -> None:
    from cellang.completion.evidence import GeneEvidence, SupportingSet
    from cellang.completion.tables import evidence_shares, gene_evidence_table

    item = GeneEvidence("ATM", 0.01, 0.01 - 4e-10, 4e-10, (SupportingSet("WP1", 4, 19, 0.006),
                                                          SupportingSet("GO:1", 3, 18, 0.004 - 4e-10)))
    assert evidence_shares(item) == {"Score": "0.01", "From retrieval": "0.01 (100%)", "From the model": "0 (0%)",
                                     "Supporting sets": "2"}
    assert gene_evidence_table(item)["contribution"].tolist()[-1] == 0.0
    mixed = GeneEvidence("X", 0.02, 0.015, 0.005, (SupportingSet("S", 2, 5, 0.015),))
    assert evidence_shares(mixed)["From the model"] == "0.005 (25%)"
    assert evidence_shares(mixed)["From retrieval"] == "0.015 (75%)"
