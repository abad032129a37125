"""``python scripts/train.py ...`` = ``cellang train ...`` (cellang/cli/train.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("train"))
