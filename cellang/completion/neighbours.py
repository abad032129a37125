"""What set retrieval finds for a prompt, as features a model can read: the neighbour datastore.

A :class:`Datastore` holds the training sets (and their near-duplicate groups). For one prompt it
finds every set that shares a gene with it and describes each candidate gene by how those neighbours
support it: retrieval scores at several exponents, co-occurrence, how many neighbours hold it (with
at least one and at least two prompt genes), the best containment and Jaccard of a neighbour holding
it, and its frequency in the datastore. ``exclude_group`` leaves one near-duplicate group out, so a
training set can be an example without its own twins in the datastore (leave-group-out), as a test
pathway must be completed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# (alpha, power) of the retrieval variants read as features: |prompt ∩ S|^power / |S|^alpha.
RETRIEVAL_VARIANTS = ((0.0, 1.0), (1.0, 2.0), (1.5, 6.0), (0.5, 3.0), (1.0, 4.0))
CANDIDATES_PER_VARIANT = 100  # top genes of each retrieval variant that become candidates

FEATURES = (
    *(f"retrieval_a{alpha:g}_p{power:g}" for alpha, power in RETRIEVAL_VARIANTS),
    *(f"rank_a{alpha:g}_p{power:g}" for alpha, power in RETRIEVAL_VARIANTS),
    "neighbours_1", "neighbours_2", "best_containment", "best_jaccard", "in_top_1", "in_top_5", "in_top_20",
    "log_frequency", "log_prompt_size", "log_neighbourhood",
)
TOP_NEIGHBOURS = (1, 5, 20)  # the best neighbours (by the shipped retrieval weight) whose votes are counted
SHIPPED_VARIANT = (1.5, 6.0)


@dataclass(frozen=True)
class CandidateFeatures:
    """Candidate gene columns (universe indices) of one prompt, and their (candidates x FEATURES) values."""

    columns: np.ndarray
    values: np.ndarray


class Datastore:
    """Training sets as a sparse (sets x genes) matrix over ``universe``, with their group ids."""

    def __init__(self, gene_sets: Sequence[Sequence[str]], universe: Sequence[str],
                 groups: Sequence[int] | None = None) -> None:
        self.universe = list(universe)
        self.index = {gene: i for i, gene in enumerate(self.universe)}
        rows, cols = [], []
        for row, genes in enumerate(gene_sets):
            for column in sorted({self.index[g] for g in genes if g in self.index}):
                rows.append(row)
                cols.append(column)
        shape = (len(gene_sets), len(self.universe))
        self.members = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        self._by_gene = self.members.tocsc()
        self.sizes = np.asarray(self.members.sum(axis=1)).ravel()
        self.frequency = np.asarray(self.members.sum(axis=0)).ravel()
        self.groups = np.asarray(groups if groups is not None else np.arange(len(gene_sets)), dtype=np.int64)
        if len(self.groups) != len(gene_sets):
            raise ValueError(f"{len(self.groups)} group ids for {len(gene_sets)} sets")

    def columns(self, genes: Sequence[str]) -> np.ndarray:
        """Sorted unique universe columns of ``genes`` (genes outside the universe dropped)."""
        return np.array(sorted({self.index[g] for g in genes if g in self.index}), dtype=np.int64)

    def overlaps(self, columns: np.ndarray, exclude_group: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(set rows, shared gene counts) of the sets sharing a gene with the prompt columns."""
        shared = np.asarray(self._by_gene[:, columns].sum(axis=1)).ravel() if len(columns) else np.zeros(0)
        if exclude_group is not None and len(shared):
            shared[self.groups == exclude_group] = 0
        rows = np.flatnonzero(shared)
        return rows, shared[rows]

    def vote(self, columns: np.ndarray, rows: np.ndarray, shared: np.ndarray, alpha: float, power: float
             ) -> np.ndarray:
        """Set retrieval's normalised vote for every universe gene (0 for the prompt's own): each overlapping set
        (``rows``, sharing ``shared`` genes with the prompt) votes for its genes with weight shared^power / size^alpha."""
        weights = shared.astype(np.float64) ** power / np.maximum(self.sizes[rows], 1.0) ** alpha
        vote = np.asarray(self.members[rows].T @ weights).ravel()
        vote[columns] = 0.0
        total = vote.sum()
        return vote / total if total > 0 else vote

    def retrieval_order(self, columns: np.ndarray, variant: tuple[float, float] | None = None) -> np.ndarray:
        """Universe columns that set retrieval (``variant`` = (alpha, power), default the shipped one) gives a
        vote, best first, the prompt's own left out."""
        rows, shared = self.overlaps(columns)
        if not len(rows):
            return np.zeros(0, np.int64)
        vote = self.vote(columns, rows, shared, *(variant or SHIPPED_VARIANT))
        positive = np.flatnonzero(vote > 0)
        return positive[np.argsort(-vote[positive], kind="stable")]

    def features(self, columns: np.ndarray, exclude_group: int | None = None,
                 per_variant: int = CANDIDATES_PER_VARIANT) -> CandidateFeatures:
        """Candidates (the union of each retrieval variant's top ``per_variant`` non-prompt genes) and
        their features; no candidates when no set shares a gene with the prompt."""
        rows, shared = self.overlaps(columns, exclude_group)
        if not len(rows):
            return CandidateFeatures(np.zeros(0, np.int64), np.zeros((0, len(FEATURES)), np.float32))
        neighbours = self.members[rows]
        sizes = np.maximum(self.sizes[rows], 1.0)
        scores = [self.vote(columns, rows, shared, alpha, power) for alpha, power in RETRIEVAL_VARIANTS]
        picked: set[int] = set()
        for vote in scores:
            positive = np.flatnonzero(vote > 0)
            top = positive[np.argsort(-vote[positive], kind="stable")[:per_variant]]
            picked.update(top.tolist())
        candidates = np.array(sorted(picked), dtype=np.int64)
        if not len(candidates):
            return CandidateFeatures(candidates, np.zeros((0, len(FEATURES)), np.float32))
        block = neighbours[:, candidates].tocsr()  # neighbours x candidates, binary
        n_prompt = max(len(columns), 1)
        containment = shared / n_prompt
        jaccard = shared / (n_prompt + sizes - shared)
        values = [vote[candidates] for vote in scores]
        for vote in scores:  # rank among all genes (1 = best), log-scaled
            order = np.argsort(-vote, kind="stable")
            rank = np.empty(len(vote))
            rank[order] = np.arange(1, len(vote) + 1)
            values.append(np.log(rank[candidates]))
        alpha, power = SHIPPED_VARIANT
        best_first = np.argsort(-(shared.astype(np.float64) ** power / sizes ** alpha), kind="stable")

        def count_where(selected: np.ndarray) -> np.ndarray:  # per candidate: selected neighbours holding it
            return np.asarray(block.T @ selected.astype(np.float64)).ravel()

        in_top = []
        for top in TOP_NEIGHBOURS:
            selected = np.zeros(len(rows))
            selected[best_first[:top]] = 1.0
            in_top.append(count_where(selected))
        by_column = block.tocsc()
        values += [
            count_where(np.ones(len(rows))), count_where(shared >= 2),
            _column_max(by_column, containment), _column_max(by_column, jaccard), *in_top,
            np.log1p(self.frequency[candidates]),
            np.full(len(candidates), np.log(n_prompt)),
            np.full(len(candidates), np.log(len(rows))),
        ]
        return CandidateFeatures(candidates, np.column_stack(values).astype(np.float32))


def _column_max(block: sparse.csc_matrix, row_values: np.ndarray) -> np.ndarray:
    """Per column, the largest ``row_values`` among the rows where ``block`` is nonzero (0 when none)."""
    weighted = sparse.csc_matrix((row_values[block.indices], block.indices, block.indptr), shape=block.shape)
    return weighted.max(axis=0).toarray().ravel()
