"""scripts/complete.py: expand a gene list (or hide part and recover it) with the shipped completer, print each
prediction with its evidence, write the completion and evidence CSVs; bad input ends in one line and exit 2."""

from __future__ import annotations

import functools
import gzip
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cellang import cli
from cellang.completion import completer as completer_module
from cellang.completion.tables import EVIDENCE_COLUMNS
from cellang.completion.request import MAX_INPUT_GENES
from tests.conftest import REPO_ROOT
from tests.scripts import load_script

SCRIPT = REPO_ROOT / "scripts" / "complete.py"
GENES = ["TP53", "MDM2", "CDKN1A", "BAX"]
P53 = ["TP53", "MDM2", "CDKN1A", "BAX", "BBC3", "PMAIP1", "GADD45A", "SESN1", "RRM2B", "FAS"]

pytestmark = pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "pathway-gpt" / "model.safetensors").exists(),
                                reason="no pathway model checkpoint")


@pytest.fixture(autouse=True)
def shipped_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped completer, loaded once for the whole module (seconds each time otherwise)."""
    monkeypatch.setattr(completer_module, "load_completer", _shipped)


_load_completer = completer_module.load_completer


@functools.cache
def _shipped() -> completer_module.PathwayCompleter:
    return _load_completer()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.run(load_script("complete").main, argv)
    except SystemExit as stop:  # argument errors leave through cli.Parser.error, as in a real run
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, expected: str) -> None:
    assert code == cli.USAGE_EXIT != 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], err
    assert expected.lower() in lines[0].lower(), lines[0]


def test_expand_a_list_prints_the_evidence_and_writes_both_csvs(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, evidence = tmp_path / "hits" / "completion.csv", tmp_path / "evidence.csv"
    code, stdout, err = run(["--genes", *GENES, "--n", "12", "--out", str(out), "--evidence", str(evidence)], capsys)
    assert code == 0, err
    assert stdout.startswith("expand: 4 prompt genes, 12 predicted")
    assert _shipped().describe() in stdout
    header = next(line for line in stdout.splitlines() if line.lstrip().startswith("rank"))
    assert header.split()[:5] == ["rank", "gene", "score", "retrieval", "model"] and "supporting" in header

    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["rank", "gene", "score", "status", *EVIDENCE_COLUMNS, "method", "mask_ratio",
                                   "seed"]
    assert table["gene"].tolist()[:4] == GENES and set(table["status"][:4]) == {"prompt"}
    predicted = table[table["status"] == "novel"]
    assert len(predicted) == 12 and set(table["status"]) == {"prompt", "novel"} and set(table["mask_ratio"]) == {0}
    assert not set(predicted["gene"]) & set(GENES)
    scores = predicted["score"].astype(float)
    assert (predicted["from_retrieval"].astype(float) + predicted["from_model"].astype(float)).tolist() == \
        pytest.approx(scores.tolist(), rel=1e-4)
    assert (predicted["supporting_sets"].astype(int) > 0).all()
    for row in predicted.itertuples(index=False):  # every prediction is printed with its numbers and best sets
        line = next(line for line in stdout.splitlines() if line.split()[:2] == [str(row.rank), row.gene])
        assert f"{row.supporting_sets}: " + row.top_supporting_sets.split("; ")[0] in line

    long = pd.read_csv(evidence)
    assert list(dict.fromkeys(long["gene"])) == predicted["gene"].tolist()
    sums = long.groupby("gene", sort=False)["contribution"].sum()
    assert sums.tolist() == pytest.approx(scores.tolist(), rel=1e-4)
    named = long[long["source"] == "training set"]
    assert named["description"].notna().all() and (named["overlap"] <= named["size"]).all()

    # the files exist now: a second run refuses to overwrite them (before any model work) unless --force
    before = out.read_bytes()
    code, _, err = run(["--genes", *GENES, "--out", str(out)], capsys)
    assert_one_line(code, err, "exists; pass --force")
    code, _, err = run(["--genes", *GENES, "--n", "3", "--evidence", str(evidence), "--out", str(tmp_path / "x.csv")],
                       capsys)
    assert_one_line(code, err, "evidence.csv exists")
    assert out.read_bytes() == before and not (tmp_path / "x.csv").exists()
    code, _, err = run(["--genes", *GENES, "--n", "3", "--out", str(out), "--force"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(out).query("status == 'novel'")) == 3


def test_hide_and_recover_prints_recall_and_predicts_as_many_as_hidden(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    gmt = tmp_path / "sets.gmt.gz"
    gmt.write_bytes(gzip.compress(("P53\tp53 targets\t" + "\t".join(P53) + "\nOTHER\t\tEGFR\tERBB2\tGRB2\n").encode()))
    code, _, err = run(["--file", str(gmt)], capsys)
    assert_one_line(code, err, "holds 2 gene sets; pick one with --set NAME: P53, OTHER")
    code, _, err = run(["--file", str(gmt), "--set", "NOPE"], capsys)
    assert_one_line(code, err, "no set named 'NOPE'")
    code, stdout, err = run(["--file", str(gmt), "--set", "P53", "--mask-ratio", "0.5", "--seed", "3",
                             "--out", str(tmp_path / "c.csv")], capsys)
    assert code == 0, err
    assert stdout.startswith("hide and recover: 5 prompt genes, 5 predicted")
    assert "hidden: 5 genes (mask ratio 0.5, seed 3); Recall " in stdout and "Fisher p (one-sided)" in stdout
    table = pd.read_csv(tmp_path / "c.csv")
    assert set(table["status"]) <= {"prompt", "recovered", "novel", "missed"} and set(table["mask_ratio"]) == {0.5}
    assert (table["status"] == "prompt").sum() == 5
    assert (table["status"].isin(["recovered", "missed"])).sum() == 5


def test_rankings_map_to_the_completers_offer(capsys: pytest.CaptureFixture[str]) -> None:
    from cellang.completion.completer import LANGUAGE_MODEL_ONLY, SET_RETRIEVAL_ONLY

    rankings = _shipped().rankings()
    code, stdout, err = run(["--genes", *GENES, "--n", "5", "--ranking", "model"], capsys)
    if LANGUAGE_MODEL_ONLY not in rankings:
        assert_one_line(code, err, "--ranking model is not offered")
        return
    assert code == 0, err
    assert "predicted by pathway-gpt (ranked)" in stdout and "Retrieval has no part in this ranking" in stdout
    code, stdout, err = run(["--genes", *GENES, "--n", "5", "--ranking", "retrieval"], capsys)
    if SET_RETRIEVAL_ONLY in rankings:
        assert code == 0, err
    else:
        assert_one_line(code, err, "--ranking retrieval is not offered by the shipped completer (it offers: best")


@pytest.mark.parametrize("argv, expected", [
    (["--genes", "NOTAGENE1", "ZZZ999"], "none of the genes given is in the model's vocabulary"),
    (["--genes", "TP53", "NOTAGENE1", "--mask-ratio", "0.5"], "only one of the genes given (TP53)"),
    (["--file", "{tmp}/missing.txt"], "no such file"),
    (["--file", "{tmp}/binary.gmt"], "no gene set could be read from binary.gmt"),
    (["--file", "{tmp}/many.txt"], f"5,000 identifiers given; at most {MAX_INPUT_GENES:,}"),
    (["--file", "{tmp}/empty.txt"], "holds no gene identifiers"),
    (["--genes", "TP53", "--set", "X"], "--set picks a set of a GMT --file"),
    (["--genes", "TP53", "--mask-ratio", "0.99"], "Mask ratio must be between"),
    (["--genes", "TP53", "--n", "0"], "--n: must be at least 1"),
    (["--genes", "TP53", "--out", "{tmp}"], "is a folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "binary.gmt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "many.txt").write_text("\n".join(f"GENE{i}" for i in range(5000)))
    (tmp_path / "empty.txt").write_text("gene\n \n")
    code, stdout, err = run([a.format(tmp=tmp_path) for a in argv], capsys)
    assert_one_line(code, err, expected)
    assert not stdout


def test_one_gene_expands(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = run(["--genes", "TP53", "--n", "3"], capsys)
    assert code == 0, err
    assert stdout.startswith("expand: 1 prompt genes, 3 predicted")


def test_a_real_process_answers_5000_genes_with_one_line(tmp_path: Path) -> None:
    genes = io.StringIO()
    genes.write(",".join(f"GENE{i}" for i in range(5000)))
    result = subprocess.run([sys.executable, str(SCRIPT), "--genes", genes.getvalue()], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"cellang complete: error: 5,000 identifiers given; at most {MAX_INPUT_GENES:,} "
                                     "can be completed at once")
