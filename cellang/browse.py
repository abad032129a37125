"""Corpus search for people: gene queries are harmonised first, so 'p53' finds TP53 sets; hits are ranked so
the sets named after the query (a TF's target sets for a TF's symbol) come first. Also the source and
licence-terms filters, the corpus choice and the source tables of the Data page."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cellang.corpus import Corpus, Pathway, store
from cellang.corpus.build import MANIFEST_NAME
from cellang.corpus.sources import ALL_SOURCES, TERMS
from cellang.genes import GeneResolver
from cellang.text import plural

_HOW_IN_WORDS = {"approved": "written differently from", "previous": "a previous symbol of",
                 "alias": "an alias of", "ensembl": "the Ensembl id of", "entrez": "the Entrez id of"}


@dataclass(frozen=True)
class SearchResult:
    hits: list[Pathway]
    note: str  # what was searched, in words ("" when nothing needs saying)


# --- ranking -------------------------------------------------------------------------------------------------

# How well a hit matches, best first: the set is named after the query (the query leads its name once the
# source's prefix is off: CollecTRI_MYC, ENCODE_ChIP_MYC_K562, ChEA_2022:MYC ..., STRING_MYC); the query is
# whole words of the name or description (HALLMARK_MYC_TARGETS_V1); part of a word of the name or
# description (MYCN); or only a gene of the set.
NAMED_AFTER, WHOLE_WORD, SUBSTRING, GENE_ONLY = 0, 1, 2, 3
_NAME_SEPARATORS = re.compile(r"[_ :]+")


def _name_tokens(text: str) -> list[str]:
    return [t for t in _NAME_SEPARATORS.split(text.lower()) if t]


def _subject(pathway: Pathway) -> str:
    """The name without its source's prefix: what follows the first ':' (GO:0006915, ChEA_2022:MYC ...), or
    what follows the source key and '_' (CollecTRI_MYC, REACTOME_APOPTOSIS), else the whole name."""
    name = pathway.name
    if ":" in name:
        return name.split(":", 1)[1]
    prefix = pathway.source + "_"
    return name[len(prefix):] if name.lower().startswith(prefix.lower()) else name


def _ranker(query: str) -> Callable[[Pathway], int]:
    text = query.strip().lower()
    wanted = _name_tokens(text)
    word = re.compile(rf"(?<![a-z0-9]){re.escape(text)}(?![a-z0-9])")

    def contains(tokens: list[str]) -> bool:
        return any(tokens[i:i + len(wanted)] == wanted for i in range(len(tokens) - len(wanted) + 1))

    def rank(pathway: Pathway) -> int:
        if not text:
            return GENE_ONLY
        name, description = pathway.name.lower(), pathway.description.lower()
        if wanted and wanted[0] in name:
            tokens = _name_tokens(name)
            if tokens == wanted or _name_tokens(_subject(pathway))[:len(wanted)] == wanted:
                return NAMED_AFTER
            if contains(tokens):
                return WHOLE_WORD
        if text in description and word.search(description):
            return WHOLE_WORD
        return SUBSTRING if text in name or text in description else GENE_ONLY

    return rank


def match_rank(pathway: Pathway, query: str) -> int:
    """How ``pathway`` matches ``query`` (case-insensitive), best first: :data:`NAMED_AFTER` when the query
    is the whole name, or its leading tokens once the source prefix is off (names split on '_', ' ' and ':', so
    MYC names CollecTRI_MYC_activated and ENCODE_ChIP_MYC_K562); :data:`WHOLE_WORD` when it is whole tokens
    elsewhere in the name (HALLMARK_MYC_TARGETS_V1) or whole words of the description; :data:`SUBSTRING`
    when it is only part of the name or description (MYCN_targets); else :data:`GENE_ONLY`."""
    return _ranker(query)(pathway)


def rank_hits(hits: Iterable[Pathway], queries: Sequence[str], field: str = "any") -> list[Pathway]:
    """``hits`` by their best :func:`match_rank` over ``queries``; stable, so ties keep their order. For
    ``field`` "gene" substring matches are not lifted: a search for sets holding MYC puts the sets named
    after MYC first, not those named after MYCN."""
    rankers = [_ranker(q) for q in queries if q.strip()]
    if not rankers:
        return list(hits)
    if field == "gene":
        return sorted(hits, key=lambda p: min(min(rank(p) for rank in rankers), SUBSTRING))
    return sorted(hits, key=lambda p: min(rank(p) for rank in rankers))


def search_corpus(corpus: Corpus, resolver: GeneResolver, query: str, field: str = "any",
                  sources: Collection[str] | None = None) -> SearchResult:
    """Search ``corpus``; a query that is a gene identifier is also searched as its approved symbol.

    Hits are ranked (:func:`rank_hits`, :func:`match_rank`): sets named after the query (or the approved
    symbol it stands for; a TF's target sets for the TF) first, then sets whose name or description holds it
    as whole words, then as part of a word, then the sets that only contain the gene; corpus order within
    each rank. An empty query lists everything in corpus order.
    A query that stands for another symbol (p53 for TP53) finds, in "any", the sets containing the symbol,
    the sets named or described after it, and the sets matching the query as typed.
    """
    text = query.strip()
    if not text or field not in ("any", "gene"):
        return _with_variants(corpus, text, field, sources)
    match = resolver.resolve(text)
    if match.how == "ambiguous" and field == "gene":
        return SearchResult([], f"'{text}' is ambiguous: it may mean {', '.join(match.candidates)}. "
                                "Search for one of those symbols.")
    if match.symbol is None or match.symbol == text.upper():
        return _with_variants(corpus, text, field, sources)
    found = {p.name for p in corpus.search(match.symbol, "gene", sources)}
    if field == "any":
        named = _ranker(match.symbol)
        found |= {p.name for p in corpus.search(match.symbol, "any", sources) if named(p) <= WHOLE_WORD}
        found |= {p.name for p in corpus.search(text, field, sources)}
    hits = [p for p in corpus.pathways if p.name in found]  # corpus order, then ranked
    shown = "named after or containing" if field == "any" else "containing"
    note = f"'{text}' is {_HOW_IN_WORDS[match.how]} {match.symbol}; showing sets {shown} {match.symbol}."
    return SearchResult(rank_hits(hits, [text, match.symbol], field), note)


# --- word variants -------------------------------------------------------------------------------------------

# A person types "apoptotic" and means the sets about apoptosis too: words are compared by their stem, what is
# left once a common ending is cut (longest first), when at least MIN_STEM letters remain.
_ENDINGS = ("isations", "izations", "isation", "ization", "ational", "ations", "ation", "ated", "ates", "ate", "osis",
            "otic", "ysis", "ytic", "ism", "ities", "ity", "ings", "ing", "ives", "ive", "ical", "ic", "ed", "es", "s")
MIN_STEM = 4
MIN_WORD = 3
_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """``word`` (lower case) without its ending: apoptosis, apoptotic -> apopt; regulation, regulated -> regul;
    cycle, cycles -> cycl; signalling, signaling -> signal."""
    if word.endswith("lling"):
        word = word[:-5] + "ling"  # British doubling: signalling -> signaling
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= MIN_STEM:
            word = word[: -len(ending)]
            break
    return word[:-1] if word.endswith("e") and len(word) > MIN_STEM else word


_STEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pathway_stems(corpus: Corpus) -> list[tuple[set[str], set[str]]]:
    """Per pathway (corpus order), the stems of its name's words and of its description's; computed once a corpus."""
    if corpus not in _STEMS:
        _STEMS[corpus] = [({stem(w) for w in _WORD.findall(p.name.lower().replace("_", " "))},
                           {stem(w) for w in _WORD.findall(p.description.lower())}) for p in corpus.pathways]
    return _STEMS[corpus]


def variant_hits(corpus: Corpus, query: str, field: str = "any",
                 sources: Collection[str] | None = None) -> list[Pathway]:
    """Pathways whose name or description holds every word of ``query`` in some form (by :func:`stem`), in corpus
    order; words of fewer than MIN_WORD letters (T, of) are not required, and gene searches have no variants."""
    wanted = {stem(w) for w in _WORD.findall(query.lower()) if len(w) >= MIN_WORD}
    if not wanted or field == "gene":
        return []
    hits = []
    for pathway, (name, description) in zip(corpus.pathways, _pathway_stems(corpus)):
        words = name | description if field == "any" else name if field == "name" else description
        if wanted <= words and (sources is None or pathway.source in sources):
            hits.append(pathway)
    return hits


def _with_variants(corpus: Corpus, text: str, field: str, sources: Collection[str] | None) -> SearchResult:
    """The search as typed, then the sets that match only a variant of its words (ranked after the others)."""
    typed = rank_hits(corpus.search(text, field, sources), [text], field)
    seen = {p.name for p in typed}
    variants = [p for p in variant_hits(corpus, text, field, sources) if p.name not in seen]
    note = (f"Also showing {plural(len(variants), 'set')} with these words in another form or order."
            if variants else "")
    return SearchResult(typed + variants, note)


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
