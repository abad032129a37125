"""Quality control of the pathway corpus, one pure function per step, applied in this order:

1. harmonise identifiers to approved symbols;
2. drop genes seen in fewer than ``min_gene_count`` sets of the corpus;
3. keep sets whose identifiers still map at least ``min_fraction_mapped`` (after steps 1 and 2);
4. keep sets of ``min_size`` to ``max_size`` genes;
5. remove identical sets (the first in source order wins);
6. group near-duplicates (Jaccard >= ``near_duplicate_jaccard``, transitive);
7. split train/test by group, so no test set has a near-twin in training (95/5, or more when 5%
   is smaller than the benchmark sample);
8. draw a fixed benchmark sample from the test part.

With a frozen benchmark (:mod:`.frozen`), steps 7 and 8 are replaced: the benchmark pathways keep
their frozen genes (:func:`pin_genes`, right after step 2), sets of sources added after the freeze
that resemble a benchmark pathway are kept out (:func:`keep_apart_from`), and the test split is the
benchmark with no other member of its near-duplicate groups (:func:`split_around_benchmark`).

Each step keeps the input order, so the result depends only on the inputs and the seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from cellang.genes import GeneResolver


@dataclass(frozen=True)
class QcParams:
    min_gene_count: int = 5
    min_fraction_mapped: float = 0.9
    min_size: int = 5
    max_size: int = 500
    near_duplicate_jaccard: float = 0.7
    test_fraction: float = 0.05
    benchmark_size: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class CandidateSet:
    """A gene set moving through QC.

    ``identifier_symbols`` holds, for each distinct identifier the source gave, the approved symbol it
    maps to (None when it maps to none); several identifiers may name the same gene.
    """

    name: str
    description: str
    source: str
    genes: tuple[str, ...]
    identifier_symbols: tuple[str | None, ...]

    @property
    def n_identifiers(self) -> int:
        return len(self.identifier_symbols)

    @property
    def fraction_mapped(self) -> float:
        """Share of the source's identifiers whose gene is still in the set."""
        if not self.identifier_symbols:
            return 0.0
        kept = set(self.genes)
        return sum(symbol in kept for symbol in self.identifier_symbols) / len(self.identifier_symbols)


def harmonise_sets(raw: Sequence[tuple[str, str, str, Sequence[str]]],
                   resolver: GeneResolver) -> list[CandidateSet]:
    """(name, description, source, identifiers) -> sets of approved symbols, sorted."""
    result = []
    for name, description, source, identifiers in raw:
        distinct = list(dict.fromkeys(i.strip() for i in identifiers if i.strip()))
        mapped = tuple(resolver.resolve(identifier).symbol for identifier in distinct)
        genes = tuple(sorted({symbol for symbol in mapped if symbol}))
        result.append(CandidateSet(name, description, source, genes, mapped))
    return result


def drop_rare_genes(sets: Sequence[CandidateSet], min_count: int) -> list[CandidateSet]:
    """Remove genes that occur in fewer than ``min_count`` sets of ``sets``."""
    counts = Counter(gene for s in sets for gene in s.genes)
    return [replace(s, genes=tuple(g for g in s.genes if counts[g] >= min_count)) for s in sets]


def keep_well_mapped(sets: Sequence[CandidateSet], min_fraction: float) -> list[CandidateSet]:
    return [s for s in sets if s.n_identifiers and s.fraction_mapped >= min_fraction]


def keep_sizes(sets: Sequence[CandidateSet], min_size: int, max_size: int) -> list[CandidateSet]:
    return [s for s in sets if min_size <= len(s.genes) <= max_size]


def remove_identical(sets: Sequence[CandidateSet]) -> list[CandidateSet]:
    seen: set[tuple[str, ...]] = set()
    kept = []
    for s in sets:
        if s.genes not in seen:
            seen.add(s.genes)
            kept.append(s)
    return kept


def _membership_matrix(gene_sets: Sequence[Sequence[str]]) -> sparse.csr_matrix:
    index: dict[str, int] = {}
    rows, cols = [], []
    for row, genes in enumerate(gene_sets):
        for gene in genes:
            rows.append(row)
            cols.append(index.setdefault(gene, len(index)))
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(gene_sets), max(len(index), 1)))


def near_duplicate_pairs(gene_sets: Sequence[Sequence[str]], threshold: float,
                         block: int = 1024) -> list[tuple[int, int]]:
    """All pairs (i < j) with Jaccard(set_i, set_j) >= threshold, from sparse block products."""
    matrix = _membership_matrix(gene_sets)
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    transposed = matrix.T.tocsc()
    pairs: list[tuple[int, int]] = []
    for start in range(0, matrix.shape[0], block):
        stop = min(start + block, matrix.shape[0])
        shared = (matrix[start:stop] @ transposed).toarray()
        union = sizes[start:stop, None] + sizes[None, :] - shared
        # compare with a small tolerance so that exact thresholds (e.g. 7/10) are not lost to rounding
        rows, cols = np.nonzero((shared > 0) & (shared >= threshold * union - 1e-6))
        rows += start
        upper = cols > rows
        pairs.extend(zip(rows[upper].tolist(), cols[upper].tolist()))
    return pairs


