"""The two ready-made deletion analyses: HSMM (the embedded default) and cardiomyopathy (your cells).

    from cellang.perturbation.presets import hsmm_demo, run_cardiomyopathy
    result = hsmm_demo()                     # the embedded default: HSMM myotubes -> myoblast state
    results = run_cardiomyopathy(adata, PerturbationRequest(max_cells=100))  # {"deletion": ..., "treatment": ...}

A preset takes the caller's settings as a :class:`~.workflow.PerturbationRequest` (genes, max_cells, seed,
pooling, precision, ...; None: the defaults) and sets, with ``dataclasses.replace``, what the preset is
about: the start and goal cells, the known genes and the data note (and, for cardiomyopathy, the mode).
Resources (encoder, tokenizer, checkpoint_dir, enrich_sets, progress, ...) go to
:func:`~.workflow.run_perturbation` unchanged.

* HSMM (the only real striated-muscle cells in registry packages): deletion in myotubes scored toward the
  myoblast state; known positives the myogenic regulators MYOD1, MYOG, MYF5, MYF6, MEF2C.
* Cardiomyopathy (your .h5ad, or the CELLxGENE Census on a connected machine): cardiomyocytes, with
  disease labels read as normal / dilated / hypertrophic cardiomyopathy. ``deletion``: normal cells,
  genes deleted, scored toward the disease state (disease genes); ``treatment``: disease cells, genes
  deleted (inhibition) or overexpressed, scored toward normal. Known positives: the HPO lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import anndata as ad
import pandas as pd

from cellang.known_genes import MYOGENIC_REGULATORS, known_gene_sets
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.workflow import (
    DeletionResult,
    PerturbationRequest,
    Selection,
    check_request,
    labels_of,
    require_one_of,
    run_perturbation,
)
from cellang.text import plural

HSMM_NOTE = ("Data shown: HSMM skeletal myoblasts/myotubes (271 real human cells, Trapnell et al. 2014) — the only "
             "real striated-muscle cells available in registry packages; no cardiomyocyte dataset ships; bring your "
             "own .h5ad or query the Census on a connected machine.")
HSMM_KNOWN_LABEL = "the myogenic regulators (MYOD1, MYOG, MYF5, MYF6, MEF2C)"
CELL_TYPE_COLUMNS = ("cell_type", "celltype", "cell_types", "cell_type_original", "author_cell_type",
                     "cell_type_annotation", "cell_type_annotations", "cell_label", "annotation", "labels")
STATE_COLUMNS = ("disease", "disease_state", "condition", "state", "status", "diagnosis", "phenotype", "group")
HEART_STATES = {  # canonical state -> label pattern (case-insensitive)
    "normal": re.compile(r"^(normal|control|ctrl|healthy|donor|nf|non[- ]?failing|reference)\b", re.I),
    "dilated cardiomyopathy": re.compile(r"dilated|\bdcm\b", re.I),
    "hypertrophic cardiomyopathy": re.compile(r"hypertrophic|\bhcm\b", re.I),
}
CARDIOMYOCYTE = re.compile(r"cardiomyocyte|cardiac (muscle|myocyte)|(ventricular|atrial).*(myocyte|muscle)", re.I)
KNOWN_BY_DISEASE = {"dilated cardiomyopathy": "Dilated cardiomyopathy",
                    "hypertrophic cardiomyopathy": "Hypertrophic cardiomyopathy"}
ANALYSES = ("deletion", "treatment")


def find_column(obs: pd.DataFrame, candidates: Sequence[str], min_labels: int = 2) -> str | None:
    """The first of `candidates` (any case) that is a column of obs with at least `min_labels` labels."""
    columns = {str(c).lower(): str(c) for c in obs.columns}
    for name in candidates:
        column = columns.get(name.lower())
        if column is not None and obs[column].astype(str).nunique() >= min_labels:
            return column
    return None


def heart_state(label: object) -> str | None:
    """'normal', 'dilated cardiomyopathy', 'hypertrophic cardiomyopathy' or None for a disease label."""
    text = str(label).strip()
    return next((state for state, pattern in HEART_STATES.items() if pattern.search(text)), None)


def hsmm_selection() -> Selection:
    return Selection("state", ("myotube",), ("myoblast",), "myotube", "myoblast")


def hsmm_request(settings: PerturbationRequest | None = None) -> PerturbationRequest:
    """`settings` aimed at HSMM myotubes, scored toward the myoblast state. The known genes (the myogenic
    regulators), their label and the HSMM data note are set where `settings` leave them at their defaults."""
    settings = PerturbationRequest() if settings is None else settings
    defaults = {f.name: f.default for f in fields(PerturbationRequest)}
    preset = {"known": MYOGENIC_REGULATORS, "known_label": HSMM_KNOWN_LABEL, "data_note": HSMM_NOTE}
    # only what the caller left unset, so a caller's own known genes or note win
    return replace(settings, selection=hsmm_selection(),
                   **{name: value for name, value in preset.items() if getattr(settings, name) == defaults[name]})


def hsmm_demo(settings: PerturbationRequest | None = None, **resources: Any) -> DeletionResult:
    """Deletion (by default of every expressed gene) in HSMM myotubes, scored toward the myoblast state, with
    `settings` (:func:`hsmm_request`); known positives: MYOD1, MYOG, MYF5, MYF6, MEF2C. resources: the keyword
    arguments of :func:`~.workflow.run_perturbation` (encoder, tokenizer, checkpoint_dir, progress, ...)."""
    from cellang.cells import load_atlas_dataset

    return run_perturbation(load_atlas_dataset("hsmm"), hsmm_request(settings), **resources)


def cardiomyopathy_selection(adata: ad.AnnData, disease: str = "dilated cardiomyopathy", analysis: str = "deletion",
                             cell_type_column: str | None = None, state_column: str | None = None) -> Selection:
    """Cardiomyocytes of `adata`: deletion = normal -> disease; treatment = disease -> normal.

    Columns are detected (cell_type, disease, condition, ...) unless given; cell types matching
    'cardiomyocyte', 'cardiac muscle cell', 'ventricular/atrial ... myocyte' are kept; disease labels
    are read as normal / dilated / hypertrophic cardiomyopathy (see HEART_STATES).
    """
    require_one_of("disease", disease, list(KNOWN_BY_DISEASE))
    require_one_of("analysis", analysis, ANALYSES)
    obs = adata.obs
    other = next(d for d in KNOWN_BY_DISEASE if d != disease)
    needed = f"normal plus {disease} cells (or {other} cells when that disease is chosen)"
    if adata.n_obs < 2:
        raise PerturbError(f"the data hold {plural(adata.n_obs, 'cell')}; the cardiomyopathy analysis needs {needed}")
    for column in (state_column, cell_type_column):
        if column is not None and column not in obs:
            raise PerturbError(f"the cells have no obs column {column!r}; columns: {', '.join(map(str, obs.columns))}")
    state_column = state_column or find_column(obs, STATE_COLUMNS)
    cell_type_column = cell_type_column or find_column(obs, CELL_TYPE_COLUMNS, min_labels=1)
    if state_column is None:
        single = find_column(obs, STATE_COLUMNS, min_labels=1)
        if single is not None:
            raise PerturbError(f"the disease column {single!r} has only one state ({labels_of(obs, single)[0]}); "
                               f"the analysis needs {needed}")
        columns = ", ".join(map(str, obs.columns[:12])) if obs.shape[1] else "none"
        raise PerturbError(f"no disease column found (looked for {', '.join(STATE_COLUMNS)}; the obs columns are: "
                           f"{columns}); the analysis needs one that labels {needed}")
    labels = labels_of(obs, state_column)
    by_state = {state: tuple(v for v in labels if heart_state(v) == state) for state in HEART_STATES}
    for state in ("normal", disease):
        if not by_state[state]:
            raise PerturbError(f"no {state} cells: {state_column!r} has {', '.join(labels[:12])}; "
                               f"the analysis needs {needed}")
    kinds: tuple[str, ...] = ()
    if cell_type_column is not None:
        kinds = tuple(v for v in labels_of(obs, cell_type_column) if CARDIOMYOCYTE.search(v))
        if not kinds:
            raise PerturbError(f"no cardiomyocytes: {cell_type_column!r} has "
                               f"{', '.join(labels_of(obs, cell_type_column)[:12])}")
    start, goal = ("normal", disease) if analysis == "deletion" else (disease, "normal")
    return Selection(state_column, by_state[start], by_state[goal], start, goal, cell_type_column, kinds)


def check_cardiomyopathy(adata: ad.AnnData, settings: PerturbationRequest | None = None, *,
                         disease: str = "dilated cardiomyopathy", analyses: Sequence[str] = ANALYSES,
                         treatment_mode: str = "delete") -> dict[str, PerturbationRequest]:
    """{analysis: request} for :func:`run_cardiomyopathy`, every analysis checked (check_request) before any
    runs; PerturbError otherwise. Each request is `settings` with the analysis' cardiomyocytes, its mode
    (deletion deletes; treatment uses treatment_mode), the HPO genes of the disease as known genes, and
    settings' data note (default: a sentence about your cardiomyocytes)."""
    settings = PerturbationRequest() if settings is None else settings
    note = settings.data_note or f"Data shown: your cardiomyocytes ({adata.n_obs:,} cells in the file)."
    requests = {}
    for analysis in analyses:
        selection = cardiomyopathy_selection(adata, disease, analysis)
        requests[analysis] = replace(settings, selection=selection,
                                     mode="delete" if analysis == "deletion" else treatment_mode,
                                     known=known_gene_sets("cardiomyopathy")[KNOWN_BY_DISEASE[disease]],
                                     known_label=f"the HPO {KNOWN_BY_DISEASE[disease].lower()} genes", data_note=note)
        check_request(adata, requests[analysis])
    return requests


