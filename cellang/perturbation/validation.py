"""Is an in-silico deletion ranking better than trivial baselines? Metrics, truth sets and baselines.

Pure, deterministic functions (a seed wherever there is chance); no model runs here. The script
``cellang benchmark deletion-validity`` feeds them the engine's scores and the same cells.

Metrics
* :func:`ranking_check`: a per-gene score (gene -> score, higher = "deleting it does more") against a
  set of true genes: AUROC (ties count one half), one-sided rank-sum p, hits among the top N.
* :func:`random_auroc_band`: the range of AUROCs a random ranking gives for the same counts.

Per-gene scores
* :func:`aggregate_pairs`: the engine's per-(cell, gene) scores as one score per gene: the mean over
  the cells whose encoding holds the gene (the workflow's ranking), or over all scored cells with 0
  where the gene is not in a cell's encoding (deleting an absent gene moves nothing).
* Baselines, from the same cells: :func:`expression_rank_scores` (where the gene sits in the start
  cells' rank encodings), :func:`mean_difference_scores` (mean log-normalised expression, start minus
  goal: the sign that moves start toward the goal when the gene is deleted), :func:`random_scores`.

Truth
* :func:`de_truth`: genes higher in the start than in the goal state by scanpy's Wilcoxon
  ``rank_genes_groups`` (BH-adjusted p and log2 fold change thresholds), to be run on cells that were
  not scored (:func:`split_halves`).
* :func:`derive_markers`: a cell type's markers from rank_genes_groups tables of other datasets.
* :func:`matched_controls`: for each marker gene, a random non-marker gene of similar mean expression.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellang.stats import auroc, mann_whitney_one_vs_rest

MAX_PADJ = 0.05  # de_truth / derive_markers: Benjamini-Hochberg adjusted p below this
MIN_LOGFC = 0.5  # de_truth: log2 fold change (scanpy's, on log1p data) above this
MARKER_LOGFC = 1.0  # derive_markers: a stricter fold change, markers should be specific


@dataclass(frozen=True)
class RankingCheck:
    """How a per-gene score ranks the true genes. auroc NaN when no true gene (or only true genes) was
    scored; p: one-sided rank-sum p that true genes score higher (1.0 when undefined)."""

    auroc: float
    p: float
    n_genes: int  # genes scored (the universe)
    n_true: int  # true genes given
    n_true_scored: int  # of those, genes in the universe (the positives)
    top_n: int
    hits_top_n: int  # positives among the top_n genes (ties broken by gene name)

    def as_dict(self) -> dict[str, float | int]:
        return {"auroc": self.auroc, "p": self.p, "n_genes": self.n_genes, "n_true": self.n_true,
                "n_true_scored": self.n_true_scored, "top_n": self.top_n, "hits_top_n": self.hits_top_n}


def _series(scores: Mapping[str, float] | pd.Series) -> pd.Series:
    series = scores if isinstance(scores, pd.Series) else pd.Series(dict(scores), dtype=float)
    series = series.astype(float)
    series.index = series.index.astype(str)
    return series[series.notna()]


def ranking_check(scores: Mapping[str, float] | pd.Series, true_genes: Collection[str],
                  top_n: int = 50) -> RankingCheck:
    """AUROC of `true_genes` among the genes of `scores` (gene -> score, higher first; NaN scores are
    dropped), its one-sided rank-sum p, and how many true genes are among the first `top_n` (order:
    score descending, then gene name). True genes without a score are not positives (n_true_scored)."""
    series = _series(scores)
    wanted = {str(g) for g in true_genes}
    positive = series.index.isin(list(wanted))
    values = series.to_numpy(float)
    p = 1.0
    if 0 < positive.sum() < len(series):
        names, _, p_values = mann_whitney_one_vs_rest(values, positive, "greater")
        p = float(p_values[list(names).index(True)])
    order = pd.DataFrame({"gene": series.index, "score": values, "positive": positive}).sort_values(
        ["score", "gene"], ascending=[False, True], kind="stable")
    top = min(top_n, len(series))
    return RankingCheck(auroc(values, positive), p, len(series), len(wanted), int(positive.sum()), top,
                        int(order["positive"].to_numpy()[:top].sum()))


def random_auroc_band(counts: Sequence[tuple[int, int]], draws: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """(low, high): the central `level` range of the AUROC that random scores give, for rankings with
    these (positives, negatives) counts; with several rankings, of the mean of their AUROCs (as a row
    averaging folds reports). Seeded draws, no ties. An AUROC inside it is what a random order gives."""
    counts = [(int(p), int(n)) for p, n in counts]
    if not counts or any(p < 1 or n < 1 for p, n in counts):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    labels = []
    for n_positive, n_negative in counts:
        mask = np.zeros(n_positive + n_negative, dtype=bool)
        mask[:n_positive] = True
        labels.append(mask)
    values = [np.mean([auroc(rng.random(mask.size), mask) for mask in labels]) for _ in range(draws)]
    tail = (1.0 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def aggregate_pairs(genes: Sequence[str], values: Sequence[float], cells: Sequence[object], n_cells: int,
                    absent_as_zero: bool = False) -> pd.Series:
    """One score per gene from per-(cell, gene) scores (``genes[k]`` deleted in ``cells[k]``, score
    ``values[k]``; NaN values are dropped). absent_as_zero False: the mean over the cells in which the gene
    was scored (the workflow's ``rank_genes`` mean); True: the sum divided by ``n_cells`` (the cells
    scored), i.e. 0 for a cell whose encoding lacks the gene. Sorted by gene name."""
    frame = pd.DataFrame({"gene": np.asarray(genes, dtype=str), "cell": np.asarray(cells, dtype=object),
                          "value": np.asarray(values, dtype=float)})
    frame = frame[frame["value"].notna()]
    if frame.duplicated(["gene", "cell"]).any():
        raise ValueError("a (cell, gene) pair is scored twice")
    grouped = frame.groupby("gene", sort=True)["value"]
    if absent_as_zero:
        if len(frame) and n_cells < frame.groupby("gene")["cell"].nunique().max():
            raise ValueError("n_cells is smaller than the cells a gene was scored in")
        return grouped.sum() / float(n_cells)
    return grouped.mean()


def expression_rank_scores(cell_tokens: Sequence[np.ndarray], token_name: Callable[[int], str] | Mapping[int, str],
                           skip_first: bool = True) -> pd.Series:
    """Baseline: how high each gene sits in the cells' rank encodings (what the model reads).

    cell_tokens: one token array per cell, ``<cls>`` first when skip_first (the rank tokeniser's output).
    A gene at position p (1 = top) of a cell holding L genes scores (L - p + 1) / L in that cell (1 for
    the top gene, 1/L for the last) and 0 where absent; the score is the mean over all cells. Only genes
    present in at least one cell are returned, sorted by name."""
    name = token_name.__getitem__ if isinstance(token_name, Mapping) else token_name
    totals: dict[int, float] = {}
    for tokens in cell_tokens:
        genes = np.asarray(tokens, dtype=np.int64)[1 if skip_first else 0:]
        length = len(genes)
        for position, token in enumerate(genes.tolist()):
            totals[token] = totals.get(token, 0.0) + (length - position) / length
    n = max(len(cell_tokens), 1)
    series = pd.Series({name(int(t)): v / n for t, v in totals.items()}, dtype=float)
    return series.groupby(level=0).sum().sort_index()


def _dense_rows(matrix: np.ndarray | sp.spmatrix, rows: np.ndarray) -> np.ndarray:
    chosen = matrix[np.asarray(rows)]
    return np.asarray(chosen.toarray() if sp.issparse(chosen) else chosen, dtype=float)


def mean_difference_scores(expression: np.ndarray | sp.spmatrix, genes: Sequence[str], start: np.ndarray,
                           goal: np.ndarray) -> pd.Series:
    """Baseline: mean expression in the `start` cells minus the mean in the `goal` cells (row indices or
    boolean masks of `expression`, cells x genes, log-normalised). Positive = higher in start: deleting
    it moves a start cell toward the goal. Indexed by gene (duplicate names averaged)."""
    start_rows = np.flatnonzero(start) if np.asarray(start).dtype == bool else np.asarray(start)
    goal_rows = np.flatnonzero(goal) if np.asarray(goal).dtype == bool else np.asarray(goal)
    if start_rows.size == 0 or goal_rows.size == 0:
        raise ValueError("mean_difference_scores needs start and goal cells")
    difference = _dense_rows(expression, start_rows).mean(0) - _dense_rows(expression, goal_rows).mean(0)
    return pd.Series(difference, index=pd.Index(np.asarray(genes, dtype=str))).groupby(level=0).mean()


def added_information(model: pd.Series, baseline: pd.Series, truth: Collection[str]) -> dict[str, float]:
    """Does the model add information beyond a baseline? A logistic regression of "is a true gene" on both
    scores (each standardised, genes scored by both), over genes whose truth comes from cells never scored:
    {"coef": the model's coefficient, "p": its Wald p (two-sided), "baseline_coef", "genes", "positives"}; NaN
    when there are fewer than 10 genes or no positives and negatives both."""
    import statsmodels.api as sm

    frame = pd.DataFrame({"model": _series(model), "baseline": _series(baseline)}).dropna()
    frame["true"] = frame.index.isin({str(g) for g in truth}).astype(float)
    out = {"coef": float("nan"), "p": float("nan"), "baseline_coef": float("nan"), "genes": int(len(frame)),
           "positives": int(frame["true"].sum())}
    if len(frame) < 10 or frame["true"].nunique() < 2:
        return out
    features = (frame[["model", "baseline"]] - frame[["model", "baseline"]].mean()) / frame[["model", "baseline"]].std()
    try:
        fit = sm.Logit(frame["true"], sm.add_constant(features.fillna(0.0))).fit(disp=0, maxiter=200)
    except Exception:  # perfect separation or a singular design: the question has no answer on these genes
        return out
    return {**out, "coef": float(fit.params["model"]), "p": float(fit.pvalues["model"]),
            "baseline_coef": float(fit.params["baseline"])}


def random_scores(genes: Collection[str], seed: int = 0) -> pd.Series:
    """Baseline: a uniform random score per gene (genes sorted by name first, so the result depends only
    on the set of genes and the seed)."""
    names = sorted({str(g) for g in genes})
    return pd.Series(np.random.default_rng(seed).random(len(names)), index=pd.Index(names, dtype=object))


def normalised_expression(adata) -> sp.csr_matrix:  # type: ignore[no-untyped-def]
    """log1p of each cell scaled to 10,000 (counts, log1p, FPKM and TPM alike: the values are first put on
    a linear scale as the tokenisers do). Cells x genes CSR, float64."""
    from cellang.preprocess import log1p, normalise_total
    from cellang.tokenizers.cells import linear_expression

    matrix, _ = linear_expression(adata)
    return log1p(normalise_total(matrix))


def atlas_expression(name: str) -> tuple:
    """(AnnData, :func:`normalised_expression`, gene names as a str array) of the atlas dataset ``name``."""
    from cellang.cells import load_atlas_dataset

    adata = load_atlas_dataset(name)
    return adata, normalised_expression(adata), adata.var_names.astype(str).to_numpy()


def split_halves(n_cells: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n_cells) into two sorted halves (the first gets the odd one)."""
    order = np.random.default_rng(seed).permutation(n_cells)
    cut = (n_cells + 1) // 2
    return np.sort(order[:cut]), np.sort(order[cut:])


def rank_genes_groups_table(expression: np.ndarray | sp.spmatrix, genes: Sequence[str], group: np.ndarray,
                            reference: np.ndarray | None = None) -> pd.DataFrame:
    """scanpy ``rank_genes_groups`` (Wilcoxon, BH) of the `group` cells (boolean mask) against the
    `reference` cells (mask; None = every other cell). expression: cells x genes, log-normalised.
    Columns: gene, score (z), logfc (log2), padj; one row per gene, best score first."""
    import warnings

    import anndata as ad
    import scanpy as sc

    group = np.asarray(group, dtype=bool)
    reference = ~group if reference is None else np.asarray(reference, dtype=bool)
    if (group & reference).any():
        raise ValueError("a cell is in both the group and the reference")
    if group.sum() < 2 or reference.sum() < 2:
        raise ValueError(f"rank_genes_groups needs at least 2 cells on each side (got {group.sum()} and "
                         f"{reference.sum()})")
    rows = np.flatnonzero(group | reference)
    matrix = expression[rows]
    matrix = sp.csr_matrix(matrix, dtype=np.float32) if sp.issparse(matrix) else np.asarray(matrix, np.float32)
    names = pd.Index(np.asarray(genes, dtype=str))
    cells = ad.AnnData(matrix, obs=pd.DataFrame({"side": pd.Categorical(
        np.where(group[rows], "group", "reference"), categories=["group", "reference"])},
        index=[str(i) for i in rows]), var=pd.DataFrame(index=names))
    if not cells.var_names.is_unique:
        cells.var_names_make_unique()
    with warnings.catch_warnings():
        # genes zero in every cell get a NaN score (0/0; kept out by the thresholds), and scanpy 1.11 uses a
        # pandas keyword that pandas 3 deprecates
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        sc.tl.rank_genes_groups(cells, "side", groups=["group"], reference="reference", method="wilcoxon",
                                use_raw=False, tie_correct=True)
        frame = sc.get.rank_genes_groups_df(cells, group="group")
    frame = frame.rename(columns={"names": "gene", "scores": "score", "logfoldchanges": "logfc",
                                  "pvals_adj": "padj"})
    frame["logfc"] = frame["logfc"].fillna(0.0)
    return frame[["gene", "score", "logfc", "padj"]].reset_index(drop=True)


def de_truth(expression: np.ndarray | sp.spmatrix, genes: Sequence[str], start: np.ndarray, goal: np.ndarray, *,
             max_padj: float = MAX_PADJ, min_logfc: float = MIN_LOGFC) -> list[str]:
    """Genes higher in the `start` cells than in the `goal` cells (boolean masks of `expression`, cells x
    genes, log-normalised): scanpy Wilcoxon rank_genes_groups start vs goal, BH-adjusted p < max_padj and
    log2 fold change > min_logfc. Deleting such a gene should move a start cell toward the goal. Run it on
    cells that were not scored. Best score first."""
    table = rank_genes_groups_table(expression, genes, start, goal)
    chosen = table[(table["padj"] < max_padj) & (table["logfc"] > min_logfc) & (table["score"] > 0)]
    return chosen["gene"].astype(str).tolist()


def derive_markers(tables: Sequence[pd.DataFrame], *, max_padj: float = MAX_PADJ, min_logfc: float = MARKER_LOGFC,
                   top: int = 30) -> list[str]:
    """A cell type's markers from :func:`rank_genes_groups_table` tables of that type against the other
    cells of each of several datasets: genes significant (padj < max_padj, logfc > min_logfc) in every
    table that measured them and measured in at least one, the `top` with the highest mean score
    (ties by name)."""
    if not tables:
        return []
    measured = pd.concat([t.assign(source=i) for i, t in enumerate(tables)], ignore_index=True)
    measured["passes"] = (measured["padj"] < max_padj) & (measured["logfc"] > min_logfc)
    by_gene = measured.groupby("gene").agg(passes=("passes", "all"), score=("score", "mean"))
    chosen = by_gene[by_gene["passes"]].reset_index().sort_values(["score", "gene"], ascending=[False, True],
                                                                  kind="stable")
    return chosen["gene"].astype(str).head(top).tolist()


def matched_controls(mean_expression: Mapping[str, float] | pd.Series, markers: Collection[str], *,
                     exclude: Collection[str] = (), neighbours: int = 10, seed: int = 0) -> dict[str, str]:
    """For each marker gene (in `mean_expression`: gene -> mean expression in the cells tested), a control:
    one of the `neighbours` non-marker genes nearest to it in mean expression, drawn at random (seeded),
    each control used once. Candidates: every gene of `mean_expression` that is neither a marker nor in
    `exclude`. Markers are matched in order of their name, so the result depends only on the inputs and
    the seed. Markers missing from `mean_expression` get no control; ValueError when candidates run out."""
    series = _series(mean_expression)
    series = series.groupby(level=0).mean()
    marker_set = {str(g) for g in markers}
    banned = marker_set | {str(g) for g in exclude}
    pool = series[~series.index.isin(list(banned))].sort_index()
    names, levels = pool.index.to_numpy(dtype=object), pool.to_numpy(float)
    free = np.ones(len(names), dtype=bool)
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for marker in sorted(marker_set & set(series.index)):
        available = np.flatnonzero(free)
        if available.size == 0:
            raise ValueError(f"no control gene left for {marker}: give more candidate genes")
        distance = np.abs(levels[available] - float(series[marker]))
        nearest = available[np.lexsort((names[available].astype(str), distance))[:max(1, neighbours)]]
        pick = int(rng.choice(nearest))
        free[pick] = False
        out[marker] = str(names[pick])
    return out


__all__ = ["MARKER_LOGFC", "MAX_PADJ", "MIN_LOGFC", "RankingCheck", "added_information", "aggregate_pairs", "de_truth",
           "derive_markers", "expression_rank_scores", "matched_controls", "mean_difference_scores",
           "normalised_expression", "random_auroc_band", "random_scores", "rank_genes_groups_table", "ranking_check",
           "split_halves"]
