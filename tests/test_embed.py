"""embed_cells: obsm/uns outputs, determinism, batch-size independence, missing genes, caching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cellang.checkpoints import checkpoint_exists
from cellang.embedding.embed import UNS_KEY, embed_cells, obsm_keys
from cellang.embedding.loading import CELL_MODELS, load_cell_encoder
from cellang.embedding.training import train_cell_encoder
from cellang.models.encoder import EncoderConfig
from cellang.paths import CHECKPOINT_DIR
from cellang.training import TrainConfig
from tests.synthetic_cells import synthetic_cells

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A few-step binned and rank encoder trained on synthetic cells (weights need not be good)."""
    out = {}
    for mode in ("binned", "rank"):
        directory = tmp_path_factory.mktemp(mode)
        config = EncoderConfig(n_genes=0, n_layer=2, n_head=2, n_embd=16, max_len=24, dropout=0.1, mode=mode,
                               n_bins=11 if mode == "binned" else 0)
        train_cell_encoder([synthetic_cells(64)], model_config=config, n_hvg=30, min_cells=1, val_fraction=0.25,
                           train_config=TrainConfig(max_steps=4, batch_size=16, warmup_steps=1, eval_interval=2,
                                                    device="cpu"), export_dir=directory)
        out[f"cells-{mode}"] = directory
    return out


@pytest.mark.parametrize("model", CELL_MODELS)
def test_outputs_and_report(model: str, checkpoints_dir) -> None:
    adata = synthetic_cells(30, seed=5)
    returned = embed_cells(adata, model=model, checkpoint_dir=checkpoints_dir[model])
    assert returned is adata
    cls_key, mean_key = obsm_keys(model)
    assert cls_key == f"X_{model.replace('-', '_')}_cls"
    assert adata.obsm[cls_key].shape == (30, 16) and adata.obsm[cls_key].dtype == np.float32
    assert adata.obsm[mean_key].shape == (30, 16) and np.isfinite(adata.obsm[mean_key]).all()
    report = adata.uns[UNS_KEY][model]
    assert report["model"] == model and report["fraction_model_genes_present"] == 1.0
    assert report["n_genes_used"] == report["n_model_genes"] == len(report["genes_used"])
    assert report["value_kind"] == "counts" and report["cells_without_genes"] == 0
    other = CELL_MODELS[1 - CELL_MODELS.index(model)]
    embed_cells(adata, model=other, checkpoint_dir=checkpoints_dir[other])
    assert set(adata.uns[UNS_KEY]) == set(CELL_MODELS)  # both models' reports kept side by side


@pytest.mark.parametrize("model", CELL_MODELS)
def test_deterministic_and_batch_size_independent(model: str, checkpoints_dir) -> None:
    keys = obsm_keys(model)
    runs = []
    for batch_size in (1, 7, 64, 64):
        adata = embed_cells(synthetic_cells(50, seed=6), model=model, batch_size=batch_size,
                            checkpoint_dir=checkpoints_dir[model])
        runs.append([adata.obsm[k] for k in keys])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.abs(a - b).max() < 1e-5
    assert all(np.array_equal(a, b) for a, b in zip(runs[2], runs[3]))  # same batching: bit for bit


@pytest.mark.parametrize("model", CELL_MODELS)
def test_missing_genes_are_reported_and_a_gene_free_cell_still_embeds(model: str, checkpoints_dir) -> None:
    adata = synthetic_cells(12, seed=7)
    half = adata[:, adata.var_names[:15]].copy()
    dense = half.X.toarray()
    dense[0] = 0  # a cell that expresses none of the model's genes
    half.X = sp.csr_matrix(dense)
    embed_cells(half, model=model, checkpoint_dir=checkpoints_dir[model])
    report = half.uns[UNS_KEY][model]
    assert report["fraction_model_genes_present"] == pytest.approx(0.5)
    assert list(report["genes_used"]) == list(half.var_names) and report["cells_without_genes"] == 1
    assert np.isfinite(half.obsm[obsm_keys(model)[0]]).all()


def test_loader_is_cached_and_names_are_checked(checkpoints_dir) -> None:
    first = load_cell_encoder("cells-rank", checkpoints_dir["cells-rank"])
    assert load_cell_encoder("cells-rank", checkpoints_dir["cells-rank"]) is first
    with pytest.raises(ValueError, match="unknown cell encoder"):
        load_cell_encoder("cells-nope")
    with pytest.raises(FileNotFoundError):
        load_cell_encoder("cells-rank", checkpoints_dir["cells-rank"].parent / "nowhere")
    with pytest.raises(ValueError):
        embed_cells(synthetic_cells(4), model="cells-rank", batch_size=0, checkpoint_dir=checkpoints_dir["cells-rank"])


@pytest.mark.parametrize("model", CELL_MODELS)
def test_shipped_encoder_on_real_cells(model: str) -> None:
    if not checkpoint_exists(CHECKPOINT_DIR / model):
        pytest.skip(f"checkpoints/{model} is not there")
    from cellang.cells import load_atlas_dataset

    adata = load_atlas_dataset("pbmc3k_decoupler", max_cells=40, seed=0)
    one = embed_cells(adata.copy(), model=model, batch_size=1).obsm[obsm_keys(model)[0]]
    many = embed_cells(adata, model=model, batch_size=64).obsm[obsm_keys(model)[0]]
    assert np.abs(one - many).max() < 1e-5
    assert adata.uns[UNS_KEY][model]["fraction_model_genes_present"] > 0.3
