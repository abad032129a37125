"""Which obs columns of a dataset hold cell labels and batches, and which label values count as missing.

Used by the embedding explorer (colouring and scoring) and by uploads (the label summary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MISSING_LABELS = frozenset({"", "nan", "none", "na", "n/a", "unknown", "unassigned", "null"})
LABEL_COLUMNS = ("cell_type", "celltype", "cell_types", "cell_type_annotations", "bulk_labels", "cell_label",
                 "labels", "annotation", "original_label", "leiden", "louvain", "seurat_clusters", "clusters",
                 "cluster")  # preferred label columns, in this order
BATCH_COLUMNS = ("batch", "sample", "donor", "patient")
MAX_LABELS = 100


def label_strings(values: pd.Series) -> np.ndarray:
    """Labels as strings, missing ones (NaN, '', 'unknown', ...) as None."""
    out = np.asarray(values.astype(object).where(values.notna(), None), dtype=object)
    return np.asarray([None if v is None or str(v).strip().lower() in MISSING_LABELS else str(v) for v in out],
                      dtype=object)


def n_labels(values: pd.Series) -> int:
    return len({v for v in label_strings(values) if v is not None})


def label_choices(obs: pd.DataFrame) -> list[str]:
    """obs columns that can serve as cell labels: 2 to 100 distinct known values, fewer than the cells,
    not floating point. Preferred columns (cell_type, ...) first."""
    out = []
    for column in obs.columns:
        values = obs[column]
        if pd.api.types.is_float_dtype(values.dtype):
            continue
        n = n_labels(values)
        if 2 <= n <= min(MAX_LABELS, len(obs) - 1):
            out.append(str(column))
    order = {name: i for i, name in enumerate(LABEL_COLUMNS)}
    return sorted(out, key=lambda c: (order.get(c.lower(), len(order)), out.index(c)))


def default_label_column(obs: pd.DataFrame) -> str | None:
    """The first preferred label column with real labels, or None when the data hold no labels."""
    choices = label_choices(obs)
    preferred = [c for c in choices if c.lower() in LABEL_COLUMNS]
    return (preferred or [None])[0]


def batch_column(obs: pd.DataFrame) -> str | None:
    """The first of batch / sample / donor / patient holding at least 2 batches."""
    columns = {str(c).lower(): c for c in obs.columns}
    for name in BATCH_COLUMNS:
        if name in columns and n_labels(obs[columns[name]]) >= 2:
            return str(columns[name])
    return None
