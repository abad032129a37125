"""``cl.tl``: tools on cells, in scanpy's manner: each takes an AnnData, writes its result into it (``obsm`` or
``uns``) and says in its docstring where.

    import cellang as cl
    adata = cl.datasets.cells("hsmm")
    cl.tl.embed(adata, model="cells-binned")            # obsm["X_cells_binned_cls"], obsm["X_cells_binned_mean"]
    name = cl.tl.adapt(adata, model="cells-binned", minutes=5)   # a model adapted to these cells, by name
    cl.tl.embed(adata, model=name)
    table = cl.tl.rank_deletions(adata, groupby="cell_type", start="myotube", goal="myoblast")

The work is done by :mod:`cellang.embedding.workflow`, :mod:`cellang.embedding.adapt` and
:mod:`cellang.perturbation.workflow`; this module only shapes calls and results for a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellang.defaults import ADAPT_MINUTES, FINE_TUNE_MINUTES
from cellang.settings import logger, progress_bar

__all__ = ["adapt", "embed", "fine_tune", "models", "rank_deletions"]

DELETIONS_KEY = "rank_deletions"  # uns key of rank_deletions' result


def _check_adata(adata: object, function: str) -> ad.AnnData:
    from cellang.errors import CellangError

    if not isinstance(adata, ad.AnnData):
        raise CellangError(f"cl.tl.{function} takes an AnnData (cells x genes), not {type(adata).__name__}; "
                           "read a file with anndata.read_h5ad or cl.datasets.cells")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise CellangError(f"cl.tl.{function}: the AnnData holds {adata.n_obs} cells and {adata.n_vars} genes")
    return adata


def models(kind: str | None = None) -> pd.DataFrame:
    """The cell encoders :func:`embed`, :func:`adapt` and :func:`rank_deletions` can use: the shipped ones and
    yours (in ``cl.settings.models_dir``).

    Parameters
    ----------
    kind
        "binned", "rank" or None (both); :func:`rank_deletions` takes either.

    Returns
    -------
    pandas.DataFrame with one row per encoder, shipped first: ``name`` (what to pass as ``model=``), ``kind``,
    ``shipped``, ``folder``, ``description`` (its data and training, from its record).
    """
    from cellang.embedding.loading import cell_models
    from cellang.errors import CellangError

    if kind not in (None, "binned", "rank"):
        raise CellangError(f"kind must be 'binned', 'rank' or None, not {kind!r}")
    return pd.DataFrame([{"name": m.name, "kind": m.mode, "shipped": m.shipped, "folder": m.folder,
                          "description": m.description} for m in cell_models(kind)],
                        columns=["name", "kind", "shipped", "folder", "description"])


def _log(messages: Sequence[tuple[str, str]]) -> None:
    """A workflow's (level, sentence) messages, through the ``cellang`` logger."""
    for level, message in messages:
        (logger().warning if level == "warning" else logger().info)(message)


def embed(adata: ad.AnnData, model: str = "cells-binned", *, harmonise: bool = True) -> None:
    """Embed every cell with a cell encoder.

    Parameters
    ----------
    adata
        Cells x genes: raw counts (``X`` or ``layers["counts"]``), log1p, TPM or FPKM. Genes as approved symbols
        or any identifiers (Ensembl, Entrez, previous symbols, aliases) when ``harmonise`` is on.
    model
        "cells-binned" (default), "cells-rank", or the name of one of your models ("my-...", e.g. from
        :func:`adapt`).
    harmonise
        Map the gene identifiers to approved symbols first (on a copy; ``adata``'s genes are not changed).

    Returns
    -------
    None. Writes ``adata.obsm["X_<model>_cls"]`` and ``adata.obsm["X_<model>_mean"]`` (float32, cells x width;
    ``-`` in the name becomes ``_``) and ``adata.uns["cellang_embedding"][model]`` (the encoder, its folder,
    the genes it used and their share of its vocabulary). Notes (e.g. few of the model's genes present) go
    to the ``cellang`` logger.

    Raises
    ------
    cellang.CellangError
        Unknown model, values that cannot be read (NaN, negative, not numbers), no recognised gene.
    """
    from cellang.embedding.workflow import embed_into

    _check_adata(adata, "embed")
    with progress_bar(f"embedding with {model}") as bar:
        _, messages = embed_into(adata, model, harmonise=harmonise, progress=bar)
    _log(messages)


