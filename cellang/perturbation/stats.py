"""Statistics of in-silico perturbation scores: ranked genes, enrichment, validation against known genes.

In:  the per-(cell, gene) scores of :mod:`cellang.perturbation.engine` as a table with columns
     ``cell``, ``gene``, ``shift`` and ``goal_shift`` (NaN without a goal state).
Out:
* :func:`rank_against_controls`: what a run reports, one row per gene: its effect against expression-matched
  controls in the same cells, with p and q (:mod:`.null`), the mean shifts, and beside them the baselines
  (:func:`add_baselines`: the mean expression difference between start and goal, the expression rank in the
  start cells); ordered by signed effect, so genes that move cells away from the goal come last, never among
  the targets (``direction``);
* :func:`rank_genes`: for gene pairs (:mod:`.pairs`) and the screen's tuning, one row per gene: cells, ranking score (the mean shrunk by the number of cells, see
  PRIOR_CELLS), mean and median score, mean shift (and goal shift), Wilcoxon rank-sum U and p of the gene's
  scores against the pooled scores of all other genes, Benjamini-Hochberg q, rank (1 = highest ranking score);
* :func:`enrich_top_hits`: over-representation of the top-N genes in corpus gene sets (gseapy's
  offline hypergeometric test, background = every ranked gene) via ``cellang.enrich``;
* :func:`prerank_enrichment`: GSEA prerank of the whole ranking (gseapy, offline, seeded, few
  permutations; slower: about 20 s for 3,000 genes against the whole corpus on one CPU core);
* :func:`validate_known`: AUROC of known genes in the ranking and the hypergeometric p of the top N.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellang.enrich import enrich_against_corpus
from cellang.perturbation.null import NEIGHBOURS, gene_effects, matched_z
from cellang.stats import auroc, benjamini_hochberg, mann_whitney_one_vs_rest, overlap_p_value

SCORES = ("goal_shift", "shift")
RANK_COLUMNS = ["rank", "gene", "cells", "ranking_score", "mean_score", "median_score", "mean_shift", "mean_goal_shift",
                "U", "p", "q"]
# The ranking shrinks a gene's mean score toward 0 by cells / (cells + PRIOR_CELLS): a gene scored in one cell
# keeps a quarter of its mean, one scored in 30 cells 91%. A single cell's large shift no longer tops the list.
PRIOR_CELLS = 3
PRERANK_COLUMNS = ["name", "description", "size", "es", "nes", "p", "fdr", "lead_genes"]
EFFECT_TABLE_COLUMNS = ["rank", "gene", "direction", "effect", "cells", "p", "q", "mean_goal_shift",
                        "mean_goal_probability_shift", "mean_shift", "mean_difference", "expression_rank", "consensus"]
DIRECTIONS = {"goal_shift": ("toward goal", "away from goal"), "goal_probability_shift": ("toward goal", "away from goal"),
              "shift": ("more than controls", "less than controls")}
EFFECT_SCORES = tuple(DIRECTIONS)  # what a run's effect can be measured on
COLUMN_HELP = {
    "rank": "Place by signed effect (1 = the strongest move toward the goal).",
    "gene": "The gene perturbed.",
    "direction": "Whether perturbing the gene moves cells toward the goal state (or, without a goal, moves them more) "
                 "than perturbing expression-matched control genes in the same cells does.",
    "effect": "How many control standard deviations the perturbation moves a cell beyond its expression-matched "
              "controls (the genes ranked next to it in the same cell), averaged over cells and shrunk toward 0 "
              "for genes seen in few cells (x cells / (cells + 3)). Positive: toward the goal.",
    "cells": "Start cells in which the gene was perturbed and had controls.",
    "p": "Wilcoxon signed-rank p of the gene's per-cell effects against 0 (two-sided).",
    "q": "Benjamini-Hochberg q over every gene ranked (the false discovery rate at this gene's p).",
    "mean_goal_shift": "Mean change of the cell's cosine similarity to the goal state's mean embedding (raw, before "
                       "the controls).",
    "mean_goal_probability_shift": "Mean change of the goal state's probability under the fine-tuned state "
                                   "classifier (raw, before the controls).",
    "mean_shift": "Mean 1 - cosine between the cell's embedding before and after (raw: how far it moves at all).",
    "mean_difference": "Baseline: mean log-normalised expression in the start cells minus in the goal cells "
                       "(positive: higher in the start state, so deleting it points toward the goal).",
    "expression_rank": "Baseline: the gene's place by mean expression in the start cells among the genes ranked "
                       "(1 = highest).",
    "consensus": "The mean of the gene's percentile by effect and by mean difference (1 = first by both): ranks by "
                 "what the model and the expression difference agree on.",
}


def score_column(scores: pd.DataFrame) -> str:
    """'goal_shift' when the scores were made with a goal state, else 'shift'."""
    return "goal_shift" if "goal_shift" in scores and scores["goal_shift"].notna().any() else "shift"


def rank_genes(scores: pd.DataFrame, score: str | None = None, alternative: str | None = None,
               min_cells: int = 1) -> pd.DataFrame:
    """Per-gene statistics of `scores` (columns cell, gene, shift, goal_shift), best first.

    score: which column ranks the genes (default: goal_shift when present, else shift). alternative of
    the rank-sum test: default "greater" for shift (moves the cell more than other genes do) and
    "two-sided" for goal_shift (towards or away from the goal). Genes scored in fewer than min_cells
    cells are left out before testing. Genes are ordered by ranking_score, ties broken by gene name.
    """
    score = score or score_column(scores)
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, not {score!r}")
    alternative = alternative or ("greater" if score == "shift" else "two-sided")
    if score not in scores:
        raise ValueError(f"the scores have no {score!r} column (was a goal state given?)")
    data = scores.reindex(columns=["gene", "shift", "goal_shift"]).loc[scores[score].notna()]
    values = data[score].to_numpy(dtype=float)
    genes = data["gene"].astype(str).to_numpy()
    counts = pd.Series(genes).value_counts()
    keep = np.isin(genes, counts.index[counts >= max(1, min_cells)].to_numpy())
    values, genes, data = values[keep], genes[keep], data[keep]
    if values.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "gene" else float) for c in RANK_COLUMNS})
    names, u, p = mann_whitney_one_vs_rest(values, genes, alternative)
    grouped = pd.DataFrame({"gene": genes, "score": values, "shift": data["shift"].to_numpy(float),
                            "goal_shift": data["goal_shift"].to_numpy(float)}).groupby("gene", sort=True)
    table = pd.DataFrame({
        "gene": names,
        "cells": grouped.size().reindex(names).to_numpy(),
        "mean_score": grouped["score"].mean().reindex(names).to_numpy(),
        "median_score": grouped["score"].median().reindex(names).to_numpy(),
        "mean_shift": grouped["shift"].mean().reindex(names).to_numpy(),
        "mean_goal_shift": grouped["goal_shift"].mean().reindex(names).to_numpy(),
        "U": u, "p": p, "q": benjamini_hochberg(p),
    })
    table.insert(2, "ranking_score", ranking_score(table["mean_score"].to_numpy(float), table["cells"].to_numpy(float)))
    table = table.sort_values(["ranking_score", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs["score"] = score
    table.attrs["alternative"] = alternative
    return table[RANK_COLUMNS]


def rank_against_controls(scores: pd.DataFrame, *, min_cells: int = 1, neighbours: int = NEIGHBOURS,
                          score: str | None = None) -> pd.DataFrame:
    """Genes by signed effect against their expression-matched controls (see :mod:`.null`).

    scores: one row per (cell, gene) pair with columns cell, gene, position (the gene's place in the cell; < 1
    for a gene the cell lacks), shift, goal_shift (NaN without a goal), optionally goal_probability_shift (a state
    classifier's) and control (True: the pair is only a control and its gene gets no row). score: the column the
    effect is measured on (EFFECT_SCORES; default goal_shift with a goal, else shift). Genes with controls in fewer
    than ``min_cells`` cells are left out.
    Out: EFFECT_TABLE_COLUMNS without the baselines (:func:`add_baselines` adds them); attrs["score"] names the
    score column that was tested.
    """
    score = score or score_column(scores)
    if score not in EFFECT_SCORES or score not in scores or not scores[score].notna().any():
        raise ValueError(f"no {score!r} scores to rank by (the scores have {', '.join(map(str, scores.columns))})")
    z = matched_z(scores["cell"].to_numpy(), scores["position"].to_numpy(), scores[score].to_numpy(float),
                  neighbours)
    reported = ~scores["control"].to_numpy(bool) if "control" in scores else None
    table = gene_effects(scores["gene"].to_numpy(), z, reported=reported, min_cells=min_cells)
    raw = [c for c in ("goal_shift", "goal_probability_shift", "shift") if c in scores]
    means = scores.groupby("gene", sort=False)[raw].mean()
    for column in raw:
        table[f"mean_{column}"] = means[column].reindex(table["gene"]).to_numpy(float)
    toward, away = DIRECTIONS[score]
    table.insert(1, "direction", np.where(table["effect"].to_numpy(float) > 0, toward, away))
    table = table.sort_values(["effect", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs["score"] = score
    return table


def add_baselines(table: pd.DataFrame, mean_difference: pd.Series | None, start_expression: pd.Series) -> pd.DataFrame:
    """``table`` (of :func:`rank_against_controls`) with the baseline columns: mean_difference (start minus goal,
    NaN without goal cells), expression_rank (1 = the highest mean expression in the start cells among the
    table's genes) and, with a mean difference, consensus (COLUMN_HELP). Both series are indexed by gene."""
    out = table.copy()
    genes = out["gene"].astype(str)
    out["mean_difference"] = (mean_difference.reindex(genes).to_numpy(float) if mean_difference is not None
                              else np.full(len(out), np.nan))
    expression = start_expression.reindex(genes).fillna(0.0).to_numpy(float)
    out["expression_rank"] = pd.Series(-expression).rank(method="min").astype(int).to_numpy()
    if out["mean_difference"].notna().any():
        percentiles = [pd.Series(out[c].to_numpy(float)).rank(pct=True).to_numpy() for c in ("effect", "mean_difference")]
        out["consensus"] = np.nanmean(np.vstack(percentiles), axis=0)
    out.attrs = dict(table.attrs)
    return out[[c for c in EFFECT_TABLE_COLUMNS if c in out]]


def baseline_agreement(table: pd.DataFrame) -> dict[str, float]:
    """Spearman correlation of the effect with each baseline over the table's genes (NaN when undefined):
    mean_difference, and expression (the start cells' mean expression, i.e. minus expression_rank)."""
    from scipy.stats import spearmanr

    effect = table["effect"].to_numpy(float)
    out = {}
    for name, values in (("mean_difference", table["mean_difference"].to_numpy(float)),
                         ("expression", -table["expression_rank"].to_numpy(float))):
        ok = np.isfinite(values) & np.isfinite(effect)
        rho = np.nan
        if ok.sum() >= 3 and np.ptp(values[ok]) > 0 and np.ptp(effect[ok]) > 0:
            rho = float(spearmanr(effect[ok], values[ok]).statistic)
        out[name] = rho
    return out


def ranking_score(mean: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """mean x cells / (cells + PRIOR_CELLS): what genes are ranked by (see PRIOR_CELLS)."""
    return mean * cells / (cells + PRIOR_CELLS)


def _ranking_values(table: pd.DataFrame) -> np.ndarray:
    """The column a ranked table is ordered by: effect (:func:`rank_against_controls`), else ranking_score, else
    mean_score."""
    for column in ("effect", "ranking_score", "mean_score"):
        if column in table:
            return table[column].to_numpy(float)
    raise ValueError("the table has no effect, ranking_score or mean_score column")


def enrich_top_hits(table: pd.DataFrame, corpus_sets: Mapping[str, Sequence[str]], top_n: int = 50,
                    descriptions: Mapping[str, str] | None = None, top: int | None = 10) -> pd.DataFrame:
    """Corpus sets over-represented among the first `top_n` genes of a :func:`rank_genes` table, the
    background being every ranked gene (what could have been a hit). Columns as cellang.enrich.COLUMNS."""
    genes = table["gene"].astype(str).tolist()
    return enrich_against_corpus(genes[:top_n], corpus_sets, genes, top=top, descriptions=descriptions)


def _token(number: int) -> str:
    return f"G{number:07d}"  # opaque upper-case names: gseapy neither upper-cases nor reads them as ids


def permutation_p_floor(permutations: int) -> float:
    """The smallest p a permutation test with this many permutations can support (Phipson and Smyth 2010)."""
    return 1.0 / (permutations + 1)


def prerank_enrichment(table: pd.DataFrame, corpus_sets: Mapping[str, Sequence[str]], *, permutations: int = 100,
                       seed: int = 0, min_size: int = 15, max_size: int = 500, threads: int = 1,
                       descriptions: Mapping[str, str] | None = None, top: int | None = 20) -> pd.DataFrame:
    """GSEA prerank of the ranked genes (by ranking_score) against `corpus_sets`, with gseapy offline.

    Seeded and deterministic for a given `threads`; sets are restricted to the ranked genes and kept
    when they have min_size..max_size of them. Sorted by p then |NES|. Empty table when no set fits.
    p and FDR never go below :func:`permutation_p_floor`: gseapy reports 0 when no permutation reached
    the observed score, but with n permutations that only says p < 1/n.
    """
    import gseapy

    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    genes = table["gene"].astype(str).tolist()
    encode = {gene: _token(i) for i, gene in enumerate(genes)}
    decode = {token: gene for gene, token in encode.items()}
    names = [name for name, members in corpus_sets.items()
             if min_size <= sum(g in encode for g in set(members)) <= max_size]
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in PRERANK_COLUMNS})
    if not names or len(genes) < min_size:
        return empty
    gene_sets = {f"T{i:07d}": sorted({encode[g] for g in corpus_sets[name] if g in encode})
                 for i, name in enumerate(names)}
    ranking = pd.Series(_ranking_values(table), index=[encode[g] for g in genes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gseapy 1.3.1 uses pandas' deprecated inplace keyword
        result = gseapy.prerank(rnk=ranking, gene_sets=gene_sets, permutation_num=permutations, min_size=min_size,
                                max_size=max_size, seed=seed, threads=threads, outdir=None, no_plot=True,
                                verbose=False)
    try:
        frame = result.res2d
    finally:
        logger = getattr(result, "_logger", None)
        if logger is not None:  # gseapy makes one named logger per call
            logging.Logger.manager.loggerDict.pop(logger.name, None)
    if frame is None or frame.empty:
        return empty
    floor = permutation_p_floor(permutations)
    rows = []
    for record in frame.to_dict("records"):
        name = names[int(str(record["Term"])[1:])]
        lead = [decode[t] for t in str(record.get("Lead_genes", "")).split(";") if t in decode]
        rows.append({"name": name, "description": (descriptions or {}).get(name, name),
                     "size": len(gene_sets[str(record["Term"])]), "es": float(record["ES"]),
                     "nes": float(record["NES"]), "p": max(float(record["NOM p-val"]), floor),
                     "fdr": max(float(record["FDR q-val"]), floor),
                     "lead_genes": " ".join(lead)})
    out = pd.DataFrame(rows)
    out = out.assign(_abs=out["nes"].abs()).sort_values(["p", "_abs", "name"], ascending=[True, False, True],
                                                        kind="stable").drop(columns="_abs").reset_index(drop=True)
    return out[PRERANK_COLUMNS] if top is None else out[PRERANK_COLUMNS].head(top).reset_index(drop=True)


@dataclass(frozen=True)
class KnownGeneValidation:
    """How the known positives fare in a ranking. auroc: NaN when none (or all) of them was scored."""

    auroc: float
    n_known: int  # known genes given
    n_known_ranked: int  # of those, genes in the ranking (the positives)
    n_ranked: int
    top_n: int
    hits_top_n: int
    p_top_n: float  # hypergeometric upper tail of hits_top_n
    known_ranks: dict[str, int]  # known gene -> its rank
    p_auroc: float = 1.0  # one-sided rank-sum p that known genes score higher than the others (AUROC > 0.5)

    def sentence(self, what: str = "the known genes") -> str:
        if self.n_known_ranked == 0:
            return f"None of {what} ({self.n_known}) was scored, so the ranking cannot be validated against them."
        auc = "not defined (every ranked gene is known)" if np.isnan(self.auroc) else f"{self.auroc:.3f}"
        return (f"AUROC of {what} = {auc} (rank-sum p = {self.p_auroc:.3g}; {self.n_known_ranked} of "
                f"{self.n_known} ranked among {self.n_ranked:,} genes; 0.5 = random order). Top {self.top_n}: "
                f"{self.hits_top_n} known (hypergeometric p = {self.p_top_n:.3g}).")


def validate_known(table: pd.DataFrame, known: Collection[str], top_n: int = 100) -> KnownGeneValidation:
    """AUROC of `known` genes by ranking_score in a :func:`rank_genes` table, and the hypergeometric p
    that its first `top_n` genes hold that many of them (universe: the ranked genes)."""
    genes = table["gene"].astype(str).to_numpy()
    wanted = {str(g) for g in known}
    positive = np.isin(genes, list(wanted))
    top = min(top_n, len(genes))
    hits = int(positive[:top].sum())
    p = overlap_p_value(hits, top, int(positive.sum()), len(genes)) if len(genes) else 1.0
    ranks = {str(g): int(r) for g, r in zip(genes[positive], table["rank"].to_numpy()[positive])}
    scores = _ranking_values(table)
    p_auroc = 1.0
    if 0 < positive.sum() < len(genes):
        names, _, p_values = mann_whitney_one_vs_rest(scores, positive, "greater")
        p_auroc = float(p_values[list(names).index(True)])
    return KnownGeneValidation(auroc(scores, positive), len(wanted), int(positive.sum()), len(genes), top, hits, p,
                               ranks, p_auroc)


def validate_baselines(table: pd.DataFrame, known: Collection[str], top_n: int = 100) -> dict[str, KnownGeneValidation]:
    """:func:`validate_known` of the same genes ranked by each baseline of :func:`add_baselines` instead of the
    effect: {"mean difference": ..., "expression": ...} (mean difference only when the table has one)."""
    out = {}
    for name, values in (("mean difference", table["mean_difference"].to_numpy(float)),
                         ("expression", -table["expression_rank"].to_numpy(float))):
        finite = np.isfinite(values)
        if not finite.any():
            continue
        values = np.where(finite, values, values[finite].min() - 1.0)  # a gene without a value ranks last
        ranked = pd.DataFrame({"gene": table["gene"].to_numpy(), "effect": values})
        ranked = ranked.sort_values(["effect", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
        ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
        out[name] = validate_known(ranked, known, top_n)
    return out


__all__ = ["COLUMN_HELP", "DIRECTIONS", "EFFECT_SCORES", "EFFECT_TABLE_COLUMNS", "KnownGeneValidation", "PRERANK_COLUMNS", "PRIOR_CELLS",
           "RANK_COLUMNS", "add_baselines", "baseline_agreement", "enrich_top_hits", "prerank_enrichment",
           "rank_against_controls", "rank_genes", "ranking_score", "score_column", "validate_baselines",
           "validate_known"]
