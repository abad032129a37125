"""cellang installs as a package: the wheel holds the library, the command line and the shipped data, and an
installed copy finds its data and checkpoints away from the checkout. Also: anndata's own writer works on the
pinned environment (strings in obs and var), so a user can save what cellang gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_every_shipped_folder_is_in_the_wheel_data() -> None:
    mapped = {target.removeprefix("share/cellang/"): sources
              for target, sources in PYPROJECT["tool"]["setuptools"]["data-files"].items()}
    for top in ("data", "checkpoints"):
        for folder in sorted(p for p in (REPO_ROOT / top).iterdir() if p.is_dir()):
            tracked = subprocess.run(["git", "ls-files", str(folder.relative_to(REPO_ROOT))], cwd=REPO_ROOT,
                                     capture_output=True, text=True).stdout.split()
            if tracked:  # built but ignored folders (an extended corpus, a local DAE) do not ship
                assert f"{top}/{folder.name}" in mapped, f"pyproject.toml's data-files miss {top}/{folder.name}"
    assert mapped["results"] == ["results/benchmark_pathways.json"]


def test_extras_and_the_command_are_declared() -> None:
    project = PYPROJECT["project"]
    assert set(project["optional-dependencies"]) >= {"app", "census", "dev"}
    assert project["scripts"]["cellang"] == "cellang.cli.main:main"
    assert any(d.startswith("pandas") and "<3" in d for d in project["dependencies"])
    assert "version" in project["dynamic"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (its dependencies seen through a .pth to this environment)."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "wheels"), str(REPO_ROOT)], check=True, capture_output=True,
                   timeout=600)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    wheel = next((root / "wheels").glob("cellang-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(n.endswith("share/cellang/checkpoints/cells-rank/model.safetensors") for n in names)
    assert not any(n.startswith(("tests/", "pages/", "scripts/")) for n in names)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True, timeout=600, env=clean)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after: pip must not see them
    return venv


def test_an_installed_copy_finds_its_data_away_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = ("import json, cellang as cl\n"
            "from cellang import paths\n"
            "table = cl.pw.enrich(['MYOD1', 'MYOG', 'MYF5'], top=1)\n"
            "print(json.dumps({'module': cl.__file__, 'root': str(paths.REPO_ROOT), 'atlas': len(cl.datasets.atlas()),"
            " 'models': str(cl.settings.models_dir), 'enriched': len(table)}))\n")
    result = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["module"]).is_relative_to(installed)
    assert Path(found["root"]) == installed / "share" / "cellang"
    assert found["atlas"] == 7 and found["enriched"] == 1
    assert Path(found["models"]).is_relative_to(tmp_path), "an installed copy keeps user models in the home folder"
    command = subprocess.run([str(installed / "bin" / "cellang"), "--help"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert command.returncode == 0 and "benchmark" in command.stdout


def test_plain_anndata_writes_and_reads_string_columns(tmp_path: Path) -> None:
    adata = ad.AnnData(X=np.eye(3, dtype=np.float32),
                       obs=pd.DataFrame({"cell_type": ["a", "b", "a"], "donor": ["x", "y", "z"]},
                                        index=["c1", "c2", "c3"]),
                       var=pd.DataFrame({"symbol": ["G1", "G2", "G3"]}, index=["g1", "g2", "g3"]))
    adata.uns["note"] = "strings everywhere"
    adata.write_h5ad(tmp_path / "cells.h5ad")
    back = ad.read_h5ad(tmp_path / "cells.h5ad")
    assert back.obs["donor"].astype(str).tolist() == ["x", "y", "z"]
    assert back.var["symbol"].astype(str).tolist() == ["G1", "G2", "G3"] and back.uns["note"] == "strings everywhere"


@pytest.mark.network
def test_the_declared_ranges_resolve_with_every_extra(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                             "--no-build-isolation", "--report", str(report), f"{REPO_ROOT}[app,census,dev]"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["pandas"].startswith("2.") and "anndata" in chosen and "streamlit" in chosen
