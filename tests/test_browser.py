"""Real-browser tests: the running app driven in Debian's headless Chromium with Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellang.browse import search_corpus
from cellang.corpus import load_corpus
from cellang.genes import load_resolver
from cellang.gmt import read_gmt
from tests.conftest import wait_until_settled

pytestmark = pytest.mark.browser


def test_home_page_shows_corpus_and_device(page, app_url) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_text("cellang: do cells have a language?").wait_for()
    page.get_by_text(f"{len(load_corpus()):,} gene sets").wait_for()
    assert page.get_by_text("Compute device").is_visible()
    assert page.get_by_role("link", name="Home").is_visible()  # the navigation names the page, not the file
    assert page.get_by_role("link", name="app", exact=True).count() == 0


def test_search_a_gene_and_download_gmt(page, app_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_role("link", name="Data").click()
    page.get_by_text("Data: the pathway corpus").wait_for()
    search = page.get_by_label("Search the corpus", exact=True)
    search.fill("MYOD1")
    search.press("Enter")
    corpus = load_corpus()
    expected = search_corpus(corpus, load_resolver(), "MYOD1").hits  # the page's order: best match first
    page.get_by_text(f"{len(expected):,} of {len(corpus):,} gene sets match.").wait_for()
    wait_until_settled(page)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download matching sets (GMT)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "cellang-pathways-MYOD1.gmt"  # named after the query, not one name for every search

    gene_sets = read_gmt(saved).gene_sets
    assert [s.name for s in gene_sets] == [p.name for p in expected]
    assert any("MYOD1" in s.genes for s in gene_sets)
    for gene_set in gene_sets:
        assert "MYOD1" in gene_set.genes or "myod1" in (gene_set.name + gene_set.description).lower()
