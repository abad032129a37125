"""scripts/run_deletion.py on two HSMM myotubes with the shipped rank encoder: files, prerank floor, bad options."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cellang.paths import REPO_ROOT
from tests.scripts import load_script

pytestmark = pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-rank" / "model.safetensors").exists(),
                                reason="no rank cell encoder: checkpoints/cells-rank/model.safetensors is missing")


def test_hsmm_run_writes_the_ranking_and_floors_prerank_p_values(tmp_path) -> None:
    out = tmp_path / "hsmm"
    args = ["--max-cells", "2", "--min-cells", "1", "--prerank", "--permutations", "20", "--out", str(out)]
    assert load_script("run_deletion").main(args) == 0
    report = json.loads(out.with_suffix(".json").read_text())["hsmm"]
    ranked = pd.read_csv(tmp_path / "hsmm_ranked.csv")
    assert report["settings"]["start_cells"] == 2 and report["settings"]["pairs"] == ranked["cells"].sum()
    assert "no cardiomyocyte dataset ships" in report["data"]
    assert report["validation"]["known"] == 5
    prerank = report["prerank"]
    assert prerank["permutations"] == 20 and prerank["smallest_possible_p"] == 1 / 21
    assert all(row["p"] >= 1 / 21 and row["fdr"] >= 1 / 21 for row in prerank["top"])


def test_prerank_needs_a_permutation(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as stopped:
        load_script("run_deletion").main(["--prerank", "--permutations", "0", "--out", str(tmp_path / "x")])
    assert stopped.value.code == 2 and "--permutations must be at least 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_pairs_of_the_top_genes_are_deleted_in_the_same_cells(tmp_path) -> None:
    out = tmp_path / "hsmm"
    assert load_script("run_deletion").main(["--max-cells", "3", "--min-cells", "1", "--pairs", "4",
                                             "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())["hsmm"]
    ranked = pd.read_csv(tmp_path / "hsmm_ranked.csv")
    pairs = pd.read_csv(tmp_path / "hsmm_pairs_ranked.csv")
    assert report["pairs"]["genes"] == ranked["gene"].head(4).tolist()
    assert 0 < len(pairs) <= 6 and report["pairs"]["pairs_ranked"] == len(pairs)
    assert all(set(p.split("+")) <= set(report["pairs"]["genes"]) for p in pairs["pair"])
    assert {"mean_interaction", "q", "cells"} <= set(pairs.columns)
