"""Real-browser test of the In-silico deletion page: a few HSMM cells, a small gene list, the CSV download."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, wait_until_settled
from tests.perturb_fixtures import genes_in_sampled_myotubes

CHECKPOINT = REPO_ROOT / "checkpoints" / "cells-rank"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHECKPOINT / "model.safetensors").exists(),
                       reason="no rank cell encoder: checkpoints/cells-rank/model.safetensors is missing"),
]
CELLS = 2


def test_delete_a_gene_list_in_a_few_hsmm_cells_and_download_csv(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cellang_core.cell_training import load_cell_encoder_checkpoint

    genes = genes_in_sampled_myotubes(load_cell_encoder_checkpoint(CHECKPOINT)[1], CELLS)  # in those cells' encodings
    page.goto(app_url)
    page.get_by_role("link", name="In silico deletion").click()
    page.get_by_role("heading", name="In-silico deletion").wait_for()
    page.get_by_text("no cardiomyocyte dataset ships", exact=False).first.wait_for()
    wait_until_settled(page)

    page.get_by_text("a list of genes", exact=True).click()
    wait_until_settled(page)
    box = page.get_by_label("Gene symbols (spaces, commas or lines)", exact=True)
    box.fill(" ".join(genes))
    box.press("Control+Enter")  # commit the text area
    wait_until_settled(page)
    page.get_by_text("Settings", exact=True).click()
    cells = page.get_by_label("At most this many start cells (random sample)", exact=True)
    cells.fill(str(CELLS))
    cells.press("Enter")
    wait_until_settled(page)
    page.get_by_role("button", name="Run").click()

    page.get_by_role("heading", name="Ranked genes").wait_for()
    page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for()
    wait_until_settled(page)
    assert page.get_by_text("Data shown: HSMM", exact=False).count() >= 1
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the ranked genes (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "cellang_hsmm_delete_cells-rank_ranked.csv"
    with open(saved, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["gene"] for row in rows} == set(genes)
    assert {"rank", "gene", "cells", "mean_score", "p", "q", "known"} <= set(rows[0])
    assert all(1 <= int(row["cells"]) <= CELLS and 0 <= float(row["q"]) <= 1 for row in rows)
    assert [int(row["rank"]) for row in rows] == list(range(1, len(rows) + 1))
