"""The layout's promises: inference never imports training, and each workflow has its one package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

TRAINING = ("cellang.training", "cellang.completion.training", "cellang.completion.dae_training",
            "cellang.completion.set_training", "cellang.completion.rerank_training",
            "cellang.embedding.training")
INFERENCE = ("cellang.completion.loading", "cellang.completion.completer", "cellang.completion.report",
             "cellang.completion.request",
             "cellang.completion.benchmark", "cellang.completion.baselines",
             "cellang.completion.retrieval", "cellang.completion.network",
             "cellang.completion.set_model", "cellang.completion.rerank", "cellang.completion.neighbours",
             "cellang.completion.evidence", "cellang.completion.gene_input", "cellang.embedding.loading",
             "cellang.embedding.embed", "cellang.embedding.explorer", "cellang.embedding.metrics",
             "cellang.perturbation.engine", "cellang.perturbation.stats",
             "cellang.perturbation.workflow", "cellang.perturbation.presets",
             "cellang.perturbation.page", "cellang.enrich", "cellang.overview", "cellang.browse",
             "cellang.plots")


def test_inference_paths_import_no_training_module() -> None:
    code = (f"import importlib, sys\nfor name in {INFERENCE!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_one_package_per_workflow_and_no_task_bucket() -> None:
    core = REPO_ROOT / "cellang"
    for package in ("completion", "embedding", "perturbation"):
        assert (core / package / "__init__.py").read_text().startswith('"""Where ')
    assert not (core / "tasks").exists()
