"""``python scripts/benchmark_cell_loading.py ...`` = ``cellang benchmark cell-loading ...`` (cellang/cli/benchmark_cell_loading.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_cell_loading"))
