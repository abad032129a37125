"""Cells streamed from .h5ad files chunk by chunk, and the shuffled, resumable, rank-partitioned batches over them."""

from __future__ import annotations

import pickle
from itertools import islice

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from cellang.atlas import load_atlas_dataset
from cellang.cells import CellFileError, harmonise_var, write_h5ad
from cellang.cells.stream import H5adCells, iterate_chunks
from cellang.embedding.streaming import StreamingBatches, ValidationCells, validation_mask
from cellang.embedding.training import make_batcher
from cellang.tokenizers.rank import RankTokenizer


@pytest.fixture(scope="module")
def immune() -> ad.AnnData:
    cells = load_atlas_dataset("celltypist_immune")
    return cells[:300].copy()


@pytest.fixture(scope="module")
def files(tmp_path_factory, immune) -> list:
    folder = tmp_path_factory.mktemp("stream")
    first, second = immune[:170].copy(), immune[170:].copy()
    second.obs["dataset"] = "second"
    return [write_h5ad(first, folder / "first.h5ad"), write_h5ad(second, folder / "second.h5ad")]


def test_chunks_hold_every_cell_as_read_whole(files, immune):
    source = H5adCells(files, chunk_cells=64)
    assert source.n_cells == 300 and [s.n_cells for s in source.spans] == [64, 64, 42, 64, 64, 2]
    chunks = list(iterate_chunks(source))
    streamed = sp.vstack([sp.csr_matrix(c.X) for c in chunks])
    whole, _ = harmonise_var(immune, id_source="var_names", aggregation="sum")
    assert list(chunks[0].var_names) == list(whole.var_names)
    assert abs(streamed - sp.csr_matrix(whole.X)).max() == 0
    assert list(pd.concat([c.obs for c in chunks])["dataset"][-130:].unique()) == ["second"]
    assert set(chunks[0].obs["value_kind"]) == {"counts"}


def test_a_counts_layer_is_read_in_place_of_x(tmp_path, immune):
    cells = immune[:20].copy()
    cells.layers["counts"] = cells.X.copy()
    cells.X = sp.csr_matrix(np.log1p(cells.X.toarray()))
    cells.obs = cells.obs.drop(columns=["value_kind"])
    chunk = next(iterate_chunks(H5adCells([write_h5ad(cells, tmp_path / "layered.h5ad")])))
    assert chunk.X is None and chunk.obs["value_kind"].iloc[0] == "counts"
    assert chunk.layers["counts"].sum() == pytest.approx(immune[:20].X.sum())


@pytest.mark.parametrize("problem", ["missing", "pickle", "text", "csc", "no genes", "no cells"])
def test_bad_files_are_refused_by_name(tmp_path, immune, problem):
    path = tmp_path / f"{problem.replace(' ', '_')}.h5ad"
    if problem == "pickle":
        path.write_bytes(pickle.dumps({"X": [1, 2, 3]}))
    elif problem == "text":
        path.write_text("gene,cell\nA,1\n")
    elif problem == "csc":
        cells = immune[:10].copy()
        cells.X = sp.csc_matrix(cells.X)
        write_h5ad(cells, path)
    elif problem == "no genes":
        cells = immune[:10].copy()
        cells.var = pd.DataFrame(index=[f"feature_{i}" for i in range(cells.n_vars)])
        write_h5ad(cells, path)
    elif problem == "no cells":
        write_h5ad(immune[:0].copy(), path)
    with pytest.raises(CellFileError) as error:
        H5adCells([path])
    message = str(error.value)
    assert path.name in message or problem == "missing"
    expected = {"missing": "does not exist", "pickle": "", "text": "", "csc": "csc_matrix",
                "no genes": "known human genes", "no cells": "no cells"}[problem]
    assert expected in message


def test_validation_mask_is_seeded_and_bounded():
    mask = validation_mask(10_000, 0.05, seed=1, max_cells=300)
    assert mask.sum() == 300 and np.array_equal(mask, validation_mask(10_000, 0.05, seed=1, max_cells=300))
    assert validation_mask(100, 0.05, seed=1).sum() == 5


