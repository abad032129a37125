"""Where the project's shipped data, checkpoints and download cache live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
GENE_TABLE = DATA_DIR / "genes" / "genes.tsv.gz"
CORPUS_DIR = DATA_DIR / "corpus"


def cache_dir() -> Path:
    """Folder for registry downloads; CELLANG_CACHE overrides the per-user default."""
    configured = os.environ.get("CELLANG_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "cellang"
    base.mkdir(parents=True, exist_ok=True)
    return base


def user_model_dir() -> Path:
    """Folder of the user's own trained models (fine-tuned encoders...); CELLANG_MODELS overrides <repo>/models.
    The pages list the models found here beside the shipped ones."""
    configured = os.environ.get("CELLANG_MODELS")
    return Path(configured) if configured else REPO_ROOT / "models"
