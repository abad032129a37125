"""Real-browser test of the Pathway completion page: paste genes, hide part and recover it, see the network,
download the completion and evidence CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, wait_until_settled

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (REPO_ROOT / "checkpoints" / "pathway-gpt" / "model.safetensors").exists(),
                       reason="no pathway model checkpoint"),
]

GENES = ["TP53", "MDM2", "CDKN1A", "BAX", "BBC3", "PMAIP1", "GADD45A", "SESN1", "RRM2B", "FAS"]


def test_paste_complete_and_download_csv(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_role("link", name="Pathway completion").click()
    page.get_by_role("heading", name="Pathway completion").wait_for()
    page.get_by_text("Paste genes", exact=True).click()
    genes = page.get_by_label("Genes", exact=True)
    genes.fill(", ".join(GENES) + "\nNOTAGENE123")
    genes.press("Control+Enter")  # commit the text area before pressing the button
    page.get_by_text(f"{len(GENES) + 1} identifiers.").wait_for()
    page.get_by_text("Hide part and recover it (test)", exact=True).click()  # expanding the list is the default
    page.get_by_text("Mask ratio").wait_for()
    wait_until_settled(page)
    page.get_by_role("button", name="Complete").click()

    page.get_by_text("Novel predictions", exact=False).wait_for()
    assert page.get_by_text("NOTAGENE123").first.is_visible()  # the unknown identifier is reported
    network = page.locator("iframe[srcdoc*='new vis.DataSet']")
    network.wait_for(state="attached")
    assert network.count() == 1
    wait_until_settled(page)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the completion (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "pasted_genes_completion.csv"

    with open(saved, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["rank", "gene", "score", "status", "from_retrieval", "from_model",
                                      "supporting_sets", "top_supporting_sets", "method", "mask_ratio", "seed"]
    assert {(row["mask_ratio"], row["seed"]) for row in rows} == {("0.8", "0")}
    statuses = {row["status"] for row in rows}
    assert statuses <= {"prompt", "recovered", "novel", "missed"} and {"prompt"} < statuses
    prompt = {row["gene"] for row in rows if row["status"] == "prompt"}
    predicted = [row["gene"] for row in rows if row["status"] in ("recovered", "novel")]
    assert [int(row["rank"]) for row in rows if row["rank"]] == list(range(1, len(predicted) + 1))
    assert prompt <= set(GENES) and not prompt & set(predicted)  # no prompt gene predicted
    assert len(predicted) == len(set(predicted)) == round(0.8 * len(GENES))  # as many as were hidden
    recovered = {row["gene"] for row in rows if row["status"] == "recovered"}
    assert recovered <= set(GENES) - prompt
    assert all(row["score"] == "" == row["supporting_sets"] for row in rows if row["status"] == "prompt")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the evidence (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "pasted_genes_completion_evidence.csv"
    with open(saved, newline="") as handle:
        evidence = list(csv.DictReader(handle))
    assert list(dict.fromkeys(row["gene"] for row in evidence)) == predicted
    scores = {row["gene"]: float(row["score"]) for row in rows if row["gene"] in predicted}
    for gene in predicted:
        total = sum(float(row["contribution"]) for row in evidence if row["gene"] == gene)
        assert total == pytest.approx(scores[gene], rel=1e-3)
