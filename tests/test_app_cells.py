"""AppTest of the Data page's Cells tab: the atlas tables, an .h5ad upload, the Census query offline."""

from __future__ import annotations

import socket
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from streamlit.testing.v1 import AppTest

from cellang import census
from cellang.atlas import ATLAS_DIR, atlas_manifest
from cellang.cells import write_h5ad
from cellang.registry import sha256_of
from tests.conftest import REPO_ROOT

TIMEOUT = 120
GENES = ["ACTC1", "TNNT2", "MYH3", "DES", "TTN", "MYOD1", "MYOG", "ACTB"]


def data_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "pages/1_Data.py"), default_timeout=TIMEOUT).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def h5ad_bytes(tmp_path: Path, n_cells: int = 60) -> bytes:
    counts = np.random.default_rng(0).poisson(3, size=(n_cells, len(GENES))).astype(np.float32) + 1
    obs = pd.DataFrame({"cell_type": ["cardiomyocyte", "fibroblast", "fibroblast"] * (n_cells // 3)},
                       index=[f"c{i}" for i in range(n_cells)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=GENES))
    return write_h5ad(adata, tmp_path / "mine.h5ad").read_bytes()


def test_cells_tab_lists_the_atlas_with_a_table_per_dataset() -> None:
    app = data_page()
    manifest = atlas_manifest()
    table = next(d.value for d in app.dataframe if "value kind" in d.value.columns)
    assert list(table["dataset"]) == [e["name"] for e in manifest["datasets"]]
    assert list(table["cells"]) == [e["cells"] for e in manifest["datasets"]]
    labels = [e.label for e in app.expander]
    for entry in manifest["datasets"]:
        assert f"{entry['name']}: {entry['cells']:,} cells by type and state ({entry['value_kind']})" in labels
    hsmm = next(d.value for d in app.dataframe if "myotube" in d.value.columns)
    assert {"myoblast", "differentiating", "myotube", "all"} <= set(hsmm.columns)
    assert any(f"{manifest['totals']['cells']:,} real single cells" in c.value for c in app.caption)


def test_upload_is_validated_and_kept_in_the_session_only(tmp_path: Path) -> None:
    before = {p.name: sha256_of(p) for p in ATLAS_DIR.iterdir()}
    app = data_page()
    app.file_uploader[0].set_value(("mine.h5ad", h5ad_bytes(tmp_path), "application/octet-stream")).run()
    assert not app.exception, [e.message for e in app.exception]
    assert any("mine.h5ad can be used: 60 cells x 8 genes." in s.value for s in app.success)
    assert any("Values are whole numbers" in i.value for i in app.info)
    labels = next(d.value for d in app.dataframe if list(d.value.columns) == ["label", "cells"])
    assert dict(zip(labels["label"], labels["cells"])) == {"fibroblast": 40, "cardiomyocyte": 20}
    assert app.session_state["uploaded_cells"].adata.n_obs == 60
    assert {p.name: sha256_of(p) for p in ATLAS_DIR.iterdir()} == before  # shipped data untouched


def test_upload_of_a_non_hdf5_file_is_refused_plainly() -> None:
    app = data_page()
    app.file_uploader[0].set_value(("table.h5ad", b"gene,cell\nACTB,1\n", "application/octet-stream")).run()
    assert not app.exception
    assert any("not an HDF5 file" in e.value for e in app.error)
    assert not app.success


def test_census_fetch_offline_shows_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(address, timeout=None):  # type: ignore[no-untyped-def]
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(census.socket, "create_connection", unreachable)
    app = data_page()
    assert any("tissue_general in ['heart']" in c.value for c in app.code)
    next(b for b in app.button if b.label == "Fetch from the Census").click().run()
    assert not app.exception
    assert any("cannot reach the CELLxGENE Census" in e.value and "needs internet" in e.value for e in app.error)
