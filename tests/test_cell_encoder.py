"""The cell encoder, its training pipeline, pathway initialisation and the two train.py sub-commands."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from cellang import checkpoints
from cellang.device import seed_everything
from cellang.embedding.loading import load_cell_encoder_checkpoint
from cellang.embedding.training import init_from_pathway, pathway_gene_embeddings, split_cells, train_cell_encoder
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.models.gpt import GPT, GPTConfig
from cellang.paths import REPO_ROOT
from cellang.tokenizers.cells import CLS_ID, N_SPECIAL, PAD_ID, CellVocabulary, pad_rows
from cellang.tokenizers.pathway import PathwayVocabulary
from cellang.training import TrainConfig
from tests.scripts import load_script
from tests.synthetic_cells import synthetic_cells

torch.set_num_threads(1)


def tiny(mode: str, **overrides) -> EncoderConfig:
    settings = dict(n_genes=0, n_layer=2, n_head=2, n_embd=32, max_len=32, dropout=0.0, mode=mode,
                    n_bins=11 if mode == "binned" else 0)
    return EncoderConfig(**{**settings, **overrides})


def train_tiny(mode: str, steps: int = 60, lr: float = 3e-3, **kwargs):
    config = TrainConfig(max_steps=steps, batch_size=16, lr=lr, min_lr=lr / 10, warmup_steps=5,
                         eval_interval=max(1, steps // 3), eval_batches=0, device="cpu", seed=0)
    return train_cell_encoder([synthetic_cells(120), synthetic_cells(40, seed=1, value_kind="log1p", dataset="b")],
                              model_config=tiny(mode), train_config=config, n_hvg=30, min_cells=1,
                              val_fraction=0.2, **kwargs)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        EncoderConfig(n_genes=10, mode="rank", n_bins=51)
    with pytest.raises(ValueError):
        EncoderConfig(n_genes=10, mode="binned", n_bins=0)
    with pytest.raises(ValueError):
        EncoderConfig(n_genes=10, n_embd=30, n_head=4)


@pytest.mark.parametrize("mode", ["binned", "rank"])
def test_padding_and_batch_neighbours_do_not_change_a_cell(mode: str) -> None:
    seed_everything(0)
    model = CellEncoder(tiny(mode, n_genes=40)).eval()
    short, long = np.array([CLS_ID, 5, 9, 7]), np.array([CLS_ID, *range(10, 30)])
    values = [np.array([0, 3, 1, 2]), np.array([0, *([4] * 20)])] if mode == "binned" else None

    def run(rows: list[np.ndarray], vals: list[np.ndarray] | None) -> tuple[torch.Tensor, torch.Tensor]:
        return model.embed(pad_rows(rows), None if vals is None else pad_rows(vals))

    alone = run([short], None if values is None else values[:1])
    together = run([short, long], values)
    assert torch.allclose(alone[0][0], together[0][0], atol=1e-5)
    assert torch.allclose(alone[1][0], together[1][0], atol=1e-5)
    assert torch.allclose(alone[1][0], model.hidden_states(
        pad_rows([short]), None if values is None else pad_rows(values[:1]))[0, 1:].mean(0), atol=1e-6)


@pytest.mark.parametrize("length", [1, 17, 32])
def test_trunk_flops_match_torch_flop_counter(length: int) -> None:
    """The analytic count the perturbation benchmark reports equals what torch counts on the math
    attention path (the fused kernels are invisible to FlopCounterMode)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = CellEncoder(tiny("rank", n_genes=40, n_layer=3)).eval()
    tokens = torch.randint(3, 40, (1, length))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.embed(tokens)
    assert model.trunk_flops(length) == counter.get_total_flops()


def test_binned_loss_parts() -> None:
    seed_everything(0)
    model = CellEncoder(tiny("binned", n_genes=20))
    tokens = pad_rows([np.array([CLS_ID, 5, 6, 7]), np.array([CLS_ID, 8])])
    values = pad_rows([np.array([0, 11, 4, 10]), np.array([0, 11])])  # 11 = the <mask> bin
    targets = torch.tensor([[-1.0, 0.5, -1.0, -1.0], [-1.0, 1.0, -1.0, -1.0]])
    profile = torch.zeros(2, 20)
    profile[0, [5, 6, 7]] = torch.tensor([0.5, 0.4, 1.0])
    profile[1, 8] = 1.0
    predicted, with_profile = model(tokens, targets, values, profile)
    _, masked_only = model(tokens, targets, values)  # scGPT's GEPC on the masked positions
    assert predicted.shape == tokens.shape and torch.isfinite(with_profile) and torch.isfinite(masked_only)
    assert not torch.isclose(with_profile, masked_only)
    _, nothing_expressed = model(tokens, targets, values, torch.zeros(2, 20))
    assert torch.isfinite(nothing_expressed)
    _, none_scored = model(tokens, torch.full_like(targets, -1.0), values, profile)
    assert none_scored.item() == 0.0


