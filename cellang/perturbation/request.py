"""A deletion request and its checks: which cells, which genes, how they are scored; everything refused before a model
loads (:func:`check_request`). :func:`~.workflow.run_perturbation` takes a :class:`PerturbationRequest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from cellang.cells.io import sample_indices
from cellang.device import PRECISIONS, pick_device
from cellang.genes import GENE_TYPES
from cellang.perturbation.engine import MODES, POOLINGS, PerturbError
from cellang.perturbation.stats import EFFECT_SCORES
from cellang.preprocess import is_numeric_matrix, value_errors
from cellang.text import MAX_SEED, plural

DEFAULT_MIN_CELLS = 3  # a gene is ranked when scored in at least this many start cells (or all, when fewer)
DEFAULT_GENE_TYPES = ("protein-coding", "lncRNA")
METHODS = ("exact", "screen")  # how deletions are scored: every pair exactly, or the two-stage screen


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


@dataclass(frozen=True)
class PerturbationRequest:
    """What the user asks, and nothing that says how it is computed (the encoder, batch sizes, progress).

    selection: start and goal cells (None: a preset of :mod:`.presets` fills it in; run_perturbation refuses
    it). genes: symbols to perturb (None: every expressed gene). mode: "delete" or "overexpress". pooling:
    "mean" or "cls" cell embedding. At most max_cells start cells (None: all) and max_goal_cells goal cells,
    sampled with seed; genes scored in fewer than min_cells start cells are not ranked (None: DEFAULT_MIN_CELLS,
    or every start cell when fewer are perturbed). gene_types: with genes None, the broad types of the genes
    perturbed (:data:`cellang.genes.GENE_TYPES`; default protein-coding and lncRNA; genes the gene table does
    not know are kept; None: every type). precision: "float32"
    (exact) or "bfloat16" (1.6x faster on a CPU with AVX512-BF16; see results/benchmark_perturb.md).
    method: "exact" (every pair scored by a forward pass) or "screen" (deletions toward a goal only: every pair
    estimated, the candidate genes scored exactly; :mod:`.screen`, measured in results/benchmark_perturb_screen.md).
    score: what a gene's effect is measured on (None: goal_shift with a goal state, else shift;
    "goal_probability_shift": the goal state's probability under a state classifier, :mod:`cellang.embedding.classify`).
    device: a preference for pick_device (None: auto). known: positives for validation (empty: none),
    called known_label in sentences; top_n: the top genes of the hypergeometric test. enrich_top: the top
    genes tested for over-representation. data_note: one sentence saying which data this is.

    Frozen and hashable so that a page can cache results on it: genes and known given as lists or sets are
    stored as tuples (known sorted, as its order means nothing). Checked once, when it is made: a request that
    cannot run whatever the cells raises PerturbError naming every problem (also as ``error.problems``);
    :func:`check_request` then checks only what depends on the cells.
    """

    selection: Selection | None = None
    genes: tuple[str, ...] | None = None
    mode: str = "delete"
    pooling: str = "mean"
    max_cells: int | None = 200
    max_goal_cells: int = 500
    min_cells: int | None = None
    gene_types: tuple[str, ...] | None = DEFAULT_GENE_TYPES
    seed: int = 0
    precision: str = "float32"
    method: str = "exact"
    score: str | None = None
    device: str | None = None
    known: tuple[str, ...] = ()
    known_label: str = "the known genes"
    top_n: int = 100
    enrich_top: int = 50
    data_note: str = ""

    def __post_init__(self) -> None:
        if self.genes is not None:
            object.__setattr__(self, "genes", tuple(self.genes))
        if self.gene_types is not None:
            object.__setattr__(self, "gene_types", tuple(self.gene_types))
        object.__setattr__(self, "known", tuple(sorted({str(g) for g in self.known or ()})))
        problems = request_problems(self)
        if problems:
            error = PerturbError("; ".join(problems))
            error.problems = problems  # type: ignore[attr-defined]
            raise error


def _one_of(name: str, value: object, allowed: Sequence[str]) -> str | None:
    return None if value in allowed else f"{name} must be one of {', '.join(allowed)}; got {value!r}"


def request_problems(r: PerturbationRequest) -> list[str]:
    """What makes a request unable to run whatever the cells (options, numbers, gene types, device, an empty gene
    list), each in a sentence; empty when it can run. :class:`PerturbationRequest` refuses a request that has any."""
    problems = [_one_of("mode", r.mode, MODES), _one_of("pooling", r.pooling, POOLINGS),
                _one_of("precision", r.precision, PRECISIONS), _one_of("method", r.method, METHODS)]
    if r.method == "screen" and (r.mode != "delete" or r.selection is not None and not r.selection.goal):
        problems.append("the screen ranks deletions toward a goal state: choose a goal state and deletion, or use "
                        "the exact method")
    if r.score is not None:
        problems.append(_one_of("score", r.score, EFFECT_SCORES))
        if r.method == "screen" and r.score == "goal_probability_shift":
            problems.append("the fast screen estimates the embedding's goal shift, not a classifier's probability: "
                            "score goal_shift, or use the exact method")
        if r.score != "shift" and r.selection is not None and not r.selection.goal:
            problems.append(f"the score {r.score} is measured toward a goal state: choose a goal state, or score shift")
    for name, value in (("max_cells", r.max_cells), ("max_goal_cells", r.max_goal_cells), ("min_cells", r.min_cells)):
        if value is not None and not (isinstance(value, (int, np.integer)) and value >= 1):
            problems.append(f"{name} must be a whole number of at least 1, got {value!r}")
    if (isinstance(r.min_cells, (int, np.integer)) and isinstance(r.max_cells, (int, np.integer))
            and r.min_cells > r.max_cells >= 1):
        problems.append(f"min_cells is {r.min_cells:,} but only {plural(r.max_cells, 'start cell')} are perturbed "
                        f"(max_cells), so no gene could be ranked: lower min_cells to at most {r.max_cells:,} or "
                        "raise max_cells")
    unknown_types = sorted(set(r.gene_types or ()) - set(GENE_TYPES))
    if unknown_types or r.gene_types == ():
        problems.append(f"gene types must be some of {', '.join(GENE_TYPES)} (or None for all); got "
                        f"{', '.join(unknown_types) or 'none'}")
    if not (isinstance(r.seed, (int, np.integer)) and 0 <= r.seed <= MAX_SEED):
        problems.append(f"seed must be a whole number from 0 to {MAX_SEED}, got {r.seed!r}")
    try:
        pick_device(r.device)
    except ValueError as error:
        problems.append(str(error))
    if r.genes is not None and not any(str(g).strip() for g in r.genes):
        problems.append("the gene list is empty: give gene symbols, or choose all expressed genes")
    return [problem for problem in problems if problem]


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


def effective_min_cells(request: PerturbationRequest, n_start: int) -> int:
    """The request's min_cells, or DEFAULT_MIN_CELLS (at most the start cells perturbed) when it leaves it unset."""
    return request.min_cells if request.min_cells is not None else min(DEFAULT_MIN_CELLS, n_start)


