"""``python scripts/build_known_genes.py ...`` = ``cellang build known-genes ...`` (cellang/cli/build_known_genes.py)."""

from cellang.cli.main import run_module

raise SystemExit(run_module("build_known_genes"))