def test_tiny_binned_model_learns() -> None:
    result = train_tiny("binned", steps=30)
    first, last = result.history[0], result.history[-1]
    # targets are bins / (n_bins - 1) in [0, 1]; the first entry averages the first 10 steps
    assert last.train_loss < 0.4 * first.train_loss and last.val_loss < 0.7 * first.val_loss
    record = result.record
    assert record["n_train_cells"] + record["n_val_cells"] == 160
    assert record["datasets"]["b"]["cells"] == 40 and record["steps"] == 30


def test_tiny_rank_model_learns() -> None:
    result = train_tiny("rank", steps=60, lr=1e-2)
    first, last = result.history[0], result.history[-1]
    chance = math.log(len(result.tokenizer.vocabulary))  # uniform over the 33 tokens
    assert last.train_loss < first.train_loss and last.val_loss < first.val_loss
    assert last.val_loss < chance - 0.15


def test_checkpoint_round_trip_and_resume(tmp_path) -> None:
    result = train_tiny("binned", steps=6, export_dir=tmp_path / "out", run_dir=tmp_path / "run")
    model, tokenizer, record = load_cell_encoder_checkpoint(tmp_path / "out")
    assert tokenizer.vocabulary == result.tokenizer.vocabulary and model.config == result.model.config
    assert record["model"] == "cells-binned" and record["parameters"] == model.num_parameters()
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    assert not (tmp_path / "out" / checkpoints.TRAINING_STATE_FILE).exists()

    # 3 steps, then resume to 6, ends where the uninterrupted run ended
    config = TrainConfig(max_steps=3, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_interval=2,
                         eval_batches=0, device="cpu", seed=0, checkpoint_interval=3)
    adatas = [synthetic_cells(120), synthetic_cells(40, seed=1, value_kind="log1p", dataset="b")]
    common = dict(model_config=tiny("binned"), n_hvg=30, min_cells=1, val_fraction=0.2, run_dir=tmp_path / "r2")
    train_cell_encoder(adatas, train_config=config, **common)
    config.max_steps = 6
    resumed = train_cell_encoder(adatas, train_config=config, resume=True, **common)
    for name, tensor in result.model.state_dict().items():
        assert torch.allclose(tensor, resumed.model.state_dict()[name], atol=1e-6), name


def test_split_cells_is_seeded_and_disjoint() -> None:
    train, val = split_cells(100, 0.05, seed=4)
    assert len(val) == 5 and not set(train) & set(val) and len(train) + len(val) == 100
    assert np.array_equal(val, split_cells(100, 0.05, seed=4)[1])
    assert not np.array_equal(val, split_cells(100, 0.05, seed=5)[1])


def fake_pathway_checkpoint(directory, genes: list[str], width: int, rank: int | None = None):
    """A pathway GPT checkpoint whose gene embedding rows we know (rank-limited when asked)."""
    vocabulary = PathwayVocabulary(genes)
    model = GPT(GPTConfig(vocab_size=len(vocabulary), block_size=8, n_layer=1, n_head=1, n_embd=width,
                          dropout=0.0, objective="next_token"))
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(len(genes), width))
    if rank is not None:
        rows = rng.normal(size=(len(genes), rank)) @ rng.normal(size=(rank, width))
    with torch.no_grad():
        model.transformer.wte.weight[4:] = torch.tensor(rows, dtype=torch.float32)
    checkpoints.save_checkpoint(directory, model, config=model.config_dict(), vocabulary_json=vocabulary.to_json(),
                                record={})
    return {gene: rows[i] for i, gene in enumerate(vocabulary.genes)}


