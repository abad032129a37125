"""Combinatorial deletion: delete two genes at once in the same cells, beside deleting each alone.

In:  the rank encoder (through a :class:`~cellang.perturbation.engine.Perturber`), the start cells' token
     arrays, the genes to combine (token ids; usually the top hits of a single-gene run), the goal embedding.
Out: one row per (cell, pair) expressed together: the pair's shift and goal shift, each gene's alone, and the
     interaction = pair - (first alone + second alone) of the ranking score (goal shift with a goal, else
     shift): above 0, the two genes together move the cell further than their separate effects add up to.
     :func:`rank_pairs` ranks pairs like genes (rank-sum p, BH q, shrunk mean), with the mean interaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch

from cellang.cells.io import subset_cells
from cellang.perturbation.engine import PerturbError, Perturber, cosine, plan_perturbations
from cellang.perturbation.request import check_request, effective_min_cells
from cellang.perturbation.stats import rank_genes
from cellang.perturbation.workflow import load_rank_encoder, resolve_genes

PAIR_SEPARATOR = "+"
MAX_PAIR_GENES = 30  # 435 pairs: a small combinatorial screen, as Geneformer offers


def pair_rows(cell_tokens: Sequence[np.ndarray], gene_ids: Sequence[int]) -> pd.DataFrame:
    """Every (cell, first gene, second gene) with both genes in the cell's encoding (first < second by token id),
    with their positions."""
    wanted = sorted(set(int(g) for g in gene_ids))
    rows = []
    for row, tokens in enumerate(cell_tokens):
        where = {int(t): p for p, t in enumerate(tokens) if p > 0 and int(t) in wanted}
        for first, second in combinations(sorted(where), 2):
            rows.append((row, first, second, where[first], where[second]))
    return pd.DataFrame(rows, columns=["row", "first", "second", "first_position", "second_position"])


def score_pairs(perturber: Perturber, cell_tokens: Sequence[np.ndarray], gene_ids: Sequence[int],
                goal: torch.Tensor | None) -> pd.DataFrame:
    """The table of the module docstring, with token ids in ``first``/``second`` and the cell's row number."""
    if len(set(gene_ids)) < 2:
        raise PerturbError("a pair screen needs at least two genes")
    if len(set(gene_ids)) > MAX_PAIR_GENES:
        raise PerturbError(f"a pair screen combines at most {MAX_PAIR_GENES} genes "
                           f"({MAX_PAIR_GENES * (MAX_PAIR_GENES - 1) // 2} pairs); "
                           f"got {len(set(gene_ids))}")
    pairs = pair_rows(cell_tokens, gene_ids)
    if pairs.empty:
        raise PerturbError("no cell expresses two of the chosen genes, so there is no pair to delete")
    singles = plan_perturbations(cell_tokens, list(gene_ids), "delete")
    alone = perturber.score(cell_tokens, singles, goal)
    original = perturber.embed(cell_tokens)
    sequences = [np.delete(np.asarray(cell_tokens[r]), [p, q]) for r, p, q in
                 zip(pairs["row"], pairs["first_position"], pairs["second_position"])]
    deleted = perturber.embed(sequences)
    rows = torch.as_tensor(pairs["row"].to_numpy())
    pairs["shift"] = (1.0 - cosine(original[rows], deleted)).numpy()
    if goal is not None:
        goal = goal.float()[None, :]
        pairs["goal_shift"] = (cosine(deleted, goal) - cosine(original[rows], goal)).numpy()
    else:
        pairs["goal_shift"] = np.nan
    score = "goal_shift" if goal is not None else "shift"
    single = dict(zip(zip(singles.rows.tolist(), singles.gene_ids.tolist()), getattr(alone, score).tolist()))
    pairs["first_alone"] = [single[(r, g)] for r, g in zip(pairs["row"], pairs["first"])]
    pairs["second_alone"] = [single[(r, g)] for r, g in zip(pairs["row"], pairs["second"])]
    pairs["interaction"] = pairs[score] - pairs["first_alone"] - pairs["second_alone"]
    return pairs


def rank_pairs(pairs: pd.DataFrame, names: Sequence[str], min_cells: int = 1) -> pd.DataFrame:
    """``pairs`` of :func:`score_pairs` ranked as genes are (:func:`~.stats.rank_genes`, a pair named
    "FIRST+SECOND"), with ``mean_interaction``; ``names[token id]`` gives a gene's name."""
    named = pairs.assign(gene=[f"{names[a]}{PAIR_SEPARATOR}{names[b]}"
                               for a, b in zip(pairs["first"], pairs["second"])])
    ranked = rank_genes(named, min_cells=min_cells)
    interaction = named.groupby("gene")["interaction"].mean()
    ranked.insert(ranked.columns.get_loc("mean_score") + 1, "mean_interaction",
                  interaction.reindex(ranked["gene"]).to_numpy())
    return ranked.rename(columns={"gene": "pair"})


def run_pair_deletions(adata, request, genes: Sequence[str], *, checkpoint_dir=None,  # type: ignore[no-untyped-def]
                       encoder=None, tokenizer=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Delete every pair of ``genes`` in the request's start cells (the same cells, sampled with the same seed, as
    :func:`~.workflow.run_perturbation` perturbs); (per-cell pair scores with gene names, ranked pairs)."""
    start, goal, _ = check_request(adata, request)
    if encoder is None or tokenizer is None:
        encoder, tokenizer = load_rank_encoder(None, checkpoint_dir)
    gene_ids, _, _ = resolve_genes(genes, tokenizer.vocabulary)
    perturber = Perturber(encoder, pooling=request.pooling, device=request.device, precision=request.precision)
    try:
        tokens = tokenizer.tokenize(subset_cells(adata, start)).genes
        goal_embedding = (perturber.embed(tokenizer.tokenize(subset_cells(adata, goal)).genes).mean(0)
                          if goal.size else None)
        pairs = score_pairs(perturber, tokens, gene_ids, goal_embedding)
    finally:
        encoder.to("cpu")
    names = {i: tokenizer.vocabulary.token(i) for i in set(pairs["first"]) | set(pairs["second"])}
    ranked = rank_pairs(pairs, names, min_cells=effective_min_cells(request, int(start.size)))
    cells = np.asarray(adata.obs_names[start].astype(str))
    table = pairs.assign(cell=cells[pairs["row"]], first=[names[g] for g in pairs["first"]],
                         second=[names[g] for g in pairs["second"]]).drop(columns=["row"])
    return table, ranked


__all__ = ["MAX_PAIR_GENES", "PAIR_SEPARATOR", "pair_rows", "rank_pairs", "run_pair_deletions", "score_pairs"]
