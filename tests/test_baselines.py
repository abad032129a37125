"""Pathway-completion baselines and the gene-set DAE, on synthetic corpora with known answers.

The planted corpus has 4 disjoint modules of 10 genes plus 10 genes in no set; every training
set is drawn from inside one module, so a completer that learns the modules should rank the rest
of the prompt's module first.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from cellang.completion.baselines import (
    Completer,
    CooccurrenceCompleter,
    DAECompleter,
    FrequencyCompleter,
    RandomCompleter,
)
from cellang.completion.dae_training import DAEBatcher, train_dae
from cellang.completion.loading import load_dae
from cellang.models.dae import DAEConfig, SetDAE
from cellang.training import TrainConfig
from tests.scripts import load_script

torch.set_num_threads(1)

MODULES = [[f"M{m}G{g}" for g in range(10)] for m in range(4)]
LONERS = [f"L{g}" for g in range(10)]
UNIVERSE = sorted([g for module in MODULES for g in module] + LONERS)


def planted_sets(n: int, seed: int = 0) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        module = MODULES[rng.integers(len(MODULES))]
        sets.append(tuple(rng.choice(module, size=int(rng.integers(3, 8)), replace=False).tolist()))
    return sets


TRAIN = planted_sets(300)
PROMPTS = [["M0G0", "M0G1", "M0G2"], ["M1G5", "M1G6"], ["M2G0", "L3", "not-a-gene"], ["L0"], [], ["M3G9"]]
N = [7, 3, 60, 5, 4, 0]


def simple_completers() -> list[Completer]:
    return [RandomCompleter(UNIVERSE, seed=1), FrequencyCompleter(TRAIN, UNIVERSE),
            CooccurrenceCompleter(TRAIN, UNIVERSE)]


@pytest.fixture(scope="module")
def trained_dae() -> tuple[SetDAE, dict]:
    config = DAEConfig(n_genes=len(UNIVERSE), hidden=64, latent=16, dropout=0.0)
    train_config = TrainConfig(max_steps=150, batch_size=32, lr=1e-2, min_lr=1e-3, warmup_steps=10,
                               weight_decay=0.0, eval_interval=50, eval_batches=0, seed=0, device="cpu")
    return train_dae(planted_sets(2000, seed=1), UNIVERSE, config=config, train_config=train_config,
                     val_fraction=0.05)


def check_rankings(completer: Completer, prompts=PROMPTS, n=N) -> list[list[tuple[str, float]]]:
    rankings = completer.rank(prompts, n)
    assert len(rankings) == len(prompts)
    for prompt, k, ranking in zip(prompts, n, rankings):
        genes = [g for g, _ in ranking]
        available = set(UNIVERSE) - set(prompt)
        assert len(genes) == min(k, len(available)), completer.name
        assert len(set(genes)) == len(genes)
        assert set(genes) <= available
        scores = [s for _, s in ranking]
        assert all(isinstance(s, float) for s in scores)
        if completer.name != "random":
            assert scores == sorted(scores, reverse=True), completer.name
    return rankings


@pytest.mark.parametrize("index", range(3))
def test_simple_completers_contract_and_determinism(index: int) -> None:
    completer = simple_completers()[index]
    assert isinstance(completer, Completer)
    first = check_rankings(completer)
    assert first == check_rankings(simple_completers()[index])
    with pytest.raises(ValueError):
        completer.rank(PROMPTS, N[:-1])
    with pytest.raises(TypeError):
        completer.rank(["M0G0", "M0G1"], [3, 3])  # one gene list is not a list of prompts


def test_dae_completer_contract_and_determinism(trained_dae) -> None:
    model, _ = trained_dae
    completer = DAECompleter(model, UNIVERSE, "cpu", prompt_batch=4)  # several chunks
    assert isinstance(completer, Completer)
    assert check_rankings(completer) == check_rankings(completer)


def test_random_completer_seeds() -> None:
    prompts, n = [["M0G0"]] * 3, [20] * 3
    a, b = RandomCompleter(UNIVERSE, 0).rank(prompts, n), RandomCompleter(UNIVERSE, 1).rank(prompts, n)
    assert a == RandomCompleter(UNIVERSE, 0).rank(prompts, n)
    assert a != b
    assert a[0] != a[1]  # prompt i is seeded by (seed, i)
    assert all(score == 0.0 for ranking in a for _, score in ranking)
    # each gene is about equally likely to be drawn
    draws = Counter(g for r in RandomCompleter(UNIVERSE, 2).rank([[]] * 400, [10] * 400) for g, _ in r)
    assert set(draws) == set(UNIVERSE) and max(draws.values()) < 3 * min(draws.values())


def test_frequency_order() -> None:
    sets = [("B", "C"), ("C", "A"), ("C", "D", "D"), ("A", "outside")]
    universe = ["A", "B", "C", "D", "E"]
    ranking = FrequencyCompleter(sets, universe).rank([[], ["C"]], [10, 2])
    assert ranking[0] == [("C", 3.0), ("A", 2.0), ("B", 1.0), ("D", 1.0), ("E", 0.0)]
    assert ranking[1] == [("A", 2.0), ("B", 1.0)]


def test_cooccurrence_ranks_the_prompt_module_first() -> None:
    completer = CooccurrenceCompleter(TRAIN, UNIVERSE)
    for module in MODULES:
        prompt = module[:3]
        ranking = completer.rank([prompt], [len(UNIVERSE)])[0]
        assert {g for g, _ in ranking[:7]} == set(module[3:])
        assert all(score == 0.0 for _, score in ranking[7:])
    # no prompt gene in the universe: frequency order
    frequency = FrequencyCompleter(TRAIN, UNIVERSE).rank([[]], [len(UNIVERSE)])[0]
    assert [g for g, _ in completer.rank([["nope"]], [len(UNIVERSE)])[0]] == [g for g, _ in frequency]


def test_cooccurrence_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    universe = [f"G{i:02d}" for i in range(30)]
    sets = [tuple(rng.choice(universe + ["X1", "X2"], size=int(rng.integers(2, 9)), replace=False))
            for _ in range(60)]
    prompts = [list(rng.choice(universe + ["X1"], size=int(rng.integers(1, 5)), replace=False)) for _ in range(25)]
    completer = CooccurrenceCompleter(sets, universe, prompt_batch=7)

    frequency = {g: sum(g in s for s in sets) for g in universe}
    rankings = completer.rank(prompts, [len(universe)] * len(prompts))
    for prompt, ranking in zip(prompts, rankings):
        inside = set(prompt) & set(universe)
        scores = {g: float(sum(p in s and g in s for p in inside for s in sets)) for g in universe if g not in prompt}
        expected = sorted(scores, key=lambda g: (-scores[g], -frequency[g], g))
        assert ranking == [(g, scores[g]) for g in expected]


def test_dae_batcher() -> None:
    sets = planted_sets(50) + [("M0G0", "M0G1")]
    batcher = DAEBatcher(sets, UNIVERSE, batch_size=8, seed=3)
    for position, (inputs, targets) in zip(range(12), batcher(0)):  # crosses an epoch boundary
        assert inputs.shape == targets.shape == (8, len(UNIVERSE))
        assert (inputs.sum(1) >= 1).all() and (targets.sum(1) >= 1).all()
        assert not (inputs * targets).any()
        for row in range(8):
            members = frozenset(UNIVERSE[c] for c in (inputs[row] + targets[row]).nonzero().ravel().tolist())
            assert any(frozenset(s) == members for s in sets)
        again = next(batcher(position))
        assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    # hidden fraction follows the range (on average between 0.5 and 0.9)
    inputs, targets = next(DAEBatcher(planted_sets(400), UNIVERSE, batch_size=400, seed=0)(0))
    fraction = (targets.sum(1) / (inputs.sum(1) + targets.sum(1))).mean().item()
    assert 0.55 < fraction < 0.85
    with pytest.raises(ValueError):
        DAEBatcher([("M0G0",)], UNIVERSE, batch_size=1, seed=0)
    with pytest.raises(KeyError):
        DAEBatcher([("M0G0", "zzz")], UNIVERSE, batch_size=1, seed=0)


def test_dae_loss_ignores_input_genes_and_empty_rows() -> None:
    torch.manual_seed(0)
    model = SetDAE(DAEConfig(n_genes=6, hidden=8, latent=4, dropout=0.0))
    inputs = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.float)
    targets = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float)
    logits, loss = model(inputs, targets)
    log_probs = torch.log_softmax(logits[0, 2:], dim=-1)  # input genes excluded from the softmax
    assert torch.allclose(loss, -(log_probs[0] + log_probs[1]) / 2)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_dae_learns_the_modules(trained_dae) -> None:
    model, record = trained_dae
    history = record["history"]
    torch.manual_seed(0)
    untrained = SetDAE(model.config).eval()
    with torch.no_grad():
        initial = untrained(*next(DAEBatcher(planted_sets(200, seed=5), UNIVERSE, batch_size=200, seed=0)(0)))[1]
    # untrained: ~log(#genes not shown) ~ 3.8; knowing the modules: ~log(#module genes not shown) ~ 2.1
    assert history[-1]["val_loss"] < initial.item() - 1.2
    assert history[-1]["val_loss"] <= history[0]["val_loss"]
    completer = DAECompleter(model, UNIVERSE, "cpu")
    prompts = [module[i : i + 3] for module in MODULES for i in (0, 4, 7)]
    rankings = completer.rank(prompts, [7] * len(prompts))
    hits = [len({g for g, _ in r} & (set(m) - set(p))) / 7
            for r, p, m in zip(rankings, prompts, [m for m in MODULES for _ in range(3)])]
    chance = 7 / (len(UNIVERSE) - 3)
    assert np.mean(hits) > 0.8 > 4 * chance


def test_dae_checkpoint_round_trip(trained_dae, tmp_path) -> None:
    model, record = trained_dae
    from cellang import checkpoints

    checkpoints.save_checkpoint(tmp_path / "dae", model, config=model.config_dict(),
                                vocabulary_json={"genes": UNIVERSE}, record=record)
    loaded, genes, loaded_record = load_dae(tmp_path / "dae")
    assert genes == UNIVERSE and loaded_record["steps"] == record["steps"]
    inputs = torch.zeros(3, len(UNIVERSE))
    inputs[0, :3] = inputs[1, 10:12] = 1
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(inputs)[0], loaded(inputs)[0])
    expected = DAECompleter(model, UNIVERSE, "cpu").rank(PROMPTS, N)
    assert DAECompleter.load(tmp_path / "dae", "cpu").rank(PROMPTS, N) == expected


def test_train_dae_exports_a_checkpoint(tmp_path) -> None:
    config = DAEConfig(n_genes=len(UNIVERSE), hidden=16, latent=8)
    train_config = TrainConfig(max_steps=3, batch_size=16, eval_interval=3, warmup_steps=1, seed=0, device="cpu")
    model, record = train_dae(TRAIN, UNIVERSE, config=config, train_config=train_config, export_dir=tmp_path / "out",
                              record_extra={"note": "x"})
    loaded, genes, saved = load_dae(tmp_path / "out")
    assert genes == UNIVERSE and saved["note"] == "x" and saved["steps"] == 3 and saved["model"] == "pathway-dae"
    assert loaded.config == config
    with pytest.raises(ValueError):
        train_dae(TRAIN, UNIVERSE[:-1], config=config, train_config=train_config)


def test_train_script_pathway_dae_command(tmp_path, monkeypatch) -> None:
    import json
    import sys
    from types import SimpleNamespace

    import cellang.corpus
    from cellang.paths import REPO_ROOT

    test_only = ("T1", "T2", "M0G0")
    pathways = [SimpleNamespace(genes=s, split="train") for s in TRAIN]
    pathways.append(SimpleNamespace(genes=test_only, split="test"))
    corpus = SimpleNamespace(pathways=pathways, manifest_sha256="abc123")
    monkeypatch.setattr(cellang.corpus, "load_corpus", lambda *args: corpus, raising=False)
    script = load_script("train")
    args = ["pathway-dae", "--out", str(tmp_path / "out"), "--hidden", "8", "--latent", "4", "--batch-size", "16",
            "--max-steps", "4", "--warmup", "1", "--eval-interval", "2", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "scripts" / "train.py"), *args])
    assert script.main(args) == 0
    model, genes, record = load_dae(tmp_path / "out")
    # the pathway GPT's universe: train and test genes, sorted
    assert genes == sorted({g for s in TRAIN for g in s} | set(test_only))
    assert record["corpus_manifest_sha256"] == "abc123" and record["steps"] == 4
    assert record["command_line"].startswith("python scripts/train.py pathway-dae --out '<external>/out'")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["hidden"] == 8
