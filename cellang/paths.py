"""Where the project's shipped data, checkpoints and download cache live."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path

SHIPPED = ("data", "checkpoints")  # the folders a checkout holds and an install puts under <prefix>/share/cellang


def _shipped_root() -> Path:
    """The folder holding ``data/`` and ``checkpoints/``: the checkout this package runs from, else where
    ``pip install`` put them (pyproject.toml's data-files: <prefix>/share/cellang, or the user base's for --user).
    CELLANG_HOME overrides both."""
    configured = os.environ.get("CELLANG_HOME")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parent.parent
    candidates = [checkout] + [Path(prefix) / "share" / "cellang" for prefix in
                               (sysconfig.get_paths()["data"], sys.prefix, site.getuserbase())]
    for candidate in candidates:
        if all((candidate / name).is_dir() for name in SHIPPED):
            return candidate
    return checkout


REPO_ROOT = _shipped_root()
FROM_CHECKOUT = REPO_ROOT == Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
RESULTS_DIR = REPO_ROOT / "results"
GENE_TABLE = DATA_DIR / "genes" / "genes.tsv.gz"
CORPUS_DIR = DATA_DIR / "corpus"


def cache_dir() -> Path:
    """Folder for registry downloads; CELLANG_CACHE overrides the per-user default."""
    configured = os.environ.get("CELLANG_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "cellang"
    base.mkdir(parents=True, exist_ok=True)
    return base


def user_model_dir() -> Path:
    """Folder of the user's own trained models (fine-tuned encoders...): CELLANG_MODELS, else <checkout>/models,
    else (an installed package) $XDG_DATA_HOME/cellang/models (~/.local/share/cellang/models).
    The pages list the models found here beside the shipped ones."""
    configured = os.environ.get("CELLANG_MODELS")
    if configured:
        return Path(configured)
    if FROM_CHECKOUT:
        return REPO_ROOT / "models"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cellang" / "models"
