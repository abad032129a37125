"""What the In-silico deletion page needs besides the workflow: datasets, sensible defaults, known-gene
choices, gene-list parsing, the CSV download. No Streamlit here.

In:  the session's cells (the HSMM default, an upload's ``UploadResult.adata``, Census cells).
Out: plain values for widgets, and :class:`DeletionResult` -> CSV bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from cellang_core.known_genes import ALL_CARDIOMYOPATHY, MYOGENIC_REGULATORS, known_gene_sets
from cellang_core.tasks.deletion_workflow import (CELL_TYPE_COLUMNS, HSMM_NOTE, MODEL, STATE_COLUMNS,
                                                  DeletionResult, find_column, heart_state, labels_of)

HSMM = "hsmm"
UPLOAD = "upload"
CENSUS = "census"
MAX_STATE_LABELS = 60  # columns with more labels than this are not offered as states
MYOGENIC_KEY = "myogenic regulators: MYOD1, MYOG, MYF5, MYF6, MEF2C"
NO_KNOWN = "none"
GENE_MODES = {"all": "all expressed genes", "list": "a list of genes", "set": "a corpus gene set"}
PERTURB_MODES = {"delete": "deletion", "overexpress": "overexpression (move to the top)"}


@dataclass(frozen=True)
class StateDefaults:
    """Default widget values for a dataset: state column, start and goal labels, cell-type column."""

    state_column: str | None
    start: str | None
    goal: str | None
    cell_type_column: str | None
    known: str


def dataset_note(dataset: str, name: str = "", n_cells: int = 0) -> str:
    """One plain sentence saying which data is shown."""
    if dataset == HSMM:
        return HSMM_NOTE
    if dataset == CENSUS:
        return (f"Data shown: {n_cells:,} cardiomyocytes fetched from the CELLxGENE Census in this session "
                "(normal, dilated and hypertrophic cardiomyopathy hearts).")
    return f"Data shown: your upload {name} ({n_cells:,} cells); nothing of it is saved."


def state_columns(obs: pd.DataFrame) -> list[str]:
    """obs columns that can hold states or cell types: 2..MAX_STATE_LABELS distinct labels, not numeric
    with many values; detected disease/state and cell-type columns first."""
    preferred = [c for c in (find_column(obs, STATE_COLUMNS), find_column(obs, CELL_TYPE_COLUMNS)) if c]
    out = []
    for column in obs.columns:
        values = obs[column]
        n = values.astype(str).nunique()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if 2 <= n <= MAX_STATE_LABELS and not (numeric and n > 10):
            out.append(str(column))
    return [c for c in preferred if c in out] + [c for c in out if c not in preferred]


def default_states(obs: pd.DataFrame) -> StateDefaults:
    """HSMM: myotube -> myoblast; heart data: normal -> dilated (or hypertrophic) cardiomyopathy;
    otherwise the two most frequent labels of the first state-like column."""
    columns = state_columns(obs)
    cell_type_column = find_column(obs, CELL_TYPE_COLUMNS)
    if "state" in obs and {"myotube", "myoblast"} <= set(obs["state"].astype(str)):
        return StateDefaults("state", "myotube", "myoblast", cell_type_column, MYOGENIC_KEY)
    state_column = find_column(obs, STATE_COLUMNS) or (columns[0] if columns else None)
    if state_column is None:
        return StateDefaults(None, None, None, cell_type_column, NO_KNOWN)
    labels = labels_of(obs, state_column)
    normal = next((v for v in labels if heart_state(v) == "normal"), None)
    disease = next((v for v in labels if heart_state(v) in ("dilated cardiomyopathy", "hypertrophic cardiomyopathy")),
                   None)
    if normal and disease:
        term = "Dilated cardiomyopathy" if heart_state(disease) == "dilated cardiomyopathy" else \
            "Hypertrophic cardiomyopathy"
        return StateDefaults(state_column, normal, disease, cell_type_column, f"HPO: {term}")
    return StateDefaults(state_column, labels[0], labels[1] if len(labels) > 1 else None, cell_type_column, NO_KNOWN)


def known_choices() -> dict[str, tuple[str, ...]]:
    """Known-positive lists offered for validation: the myogenic regulators and each HPO list."""
    choices: dict[str, tuple[str, ...]] = {MYOGENIC_KEY: MYOGENIC_REGULATORS}
    for term, genes in known_gene_sets("cardiomyopathy").items():
        key = "HPO: any of the four cardiomyopathy terms" if term == ALL_CARDIOMYOPATHY else f"HPO: {term}"
        choices[key] = tuple(sorted(genes))
    choices[NO_KNOWN] = ()
    return choices


def parse_genes(text: str) -> list[str]:
    """Gene names from free text: separated by spaces, commas, semicolons or new lines; duplicates dropped."""
    return list(dict.fromkeys(g for g in re.split(r"[\s,;]+", text or "") if g))


def ranked_frame(result: DeletionResult) -> pd.DataFrame:
    """The ranked table as downloaded: rank, gene, cells, mean/median score, shifts, U, p, q, known."""
    frame = result.ranked.copy()
    known = set(result.validation.known_ranks) if result.validation is not None else set()
    frame["known"] = frame["gene"].isin(known)
    return frame


def ranked_csv(result: DeletionResult) -> bytes:
    """CSV bytes of :func:`ranked_frame` (one header row, one row per gene)."""
    buffer = io.StringIO()
    ranked_frame(result).to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def csv_name(dataset: str, settings: Mapping[str, object]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}_{settings.get('mode', 'delete')}")
    return f"cellang_{stem}_{MODEL}_ranked.csv"


__all__ = ["CENSUS", "GENE_MODES", "HSMM", "MYOGENIC_KEY", "NO_KNOWN", "PERTURB_MODES", "StateDefaults", "UPLOAD",
           "csv_name", "dataset_note", "default_states", "known_choices", "parse_genes", "ranked_csv",
           "ranked_frame", "state_columns"]
