"""``python scripts/benchmark_pathways.py ...`` = ``cellang benchmark pathways ...`` (cellang/cli/benchmark_pathways.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_pathways"))
