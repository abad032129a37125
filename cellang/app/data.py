"""The Data page's support: how it sorts, filters, searches and names its corpus selections, which corpora it
offers, its tables of licence terms and unbuilt sources, the atlas tables and the Census query it shows. The page
reads corpora through :func:`cellang.datasets.corpus`, uploads through :mod:`cellang.app.uploads`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import anndata as ad
import pandas as pd

from cellang import atlas, browse, census
from cellang.corpus import Corpus, Pathway, store
from cellang.corpus.build import MANIFEST_NAME
from cellang.corpus.sources import ALL_SOURCES, TERMS
from cellang.genes import load_resolver
from cellang.text import plural

SEARCH_FIELDS: tuple[str, ...] = store.SEARCH_FIELDS  # what the search box can search in ("any" first)


# --- sorting -------------------------------------------------------------------------------------------------

# Orders applied to every hit before the page lists the first ones: sorting the shown table alone would
# put a 492-gene set on top of a list that leaves out sets of 499. Each key gets the pathway and its place
# in the corpus.
SORT_ORDERS: dict[str, Callable[[Pathway, int], object]] = {
    "best match": lambda p, position: 0,  # the search's ranking
    "corpus order": lambda p, position: position,
    "size, largest first": lambda p, position: -len(p.genes),
    "size, smallest first": lambda p, position: len(p.genes),
    "name": lambda p, position: p.name.lower(),
}


def sort_hits(hits: Sequence[Pathway], order: str, corpus: Corpus | None = None) -> list[Pathway]:
    """``hits`` in one of :data:`SORT_ORDERS` (stable: ties keep the hits' order). "corpus order" needs
    ``corpus``; without it the hits keep their own order."""
    if order not in SORT_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SORT_ORDERS)}, not {order!r}")
    key = SORT_ORDERS[order]
    if corpus is None:
        return sorted(hits, key=lambda p: key(p, 0))
    return sorted(hits, key=lambda p: key(p, corpus.position(p.name)))


# --- filters and download names ------------------------------------------------------------------------------

def filter_sources(corpus: Corpus, sources: Collection[str] | None = None,
                   terms: Collection[str] | None = None) -> list[str]:
    """The corpus's source keys (build order) that are among ``sources`` and whose licence terms are among
    ``terms``; ``None`` means no filter."""
    return [key for key in corpus.sources
            if (sources is None or key in sources) and (terms is None or corpus.source_terms.get(key) in terms)]


def selection_problem(corpus: Corpus, sources: Collection[str], terms: Collection[str]) -> str | None:
    """Why the filter selects no gene set, in words, or None when it selects some."""
    if not sources:
        return "Choose at least one source to list gene sets."
    if not terms:
        return "Choose at least one kind of licence terms to list gene sets."
    if not filter_sources(corpus, sources, terms):
        return (f"None of the chosen sources has {' or '.join(sorted(terms))} terms: choose other sources "
                "or other terms.")
    return None


def _filter_part(chosen: Collection[str] | None, every: Collection[str], empty: str) -> list[str]:
    if chosen is None or set(chosen) == set(every):
        return []
    return ["-".join(sorted(chosen)) or empty]


def selection_file_stem(query: str, field: str = "any", sources: Collection[str] | None = None,
                        all_sources: Collection[str] = (), terms: Collection[str] | None = None,
                        all_terms: Collection[str] = ()) -> str:
    """A download name that says what was selected:
    cellang-pathways-<query>[-in-<field>][-<sources>][-<terms>]; filters that keep everything add nothing."""
    parts = ["cellang-pathways", query.strip() or "all"]
    if query.strip() and field != "any":
        parts.append(f"in-{field}")
    parts += _filter_part(sources, all_sources, "no-source")
    parts += _filter_part(terms, all_terms, "no-terms")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-.")
    return stem[:120]


# --- which corpus, and its sources ---------------------------------------------------------------------------

DEFAULT_CHOICE = "default (shipped)"
EXTENDED_CHOICE = "extended (built here)"


def corpus_choices() -> dict[str, Path]:
    """{label: folder} of the corpora that can be browsed: the shipped default corpus, and the extended
    corpus when it has been built here (``store.EXTENDED_CORPUS_DIR`` holds a manifest)."""
    choices = {DEFAULT_CHOICE: store.CORPUS_DIR}
    if (store.EXTENDED_CORPUS_DIR / MANIFEST_NAME).is_file():
        choices[EXTENDED_CHOICE] = store.EXTENDED_CORPUS_DIR
    return choices


def extended_corpus_note() -> str:
    """What the extended corpus adds and how to build it (for when it is not built here)."""
    extended = [s for s in ALL_SOURCES if not s.in_default_corpus]
    return (f"The extended corpus adds {plural(len(extended), 'source')} whose terms are non-commercial, mixed or "
            f"unclear ({', '.join(s.key for s in extended)}). It is not shipped: build it here with "
            f"`{store.EXTENDED_BUILD_COMMAND}` (into data/{store.EXTENDED_CORPUS_DIR.name}/) to browse it on this "
            "page.")


def terms_summary(corpus: Corpus) -> str:
    """'9 sources, all open' or '31 sources: 9 open, 18 non-commercial, 2 mixed, 2 unclear'."""
    counts = {t: sum(v == t for v in corpus.source_terms.values()) for t in corpus.terms}
    total = plural(len(corpus.sources), "source")
    if len(counts) == 1:
        return f"{total}, all with {next(iter(counts))} terms"
    return f"{total}: " + ", ".join(f"{n} {t}" for t, n in counts.items())


def terms_legend() -> pd.DataFrame:
    """What each kind of licence terms means and which corpus its sources go to."""
    return pd.DataFrame([{"terms": t, "meaning": meaning, "corpus": "default" if t == "open" else "extended"}
                         for t, meaning in TERMS.items()])


UNBUILT_COLUMNS = ("source", "title", "corpus", "terms", "terms mean", "licence", "licence basis",
                   "added in version", "build with")


def unbuilt_sources(corpus: Corpus) -> pd.DataFrame:
    """The catalogue's sources that ``corpus`` does not hold, with their terms and the command that builds a
    corpus with them (the extended sources of the shipped corpus, for one)."""
    built = set(corpus.sources)
    rows = [
        {"source": s.key, "title": s.title, "corpus": "default" if s.in_default_corpus else "extended",
         "terms": s.terms, "terms mean": TERMS[s.terms], "licence": s.licence, "licence basis": s.basis,
         "added in version": s.added_in,
         "build with": store.BUILD_COMMAND if s.in_default_corpus else store.EXTENDED_BUILD_COMMAND}
        for s in ALL_SOURCES if s.key not in built
    ]
    return pd.DataFrame(rows, columns=list(UNBUILT_COLUMNS))


def terms_help() -> str:
    """What each kind of licence terms means, in one line (the help of the terms filter)."""
    return " ".join(f"{key}: {meaning}." for key, meaning in TERMS.items())


# --- search --------------------------------------------------------------------------------------------------

def search_corpus(corpus: Corpus, query: str, field: str = "any", sources: Collection[str] | None = None
                  ) -> browse.SearchResult:
    """The gene sets of ``corpus`` that match ``query`` in ``field`` (gene identifiers resolved to approved symbols)
    among ``sources``: ``.hits`` best match first and ``.note``, what was searched in words (or "")."""
    return browse.search_corpus(corpus, load_resolver(), query, field, sources)


# --- the cell atlas ------------------------------------------------------------------------------------------

def atlas_manifest() -> dict:
    """The embedded atlas's manifest: ``totals`` (cells, datasets) and one entry per dataset (name, title, cells,
    value kind, notes, ...)."""
    return atlas.atlas_manifest()


def atlas_table() -> pd.DataFrame:
    """One row per atlas dataset: cells, genes, value kind, labels, licence, source packages."""
    return atlas.atlas_table()


def dataset_table(name: str) -> pd.DataFrame:
    """The cells of one atlas dataset by cell type (rows) and state (columns), with totals."""
    return atlas.dataset_table(name)


# --- heart cells from the CELLxGENE Census -------------------------------------------------------------------

CARDIOMYOPATHY_DISEASES: tuple[str, ...] = census.CARDIOMYOPATHY_DISEASES  # the disease states the page offers


def census_filter(diseases: Sequence[str], max_cells: int) -> str:
    """The Census's obs filter of the cardiomyocytes of ``diseases`` (shown before anything is fetched)."""
    return census.cardiomyocyte_query(diseases, max_cells=max_cells).obs_value_filter()


def fetch_cardiomyocytes(diseases: Sequence[str], max_cells: int) -> ad.AnnData:
    """At most ``max_cells`` cardiomyocytes of ``diseases`` from the CELLxGENE Census (raw counts, a seeded
    sample); :class:`cellang.CellangError` with the reason when the Census cannot be reached."""
    return census.fetch_census(census.cardiomyocyte_query(diseases, max_cells=max_cells))
