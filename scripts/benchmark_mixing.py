"""``python scripts/benchmark_mixing.py ...`` = ``cellang benchmark mixing ...`` (cellang/cli/benchmark_mixing.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_mixing"))
