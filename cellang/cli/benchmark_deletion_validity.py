"""Is the in-silico deletion ranking better than trivial baselines? Three validations, model and baselines
computed in the same run from the same cells.

    cellang benchmark deletion-validity                 # the full run (about 15 min on 2 CPU cores)
    cellang benchmark deletion-validity --cells-per-fold 4 --marker-cells 4 --out /tmp/quick

Model: the shipped cells-rank (or --checkpoint: any rank or binned encoder), the exact engine (float32, mean pooling), every score from
``Perturber.score``. Three per-gene model scores, declared before the run: "model vs controls" = the workflow's
ranking (each deletion against the expression-matched controls in the same cell, :mod:`cellang.perturbation.null`;
state consistency and HSMM, whose runs delete every gene of each cell; the marker test has matched controls of its
own), "model" = the mean score over the scored cells whose rank encoding holds the gene (the ranking before the
null) and "model, all cells" (mean over every scored cell, 0 where the gene is not in the encoding: deleting it
there moves nothing).
Baselines, from the same cells: "expression rank" (where the gene sits in the scored cells' rank
encodings: (L - p + 1) / L, 0 where absent, averaged), "mean difference" (mean log-normalised expression,
start minus goal: deleting a gene higher in the start state moves it toward the goal) and "random"
(seeded), plus the 95% range of random AUROCs for the same counts.

1. State consistency: start cells are split in two halves (seeded), and the goal cells too. Fold 1 scores
   at most --cells-per-fold start cells of half A toward the mean embedding of goal half A (every
   expressed gene deleted, score = goal shift); the truth is the genes higher in start than goal in
   half B (scanpy rank_genes_groups, Wilcoxon, BH padj < 0.05, log2 fold change > 0.5): cells never
   scored. Fold 2 swaps the halves. AUROC of the truth among the scored genes, mean of the two folds.
2. Marker deletion on labelled immune cells: for each cell type with at least --min-type-cells cells,
   at most --marker-cells of them (seeded) delete each marker gene in their encodings and one
   expression-matched control gene per marker (a random non-marker of similar mean expression in those
   cells); score = shift (1 - cos). AUROC of markers against controls, pooled over a dataset's types.
   Markers: grnndata's celltype.gmt (PyPI grnndata 1.3.2, "Immune system" sets, symbols resolved with
   the project's HGNC resolver), and markers derived by rank_genes_groups (type vs the other cells,
   padj < 0.05, log2 fold change > 1) on the OTHER labelled immune datasets of the atlas.
   The mean-difference baseline compares the type's scored cells with the dataset's other cells.
3. HSMM myogenic regulators: the HSMM preset as run_deletion.py runs it (every myotube, every expressed
   gene, toward the myoblast mean): AUROC of MYOD1, MYOG, MYF5, MYF6, MEF2C among the ranked genes.

With --fine-tune MINUTES, every test scores in a state classifier instead (Geneformer's way): the encoder is first
fine-tuned (cellang/embedding/classify.py, early stopping, at most MINUTES each) on the test's own states, and a
deletion's score is the change of the classifier's probability. State consistency: trained on the fold's scored
half only (its start cells and goal half A; never the held-out half the truth comes from), score = the goal
state's probability gained. Markers: trained on the dataset's cell types, score = the probability of the cell's
own type lost. HSMM: trained on the HSMM states, score = the myoblast probability gained (the workflow's
goal_probability_shift).

Writes <out>.json (everything, per fold and per cell type) and <out>.md (the table and the command).
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from cellang import checkpoints, cli
from cellang.cells.io import sample_indices, subset_cells
from cellang.known_genes import MYOGENIC_REGULATORS
from cellang.paths import REPO_ROOT
from cellang.perturbation import validation as v
from cellang.perturbation.immune_markers import IMMUNE_TYPES, derived_markers, gmt_markers
from cellang.perturbation.engine import Perturber, plan_perturbations
from cellang.perturbation.presets import hsmm_request
from cellang.perturbation.stats import rank_against_controls
from cellang.perturbation.workflow import (
    PerturbationRequest,
    check_request,
    load_rank_encoder,
    model_identity,
    run_perturbation,
)

SCORERS = ("model vs controls", "model", "model, all cells", "expression rank", "mean difference", "random")
MODELS = SCORERS[:3]
BASELINES = ("expression rank", "mean difference", "random")


class StatePair(NamedTuple):
    """Start and goal labels of one obs column of an atlas dataset."""

    dataset: str
    column: str
    start: str
    goal: str

    def label(self) -> str:
        return f"{self.dataset}: {self.start} -> {self.goal}"


STATE_PAIRS = (
    StatePair("hsmm", "state", "myotube", "myoblast"),
    StatePair("pbmc68k_reduced", "cell_type", "CD14+ Monocyte", "Dendritic"),
    StatePair("spectra_immune", "cell_type", "B_memory", "plasma"),
    StatePair("spectra_immune", "cell_type", "CD4_T", "CD8_T"),
)

MIN_MARKERS = 3  # a cell type is tested only with at least this many markers in its cells' encodings


def log(text: str) -> None:
    print(text, flush=True)


class Run:
    """The encoder, its tokeniser and the engine, and the data sets (loaded once); with ``fine_tune_minutes``, each test
    fine-tunes the encoder on its states first (:meth:`classifier`)."""

    def __init__(self, checkpoint: Path | None, seed: int, fine_tune_minutes: float | None = None) -> None:
        self.checkpoint = checkpoint
        self.encoder, self.tokenizer = load_rank_encoder(checkpoint_dir=checkpoint)
        self.perturber = Perturber(self.encoder, pooling="mean", precision="float32")
        self.seed = seed
        self.fine_tune_minutes = fine_tune_minutes
        self.fine_tuned: list[dict] = []
        self.pairs = 0
        self.model_seconds = 0.0
        self._data: dict[str, tuple] = {}

    def classifier(self, adata, rows: np.ndarray, column: str, what: str, out: Path | None = None):  # type: ignore[no-untyped-def]
        """The encoder fine-tuned to tell ``adata.obs[column]`` apart on the cells ``rows``: (its states, a Perturber
        that scores in it, goal state unset). out: also saved there (the workflow reads classifiers from folders)."""
        from cellang.embedding.classify import fine_tune_classifier

        cells = subset_cells(adata, np.asarray(rows))
        result = fine_tune_classifier(cells, column, self.checkpoint or "cells-rank", minutes=self.fine_tune_minutes,
                                      seed=self.seed, save=out is not None, out=out, data_name=what)
        about = result.record["classifier"]
        self.fine_tuned.append({"test": what, "states": result.states, "cells": about["cells"],
                                "pooling": about["pooling"], "steps": result.record["steps"],
                                "stopped_by": about["stopped_by"], "seconds": result.record["seconds"],
                                "test_macro_f1": round(result.metrics["test"]["macro_f1"], 3)})
        log(f"  fine-tuned on {what}: {len(result.states)} states, test macro-F1 "
            f"{result.metrics['test']['macro_f1']:.3f}, {result.record['seconds']:.0f} s")
        classifier = result.model
        return result.states, Perturber(classifier.encoder, pooling=classifier.pooling, precision="float32",
                                        head=classifier.head, goal_state=0)

    def data(self, name: str):  # type: ignore[no-untyped-def]
        """(AnnData, log-normalised expression, gene names)."""
        if name not in self._data:
            self._data[name] = v.atlas_expression(name)
        return self._data[name]

    def encode(self, adata, rows: np.ndarray):  # type: ignore[no-untyped-def]
        """The cells' encodings (tokens, and value bins for a binned encoder)."""
        return self.tokenizer.tokenize(subset_cells(adata, np.asarray(rows)))

    def tokens(self, adata, rows: np.ndarray) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
        return self.encode(adata, rows).genes

    def delete(self, cells, goal_cells, genes: list[str] | None = None,  # type: ignore[no-untyped-def]
               perturber: Perturber | None = None) -> pd.DataFrame:
        """Per-(cell, gene) scores of deleting `genes` (None: every gene of each encoding) in the encoded `cells`,
        toward the mean embedding of the encoded `goal_cells` (None: no goal). Columns cell (row), gene, position,
        shift, goal_shift, and goal_probability_shift with a classifier's ``perturber``."""
        perturber = perturber or self.perturber
        vocabulary = self.tokenizer.vocabulary
        tokens = cells.genes
        gene_ids = None if genes is None else [int(i) for i in vocabulary.column_ids(genes)]
        plan = plan_perturbations(tokens, gene_ids, "delete")
        goal = (perturber.embed(goal_cells.genes, goal_cells.values).mean(0)
                if goal_cells is not None and len(goal_cells) else None)
        result = perturber.score(tokens, plan, goal, cell_values=cells.values)
        self.pairs += len(plan)
        self.model_seconds += result.seconds
        frame = pd.DataFrame({"cell": plan.rows, "gene": [vocabulary.token(int(i)) for i in plan.gene_ids],
                              "position": plan.positions, "shift": result.shift, "goal_shift": result.goal_shift})
        if result.goal_probability_shift is not None:
            frame["goal_probability_shift"] = result.goal_probability_shift
        return frame


