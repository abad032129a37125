"""Tests for cellang.genes: the shipped gene table and GeneResolver's rules on synthetic tables."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cellang.genes import (
    GENE_TABLE_COLUMNS,
    GeneMatch,
    GeneRecord,
    GeneResolver,
    Harmonisation,
    load_resolver,
    read_gene_table,
    write_gene_table,
)

# ----------------------------------------------------------------------------------------------
# (a) the shipped table (data/genes/genes.tsv.gz, HGNC + org.Hs.eg.db)
# ----------------------------------------------------------------------------------------------

# Aliases that HGNC lists for two genes each; stable in HGNC for many years (disease names).
REAL_AMBIGUOUS_ALIASES = {
    "STSL": ("ABCG5", "ABCG8"),  # sitosterolemia: both ABC half-transporters
    "PHHI": ("ABCC8", "KCNJ11"),  # persistent hyperinsulinaemic hypoglycaemia: both K-ATP subunits
}
# A previous symbol that was split into several current genes.
REAL_AMBIGUOUS_PREVIOUS = {"CD1": ("CD1A", "CD1B", "CD1C")}


@pytest.fixture(scope="module")
def shipped() -> GeneResolver:
    return load_resolver()


def test_shipped_table_is_large_and_has_tp53(shipped: GeneResolver) -> None:
    assert len(shipped) > 40_000
    assert "TP53" in shipped and "tp53" not in shipped and 7157 not in shipped
    record = shipped.records["TP53"]
    assert (record.entrez_id, record.hgnc_id) == ("7157", "HGNC:11998")
    assert record.ensembl_id.split("|")[0] == "ENSG00000141510"


@pytest.mark.parametrize(
    ("query", "symbol", "how"),
    [
        ("TP53", "TP53", "approved"),
        ("MLL", "KMT2A", "previous"),
        ("C10orf2", "TWNK", "previous"),
        ("SEPT7", "SEPTIN7", "previous"),
        ("Sept7", "SEPTIN7", "previous"),
        ("HER2", "ERBB2", "alias"),
        ("her2", "ERBB2", "alias"),
        ("p53", "TP53", "alias"),
        ("tp53", "TP53", "approved"),
        ("Tp53", "TP53", "approved"),
        ("  TP53\t", "TP53", "approved"),
        ("ENSG00000141510", "TP53", "ensembl"),
        ("ENSG00000141510.17", "TP53", "ensembl"),
        ("ensg00000141510", "TP53", "ensembl"),
        ("7157", "TP53", "entrez"),
        ("2064", "ERBB2", "entrez"),
    ],
)
def test_shipped_mapped_queries(shipped: GeneResolver, query: str, symbol: str, how: str) -> None:
    match = shipped.resolve(query)
    assert (match.query, match.symbol, match.how, match.candidates) == (query, symbol, how, ())
    assert match.mapped
    assert match.ensembl_id == shipped.records[symbol].ensembl_id.split("|")[0]


def test_shipped_tp53_ensembl_id(shipped: GeneResolver) -> None:
    assert shipped.resolve("p53").ensembl_id == "ENSG00000141510"
    assert shipped.resolve("7157").ensembl_id == "ENSG00000141510"


@pytest.mark.parametrize(
    "query",
    ["", "   ", "NOT_A_GENE_XYZ", "ENSG99999999999", "ENSG00000141510X", "999999999", "TP53 MYC"],
)
def test_shipped_unknown_queries(shipped: GeneResolver, query: str) -> None:
    match = shipped.resolve(query)
    assert match == GeneMatch(query, None, None, "unknown")
    assert not match.mapped


@pytest.mark.parametrize(("query", "candidates"), sorted(REAL_AMBIGUOUS_ALIASES.items()))
def test_shipped_real_ambiguous_alias(shipped: GeneResolver, query: str, candidates: tuple[str, ...]) -> None:
    # the hard-coded example really is an alias of each candidate in the table, and of nothing else
    assert all(query in shipped.records[c].alias_symbols for c in candidates)
    holders = tuple(sorted(s for s, r in shipped.records.items()
                           if query.upper() in {a.upper() for a in r.alias_symbols}))
    assert holders == candidates
    for text in (query, query.lower()):
        assert shipped.resolve(text) == GeneMatch(text, None, None, "ambiguous", candidates)


@pytest.mark.parametrize(("query", "candidates"), sorted(REAL_AMBIGUOUS_PREVIOUS.items()))
def test_shipped_real_ambiguous_previous(shipped: GeneResolver, query: str, candidates: tuple[str, ...]) -> None:
    assert all(query in shipped.records[c].previous_symbols for c in candidates)
    assert shipped.resolve(query) == GeneMatch(query, None, None, "ambiguous", candidates)


def test_shipped_has_many_ambiguous_aliases(shipped: GeneResolver) -> None:
    """Scan the table: every alias naming 2+ genes (and no approved/previous symbol) is ambiguous."""
    owners: dict[str, set[str]] = {}
    for symbol, record in shipped.records.items():
        for alias in record.alias_symbols:
            owners.setdefault(alias.upper(), set()).add(symbol)
    previous = {p.upper() for r in shipped.records.values() for p in r.previous_symbols}
    approved = {s.upper() for s in shipped.records}
    shared = {a: o for a, o in owners.items()
              if len(o) >= 2 and a not in previous and a not in approved
              and not a.isdigit() and not a.startswith("ENSG")}
    assert len(shared) > 100
    for alias, symbols in sorted(shared.items())[:200]:
        match = shipped.resolve(alias)
        assert (match.how, match.symbol, match.candidates) == ("ambiguous", None, tuple(sorted(symbols)))


def test_shipped_harmonisation(shipped: GeneResolver) -> None:
    queries = ["TP53", "p53", "tp53", "MLL", "NOT_A_GENE_1", "STSL", "7157", "KMT2A", "NOT_A_GENE_2", "HER2"]
    result = shipped.harmonise(queries)
    assert [m.query for m in result.matches] == queries
    assert [m.how for m in result.matches] == [
        "approved", "alias", "approved", "previous", "unknown", "ambiguous", "entrez", "approved",
        "unknown", "alias",
    ]
    assert result.symbols == ["TP53", "KMT2A", "ERBB2"]
    assert result.unknown == ["NOT_A_GENE_1", "NOT_A_GENE_2"]
    assert result.ambiguous == {"STSL": ("ABCG5", "ABCG8")}
    assert result.renamed == {"p53": "TP53", "tp53": "TP53", "MLL": "KMT2A", "7157": "TP53", "HER2": "ERBB2"}
    assert result.fraction_mapped == pytest.approx(7 / 10)
    assert result.summary() == (
        "7 of 10 identifiers mapped; 5 renamed to approved symbols; "
        "1 ambiguous: STSL (ABCG5/ABCG8); 2 unknown: NOT_A_GENE_1, NOT_A_GENE_2."
    )


def test_load_resolver_is_cached() -> None:
    assert load_resolver() is load_resolver()


# ----------------------------------------------------------------------------------------------
# Harmonisation on its own
# ----------------------------------------------------------------------------------------------


def test_empty_harmonisation() -> None:
    empty = Harmonisation()
    assert (empty.symbols, empty.unknown, empty.ambiguous, empty.renamed) == ([], [], {}, {})
    assert empty.fraction_mapped == 0.0
    assert empty.summary() == "0 of 0 identifiers mapped."


def test_summary_cuts_long_lists() -> None:
    unknown = [GeneMatch(f"U{i}", None, None, "unknown") for i in range(12)]
    ambiguous = [GeneMatch(f"A{i}", None, None, "ambiguous", (f"X{i}", f"Y{i}")) for i in range(7)]
    mapped = [GeneMatch("G", "G", None, "approved")]
    text = Harmonisation(mapped + ambiguous + unknown).summary()
    assert text.startswith("1 of 20 identifiers mapped; 7 ambiguous: A0 (X0/Y0), A1 (X1/Y1), ")
    assert "A4 (X4/Y4); " in text and "A5" not in text
    assert text.endswith("12 unknown: U0, U1, U2, U3, U4, U5, U6, U7, U8, U9 ....")
    assert "U10" not in text and "renamed" not in text


# ----------------------------------------------------------------------------------------------
# (b) synthetic GeneResolver
# ----------------------------------------------------------------------------------------------


def _record(symbol: str, ensembl: str = "", entrez: str = "", previous: tuple[str, ...] = (),
            alias: tuple[str, ...] = (), name: str = "") -> GeneRecord:
    return GeneRecord(symbol, ensembl, entrez, f"HGNC:{symbol}" if ensembl else "",
                      "gene with protein product", name or f"{symbol} protein", previous, alias)


def test_approved_symbol_beats_alias_and_previous_of_other_genes() -> None:
    resolver = GeneResolver([
        _record("FOO", alias=("BAR", "baz")),
        _record("BAR"),
        _record("QUX", previous=("BAZ", "FOO")),
        _record("BAZ"),
    ])
    assert resolver.resolve("BAR") == GeneMatch("BAR", "BAR", None, "approved")
    assert resolver.resolve("bar").symbol == "BAR"
    assert resolver.resolve("BAZ").how == "approved"
    assert resolver.resolve("foo") == GeneMatch("foo", "FOO", None, "approved")


def test_previous_symbol_shared_by_two_genes_is_ambiguous() -> None:
    resolver = GeneResolver([
        _record("NEWB", previous=("OLD",)),
        _record("NEWA", previous=("old",)),
        _record("ONLY", previous=("SOLE",)),
    ])
    assert resolver.resolve("Old") == GeneMatch("Old", None, None, "ambiguous", ("NEWA", "NEWB"))
    assert resolver.resolve("sole") == GeneMatch("sole", "ONLY", None, "previous")
    assert resolver.harmonise(["OLD", "SOLE"]).ambiguous == {"OLD": ("NEWA", "NEWB")}


def test_alias_shared_by_two_genes_is_ambiguous() -> None:
    resolver = GeneResolver([_record("B1", alias=("SHARED",)), _record("A1", alias=("SHARED", "MINE"))])
    assert resolver.resolve("shared") == GeneMatch("shared", None, None, "ambiguous", ("A1", "B1"))
    assert resolver.resolve("MINE") == GeneMatch("MINE", "A1", None, "alias")


def test_previous_beats_alias() -> None:
    resolver = GeneResolver([
        _record("ALIASED", alias=("OLDNAME",)),
        _record("RENAMED", previous=("OLDNAME",)),
    ])
    assert resolver.resolve("OLDNAME") == GeneMatch("OLDNAME", "RENAMED", None, "previous")


def test_ids_map_and_unknown_ids_do_not_fall_through() -> None:
    resolver = GeneResolver([
        _record("TWOIDS", ensembl="ENSG00000000001|ENSG00000000002", entrez="11"),
        _record("NOIDS", alias=("ENSG00000000009", "99")),
    ])
    first = resolver.resolve("ENSG00000000002.4")
    assert first == GeneMatch("ENSG00000000002.4", "TWOIDS", "ENSG00000000001", "ensembl")
    assert resolver.resolve("ENSG00000000001").symbol == "TWOIDS"
    assert resolver.resolve("11") == GeneMatch("11", "TWOIDS", "ENSG00000000001", "entrez")
    # a well-formed id is looked up only as an id: never guessed from an alias
    assert resolver.resolve("ENSG00000000009").how == "unknown"
    assert resolver.resolve("99").how == "unknown"
    assert resolver.resolve("NOIDS") == GeneMatch("NOIDS", "NOIDS", None, "approved")


def test_duplicate_symbol_raises() -> None:
    with pytest.raises(ValueError, match="DUP"):
        GeneResolver([_record("DUP"), _record("OTHER"), _record("DUP")])
    with pytest.raises(ValueError):
        GeneResolver([_record("Case"), _record("CASE")])


def test_renamed_counts_only_changed_symbols() -> None:
    resolver = GeneResolver([_record("ABC1", previous=("OLD1",), entrez="5")])
    result = resolver.harmonise(["ABC1", "abc1", "OLD1", "5", "ABC1"])
    assert result.renamed == {"abc1": "ABC1", "OLD1": "ABC1", "5": "ABC1"}
    assert result.symbols == ["ABC1"]
    assert result.fraction_mapped == 1.0


SYNTHETIC_RECORDS = [
    GeneRecord("ZED1", "ENSG00000000003", "3", "HGNC:3", "gene with protein product", "zed one", ("OLDZ",), ()),
    GeneRecord("ABC1", "ENSG00000000001|ENSG00000000011", "1", "HGNC:1", "gene with protein product",
               'name with "quotes", comma\tand tab', ("ABC-1", "XYZ"), ("A1", "alpha one")),
    GeneRecord("LOC9", "", "9", "", "ncRNA", "", (), ("L9",)),
    GeneRecord("MID2", "", "", "HGNC:2", "pseudogene", "ünïcödé name", (), ()),
]


def test_gene_table_round_trip_and_determinism(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "genes.tsv.gz", tmp_path / "genes2.tsv.gz"
    write_gene_table(SYNTHETIC_RECORDS, first)
    write_gene_table(list(reversed(SYNTHETIC_RECORDS)), second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    assert not list(tmp_path.rglob("*.partial"))
    back = read_gene_table(first)
    assert back == sorted(SYNTHETIC_RECORDS, key=lambda r: r.symbol)
    text = gzip.decompress(first.read_bytes()).decode("utf-8")
    assert text.splitlines()[0].split("\t") == list(GENE_TABLE_COLUMNS)
    resolver = GeneResolver(back)
    assert resolver.resolve("alpha ONE").symbol == "ABC1"
    assert resolver.resolve("ENSG00000000011").ensembl_id == "ENSG00000000001"


def test_read_gene_table_rejects_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv.gz"
    path.write_bytes(gzip.compress(b"symbol\tentrez\nTP53\t7157\n"))
    with pytest.raises(ValueError, match="unexpected columns"):
        read_gene_table(path)


def test_load_resolver_missing_path_names_build_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        load_resolver(tmp_path / "nowhere" / "genes.tsv.gz")
    assert "cellang build corpus" in str(caught.value)
    assert "genes.tsv.gz" in str(caught.value)


def test_load_resolver_reads_given_path(tmp_path: Path) -> None:
    path = tmp_path / "genes.tsv.gz"
    write_gene_table(SYNTHETIC_RECORDS, path)
    resolver = load_resolver(path)
    assert len(resolver) == 4 and resolver.resolve("oldz").symbol == "ZED1"


def test_ensembl_id_shared_by_two_genes_is_ambiguous_not_guessed() -> None:
    match = load_resolver().resolve("ENSG00000128383")
    assert match.how == "ambiguous"
    assert set(match.candidates) == {"APOBEC3A", "APOBEC3A_B"}


@pytest.mark.parametrize(("ensembl_id", "symbol"), [("ENSG00000184012", "TMPRSS2"), ("ENSG00000166848", "TERF2IP"),
                                                    ("ENSG00000171714", "ANO5")])
def test_an_ensembl_id_shared_with_uncharacterised_loc_entries_maps_to_the_approved_gene(ensembl_id: str,
                                                                                         symbol: str) -> None:
    match = load_resolver().resolve(ensembl_id)
    assert (match.symbol, match.how) == (symbol, "ensembl")


def test_the_approved_gene_wins_only_over_loc_entries() -> None:
    approved = GeneRecord("GENE1", "ENSG00000000001", "1", "HGNC:1", "gene with protein product", "gene 1")
    loc = GeneRecord("LOC123", "ENSG00000000001", "123", "", "ncRNA", "uncharacterized LOC123")
    other = GeneRecord("GENE2", "ENSG00000000002", "2", "", "ncRNA", "an unnamed transcript")
    second = GeneRecord("GENE3", "ENSG00000000002", "3", "HGNC:3", "gene with protein product", "gene 3")
    resolver = GeneResolver([approved, loc, other, second])
    assert resolver.resolve("ENSG00000000001").symbol == "GENE1"
    assert resolver.resolve("ENSG00000000002").how == "ambiguous"  # the other entry is not a LOC entry
