"""``python scripts/benchmark_leaveout.py ...`` = ``cellang benchmark leaveout ...`` (cellang/cli/benchmark_leaveout.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_leaveout"))
