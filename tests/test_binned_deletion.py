"""Deletion through a binned encoder: a gene's token and value leave the cell's input; overexpression gives it the
top bin."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from cellang import checkpoints
from cellang.cells import load_atlas_dataset
from cellang.cells.io import subset_cells
from cellang.embedding.loading import CellModel
from cellang.models.encoder import CellEncoder, EncoderConfig
from cellang.perturbation.engine import PerturbError, Perturber, plan_perturbations
from cellang.perturbation.request import PerturbationRequest, Selection
from cellang.perturbation.workflow import run_perturbation
from cellang.tokenizers.binned import BinnedTokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def hsmm():
    return load_atlas_dataset("hsmm")


@pytest.fixture(scope="module")
def binned(hsmm, tmp_path_factory) -> tuple[CellEncoder, BinnedTokenizer, Path]:
    """A random binned encoder with a tokeniser fitted on HSMM (300 genes, 48 tokens), saved as a checkpoint."""
    tokenizer = BinnedTokenizer.fit([hsmm], n_hvg=300, n_bins=11, max_len=48)
    torch.manual_seed(0)
    encoder = CellEncoder(EncoderConfig(n_genes=len(tokenizer.vocabulary), n_layer=1, n_head=2, n_embd=16, max_len=48,
                                        mode="binned", n_bins=11)).eval()
    folder = checkpoints.save_checkpoint(tmp_path_factory.mktemp("models") / "tiny-binned", encoder,
                                         config=asdict(encoder.config), vocabulary_json=tokenizer.vocabulary.to_json(),
                                         record={"model": "cells-binned", "note": "random test stand-in"})
    return encoder, tokenizer, folder


def embed_one(encoder, tokens, values) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return encoder.embed(torch.as_tensor(tokens)[None], torch.as_tensor(values)[None])[1][0].double()


def test_binned_deletion_equals_a_forward_pass_without_the_gene(hsmm, binned):
    encoder, tokenizer, _ = binned
    cells = tokenizer.tokenize(hsmm[:3])
    plan = plan_perturbations(cells.genes, None, "delete")
    scores = Perturber(encoder, pooling="mean", device="cpu").score(cells.genes, plan, cell_values=cells.values)
    for k in (0, 7, len(plan) - 1):
        row, position = int(plan.rows[k]), int(plan.positions[k])
        tokens, values = cells.genes[row], cells.values[row]
        before = embed_one(encoder, tokens, values)
        after = embed_one(encoder, np.delete(tokens, position), np.delete(values, position))
        shift = 1 - torch.nn.functional.cosine_similarity(before, after, dim=0).item()
        assert scores.shift[k] == pytest.approx(shift, abs=1e-6)


def test_binned_overexpression_gives_the_gene_the_top_bin(hsmm, binned):
    encoder, tokenizer, _ = binned
    cells = tokenizer.tokenize(hsmm[:1])
    tokens, values = cells.genes[0], cells.values[0]
    gene, position = int(tokens[5]), 5
    plan = plan_perturbations(cells.genes, [gene], "overexpress")
    scores = Perturber(encoder, pooling="mean", device="cpu").score(cells.genes, plan, cell_values=cells.values)
    raised = values.copy()
    raised[position] = 10  # the top of 11 bins
    before, after = embed_one(encoder, tokens, values), embed_one(encoder, tokens, raised)
    assert scores.shift[0] == pytest.approx(1 - torch.nn.functional.cosine_similarity(before, after, dim=0).item(),
                                            abs=1e-6)


def test_a_binned_encoder_needs_its_values(binned, hsmm):
    encoder, tokenizer, _ = binned
    cells = tokenizer.tokenize(hsmm[:1])
    with pytest.raises(PerturbError, match="value bins"):
        Perturber(encoder, device="cpu").embed(cells.genes)


def test_the_workflow_ranks_deletions_through_a_binned_encoder(hsmm, binned):
    _, _, folder = binned
    model = CellModel("my-tiny-binned", folder, "binned", False, "test")
    request = PerturbationRequest(Selection("state", ("myotube",), ("myoblast",)), max_cells=3, min_cells=1,
                                  gene_types=None)
    result = run_perturbation(hsmm, request, model=model)
    assert len(result.ranked) > 10 and result.ranked["q"].between(0, 1).all()
    assert result.settings["model"] == "my-tiny-binned"
    start = subset_cells(hsmm, np.flatnonzero(hsmm.obs["state"] == "myotube"))
    assert set(result.ranked["gene"]) <= set(start.var_names)
    with pytest.raises(PerturbError, match="fast screen reads rank encodings"):
        run_perturbation(hsmm, PerturbationRequest(request.selection, max_cells=3, method="screen"), model=model)
