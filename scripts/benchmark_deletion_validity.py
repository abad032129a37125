"""``python scripts/benchmark_deletion_validity.py ...`` = ``cellang benchmark deletion-validity ...`` (cellang/cli/benchmark_deletion_validity.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_deletion_validity"))
