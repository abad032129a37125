"""Load a file of scripts/ as a module, so tests can call its functions and main(argv)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from cellang_core.paths import REPO_ROOT


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py, freshly executed (module globals do not leak between tests)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
