"""The cardiomyocyte path end to end, as the README gives it: a user's heart .h5ad -> fine-tuned cells-rank ->
deletion ranking with that model.

No cardiomyocyte data ships, so the input is a FORMAT fixture: real atlas counts (HSMM myotubes, the nearest
muscle cells we have) written the way a CELLxGENE Census download is -- Ensembl ids as var_names with a
feature_name column, obs cell_type / disease / donor_id, raw counts -- with normal and dilated-cardiomyopathy
labels assigned alternately. It tests the plumbing, not biology.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellang.atlas import load_atlas_dataset
from cellang.cells import write_h5ad
from cellang.paths import CHECKPOINT_DIR
from tests.scripts import load_script


@pytest.fixture(scope="module")
def heart_file(tmp_path_factory):
    muscle = load_atlas_dataset("hsmm")
    cells = muscle[:24, muscle.var["ensembl_id"].astype(str).str.startswith("ENSG").to_numpy()].copy()
    cells.X = np.rint(cells.X.toarray() if hasattr(cells.X, "toarray") else cells.X).astype(np.float32)
    cells.var = pd.DataFrame({"feature_name": list(cells.var_names)},
                             index=cells.var["ensembl_id"].astype(str).to_numpy())
    cells.obs = pd.DataFrame({"cell_type": ["cardiac muscle myocyte"] * 24,
                              "disease": ["normal", "dilated cardiomyopathy"] * 12,
                              "donor_id": [f"donor{i % 3}" for i in range(24)]},
                             index=[f"cell{i}" for i in range(24)])
    return write_h5ad(cells, tmp_path_factory.mktemp("heart") / "heart.h5ad")


def test_fine_tune_then_rank_deletions_with_the_fine_tuned_model(heart_file, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLANG_MODELS", str(tmp_path / "models"))
    train = load_script("train")
    assert train.main(["cells-rank", "--data", str(heart_file), "--init-from", str(CHECKPOINT_DIR / "cells-rank"),
                       "--max-steps", "2", "--batch-size", "8", "--eval-interval", "2", "--min-cells", "2",
                       "--run-dir", str(tmp_path / "run")]) == 0
    model = tmp_path / "models" / "cells-rank-finetuned"
    record = json.loads((model / "training_record.json").read_text())
    assert record["fine_tuning"]["init_from"] == "cells-rank" and record["data"]["files"][0]["name"] == "heart.h5ad"

    deletion = load_script("run_deletion")
    out = tmp_path / "results" / "heart"
    assert deletion.main(["--h5ad", str(heart_file), "--checkpoint", str(model), "--max-cells", "1",
                          "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    ranked = pd.read_csv(f"{out}_deletion_ranked.csv")
    assert len(ranked) > 0 and not ranked["gene"].astype(str).str.startswith("ENSG").any()  # symbols, not ids
    assert model.name in json.dumps(report)
