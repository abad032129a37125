"""scripts/run_deletion.py refuses every bad file and option up front: exit code 2, one line, no traceback.

main runs in-process through cli.run (as ``python scripts/run_deletion.py`` does); the corpus and the
encoder are replaced by tripwires, so a case that got as far as model work fails loudly instead of
running it. One case runs as a real subprocess.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from cellang import cli
from cellang.cells.io import write_h5ad
from cellang.paths import REPO_ROOT
from tests.scripts import load_script

GENES = ["MYH7", "TTN", "LMNA", "MYBPC3", "TNNT2", "ACTC1", "PLN", "RBM20", "NPPA", "NPPB"]


class Tripwire:
    """Unpickling this opens (creates) ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return open, (str(self.path), "w")


def heart(n_cells: int = 8, states: list[str] | None = None, matrix: np.ndarray | None = None,
          obs: pd.DataFrame | None = None) -> ad.AnnData:
    """Cardiomyocytes, alternately normal and DCM unless `states` says otherwise; counts from 1 to 6."""
    names = [f"c{i}" for i in range(n_cells)]
    if obs is None:
        states = states or (["normal", "dilated cardiomyopathy"] * n_cells)[:n_cells]
        obs = pd.DataFrame({"cell_type": ["Cardiomyocyte"] * n_cells, "disease": states}, index=names)
    if matrix is None:
        matrix = np.random.default_rng(0).integers(1, 6, size=(n_cells, len(GENES))).astype(np.float32)
    return ad.AnnData(matrix, obs=obs, var=pd.DataFrame(index=GENES))


