"""``python scripts/adapt.py ...`` = ``cellang adapt ...`` (cellang/cli/adapt.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("adapt"))
