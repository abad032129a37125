"""The GPT decoder: shapes, causality, pad handling, weight tying, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cellang.models.gpt import GPT, GPTConfig

VOCAB = 30


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    options = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0,
                   objective="next_token")
    options.update(overrides)
    return GPT(GPTConfig(**options)).eval()


def test_forward_shapes_and_loss_only_with_targets() -> None:
    model = tiny()
    idx = torch.randint(4, VOCAB, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, VOCAB) and loss is None
    logits, loss = model(idx, idx)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)


def test_untrained_loss_is_near_uniform() -> None:
    # Small init means near-uniform predictions: loss ~ log(vocab).
    model = tiny()
    idx = torch.randint(4, VOCAB, (8, 12))
    _, loss = model(idx, torch.randint(4, VOCAB, (8, 12)))
    assert abs(loss.item() - math.log(VOCAB)) < 0.1


def test_attention_is_causal() -> None:
    model = tiny()
    idx = torch.randint(4, VOCAB, (1, 10))
    changed = idx.clone()
    changed[0, 6] = (idx[0, 6] + 1 - 4) % (VOCAB - 4) + 4
    before, after = model(idx)[0], model(changed)[0]
    assert torch.equal(before[:, :6], after[:, :6]), "earlier positions must not see later tokens"
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_pad_targets_are_ignored() -> None:
    model = tiny()
    idx = torch.randint(4, VOCAB, (2, 8))
    targets = torch.randint(4, VOCAB, (2, 8))
    targets[0, 5:] = 0
    targets[1, 3:] = 0
    logits, loss = model(idx, targets)
    keep = targets != 0
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(loss, expected)
    # The logits at padded positions must not matter.
    other_idx = idx.clone()
    other_idx[0, 6:] = 5
    assert torch.allclose(model(other_idx, targets)[1], loss)


def test_weight_tying_and_parameter_count() -> None:
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight
    untied = sum(p.numel() for p in model.state_dict().values())
    assert model.num_parameters() == untied - VOCAB * 32


def test_residual_projections_use_scaled_init() -> None:
    model = tiny(n_layer=4, n_embd=64, n_head=4, vocab_size=2000)
    proj = model.transformer.h[0].mlp.c_proj.weight
    fc = model.transformer.h[0].mlp.c_fc.weight
    assert abs(fc.std().item() - 0.02) < 0.002
    assert abs(proj.std().item() - 0.02 / math.sqrt(2 * 4)) < 0.001


def test_sequence_longer_than_block_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="block_size"):
        tiny()(torch.zeros((1, 17), dtype=torch.long))


def test_config_dict_rebuilds_the_same_architecture() -> None:
    model = tiny(dropout=0.1, bias=True)
    rebuilt = GPT(GPTConfig(**model.config_dict()))
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_heads_must_divide_embedding() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, n_embd=30, n_head=4)


def test_dropout_only_in_training_mode() -> None:
    model = tiny(dropout=0.5)
    idx = torch.randint(4, VOCAB, (2, 8))
    assert torch.equal(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])


def test_gradients_reach_every_parameter() -> None:
    model = tiny().train()
    idx = torch.randint(4, VOCAB, (4, 8))
    _, loss = model(idx, torch.roll(idx, -1, dims=1))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