def max_jaccard_to(reference: Sequence[Sequence[str]], queries: Sequence[Sequence[str]],
                   block: int = 1024) -> np.ndarray:
    """For each query set, its highest Jaccard similarity to any reference set (0 when none share a gene)."""
    matrix = _membership_matrix([*reference, *queries])
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    reference_part = matrix[: len(reference)].T.tocsc()
    best = np.zeros(len(queries))
    for start in range(0, len(queries), block):
        rows = slice(len(reference) + start, len(reference) + min(start + block, len(queries)))
        shared = (matrix[rows] @ reference_part).toarray()
        union = sizes[rows, None] + sizes[None, : len(reference)] - shared
        with np.errstate(invalid="ignore", divide="ignore"):
            jaccard = np.where(union > 0, shared / union, 0.0)
        best[start : start + jaccard.shape[0]] = jaccard.max(axis=1) if len(reference) else 0.0
    return best


def group_near_duplicates(gene_sets: Sequence[Sequence[str]], threshold: float) -> list[int]:
    """Group id per set: connected components of the near-duplicate graph, numbered by first member."""
    parent = list(range(len(gene_sets)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in near_duplicate_pairs(gene_sets, threshold):
        root_i, root_j = find(i), find(j)
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    numbering: dict[int, int] = {}
    return [numbering.setdefault(find(i), len(numbering)) for i in range(len(gene_sets))]


def split_by_group(groups: Sequence[int], test_fraction: float, seed: int, min_test: int = 0) -> list[str]:
    """'train'/'test' per set; whole groups go to one side.

    The test side gets max(round(fraction * n), min_test) sets when group sizes allow (groups that
    would overshoot are skipped); ``min_test`` lets a small corpus still hold the whole benchmark.
    """
    sizes = Counter(groups)
    target = min(max(round(test_fraction * len(groups)), min_test), len(groups))
    order = np.random.default_rng(seed).permutation(sorted(sizes))
    test_groups: set[int] = set()
    filled = 0
    for group in order.tolist():
        if filled >= target:
            break
        if filled + sizes[group] <= target:
            test_groups.add(group)
            filled += sizes[group]
    return ["test" if g in test_groups else "train" for g in groups]


def benchmark_sample(names: Sequence[str], splits: Sequence[str], size: int, seed: int) -> set[str]:
    """A fixed sample of ``size`` test-set names (all of them when the test part is smaller)."""
    test_names = sorted(n for n, s in zip(names, splits) if s == "test")
    if len(test_names) <= size:
        return set(test_names)
    chosen = np.random.default_rng(seed + 1).choice(len(test_names), size=size, replace=False)
    return {test_names[i] for i in chosen.tolist()}


def pin_genes(sets: Sequence[CandidateSet], pinned: dict[str, tuple[str, ...]]) -> list[CandidateSet]:
    """Sets named in ``pinned`` get exactly those genes (a frozen benchmark pathway stays as frozen)."""
    return [replace(s, genes=pinned[s.name]) if s.name in pinned else s for s in sets]


def keep_apart_from(sets: Sequence[CandidateSet], reference: Sequence[Sequence[str]], threshold: float,
                    subject_sources: Collection[str]) -> tuple[list[CandidateSet], list[CandidateSet]]:
    """(kept, kept out): sets of ``subject_sources`` whose Jaccard to any ``reference`` set reaches
    ``threshold`` are kept out; every other set is kept, in order."""
    subject = [i for i, s in enumerate(sets) if s.source in subject_sources]
    similarity = max_jaccard_to(reference, [sets[i].genes for i in subject]) if subject else np.zeros(0)
    out = {i for i, value in zip(subject, similarity.tolist()) if value >= threshold - 1e-9}
    return ([s for i, s in enumerate(sets) if i not in out], [s for i, s in enumerate(sets) if i in out])


def split_around_benchmark(sets: Sequence[CandidateSet], benchmark: Collection[str],
                           threshold: float) -> tuple[list[CandidateSet], list[int], list[CandidateSet]]:
    """(sets, groups, kept out) with the benchmark pathways as the whole test side.

    Any other set that falls into a benchmark pathway's near-duplicate group is kept out, and the groups
    are recomputed until no benchmark group holds another set (removing a set can split a group).
    """
    kept = list(sets)
    dropped: list[CandidateSet] = []
    while True:
        groups = group_near_duplicates([s.genes for s in kept], threshold)
        benchmark_groups = {g for s, g in zip(kept, groups) if s.name in benchmark}
        intruders = [i for i, (s, g) in enumerate(zip(kept, groups)) if g in benchmark_groups
                     and s.name not in benchmark]
        if not intruders:
            return kept, groups, dropped
        dropped.extend(kept[i] for i in intruders)
        out = set(intruders)
        kept = [s for i, s in enumerate(kept) if i not in out]
