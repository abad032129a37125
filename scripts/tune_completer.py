"""``python scripts/tune_completer.py ...`` = ``cellang tune completer ...`` (cellang/cli/tune_completer.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("tune_completer"))
