"""``python scripts/tune_adapt.py ...`` = ``cellang tune adapt ...`` (cellang/cli/tune_adapt.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("tune_adapt"))