def scorer_table(scores: pd.DataFrame, column: str, n_cells: int, tokens: list[np.ndarray], token_name,  # type: ignore[no-untyped-def]
                 expression, genes: np.ndarray, start_rows: np.ndarray, other_rows: np.ndarray,
                 seed: int, universe: list[str] | None = None, null: bool = True) -> dict[str, pd.Series]:
    """The per-gene scores of one test (SCORERS), each restricted to `universe` (default: the genes the model
    scored); "model vs controls" only with ``null`` (every gene of each cell deleted; NaN otherwise)."""
    model = v.aggregate_pairs(scores["gene"], scores[column], scores["cell"], n_cells)
    model_all = v.aggregate_pairs(scores["gene"], scores[column], scores["cell"], n_cells, absent_as_zero=True)
    universe = sorted(model.index) if universe is None else sorted(universe)
    effect = pd.Series(np.nan, index=model.index)
    if null:
        table = rank_against_controls(scores, score=column)
        effect = pd.Series(table["effect"].to_numpy(float), index=table["gene"].astype(str))
    out = {"model vs controls": effect, "model": model, "model, all cells": model_all,
           "expression rank": v.expression_rank_scores(tokens, token_name),
           "mean difference": v.mean_difference_scores(expression, genes, start_rows, other_rows),
           "random": v.random_scores(universe, seed)}
    return {name: series.reindex(universe) for name, series in out.items()}


