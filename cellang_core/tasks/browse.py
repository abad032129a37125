"""Corpus search for people: gene queries are harmonised first, so 'p53' finds TP53 sets."""

from __future__ import annotations

from collections.abc import Collection
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