def test_pathway_init_copies_the_matching_rows(tmp_path) -> None:
    source = fake_pathway_checkpoint(tmp_path / "gpt", ["A", "B", "C", "D", "E"], width=8)
    vocabulary = CellVocabulary(["B", "D", "Z"], mode="binned", settings={"n_bins": 11, "max_len": 8})
    seed_everything(0)
    model = CellEncoder(tiny("binned", n_genes=len(vocabulary), n_embd=8))
    before = model.transformer.wte.weight.detach().clone()
    info = init_from_pathway(model, vocabulary, tmp_path / "gpt")
    after = model.transformer.wte.weight.detach()
    assert info["genes_initialised"] == 2 and info["projection"] == "identity"
    b, d, z = N_SPECIAL, N_SPECIAL + 1, N_SPECIAL + 2
    scale = after[b, 0].item() / source["B"][0]
    assert np.allclose(after[b].numpy(), scale * source["B"], atol=1e-6)
    assert np.allclose(after[d].numpy(), scale * source["D"], atol=1e-6)  # one common scale for all rows
    assert abs(after[[b, d]].std().item() - 0.02) < 1e-6  # rescaled to the encoder's initial spread
    assert torch.equal(after[z], before[z]) and torch.equal(after[:N_SPECIAL], before[:N_SPECIAL])


def test_pathway_init_projects_onto_principal_components(tmp_path) -> None:
    # Source rows of rank 3 in 8 dims: a 4-dim principal projection keeps every distance (up to scale).
    genes = [f"G{i}" for i in range(12)]
    source = fake_pathway_checkpoint(tmp_path / "gpt", genes, width=8, rank=3)
    vocabulary = CellVocabulary(genes, mode="rank", settings={"max_len": 8}, gene_medians=[1.0] * 12)
    token_ids, rows = pathway_gene_embeddings(vocabulary, 4, tmp_path / "gpt")
    assert token_ids.tolist() == [N_SPECIAL + i for i in range(12)] and rows.shape == (12, 4)
    original = np.stack([source[g] for g in vocabulary.genes])
    d_source = np.linalg.norm(original[:, None] - original[None], axis=-1)
    d_rows = torch.cdist(rows.double(), rows.double()).numpy()
    ratio = d_rows[d_source > 0] / d_source[d_source > 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-4)
    with pytest.raises(ValueError, match="cannot initialise"):
        pathway_gene_embeddings(vocabulary, 16, tmp_path / "gpt")


@pytest.mark.parametrize("command", ["cells-binned", "cells-rank"])
def test_train_script_cell_commands(command: str, tmp_path, monkeypatch) -> None:
    import cellang.embedding.training

    adatas = [synthetic_cells(60), synthetic_cells(30, seed=1, dataset="b")]
    monkeypatch.setattr(cellang.embedding.training, "load_atlas_corpus", lambda names=None: (adatas, "abc123"))
    gpt_dir = tmp_path / "gpt"
    fake_pathway_checkpoint(gpt_dir, [f"G{i:02d}" for i in range(0, 30, 2)], width=16)
    args = [command, "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"), "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--max-len", "16", "--batch-size", "8", "--max-steps", "4",
            "--warmup", "1", "--eval-interval", "2", "--checkpoint-interval", "2", "--device", "cpu",
            "--init-from-pathway", "--pathway-checkpoint", str(gpt_dir)]
    args += ["--n-hvg", "20"] if command == "cells-binned" else ["--min-cells", "1"]
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "scripts" / "train.py"), *args])
    assert load_script("train").main(args) == 0
    model, tokenizer, record = load_cell_encoder_checkpoint(tmp_path / "out")
    assert record["atlas_manifest_sha256"] == "abc123" and record["steps"] == 4
    assert record["command_line"].startswith(f"python scripts/train.py {command} --out '<external>/out'")
    assert record["init_from_pathway"]["genes_initialised"] == sum(g in {f"G{i:02d}" for i in range(0, 30, 2)}
                                                                    for g in tokenizer.vocabulary.genes)
    assert model.config.mode == command.split("-")[1] and model.config.max_len == 16
    assert len(tokenizer.vocabulary.genes) == (20 if command == "cells-binned" else 30)
    config = json.loads((tmp_path / "out" / checkpoints.CONFIG_FILE).read_text())
    assert config["n_genes"] == len(tokenizer.vocabulary)
    assert (tmp_path / "run" / checkpoints.TRAINING_STATE_FILE).exists()
    assert model(pad_rows([np.array([CLS_ID, PAD_ID + N_SPECIAL])]),
                 values=pad_rows([np.array([0, 3])]) if command == "cells-binned" else None)[1] is None
