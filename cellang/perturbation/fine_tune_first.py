"""Fine-tune first (Geneformer's way): before any deletion is scored, the encoder learns to tell the start cells from
the goal cells, and the deletions are then scored in that classifier, by how much each one raises the goal state's
probability (``score="goal_probability_shift"``).

In:  cells (AnnData, approved symbols) with the run's :class:`~.request.Selection`, and the base encoder (a name
     or a folder).
Out: the fine-tuned classifier (:class:`~cellang.embedding.classify.ClassifierResult`), saved as one of the user's
     models with its record; only the start and goal cells (of the chosen cell types) are learnt, split into
     training, validation and held-out test cells by :mod:`cellang.embedding.classify`.

The page, ``cellang delete --fine-tune`` and ``cl.tl.rank_deletions(fine_tune_minutes=...)`` all call
:func:`fine_tune_first`; the validity benchmark (``cellang benchmark deletion-validity --fine-tune``) measures it.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np

from cellang.cells.io import subset_cells
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.request import Selection, select_cells
from cellang.progress import Progress

SCORE = "goal_probability_shift"  # what a run fine-tuned first ranks by, unless asked otherwise


def score_after_fine_tuning(score: str | None) -> str:
    """What a run fine-tuned first ranks by: the score asked for, or else :data:`SCORE`."""
    return SCORE if score is None else score


def fine_tune_first(cells: ad.AnnData, selection: Selection, model: str | Path = "cells-rank", *,
                    minutes: float | None, max_steps: int | None = None, data_name: str = "cells",
                    out: str | Path | None = None, seed: int = 0,
                    progress: Progress | None = None):  # type: ignore[no-untyped-def]
    """``model`` fine-tuned on the start against the goal cells of ``selection`` (only those, of its cell types);
    saved (in ``out``, default the user's models folder) under a name that says which states it tells apart.
    minutes, max_steps: the budget, as for fine_tune_classifier (no minutes and max_steps: the same model for the
    same cells and seed). PerturbError, in the run's words, when there is no goal state or fine-tuning refuses."""
    from cellang.embedding.classify import fine_tune_classifier

    start, goal = select_cells(cells, selection)
    if not goal.size:
        raise PerturbError("fine-tuning first needs a goal state: the classifier learns start against goal")
    chosen = subset_cells(cells, np.sort(np.concatenate((start, goal))))
    name = f"{data_name}-{selection.start_name or selection.start[0]}-vs-{selection.goal_name or selection.goal[0]}"
    try:
        return fine_tune_classifier(chosen, selection.state_column, model, minutes=minutes, max_steps=max_steps,
                                    out=out, seed=seed, data_name=name, progress=progress)
    except ValueError as error:  # ClassifierError and the base's own refusals
        shown = model.name if isinstance(model, Path) else model
        raise PerturbError(f"fine-tuning {shown} on {selection.state_column} failed: {error}") from None