def state_consistency(run: Run, pair: StatePair, cells_per_fold: int, top_n: int) -> dict:
    """Two folds: score half A (toward goal half A), truth from half B; then the reverse."""
    adata, expression, genes = run.data(pair.dataset)
    labels = adata.obs[pair.column].astype(str).to_numpy()
    start, goal = np.flatnonzero(labels == pair.start), np.flatnonzero(labels == pair.goal)
    start_halves = [start[h] for h in v.split_halves(start.size, run.seed)]
    goal_halves = [goal[h] for h in v.split_halves(goal.size, run.seed + 1)]
    folds = []
    for fold in (0, 1):
        scored_half, held_half = start_halves[fold], start_halves[1 - fold]
        chosen = sample_indices(scored_half.size, cells_per_fold, run.seed)
        scored = scored_half if chosen is None else scored_half[chosen]
        goal_scored, goal_held = goal_halves[fold], goal_halves[1 - fold]
        began = time.perf_counter()
        encoded = run.encode(adata, scored)
        tokens = encoded.genes
        column, perturber = "goal_shift", None
        if run.fine_tune_minutes:
            states, perturber = run.classifier(adata, np.concatenate((scored_half, goal_scored)), pair.column,
                                               f"{pair.label()} fold {fold + 1}")
            perturber.goal_state, column = states.index(pair.goal), "goal_probability_shift"
        scores = run.delete(encoded, run.encode(adata, goal_scored), perturber=perturber)
        start_mask, goal_mask = np.zeros(adata.n_obs, bool), np.zeros(adata.n_obs, bool)
        start_mask[held_half], goal_mask[goal_held] = True, True
        truth = v.de_truth(expression, genes, start_mask, goal_mask)
        table = scorer_table(scores, column, len(scored), tokens, run.tokenizer.vocabulary.token, expression,
                             genes, scored, goal_scored, run.seed + fold)
        checks = {name: v.ranking_check(series, truth, top_n) for name, series in table.items()}
        beyond = v.added_information(table["model vs controls"], table["mean difference"], truth)
        folds.append({"beyond_mean_difference": beyond, "scored_cells": int(len(scored)), "goal_cells": int(len(goal_scored)),
                      "truth_cells": [int(held_half.size), int(goal_held.size)], "pairs": int(len(scores)),
                      "truth_genes": len(truth), "truth_top20": truth[:20], "seconds": round(time.perf_counter() - began, 1),
                      "checks": {name: c.as_dict() for name, c in checks.items()}})
        log(f"  {pair.label()} fold {fold + 1}: {len(scored)} cells, {len(scores):,} deletions, "
            f"{checks['model'].n_true_scored} of {len(truth)} DE genes scored; AUROC "
            + ", ".join(f"{n} {c.auroc:.3f}" for n, c in checks.items()))
    counts = [(f["checks"]["model"]["n_true_scored"], f["checks"]["model"]["n_genes"]
               - f["checks"]["model"]["n_true_scored"]) for f in folds]
    return {"validation": "state consistency", "data": pair.label(), "truth": "DE genes up in start (held-out half)",
            "cells_scored": sum(f["scored_cells"] for f in folds),
            "genes": round(float(np.mean([f["checks"]["model"]["n_genes"] for f in folds]))),
            "positives": round(float(np.mean([c[0] for c in counts]))),
            "auroc": {name: float(np.mean([f["checks"][name]["auroc"] for f in folds])) for name in SCORERS},
            "hits_top_n": {name: int(sum(f["checks"][name]["hits_top_n"] for f in folds)) for name in SCORERS},
            "top_n": top_n, "random_band": v.random_auroc_band(counts, seed=run.seed), "folds": folds,
            "beyond_mean_difference": [f["beyond_mean_difference"] for f in folds]}


