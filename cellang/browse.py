"""Corpus search for people: gene queries are harmonised first, so 'p53' finds TP53 sets; hits are ranked so
the sets named after the query (a TF's target sets for a TF's symbol) come first, and words match their other
forms ('apoptotic' finds apoptosis). ``cl.pw.search`` and the Data page (:mod:`cellang.app.data`) use it."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from cellang.corpus import Corpus, Pathway
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
