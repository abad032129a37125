"""Tests for cellang.corpus.qc: each QC step on small hand-made inputs with known answers."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest

from cellang.corpus import qc
from cellang.corpus.qc import CandidateSet
from cellang.genes import GeneRecord, GeneResolver


def _gene(symbol: str, entrez: str = "", previous: tuple[str, ...] = (), alias: tuple[str, ...] = ()) -> GeneRecord:
    return GeneRecord(symbol, "", entrez, "", "gene with protein product", "", previous, alias)


@pytest.fixture(scope="module")
def resolver() -> GeneResolver:
    return GeneResolver([
        _gene("AAA", entrez="1"),
        _gene("BBB", entrez="2", previous=("OLDB",)),
        _gene("CCC", entrez="3", alias=("SEE",)),
        _gene("X1", alias=("AMBIG",)),
        _gene("X2", alias=("AMBIG",)),
    ])


def _cs(name: str, genes: tuple[str, ...] | str, n_identifiers: int | None = None, source: str = "src") -> CandidateSet:
    genes = tuple(genes.split()) if isinstance(genes, str) else genes
    unmapped = (None,) * ((len(genes) if n_identifiers is None else n_identifiers) - len(genes))
    return CandidateSet(name, f"{name} description", source, genes, genes + unmapped)


# ------------------------------------------------------------------------------------------------
# step 1: harmonise
# ------------------------------------------------------------------------------------------------


def test_harmonise_sets(resolver: GeneResolver) -> None:
    raw = [
        ("s1", "first", "srcA", ["CCC", "1", "AAA", "OLDB", "NOPE", "AMBIG", "NOPE", " SEE ", "", "  ", "bbb"]),
        ("s2", "second", "srcB", ("NOPE1", "NOPE2")),
        ("s3", "third", "srcB", []),
        ("s4", "fourth", "srcA", ["2", "BBB", "BBB "]),
    ]
    s1, s2, s3, s4 = qc.harmonise_sets(raw, resolver)
    assert (s1.name, s1.description, s1.source) == ("s1", "first", "srcA")
    # sorted approved symbols, each once; unmappable and ambiguous identifiers give nothing
    assert s1.genes == ("AAA", "BBB", "CCC")
    # distinct non-blank identifiers after stripping: CCC 1 AAA OLDB NOPE AMBIG SEE bbb
    assert s1.n_identifiers == 8
    assert (s2.genes, s2.n_identifiers, s2.fraction_mapped) == ((), 2, 0.0)
    assert (s3.genes, s3.n_identifiers, s3.fraction_mapped) == ((), 0, 0.0)
    assert (s4.genes, s4.n_identifiers) == (("BBB",), 2)  # "BBB " strips to "BBB": counted once


def test_synonyms_of_one_gene_all_count_as_mapped(resolver: GeneResolver) -> None:
    (candidate,) = qc.harmonise_sets([("s", "d", "x", ["BBB", "OLDB", "2", "bbb"])], resolver)
    assert candidate.genes == ("BBB",)
    assert (candidate.n_identifiers, candidate.fraction_mapped) == (4, 1.0)


def test_candidate_fraction_mapped() -> None:
    assert _cs("a", "G1 G2 G3", n_identifiers=4).fraction_mapped == 0.75
    assert _cs("b", (), n_identifiers=0).fraction_mapped == 0.0


# ------------------------------------------------------------------------------------------------
# steps 2-5
# ------------------------------------------------------------------------------------------------


def test_drop_rare_genes_threshold_is_inclusive() -> None:
    sets = [
        _cs("a", "KEEP3 TWO ONE", n_identifiers=7),
        _cs("b", "KEEP3 TWO"),
        _cs("c", "KEEP3 KEEP3B"),
        _cs("d", "KEEP3B ZED"),
        _cs("e", "KEEP3B"),
    ]
    result = qc.drop_rare_genes(sets, min_count=3)
    assert [s.genes for s in result] == [("KEEP3",), ("KEEP3",), ("KEEP3", "KEEP3B"), ("KEEP3B",), ("KEEP3B",)]
    assert [s.name for s in result] == ["a", "b", "c", "d", "e"]
    assert result[0].n_identifiers == 7  # identifier count unchanged, so the mapped fraction drops
    assert [s.genes for s in qc.drop_rare_genes(sets, 2)][0] == ("KEEP3", "TWO")
    assert qc.drop_rare_genes(sets, 1) == sets


def test_keep_well_mapped_at_exactly_the_threshold() -> None:
    sets = [
        _cs("exact", tuple(f"G{i}" for i in range(9)), n_identifiers=10),  # 0.9
        _cs("below", tuple(f"G{i}" for i in range(8)), n_identifiers=9),  # 0.888...
        _cs("exact2", tuple(f"G{i}" for i in range(18)), n_identifiers=20),  # 0.9
        _cs("full", "G1 G2"),
        _cs("empty", (), n_identifiers=0),
        _cs("none", (), n_identifiers=3),
    ]
    assert [s.name for s in qc.keep_well_mapped(sets, 0.9)] == ["exact", "exact2", "full"]
    assert [s.name for s in qc.keep_well_mapped(sets, 0.0)] == ["exact", "below", "exact2", "full", "none"]


def test_keep_sizes_bounds_inclusive() -> None:
    sets = [_cs(f"n{n}", tuple(f"G{i}" for i in range(n))) for n in (6, 1, 2, 3, 4, 5, 0)]
    assert [s.name for s in qc.keep_sizes(sets, 2, 5)] == ["n2", "n3", "n4", "n5"]
    assert [s.name for s in qc.keep_sizes(sets, 3, 3)] == ["n3"]


def test_remove_identical_keeps_the_first() -> None:
    sets = [
        _cs("first", "A B C", source="s1"),
        _cs("other", "A B"),
        _cs("copy", "A B C", source="s2"),
        _cs("other_copy", "A B"),
        _cs("last", "C"),
    ]
    kept = qc.remove_identical(sets)
    assert [s.name for s in kept] == ["first", "other", "last"]
    assert kept[0].source == "s1"


# ------------------------------------------------------------------------------------------------
# step 6: near-duplicates
# ------------------------------------------------------------------------------------------------


def _brute_force_pairs(gene_sets: list[tuple[str, ...]], threshold: Fraction) -> set[tuple[int, int]]:
    found = set()
    for i, j in combinations(range(len(gene_sets)), 2):
        a, b = set(gene_sets[i]), set(gene_sets[j])
        if Fraction(len(a & b), len(a | b)) >= threshold:
            found.add((i, j))
    return found


def _random_sets(seed: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(70):
        universe = int(rng.integers(8, 40))  # small universes make high-Jaccard pairs common
        size = int(rng.integers(1, min(universe, 30) + 1))
        sets.append(tuple(f"G{g}" for g in sorted(rng.choice(universe, size=size, replace=False).tolist())))
    # planted pairs at and around the threshold: 7/10 exactly, 9/13 just below, 14/20 exactly
    shared = tuple(f"P{i}" for i in range(7))
    sets += [shared + ("P7", "P8"), shared + ("P9",)]  # |A & B| = 7, |A | B| = 10
    below = tuple(f"Q{i}" for i in range(9))
    sets += [below + ("Q9", "Q10"), below + ("Q11", "Q12")]  # 9/13
    big = tuple(f"R{i}" for i in range(14))
    sets += [big + tuple(f"R{i}" for i in range(14, 17)), big + tuple(f"R{i}" for i in range(17, 20))]  # 14/20
    sets += [sets[3], sets[10]]  # identical copies: Jaccard 1
    return sets


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [1, 7, 16, 1024])
def test_near_duplicate_pairs_match_brute_force(seed: int, block: int) -> None:
    sets = _random_sets(seed)
    assert len(sets) > 2 * block or block >= len(sets)
    expected = _brute_force_pairs(sets, Fraction(7, 10))
    pairs = qc.near_duplicate_pairs(sets, 0.7, block=block)
    assert len(pairs) == len(set(pairs))
    assert all(i < j for i, j in pairs)
    assert set(pairs) == expected
    n = len(sets)
    assert (n - 8, n - 7) in expected  # the exact 7/10 pair is found
    assert (n - 6, n - 5) not in expected  # 9/13 is not
    assert (n - 4, n - 3) in expected  # 14/20
    assert len(expected) > 10  # the random part contributes pairs too


def test_near_duplicate_pairs_other_thresholds() -> None:
    sets = _random_sets(5)
    for threshold in (Fraction(1, 2), Fraction(9, 10), Fraction(1)):
        assert set(qc.near_duplicate_pairs(sets, float(threshold), block=9)) == _brute_force_pairs(sets, threshold)


def test_group_near_duplicates_is_transitive() -> None:
    a = tuple(f"G{i}" for i in range(0, 10))
    b = tuple(f"G{i}" for i in range(1, 11))  # J(a, b) = 9/11
    c = tuple(f"G{i}" for i in range(2, 12))  # J(b, c) = 9/11, J(a, c) = 8/12 < 0.7
    d = tuple(f"H{i}" for i in range(10))
    e = tuple(f"K{i}" for i in range(10))
    sets = [d, a, e, c, b, d]
    pairs = set(qc.near_duplicate_pairs(sets, 0.7))
    assert (1, 3) not in pairs  # a and c are not near-duplicates themselves...
    assert qc.group_near_duplicates(sets, 0.7) == [0, 1, 2, 1, 1, 0]  # ...but share a group through b


def test_group_near_duplicates_chain_through_later_sets() -> None:
    # a chain whose link is found only after both ends are grouped separately
    chain = [tuple(f"G{i}" for i in range(k, k + 10)) for k in range(6)]  # each ~ its neighbours
    order = [chain[0], chain[2], chain[4], ("Z1", "Z2"), chain[5], chain[3], chain[1]]
    assert qc.group_near_duplicates(order, 0.8) == [0, 0, 0, 1, 0, 0, 0]
    assert qc.group_near_duplicates(order, 0.99) == [0, 1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------------------------------------
# step 7: split
# ------------------------------------------------------------------------------------------------


def _random_groups(seed: int, n: int = 400) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 1, 1, 2, 3, 8, 40], size=n)
    groups: list[int] = []
    for group, size in enumerate(sizes.tolist()):
        groups += [group * 3 + 7] * size  # ids need not be 0..k
    rng.shuffle(groups)
    return groups[:n]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_never_splits_a_group(seed: int) -> None:
    groups = _random_groups(seed)
    splits = qc.split_by_group(groups, 0.1, seed=seed)
    assert set(splits) == {"train", "test"}
    side: dict[int, set[str]] = {}
    for group, split in zip(groups, splits):
        side.setdefault(group, set()).add(split)
    assert all(len(s) == 1 for s in side.values())
    # there are enough singletons to fill the target exactly
    assert splits.count("test") == round(0.1 * len(groups))


@pytest.mark.parametrize(("n", "fraction"), [(200, 0.05), (1000, 0.05), (101, 0.1), (40, 0.5), (7, 0.0)])
def test_split_singletons_hit_the_target(n: int, fraction: float) -> None:
    splits = qc.split_by_group(list(range(n)), fraction, seed=0)
    assert splits.count("test") == round(fraction * n)
    assert splits.count("train") == n - round(fraction * n)


def test_split_skips_groups_that_would_overshoot() -> None:
    groups = [0] * 50 + list(range(1, 51))  # one big group and 50 singletons; target 10
    for seed in range(20):
        splits = qc.split_by_group(groups, 0.1, seed=seed)
        assert splits.count("test") == 10
        assert set(splits[:50]) == {"train"}


def test_split_min_test() -> None:
    groups = list(range(100))
    assert qc.split_by_group(groups, 0.05, seed=0).count("test") == 5
    assert qc.split_by_group(groups, 0.05, seed=0, min_test=30).count("test") == 30
    assert qc.split_by_group(groups, 0.5, seed=0, min_test=30).count("test") == 50
    assert qc.split_by_group(groups, 0.05, seed=0, min_test=500).count("test") == 100


def test_split_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    groups = _random_groups(9)
    first = qc.split_by_group(groups, 0.1, seed=4)
    assert qc.split_by_group(list(groups), 0.1, seed=4) == first
    others = [qc.split_by_group(groups, 0.1, seed=s) for s in (5, 6)]
    assert all(other != first for other in others)
    singles = list(range(300))
    assert qc.split_by_group(singles, 0.05, seed=0) != qc.split_by_group(singles, 0.05, seed=1)


# ------------------------------------------------------------------------------------------------
# step 8: benchmark sample
# ------------------------------------------------------------------------------------------------


def test_benchmark_sample() -> None:
    names = [f"set{i:03d}" for i in range(300)]
    splits = qc.split_by_group(list(range(300)), 0.2, seed=3)
    test_names = {n for n, s in zip(names, splits) if s == "test"}
    assert len(test_names) == 60
    sample = qc.benchmark_sample(names, splits, 25, seed=3)
    assert len(sample) == 25 and sample <= test_names
    assert qc.benchmark_sample(names, splits, 25, seed=3) == sample
    # input order does not matter, only the names and their splits
    assert qc.benchmark_sample(names[::-1], splits[::-1], 25, seed=3) == sample
    assert qc.benchmark_sample(names, splits, 25, seed=4) != sample
    assert qc.benchmark_sample(names, splits, 60, seed=3) == test_names
    assert qc.benchmark_sample(names, splits, 1000, seed=3) == test_names
    assert qc.benchmark_sample(names, ["train"] * 300, 10, seed=0) == set()


def test_split_sizes_are_whole_groups_counter() -> None:
    groups = [1, 1, 2, 2, 2, 3, 4, 5, 5]
    splits = qc.split_by_group(groups, 0.34, seed=11)  # target round(3.06) = 3
    per_group = Counter((g, s) for g, s in zip(groups, splits))
    assert all(count == Counter(groups)[g] for (g, _), count in per_group.items())
    assert splits.count("test") == 3


def test_empty_sets_are_not_near_duplicates() -> None:
    assert qc.near_duplicate_pairs([(), (), ("A",)], 0.7) == []


def _candidate(name: str, genes: str, source: str = "old") -> CandidateSet:
    symbols = tuple(genes.split())
    return CandidateSet(name, "", source, symbols, symbols)


def test_pin_genes_replaces_only_the_named_sets() -> None:
    sets = [_candidate("B", "G1 G2 G3"), _candidate("X", "G4 G5")]
    pinned = qc.pin_genes(sets, {"B": ("G1", "G2")})
    assert [s.genes for s in pinned] == [("G1", "G2"), ("G4", "G5")]
    assert pinned[0].identifier_symbols == ("G1", "G2", "G3")  # what the source gave is kept for QC


def test_keep_apart_from_only_judges_the_subject_sources() -> None:
    sets = [_candidate("old_twin", "A B C D"), _candidate("new_twin", "A B C E", "new"),
            _candidate("new_far", "A F G H", "new")]
    kept, out = qc.keep_apart_from(sets, [("A", "B", "C", "D")], 0.5, {"new"})
    assert [s.name for s in kept] == ["old_twin", "new_far"] and [s.name for s in out] == ["new_twin"]
    # exactly at the threshold counts as similar: 3 shared of 6 -> 0.5
    kept, out = qc.keep_apart_from([_candidate("half", "A B C E F G", "new")], [("A", "B", "C")], 0.5, {"new"})
    assert not kept and len(out) == 1


def test_split_around_benchmark_removes_group_intruders_until_stable() -> None:
    # T is a benchmark pathway; M is its near-twin (9/11) and F is M's (9/11) but not T's (8/12): groups are
    # transitive, so both leave, as whole groups always went to one side of the split.
    sets = [_candidate("T", "A B C D E F G H I J"), _candidate("M", "A B C D E F G H I K"),
            _candidate("F", "A B C D E F G H L K"), _candidate("Z", "P Q R S")]
    kept, groups, out = qc.split_around_benchmark(sets, {"T"}, 0.7)
    assert [s.name for s in out] == ["M", "F"]
    names = [s.name for s in kept]
    assert "T" in names and "M" not in names
    benchmark_group = groups[names.index("T")]
    assert [n for n, g in zip(names, groups) if g == benchmark_group] == ["T"]
