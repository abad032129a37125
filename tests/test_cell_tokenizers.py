"""Cell tokenisers on hand-made cells whose tokens can be worked out by hand."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from cellang.tokenizers.binned import IGNORE_VALUE, BinnedBatcher, BinnedTokenizer, quantile_bins
from cellang.tokenizers.hvg_selection import ranked_by_dispersion, take_in_turn
from cellang.tokenizers.cells import (
    CLS_ID,
    MASK_ID,
    N_SPECIAL,
    PAD_ID,
    CellVocabulary,
    epoch_rows,
    linear_expression,
    pad_rows,
)
from cellang.tokenizers.rank import IGNORE_LABEL, RankBatcher, RankTokenizer
from tests.synthetic_cells import synthetic_cells


def cells(matrix: list[list[float]], genes: list[str], value_kind: str = "counts") -> ad.AnnData:
    obs = pd.DataFrame({"value_kind": value_kind, "dataset": "hand"}, index=[f"c{i}" for i in range(len(matrix))])
    return ad.AnnData(X=sp.csr_matrix(np.array(matrix, dtype=np.float32)), obs=obs, var=pd.DataFrame(index=genes))


def binned(genes: list[str], n_bins: int = 3, max_len: int = 10) -> BinnedTokenizer:
    return BinnedTokenizer(CellVocabulary(genes, mode="binned",
                                          settings={"n_bins": n_bins, "max_len": max_len, "target_sum": 1e4}))


def test_quantile_bins_by_hand() -> None:
    assert quantile_bins(np.array([1.0, 2.0, 3.0, 4.0]), 3).tolist() == [1, 1, 2, 2]
    assert quantile_bins(np.array([5.0, 5.0, 5.0]), 51).tolist() == [50, 50, 50]  # ties share the top bin
    assert quantile_bins(np.array([]), 51).tolist() == []
    bins = quantile_bins(np.arange(1.0, 101.0), 51)
    assert bins.min() == 1 and bins.max() == 50 and np.all(np.diff(bins) >= 0)


def test_vocabulary_ids_and_json_round_trip() -> None:
    vocabulary = CellVocabulary(["B", "A", "C"], mode="rank", settings={"max_len": 4}, gene_medians=[2.0, 1.0, 3.0])
    assert vocabulary.genes == ("A", "B", "C") and len(vocabulary) == N_SPECIAL + 3
    assert vocabulary.gene_medians.tolist() == [1.0, 2.0, 3.0]  # medians follow their genes when sorted
    assert vocabulary.column_ids(["C", "X", "A"]).tolist() == [N_SPECIAL + 2, -1, N_SPECIAL]
    assert CellVocabulary.from_json(vocabulary.to_json()) == vocabulary
    data = vocabulary.to_json()
    data["genes"] = ["B", "A", "C"]
    with pytest.raises(ValueError, match="sorted"):
        CellVocabulary.from_json(data)
    with pytest.raises(ValueError):
        CellVocabulary(["A", "<cls>"], mode="rank")


def test_binned_tokens_cls_first_values_and_truncation() -> None:
    genes = ["A", "B", "C", "D", "E"]
    adata = cells([[0, 1, 2, 3, 4], [0, 0, 0, 0, 0]], ["A", "B", "C", "D", "E"])
    tokens = binned(genes).tokenize(adata)
    a, b, c, d, e = (N_SPECIAL + i for i in range(5))
    # non-zero B..E, largest first; per-cell quantile bins of [1, 2, 3, 4] with 3 bins: [1, 1, 2, 2]
    assert tokens.genes[0].tolist() == [CLS_ID, e, d, c, b]
    assert tokens.values[0].tolist() == [0, 2, 2, 1, 1]
    assert tokens.genes[1].tolist() == [CLS_ID] and tokens.values[1].tolist() == [0]  # an empty cell: <cls> only
    short = binned(genes, max_len=3).tokenize(adata)
    assert short.genes[0].tolist() == [CLS_ID, e, d]  # the top max_len-1 genes, never a random pick
    assert short.values[0].tolist() == [0, 2, 2]  # bins come from all expressed genes, before truncation
    assert tokens.fraction_present == 1.0 and tokens.value_kind == "counts"


def test_binned_ignores_unknown_genes_and_reports_missing() -> None:
    adata = cells([[5, 1, 7]], ["A", "X", "C"])
    tokens = binned(["A", "B", "C", "D"]).tokenize(adata)
    assert tokens.genes[0].tolist() == [CLS_ID, N_SPECIAL + 2, N_SPECIAL]
    assert tokens.genes_present == ["A", "C"] and tokens.fraction_present == 0.5


def test_value_kinds_give_the_same_bins() -> None:
    counts = synthetic_cells(20, seed=1)
    logged = synthetic_cells(20, seed=1, value_kind="log1p")
    tokenizer = binned(list(counts.var_names), n_bins=11, max_len=40)
    a, b = tokenizer.tokenize(counts), tokenizer.tokenize(logged)
    for x, y, v, w in zip(a.genes, b.genes, a.values, b.values):
        assert x.tolist() == y.tolist() and v.tolist() == w.tolist()
    # a counts layer wins over X, whatever X holds
    layered = logged.copy()
    layered.layers["counts"] = counts.X.copy()
    matrix, kind = linear_expression(layered)
    assert kind == "counts" and np.allclose(matrix.toarray(), counts.X.toarray())
    with pytest.raises(ValueError, match="non-negative"):
        linear_expression(cells([[-1.0, 2.0]], ["A", "B"], value_kind="log1p"))


def test_hvg_selection_finds_the_variable_genes() -> None:
    # 120 genes with means spread from 3 to 100 (seurat flavour compares dispersions within mean
    # bins); three of them are 20x higher in half of the cells than in the other half.
    rng = np.random.default_rng(0)
    means = np.tile(np.logspace(0.5, 2, 120), (200, 1))
    variable = [10, 50, 90]
    means[:100, variable] *= 0.1
    means[100:, variable] *= 1.9
    genes = [f"H{i:03d}" for i in range(120)]
    tokenizer = BinnedTokenizer.fit([cells(rng.poisson(means).tolist(), genes)], n_hvg=3, n_bins=11, max_len=8)
    assert list(tokenizer.vocabulary.genes) == [genes[i] for i in variable]
    assert tokenizer.vocabulary.settings["n_hvg"] == 3


def test_per_dataset_selection_gives_each_dataset_its_own_variable_genes() -> None:
    # Two datasets of 60 genes; dataset one varies in genes 10 and 50 (strongly), dataset two in 20.
    # "shared" ranks genes by how many datasets find them variable, then by mean dispersion, and dataset two's
    # gene loses its place; "per-dataset" takes each dataset's best gene in turn.
    rng = np.random.default_rng(1)
    genes = [f"H{i:03d}" for i in range(60)]

    def dataset(variable: list[int], fold: float) -> ad.AnnData:
        means = np.tile(np.logspace(0.5, 2, 60), (200, 1))
        means[:100, variable] /= fold
        means[100:, variable] *= fold
        return cells(rng.poisson(means).tolist(), genes)

    first, second = dataset([10, 50], 3.0), dataset([20], 1.6)
    tokenizer = BinnedTokenizer.fit([first, second], n_hvg=2, n_bins=11, max_len=8, hvg_selection="per-dataset")
    assert list(tokenizer.vocabulary.genes) == ["H020", "H050"]  # each dataset's most variable gene
    shared = BinnedTokenizer.fit([first, second], n_hvg=2, n_bins=11, max_len=8, hvg_selection="shared")
    assert "H020" not in shared.vocabulary.genes
    assert tokenizer.vocabulary.settings["hvg_selection"] == "per-dataset"
    with pytest.raises(ValueError, match="hvg_selection must be one of shared, per-dataset, got 'mine'"):
        BinnedTokenizer.fit([first], n_hvg=2, hvg_selection="mine")


def test_an_input_panel_reads_each_dataset_through_its_own_variable_genes() -> None:
    # Two datasets over the same 60 genes, variable in different genes; a vocabulary of every gene and a panel of
    # 2: each dataset's cells read only its own two most variable genes, whatever the other genes express.
    rng = np.random.default_rng(2)
    genes = [f"H{i:03d}" for i in range(60)]

    def dataset(variable: list[int]) -> ad.AnnData:
        means = np.tile(np.logspace(0.5, 2, 60), (200, 1))
        means[:100, variable] /= 3.0
        means[100:, variable] *= 3.0
        return cells(rng.poisson(means).tolist(), genes)

    first, second = dataset([10, 50]), dataset([20, 40])
    tokenizer = BinnedTokenizer.fit([first, second], n_hvg=60, n_bins=11, max_len=8, input_panel=2,
                                    extra_genes=["EXTRA"])
    assert len(tokenizer.vocabulary.genes) == 61 and "EXTRA" in tokenizer.vocabulary
    assert tokenizer.vocabulary.settings["input_panel"] == 2 and tokenizer.vocabulary.settings["extra_genes"] == 1
    for data, panel in ((first, {"H010", "H050"}), (second, {"H020", "H040"})):
        tokens = tokenizer.tokenize(data)
        read = {tokenizer.vocabulary.token(int(t)) for row in tokens.genes for t in row[1:]}
        assert read == panel and set(tokens.genes_present) == panel
    # too few cells for a dispersion: every vocabulary gene is read, as without a panel
    few = tokenizer.tokenize(first[:5].copy())
    assert max(len(row) for row in few.genes) == 8
    without = BinnedTokenizer(CellVocabulary(tokenizer.vocabulary.genes, mode="binned", settings={
        **tokenizer.vocabulary.settings, "input_panel": 0}))
    assert [r.tolist() for r in without.tokenize(first[:5].copy()).genes] == [r.tolist() for r in few.genes]
    with pytest.raises(ValueError, match="input_panel must be >= 0"):
        BinnedTokenizer.fit([first], n_hvg=2, input_panel=-1)


def test_genes_are_taken_in_turn_by_their_best_rank() -> None:
    assert take_in_turn([["a", "b", "c"], ["a", "d"]], 3) == ["a", "b", "d"]
    assert take_in_turn([["a", "b"], ["c"]], 10) == ["a", "c", "b"]
    assert take_in_turn([], 5) == []
    order = ranked_by_dispersion(np.array([0.5, np.nan, 2.0, 0.5]), ["z", "nan", "top", "a"])
    assert order == ["top", "a", "z"]  # highest first, ties by name, NaN left out


def test_rank_medians_and_ranks_by_hand() -> None:
    # Every cell sums to 10,000, so the values are already normalised.
    train = cells([[5000, 4000, 1000, 0], [6000, 2000, 2000, 0], [8000, 1000, 1000, 0]], ["A", "B", "C", "D"])
    tokenizer = RankTokenizer.fit([train], max_len=8, min_cells=1)
    vocabulary = tokenizer.vocabulary
    assert vocabulary.genes == ("A", "B", "C")  # D is never expressed
    assert vocabulary.gene_medians.tolist() == [6000.0, 2000.0, 1000.0]
    a, b, c = N_SPECIAL, N_SPECIAL + 1, N_SPECIAL + 2
    # A: 5000/6000 = 0.83, B: 3000/2000 = 1.5, C: 2000/1000 = 2: C outranks A although A is highest.
    query = cells([[50, 30, 20, 7]], ["A", "B", "C", "X"])
    assert query.n_vars == 4
    tokens = tokenizer.tokenize(query)
    assert tokens.values is None
    # normalised over all input genes (X included): the ranks are unchanged by the common factor
    assert tokens.genes[0].tolist() == [CLS_ID, c, b, a]
    assert tokens.genes_present == ["A", "B", "C"]
    assert RankTokenizer(CellVocabulary.from_json(vocabulary.to_json())).tokenize(query).genes[0].tolist() == \
        tokens.genes[0].tolist()
    short = RankTokenizer.fit([train], max_len=3, min_cells=1).tokenize(query)
    assert short.genes[0].tolist() == [CLS_ID, c, b]
    assert RankTokenizer.fit([train], max_len=8, min_cells=3).vocabulary.genes == ("A", "B", "C")
    assert RankTokenizer.fit([train], max_len=8, min_cells=4).vocabulary.genes == ()


def test_rank_ties_break_by_token_id_whatever_the_column_order() -> None:
    train = cells([[100, 100, 100]], ["A", "B", "C"])
    tokenizer = RankTokenizer.fit([train], max_len=8, min_cells=1)
    forward = tokenizer.tokenize(cells([[1, 1, 1]], ["A", "B", "C"])).genes[0].tolist()
    backward = tokenizer.tokenize(cells([[1, 1, 1]], ["C", "B", "A"])).genes[0].tolist()
    assert forward == backward == [CLS_ID, N_SPECIAL, N_SPECIAL + 1, N_SPECIAL + 2]


def test_padding() -> None:
    padded = pad_rows([np.array([1, 5, 6]), np.array([1])])
    assert padded.tolist() == [[1, 5, 6], [1, PAD_ID, PAD_ID]] and padded.dtype == torch.long


def test_epoch_rows_cover_every_cell_once_with_similar_lengths_together() -> None:
    lengths = np.random.default_rng(0).integers(2, 300, size=203)
    batches = epoch_rows(lengths, 8, seed=1, epoch=0, drop_last=False, bucket_batches=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(203))
    kept = epoch_rows(lengths, 8, seed=1, epoch=0, drop_last=True)
    assert len(kept) == 25 and all(len(b) == 8 for b in kept)
    assert all(np.array_equal(a, b) for a, b in zip(kept, epoch_rows(lengths, 8, seed=1, epoch=0, drop_last=True)))
    assert not all(np.array_equal(a, b) for a, b in zip(kept, epoch_rows(lengths, 8, seed=1, epoch=1, drop_last=True)))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in kept])
    assert spread < 0.5 * np.mean([lengths[b].max() - lengths[b].min() for b in np.split(np.arange(200), 25)])


def test_binned_batches_mask_and_resume() -> None:
    adata = synthetic_cells(40)
    tokenizer = binned(list(adata.var_names), n_bins=51, max_len=31)
    tokens = tokenizer.tokenize(adata)
    batcher = BinnedBatcher(tokens, n_bins=51, vocabulary_size=len(tokenizer.vocabulary), batch_size=8,
                            mask_ratio=0.4, seed=3)
    genes, targets, values, profile = next(batcher(0))
    scored = targets != IGNORE_VALUE
    # the profile holds every token's true scaled bin (masked or not), zero elsewhere
    assert profile.shape == (8, len(tokenizer.vocabulary)) and bool((profile[:, :N_SPECIAL] == 0).all())
    rows = [int(np.flatnonzero([np.array_equal(genes[0, :len(g)].numpy(), g) for g in tokens.genes])[0])]
    truth = np.zeros(len(tokenizer.vocabulary))
    truth[tokens.genes[rows[0]][1:]] = tokens.values[rows[0]][1:] / 50
    assert np.allclose(profile[0].numpy(), truth)
    assert genes.shape == targets.shape == values.shape and bool((genes[:, 0] == CLS_ID).all())
    assert not bool(scored[:, 0].any()) and bool((values[scored] == 51).all())  # masked inputs carry bin 51
    assert bool(((targets[scored] > 0) & (targets[scored] <= 1)).all())
    lengths = (genes != PAD_ID).sum(1) - 1
    assert scored.sum(1).tolist() == [max(1, round(0.4 * int(n))) for n in lengths]
    # batch number n is a pure function of n: resuming at 7 gives what a long run sees at 7
    stream = batcher(0)
    seventh = [next(stream) for _ in range(8)][7]
    assert all(torch.equal(x, y) for x, y in zip(seventh, next(batcher(7))))


def test_rank_batches_80_10_10() -> None:
    adata = synthetic_cells(200)
    tokenizer = RankTokenizer.fit([adata], max_len=31, min_cells=1)
    tokens = tokenizer.tokenize(adata)
    batcher = RankBatcher(tokens, vocabulary_size=len(tokenizer.vocabulary), batch_size=200, seed=0)
    inputs, labels = batcher.make_batch(range(200), np.random.default_rng(0))
    original = pad_rows(tokens.genes)
    scored = labels != IGNORE_LABEL
    assert torch.equal(labels[scored], original[scored]) and torch.equal(inputs[~scored], original[~scored])
    assert abs(scored.sum().item() / (original >= N_SPECIAL).sum().item() - 0.15) < 0.02
    masked = (inputs[scored] == MASK_ID).float().mean().item()
    unchanged = (inputs[scored] == original[scored]).float().mean().item()
    assert 0.75 < masked < 0.85 and 0.06 < unchanged < 0.16  # 10% kept (+ random picks of the same gene)
    assert bool((inputs[scored] >= N_SPECIAL).logical_or(inputs[scored] == MASK_ID).all())
