"""``python scripts/benchmark_classify.py ...`` = ``cellang benchmark classify ...`` (cellang/cli/benchmark_classify.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_classify"))