@pytest.fixture(scope="module")
def streamed(files):
    source = H5adCells(files, chunk_cells=32)
    held_out = validation_mask(source.n_cells, 0.1, seed=0)
    validation = ValidationCells(held_out, [])
    training = list(validation.training_chunks(source))
    tokenizer = RankTokenizer.fit(training, min_cells=2)
    return source, held_out, validation, training, tokenizer


def _batches(streamed, rank=0, world_size=1, start=0, n=12):
    source, held_out, _, _, tokenizer = streamed

    def group_batcher(cells, seed):
        return make_batcher("rank", cells, tokenizer.vocabulary, batch_size=16 // world_size, seed=seed,
                            drop_last=True)

    batches = StreamingBatches(source, tokenizer, group_batcher, batch_size=16, seed=3, held_out=held_out,
                               buffer_chunks=2, rank=rank, world_size=world_size)
    return batches, list(islice(batches(start), n))


def test_validation_cells_never_reach_training(streamed):
    source, held_out, validation, training, _ = streamed
    assert sum(p.n_obs for p in validation.parts) == held_out.sum() == 30
    assert sum(c.n_obs for c in training) == 270
    held_names = {n for p in validation.parts for n in p.obs_names}
    assert held_names.isdisjoint(n for c in training for n in c.obs_names)


def test_batches_are_seeded_and_resume_exactly(streamed):
    batches, first = _batches(streamed, n=20)
    _, again = _batches(streamed, n=20)
    _, resumed = _batches(streamed, start=13, n=7)
    per_epoch = sum(batches.group_size(g) for g in batches.groups(0))
    # 270 training cells in groups of two 32-cell chunks; each group drops its remainder of a 16-cell batch
    assert 270 // 16 - len(batches.groups(0)) <= per_epoch <= 270 // 16 < 20
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for a, b in zip(first[13:], resumed):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(len(b[0]) == 16 for b in first)


def test_ranks_read_disjoint_groups_of_half_batches(streamed):
    whole, _ = _batches(streamed, n=1)
    first, batches0 = _batches(streamed, rank=0, world_size=2, n=3)
    second, _ = _batches(streamed, rank=1, world_size=2, n=1)
    assert first.partitioned and all(len(b[0]) == 8 for b in batches0)
    spans = lambda b: {s for g in b.groups(0) for s in g}  # noqa: E731
    assert spans(first).isdisjoint(spans(second)) and spans(first) | spans(second) == spans(whole)


def test_a_soma_experiment_streams_like_a_file(tmp_path, immune):
    import tiledbsoma as soma

    from cellang.cells.soma import write_soma
    from cellang.cells.stream import SomaCells

    cells = immune[:40, :300].copy()
    cells.obs["dataset"] = ["a"] * 10 + ["b"] * 30
    source = H5adCells([write_h5ad(cells, tmp_path / "cells.h5ad")], chunk_cells=16)
    uri = write_soma(source, tmp_path / "soma")
    with soma.Experiment.open(uri) as experiment:
        streamed = SomaCells(experiment, obs_value_filter="dataset_id == 'b'", chunk_cells=8)
        chunks = list(iterate_chunks(streamed))
        assert streamed.n_cells == 30 and [c.n_obs for c in chunks] == [8, 8, 8, 6]
        assert list(chunks[0].var_names) == sorted(cells.var_names)
        expected = sp.csr_matrix(cells[10:, sorted(cells.var_names)].X)
        assert abs(sp.vstack([c.X for c in chunks]) - expected).max() == 0
        assert set(chunks[0].obs["dataset"]) == {"b"} and set(chunks[0].obs["value_kind"]) == {"counts"}
        with pytest.raises(CellFileError, match="matches no cell"):
            SomaCells(experiment, obs_value_filter="dataset_id == 'nowhere'")
    with pytest.raises(CellFileError, match="already exists"):
        write_soma(source, tmp_path / "soma")


def test_a_disk_too_small_for_the_soma_copy_is_named(tmp_path, files, monkeypatch):
    import shutil
    from collections import namedtuple

    from cellang.cells import soma

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(CellFileError, match="GB are free") as error:
        soma.write_soma(H5adCells(files), tmp_path / "soma")
    assert "--data" in str(error.value) and not (tmp_path / "soma").exists()
