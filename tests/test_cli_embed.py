"""`cellang embed`: an embedded copy of the user's file, never the input overwritten, bad files named."""

from __future__ import annotations

import pickle
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import cellang as cl
from cellang.cells.io import write_h5ad
from cellang.cli.main import main
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors").exists(),
                                reason="the shipped cells-binned encoder is missing")


def run(args: list[str]) -> int:
    """The exit code of ``cellang <args>`` (argument errors leave through SystemExit, as from a shell)."""
    try:
        return main(args)
    except SystemExit as exit:
        return int(exit.code)


@pytest.fixture()
def cells_file(tmp_path: Path) -> Path:
    return write_h5ad(cl.datasets.cells("oligodendroglioma")[:20].copy(), tmp_path / "cells.h5ad")


def test_embed_writes_an_embedded_copy_and_keeps_the_input(cells_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    before = cells_file.read_bytes()
    out = tmp_path / "embedded.h5ad"
    assert run(["embed", str(cells_file), "--out", str(out)]) == 0
    assert cells_file.read_bytes() == before, "the input is never touched"
    embedded = ad.read_h5ad(out)
    assert embedded.obsm["X_cells_binned_cls"].shape == (20, embedded.obsm["X_cells_binned_mean"].shape[1])
    assert np.isfinite(embedded.obsm["X_cells_binned_mean"]).all()
    assert "cells-binned" in embedded.uns["cellang_embedding"]
    assert list(embedded.var_names) == list(ad.read_h5ad(cells_file).var_names), "the file keeps its own genes"
    assert "20 cells embedded with cells-binned" in capsys.readouterr().out


def test_embed_refuses_to_overwrite_and_names_bad_files(cells_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "embedded.h5ad"
    out.write_bytes(b"mine")
    assert run(["embed", str(cells_file), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert run(["embed", str(cells_file), "--out", str(cells_file), "--force"]) == 2
    assert "the input is never overwritten" in capsys.readouterr().err
    assert run(["embed", str(cells_file), "--out", str(tmp_path / "embedded.csv")]) == 2
    assert "ending in .h5ad" in capsys.readouterr().err
    pickled = tmp_path / "cells.pkl.h5ad"
    pickled.write_bytes(pickle.dumps({"X": [1, 2, 3]}))
    assert run(["embed", str(pickled), "--out", str(tmp_path / "p.h5ad")]) == 2
    assert "cellang embed: error:" in capsys.readouterr().err and not (tmp_path / "p.h5ad").exists()
    assert run(["embed", str(cells_file), "--model", "no-such-model", "--out", str(tmp_path / "q.h5ad")]) == 2
    assert "no-such-model" in capsys.readouterr().err