def adapt(adata: ad.AnnData, model: str = "cells-binned", *, minutes: float = ADAPT_MINUTES, steps: int | None = None,
          out: str | None = None, seed: int = 0) -> str:
    """Adapt a cell encoder to these cells, without labels, within a time budget.

    Parameters
    ----------
    adata
        The cells to adapt to (as for :func:`embed`; genes as approved symbols).
    model
        The base encoder: "cells-binned" (default), "cells-rank" or one of your models.
    minutes
        The time budget of the whole call (default 5: about 1,000 cells' worth on 2 CPU cores).
    steps
        An exact number of training steps instead of a budget (reproducible to the bit for a seed).
    out
        The new model's folder; default: in ``cl.settings.models_dir``, named after the base model.
    seed
        Seeds the validation split, the masking and the batches.

    Returns
    -------
    str
        The adapted model's name ("my-..."), for :func:`embed` and :func:`rank_deletions`. Its folder holds the
        weights, the vocabulary and a record (data sha256, base model, budget, steps, seed).
    """
    from cellang.embedding.adapt import adapt_encoder

    _check_adata(adata, "adapt")
    with progress_bar(f"adapting {model}") as bar:
        result = adapt_encoder(adata, model, minutes=None if steps is not None else minutes, steps=steps, out=out,
                               seed=seed, data_name="cells", progress=bar)
    logger().info(f"adapted {model} in {result.record['steps']} steps -> {result.name} ({result.directory})")
    return result.name


FINE_TUNE_KEY = "fine_tune"


def fine_tune(adata: ad.AnnData, groupby: str, model: str = "cells-binned", *, minutes: float | None = FINE_TUNE_MINUTES,
              max_steps: int | None = None, pooling: str = "auto", out: str | None = None, seed: int = 0) -> str:
    """Fine-tune a cell encoder to tell the states of ``adata.obs[groupby]`` apart (transfer learning).

    The cells are split per state into training, validation and held-out test cells; the encoder and a
    classification head train on the training cells (class weights for unbalanced states), stop early when the
    validation cells' macro-F1 stops improving, and are scored once on the test cells.

    Parameters
    ----------
    adata
        Labelled cells (as for :func:`embed`; genes as approved symbols).
    groupby
        The obs column of the states (cell type, disease, time point); each state needs at least 3 cells.
    model
        The base encoder: "cells-binned" (default), "cells-rank" or one of your models.
    minutes
        The training budget (None: ``max_steps`` or early stopping ends the run).
    max_steps
        At most this many steps; with ``minutes=None`` the same cells and seed give the same model.
    pooling
        "auto" (default: the better of the two on the validation cells), "mean" or "cls": the cell state the head
        reads.
    out
        The new model's folder; default: in ``cl.settings.models_dir``, ``<model>-classifier-<groupby>``.
    seed
        Seeds the split and the batches.

    Returns
    -------
    str
        The fine-tuned model's name ("my-..."), for :func:`embed` and :func:`rank_deletions`. Also written to
        ``adata.uns["fine_tune"]``: ``model``, ``groupby``, ``states`` and ``metrics`` (held-out macro-F1,
        accuracy and per-state F1 of the validation and test cells).
    """
    from cellang.cells import harmonise_var
    from cellang.embedding.classify import fine_tune_classifier

    _check_adata(adata, "fine_tune")
    cells, _ = harmonise_var(adata)
    with progress_bar(f"fine-tuning {model} on {groupby}") as bar:
        result = fine_tune_classifier(cells, groupby, model, minutes=minutes, max_steps=max_steps, pooling=pooling,
                                      out=out, seed=seed, data_name="cells", progress=bar)
    test = result.metrics["test"]
    adata.uns[FINE_TUNE_KEY] = {"model": result.name, "groupby": groupby, "states": list(result.states),
                                "metrics": result.metrics}
    logger().info(f"fine-tuned {model} on {groupby} -> {result.name} ({result.directory}); held-out macro-F1 "
                  f"{test['macro_f1']:.3f} on {test['cells']} cells")
    return str(result.name)


