"""In-silico deletion and treatment, end to end: AnnData in, ranked targets and their validation out.

    from cellang_core.perturbation.workflow import hsmm_demo, run_cardiomyopathy
    result = hsmm_demo()                     # the embedded default: HSMM myotubes -> myoblast state
    result.ranked, result.validation.auroc, result.data_note
    results = run_cardiomyopathy(adata)      # your cardiomyocytes: {"deletion": ..., "treatment": ...}

Steps (:func:`run_perturbation`): pick the start cells (a state, optionally of some cell types) and the
goal cells; sample at most ``max_cells`` start cells (seeded); refuse, before any model loads, what cannot
work (:func:`check_request`: options, min_cells above the cells perturbed, NaN or negative values);
tokenise them with the rank tokeniser;
perturb every chosen gene (all expressed genes, a list, or a corpus gene set) in every start cell
(:mod:`.engine`); rank genes by their mean shift toward the goal state with rank-sum p and BH q
(:mod:`.stats`); enrich the top hits in the corpus; validate against known genes (AUROC and
the hypergeometric p of the top 100).

Presets:
* HSMM (default; the only real striated-muscle cells in registry packages): deletion in myotubes
  scored toward the myoblast state; known positives the myogenic regulators MYOD1, MYOG, MYF5, MYF6, MEF2C.
* Cardiomyopathy (your .h5ad, or the CELLxGENE Census on a connected machine): cardiomyocytes, with
  disease labels read as normal / dilated / hypertrophic cardiomyopathy. ``deletion``: normal cells,
  genes deleted, scored toward the disease state (disease genes); ``treatment``: disease cells, genes
  deleted (inhibition) or overexpressed, scored toward normal. Known positives: the HPO lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from cellang_core.cells.io import sample_indices, subset_cells
from cellang_core.cells.validate import is_numeric_matrix, value_errors
from cellang_core.device import PRECISIONS, pick_device
from cellang_core.embedding.loading import load_cell_encoder
from cellang_core.known_genes import MYOGENIC_REGULATORS, known_gene_sets
from cellang_core.perturbation.engine import MODES, POOLINGS, Perturber, PerturbError, check_cls, plan_perturbations
from cellang_core.perturbation.stats import KnownGeneValidation, enrich_top_hits, rank_genes, validate_known
from cellang_core.text import MAX_SEED, plural
from cellang_core.tokenizers.cells import CellValuesError

Progress = Callable[[float, str], object]
MODEL = "cells-rank"
UNS_KEY = "cellang_perturb"
HSMM_NOTE = ("Data shown: HSMM skeletal myoblasts/myotubes (271 real human cells, Trapnell et al. 2014) — the only "
             "real striated-muscle cells available in registry packages; no cardiomyocyte dataset ships; bring your "
             "own .h5ad or query the Census on a connected machine.")
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


@dataclass(frozen=True)
class Selection:
    """Start and goal cells: labels of ``state_column`` (several raw labels may form one state), and
    optionally only cells whose ``cell_type_column`` is one of ``cell_types``."""

    state_column: str
    start: tuple[str, ...]
    goal: tuple[str, ...] = ()
    start_name: str = ""
    goal_name: str = ""
    cell_type_column: str | None = None
    cell_types: tuple[str, ...] = ()

    def describe(self) -> str:
        start = self.start_name or " / ".join(self.start)
        goal = self.goal_name or " / ".join(self.goal)
        kinds = f" {', '.join(self.cell_types)}" if self.cell_types else ""
        return f"{start}{kinds} cells" + (f", scored toward the {goal} state" if self.goal else "")


@dataclass
class DeletionResult:
    """Scores per (cell, gene), the ranked genes, validation and enrichment, and what data they are."""

    scores: pd.DataFrame  # cell, gene, position, shift, goal_shift
    ranked: pd.DataFrame  # perturb_stats.RANK_COLUMNS
    validation: KnownGeneValidation | None
    enrichment: pd.DataFrame | None
    data_note: str
    settings: dict[str, Any]
    adata: ad.AnnData  # the start cells, obs perturb_mean_shift / perturb_mean_goal_shift, uns[UNS_KEY]
    messages: list[tuple[str, str]] = field(default_factory=list)


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


def labels_of(obs: pd.DataFrame, column: str) -> list[str]:
    """The distinct labels of a column, most frequent first (ties by name)."""
    counts = obs[column].astype(str).value_counts()
    return sorted(counts.index, key=lambda v: (-counts[v], v))


def select_cells(adata: ad.AnnData, selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """(start cell indices, goal cell indices); PerturbError names what is wrong and what exists."""
    obs = adata.obs
    for column in (selection.state_column, selection.cell_type_column):
        if column is not None and column not in obs:
            raise PerturbError(f"the cells have no obs column {column!r}; columns: {', '.join(map(str, obs.columns))}")
    keep = np.ones(adata.n_obs, dtype=bool)
    if selection.cell_type_column and selection.cell_types:
        kinds = obs[selection.cell_type_column].astype(str).to_numpy()
        keep = np.isin(kinds, selection.cell_types)
        if not keep.any():
            raise PerturbError(f"no cell has {selection.cell_type_column} in {list(selection.cell_types)}; it has "
                               f"{', '.join(labels_of(obs, selection.cell_type_column)[:12])}")
    states = obs[selection.state_column].astype(str).to_numpy()
    known = set(states)
    for name, wanted in (("start", selection.start), ("goal", selection.goal)):
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise PerturbError(f"unknown {name} state {', '.join(map(repr, unknown))} in {selection.state_column!r}; "
                               f"the states are {', '.join(labels_of(obs, selection.state_column)[:12])}")
    if not selection.start:
        raise PerturbError("choose a start state: the cells to perturb")
    if set(selection.start) & set(selection.goal):
        raise PerturbError("the start and goal states must differ")
    start = np.flatnonzero(keep & np.isin(states, selection.start))
    goal = np.flatnonzero(keep & np.isin(states, selection.goal)) if selection.goal else np.zeros(0, dtype=np.int64)
    if start.size == 0:
        raise PerturbError(f"no cells to perturb: none of the chosen cell types is in the start state "
                           f"{selection.describe()}")
    if selection.goal and goal.size == 0:
        raise PerturbError(f"no goal cells: none of the chosen cell types is in the goal state {selection.goal_name}")
    return start, goal


def resolve_genes(genes: Sequence[str], vocabulary) -> tuple[list[int], list[str], list[str]]:  # type: ignore[no-untyped-def]
    """(token ids, vocabulary symbols, genes not in the vocabulary) for user gene names; aliases and
    previous symbols are resolved to approved symbols. PerturbError when none is in the vocabulary."""
    from cellang_core.genes import load_resolver

    resolver = None
    ids, symbols, missing = [], [], []
    for gene in dict.fromkeys(str(g).strip() for g in genes if str(g).strip()):
        symbol = gene if gene in vocabulary else None
        if symbol is None:
            resolver = resolver or load_resolver()
            match = resolver.resolve(gene)
            symbol = match.symbol if match.mapped and match.symbol in vocabulary else None
        if symbol is None:
            missing.append(gene)
        elif symbol not in symbols:
            symbols.append(symbol)
            ids.append(int(vocabulary.column_ids([symbol])[0]))
    if not ids:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise PerturbError(f"none of the genes ({shown}) is in the {MODEL} vocabulary of "
                           f"{len(vocabulary.genes):,} genes, so there is nothing to perturb")
    return ids, symbols, missing


def corpus_gene_set(name: str) -> list[str]:
    """The genes of one corpus pathway (KeyError says when there is none of that name)."""
    from cellang_core.corpus import load_corpus

    return list(load_corpus()[name].genes)


def _note(progress: Progress | None, fraction: float, text: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), text)


def _one_of(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PerturbError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def check_request(adata: ad.AnnData, selection: Selection, *, genes: Sequence[str] | None = None,
                  mode: str = "delete", pooling: str = "mean", precision: str = "float32",
                  max_cells: int | None = 200, max_goal_cells: int = 500, min_cells: int = 1, seed: int = 0,
                  device: str | None = None) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Everything about a request that can be refused before a model is loaded.

    In: the arguments of :func:`run_perturbation` of the same names. Out: (start cells to perturb, after
    sampling to max_cells; goal cells, after sampling to max_goal_cells; notes for the user).
    PerturbError names what is wrong and what to change.
    """
    _one_of("mode", mode, MODES)
    _one_of("pooling", pooling, POOLINGS)
    _one_of("precision", precision, PRECISIONS)
    for name, value in (("max_cells", max_cells), ("max_goal_cells", max_goal_cells), ("min_cells", min_cells)):
        if (value is not None or name == "min_cells") and not (isinstance(value, (int, np.integer)) and value >= 1):
            raise PerturbError(f"{name} must be a whole number of at least 1, got {value!r}")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= MAX_SEED):
        raise PerturbError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    try:
        pick_device(device)
    except ValueError as error:
        raise PerturbError(str(error)) from None
    if genes is not None and not any(str(g).strip() for g in genes):
        raise PerturbError("the gene list is empty: give gene symbols, or choose all expressed genes")
    notes: list[tuple[str, str]] = []
    start, goal = select_cells(adata, selection)
    in_state = start.size
    start_chosen = sample_indices(start.size, max_cells, seed)
    if start_chosen is not None:
        notes.append(("note", f"{start.size:,} start cells; a random {max_cells:,} (seed {seed}) are perturbed."))
        start = start[start_chosen]
    goal_chosen = sample_indices(goal.size, max_goal_cells, seed)
    goal = goal if goal_chosen is None else goal[goal_chosen]
    if min_cells > start.size:
        change = (f"lower min_cells to at most {start.size:,} or raise max_cells (the selection has {in_state:,})"
                  if in_state > start.size else f"lower min_cells to at most {start.size:,} or choose more cells")
        raise PerturbError(f"min_cells is {min_cells:,} but only {plural(start.size, 'start cell')} are perturbed "
                           f"({selection.describe()}), so no gene could be ranked; {change}")
    values = adata.layers["counts"] if "counts" in adata.layers else adata.X
    rows = np.sort(np.concatenate((start, goal)))
    problems = (["the cells have no expression matrix (X is missing)"] if values is None
                else value_errors(values[rows] if is_numeric_matrix(values) else values))
    if problems:
        raise PerturbError("the chosen cells cannot be tokenised: " + " ".join(problems))
    return start, goal, notes


