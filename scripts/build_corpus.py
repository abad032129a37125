"""``python scripts/build_corpus.py ...`` = ``cellang build corpus ...`` (cellang/cli/build_corpus.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("build_corpus"))
