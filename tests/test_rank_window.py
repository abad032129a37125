"""The rank encoder that reads a whole cell: rank-bucket positions and training on windows of long cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellang.embedding import leaveout
from cellang.embedding.embed import embed_cells
from cellang.embedding.loading import load_cell_encoder_checkpoint
from cellang.models.encoder import LOG_EXACT_RANKS, CellEncoder, EncoderConfig, position_rows, rank_bucket
from cellang.tokenizers.cells import CLS_ID, TokenizedCells
from cellang.tokenizers.rank import RankBatcher, RankTokenizer
from tests.synthetic_cells import synthetic_cells
from tests.test_cell_encoder import tiny, train_tiny

torch.set_num_threads(1)


def test_rank_buckets_keep_the_top_ranks_and_grow_by_doublings():
    ranks = torch.arange(4096)
    buckets = rank_bucket(ranks)
    assert torch.equal(buckets[:LOG_EXACT_RANKS], ranks[:LOG_EXACT_RANKS])
    assert bool((buckets[1:] >= buckets[:-1]).all()), "a lower rank never gets an earlier bucket"
    assert int(buckets[2 * LOG_EXACT_RANKS]) - int(buckets[LOG_EXACT_RANKS]) == \
        int(buckets[4 * LOG_EXACT_RANKS]) - int(buckets[2 * LOG_EXACT_RANKS]), "as many buckets per doubling"
    config = EncoderConfig(n_genes=10, mode="rank", n_bins=0, max_len=2048, rank_positions="log")
    assert position_rows(config) == int(rank_bucket(torch.tensor([2047]))[0]) + 1 < 2048 // 8
    assert position_rows(EncoderConfig(n_genes=10, mode="rank", n_bins=0, max_len=300)) == 300
    with pytest.raises(ValueError, match="rank_positions"):
        EncoderConfig(n_genes=10, mode="rank", n_bins=0, rank_positions="linear")


def _cells(lengths: list[int], n_genes: int = 400, seed: int = 0) -> TokenizedCells:
    rng = np.random.default_rng(seed)
    genes = [np.concatenate(([CLS_ID], 5 + rng.permutation(n_genes - 5)[:n])) for n in lengths]
    return TokenizedCells(genes, None, np.ones(n_genes, bool), 1.0, "counts")


def test_a_window_keeps_cls_and_genes_in_rank_order_with_their_ranks():
    cells = _cells([300, 10, 120])
    batcher = RankBatcher(cells, vocabulary_size=400, batch_size=3, seed=0, window=32, drop_last=False,
                          mask_ratio=0.15)
    (tokens, labels, ranks), = list(batcher.epoch_batches(0, 0))
    assert tokens.shape[1] == 32
    for row, cell in enumerate(batcher._epoch_plan(0)[0]):
        original = cells.genes[cell]
        kept = ranks[row][: min(32, len(original))].numpy()
        assert kept[0] == 0 and np.all(np.diff(kept) > 0), "<cls> first, then genes by rank"
        unmasked = (labels[row][: len(kept)] == -100).numpy()
        assert np.array_equal(tokens[row][: len(kept)].numpy()[unmasked], original[kept][unmasked])
        scored = ~unmasked
        assert np.array_equal(labels[row][: len(kept)].numpy()[scored], original[kept][scored])
        if len(original) <= 32:
            assert np.array_equal(kept, np.arange(len(original))), "a short cell is read whole"
    again = list(RankBatcher(cells, vocabulary_size=400, batch_size=3, seed=0, window=32, drop_last=False,
                             mask_ratio=0.15).epoch_batches(0, 0))[0]
    assert all(torch.equal(a, b) for a, b in zip((tokens, labels, ranks), again)), "seeded"
    with pytest.raises(ValueError, match="window"):
        RankBatcher(cells, vocabulary_size=400, batch_size=3, window=1)


def test_ranks_passed_explicitly_equal_the_default_positions():
    torch.manual_seed(0)
    model = CellEncoder(tiny("rank", n_genes=60, max_len=512, rank_positions="log")).eval()
    tokens = torch.tensor([[CLS_ID] + list(range(5, 55))])
    ranks = torch.arange(tokens.shape[1])[None]
    assert torch.allclose(model.hidden_states(tokens), model.hidden_states(tokens, positions=ranks))
    # A window's genes sit at their own ranks, not at 1..k: the states differ from the same genes packed.
    spread = torch.tensor([[0] + [3 * i + 100 for i in range(1, 51)]])
    assert not torch.allclose(model.hidden_states(tokens), model.hidden_states(tokens, positions=spread))


def test_a_windowed_encoder_trains_records_its_window_and_reads_longer_cells(tmp_path):
    result = train_tiny("rank", steps=12, window=8, export_dir=tmp_path / "model")
    settings = result.tokenizer.vocabulary.settings
    assert settings["window"] == 8 and result.model.config.max_len == 32
    assert np.isfinite(result.history[-1].train_loss)
    model, tokenizer, _ = load_cell_encoder_checkpoint(tmp_path / "model")
    assert model.config.rank_positions == "index" and tokenizer.window == 8
    cells = synthetic_cells(20)
    assert max(len(g) for g in tokenizer.tokenize(cells).genes) > 8, "cells are read past the training window"
    embed_cells(cells, "cells-rank", checkpoint_dir=tmp_path / "model", device="cpu")
    assert np.isfinite(cells.obsm["X_cells_rank_cls"]).all()


def test_fitting_records_no_window_unless_asked():
    adata = synthetic_cells(30)
    assert "window" not in RankTokenizer.fit([adata], min_cells=1).vocabulary.settings
    assert RankTokenizer.fit([adata], min_cells=1, window=16).vocabulary.settings["window"] == 16
    with pytest.raises(ValueError, match="window"):
        RankTokenizer.fit([adata], min_cells=1, window=1)


def test_a_leave_out_model_is_reused_only_with_the_same_window_and_positions():
    recipe = leaveout.RECIPES["rank-window"]
    record = {"model": "cells-rank", "datasets": {"a": {}}, "steps": recipe.steps, "seed": 0,
              "init_from_pathway": None, "tokenizer": {"max_len": 2048, "window": 256}}
    assert leaveout.made_by(record, recipe, ["a"], 0, {"rank_positions": "log"})
    assert not leaveout.made_by(record, recipe, ["a"], 0, {"rank_positions": "index"})
    assert not leaveout.made_by({**record, "tokenizer": {"max_len": 2048}}, recipe, ["a"], 0, {"rank_positions": "log"})
    assert not leaveout.made_by(record, leaveout.RECIPES["rank"], ["a"], 0, {})