def run_perturbation(adata: ad.AnnData, selection: Selection, *, genes: Sequence[str] | None = None,
                     mode: str = "delete", pooling: str = "mean", encoder: Any = None, tokenizer: Any = None,
                     checkpoint_dir: str | None = None, max_cells: int | None = 200, max_goal_cells: int = 500,
                     seed: int = 0, device: str | None = None, max_batch_tokens: int | None = None,
                     known: Collection[str] | None = None, known_label: str = "the known genes", top_n: int = 100,
                     enrich_sets: Mapping[str, Sequence[str]] | None = None, enrich_top: int = 50,
                     enrich_descriptions: Mapping[str, str] | None = None,
                     min_cells: int = 1, data_note: str = "", ram_budget: int | None = None,
                     precision: str = "float32", progress: Progress | None = None) -> DeletionResult:
    """Perturb `genes` (None: every expressed gene) in the start cells of `selection` and rank them.

    adata: cells x genes, var_names approved symbols (harmonise uploads first). encoder/tokenizer: the
    rank encoder and its tokeniser (default: load_cell_encoder("cells-rank", checkpoint_dir)). At most
    max_cells start and max_goal_cells goal cells, sampled with `seed`. known: positives for validation;
    enrich_sets: gene sets for the top-`enrich_top` over-representation (None: skipped). min_cells:
    genes scored in fewer start cells are left out of the ranking. precision: "float32" (exact) or
    "bfloat16" (1.6x faster on a CPU with AVX512-BF16; see results/benchmark_perturb.md).
    """
    start, goal, messages = check_request(adata, selection, genes=genes, mode=mode, pooling=pooling,
                                          precision=precision, max_cells=max_cells, max_goal_cells=max_goal_cells,
                                          min_cells=min_cells, seed=seed, device=device)
    if encoder is None or tokenizer is None:
        encoder, tokenizer, _ = load_cell_encoder(MODEL, checkpoint_dir)
    if getattr(tokenizer, "mode", None) != "rank":
        raise PerturbError("in-silico perturbation edits rank encodings: use the rank-value encoder (cells-rank)")
    gene_ids = None
    if genes is not None:
        gene_ids, _, missing = resolve_genes(genes, tokenizer.vocabulary)
        if missing:
            messages.append(("warning", f"{plural(len(missing), 'gene')} not in the {MODEL} vocabulary, left out: "
                                        + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")))
    perturber = Perturber(encoder, pooling=pooling, device=device, max_batch_tokens=max_batch_tokens,
                          ram_budget=ram_budget, precision=precision)
    _note(progress, 0.0, f"Tokenising {start.size:,} start and {goal.size:,} goal cells...")
    cells = subset_cells(adata, start)
    if not cells.obs_names.is_unique:  # per-cell results are keyed by name
        cells.obs_names_make_unique()
        messages.append(("note", "Some start cells share a name; numbers were appended to tell them apart."))
    try:
        tokens = tokenizer.tokenize(cells).genes
        goal_tokens = tokenizer.tokenize(subset_cells(adata, goal)).genes if goal.size else []
    except CellValuesError as error:
        raise PerturbError(f"the chosen cells cannot be tokenised: {error}") from None
    check_cls(tokens)
    lengths = np.array([len(t) for t in tokens])
    upper = int((lengths - 1).sum()) if gene_ids is None else start.size * len(gene_ids)
    perturber.check_memory(upper, int(lengths.max()), start.size,
                           len(tokenizer.vocabulary.genes) if gene_ids is None else len(gene_ids))
    plan = plan_perturbations(tokens, gene_ids, mode)
    if len(plan) == 0:
        verb = "delete" if mode == "delete" else "overexpress"
        if gene_ids is None:
            raise PerturbError(f"the chosen cells express none of the {len(tokenizer.vocabulary.genes):,} genes of "
                               f"the {MODEL} encoder, so there is nothing to {verb}; are the gene names approved "
                               "symbols (harmonise them first)? Otherwise choose other cells")
        raise PerturbError(f"none of the chosen genes is in the rank encoding (the top {perturber.max_len - 1} genes) "
                           f"of the chosen cells, so there is nothing to {verb}; choose other genes or cells")
    goal_embedding = None
    try:
        if goal.size:
            _note(progress, 0.03, f"Embedding {goal.size:,} goal cells...")
            goal_embedding = perturber.embed(goal_tokens).mean(0)
        _note(progress, 0.05, f"Perturbing {len(plan):,} (cell, gene) pairs...")
        span = (lambda f, text: _note(progress, 0.05 + 0.9 * f, text)) if progress is not None else None
        result = perturber.score(tokens, plan, goal_embedding, progress=span)
    finally:
        encoder.to("cpu")  # the cached encoder stays on the CPU for the next caller (as in embedding.embed)
    vocabulary = tokenizer.vocabulary
    names = np.asarray(cells.obs_names.astype(str))
    scores = pd.DataFrame({"cell": names[plan.rows], "gene": [vocabulary.token(int(i)) for i in plan.gene_ids],
                           "position": plan.positions, "shift": result.shift, "goal_shift": result.goal_shift})
    _note(progress, 0.96, "Ranking genes...")
    ranked = rank_genes(scores, min_cells=min_cells)
    if gene_ids is not None:
        unscored = sorted(set(vocabulary.token(i) for i in gene_ids) - set(scores["gene"]))
        if unscored:
            messages.append(("note", f"{plural(len(unscored), 'gene')} not in the rank encoding of any chosen cell: "
                                     + ", ".join(unscored[:20])))
    validation = validate_known(ranked, known, top_n) if known else None
    enrichment = enrich_top_hits(ranked, enrich_sets, enrich_top, enrich_descriptions) if enrich_sets else None
    settings = {"model": MODEL, "mode": mode, "pooling": pooling, "selection": selection.describe(),
                "start_cells": int(start.size), "goal_cells": int(goal.size), "pairs": len(plan),
                "genes_scored": int(len(ranked)), "seed": seed, "seconds": round(result.seconds, 2),
                "pairs_per_second": round(len(plan) / max(result.seconds, 1e-9), 1), "device": result.device,
                "batches": result.batches, "max_batch_tokens": perturber.max_batch_tokens, "precision": precision,
                "min_cells": min_cells, "known_label": known_label,
                "score": ranked.attrs.get("score", "shift")}
    out = cells.copy()
    per_cell = scores.groupby("cell", sort=False)[["shift", "goal_shift"]].mean()
    out.obs["perturb_mean_shift"] = per_cell["shift"].reindex(out.obs_names).to_numpy()
    out.obs["perturb_mean_goal_shift"] = per_cell["goal_shift"].reindex(out.obs_names).to_numpy()
    out.uns[UNS_KEY] = {"settings": settings, "ranked": ranked.head(1000).reset_index(drop=True)}
    _note(progress, 1.0, "Done.")
    return DeletionResult(scores, ranked, validation, enrichment, data_note, settings, out, messages)


def hsmm_selection() -> Selection:
    return Selection("state", ("myotube",), ("myoblast",), "myotube", "myoblast")


def hsmm_demo(**kwargs: Any) -> DeletionResult:
    """Deletion of every expressed gene in HSMM myotubes, scored toward the myoblast state; known
    positives: MYOD1, MYOG, MYF5, MYF6, MEF2C. Keyword arguments go to :func:`run_perturbation`."""
    from cellang_core.cells import load_atlas_dataset

    kwargs.setdefault("known", MYOGENIC_REGULATORS)
    kwargs.setdefault("known_label", "the myogenic regulators (MYOD1, MYOG, MYF5, MYF6, MEF2C)")
    kwargs.setdefault("data_note", HSMM_NOTE)
    return run_perturbation(load_atlas_dataset("hsmm"), hsmm_selection(), **kwargs)


def cardiomyopathy_selection(adata: ad.AnnData, disease: str = "dilated cardiomyopathy", analysis: str = "deletion",
                             cell_type_column: str | None = None, state_column: str | None = None) -> Selection:
    """Cardiomyocytes of `adata`: deletion = normal -> disease; treatment = disease -> normal.

    Columns are detected (cell_type, disease, condition, ...) unless given; cell types matching
    'cardiomyocyte', 'cardiac muscle cell', 'ventricular/atrial ... myocyte' are kept; disease labels
    are read as normal / dilated / hypertrophic cardiomyopathy (see HEART_STATES).
    """
    _one_of("disease", disease, list(KNOWN_BY_DISEASE))
    _one_of("analysis", analysis, ("deletion", "treatment"))
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


# run_perturbation's arguments that check_request can judge before a model is loaded
CHECKED = ("genes", "pooling", "precision", "max_cells", "max_goal_cells", "min_cells", "seed", "device")


def check_cardiomyopathy(adata: ad.AnnData, disease: str = "dilated cardiomyopathy",
                         analyses: Sequence[str] = ("deletion", "treatment"), treatment_mode: str = "delete",
                         **kwargs: Any) -> dict[str, Selection]:
    """{analysis: selection} for :func:`run_cardiomyopathy`, every analysis checked (check_request) before
    any runs; PerturbError otherwise. kwargs: run_perturbation's (those not in CHECKED are ignored)."""
    checked = {k: v for k, v in kwargs.items() if k in CHECKED}
    selections = {}
    for analysis in analyses:
        selections[analysis] = cardiomyopathy_selection(adata, disease, analysis)
        check_request(adata, selections[analysis], mode="delete" if analysis == "deletion" else treatment_mode,
                      **checked)
    return selections


def run_cardiomyopathy(adata: ad.AnnData, disease: str = "dilated cardiomyopathy",
                       analyses: Sequence[str] = ("deletion", "treatment"), treatment_mode: str = "delete",
                       data_note: str = "", **kwargs: Any) -> dict[str, DeletionResult]:
    """The cardiomyocyte preset on your cells (or Census cells): {analysis: result}; known positives are
    the HPO genes of the disease (validation reported for each analysis)."""
    selections = check_cardiomyopathy(adata, disease, analyses, treatment_mode, **kwargs)
    known = known_gene_sets("cardiomyopathy")[KNOWN_BY_DISEASE[disease]]
    note = data_note or f"Data shown: your cardiomyocytes ({adata.n_obs:,} cells in the file)."
    results = {}
    for analysis, selection in selections.items():
        mode = "delete" if analysis == "deletion" else treatment_mode
        results[analysis] = run_perturbation(adata, selection, mode=mode, known=known, data_note=note,
                                             known_label=f"the HPO {KNOWN_BY_DISEASE[disease].lower()} genes", **kwargs)
    return results


def fetch_census_cardiomyocytes(max_cells: int = 5_000, seed: int = 0) -> ad.AnnData:
    """Cardiomyocytes of normal, dilated and hypertrophic cardiomyopathy hearts from the CELLxGENE
    Census (needs the internet; CensusUnavailable offline). obs: cell_type, disease, state."""
    from cellang_core.census import cardiomyocyte_query, fetch_census

    return fetch_census(cardiomyocyte_query(max_cells=max_cells, seed=seed))


__all__ = ["CELL_TYPE_COLUMNS", "CHECKED", "DeletionResult", "HSMM_NOTE", "STATE_COLUMNS", "Selection",
           "cardiomyopathy_selection", "check_cardiomyopathy", "check_request", "corpus_gene_set",
           "fetch_census_cardiomyocytes", "find_column", "heart_state", "hsmm_demo", "hsmm_selection", "labels_of",
           "resolve_genes", "run_cardiomyopathy", "run_perturbation", "select_cells"]
