"""Corpus search for people: gene queries are harmonised first, so 'p53' finds TP53 sets."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from cellang_core.corpus import Corpus, Pathway
from cellang_core.genes import GeneResolver

_HOW_IN_WORDS = {"approved": "written differently from", "previous": "a previous symbol of",
                 "alias": "an alias of", "ensembl": "the Ensembl id of", "entrez": "the Entrez id of"}


@dataclass(frozen=True)
class SearchResult:
    hits: list[Pathway]
    note: str  # what was searched, in words ("" when nothing needs saying)


def search_corpus(corpus: Corpus, resolver: GeneResolver, query: str, field: str = "any",
                  sources: Collection[str] | None = None) -> SearchResult:
    """Search ``corpus``; a query that is a gene identifier is also searched as its approved symbol."""
    text = query.strip()
    if not text or field not in ("any", "gene"):
        return SearchResult(corpus.search(text, field, sources), "")
    match = resolver.resolve(text)
    if match.how == "ambiguous" and field == "gene":
        return SearchResult([], f"'{text}' is ambiguous: it may mean {', '.join(match.candidates)}. "
                                "Search for one of those symbols.")
    if match.symbol is None or match.symbol == text.upper():
        return SearchResult(corpus.search(text, field, sources), "")
    by_symbol = corpus.search(match.symbol, "gene", sources)
    seen = {p.name for p in by_symbol}
    extra = [p for p in corpus.search(text, field, sources) if p.name not in seen] if field == "any" else []
    note = f"'{text}' is {_HOW_IN_WORDS[match.how]} {match.symbol}; showing sets containing {match.symbol}."
    return SearchResult(extra + by_symbol if extra else by_symbol, note)


# Orders applied to every hit before the page lists the first ones: sorting the shown table alone would
# put a 492-gene set on top of a list that leaves out sets of 499.
SORT_ORDERS: dict[str, Callable[[Pathway], object]] = {
    "corpus order": lambda p: 0,
    "size, largest first": lambda p: -len(p.genes),
    "size, smallest first": lambda p: len(p.genes),
    "name": lambda p: p.name.lower(),
}


def sort_hits(hits: Sequence[Pathway], order: str) -> list[Pathway]:
    """``hits`` in one of :data:`SORT_ORDERS` (stable: ties keep corpus order)."""
    if order not in SORT_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SORT_ORDERS)}, not {order!r}")
    return sorted(hits, key=SORT_ORDERS[order])


def selection_file_stem(query: str, field: str = "any", sources: Collection[str] | None = None,
                        all_sources: Collection[str] = ()) -> str:
    """A download name that says what was selected: cellang-pathways-<query>[-in-<field>][-<sources>]."""
    parts = ["cellang-pathways", query.strip() or "all"]
    if query.strip() and field != "any":
        parts.append(f"in-{field}")
    if sources is not None and set(sources) != set(all_sources):
        parts.append("-".join(sorted(sources)) or "no-source")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-.")
    return stem[:120]
