"""Real-browser test of the Cells tab: see the atlas, upload an .h5ad, read the validation messages."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang.atlas import atlas_manifest
from cellang.cells import write_h5ad

pytestmark = pytest.mark.browser


def test_cells_tab_upload_and_validation(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    genes = ["ACTC1", "TNNT2", "MYH3", "DES", "TTN", "MYOD1", "MYOG", "ACTB"]
    matrix = np.random.default_rng(0).poisson(3, size=(30, len(genes))).astype(np.float32) + 1
    matrix[2, 3] = -1.0  # one negative value: the page must say so
    adata = ad.AnnData(sp.csr_matrix(matrix), obs=pd.DataFrame({"cell_type": ["myotube"] * 30},
                                                               index=[f"c{i}" for i in range(30)]),
                       var=pd.DataFrame(index=genes))
    bad = write_h5ad(adata, tmp_path / "negative.h5ad")
    adata.X = sp.csr_matrix(np.abs(matrix))
    good = write_h5ad(adata, tmp_path / "myotubes.h5ad")

    page.goto(app_url)
    page.get_by_role("link", name="Data").click()
    page.get_by_text("Data: the pathway corpus").wait_for()
    page.get_by_role("tab", name="Cells").click()
    cells = atlas_manifest()["totals"]["cells"]
    page.get_by_text(f"{cells:,} real single cells", exact=False).wait_for()
    page.get_by_text("hsmm: 271 cells by type and state (FPKM)").wait_for()

    upload = page.locator("input[type='file']")
    upload.set_input_files(str(good))
    page.get_by_text("myotubes.h5ad can be used: 30 cells x 8 genes.").wait_for()
    page.get_by_text("Values are whole numbers", exact=False).wait_for()

    upload.set_input_files(str(bad))
    page.get_by_text("X holds 1 negative values", exact=False).wait_for()
    assert page.get_by_text("negative.h5ad can be used").count() == 0
