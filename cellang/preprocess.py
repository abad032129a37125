"""Expression values before any model or baseline sees them: what kind they are, and the shared steps.

The cell tokenisers (:mod:`cellang.tokenizers`) and the HVG + PCA baseline
(:mod:`cellang.embedding.metrics`) both start here, so a cell is normalised the same way whichever
of them reads it; validation (:mod:`cellang.cells.validate`) uses the same value checks.

* :func:`detect_value_kind`: counts, log1p, normalised (TPM, FPKM...), scaled or empty, from the values;
  :func:`stated_value_kinds`: what ``obs["value_kind"]`` says (the atlas writes it);
* :func:`is_numeric_matrix`, :func:`value_errors`: what makes values unusable (not numbers, NaN, negative);
* :func:`normalise_total`: every cell scaled to the same total (scanpy's ``normalize_total``), in the
  matrix's own precision; :func:`log1p`: log1p of the stored values;
* :func:`gather_columns`: a matrix subset to some genes and put in another gene order.

A low layer: numpy, scipy and anndata only (no gene table, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp

LOG_MAX = 30.0  # log1p / log2(x+1) values of real data stay below this; linear scales go far above


@dataclass(frozen=True)
class ValueKind:
    """``kind`` is one of counts, log1p, normalised (linear: TPM, FPKM, CPM...), scaled, empty."""

    kind: str
    sentence: str
    max_value: float = 0.0


def stored_values(matrix: object, max_values: int = 2_000_000, seed: int = 0) -> np.ndarray:
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
    values = stored_values(matrix)
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


def stated_value_kinds(adata: ad.AnnData) -> list[str]:
    """The distinct values of ``obs["value_kind"]`` as written, sorted; empty when there is no such column
    or no cell. Each reader decides what several kinds, or a blank one, mean for it."""
    if "value_kind" not in adata.obs.columns or not adata.n_obs:
        return []
    return sorted(set(adata.obs["value_kind"].astype(str)))


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
    values = stored_values(matrix, max_values=50_000_000)
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


def normalise_total(matrix: sp.csr_matrix, target_sum: float = 1e4) -> sp.csr_matrix:
    """Each cell (row) scaled to sum to ``target_sum``; empty cells stay empty. The scale factors are cast
    to the matrix's dtype, so a float32 matrix stays float32 (the PCA baseline) and a float64 one float64
    (the tokenisers)."""
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale.astype(matrix.dtype, copy=False)) @ matrix)


def log1p(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """log1p of every stored value (zeros stay zero); a new matrix sharing the sparsity structure."""
    return sp.csr_matrix((np.log1p(matrix.data), matrix.indices, matrix.indptr), shape=matrix.shape)


def gather_columns(matrix: sp.csr_matrix, columns: np.ndarray, width: int | None = None) -> sp.csr_matrix:
    """Keep the columns whose target in ``columns`` is >= 0 (-1: a gene the reader does not know) and move
    each to that target column; columns with one target are summed. ``width``: the number of target columns
    (default: the largest target + 1)."""
    keep = np.flatnonzero(columns >= 0)
    if width is None:
        width = int(columns.max(initial=-1)) + 1 if len(keep) else 0
    coo = sp.csr_matrix(matrix[:, keep]).tocoo()
    gathered = sp.csr_matrix((coo.data, (coo.row, columns[keep][coo.col])), shape=(matrix.shape[0], width))
    gathered.sum_duplicates()
    gathered.eliminate_zeros()
    return gathered
