"""``cl.pw``: gene lists and pathways. A gene list becomes a completion, a query finds corpus sets, a list is
tested for over-representation; each call returns a ``pandas.DataFrame`` with what was asked in ``.attrs``.

    import cellang as cl
    cl.pw.complete(["MYOD1", "MYOG", "DES"], n=20)            # expand: propose 20 genes to add
    cl.pw.complete(genes, hide=0.8, seed=0)                    # test: hide 80%, recover them from the rest
    cl.pw.search("apoptosis")                                  # corpus sets by name, description or gene
    cl.pw.enrich(["MYOD1", "MYOG", "DES", "ACTA1"])            # corpus sets over-represented in a list

The work is done by :mod:`cellang.completion` (request, completer, tables), :mod:`cellang.browse` and
:mod:`cellang.enrich`; this module only shapes calls and results for a notebook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache

import pandas as pd

__all__ = ["complete", "enrich", "search"]


@lru_cache(maxsize=1)
def _completer():
    from cellang.completion.completer import load_completer

    return load_completer()


def _genes(genes: str | Iterable[str]) -> tuple[str, ...]:
    from cellang.genes import split_genes

    if isinstance(genes, str):
        return tuple(split_genes(genes))
    return tuple(str(g).strip() for g in genes if str(g).strip())


def complete(genes: str | Iterable[str], n: int | None = None, *, hide: float = 0.0, seed: int = 0,
             ranking: str = "best", mode: str = "ranked") -> pd.DataFrame:
    """Complete a gene list with the shipped pathway completer.

    Parameters
    ----------
    genes
        Gene identifiers (approved symbols, previous symbols, aliases, Ensembl or Entrez ids), as a list or one
        string with any separators. Unknown identifiers are left out and listed in ``.attrs["unknown"]``.
    n
        How many genes to propose. Default: 20 when expanding, as many as were hidden when testing.
    hide
        0 (default) expands the list: every gene is shown to the model. Above 0 (at most 0.95) tests it: this
        share of the genes is hidden (chosen by ``seed``) and the model tries to recover it from the rest.
    seed
        Chooses the hidden genes (and the draws in sample mode); the same input and seed give the same output.
    ranking
        "best" (the shipped completer's ranking, chosen on validation pathways), "retrieval" (set retrieval
        alone) or "model" (the language model alone).
    mode
        "ranked" (default) or "sample" (draws from the language model).

    Returns
    -------
    pandas.DataFrame
        One row per proposed gene, best first: ``rank``, ``gene``, ``score``, ``status`` ("novel", or
        "recovered" for a hidden gene found again), ``evidence`` (the training sets that support the gene,
        "NAME (overlap/size); ..."; empty without a retrieval datastore), and, with evidence, the score's
        parts ``from_retrieval`` and ``from_model`` and the count ``supporting_sets``.
        ``.attrs``: ``genes`` (as given), ``prompt`` (what the model saw), ``hidden``, ``unknown``, ``hide``,
        ``seed``, ``n``, ``ranking``, ``method``, ``notes``, and with ``hide`` > 0 ``metrics`` (recall,
        precision and the one-sided Fisher p of the overlap, universe = the vocabulary).

    Raises
    ------
    cellang.CellangError
        No genes, a setting out of range, or no gene the model knows.
    """
    from cellang.completion.tables import completion_metrics, prediction_table
    from cellang.completion.request import CompletionRequest, pick_ranking, run_completion

    request = CompletionRequest(_genes(genes), mask_ratio=float(hide), seed=int(seed), n=int(n or 0), mode=mode)
    completer = _completer()
    completion = run_completion(pick_ranking(completer, ranking), request)
    table = prediction_table(completion)
    if "top_supporting_sets" in table:
        table = table.rename(columns={"top_supporting_sets": "evidence"})
        table = table[["rank", "gene", "score", "status", "evidence", "from_retrieval", "from_model",
                       "supporting_sets"]]
    else:
        table["evidence"] = ""
    harmonisation = completion.harmonisation
    metrics = completion_metrics(completion, len(completer.universe))
    table.attrs = {
        "genes": list(request.genes), "prompt": list(completion.prompt), "hidden": list(completion.masked),
        "unknown": [m.query for m in harmonisation.matches if m.symbol is None or m.symbol not in completer.vocabulary]
        if harmonisation is not None else [],
        "hide": float(hide), "seed": int(seed), "n": len(table), "ranking": ranking, "method": completion.method,
        "notes": list(completion.notes), "metrics": dataclasses.asdict(metrics) if metrics else None,
    }
    return table


def search(query: str, *, field: str = "any", sources: Collection[str] | None = None) -> pd.DataFrame:
    """Find gene sets of the shipped corpus.

    Parameters
    ----------
    query
        Words of a set's name or description, or a gene identifier ("p53" finds the sets of TP53). Words match
        their variants too ("apoptotic" finds apoptosis sets). Empty: every set.
    field
        "any" (default), "name", "description" or "gene".
    sources
        Only these corpus sources (e.g. {"reactome", "kegg"}); None: all.

    Returns
    -------
    pandas.DataFrame
        One row per set, best match first: ``name``, ``description``, ``source``, ``size``, ``split``
        ("train" / "test"), ``genes`` (space-separated). ``.attrs``: ``query``, ``field``, ``note`` (what was
        searched, in words).
    """
    from cellang.browse import search_corpus
    from cellang.corpus import load_corpus
    from cellang.genes import load_resolver

    fields = ("any", "name", "description", "gene")
    if field not in fields:
        from cellang.errors import CellangError

        raise CellangError(f"field {field!r} is not one of {', '.join(fields)}")
    corpus = load_corpus()
    result = search_corpus(corpus, load_resolver(), str(query), field, sources)
    table = pd.DataFrame([{"name": p.name, "description": p.description, "source": p.source, "size": len(p.genes),
                           "split": p.split, "genes": " ".join(p.genes)} for p in result.hits],
                         columns=["name", "description", "source", "size", "split", "genes"])
    table.attrs = {"query": str(query), "field": field, "note": result.note}
    return table


def enrich(genes: str | Iterable[str], *, top: int | None = 10, background: int | Sequence[str] | None = None
           ) -> pd.DataFrame:
    """Corpus gene sets over-represented in a gene list (one-sided Fisher / hypergeometric test, BH q).

    Parameters
    ----------
    genes
        Gene identifiers, harmonised to approved symbols first.
    top
        Rows returned, smallest p first (None: every set that overlaps the list).
    background
        The universe the genes were drawn from: a number of genes or the genes themselves. Default: the
        pathway models' vocabulary (every gene of the corpus train and test sets).

    Returns
    -------
    pandas.DataFrame
        ``name``, ``description``, ``overlap`` ("k/size"), ``p``, ``q`` (BH over every set tested), ``genes``
        (the overlap). ``.attrs``: ``genes`` (harmonised), ``unknown``, ``background``.
    """
    from cellang.corpus import load_corpus
    from cellang.corpus.store import vocabulary_genes
    from cellang.enrich import enrich_against_corpus
    from cellang.errors import CellangError
    from cellang.genes import load_resolver

    given = _genes(genes)
    if not given:
        raise CellangError("no genes given to enrich")
    harmonised = load_resolver().harmonise(given)
    corpus = load_corpus()
    universe = background if background is not None else vocabulary_genes(corpus.pathways)
    table = enrich_against_corpus(harmonised.symbols, {p.name: list(p.genes) for p in corpus.pathways},
                                  universe if isinstance(universe, int) else list(universe), top=top,
                                  descriptions={p.name: p.description for p in corpus.pathways})
    table.attrs = {"genes": list(harmonised.symbols), "unknown": harmonised.unknown,
                   "background": universe if isinstance(universe, int) else len(universe)}
    return table
