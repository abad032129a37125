"""``python scripts/benchmark_perturb.py ...`` = ``cellang benchmark perturb ...`` (cellang/cli/benchmark_perturb.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_perturb"))
