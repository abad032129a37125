"""``python scripts/benchmark_context.py ...`` = ``cellang benchmark context ...`` (cellang/cli/benchmark_context.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_context"))
