"""``python scripts/run_deletion.py ...`` = ``cellang delete ...`` (cellang/cli/run_deletion.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("run_deletion"))
