"""Defaults that several doors offer are written once, in cellang.defaults, and every door reads them there."""

from __future__ import annotations

import inspect
import subprocess
import sys

from cellang import defaults
from tests.conftest import REPO_ROOT


def test_the_api_the_command_line_and_the_pages_offer_the_same_budgets() -> None:
    import cellang as cl
    from cellang.app import deletion as deletion_page
    from cellang.cli import adapt as adapt_command
    from cellang.cli import classify as classify_command
    from cellang.embedding import adapt, classify

    assert inspect.signature(cl.tl.adapt).parameters["minutes"].default == defaults.ADAPT_MINUTES
    assert inspect.signature(adapt.adapt_encoder).parameters["minutes"].default == defaults.ADAPT_MINUTES
    assert inspect.signature(cl.tl.fine_tune).parameters["minutes"].default == defaults.FINE_TUNE_MINUTES
    assert inspect.signature(classify.fine_tune_classifier).parameters["minutes"].default == defaults.FINE_TUNE_MINUTES
    assert adapt_command.DEFAULT_MINUTES == defaults.ADAPT_MINUTES
    assert classify_command.DEFAULT_MINUTES == defaults.FINE_TUNE_MINUTES
    assert deletion_page.FINE_TUNE_FIRST_MINUTES == defaults.FINE_TUNE_FIRST_MINUTES
    pages = " ".join(p.read_text() for p in (REPO_ROOT / "pages").glob("*.py"))
    assert "value=3.0" not in pages and "value=5.0" not in pages, "a page writes a budget of its own"


def test_the_defaults_module_loads_nothing_heavy() -> None:
    code = ("import sys, cellang.defaults; print(sorted(m for m in ('torch', 'pandas', 'anndata', 'numpy', "
            "'cellang.embedding', 'cellang.perturbation') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
