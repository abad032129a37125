"""Which corpus pathways do a list of genes resemble? Over-representation against local gene sets.

In:  genes, the corpus as ``{name: genes}``, a background (a gene count or the list of genes that
     could have been picked), names -> descriptions.
Out: a table (``enrich_against_corpus``): name, description, overlap "k/n", p, q, genes; and one
     English sentence about it (``plain_reading``).

The test is gseapy's offline over-representation (``gseapy.enrich`` with a dict of gene sets: the
hypergeometric upper tail, as Enrichr computes it). It runs entirely locally: gene sets are always
given as a dict and the background as a number or a list (a background *name* would make gseapy
download a BioMart table, so strings are refused), no output folder, no plots.

Two details differ from calling gseapy directly, both to make the answer right:
* gene symbols are handed to gseapy as opaque upper-case tokens and mapped back, because gseapy
  upper-cases a query that is "mostly not upper case" (C1orf112-style symbols) and reads an
  all-digit query as Entrez ids; either would silently lose genes;
* ``q`` is Benjamini-Hochberg over every corpus set tested (a set without overlap counts with
  p = 1), not only over the sets that overlap the query as gseapy's "Adjusted P-value" is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cellang.stats import benjamini_hochberg

COLUMNS = ["name", "description", "overlap", "p", "q", "genes"]
SIGNIFICANT_Q = 0.05


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({"name": pd.Series(dtype=str), "description": pd.Series(dtype=str),
                         "overlap": pd.Series(dtype=str), "p": pd.Series(dtype=float),
                         "q": pd.Series(dtype=float), "genes": pd.Series(dtype=str)}, columns=COLUMNS)


def _token(number: int) -> str:
    return f"G{number:07d}"  # upper case, never all digits: gseapy takes it as it is


def enrich_against_corpus(genes: Iterable[str], corpus_sets: Mapping[str, Sequence[str]],
                          background: int | Collection[str], top: int | None = 10,
                          descriptions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The ``top`` corpus sets most over-represented in ``genes`` (None: every overlapping set).

    ``background`` is the universe the genes were drawn from: a number of genes, or the genes
    themselves (then sets and query are restricted to it, as gseapy does). Rows are sorted by p
    (ties by name); ``genes`` lists the overlap in query order. An empty query, an empty corpus or no
    overlap gives an empty table with the same columns.
    """
    if isinstance(background, str):
        raise TypeError("background must be a gene count or a collection of genes, not a string "
                        "(gseapy would try to download a BioMart table for it)")
    if isinstance(background, (bool, np.bool_)) or not isinstance(background, (int, np.integer, Collection)):
        raise TypeError(f"background must be an int or a collection of genes, got {type(background).__name__}")
    query = list(dict.fromkeys(str(g) for g in genes if str(g).strip()))
    universe: set[str] | None = None if isinstance(background, (int, np.integer)) else set(map(str, background))
    if universe is not None:
        query = [g for g in query if g in universe]
    n_background = int(background) if universe is None else len(universe)
    if not query or not corpus_sets or n_background < 1:
        return empty_table()
    if universe is None and len(query) > n_background:
        raise ValueError(f"{len(query)} query genes cannot be drawn from a background of {n_background}")

    query_set = set(query)
    tested = 0
    overlapping: dict[str, list[str]] = {}
    for name, members in corpus_sets.items():
        kept = [g for g in members if universe is None or g in universe]
        if not kept:
            continue
        tested += 1
        if not query_set.isdisjoint(kept):
            overlapping[name] = kept
    if not overlapping:
        return empty_table()

    # opaque tokens for every gene gseapy will see (query, overlapping sets, background list)
    vocabulary = list(dict.fromkeys([*query, *(g for kept in overlapping.values() for g in kept)]))
    if universe is not None:
        vocabulary.extend(sorted(universe - set(vocabulary)))
    encode = {gene: _token(i) for i, gene in enumerate(vocabulary)}
    decode = {token: gene for gene, token in encode.items()}
    # gseapy sorts terms by name and needs unique keys: name them by position, map back after
    term_names = list(overlapping)
    gene_sets = {f"T{i:07d}": [encode[g] for g in overlapping[name]] for i, name in enumerate(term_names)}
    gseapy_background = n_background if universe is None else [encode[g] for g in vocabulary]

    result = _run_gseapy([encode[g] for g in query], gene_sets, gseapy_background)
    if result is None or result.empty:
        return empty_table()

    position = {g: i for i, g in enumerate(query)}
    rows = []
    for record in result.to_dict("records"):
        name = term_names[int(str(record["Term"])[1:])]
        hits = sorted((decode[t] for t in str(record["Genes"]).split(";") if t), key=position.__getitem__)
        rows.append({"name": name, "description": (descriptions or {}).get(name, name),
                     "overlap": str(record["Overlap"]), "p": float(record["P-value"]), "genes": " ".join(hits)})
    table = pd.DataFrame(rows)
    # BH over all sets tested: the ones gseapy skipped (no overlap) count with p = 1
    p_all = np.concatenate([table["p"].to_numpy(), np.ones(tested - len(table))])
    table["q"] = benjamini_hochberg(np.clip(p_all, 0.0, 1.0))[: len(table)]
    table = table.sort_values(["p", "name"], kind="stable").reset_index(drop=True)[COLUMNS]
    return table if top is None else table.head(top).reset_index(drop=True)


