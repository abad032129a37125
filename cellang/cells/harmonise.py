"""Map the genes of an AnnData to approved HGNC symbols (see :mod:`cellang.genes`).

:func:`harmonise_var` returns a new AnnData whose ``var`` is indexed by approved symbol, with the
original identifier in ``original_id`` and the Ensembl id in ``ensembl_id``. Identifiers that are
unknown or ambiguous are dropped; several identifiers that mean the same gene are merged:
summed for counts and linear normalised values, summed on the linear scale for log1p values
(``log1p(sum(expm1(x)))``), or the first kept for scaled values. The returned
:class:`VarHarmonisation` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellang.cells.validate import best_gene_ids
from cellang.genes import GeneResolver, load_resolver
from cellang.preprocess import detect_value_kind

AGGREGATIONS = ("sum", "log1p_sum", "first")


@dataclass
class VarHarmonisation:
    """What :func:`harmonise_var` did to the genes."""

    id_source: str
    n_input: int
    n_output: int
    aggregation: str
    mapped_by: dict[str, int] = field(default_factory=dict)  # approved/ensembl/previous/alias/... -> genes
    unknown: list[str] = field(default_factory=list)
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)
    merged: dict[str, list[str]] = field(default_factory=dict)  # symbol -> original ids merged into it

    def summary(self) -> str:
        parts = [f"{self.n_input:,} genes -> {self.n_output:,} approved symbols (ids from {self.id_source})"]
        if self.unknown:
            parts.append(f"{len(self.unknown):,} unknown dropped")
        if self.ambiguous:
            parts.append(f"{len(self.ambiguous):,} ambiguous dropped")
        if self.merged:
            parts.append(f"{sum(len(v) for v in self.merged.values()):,} identifiers merged into "
                         f"{len(self.merged):,} symbols ({self.aggregation})")
        return "; ".join(parts) + "."

    def manifest_entry(self, examples: int = 10) -> dict:
        return {
            "id_source": self.id_source, "genes_in_source": self.n_input, "genes": self.n_output,
            "mapped_by": dict(sorted(self.mapped_by.items())),
            "unknown_dropped": len(self.unknown), "unknown_examples": self.unknown[:examples],
            "ambiguous_dropped": len(self.ambiguous),
            "ambiguous_examples": {k: list(v) for k, v in list(self.ambiguous.items())[:examples]},
            "merged_symbols": len(self.merged), "merge_rule": self.aggregation, "merged": dict(self.merged),
        }


def _aggregation_for(matrix: object) -> str:
    kind = detect_value_kind(matrix).kind
    return {"log1p": "log1p_sum", "scaled": "first"}.get(kind, "sum")


def _combine(matrix: object, membership: sp.csr_matrix, first: np.ndarray, aggregation: str) -> sp.csr_matrix:
    """Columns of ``matrix`` merged by ``membership`` (genes x symbols) with one rule."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if aggregation == "first":
        out = matrix[:, first]
    elif aggregation == "log1p_sum":
        linear = matrix.copy()
        linear.data = np.expm1(linear.data)
        out = linear @ membership
        out.data = np.log1p(out.data)
    else:
        out = matrix @ membership
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    out.eliminate_zeros()
    return out


def harmonise_var(adata: ad.AnnData, resolver: GeneResolver | None = None, *, id_source: str | None = None,
                  fallback_columns: Sequence[str] = (), aggregation: str | None = None
                  ) -> tuple[ad.AnnData, VarHarmonisation]:
    """Re-index genes by approved symbol; drop unknown/ambiguous ids; merge duplicates.

    ``id_source``: ``var_names`` or a var column holding the identifiers (default: whichever the
    resolver recognises best). ``fallback_columns`` are tried, in order, for identifiers that do not
    map (for instance a symbol column behind retired Ensembl ids). ``aggregation``: one of
    ``sum``, ``log1p_sum``, ``first``; by default chosen from the kind of values in X.
    """
    resolver = resolver or load_resolver()
    if id_source is None:
        id_source, _ = best_gene_ids(adata, resolver)
    aggregation = aggregation or _aggregation_for(adata.X)
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
    ids = [str(v) for v in (adata.var_names if id_source == "var_names" else adata.var[id_source])]
    fallbacks = [[str(v) for v in adata.var[c]] for c in fallback_columns]

    matches = []
    report = VarHarmonisation(id_source, adata.n_vars, 0, aggregation)
    for position, identifier in enumerate(ids):
        match = resolver.resolve(identifier)
        for column in fallbacks:
            if match.mapped:
                break
            alternative = resolver.resolve(column[position])
            if alternative.mapped:
                match = alternative
        if match.mapped:
            report.mapped_by[match.how] = report.mapped_by.get(match.how, 0) + 1
        elif match.how == "ambiguous":
            report.ambiguous[identifier] = match.candidates
        else:
            report.unknown.append(identifier)
        matches.append(match)

    symbols: dict[str, int] = {}
    rows, columns = [], []
    for position, match in enumerate(matches):
        if match.symbol is None:
            continue
        column = symbols.setdefault(match.symbol, len(symbols))
        rows.append(position)
        columns.append(column)
    membership = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(adata.n_vars, len(symbols)))
    members: dict[int, list[int]] = {}
    for position, column in zip(rows, columns):
        members.setdefault(column, []).append(position)
    first = np.array([members[c][0] for c in range(len(symbols))], dtype=np.int64)
    for symbol, column in symbols.items():
        if len(members[column]) > 1:
            report.merged[symbol] = [ids[p] for p in members[column]]
    report.n_output = len(symbols)

    var = adata.var.iloc[first].copy()
    var.index = pd.Index(list(symbols), name=None)
    var["original_id"] = ["|".join(ids[p] for p in members[c]) for c in range(len(symbols))]
    var["ensembl_id"] = [matches[members[c][0]].ensembl_id or "" for c in range(len(symbols))]
    var["mapped_by"] = [matches[members[c][0]].how for c in range(len(symbols))]
    var["n_merged"] = np.array([len(members[c]) for c in range(len(symbols))], dtype=np.int64)

    out = ad.AnnData(
        X=_combine(adata.X, membership, first, aggregation), obs=adata.obs.copy(), var=var,
        layers={name: _combine(layer, membership, first, "sum" if name == "counts" else aggregation)
                for name, layer in adata.layers.items()},
        uns=dict(adata.uns),
    )
    return out, report
