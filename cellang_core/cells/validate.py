"""Check single-cell data before anything uses it, and say what is wrong in plain sentences.

:func:`validate_cells` returns a :class:`CellValidation`: ``errors`` (the data cannot be used as it is),
``warnings`` (it can, with care) and ``notes`` (what was found: value kind, genes recognised); its
``raise_errors(name)`` turns the errors into one :class:`CellFileError` line for scripts, so a script and
the app's upload say the same thing. :func:`value_errors` is the values part alone (NaN, infinite,
negative, not numbers), also used before tokenising. :func:`detect_value_kind` tells raw counts from
log-normalised and other normalised values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import scipy.sparse as sp

from cellang_core.cells.io import CellFileError
from cellang_core.genes import GeneResolver, load_resolver

MIN_RECOGNISED = 0.5  # below this fraction of recognised gene identifiers the data is refused
LOG_MAX = 30.0  # log1p / log2(x+1) values of real data stay below this; linear scales go far above
ID_COLUMNS = ("gene_symbols", "feature_name", "gene_name", "gene_names", "gene_symbol", "symbol",
              "gene_ids", "gene_id", "ensembl_id", "feature_id")  # var columns that may hold gene ids


@dataclass(frozen=True)
class ValueKind:
    """``kind`` is one of counts, log1p, normalised (linear: TPM, FPKM, CPM...), scaled, empty."""

    kind: str
    sentence: str
    max_value: float = 0.0


@dataclass
class CellValidation:
    n_cells: int
    n_genes: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    value_kind: str = "empty"
    fraction_recognised: float = 0.0
    gene_id_source: str = "var_names"  # where the recognised gene identifiers were found

    @property
    def ok(self) -> bool:
        return not self.errors

    def messages(self) -> list[tuple[str, str]]:
        """(level, sentence) pairs, errors first: level is error, warning or note."""
        return ([("error", m) for m in self.errors] + [("warning", m) for m in self.warnings]
                + [("note", m) for m in self.notes])

    def raise_errors(self, name: str = "the data") -> None:
        """Raise :class:`CellFileError` ``"<name>: <every error>"`` (one line) when there is an error."""
        if self.errors:
            raise CellFileError(f"{name}: " + " ".join(self.errors))


def _stored_values(matrix: object, max_values: int = 2_000_000, seed: int = 0) -> np.ndarray:
    """The stored (non-zero for sparse, all for dense) values, or a seeded sample of them."""
    if sp.issparse(matrix):
        values = np.asarray(matrix.data)
    else:
        values = np.asarray(matrix).ravel()
    if values.size > max_values:
        values = np.random.default_rng(seed).choice(values, size=max_values, replace=False)
    return values.astype(np.float64, copy=False)


def detect_value_kind(matrix: object) -> ValueKind:
    """Whole numbers -> counts; non-integers up to ~30 -> log1p-like; larger -> linear normalised."""
    values = _stored_values(matrix)
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0:
        return ValueKind("empty", "The expression matrix holds no non-zero values.")
    low, high = float(values.min()), float(values.max())
    if low < 0:
        return ValueKind("scaled", f"Values run from {low:.3g} to {high:.3g}: negative values mean the data "
                                   "were scaled (z-scores), not counts or normalised expression.", high)
    integer = float(np.mean(np.abs(values - np.round(values)) < 1e-6))
    if integer >= 0.999:
        return ValueKind("counts", f"Values are whole numbers up to {high:,.0f}: raw counts.", high)
    if high <= LOG_MAX:
        return ValueKind("log1p", f"Values are non-integers up to {high:.3g}: log-normalised (log1p-like).", high)
    return ValueKind("normalised", f"Values are non-integers up to {high:,.0f}: normalised on a linear scale "
                                   "(TPM, FPKM, CPM or similar), not raw counts.", high)


def _is_row_numbers(names: Sequence[str]) -> bool:
    return len(names) > 0 and all(name == str(i) for i, name in enumerate(names))


def _missing(names: Sequence[str]) -> int:
    return sum(1 for name in names if name is None or str(name).strip().lower() in ("", "nan", "none", "na"))


def best_gene_ids(adata: ad.AnnData, resolver: GeneResolver) -> tuple[str, float]:
    """The var column (or ``var_names``) whose identifiers the resolver recognises best, and that fraction."""
    candidates = ["var_names"] + [c for c in ID_COLUMNS if c in adata.var.columns]
    best, best_fraction = "var_names", -1.0
    for candidate in candidates:
        ids = adata.var_names if candidate == "var_names" else adata.var[candidate].astype(str)
        if candidate == "var_names" and _is_row_numbers(list(ids[:1000])):
            fraction = 0.0
        else:
            fraction = resolver.harmonise(list(ids)).fraction_mapped
        if fraction > best_fraction + 1e-9:
            best, best_fraction = candidate, fraction
    return best, max(best_fraction, 0.0)


def validate_cells(adata: ad.AnnData, resolver: GeneResolver | None = None,
                   min_recognised: float = MIN_RECOGNISED) -> CellValidation:
    """Check shape, gene names, values and gene identifiers of ``adata`` (an in-memory AnnData)."""
    report = CellValidation(n_cells=adata.n_obs, n_genes=adata.n_vars)
    if adata.n_obs == 0:
        report.errors.append("The data hold no cells (0 rows in X).")
    if adata.n_vars == 0:
        report.errors.append("The data hold no genes (0 columns in X).")
    if report.errors:
        return report
    report.notes.append(f"{adata.n_obs:,} cells x {adata.n_vars:,} genes.")
    duplicated = int(adata.obs_names.duplicated().sum())
    if duplicated:
        report.warnings.append(f"{duplicated:,} cell names occur more than once; each cell is still used "
                               "(obs_names_make_unique would tell them apart in results).")
    _check_values(adata, report)
    _check_gene_ids(adata, resolver or load_resolver(), min_recognised, report)
    return report


def is_numeric_matrix(matrix: object) -> bool:
    """True for a dense or sparse matrix of bools, integers or floats (what expression values can be)."""
    dtype = getattr(matrix, "dtype", None)
    return dtype is not None and np.dtype(dtype).kind in "biuf"


def value_errors(matrix: object, where: str = "X") -> list[str]:
    """Sentences for what makes expression values unusable: not numbers, NaN, infinite, negative.
    An empty list when they are all finite, non-negative numbers (counts, log1p, TPM...)."""
    if not is_numeric_matrix(matrix):
        kind = getattr(matrix, "dtype", None) or type(matrix).__name__
        return [f"{where} holds {kind} values, not numbers; expression values must be counts or normalised "
                "expression."]
    values = _stored_values(matrix, max_values=50_000_000)
    errors = []
    n_nan, n_inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if n_nan:
        errors.append(f"{where} holds {n_nan:,} missing (NaN) values; expression values must all be numbers.")
    if n_inf:
        errors.append(f"{where} holds {n_inf:,} infinite values; expression values must be finite.")
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < 0:
        errors.append(
            f"{where} holds {int((finite < 0).sum()):,} negative values (smallest {finite.min():.3g}): this looks "
            "like scaled data (z-scores). Give raw counts or log-normalised values; if the file keeps them in .raw "
            "or in a layer, save that as X."
        )
    return errors


def _check_values(adata: ad.AnnData, report: CellValidation) -> None:
    if adata.X is None:
        report.errors.append("The data hold no expression matrix (X is missing); save the counts or "
                             "log-normalised values as X.")
        return
    problems = value_errors(adata.X)
    report.errors.extend(problems)
    if not is_numeric_matrix(adata.X):
        return
    kind = detect_value_kind(adata.X)
    report.value_kind = kind.kind
    report.notes.append(kind.sentence)
    if kind.kind == "empty":
        if not problems:
            report.errors.append("Every value in X is zero.")
        return
    per_cell = np.asarray((adata.X != 0).sum(axis=1)).ravel()
    empty_cells = int((per_cell == 0).sum())
    if empty_cells:
        report.warnings.append(f"{empty_cells:,} cells express no gene at all; they carry no information.")


def _check_gene_ids(adata: ad.AnnData, resolver: GeneResolver, min_recognised: float,
                    report: CellValidation) -> None:
    names = [str(n) for n in adata.var_names]
    numbered = _is_row_numbers(names)
    missing = _missing(names)
    source, fraction = best_gene_ids(adata, resolver)
    report.gene_id_source, report.fraction_recognised = source, fraction
    if (numbered or missing == len(names)) and source == "var_names":
        report.errors.append(
            "Gene names are missing: the genes are only numbered (0, 1, 2, ...). Put gene symbols or Ensembl ids "
            "in var_names (or in a var column such as 'gene_symbols' or 'feature_name')."
        )
        return
    if missing and not numbered:
        report.warnings.append(f"{missing:,} genes have an empty name.")
    if source != "var_names":
        report.notes.append(f"Gene identifiers taken from the var column '{source}' (var_names are not gene ids).")
    duplicated = int(adata.var_names.duplicated().sum())
    if duplicated:
        report.warnings.append(f"{duplicated:,} gene names occur more than once; they are merged when "
                               "harmonised to approved symbols.")
    ids = names if source == "var_names" else list(adata.var[source].astype(str))
    harmonised = resolver.harmonise(ids)
    n_mapped = sum(m.mapped for m in harmonised.matches)
    sentence = (f"{fraction:.1%} of the {len(ids):,} gene identifiers ({n_mapped:,}) are recognised as human "
                "genes")
    if harmonised.unknown:
        sentence += f"; not recognised, e.g. {', '.join(harmonised.unknown[:5])}"
    if fraction < min_recognised:
        report.errors.append(sentence + f". At least {min_recognised:.0%} must be recognised: are these human "
                             "gene symbols or Ensembl ids?")
    else:
        report.notes.append(sentence + ".")
