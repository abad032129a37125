"""The benchmark harness: masks, scoring, summaries and external GMT input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cellang.completion import benchmark as bench
from cellang.genes import GeneRecord, GeneResolver
from cellang.stats import benjamini_hochberg, overlap_p_value

PATHWAYS = [(f"P{i}", tuple(f"G{i * 10 + j}" for j in range(5 + i))) for i in range(6)]


class Oracle:
    """Predicts the masked genes exactly (knows the cases)."""

    name = "oracle"

    def __init__(self, cases: Sequence[bench.Case]):
        self.answers = {case.prompt: case.masked for case in cases}

    def rank(self, prompts, n):  # type: ignore[no-untyped-def]
        return [[(g, 1.0) for g in self.answers[tuple(p)][:k]] for p, k in zip(prompts, n)]


class Wrong:
    name = "wrong"

    def rank(self, prompts, n):  # type: ignore[no-untyped-def]
        return [[(f"X{j}", 0.0) for j in range(k)] for k in n]


def test_cases_are_seeded_per_pathway_and_mask_80_percent() -> None:
    cases = bench.make_cases(PATHWAYS, 0.8, seed=0)
    assert cases == bench.make_cases(PATHWAYS, 0.8, seed=0)
    assert [len(c.masked) for c in cases] == [4, 5, 6, 6, 7, 8]
    assert bench.make_cases(PATHWAYS, 0.8, seed=1) != cases


def test_oracle_and_wrong_methods_score_as_expected() -> None:
    cases = bench.make_cases(PATHWAYS, 0.8, seed=0)
    per_case, summary = bench.run(cases, [Oracle(cases), Wrong()], universe_size=1000)
    oracle = per_case[per_case.method == "oracle"]
    assert (oracle.recall == 1.0).all() and (oracle.precision == 1.0).all() and oracle.significant.all()
    wrong = per_case[per_case.method == "wrong"]
    assert (wrong.overlap == 0).all() and (wrong.p_value == 1.0).all() and not wrong.significant.any()
    row = summary.set_index("method")
    assert row.loc["oracle", "significant"] == 6 and row.loc["wrong", "zero_overlap"] == 6
    assert summary.method.tolist() == ["oracle", "wrong"]


def test_novel_pathways_have_no_near_twin_in_training() -> None:
    train = [PATHWAYS[0][1], PATHWAYS[1][1][:3] + ("T1", "T2", "T3", "T4")]  # P0: identical; P1: 3 shared of 10
    assert bench.novel_pathways(PATHWAYS, train) == ["P1", "P2", "P3", "P4", "P5"]
    assert bench.novel_pathways(PATHWAYS, train, threshold=0.25) == ["P2", "P3", "P4", "P5"]  # P1 at 3/10 = 0.3
    assert bench.novel_pathways([], train) == []


def test_subset_view_recomputes_bh_within_the_subset() -> None:
    cases = bench.make_cases(PATHWAYS, 0.8, seed=0)
    per_case, _ = bench.run(cases, [Oracle(cases), Wrong()], universe_size=1000)
    subset, summary = bench.subset_view(per_case, ["P2", "P5"])
    assert sorted(subset.pathway.unique()) == ["P2", "P5"] and len(subset) == 4
    oracle = subset[subset.method == "oracle"]
    np.testing.assert_allclose(oracle.q_value, benjamini_hochberg(oracle.p_value.to_numpy()))
    assert summary.set_index("method").loc["oracle", "pathways"] == 2
    assert bench.subset_view(per_case, [])[0].empty


def test_score_uses_the_vocabulary_as_universe() -> None:
    case = bench.Case("p", ("A", "B", "C", "D", "E"), ("A",), ("B", "C", "D", "E"))
    frame = bench.score([case], [["B", "X", "Y", "Z"]], universe_size=18000, method="m")
    assert frame.loc[0, "overlap"] == 1 and frame.loc[0, "recall"] == 0.25
    assert frame.loc[0, "p_value"] == pytest.approx(overlap_p_value(1, 4, 4, 18000))


def test_external_gmt_is_harmonised_filtered_and_checked_for_near_duplicates(tmp_path: Path) -> None:
    genes = [f"G{i}" for i in range(30)]
    resolver = GeneResolver(GeneRecord(g, "", "", "", "", "", alias_symbols=(g.lower() + "x",)) for g in genes)
    gmt = tmp_path / "mine.gmt"
    gmt.write_text("twin\td\tG0\tG1\tG2\tG3\tg4x\n"           # alias g4x -> G4; equals a training set
                   "new\td\tG10\tG11\tG12\tG13\tG14\tNOPE\n"  # unrelated to training
                   "tiny\td\tG20\tG21\n"                     # too small
                   "broken line without tabs\n")
    external = bench.load_external(gmt, resolver, set(genes), [("G0", "G1", "G2", "G3", "G4")])
    assert external.read == 3
    assert [name for name, _ in external.pathways] == ["twin", "new"]
    assert external.pathways[0][1] == ("G0", "G1", "G2", "G3", "G4")
    assert external.too_small == ["tiny"] and external.near_duplicates == 1


def test_external_sets_over_500_genes_are_kept_unless_asked(tmp_path: Path) -> None:
    genes = [f"G{i}" for i in range(2000)]
    resolver = GeneResolver(GeneRecord(g, "", "", "", "", "") for g in genes)
    gmt = tmp_path / "large.gmt"
    gmt.write_text("large\td\t" + "\t".join(genes[:700]) + "\n"      # over the corpus's 500: kept
                   "huge\td\t" + "\t".join(genes[:1500]) + "\n"      # over half the vocabulary: meaningless
                   "small\td\t" + "\t".join(genes[:6]) + "\n")
    external = bench.load_external(gmt, resolver, set(genes), [])
    assert [name for name, _ in external.pathways] == ["large", "small"] and external.too_large == ["huge"]
    assert external.sizes == (5, 1000)
    capped = bench.load_external(gmt, resolver, set(genes), [], max_size=500)
    assert [name for name, _ in capped.pathways] == ["small"] and capped.too_large == ["large", "huge"]


def test_every_method_reads_a_prompt_with_genes_outside_its_vocabulary() -> None:
    """LRRN4CL is in the corpus's 18,447 genes but not in the pathway GPT's older 18,342: each shipped method drops
    what it cannot read, counts it, and still completes (the GPT used to raise KeyError)."""
    from cellang.completion import baselines
    from cellang.completion.completer import PathwayCompleter, load_completer
    from cellang.completion.rerank import RerankCompleter
    from cellang.completion.retrieval import SetRetrievalCompleter
    from cellang.completion.set_model import SetModelCompleter
    from cellang.corpus import load_corpus
    from cellang.paths import CHECKPOINT_DIR

    corpus = load_corpus()
    train = [p.genes for p in corpus.split("train")]
    universe = corpus.genes
    gpt = PathwayCompleter.load(CHECKPOINT_DIR / "pathway-gpt")
    assert "LRRN4CL" in universe and "LRRN4CL" not in gpt.universe
    methods = [gpt, load_completer(CHECKPOINT_DIR / "pathway-gpt", train),
               SetRetrievalCompleter(train, universe), baselines.CooccurrenceCompleter(train, universe),
               SetModelCompleter.load(CHECKPOINT_DIR / "pathway-set"),
               RerankCompleter.load(CHECKPOINT_DIR / "pathway-rerank", train, universe),
               baselines.FrequencyCompleter(train, universe), baselines.RandomCompleter(universe, 0)]
    genes = ("LRRN4CL", "TP53", "MDM2", "CDKN1A", "BAX", "BBC3", "PMAIP1", "GADD45A", "SESN1", "RRM2B", "ZMAT3")
    cases = bench.make_cases([("p53 with a new gene", genes), ("p53, shorter", genes[:6])], 0.5, seed=0)
    per_case, summary = bench.run(cases, methods, universe_size=len(universe))
    assert len(per_case) == len(cases) * len(methods) and (per_case["n_predicted"] == per_case["n_masked"]).all()
    unknown = per_case.groupby("method")["prompt_genes_unknown"].sum()
    lrrn4cl_prompted = sum("LRRN4CL" in case.prompt for case in cases)
    assert unknown[gpt.name] == lrrn4cl_prompted > 0
    assert unknown["set-retrieval"] == 0 and unknown["cooccurrence"] == 0


def test_max_jaccard_to_matches_brute_force() -> None:
    from cellang.corpus.qc import max_jaccard_to

    rng = np.random.default_rng(0)
    reference = [tuple(rng.choice(40, size=rng.integers(1, 10), replace=False).astype(str)) for _ in range(30)]
    queries = [tuple(rng.choice(40, size=rng.integers(1, 10), replace=False).astype(str)) for _ in range(20)]
    expected = [max(len(set(q) & set(r)) / len(set(q) | set(r)) for r in reference) for q in queries]
    np.testing.assert_allclose(max_jaccard_to(reference, queries, block=7), expected)


def test_script_runs_an_external_gmt_end_to_end(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    gmt = tmp_path / "external.gmt"
    gmt.write_text("myogenesis\tmine\tMYOD1\tMYOG\tMYF5\tMYF6\tMEF2C\tDES\tDESMIN_TYPO\n"
                   "cell cycle\tmine\tCDK1\tCCNB1\tCDC20\tPLK1\tBUB1\tAURKA\tcdk2\n"
                   "tiny\tmine\tTP53\n")
    out = tmp_path / "result"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark_pathways.py"), "--gmt", str(gmt),
         "--methods", "cooccurrence", "frequency", "random", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    assert "3 sets read, 2 kept, 1 too small" in completed.stdout
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["source"]["sets_kept"] == 2
    assert {row["method"] for row in result["summary"]} == {"cooccurrence", "frequency", "random"}
    assert len(result["per_pathway"]) == 6
    assert "| method" in out.with_suffix(".md").read_text()
    assert result["novel"]["jaccard_below"] == 0.5 and set(result["novel"]["pathways"]) <= {"myogenesis", "cell cycle"}
    assert "Novel: the" in out.with_suffix(".md").read_text() and "Novel: the" in completed.stdout


def test_script_reports_unreadable_gmt(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark_pathways.py"), "--gmt", str(tmp_path / "missing.gmt"),
         "--methods", "random"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert completed.returncode == 2 and "cannot use missing.gmt" in completed.stderr
