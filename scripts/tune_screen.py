"""``python scripts/tune_screen.py ...`` = ``cellang tune screen ...`` (cellang/cli/tune_screen.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("tune_screen"))