def h5ad(tmp_path: Path, adata: ad.AnnData, name: str = "cells.h5ad") -> Path:
    return write_h5ad(adata, tmp_path / name)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    module = load_script("run_deletion")

    def model_work(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the bad input reached model work instead of being refused up front")

    monkeypatch.setattr(module, "load_corpus", model_work)
    monkeypatch.setattr("cellang.perturbation.workflow.load_cell_encoder", model_work)
    return module


def refused(script, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:  # type: ignore[no-untyped-def]
    """Run main through cli.run; assert exit 2 and one error line without traceback; return that line."""
    try:
        code = cli.run(script.main, argv)
    except SystemExit as stopped:  # argparse errors leave through cli.Parser.error
        code = stopped.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], err
    return lines[0]


def bad_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.h5ad"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(np.random.default_rng(1).bytes(4096).replace(b"\x89HDF", b"xxxx"))
    elif case == "pickle":
        path.write_bytes(pickle.dumps({"X": heart().X, "payload": Tripwire(tmp_path / "unpickled")}))
    elif case == "gzip":
        path.write_bytes(gzip.compress(h5ad(tmp_path, heart(), "inner.h5ad").read_bytes()))
    elif case == "nan":
        matrix = heart().X.copy()
        matrix[2, 3] = np.nan
        h5ad(tmp_path, heart(matrix=matrix), path.name)
    elif case == "negative":
        h5ad(tmp_path, heart(matrix=heart().X - 3), path.name)
    elif case == "no_obs_columns":
        h5ad(tmp_path, heart(obs=pd.DataFrame(index=[f"c{i}" for i in range(8)])), path.name)
    elif case == "one_cell":
        h5ad(tmp_path, heart(1), path.name)
    elif case == "only_normal":
        h5ad(tmp_path, heart(states=["normal"] * 8), path.name)
    elif case == "folder":
        path = tmp_path / "folder"
        path.mkdir()
    elif case == "no_x":
        with h5py.File(h5ad(tmp_path, heart(), path.name), "a") as handle:
            del handle["X"]
    return path


FILE_CASES = {  # case -> words the one line must hold
    "empty": ["empty (0 bytes)"],
    "random": ["not an HDF5 file"],
    "missing": ["does not exist"],
    "pickle": ["Python pickle", "never loaded"],
    "gzip": ["gzip-compressed"],
    "nan": ["missing (NaN) values"],
    "negative": ["negative values"],
    "no_obs_columns": ["no disease column", "columns are: none"],
    "one_cell": ["1 cell", "normal plus dilated cardiomyopathy"],
    "only_normal": ["'disease' has only one state (normal)", "normal plus dilated cardiomyopathy"],
    "no_x": ["no expression matrix"],
    "folder": ["holds no matrix.mtx"],
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_h5ad_is_refused_in_one_line(case: str, script, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_file(tmp_path, case)
    line = refused(script, ["--h5ad", str(path), "--out", str(tmp_path / "out")], capsys)
    for words in FILE_CASES[case]:
        assert words in line, line
    assert path.name in line or case in ("no_obs_columns", "one_cell", "only_normal")
    if case == "nan":
        assert "scaled" not in line and "z-scored" not in line
    assert not (tmp_path / "unpickled").exists()  # the pickle was never loaded
    assert not list(tmp_path.glob("out*"))  # nothing written


@pytest.mark.parametrize("argv, words", [
    (["--max-cells", "0"], "argument --max-cells: must be at least 1, got 0"),
    (["--max-cells", "-3"], "argument --max-cells: must be at least 1, got -3"),
    (["--max-census-cells", "0"], "argument --max-census-cells: must be at least 1, got 0"),
    (["--min-cells", "0"], "argument --min-cells: must be at least 1, got 0"),
    (["--permutations", "0"], "--permutations must be at least 1, got 0"),
    (["--permutations", "-1", "--prerank"], "--permutations must be at least 1, got -1"),
    (["--seed", "-1"], "argument --seed: must be between 0 and"),
    (["--max-cells", "two"], "must be a whole number, got 'two'"),
    (["--min-cells", "5", "--max-cells", "3"], "--min-cells (5) cannot exceed --max-cells (3)"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--screen", "--treatment-mode", "overexpress"], "--screen estimates deletions; score overexpression without"),
    (["--checkpoint", "nowhere"], "nowhere/model.safetensors is missing"),
])
def test_bad_numbers_are_refused_in_one_line(argv: list[str], words: str, script,  # type: ignore[no-untyped-def]
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert words in refused(script, argv + ["--out", str(tmp_path / "out")], capsys)


def test_min_cells_above_the_start_cells_is_refused_before_model_work(script, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = h5ad(tmp_path, heart(8))  # 4 normal cardiomyocytes to perturb
    line = refused(script, ["--h5ad", str(path), "--min-cells", "5", "--out", str(tmp_path / "out")], capsys)
    assert "min_cells is 5 but only 4 start cells" in line and "lower min_cells to at most 4" in line


def test_a_binary_file_exits_2_without_traceback_in_a_real_process(tmp_path: Path) -> None:
    path = bad_file(tmp_path, "random")
    env = {k: v for k, v in os.environ.items() if k != "CELLANG_DEBUG"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "run_deletion.py"), "--h5ad", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"cellang delete: error: {path.name} is not an HDF5 file, so it is neither an "
                                   ".h5ad nor a 10x .h5 file. Save your data with AnnData's write_h5ad, or give the "
                                   "folder of a 10x matrix.mtx.")


def test_the_script_says_what_the_upload_says(script, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from cellang.cells import inspect_upload

    matrix = heart().X.copy()
    matrix[0, :2] = -1.0
    matrix[1, 0] = np.nan
    path = h5ad(tmp_path, heart(matrix=matrix), "both.h5ad")
    line = refused(script, ["--h5ad", str(path), "--out", str(tmp_path / "out")], capsys)
    upload = [m for level, m in inspect_upload(path.read_bytes(), "both.h5ad").messages() if level == "error"]
    assert line.endswith("error: both.h5ad: " + " ".join(upload))
    assert "1 missing (NaN) values" in line and "2 negative values" in line
