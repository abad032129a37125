"""Fine-tuning an encoder to tell states apart (cellang.embedding.classify), its command line and cl.tl.fine_tune."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cellang as cl
from cellang import checkpoints
from cellang.cells.stream import MemoryCells
from cellang.embedding import classify
from cellang.embedding.classify import (
    CLASSIFIER_FILE, ClassifierError, fine_tune_classifier, load_classifier, predict, state_weights, stratified_split
)
from cellang.embedding.finetune import train_cell_encoder_streaming
from cellang.embedding.loading import scan_cell_models
from cellang.models.encoder import EncoderConfig
from cellang.training import TrainConfig
from tests.synthetic_cells import synthetic_cells

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=["binned", "rank"])
def base(request, tmp_path_factory) -> Path:
    """A tiny encoder of each kind, pretrained a few steps on other synthetic cells (no labels)."""
    mode = request.param
    out = tmp_path_factory.mktemp("base") / f"tiny-{mode}"
    config = EncoderConfig(n_genes=0, n_layer=1, n_head=2, n_embd=16, max_len=32, mode=mode,
                           n_bins=11 if mode == "binned" else 0)
    train_cell_encoder_streaming(MemoryCells(synthetic_cells(96, n_types=3, seed=1), name="pretraining"),
                                 model_config=config, min_cells=3, n_hvg=30, val_fraction=0.1, export_dir=out,
                                 train_config=TrainConfig(max_steps=4, batch_size=8, warmup_steps=1, eval_interval=2,
                                                          eval_batches=1, seed=0))
    return out


def two_states(n: int = 90):
    """Cells of two planted states (their own gene modules), named "healthy" and "diseased"."""
    adata = synthetic_cells(n, n_types=2, seed=3, dataset="mine")
    adata.obs["state"] = np.where(adata.obs["cell_type"] == "type0", "healthy", "diseased")
    return adata


def test_the_split_keeps_every_state_in_every_part_and_is_seeded():
    labels = np.array(["a"] * 20 + ["b"] * 5 + ["c"] * 3)
    split = stratified_split(labels, seed=1)
    parts = (split.train, split.validation, split.test)
    assert sorted(np.concatenate(parts).tolist()) == list(range(labels.size)), "every cell in exactly one part"
    for part in parts:
        assert set(labels[part]) == {"a", "b", "c"}
    again = stratified_split(labels, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(parts, (again.train, again.validation, again.test)))
    with pytest.raises(ClassifierError, match="'d' has 2 cells"):
        stratified_split(np.array(["a"] * 10 + ["d"] * 2))


def test_rare_states_weigh_as_much_as_common_ones():
    weights = state_weights(np.array([0] * 90 + [1] * 10), 2)
    assert torch.allclose(weights * torch.tensor([90.0, 10.0]), torch.tensor([50.0, 50.0]))


def test_a_fine_tuned_classifier_beats_chance_and_never_trains_on_held_out_cells(base, tmp_path, monkeypatch):
    trained_rows: list[int] = []
    real = classify._batch

    def spying(cells, rows, device):  # type: ignore[no-untyped-def]
        if torch.is_grad_enabled():  # a training step; predictions run without gradients
            trained_rows.extend(int(r) for r in rows)
        return real(cells, rows, device)

    monkeypatch.setattr(classify, "_batch", spying)
    adata = two_states()
    result = fine_tune_classifier(adata, "state", base, minutes=None, max_steps=60, out=tmp_path / "clf", seed=0)
    assert result.metrics["test"]["macro_f1"] >= 0.8, result.metrics
    held_out = set(result.split.test.tolist()) | set(result.split.validation.tolist())
    assert trained_rows and not held_out & set(trained_rows)
    assert result.states == ["diseased", "healthy"] and result.name == "my-clf"
    record = checkpoints.read_metadata(tmp_path / "clf")[2]
    about = record["classifier"]
    assert about["column"] == "state" and about["states"] == result.states
    assert about["cells"] == {"train": result.split.train.size, "validation": result.split.validation.size,
                              "test": result.split.test.size}
    assert about["metrics"]["test"]["macro_f1"] == result.metrics["test"]["macro_f1"]
    assert record["fine_tuning"]["task"] == "classification" and record["steps"] <= 60


def test_the_saved_classifier_loads_predicts_the_same_and_is_listed_as_an_encoder(base, tmp_path, monkeypatch):
    adata = two_states()
    result = fine_tune_classifier(adata, "state", base, minutes=None, max_steps=10, out=tmp_path / "clf", seed=0)
    model, tokenizer, states = load_classifier(tmp_path / "clf")
    cells = tokenizer.tokenize(adata)
    assert states == result.states
    assert np.allclose(predict(model, cells), predict(result.model, cells), atol=1e-5)
    monkeypatch.setattr(cl.settings, "models_dir", tmp_path)
    assert "my-clf" in {m.name for m in scan_cell_models().models}
    with pytest.raises(ClassifierError, match="no classifier.safetensors"):
        load_classifier(base)
    with pytest.raises(ClassifierError, match="exists"):
        fine_tune_classifier(adata, "state", base, minutes=None, max_steps=2, out=tmp_path / "clf")
    assert (tmp_path / "clf" / CLASSIFIER_FILE).is_file()


def test_the_same_cells_and_seed_give_the_same_classifier(base):
    adata = two_states(60)
    first = fine_tune_classifier(adata, "state", base, minutes=None, max_steps=8, save=False, seed=4)
    second = fine_tune_classifier(adata, "state", base, minutes=None, max_steps=8, save=False, seed=4)
    assert first.metrics == second.metrics
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                 second.model.state_dict().values()))


def _without_column(adata):  # type: ignore[no-untyped-def]
    adata.obs = adata.obs.drop(columns="state")


def _one_state(adata):  # type: ignore[no-untyped-def]
    adata.obs = adata.obs.assign(state="healthy")


def _one_missing(adata):  # type: ignore[no-untyped-def]
    adata.obs = adata.obs.assign(state=adata.obs["state"].where(adata.obs.index != "c0"))


@pytest.mark.parametrize("change, message", [(_without_column, "no obs column 'state'"), (_one_state, "one state"),
                                             (_one_missing, "have no 'state'")])
def test_bad_labels_are_named(base, change, message):
    adata = two_states(30)
    change(adata)
    with pytest.raises(ClassifierError, match=message):
        fine_tune_classifier(adata, "state", base, minutes=None, max_steps=2, save=False)


def test_the_command_line_fine_tunes_and_names_a_missing_column(tmp_path, capsys):
    from cellang.cells.io import write_h5ad
    from cellang.cli.main import main

    path = write_h5ad(cl.datasets.cells("oligodendroglioma")[:60].copy(), tmp_path / "cells.h5ad")
    assert main(["classify", str(path), "--column", "disease", "--max-steps", "2"]) == 2
    assert "no obs column 'disease'" in capsys.readouterr().err
    out = tmp_path / "clf"
    assert main(["classify", str(path), "--column", "cell_type", "--max-steps", "2", "--no-budget", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "my-clf:" in printed and "held-out cells" in printed and "macro-F1" in printed
    assert (out / CLASSIFIER_FILE).is_file()
    assert main(["classify", str(path), "--column", "cell_type", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_cl_tl_fine_tune_writes_uns_and_returns_a_model_name(tmp_path, monkeypatch):
    monkeypatch.setattr(cl.settings, "models_dir", tmp_path)
    cl.settings.progress_bar = False
    adata = cl.datasets.cells("oligodendroglioma")
    name = cl.tl.fine_tune(adata, "cell_type", "cells-binned", minutes=None, max_steps=2, seed=0)
    entry = adata.uns["fine_tune"]
    assert name == entry["model"] and name.startswith("my-cells-binned-classifier")
    assert set(entry["states"]) == set(adata.obs["cell_type"].astype(str))
    assert 0 <= entry["metrics"]["test"]["macro_f1"] <= 1
    cl.tl.embed(adata, model=name)
    assert adata.obsm[f"X_{name.replace('-', '_')}_mean"].shape[0] == adata.n_obs


@pytest.mark.parametrize("n_types", [2, 3])
def test_the_linear_probe_head_predicts_what_its_logistic_regression_scored(base, n_types):
    from cellang.embedding.classify import StateClassifier, linear_probe, scores
    from cellang.embedding.loading import load_cell_encoder_checkpoint

    adata = synthetic_cells(90, n_types=n_types, seed=3)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    states = sorted(set(labels.tolist()))
    targets = np.searchsorted(states, labels)
    split = stratified_split(labels, seed=0)
    encoder, tokenizer, _ = load_cell_encoder_checkpoint(base)
    cells = tokenizer.tokenize(adata)
    pooling, head, f1 = linear_probe(encoder, cells, targets, split, states, ("mean", "cls"), seed=0)
    model = StateClassifier(encoder, len(states), pooling)
    model.head = head
    predicted = predict(model, cells, split.validation).argmax(1)
    assert scores(targets[split.validation], predicted, states)["macro_f1"] == pytest.approx(f1)


def test_the_classify_benchmark_finds_each_datasets_own_leave_out_encoder(tmp_path):
    from tests.scripts import load_script

    bench = load_script("benchmark_classify")
    for folder in ("hsmm/binned-1500", "hsmm/binned-1500-adapted-5min", "hsmm/rank-1000", "pbmc/binned-10",
                   "pbmc/binned-20"):
        (tmp_path / folder).mkdir(parents=True)
    assert bench.encoder_for("leaveout:binned", "hsmm", tmp_path) == str(tmp_path / "hsmm" / "binned-1500")
    assert bench.encoder_for("cells-binned", "hsmm", tmp_path) == "cells-binned"
    assert bench.method_name("leaveout:binned") == "leave-out binned fine-tuned"
    with pytest.raises(ValueError, match="no pretrained rank encoder"):
        bench.encoder_for("leaveout:rank", "oligo", tmp_path)
    with pytest.raises(ValueError, match="more than one"):
        bench.encoder_for("leaveout:binned", "pbmc", tmp_path)


def test_too_rare_states_are_the_ones_the_split_refuses():
    labels = ["a"] * 5 + ["b"] * 2 + ["c"] * 3 + ["d"]
    assert classify.too_rare_states(labels) == ["b", "d"]
    kept = [s for s in labels if s not in classify.too_rare_states(labels)]
    classify.stratified_split(kept)  # no error once they are dropped
    with pytest.raises(classify.ClassifierError, match="'b' has 2 cells"):
        classify.stratified_split(labels)
