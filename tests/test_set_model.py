"""The masked-set transformer: model invariances, the prompt batcher, training on a planted corpus, and
the completer's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cellang.completion.set_model import SetModelCompleter
from cellang.completion.set_training import SetPromptBatcher, train_set_model
from cellang.models.set_transformer import SetTransformer, SetTransformerConfig, prompt_tokens
from cellang.training import TrainConfig

GENES = [f"G{i:02d}" for i in range(40)]
# Four planted modules of ten genes; every training set is a random half of one module.
MODULES = [GENES[i * 10:(i + 1) * 10] for i in range(4)]


def planted_sets(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(MODULES[i % 4], size=6, replace=False).tolist()) for i in range(n)]


def tiny_model(**changes: object) -> SetTransformer:
    torch.manual_seed(0)
    return SetTransformer(SetTransformerConfig(n_genes=len(GENES), n_layer=2, n_head=2, n_embd=16, max_prompt=8,
                                               **changes)).eval()


def test_prompt_order_and_padding_do_not_matter() -> None:
    model = tiny_model()
    config = model.config
    a = prompt_tokens([np.array([3, 7, 11])], config)
    b = prompt_tokens([np.array([11, 3, 7])], config)
    padded = torch.cat([a, torch.full((1, 4), config.pad_id)], dim=1)
    with torch.no_grad():
        la, lb, lp = model(a)[0], model(b)[0], model(padded)[0]
    assert torch.allclose(la, lb, atol=1e-5) and torch.allclose(la, lp, atol=1e-5)


def test_loss_ignores_prompt_genes_and_rows_without_targets() -> None:
    model = tiny_model()
    tokens = prompt_tokens([np.array([1, 2]), np.array([5])], model.config)
    targets = torch.zeros(2, len(GENES))
    targets[0, [2, 3]] = 1.0  # gene 2 is also in the prompt: not a target
    _, loss = model(tokens, targets)
    logits, _ = model(tokens)
    log_probs = torch.log_softmax(logits[0].masked_fill(torch.isin(torch.arange(40), torch.tensor([1, 2])),
                                                        float("-inf")), dim=-1)
    assert torch.isclose(loss, -log_probs[3], atol=1e-5)  # row 1 has no target and is left out


def test_batcher_prompts_hold_out_at_least_one_and_respect_the_cap() -> None:
    config = SetTransformerConfig(n_genes=len(GENES), max_prompt=4)
    sets = [GENES[:2], GENES[:10], GENES[:30]]
    batcher = SetPromptBatcher(sets, GENES, config, batch_size=3, seed=1, drop_last=False,
                               prompt_fraction_range=(0.4, 0.4))
    tokens, targets = next(batcher.epoch_batches(0))
    shown = (tokens[:, 1:] < config.n_genes).sum(1)
    held = targets.sum(1)
    assert sorted(zip(shown.tolist(), held.tolist())) == [(1, 1), (4, 6), (4, 26)]
    again = next(batcher.epoch_batches(0))
    assert torch.equal(tokens, again[0]) and torch.equal(targets, again[1])


def test_batcher_plan_covers_every_set_once_per_epoch() -> None:
    sets = planted_sets(200)
    batcher = SetPromptBatcher(sets, GENES, SetTransformerConfig(n_genes=len(GENES)), batch_size=16, seed=0,
                               drop_last=False)
    plan = batcher._epoch_plan(3)
    assert sorted(np.concatenate(plan).tolist()) == list(range(200))
    with pytest.raises(ValueError, match="at least|>= 2"):
        SetPromptBatcher([["G00", "NOT_A_GENE"]], GENES, SetTransformerConfig(n_genes=len(GENES)), batch_size=1, seed=0)


def test_training_learns_planted_modules_and_completer_contract(tmp_path: Path) -> None:
    config = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=32, max_prompt=8)
    train = TrainConfig(max_steps=150, batch_size=32, lr=1e-2, min_lr=1e-3, warmup_steps=10, eval_interval=50,
                        seed=0, device="cpu")
    model, record = train_set_model(planted_sets(400), GENES, config=config, train_config=train,
                                    export_dir=tmp_path / "model", val_fraction=0.1)
    assert record["final_val_loss"] < np.log(34) - 0.5  # well below uniform over the non-prompt genes
    completer = SetModelCompleter.load(tmp_path / "model", device="cpu")
    prompt = MODULES[2][:3]
    ranked = completer.rank([prompt], [5])[0]
    assert len(ranked) == 5 and not {g for g, _ in ranked} & set(prompt)
    assert sum(g in MODULES[2] for g, _ in ranked) >= 4  # the planted module's other members come first
    probabilities = completer.probabilities([prompt, ["G00", "UNKNOWN"]])
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-4) and probabilities[0, GENES.index("G20")] == 0.0
    assert np.array_equal(completer.probabilities([prompt, ["G00", "UNKNOWN"]]), probabilities)  # deterministic
    assert np.allclose(completer.probabilities([prompt]), probabilities[:1], atol=1e-6)  # batching aside


def test_cooccurrence_teacher_is_coocurrence_normalised_off_the_prompt() -> None:
    from cellang.completion.baselines import CooccurrenceCompleter
    from cellang.completion.set_training import CooccurrenceTeacher

    sets = planted_sets(40, seed=3) + [GENES[5:25]]  # one large set crossing two modules
    columns = [np.array(sorted(GENES.index(g) for g in s)) for s in sets]
    teacher = CooccurrenceTeacher(columns, len(GENES), weight=2.0)
    prompts = [np.array([0, 1]), np.array([12, 30, 31])]
    weights = teacher(prompts).numpy()
    counts = CooccurrenceCompleter(sets, GENES).scores([[GENES[c] for c in p] for p in prompts])
    for row, prompt in enumerate(prompts):
        expected = counts[row].copy()
        expected[prompt] = 0.0
        assert np.allclose(weights[row], 2.0 * expected / expected.sum(), atol=1e-6)
        assert weights[row, prompt].sum() == 0.0 and np.isclose(weights[row].sum(), 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        CooccurrenceTeacher(columns, len(GENES), weight=0.0)


def test_loss_adds_the_teachers_cross_entropy_off_the_prompt() -> None:
    model = tiny_model()
    tokens = prompt_tokens([np.array([1, 2])], model.config)
    targets = torch.zeros(1, len(GENES))
    targets[0, 3] = 1.0
    teacher = torch.zeros(1, len(GENES))
    teacher[0, [4, 5]] = torch.tensor([0.3, 0.2])
    _, plain = model(tokens, targets)
    logits, distilled = model(tokens, targets, teacher)
    log_probs = torch.log_softmax(logits[0].masked_fill(torch.isin(torch.arange(40), torch.tensor([1, 2])),
                                                        float("-inf")), dim=-1)
    assert torch.isclose(distilled, plain - 0.3 * log_probs[4] - 0.2 * log_probs[5], atol=1e-5)
    assert torch.isfinite(distilled)


def test_training_with_the_teacher_moves_the_model_toward_cooccurrence(tmp_path: Path) -> None:
    """Sets mix a module with a hub gene that every large set holds: the held-out members of a small set rarely
    include it, co-occurrence counts it everywhere; the distilled model ranks it higher than the plain one."""
    rng = np.random.default_rng(5)
    hub = GENES[39]
    sets = [sorted(rng.choice(MODULES[i % 3], size=5, replace=False).tolist()) for i in range(300)]
    sets += [sorted({*rng.choice(GENES[:30], size=20, replace=False).tolist(), hub}) for _ in range(60)]
    config = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=16, max_prompt=8)
    train = TrainConfig(max_steps=80, batch_size=32, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_interval=40,
                        seed=0, device="cpu")
    ranks = {}
    for weight in (0.0, 3.0):
        train_set_model(sets, GENES, config=config, train_config=train, export_dir=tmp_path / f"w{weight}",
                        val_fraction=0.1, cooccurrence_weight=weight)
        completer = SetModelCompleter.load(tmp_path / f"w{weight}", device="cpu")
        probabilities = completer.probabilities([MODULES[0][:3], MODULES[1][:3], MODULES[2][:3]])
        ranks[weight] = probabilities[:, GENES.index(hub)].mean()
    assert ranks[3.0] > 2 * ranks[0.0]


def test_init_from_continues_a_checkpoint_and_records_it(tmp_path: Path) -> None:
    from cellang import checkpoints

    config = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=16, max_prompt=8)
    train = TrainConfig(max_steps=4, batch_size=16, warmup_steps=1, eval_interval=2, seed=0, device="cpu")
    train_set_model(planted_sets(100), GENES, config=config, train_config=train, export_dir=tmp_path / "base",
                    val_fraction=0.1)
    zero_steps = TrainConfig(max_steps=1, batch_size=16, lr=1e-12, min_lr=1e-12, warmup_steps=0, eval_interval=1,
                             seed=1, device="cpu", weight_decay=0.0)
    model, record = train_set_model(planted_sets(100), GENES, config=config, train_config=zero_steps,
                                    export_dir=tmp_path / "next", val_fraction=0.1, cooccurrence_weight=1.0,
                                    init_from=tmp_path / "base")
    base = SetModelCompleter.load(tmp_path / "base", device="cpu").model
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(base.state_dict().values(),
                                                               model.state_dict().values()))
    assert record["init_from"]["weights_sha256"] == checkpoints.weights_sha256(tmp_path / "base")
    assert record["init_from"]["steps"] == 4 and record["cooccurrence_weight"] == 1.0
    other = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=32, max_prompt=8)
    with pytest.raises(ValueError, match="config"):
        train_set_model(planted_sets(100), GENES, config=other, train_config=zero_steps, val_fraction=0.1,
                        init_from=tmp_path / "base")
    with pytest.raises(ValueError, match="vocabulary"):
        train_set_model([[g.lower() for g in s] for s in planted_sets(100)], [g.lower() for g in GENES],
                        config=config, train_config=zero_steps, val_fraction=0.1, init_from=tmp_path / "base")


def test_every_training_seed_holds_out_the_same_validation_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run with --seed 1 must not train on the slice that `cellang tune completer` validates on.
    from cellang.completion import set_training
    from cellang.completion.training import validation_slice

    held_out: dict[int, list] = {}

    class Recording(SetPromptBatcher):
        def __init__(self, gene_sets, *args, drop_last: bool = True, **kwargs) -> None:
            if not drop_last:  # the validation batcher
                held_out[kwargs["seed"]] = [tuple(s) for s in gene_sets]
            super().__init__(gene_sets, *args, drop_last=drop_last, **kwargs)

    monkeypatch.setattr(set_training, "SetPromptBatcher", Recording)
    config = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=16, max_prompt=8)
    sets = planted_sets(100)
    for seed in (0, 1):
        train = TrainConfig(max_steps=1, batch_size=16, warmup_steps=0, eval_interval=1, seed=seed, device="cpu")
        train_set_model(sets, GENES, config=config, train_config=train, val_fraction=0.1)
    assert held_out[0] == held_out[1] == [tuple(s) for s in validation_slice(sets, 0.1)[1]]
    assert len(held_out[0]) == 10


def test_averaging_checkpoints_gives_the_mean_weights_and_records_every_member(tmp_path: Path) -> None:
    from cellang import checkpoints
    from cellang.completion.set_training import average_set_models

    config = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=16, max_prompt=8)
    sets = planted_sets(100)
    for seed in (0, 1):
        train = TrainConfig(max_steps=3, batch_size=16, warmup_steps=1, eval_interval=3, seed=seed, device="cpu")
        train_set_model(sets, GENES, config=config, train_config=train, export_dir=tmp_path / f"run{seed}",
                        val_fraction=0.1, cooccurrence_weight=2.0)
    members = [SetModelCompleter.load(tmp_path / f"run{seed}", device="cpu").model.state_dict() for seed in (0, 1)]
    model, record = average_set_models([tmp_path / "run0", tmp_path / "run1"], sets, GENES,
                                       export_dir=tmp_path / "soup", val_fraction=0.1)
    soup = SetModelCompleter.load(tmp_path / "soup", device="cpu")
    for key, value in soup.model.state_dict().items():
        assert torch.allclose(value, (members[0][key] + members[1][key]) / 2, atol=1e-6)
    assert any(not torch.allclose(members[0][key], members[1][key]) for key in members[0])  # two different runs
    assert [m["weights_sha256"] for m in record["averaged_from"]] == [
        checkpoints.weights_sha256(tmp_path / f"run{seed}") for seed in (0, 1)]
    assert record["cooccurrence_weight"] == 2.0 and np.isfinite(record["final_val_loss"])
    assert soup.rank([["G00", "G01"]], [3])  # loads and completes like a trained model
    with pytest.raises(ValueError, match="at least two"):
        average_set_models([tmp_path / "run0"], sets, GENES)
    other = SetTransformerConfig(n_genes=len(GENES), n_layer=1, n_head=2, n_embd=32, max_prompt=8)
    train_set_model(sets, GENES, config=other, train_config=TrainConfig(max_steps=1, batch_size=16, warmup_steps=0,
                    eval_interval=1, device="cpu"), export_dir=tmp_path / "wide", val_fraction=0.1)
    with pytest.raises(ValueError, match="config"):
        average_set_models([tmp_path / "run0", tmp_path / "wide"], sets, GENES)


def test_completion_mixes_the_whole_prompt_with_each_prompt_gene_alone() -> None:
    model, genes = tiny_model(), GENES
    prompts = [["G01", "G05", "G33", "NOT_A_GENE"], ["G07"], ["NOT_A_GENE"]]

    def read(columns: list[int], masked: list[int]) -> np.ndarray:
        with torch.no_grad():
            logits = model(prompt_tokens([np.array(columns)], model.config))[0][0].double()
        logits[masked] = float("-inf")
        return torch.softmax(logits, -1).numpy()

    whole_only = SetModelCompleter(model, genes, "cpu", single_gene_share=0.0).probabilities(prompts)
    mixed = SetModelCompleter(model, genes, "cpu", single_gene_share=0.3).probabilities(prompts)
    ids = [1, 5, 33]
    assert np.allclose(whole_only[0], read(ids, ids), atol=1e-5)
    expected = 0.7 * read(ids, ids) + 0.3 * np.mean([read([i], [i]) for i in ids], axis=0)
    expected[ids] = 0.0
    assert np.allclose(mixed[0], expected / expected.sum(), atol=1e-5)
    assert np.allclose(mixed[1], read([7], [7]), atol=1e-5)  # one gene: both readings are the same
    assert np.allclose(mixed[2], whole_only[2], atol=1e-6)  # no vocabulary gene: the whole (empty) prompt
    assert np.allclose(mixed.sum(1), 1.0, atol=1e-4) and (mixed[0, ids] == 0).all()
    with pytest.raises(ValueError, match="single_gene_share"):
        SetModelCompleter(model, genes, "cpu", single_gene_share=1.5)
