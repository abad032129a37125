"""``python scripts/build_external.py ...`` = ``cellang build external ...`` (cellang/cli/build_external.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("build_external"))
