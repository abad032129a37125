"""The layout's promises: inference never imports training, and each workflow has its one package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

TRAINING = ("cellang_core.training", "cellang_core.completion.training", "cellang_core.completion.dae_training",
            "cellang_core.completion.set_training", "cellang_core.completion.rerank_training",
            "cellang_core.embedding.training")
INFERENCE = ("cellang_core.completion.loading", "cellang_core.completion.completer", "cellang_core.completion.report",
             "cellang_core.completion.request",
             "cellang_core.completion.benchmark", "cellang_core.completion.baselines",
             "cellang_core.completion.retrieval", "cellang_core.completion.network",
             "cellang_core.completion.set_model", "cellang_core.completion.rerank", "cellang_core.completion.neighbours",
             "cellang_core.completion.evidence", "cellang_core.completion.gene_input", "cellang_core.embedding.loading",
             "cellang_core.embedding.embed", "cellang_core.embedding.explorer", "cellang_core.embedding.metrics",
             "cellang_core.perturbation.engine", "cellang_core.perturbation.stats",
             "cellang_core.perturbation.workflow", "cellang_core.perturbation.presets",
             "cellang_core.perturbation.page", "cellang_core.enrich", "cellang_core.overview", "cellang_core.browse",
             "cellang_core.plots")


def test_inference_paths_import_no_training_module() -> None:
    code = (f"import importlib, sys\nfor name in {INFERENCE!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_one_package_per_workflow_and_no_task_bucket() -> None:
    core = REPO_ROOT / "cellang_core"
    for package in ("completion", "embedding", "perturbation"):
        assert (core / package / "__init__.py").read_text().startswith('"""Where ')
    assert not (core / "tasks").exists()