def _labels(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def rank_deletions(adata: ad.AnnData, groupby: str, start: str | Sequence[str], goal: str | Sequence[str] | None = None,
                   *, model: str = "cells-rank", genes: Sequence[str] | None = None, mode: str = "delete",
                   max_cells: int | None = None, min_cells: int | None = None, known: Sequence[str] = (),
                   method: str = "exact", score: str | None = None, fine_tune_minutes: float | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Delete (or overexpress) each gene in the start cells and rank genes by how far the cells move toward the
    goal state.

    Parameters
    ----------
    adata
        Cells x genes (as for :func:`embed`) with a state column in ``obs``.
    groupby
        The ``obs`` column of states (cell type, disease, time point).
    start, goal
        The state (or states) of the cells to perturb, and of the cells they should move toward (None: rank by
        how far the cells move at all).
    model
        The encoder: "cells-rank" (default), "cells-binned" or one of your models (a rank encoder deletes a gene from
        the cell's ranking, a binned one drops its token and value).
    genes
        Only these genes (default: every expressed protein-coding and lncRNA gene).
    mode
        "delete" (default) or "overexpress" (move the gene to the top of the cell's ranking).
    max_cells
        At most this many start cells, sampled with ``seed`` (None: all).
    min_cells
        Rank a gene only when it was scored in at least this many start cells (default 3, or all when fewer).
    known
        Genes expected among the targets; their AUROC and top-100 enrichment go into ``uns``.
    method
        "exact" (every deletion a forward pass) or "screen" (every deletion estimated, the best scored exactly).
    score
        What each gene's effect is measured on: "goal_shift" (default with a goal: the embedding's move toward the
        goal cells), "goal_probability_shift" (the goal state's probability, for a model made by :func:`fine_tune`
        on these states) or "shift" (how far the cells move; the default without a goal).
    fine_tune_minutes
        Fine-tune ``model`` first, for at most this many minutes, to tell the start cells from the goal cells (as
        Geneformer did; saved as one of your models, see :func:`fine_tune`), then score in it, by default by
        "goal_probability_shift": the combination that beat the expression rank on every held-out state
        transition of the validity benchmark. None (default): score in ``model`` as it is.
    seed
        Seeds the sampling; the same input and seed give the same table.

    Returns
    -------
    pandas.DataFrame
        One row per gene by signed effect, strongest move toward the goal first and genes that move cells away
        from it last: ``rank``, ``gene``, ``direction``, ``effect`` (standard deviations of expression-matched
        control deletions in the same cells, see :mod:`cellang.perturbation.null`), ``cells``, ``p``, ``q``,
        ``mean_goal_shift``, ``mean_shift``, and the baselines ``mean_difference`` and ``expression_rank``. Also
        written to ``adata.uns["rank_deletions"]``: ``ranked`` (the table), ``params`` and, with ``known``,
        ``validation`` (and ``fine_tuned``: the classifier's name and held-out metrics, when fine-tuned first).
    """
    from cellang.cells import harmonise_var
    from cellang.errors import CellangError
    from cellang.perturbation.fine_tune_first import fine_tune_first, score_after_fine_tuning
    from cellang.perturbation.request import PerturbationRequest, Selection
    from cellang.perturbation.workflow import run_perturbation

    _check_adata(adata, "rank_deletions")
    if groupby not in adata.obs:
        raise CellangError(f"cl.tl.rank_deletions: no obs column {groupby!r}; the columns are "
                           f"{', '.join(map(str, adata.obs.columns)) or 'none'}")
    selection = Selection(groupby, _labels(start), _labels(goal))
    if fine_tune_minutes is not None:
        score = score_after_fine_tuning(score)
    request = PerturbationRequest(selection, genes=None if genes is None else tuple(genes), mode=mode,
                                  max_cells=max_cells, min_cells=min_cells, known=tuple(known), method=method,
                                  score=score, seed=seed)
    cells, _ = harmonise_var(adata)
    fine_tuned = None
    if fine_tune_minutes is not None:
        with progress_bar(f"fine-tuning {model} on {' / '.join(selection.start)} against "
                          f"{' / '.join(selection.goal) or 'no goal'}") as bar:
            fine_tuned = fine_tune_first(cells, selection, model, minutes=fine_tune_minutes, seed=seed, progress=bar)
        logger().info(f"fine-tuned {model} first -> {fine_tuned.name} ({fine_tuned.directory}); held-out macro-F1 "
                      f"{fine_tuned.metrics['test']['macro_f1']:.3f}")
        model = str(fine_tuned.name)
    cell_model = None
    if model != "cells-rank":
        from cellang.embedding.workflow import resolve_model

        cell_model = resolve_model(model)
    with progress_bar(f"ranking {mode}s with {model}") as bar:
        result = run_perturbation(cells, request, model=cell_model, progress=bar)
    _log(result.messages)
    ranked = result.ranked.reset_index(drop=True)
    params = {"groupby": groupby, "start": list(selection.start), "goal": list(selection.goal), "model": model,
              "mode": mode, "method": method, "score": result.settings["score"], "seed": seed,
              "max_cells": -1 if max_cells is None else max_cells, "start_cells": int(result.adata.n_obs)}
    entry: dict[str, object] = {"ranked": ranked, "params": params}
    if fine_tuned is not None:
        entry["fine_tuned"] = {"model": str(fine_tuned.name), "states": list(fine_tuned.states),
                               "metrics": fine_tuned.metrics}
    if result.validation is not None:
        entry["validation"] = {k: v for k, v in vars(result.validation).items()
                               if isinstance(v, (int, float, str, np.floating, np.integer))}
    adata.uns[DELETIONS_KEY] = entry
    ranked.attrs = {"params": params, "data_note": result.data_note}
    return ranked
