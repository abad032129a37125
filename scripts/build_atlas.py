"""``python scripts/build_atlas.py ...`` = ``cellang build atlas ...`` (cellang/cli/build_atlas.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("build_atlas"))
