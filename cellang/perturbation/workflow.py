"""In-silico deletion and treatment, end to end: AnnData and a request in, ranked targets and their validation out.

    from cellang.perturbation.workflow import PerturbationRequest, Selection, run_perturbation
    request = PerturbationRequest(Selection("state", ("myotube",), ("myoblast",)), max_cells=50)
    result = run_perturbation(adata, request)
    result.ranked, result.validation.auroc, result.data_note

Steps (:func:`run_perturbation`): pick the start cells (a state, optionally of some cell types) and the
goal cells; sample at most ``max_cells`` start cells (seeded); refuse, before any model loads, what cannot
work (:func:`~.request.check_request`: options, min_cells above the cells perturbed, NaN or negative values);
tokenise them with the tokeniser of the chosen encoder (rank or binned: shipped cells-rank by default, or one of the
user's, a :class:`~cellang.embedding.loading.CellModel`; the result's settings name it);
perturb every chosen gene (all expressed genes, a list, or a corpus gene set) in every start cell
(:mod:`.engine`, or :mod:`.screen` with ``method="screen"``), a gene list together with its expression-matched
control genes (:mod:`.null`); rank genes by their signed effect against those controls, with p and q, beside
the baselines (mean expression difference, expression rank) and their Spearman agreement (:mod:`.stats`);
enrich the top hits in the corpus; validate against known genes (AUROC and the hypergeometric p of the top
100), the baselines' rankings validated the same way.

The HSMM and cardiomyopathy presets, which fill in a request's cells, known genes and data note, are in
:mod:`.presets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from cellang import checkpoints
from cellang.cells.io import subset_cells
from cellang.embedding.loading import CellModel, load_cell_encoder, shown_path
from cellang.genes import gene_types_of
from cellang.perturbation.engine import PerturbationPlan, Perturber, PerturbError, check_cls, plan_perturbations
from cellang.perturbation.null import NEIGHBOURS, with_controls
from cellang.perturbation.request import (
    DEFAULT_GENE_TYPES, DEFAULT_MIN_CELLS, METHODS, PerturbationRequest, Selection, check_request, effective_min_cells,
    labels_of, require_one_of, select_cells
)
from cellang.perturbation.screen import ScreenScores, screen
from cellang.perturbation.stats import (
    DIRECTIONS, KnownGeneValidation, add_baselines, baseline_agreement, enrich_top_hits, rank_against_controls,
    validate_baselines, validate_known
)
from cellang.perturbation.validation import normalised_expression
from cellang.progress import Progress, part, report
from cellang.text import plural
from cellang.tokenizers.cells import CellValuesError

MODEL = "cells-rank"
UNS_KEY = "cellang_perturb"


@dataclass
class DeletionResult:
    """Scores per (cell, gene), the ranked genes, validation and enrichment, and what data they are."""

    scores: pd.DataFrame  # cell, gene, position, shift, goal_shift, control
    ranked: pd.DataFrame  # stats.EFFECT_TABLE_COLUMNS, by signed effect: targets first, away-from-goal genes last
    validation: KnownGeneValidation | None
    enrichment: pd.DataFrame | None
    data_note: str
    settings: dict[str, Any]
    adata: ad.AnnData  # the start cells, obs perturb_mean_shift / perturb_mean_goal_shift, uns[UNS_KEY]
    messages: list[tuple[str, str]] = field(default_factory=list)
    baseline_validation: dict[str, KnownGeneValidation] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)  # Spearman of the effect with each baseline

    @property
    def targets(self) -> pd.DataFrame:
        """The genes whose perturbation moves cells toward the goal (or more than controls), strongest first."""
        return self.ranked[self.ranked["effect"] > 0].reset_index(drop=True)

    @property
    def away(self) -> pd.DataFrame:
        """The genes whose perturbation moves cells away from the goal (or less than controls), strongest first."""
        return self.ranked[self.ranked["effect"] <= 0].iloc[::-1].reset_index(drop=True)


def resolve_genes(genes: Sequence[str], vocabulary,  # type: ignore[no-untyped-def]
                  model_name: str = MODEL) -> tuple[list[int], list[str], list[str]]:
    """(token ids, vocabulary symbols, genes not in the vocabulary) for user gene names; aliases and
    previous symbols are resolved to approved symbols. PerturbError (naming ``model_name``'s vocabulary) when
    none is in the vocabulary."""
    from cellang.genes import load_resolver

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
        raise PerturbError(f"none of the genes ({shown}) is in the {model_name} vocabulary of "
                           f"{len(vocabulary.genes):,} genes, so there is nothing to perturb")
    return ids, symbols, missing


def corpus_gene_set(name: str) -> list[str]:
    """The genes of one corpus pathway (KeyError says when there is none of that name)."""
    from cellang.corpus import load_corpus

    return list(load_corpus()[name].genes)


def genes_of_types(vocabulary, gene_types: Sequence[str]) -> tuple[np.ndarray, str]:  # type: ignore[no-untyped-def]
    """(token ids of the vocabulary genes of ``gene_types``, or unknown to the gene table; a sentence saying so)."""
    types = gene_types_of(vocabulary.genes)
    kept = [g for g in vocabulary.genes if types[g] is None or types[g] in gene_types]
    left = len(vocabulary.genes) - len(kept)
    return (vocabulary.column_ids(kept),
            f"Genes perturbed: {' and '.join(gene_types)} ({len(kept):,} of the encoder's {len(vocabulary.genes):,} "
            f"genes); {plural(left, 'gene')} of other types (pseudogenes, ...) left out: include them under gene "
            "types.")


def screen_settings(result: ScreenScores) -> dict[str, Any]:
    """What a screened run records beside its settings: how many genes and pairs were scored exactly."""
    return {"candidate_genes": result.candidates, "exact_pairs": int(result.exact.sum()),
            "estimated_pairs": int((~result.exact).sum())}


def model_identity(model: CellModel | None = None, checkpoint_dir: str | Path | None = None) -> tuple[str, str]:
    """(name, folder as shown) of the encoder a run uses: the CellModel's; a checkpoint folder's own name;
    else the shipped cells-rank."""
    if model is not None:
        return model.name, model.folder
    if checkpoint_dir is not None:
        return Path(checkpoint_dir).name, shown_path(Path(checkpoint_dir))
    return MODEL, shown_path(checkpoints.shipped_dir(MODEL))


def load_rank_encoder(model: CellModel | None = None, checkpoint_dir: str | Path | None = None) -> tuple[Any, Any]:
    """(encoder, tokeniser) of ``model`` (else of ``checkpoint_dir``, else the shipped cells-rank; a rank or a binned
    encoder), cached by :func:`~cellang.embedding.loading.load_cell_encoder`. PerturbError when it is missing or
    cannot be read."""
    name, folder = model_identity(model, checkpoint_dir)
    try:
        encoder, tokenizer, _ = load_cell_encoder(MODEL, checkpoint_dir) if model is None else \
            load_cell_encoder(model.name, model.path)
    except FileNotFoundError as error:
        raise PerturbError(str(error)) from None
    except checkpoints.CheckpointError as error:
        raise PerturbError(f"the {name} encoder ({folder}) cannot be read: {error}") from None
    return encoder, tokenizer


def run_perturbation(adata: ad.AnnData, request: PerturbationRequest, *, encoder: Any = None, tokenizer: Any = None,
                     model: CellModel | None = None, checkpoint_dir: str | Path | None = None,
                     enrich_sets: Mapping[str, Sequence[str]] | None = None,
                     enrich_descriptions: Mapping[str, str] | None = None, max_batch_tokens: int | None = None,
                     ram_budget: int | None = None, progress: Progress | None = None) -> DeletionResult:
    """Perturb the request's genes (None: every expressed gene) in its start cells and rank them.

    adata: cells x genes, var_names approved symbols (harmonise uploads first). request: what to perturb,
    where and how (:class:`PerturbationRequest`), checked first (:func:`check_request`). encoder/tokenizer:
    the encoder (rank or binned) and its tokeniser (default: loaded from ``model``, a CellModel, else from
    ``checkpoint_dir``, else the shipped cells-rank). The settings name the model (``model``, ``checkpoint``).
    enrich_sets (and their descriptions): gene sets for the over-representation of the top hits (None:
    skipped). max_batch_tokens, ram_budget: batch and memory limits of the :class:`~.engine.Perturber`.
    progress: called with (fraction done, what is happening).
    """
    start, goal, messages = check_request(adata, request)
    selection, genes, mode, pooling = request.selection, request.genes, request.mode, request.pooling
    seed, precision = request.seed, request.precision
    min_cells = effective_min_cells(request, int(start.size))
    device, known, known_label = request.device, request.known, request.known_label
    top_n, enrich_top, data_note = request.top_n, request.enrich_top, request.data_note
    name, folder = model_identity(model, checkpoint_dir)
    if encoder is None or tokenizer is None:
        encoder, tokenizer = load_rank_encoder(model, checkpoint_dir)
    elif model is None and checkpoint_dir is None:
        folder = "given by the caller"  # not read from a checkpoint folder
    if getattr(tokenizer, "mode", None) not in ("rank", "binned"):
        raise PerturbError(f"{name} is not a cell encoder this workflow can perturb (rank-value or binned)")
    if tokenizer.mode == "binned" and request.method == "screen":
        raise PerturbError(f"the fast screen reads rank encodings; {name} is a binned encoder: use the exact method")
    gene_ids = None
    if genes is not None:
        gene_ids, _, missing = resolve_genes(genes, tokenizer.vocabulary, name)
        if missing:
            messages.append(("warning", f"{plural(len(missing), 'gene')} not in the {name} vocabulary, left out: "
                                        + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")))
    allowed = None
    if genes is None and request.gene_types is not None:
        allowed, note = genes_of_types(tokenizer.vocabulary, request.gene_types)
        messages.append(("note", note))
    classifier, goal_state = state_classifier(model, checkpoint_dir, selection, messages)
    if classifier is not None and classifier.pooling != pooling:
        messages.append(("note", f"{name} is a state classifier that reads the {classifier.pooling} embedding, so "
                                 f"the run pools by {classifier.pooling} (not {pooling})."))
        pooling = classifier.pooling
    score = request.score
    if score == "goal_probability_shift" and goal_state is None:
        raise PerturbError(f"the goal state's probability needs a state classifier that knows the goal state; {name} "
                           "is not one (fine-tune an encoder on these states first, or score goal_shift)")
    perturber = Perturber(encoder, pooling=pooling, device=device, max_batch_tokens=max_batch_tokens,
                          ram_budget=ram_budget, precision=precision,
                          head=None if goal_state is None else classifier.head, goal_state=goal_state)
    report(progress, 0.0, f"Tokenising {start.size:,} start and {goal.size:,} goal cells...")
    cells = subset_cells(adata, start)
    if not cells.obs_names.is_unique:  # per-cell results are keyed by name
        cells.obs_names_make_unique()
        messages.append(("note", "Some start cells share a name; numbers were appended to tell them apart."))
    try:
        start_cells = tokenizer.tokenize(cells)
        goal_cells = tokenizer.tokenize(subset_cells(adata, goal)) if goal.size else None
        tokens, values = start_cells.genes, start_cells.values
        goal_tokens = goal_cells.genes if goal_cells is not None else []
        goal_values = goal_cells.values if goal_cells is not None else None
    except CellValuesError as error:
        raise PerturbError(f"the chosen cells cannot be tokenised: {error}") from None
    check_cls(tokens)
    lengths = np.array([len(t) for t in tokens])
    upper = int((lengths - 1).sum())
    if gene_ids is not None:  # the asked genes and their controls
        upper = min(upper + start.size * len(gene_ids), start.size * len(gene_ids) * (1 + NEIGHBOURS))
    perturber.check_memory(upper, int(lengths.max()), start.size,
                           len(tokenizer.vocabulary.genes) if gene_ids is None else len(gene_ids))
    plan = plan_perturbations(tokens, gene_ids, mode)
    if allowed is not None:
        kept = np.isin(plan.gene_ids, allowed)
        plan = PerturbationPlan(plan.rows[kept], plan.gene_ids[kept], plan.positions[kept], plan.mode)
    if len(plan) == 0:
        verb = "delete" if mode == "delete" else "overexpress"
        if gene_ids is None:
            raise PerturbError(f"the chosen cells express none of the {len(tokenizer.vocabulary.genes):,} genes of "
                               f"the {name} encoder, so there is nothing to {verb}; are the gene names approved "
                               "symbols (harmonise them first)? Otherwise choose other cells")
        raise PerturbError(f"none of the chosen genes is in the rank encoding (the top {perturber.max_len - 1} genes) "
                           f"of the chosen cells, so there is nothing to {verb}; choose other genes or cells")
    control = np.zeros(len(plan), dtype=bool)
    if gene_ids is not None:
        plan, control = with_controls(plan, tokens, len(tokenizer.vocabulary), seed=seed)
    goal_embedding = None
    try:
        if goal.size:
            report(progress, 0.03, f"Embedding {goal.size:,} goal cells...")
            goal_embedding = perturber.embed(goal_tokens, goal_values).mean(0)
        report(progress, 0.05, f"Perturbing {len(plan):,} (cell, gene) pairs...")
        if request.method == "screen":
            result = screen(perturber, tokens, plan, goal_embedding, min_cells=min_cells, seed=seed,
                            progress=part(progress, 0.05, 0.95))
        else:
            result = perturber.score(tokens, plan, goal_embedding, progress=part(progress, 0.05, 0.95),
                                     cell_values=values)
    finally:
        encoder.to("cpu")  # the cached encoder stays on the CPU for the next caller (as in embedding.embed)
    vocabulary = tokenizer.vocabulary
    names = np.asarray(cells.obs_names.astype(str))
    scores = pd.DataFrame({"cell": names[plan.rows], "gene": [vocabulary.token(int(i)) for i in plan.gene_ids],
                           "position": plan.positions, "shift": result.shift, "goal_shift": result.goal_shift,
                           "control": control})
    if getattr(result, "goal_probability_shift", None) is not None:
        scores["goal_probability_shift"] = result.goal_probability_shift
    screened = isinstance(result, ScreenScores)
    if screened:
        scores["scored"] = np.where(result.exact, "exact", "estimate")
    report(progress, 0.96, "Ranking genes against their controls...")
    ranked = add_baselines(rank_against_controls(scores, min_cells=min_cells, score=score),
                           *expression_baselines(adata, start, goal))
    if gene_ids is not None:
        unscored = sorted(set(vocabulary.token(i) for i in gene_ids) - set(scores.loc[~control, "gene"]))
        if unscored:
            messages.append(("note", f"{plural(len(unscored), 'gene')} not in the rank encoding of any chosen cell: "
                                     + ", ".join(unscored[:20])))
    validation = validate_known(ranked, known, top_n) if known else None
    baseline_validation = validate_baselines(ranked, known, top_n) if known else {}
    toward = ranked[ranked["effect"] > 0]
    enrichment = (enrich_top_hits(ranked, enrich_sets, min(enrich_top, len(toward)), enrich_descriptions)
                  if enrich_sets and len(toward) else None)
    settings = {"model": name, "checkpoint": folder, "mode": mode, "pooling": pooling,
                "selection": selection.describe(),
                "start_cells": int(start.size), "goal_cells": int(goal.size), "pairs": len(plan),
                "genes_scored": int(len(ranked)), "seed": seed, "seconds": round(result.seconds, 2),
                "pairs_per_second": round(len(plan) / max(result.seconds, 1e-9), 1), "device": result.device,
                "batches": result.batches, "max_batch_tokens": perturber.max_batch_tokens, "precision": precision,
                "method": request.method, **(screen_settings(result) if screened else {}),
                "min_cells": min_cells, "gene_types": "all" if request.gene_types is None or genes is not None
                else ", ".join(request.gene_types), "known_label": known_label,
                "score": ranked.attrs.get("score", "shift"), "controls_per_pair": NEIGHBOURS,
                "state_classifier": None if classifier is None else {
                    "column": classifier.column, "states": classifier.states,
                    "goal_state": None if goal_state is None else classifier.states[goal_state]},
                "control_pairs": int(control.sum())}
    out = cells.copy()
    per_cell = scores[~control].groupby("cell", sort=False)[["shift", "goal_shift"]].mean()
    out.obs["perturb_mean_shift"] = per_cell["shift"].reindex(out.obs_names).to_numpy()
    out.obs["perturb_mean_goal_shift"] = per_cell["goal_shift"].reindex(out.obs_names).to_numpy()
    out.uns[UNS_KEY] = {"settings": settings, "ranked": ranked.head(1000).reset_index(drop=True)}
    report(progress, 1.0, "Done.")
    return DeletionResult(scores, ranked, validation, enrichment, data_note, settings, out, messages,
                          baseline_validation, baseline_agreement(ranked))


def state_classifier(model: CellModel | None, checkpoint_dir: str | Path | None, selection: Selection,
                     messages: list[tuple[str, str]]) -> tuple[Any, int | None]:
    """(the chosen encoder's state classifier or None, the goal state's number in it or None). A classifier whose
    states lack the goal state still sets the pooling; a note says why the goal probability is not scored."""
    from cellang.embedding.classify import classifier_head

    folder = model.path if model is not None else checkpoint_dir
    classifier = classifier_head(folder) if folder is not None else None
    if classifier is None or not selection.goal:
        return classifier, None
    known = [g for g in selection.goal if g in classifier.states]
    if not known:
        messages.append(("note", f"The state classifier learnt {classifier.column!r} ({', '.join(classifier.states)}), "
                                 "not the goal state, so the goal probability is not scored."))
        return classifier, None
    return classifier, classifier.states.index(known[0])


def expression_baselines(adata: ad.AnnData, start: np.ndarray, goal: np.ndarray) -> tuple[pd.Series | None, pd.Series]:
    """(mean log-normalised expression in the start cells minus the goal cells, None without goal cells; the start
    cells' mean), each indexed by gene: the baselines every ranking is shown beside. Start and goal cells are
    normalised apart, as they are tokenised (their values may be of different kinds)."""
    genes = adata.var_names.astype(str)

    def mean_of(rows: np.ndarray) -> pd.Series:
        expression = normalised_expression(subset_cells(adata, rows))
        return pd.Series(np.asarray(expression.mean(0)).ravel(), index=genes).groupby(level=0).mean()

    start_mean = mean_of(start)
    return (start_mean - mean_of(goal) if goal.size else None), start_mean


# The request and its checks live in .request; they stay importable from here, the workflow's one entry point.
__all__ = ["DEFAULT_GENE_TYPES", "DEFAULT_MIN_CELLS", "DIRECTIONS", "METHODS", "DeletionResult", "MODEL",
           "PerturbationRequest",
           "Selection", "UNS_KEY", "check_request", "corpus_gene_set", "effective_min_cells", "labels_of",
           "load_rank_encoder", "model_identity", "require_one_of", "resolve_genes", "run_perturbation", "select_cells"]
