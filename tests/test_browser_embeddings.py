"""Real-browser test of the Cell embeddings page: choose a small dataset, embed it, see the map, download the CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, wait_until_settled

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "cells-binned" / "model.safetensors").exists(),
                       reason="no cell encoder: checkpoints/cells-binned/model.safetensors is missing"),
]

DATASET = "pbmc3k_decoupler"  # the smallest atlas dataset: 160 cells, 8 labelled types
CELLS = 160


def test_embed_a_small_dataset_and_download_csv(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_role("link", name="Cell embeddings").click()
    page.get_by_role("heading", name="Cell embeddings").wait_for()
    page.get_by_text("striated-muscle stand-in", exact=False).wait_for()
    wait_until_settled(page)

    page.get_by_role("combobox", name="Cells").click()
    page.get_by_role("option", name=f"{DATASET}:", exact=False).click()
    wait_until_settled(page)
    page.get_by_role("button", name="Embed cells").click()

    page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for()
    page.get_by_role("heading", name="Scores").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()  # the metrics table
    wait_until_settled(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the embedding (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == f"{DATASET}_cells-binned_cls.csv"
    with open(saved, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == CELLS
    assert {"cell_id", "cell_type", "umap_1", "umap_2", "cells_binned_cls_0"} <= set(rows[0])
    assert len({row["cell_id"] for row in rows}) == CELLS


def test_upload_without_obs_columns_is_embedded_and_mapped(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import anndata as ad
    import numpy as np
    import pandas as pd

    from cellang.cells import write_h5ad

    genes = ["ACTB", "GAPDH", "MYH3", "DES", "TTN", "MYOD1", "MYOG", "CD3E", "MS4A1", "LYZ", "NKG7", "PTPRC"]
    counts = np.random.default_rng(0).poisson(2, size=(12, len(genes))).astype(np.float32) + 1
    bare = ad.AnnData(counts, obs=pd.DataFrame(index=[f"c{i}" for i in range(12)]), var=pd.DataFrame(index=genes))
    path = write_h5ad(bare, tmp_path / "bare.h5ad")  # the reported crash: obs with no column at all

    page.goto(app_url)
    page.get_by_role("link", name="Cell embeddings").click()
    page.get_by_role("heading", name="Cell embeddings").wait_for()
    wait_until_settled(page)
    page.get_by_text("Use your own cells (.h5ad)", exact=True).click()
    page.locator("input[type='file']").set_input_files(str(path))
    page.get_by_text("bare.h5ad", exact=True).wait_for()  # the uploader lists the file
    wait_until_settled(page)  # the upload is read and offered first under "Cells"
    page.get_by_role("button", name="Embed cells").click()
    page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for()
    wait_until_settled(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("has no cell labels", exact=False).count() >= 1
