"""``python scripts/classify.py ...`` = ``cellang classify ...`` (cellang/cli/classify.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("classify"))
