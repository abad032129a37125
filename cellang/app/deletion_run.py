"""How the In-silico deletion page runs: the request its widgets describe (or what is wrong with it), its cells with
genes as approved symbols, the optional fine-tuning first, the run itself, and the corpus sets the top genes are
tested against. The work is the library's (:mod:`cellang.perturbation`); no Streamlit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad

from cellang.app.cell_models import find_cell_model
from cellang.app.deletion import page_selection
from cellang.cells import harmonise_var
from cellang.corpus import load_corpus
from cellang.embedding.classify import CLASSIFIER_FILE
from cellang.embedding.loading import CellModel
from cellang.perturbation import fine_tune_first as first_step
from cellang.perturbation import workflow
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.request import PerturbationRequest, Selection
from cellang.progress import Progress

CLASSIFIER_SCORE = first_step.SCORE  # the score of a state classifier: the goal state's probability
DEFAULT_GENE_TYPES = workflow.DEFAULT_GENE_TYPES  # the gene types perturbed unless all are asked for
DEFAULT_MIN_CELLS = workflow.DEFAULT_MIN_CELLS  # a gene is ranked when scored in at least this many cells


def deletion_request(state_column: str, start: str, goal: str, type_column: str, cell_types: Sequence[str],
                     **settings: Any) -> tuple[PerturbationRequest | None, list[str]]:
    """The request for the cells the widgets describe (:func:`~cellang.app.deletion.page_selection`) and the
    settings (genes, mode, pooling, max_cells, ...: :class:`~cellang.perturbation.request.PerturbationRequest`),
    with no problem; or None and every problem the request's checks find, in words."""
    try:
        return PerturbationRequest(page_selection(state_column, start, goal, type_column, cell_types), **settings), []
    except PerturbError as error:  # the request's own checks, made once when it is made
        return None, list(getattr(error, "problems", [str(error)]))


def harmonised_cells(adata: ad.AnnData) -> ad.AnnData:
    """The cells with their genes re-indexed by approved symbol (a copy)."""
    return harmonise_var(adata)[0]


def is_state_classifier(model: CellModel | None) -> bool:
    """Whether an encoder was fine-tuned to tell states apart (it can score the goal state's probability)."""
    return model is not None and (model.path / CLASSIFIER_FILE).is_file()


def fine_tune_for_deletion(cells, model: CellModel, selection: Selection, minutes: float,  # type: ignore[no-untyped-def]
                           data_name: str, progress=None) -> CellModel:
    """The run's first step when asked (:func:`cellang.perturbation.fine_tune_first.fine_tune_first`); returns the
    fine-tuned model, listed as every page lists encoders."""
    result = first_step.fine_tune_first(cells, selection, model.name, minutes=minutes, data_name=data_name,
                                        progress=progress)
    found = find_cell_model(str(result.name))
    if found is None:
        raise PerturbError(f"the fine-tuned model {result.name} was saved but cannot be read back")
    return found


def enrichment_sets() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """({name: genes}, {name: description}) of every corpus gene set: what the top hits are enriched in."""
    corpus = load_corpus()
    return {p.name: p.genes for p in corpus.pathways}, {p.name: p.description for p in corpus.pathways}


def run_deletion(cells: ad.AnnData, request: PerturbationRequest, model: CellModel, *,
                 enrich_sets: dict[str, tuple[str, ...]], enrich_descriptions: dict[str, str],
                 progress: Progress | None = None) -> workflow.DeletionResult:
    """Perturb, score against expression-matched controls, rank and test the top genes for enrichment
    (:func:`cellang.perturbation.workflow.run_perturbation`); :class:`cellang.CellangError` with the reason when
    the run cannot be made."""
    return workflow.run_perturbation(cells, request, enrich_sets=enrich_sets, enrich_descriptions=enrich_descriptions,
                                     model=model, progress=progress)