def marker_deletion(run: Run, sources: dict[str, dict[tuple[str, str], list[str]]], marker_cells: int,
                    min_type_cells: int, top_n: int) -> list[dict]:
    """Rows per (source, dataset) and per source over all datasets: markers vs matched controls."""
    per_type: list[dict] = []
    for name, types in IMMUNE_TYPES.items():
        adata, expression, genes = run.data(name)
        labels = adata.obs["cell_type"].astype(str).to_numpy()
        column, states, perturber = "shift", None, None
        if run.fine_tune_minutes:
            from cellang.embedding.classify import too_rare_states

            trainable = np.flatnonzero(~np.isin(labels, too_rare_states(labels)))
            states, perturber = run.classifier(adata, trainable, "cell_type", f"{name} cell types")
            column = "own_type_lost"
        for label, kind in types.items():
            rows = np.flatnonzero(labels == label)
            if rows.size < min_type_cells:
                continue
            chosen = sample_indices(rows.size, marker_cells, run.seed)
            cells = rows if chosen is None else rows[chosen]
            others = np.flatnonzero(labels != label)
            encoded = run.encode(adata, cells)
            tokens = encoded.genes
            present = v.expression_rank_scores(tokens, run.tokenizer.vocabulary.token)
            deletable = sorted(present.index)
            level = pd.Series(np.asarray(expression[cells].mean(0)).ravel(), index=genes).groupby(level=0).mean()
            level = level.reindex(deletable)
            all_markers = set().union(*(s.get((name, kind), []) for s in sources.values()))
            tests = {}
            for source, markers in sources.items():
                wanted = sorted(set(markers.get((name, kind), [])) & set(deletable))
                if len(wanted) < MIN_MARKERS:
                    continue
                controls = v.matched_controls(level, wanted, exclude=all_markers, seed=run.seed)
                tests[source] = (wanted, controls)
            if not tests:
                continue
            needed = sorted({g for wanted, controls in tests.values() for g in [*wanted, *controls.values()]})
            began = time.perf_counter()
            if perturber is not None:
                perturber.goal_state = states.index(label)
            scores = run.delete(encoded, None, needed, perturber=perturber)
            if perturber is not None:
                scores["own_type_lost"] = -scores["goal_probability_shift"]
            table = scorer_table(scores, column, len(cells), tokens, run.tokenizer.vocabulary.token, expression,
                                 genes, cells, others, run.seed, universe=needed, null=False)
            for source, (wanted, controls) in tests.items():
                used = [*wanted, *controls.values()]
                entry = {"source": source, "dataset": name, "label": label, "type": kind, "cells": int(len(cells)),
                         "markers": wanted, "controls": controls, "pairs": int(scores["gene"].isin(used).sum()),
                         "marker_mean_expression": float(level[wanted].mean()),
                         "control_mean_expression": float(level[list(controls.values())].mean()),
                         "scores": {n: {g: float(s[g]) for g in used if pd.notna(s[g])} for n, s in table.items()}}
                entry["checks"] = {n: v.ranking_check(pd.Series(entry["scores"][n]), wanted, top_n).as_dict()
                                   for n in SCORERS}
                per_type.append(entry)
                log(f"  {source} markers, {name} {label}: {len(cells)} cells, {len(wanted)} markers + "
                    f"{len(controls)} controls ({time.perf_counter() - began:.0f} s); AUROC "
                    + ", ".join(f"{n} {c['auroc']:.3f}" for n, c in entry["checks"].items()))
    rows = []
    for source in sources:
        entries = [e for e in per_type if e["source"] == source]
        for dataset in [*IMMUNE_TYPES, "all"]:
            chosen = [e for e in entries if dataset in ("all", e["dataset"])]
            if not chosen:
                continue
            positives = [f"{e['dataset']}/{e['label']}/{g}" for e in chosen for g in e["markers"]]
            pooled = {n: pd.Series({f"{e['dataset']}/{e['label']}/{g}": s for e in chosen
                                    for g, s in e["scores"][n].items()}) for n in SCORERS}
            checks = {n: v.ranking_check(pooled[n], positives, top_n) for n in SCORERS}
            n_genes = checks["model"].n_genes
            rows.append({"validation": f"marker deletion ({source})", "data": dataset if dataset != "all" else
                         "all datasets", "truth": "markers vs expression-matched controls",
                         "cells_scored": sum(e["cells"] for e in chosen), "types": [e["label"] for e in chosen],
                         "genes": n_genes, "positives": checks["model"].n_true_scored,
                         "auroc": {n: c.auroc for n, c in checks.items()},
                         "hits_top_n": {n: c.hits_top_n for n, c in checks.items()}, "top_n": top_n,
                         "random_band": v.random_auroc_band([(checks["model"].n_true_scored,
                                                              n_genes - checks["model"].n_true_scored)], seed=run.seed),
                         "per_type_auroc": {f"{e['dataset']}/{e['label']}": {n: e["checks"][n]["auroc"] for n in SCORERS}
                                            for e in chosen}})
    for e in per_type:
        e.pop("scores")
    rows.append({"validation": "marker deletion, per cell type", "per_type": per_type})
    return rows


