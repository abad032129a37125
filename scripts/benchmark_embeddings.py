"""``python scripts/benchmark_embeddings.py ...`` = ``cellang benchmark embeddings ...`` (cellang/cli/benchmark_embeddings.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("benchmark_embeddings"))
