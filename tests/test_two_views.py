"""Two views of each cell and the encoder's contrastive loss (EncoderConfig.contrastive_weight)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellang.embedding.training import views_of
from cellang.models.encoder import CellEncoder, EncoderConfig, paired_views_loss
from cellang.tokenizers.binned import BinnedBatcher
from cellang.tokenizers.cells import CLS_ID, TokenizedCells
from cellang.tokenizers.rank import RankBatcher

torch.set_num_threads(1)


def _cells(lengths: list[int], n_genes: int = 300, seed: int = 0, bins: bool = False) -> TokenizedCells:
    rng = np.random.default_rng(seed)
    genes = [np.concatenate(([CLS_ID], 5 + rng.permutation(n_genes - 5)[:n])) for n in lengths]
    values = [np.concatenate(([0], rng.integers(1, 51, n))) for n in lengths] if bins else None
    return TokenizedCells(genes, values, np.ones(n_genes, bool), 1.0, "counts")


def test_rank_views_split_each_cell_into_disjoint_halves_at_their_ranks():
    cells = _cells([41, 9, 120, 60])
    batcher = RankBatcher(cells, vocabulary_size=300, batch_size=4, seed=0, drop_last=False, mask_ratio=0.15,
                          views=2)
    (tokens, labels, ranks), = list(batcher.epoch_batches(0, 0))
    assert tokens.shape[0] == 8, "every cell twice"
    for k, cell in enumerate(batcher._epoch_plan(0)[0]):
        original = cells.genes[cell]
        first, second = ranks[k].numpy(), ranks[4 + k].numpy()
        first, second = first[: 1 + (len(original) // 2)], second[: 1 + (len(original) - 1) // 2]
        assert first[0] == 0 and second[0] == 0, "each view starts with <cls>"
        genes_a, genes_b = set(first[1:]), set(second[1:])
        assert not genes_a & genes_b and genes_a | genes_b == set(range(1, len(original))), "disjoint halves"
        for row, kept in ((k, first), (4 + k, second)):
            unmasked = (labels[row][: len(kept)] == -100).numpy()
            assert np.array_equal(tokens[row][: len(kept)].numpy()[unmasked], original[kept][unmasked])
    again = list(RankBatcher(cells, vocabulary_size=300, batch_size=4, seed=0, drop_last=False, mask_ratio=0.15,
                             views=2).epoch_batches(0, 0))[0]
    assert all(torch.equal(a, b) for a, b in zip((tokens, labels, ranks), again)), "seeded"


def test_binned_views_repeat_each_cell_with_its_own_mask():
    cells = _cells([30, 30, 30], bins=True)
    batcher = BinnedBatcher(cells, n_bins=51, vocabulary_size=300, batch_size=3, seed=0, drop_last=False,
                            mask_ratio=0.4, views=2)
    genes, targets, values, _ = next(iter(batcher.epoch_batches(0, 0)))
    assert torch.equal(genes[:3], genes[3:]), "the same cells in the same order"
    assert not torch.equal(targets[:3] >= 0, targets[3:] >= 0), "masked independently"
    with pytest.raises(ValueError, match="views"):
        BinnedBatcher(cells, n_bins=51, vocabulary_size=300, batch_size=3, views=3)


def test_paired_views_loss_is_low_for_matching_views_and_high_for_shuffled_ones():
    states = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    matched = paired_views_loss(torch.cat((states, states + 0.01)), temperature=0.2)
    shuffled = paired_views_loss(torch.cat((states, states[torch.tensor([1, 2, 3, 4, 5, 0])])), temperature=0.2)
    assert float(matched) < 0.5 < float(shuffled)


@pytest.mark.parametrize("mode", ["rank", "binned"])
def test_an_encoder_with_a_contrastive_weight_adds_the_views_loss(mode):
    config = EncoderConfig(n_genes=300, n_layer=1, n_head=2, n_embd=16, max_len=128, mode=mode,
                           n_bins=0 if mode == "rank" else 51, contrastive_weight=1.0)
    assert views_of(config) == 2 and views_of(EncoderConfig(n_genes=300)) == 1
    cells = _cells([40] * 8, bins=mode == "binned")
    batcher = (RankBatcher(cells, vocabulary_size=300, batch_size=8, seed=0, views=2) if mode == "rank" else
               BinnedBatcher(cells, n_bins=51, vocabulary_size=300, batch_size=8, seed=0, views=2))
    batch = next(iter(batcher.epoch_batches(0, 0)))
    torch.manual_seed(0)
    model = CellEncoder(config)
    _, with_views = model(*batch)
    model.config.contrastive_weight = 0.0
    _, without = model(*batch)
    assert float(with_views) > float(without) > 0
    model.config.contrastive_weight = 1.0
    with pytest.raises(ValueError, match="even"):
        model(*(t[:-1] for t in batch))
    with pytest.raises(ValueError, match="contrastive"):
        EncoderConfig(n_genes=300, contrastive_weight=-1.0)
