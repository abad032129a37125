"""Check single-cell data before anything uses it, and say what is wrong in plain sentences.

:func:`validate_cells` returns a :class:`CellValidation`: ``errors`` (the data cannot be used as it is),
``warnings`` (it can, with care) and ``notes`` (what was found: value kind, genes recognised); its
``raise_errors(name)`` turns the errors into one :class:`CellFileError` line for scripts, so a script and
the app's upload say the same thing. The values part (:func:`~cellang.preprocess.value_errors`,
:func:`~cellang.preprocess.detect_value_kind`) lives in :mod:`cellang.preprocess`, beside the
normalisation the tokenisers and the PCA baseline share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np

from cellang.cells.io import CellFileError
from cellang.genes import GeneResolver, load_resolver
from cellang.preprocess import detect_value_kind, is_numeric_matrix, value_errors

MIN_RECOGNISED = 0.5  # below this fraction of recognised gene identifiers the data is refused
ID_COLUMNS = ("gene_symbols", "feature_name", "gene_name", "gene_names", "gene_symbol", "symbol",
              "gene_ids", "gene_id", "ensembl_id", "feature_id")  # var columns that may hold gene ids


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