def hsmm_regulators(run: Run, top_n: int, max_cells: int, folder: Path) -> dict:
    """The HSMM preset (every myotube toward the myoblast mean) through run_perturbation, then the same
    AUROC for the baselines from the same cells. Fine-tuning: the classifier is kept in ``folder`` for the workflow."""
    adata, expression, genes = run.data("hsmm")
    request = hsmm_request(PerturbationRequest(seed=run.seed, max_cells=max_cells))
    start, goal, _ = check_request(adata, request)
    began = time.perf_counter()
    if run.fine_tune_minutes:
        shutil.rmtree(folder, ignore_errors=True)  # this benchmark's own classifier of an earlier run
        run.classifier(adata, np.arange(adata.n_obs), "state", "hsmm states", out=folder)
        request = dataclasses.replace(request, score="goal_probability_shift")
        result = run_perturbation(adata, request, checkpoint_dir=folder)
    else:
        result = run_perturbation(adata, request, encoder=run.encoder, tokenizer=run.tokenizer)
    run.pairs += int(result.settings["pairs"])
    run.model_seconds += float(result.settings["seconds"])
    tokens = run.tokens(adata, start)
    scores = result.scores.assign(cell=result.scores["cell"].astype(str))
    # every scorer on the genes the workflow ranks (scored in at least its min_cells cells)
    table = scorer_table(scores, request.score or "goal_shift", start.size, tokens, run.tokenizer.vocabulary.token,
                         expression, genes, start, goal, run.seed, universe=result.ranked["gene"].astype(str).tolist())
    checks = {name: v.ranking_check(series, MYOGENIC_REGULATORS, top_n) for name, series in table.items()}
    if not np.isclose(checks["model vs controls"].auroc, result.validation.auroc, equal_nan=True):
        raise RuntimeError(f"the model's AUROC {checks['model vs controls'].auroc} differs from the workflow's "
                           f"{result.validation.auroc}")
    ranks = {name: {g: int((series > series[g]).sum() + 1) for g in MYOGENIC_REGULATORS if g in series.index
                    and pd.notna(series[g])} for name, series in table.items()}
    n_pos = checks["model"].n_true_scored
    log(f"  HSMM regulators: {start.size} myotubes, {result.settings['pairs']:,} deletions "
        f"({time.perf_counter() - began:.0f} s); AUROC " + ", ".join(f"{n} {c.auroc:.3f}" for n, c in checks.items()))
    return {"validation": "HSMM myogenic regulators", "data": "hsmm: myotube -> myoblast (preset)",
            "truth": "MYOD1, MYOG, MYF5, MYF6, MEF2C", "cells_scored": int(start.size), "goal_cells": int(goal.size),
            "genes": checks["model"].n_genes, "positives": n_pos, "pairs": int(result.settings["pairs"]),
            "auroc": {n: c.auroc for n, c in checks.items()}, "p": {n: c.p for n, c in checks.items()},
            "hits_top_n": {n: c.hits_top_n for n, c in checks.items()}, "top_n": top_n,
            "random_band": v.random_auroc_band([(n_pos, checks["model"].n_genes - n_pos)], seed=run.seed),
            "ranks": ranks}


