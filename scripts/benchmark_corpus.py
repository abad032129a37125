"""``python scripts/benchmark_corpus.py ...`` = ``cellang benchmark corpus ...`` (cellang/cli/benchmark_corpus.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_corpus"))