def require_one_of(name: str, value: object, allowed: Sequence[str]) -> None:
    """PerturbError "<name> must be one of ...; got ..." unless value is one of `allowed`."""
    problem = _one_of(name, value, allowed)
    if problem:
        raise PerturbError(problem)


def check_request(adata: ad.AnnData,
                  request: PerturbationRequest) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Everything about a request that can be refused before a model is loaded.

    In: the cells and the request of :func:`run_perturbation`. Out: (start cells to perturb, after
    sampling to max_cells; goal cells, after sampling to max_goal_cells; notes for the user).
    PerturbError names what is wrong and what to change.
    """
    r = request
    if r.selection is None:
        raise PerturbError("the request names no cells: choose a start state (a Selection), or use a preset")
    notes: list[tuple[str, str]] = []
    start, goal = select_cells(adata, r.selection)
    in_state = start.size
    start_chosen = sample_indices(start.size, r.max_cells, r.seed)
    if start_chosen is not None:
        notes.append(("note", f"{start.size:,} start cells; a random {r.max_cells:,} (seed {r.seed}) are perturbed."))
        start = start[start_chosen]
    goal_chosen = sample_indices(goal.size, r.max_goal_cells, r.seed)
    goal = goal if goal_chosen is None else goal[goal_chosen]
    if r.min_cells is not None and r.min_cells > start.size:
        change = (f"lower min_cells to at most {start.size:,} or raise max_cells (the selection has {in_state:,})"
                  if in_state > start.size else f"lower min_cells to at most {start.size:,} or choose more cells")
        raise PerturbError(f"min_cells is {r.min_cells:,} but only {plural(start.size, 'start cell')} are perturbed "
                           f"({r.selection.describe()}), so no gene could be ranked; {change}")
    values = adata.layers["counts"] if "counts" in adata.layers else adata.X
    rows = np.sort(np.concatenate((start, goal)))
    problems = (["the cells have no expression matrix (X is missing)"] if values is None
                else value_errors(values[rows] if is_numeric_matrix(values) else values))
    if problems:
        raise PerturbError("the chosen cells cannot be tokenised: " + " ".join(problems))
    return start, goal, notes


__all__ = ["DEFAULT_GENE_TYPES", "DEFAULT_MIN_CELLS", "METHODS", "PerturbationRequest", "Selection", "check_request",
           "effective_min_cells", "labels_of", "require_one_of", "select_cells"]