def verdict(row: dict) -> str:
    """'yes' when the best model score's AUROC is above both non-random baselines and above the random range."""
    finite = [row["auroc"][n] for n in MODELS if np.isfinite(row["auroc"].get(n, np.nan))]
    if not finite:
        return "n/a"
    model = max(finite)
    best = max(row["auroc"]["expression rank"], row["auroc"]["mean difference"])
    if model > best and model > row["random_band"][1]:
        return "yes"
    return "no: " + ("below " + ("mean difference" if row["auroc"]["mean difference"] >= row["auroc"]["expression rank"]
                                 else "expression rank") if model <= best else "within random range")


def markdown(result: dict) -> str:
    rows = [r for r in result["rows"] if "auroc" in r]
    lines = ["# In-silico deletion: model against trivial baselines", "",
             f"Model: {result['model']} ({result['checkpoint']}), "
             + (f"fine-tuned on each test's states first (at most {result['fine_tune_minutes']:g} min each; scores: "
                "classifier probabilities, see below), " if result.get("fine_tune_minutes") else "")
             + "exact engine (float32, mean pooling unless the classifier chose CLS). "
             f"{result['cells_note']} {result['pairs']:,} deletions in {result['model_seconds'] / 60:.1f} min of model "
             f"time; whole run {result['seconds'] / 60:.1f} min on {result['threads']} CPU threads "
             f"({result['platform']}). AUROC, 0.5 = random order; random range = the central 95% of random AUROCs "
             f"for the same counts.", "",
             "| validation | data | cells scored | genes (true) | " + " | ".join(SCORERS)
             + " | random 95% range | model beats baselines? |",
             "|---|---|---:|---:|" + "---:|" * len(SCORERS) + "---|---|"]
    for r in rows:
        a = r["auroc"]
        lines.append(f"| {r['validation']} | {r['data']} | {r['cells_scored']} | {r['genes']:,} ({r['positives']}) | "
                     + " | ".join(f"{a.get(n, float('nan')):.3f}" for n in SCORERS)
                     + f" | {r['random_band'][0]:.2f}-{r['random_band'][1]:.2f} | {verdict(r)} |")
    top_n = rows[0]["top_n"] if rows else 50
    lines += ["", f"Hits in the top {top_n} (state consistency: summed over the two folds):", "",
              "| validation | data | " + " | ".join(SCORERS) + " |", "|---|---|" + "---:|" * len(SCORERS)]
    for r in rows:
        if not r["validation"].startswith("marker"):
            lines.append(f"| {r['validation']} | {r['data']} | " + " | ".join(str(r["hits_top_n"].get(n, ""))
                                                                           for n in SCORERS)
                         + " |")
    beyond = [r for r in rows if r.get("beyond_mean_difference")]
    if beyond:
        lines += ["", "Does the model add information beyond the mean difference? Logistic regression of \"is a DE gene\" "
                  "(truth from the held-out half) on the standardised model-vs-controls effect and mean difference "
                  "together, per fold: the model's coefficient (Wald p) and the mean difference's coefficient.", "",
                  "| data | fold 1: model coef (p), mean-difference coef | fold 2: model coef (p), mean-difference coef |",
                  "|---|---|---|"]
        for r in beyond:
            cells = [f"{b['coef']:+.3f} ({b['p']:.2g}), {b['baseline_coef']:+.3f}" for b in r["beyond_mean_difference"]]
            lines.append(f"| {r['data']} | " + " | ".join(cells) + " |")
    if result.get("fine_tuned"):
        lines += ["", "Classifiers fine-tuned for the tests (test macro-F1 on their own held-out cells):", "",
                  "| test | states | cells (train/validation/test) | pooling | steps | stopped by | seconds | "
                  "test macro-F1 |", "|---|---:|---|---|---:|---|---:|---:|"]
        lines += [f"| {f['test']} | {len(f['states'])} | {f['cells']['train']}/{f['cells']['validation']}/"
                  f"{f['cells']['test']} | {f['pooling']} | {f['steps']} | {f['stopped_by']} | {f['seconds']:.0f} | "
                  f"{f['test_macro_f1']:.3f} |" for f in result["fine_tuned"]]
    scores_note = ("Scores (fine-tuned): the goal state's probability gained for state consistency and HSMM, the "
                   "cell's own type's probability lost for markers." if result.get("fine_tune_minutes") else
                   "Scores: goal shift for state consistency and HSMM, shift (1 - cos) for markers.")
    lines += ["", "Definitions: see the script's docstring. \"model vs controls\" = the effect against expression-"
              "matched controls in the same cells (the workflow's ranking; not defined for the marker test); "
              "\"model\" = mean score over the scored cells whose rank "
              "encoding holds the gene (the ranking before the null); \"model, all cells\" = mean over every scored cell, "
              "0 where absent. " + scores_note, "",
              f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a rank or binned encoder's folder (default: checkpoints/cells-rank)")
    parser.add_argument("--cells-per-fold", type=cli.at_least(1), default=25,
                        help="start cells scored per fold of the state-consistency test (seeded sample of a half)")
    parser.add_argument("--marker-cells", type=cli.at_least(1), default=20,
                        help="cells of each type that delete its markers and controls (seeded sample)")
    parser.add_argument("--min-type-cells", type=cli.at_least(2), default=20,
                        help="cell types with fewer cells are not tested")
    parser.add_argument("--hsmm-cells", type=cli.at_least(1), default=200,
                        help="myotubes scored for the regulators (the preset's default 200 = all 49)")
    parser.add_argument("--markers", choices=("gmt", "derived", "both"), default="both")
    parser.add_argument("--fine-tune", type=cli.number(0, 240, above=True), default=None, metavar="MINUTES",
                        help="score every test in the encoder fine-tuned on its states first (at most MINUTES each)")
    parser.add_argument("--skip", nargs="*", choices=("state", "markers", "hsmm"), default=[])
    parser.add_argument("--top-n", type=cli.at_least(1), default=50)
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_deletion_validity")
    args = parser.parse_args(argv)
    if args.checkpoint is not None and checkpoints.why_missing("cells-rank", args.checkpoint):
        parser.error(f"--checkpoint: {checkpoints.why_missing('cells-rank', args.checkpoint)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    run = Run(args.checkpoint, args.seed, args.fine_tune)
    rows: list[dict] = []
    notes: dict = {}
    if "state" not in args.skip:
        log("State consistency (DE genes of held-out cells):")
        rows += [state_consistency(run, pair, args.cells_per_fold, args.top_n) for pair in STATE_PAIRS]
    if "markers" not in args.skip:
        log("Marker deletion:")
        sources: dict[str, dict[tuple[str, str], list[str]]] = {}
        if args.markers in ("gmt", "both"):
            by_type, notes["gmt"] = gmt_markers(run.tokenizer.vocabulary)
            if by_type:
                sources["grnndata gmt"] = {(d, k): by_type.get(k, []) for d, t in IMMUNE_TYPES.items()
                                           for k in set(t.values())}
            else:
                log(f"  grnndata celltype.gmt could not be fetched ({notes['gmt']['error']}): derived markers only")
        if args.markers != "gmt" or not sources:
            sources["derived"], notes["derived"] = derived_markers(run.data)
        rows += marker_deletion(run, sources, args.marker_cells, args.min_type_cells, args.top_n)
    if "hsmm" not in args.skip:
        log("HSMM myogenic regulators:")
        rows.append(hsmm_regulators(run, args.top_n, args.hsmm_cells,
                                    REPO_ROOT / "runs" / "deletion-validity" / "hsmm-state-classifier"))
    name, folder = model_identity(None, args.checkpoint)
    scored = [r for r in rows if "auroc" in r]
    result = {
        "model": name, "checkpoint": folder, "seed": args.seed, "threads": torch.get_num_threads(),
        "platform": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "cells_note": (f"State consistency: at most {args.cells_per_fold} start cells per fold; markers: at most "
                       f"{args.marker_cells} cells per type (types with >= {args.min_type_cells} cells); HSMM: at most "
                       f"{args.hsmm_cells} myotubes (there are 49). Seeded samples."),
        "pairs": run.pairs, "model_seconds": round(run.model_seconds, 1),
        "fine_tune_minutes": args.fine_tune, "fine_tuned": run.fine_tuned,
        "seconds": round(time.perf_counter() - began, 1), "rows": rows, "marker_sources": notes,
        "verdicts": {f"{r['validation']} | {r['data']}": verdict(r) for r in scored},
        "command": cli.command_line("benchmark_deletion_validity", argv),
    }
    cli.write_results(args.out, result, markdown(result), default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
