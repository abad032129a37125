"""Real-browser test of the In-silico deletion page: a few HSMM cells, a small gene list, the CSV download."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cellang.app.deletion import csv_name, gene_choice
from tests.conftest import REPO_ROOT, wait_until_settled
from tests.perturb_fixtures import genes_in_sampled_myotubes

CHECKPOINT = REPO_ROOT / "checkpoints" / "cells-rank"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHECKPOINT / "model.safetensors").exists(),
                       reason="no rank cell encoder: checkpoints/cells-rank/model.safetensors is missing"),
]
CELLS = 2


def open_with_genes(page, app_url, genes: list[str], cells: int) -> None:  # type: ignore[no-untyped-def]
    """The deletion page with a gene list and a number of start cells filled in, Run pressed."""
    page.goto(app_url)
    page.get_by_role("link", name="In-silico deletion").click()
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
    box = page.get_by_label("At most this many start cells (random sample)", exact=True)
    box.fill(str(cells))
    box.press("Enter")
    wait_until_settled(page)
    box = page.get_by_label("Rank genes scored in at least this many cells", exact=True)
    box.fill("1")  # every listed gene is ranked, even one seen in a single cell
    box.press("Enter")
    wait_until_settled(page)
    page.get_by_text("Fine-tune on the start and goal states first", exact=True).click()  # the plain embedding
    wait_until_settled(page)
    assert not page.get_by_role("checkbox", name="Fine-tune on the start and goal states first").is_checked()
    page.get_by_role("button", name="Run").click()


def sampled_genes(cells: int) -> list[str]:
    from cellang.embedding.loading import load_cell_encoder_checkpoint

    return genes_in_sampled_myotubes(load_cell_encoder_checkpoint(CHECKPOINT)[1], cells)  # in those cells' encodings


def test_delete_a_gene_list_in_a_few_hsmm_cells_and_download_csv(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    genes = sampled_genes(CELLS)
    open_with_genes(page, app_url, genes, CELLS)

    page.get_by_role("heading", name="Ranked genes").wait_for()
    page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").wait_for()
    wait_until_settled(page)
    assert page.get_by_text("Data shown: HSMM", exact=False).count() >= 1
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the ranked genes (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == csv_name("hsmm", "myotube", "myoblast", "delete", gene_choice("list", genes))
    assert saved.name.startswith(f"cellang_hsmm_myotube-to-myoblast_delete_list-{genes[0]}-")
    with open(saved, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["gene"] for row in rows} == set(genes)
    assert {"rank", "gene", "direction", "effect", "cells", "p", "q", "mean_difference", "known"} <= set(rows[0])
    assert all(1 <= int(row["cells"]) <= CELLS and 0 <= float(row["q"]) <= 1 for row in rows)
    assert [int(row["rank"]) for row in rows] == list(range(1, len(rows) + 1))


def test_one_gene_in_one_cell_is_ranked_without_a_traceback(page, app_url) -> None:  # type: ignore[no-untyped-def]
    gene = sampled_genes(1)[0]  # the reported crash: a run that leaves one scored value
    open_with_genes(page, app_url, [gene], 1)
    page.get_by_role("heading", name="Ranked genes").wait_for()
    page.get_by_role("button", name="Download the ranked genes (CSV)").wait_for()
    wait_until_settled(page)
    assert page.locator("[data-testid='stException']").count() == 0
