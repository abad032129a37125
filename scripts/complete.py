"""``python scripts/complete.py ...`` = ``cellang complete ...`` (cellang/cli/complete.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("complete"))
