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
