"""Load a command module of cellang.cli (what ``cellang <command>`` and scripts/<name>.py run), so tests can call
its functions and main(argv)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def load_script(name: str) -> ModuleType:
    """cellang/cli/<name>.py, freshly executed (module globals do not leak between tests)."""
    module_name = f"cellang.cli.{name}"
    sys.modules.pop(module_name, None)
    return importlib.import_module(module_name)