def _run_gseapy(query: list[str], gene_sets: dict[str, list[str]], background: int | list[str]) -> pd.DataFrame | None:
    """``gseapy.enrich`` in its offline mode, quiet, with its per-call logger removed afterwards."""
    import gseapy

    result = gseapy.enrich(gene_list=query, gene_sets=gene_sets, background=background, outdir=None,
                           no_plot=True, verbose=False)
    try:
        return result.res2d
    finally:
        logger = getattr(result, "_logger", None)
        result.close()
        if logger is not None:  # gseapy makes one named logger per call; do not let them pile up
            logging.Logger.manager.loggerDict.pop(logger.name, None)


def format_q(q: float) -> str:
    """1.2e-8 style (no exponent padding); tiny values as '< 1e-300'."""
    if not math.isfinite(q):
        return "n/a"
    if q < 1e-300:
        return "< 1e-300"
    if q >= 0.001:
        return f"{q:.3g}"
    mantissa, exponent = f"{q:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def plain_reading(table: pd.DataFrame, n: int = 3, *, subject: str = "The completed genes",
                  threshold: float = SIGNIFICANT_Q) -> str:
    """One English sentence naming up to ``n`` best terms with q < ``threshold`` (by p order)."""
    significant = table[table["q"] < threshold].head(n) if len(table) else table
    if significant.empty:
        return f"{subject} do not resemble any corpus pathway (no term with q < {threshold:g})."
    parts = [f"{row.description} (q = {format_q(row.q)})" if format_q(row.q)[0] != "<"
             else f"{row.description} (q {format_q(row.q)})" for row in significant.itertuples()]
    if len(parts) == 1:
        listed = parts[0]
    elif len(parts) == 2:
        listed = f"{parts[0]} and {parts[1]}"
    else:
        listed = ", ".join(parts[:-1]) + f", and {parts[-1]}"
    return f"{subject} most resemble: {listed}."


def significance_note(table: pd.DataFrame, threshold: float = SIGNIFICANT_Q) -> str:
    """A sentence for an enrichment table in which no row reaches q < ``threshold`` ("" otherwise), so
    that the best overlaps shown are not read as findings."""
    if len(table) and (table["q"] < threshold).any():
        return ""
    return (f"No gene set is significant (every q >= {threshold:g}): the rows are the closest overlaps, "
            "not findings.") if len(table) else "No gene set overlaps these genes."


__all__ = ["COLUMNS", "empty_table", "enrich_against_corpus", "format_q", "plain_reading", "significance_note"]