def run_cardiomyopathy(adata: ad.AnnData, settings: PerturbationRequest | None = None, *,
                       disease: str = "dilated cardiomyopathy", analyses: Sequence[str] = ANALYSES,
                       treatment_mode: str = "delete", **resources: Any) -> dict[str, DeletionResult]:
    """The cardiomyocyte preset on your cells (or Census cells): {analysis: result}; known positives are
    the HPO genes of the disease (validation reported for each analysis). The requests are those of
    :func:`check_cardiomyopathy`; resources: the keyword arguments of :func:`~.workflow.run_perturbation`."""
    requests = check_cardiomyopathy(adata, settings, disease=disease, analyses=analyses, treatment_mode=treatment_mode)
    return {analysis: run_perturbation(adata, request, **resources) for analysis, request in requests.items()}


def fetch_census_cardiomyocytes(max_cells: int = 5_000, seed: int = 0) -> ad.AnnData:
    """Cardiomyocytes of normal, dilated and hypertrophic cardiomyopathy hearts from the CELLxGENE
    Census (needs the internet; CensusUnavailable offline). obs: cell_type, disease, state."""
    from cellang.census import cardiomyocyte_query, fetch_census

    return fetch_census(cardiomyocyte_query(max_cells=max_cells, seed=seed))


__all__ = ["ANALYSES", "CARDIOMYOCYTE", "CELL_TYPE_COLUMNS", "HEART_STATES", "HSMM_KNOWN_LABEL", "HSMM_NOTE",
           "KNOWN_BY_DISEASE", "STATE_COLUMNS", "cardiomyopathy_selection", "check_cardiomyopathy",
           "fetch_census_cardiomyocytes", "find_column", "heart_state", "hsmm_demo", "hsmm_request", "hsmm_selection",
           "run_cardiomyopathy"]
