"""A user models folder for tests (what ``CELLANG_MODELS`` points at): tiny real checkpoints and folders to skip.

* :func:`save_user_rank_model`: a random rank encoder fitted on the given cells, with the record a fine-tune on
  ``mine.h5ad`` writes (``fine_tuning.init_from = cells-rank``): offered by both pages as ``my-<folder>``.
* :func:`save_user_binned_model`: a random binned encoder: offered by the embedding page only.
* :func:`add_folders_to_skip`: junk, a half-written save and a pathway-model checkpoint: offered nowhere.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import anndata as ad
import torch
import torch.nn as nn

from cellang import checkpoints
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.tokenizers.cells import CellVocabulary
from tests.perturb_fixtures import save_tiny_checkpoint

RANK_FOLDER = "cells-rank-finetuned"
RANK_NAME = "my-cells-rank-finetuned"
SKIPPED = ("junk", "half-written", "pathway-set-copy")


def fine_tune_record(n_cells: int, data_name: str = "mine.h5ad") -> dict:
    """A record like the one ``scripts/train.py cells-rank --data mine.h5ad --init-from ...`` writes."""
    return {"model": "cells-rank", "data": {"kind": "h5ad", "files": [{"name": data_name, "cells": n_cells}]},
            "n_cells": n_cells, "fine_tuning": {"init_from": "cells-rank", "base_model": "cells-rank"}, "steps": 3}


def save_user_rank_model(root: Path, adatas: list[ad.AnnData], folder: str = RANK_FOLDER, max_len: int = 32,
                         seed: int = 1) -> Path:
    """root/<folder>: a random rank encoder (1 layer, 16 dims) whose vocabulary is fitted on ``adatas``."""
    n_cells = sum(a.n_obs for a in adatas)
    return save_tiny_checkpoint(root / folder, adatas, max_len=max_len, seed=seed, record=fine_tune_record(n_cells))


def save_user_binned_model(root: Path, genes: list[str], folder: str = "cells-binned-mine") -> Path:
    """root/<folder>: a random binned encoder over ``genes`` (5 bins, 32 tokens)."""
    vocabulary = CellVocabulary(sorted(genes), mode="binned",
                                settings={"n_hvg": len(genes), "n_bins": 5, "max_len": 32, "target_sum": 1e4})
    torch.manual_seed(0)
    config = EncoderConfig(n_genes=len(vocabulary), n_layer=1, n_head=2, n_embd=16, max_len=32, mode="binned",
                           n_bins=5)
    record = {"model": "cells-binned", "datasets": {"hsmm": {"cells": 40}}, "n_train_cells": 38, "n_val_cells": 2}
    return checkpoints.save_checkpoint(root / folder, CellEncoder(config).eval(), config=asdict(config),
                                       vocabulary_json=vocabulary.to_json(), record=record)


def add_folders_to_skip(root: Path) -> None:
    """junk/ (a text file), half-written/ (config.json only) and pathway-set-copy/ (a readable checkpoint that is
    not a cell encoder), plus a hidden staging folder and a loose file that are passed over silently."""
    (root / "junk").mkdir(parents=True, exist_ok=True)
    (root / "junk" / "notes.txt").write_text("not a model\n")
    (root / "half-written").mkdir(exist_ok=True)
    (root / "half-written" / "config.json").write_text('{"mode": "rank"}\n')
    checkpoints.save_checkpoint(root / "pathway-set-copy", nn.Linear(4, 2),
                                config={"n_genes": 4, "n_layer": 1, "n_head": 1, "n_embd": 2, "max_prompt": 8},
                                vocabulary_json={"genes": ["A", "B"]}, record={"model": "pathway-set"})
    (root / ".cells-rank-finetuned.staging").mkdir(exist_ok=True)
    (root / "README.txt").write_text("my models\n")
