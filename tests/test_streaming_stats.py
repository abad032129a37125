"""Streaming corpus statistics against the in-memory fits, on the atlas cut into chunks and on hand-made cells."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang.atlas import atlas_datasets, load_atlas_dataset
from cellang.tokenizers import streaming_hvg as sh
from cellang.tokenizers import streaming_stats as ss
from cellang.tokenizers.binned import BinnedTokenizer, highly_variable_genes
from cellang.tokenizers.cells import CellValuesError, CellVocabulary, stack_datasets
from cellang.tokenizers.rank import RankTokenizer, nonzero_medians

CHUNK = 97
# anndata 0.12.6 under pandas 3, once per AnnData view: noise here
pytestmark = pytest.mark.filterwarnings("ignore:The 'mode.chained_assignment' option is deprecated")


@pytest.fixture(scope="module")
def atlas() -> list[ad.AnnData]:
    return [load_atlas_dataset(name) for name in atlas_datasets()]


def chunked(adatas: Sequence[ad.AnnData], size: int = CHUNK) -> Iterator[ad.AnnData]:
    """The cells in corpus order, `size` at a time; a chunk spans two datasets (outer join: a gene one
    lacks is 0 there) unless one has layers (a counts layer would be zero-filled for the other's cells)."""
    pending = None
    for adata in adatas:
        start = 0
        if pending is not None:
            if not len(pending.layers) and not len(adata.layers):
                start = size - pending.n_obs
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield ad.concat([pending, adata[:start]], join="outer")
            else:
                yield pending
            pending = None
        for first in range(start, adata.n_obs, size):
            piece = adata[first:first + size]
            if piece.n_obs == size:
                yield piece
            else:
                pending = piece
    if pending is not None:
        yield pending


@pytest.fixture(scope="module")
def atlas_pass(atlas: list[ad.AnnData]) -> tuple[sh.StreamingHVG, ss.StreamingMedians]:
    """Both accumulators fed by ONE pass over the atlas."""
    hvg, medians = sh.StreamingHVG(), ss.StreamingMedians()
    ss.accumulate(chunked(atlas), hvg, medians)
    return hvg, medians


def scanpy_table(adatas: Sequence[ad.AnnData], n_top: int) -> pd.DataFrame:
    """scanpy's per-gene table as binned.highly_variable_genes computes it, with one numba thread."""
    import numba
    import scanpy as sc

    matrix, genes, labels = stack_datasets(adatas, 1e4, log1p=True)
    combined = ad.AnnData(X=matrix.astype(np.float32), var=pd.DataFrame(index=genes),
                          obs=pd.DataFrame({"dataset": pd.Categorical(labels.astype(str))},
                                           index=[str(i) for i in range(matrix.shape[0])]))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sc.pp.highly_variable_genes(combined, n_top_genes=n_top, flavor="seurat", inplace=False,
                                               batch_key="dataset" if len(adatas) > 1 else None)
    finally:
        numba.set_num_threads(threads)


def test_hvg_equals_scanpy_on_the_whole_atlas(atlas, atlas_pass) -> None:
    hvg, _ = atlas_pass
    assert len(hvg.datasets) == len(atlas) > 1
    ours, theirs = hvg.table(1200), scanpy_table(atlas, 1200)
    assert sorted(ours.index[ours["highly_variable"]]) == highly_variable_genes(atlas, 1200, selection="shared")
    # with one numba thread scanpy adds the values in the order the stream does: the same bits
    for column in ("means", "dispersions", "dispersions_norm", "highly_variable", "highly_variable_nbatches"):
        assert np.array_equal(ours[column].to_numpy(), theirs[column].to_numpy(), equal_nan=column != "highly_variable")


def test_per_dataset_hvg_streamed_equals_in_memory_on_the_atlas(atlas, atlas_pass) -> None:
    hvg, _ = atlas_pass
    streamed = hvg.result(1200, "per-dataset")
    assert streamed == highly_variable_genes(atlas, 1200, selection="per-dataset")
    assert len(streamed) == 1200 and streamed == hvg.result(1200) != hvg.result(1200, "shared")  # the default
    # 1200 genes from 7 datasets taking turns: each gave at least its 171 most variable genes
    for name in hvg.datasets:
        assert set(hvg.dispersion_ranking(name)[:171]) <= set(streamed)


@pytest.mark.parametrize("name", ["hsmm", "pbmc3k_decoupler"])  # FPKM with 35k genes; log1p X + counts layer
def test_hvg_equals_scanpy_on_one_dataset(atlas, name: str) -> None:
    adata = atlas[atlas_datasets().index(name)]
    hvg = sh.StreamingHVG()
    for chunk in chunked([adata], size=61):
        hvg.update(chunk)
    assert len(hvg.datasets) == 1
    for selection in ("shared", "per-dataset"):
        assert hvg.result(800, selection) == highly_variable_genes([adata], 800, selection=selection)


def hand_made(seed: int, genes: list[str], n_cells: int, dataset: str, kind: str = "counts") -> ad.AnnData:
    rng = np.random.default_rng(seed)
    means = rng.gamma(0.6, 4.0, size=len(genes)) * rng.choice([0.2, 1.0, 5.0], size=(n_cells, 1))
    counts = rng.poisson(means).astype(np.float32)
    counts[0] = 0  # an empty cell
    values = counts
    if kind == "log1p":
        totals = np.maximum(counts.sum(1, keepdims=True), 1)
        values = np.log1p(counts / totals * 1e4).astype(np.float32)
    obs = pd.DataFrame({"dataset": dataset, "value_kind": kind}, index=[f"{dataset}{i}" for i in range(n_cells)])
    return ad.AnnData(X=sp.csr_matrix(values), obs=obs, var=pd.DataFrame(index=genes))


def hand_made_corpus() -> list[ad.AnnData]:
    """Three datasets over overlapping gene sets; one names a gene twice (its columns are summed)."""
    genes = [f"G{i:02d}" for i in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: non-unique var_names
        twice = hand_made(3, genes[20:] + ["G25"], 40, "c")
    return [hand_made(1, genes[:30], 70, "a"), hand_made(2, genes[10:], 55, "b", kind="log1p"), twice]


def test_hvg_and_medians_on_hand_made_cells_in_uneven_chunks() -> None:
    corpus = hand_made_corpus()
    sizes = iter([1, 7, 30, 2, 64] * 10)
    chunks = [adata[first:first + size] for adata in corpus for first, size in _cuts(adata.n_obs, sizes)]
    hvg, medians = sh.StreamingHVG(), ss.StreamingMedians()
    ss.accumulate(chunks, hvg, medians)
    for n_top in (3, 8, 40, 100):
        for selection in ("shared", "per-dataset"):
            assert hvg.result(n_top, selection) == highly_variable_genes(corpus, n_top, selection=selection)
    single = sh.streaming_highly_variable_genes(chunks[:5], 6)
    assert single == highly_variable_genes([corpus[0]], 6)  # one dataset: scanpy without batches
    matrix, genes, _ = stack_datasets(corpus)
    keep, exact = nonzero_medians(matrix, 3)
    found, estimates, counts = medians.result(3)
    assert found == [genes[j] for j in keep]
    assert counts.tolist() == np.diff(sp.csc_matrix(matrix).indptr)[keep].tolist()
    assert np.all(np.abs(estimates - exact) <= ss.MEDIAN_RELATIVE_ERROR * exact * (1 + 1e-9))


def _cuts(n: int, sizes: Iterator[int]) -> Iterator[tuple[int, int]]:
    first = 0
    while first < n:
        size = next(sizes)
        yield first, size
        first += size


def test_medians_within_the_stated_bound_on_the_atlas(atlas, atlas_pass) -> None:
    _, medians = atlas_pass
    matrix, genes, _ = stack_datasets(atlas)
    keep, exact = nonzero_medians(matrix, 10)
    estimate = medians.estimate(10)
    assert estimate.genes == [genes[j] for j in keep]  # the min_cells rule on exact counts
    assert estimate.counts.tolist() == np.diff(sp.csc_matrix(matrix).indptr)[keep].tolist()
    error = np.abs(estimate.medians - exact) / exact
    assert error[estimate.bounded].max() <= ss.MEDIAN_RELATIVE_ERROR * (1 + 1e-9)
    # hsmm's FPKM holds values down to 1e-45: medians under the lowest edge are flagged, never silently off
    assert not estimate.bounded[exact < medians.lowest].any()
    assert (~estimate.bounded).sum() < 0.01 * len(estimate.genes)
    with pytest.warns(UserWarning, match="below the histogram's lowest edge"):
        assert medians.result(10)[0] == estimate.genes


def test_bound_and_memory_as_stated() -> None:
    assert ss.MEDIAN_RELATIVE_ERROR <= 0.02
    assert ss.MEDIAN_STATISTICS == f"streaming, median relative error <= {ss.MEDIAN_RELATIVE_ERROR:.4f}"
    blocks = -(-20_000 // ss._BLOCK)
    assert blocks * ss._BLOCK * ss.MEDIAN_BINS * np.dtype(np.uint32).itemsize < 100e6
    medians = ss.StreamingMedians()
    middle = medians.midpoints()
    edges = medians.lowest * np.exp(np.arange(ss.MEDIAN_BINS + 1) * ss.MEDIAN_BIN_WIDTH)
    assert np.isclose(edges[-1], medians.target_sum)
    assert np.allclose(np.maximum(middle / edges[:-1], edges[1:] / middle), 1 + ss.MEDIAN_RELATIVE_ERROR)


def test_merged_workers_equal_one_pass(atlas, atlas_pass) -> None:
    hvg, medians = atlas_pass
    workers = [(sh.StreamingHVG(), ss.StreamingMedians()) for _ in range(3)]
    for number, chunk in enumerate(chunked(atlas)):
        ss.accumulate([chunk], *workers[number % 3])  # each worker sees its genes in its own order
    merged_hvg, merged_medians = workers[0]
    for other_hvg, other_medians in workers[1:]:
        merged_hvg.merge(other_hvg)
        merged_medians.merge(other_medians)
    assert merged_hvg.result(1200) == hvg.result(1200)
    ours, theirs = merged_hvg.table(1200), hvg.table(1200)
    assert np.allclose(ours["dispersions_norm"], theirs["dispersions_norm"], rtol=1e-9, equal_nan=True)
    one, many = medians.estimate(10), merged_medians.estimate(10)
    assert one.genes == many.genes  # histograms hold integer counts: merging is exact
    assert np.array_equal(one.medians, many.medians) and np.array_equal(one.counts, many.counts)
    with pytest.raises(ValueError, match="same kind"):
        merged_hvg.merge(merged_medians)
    with pytest.raises(ValueError, match="same kind"):
        merged_medians.merge(ss.StreamingMedians(target_sum=1e6))


def test_fit_streaming_builds_the_in_memory_vocabularies(atlas, tmp_path) -> None:
    corpus = [atlas[atlas_datasets().index(name)] for name in ("pbmc68k_reduced", "oligodendroglioma")]
    binned = BinnedTokenizer.fit_streaming(lambda: chunked(corpus), n_hvg=300)
    reference = BinnedTokenizer.fit(corpus, n_hvg=300)
    assert binned.vocabulary.genes == reference.vocabulary.genes
    assert binned.vocabulary.settings == {**reference.vocabulary.settings, "statistics": "streaming, exact"}
    # one pass feeds both accumulators; the tokenisers take them filled
    hvg, medians = sh.StreamingHVG(), ss.StreamingMedians()
    ss.accumulate(chunked(corpus), hvg, medians)
    assert BinnedTokenizer.fit_streaming(hvg, n_hvg=300).vocabulary == binned.vocabulary
    rank = RankTokenizer.fit_streaming(medians, min_cells=5)
    exact = RankTokenizer.fit(corpus, min_cells=5)
    assert rank.vocabulary.genes == exact.vocabulary.genes
    assert np.allclose(rank.vocabulary.gene_medians, exact.vocabulary.gene_medians, rtol=ss.MEDIAN_RELATIVE_ERROR)
    assert rank.vocabulary.settings == {**exact.vocabulary.settings, "statistics": ss.MEDIAN_STATISTICS}
    # stored with the checkpoint (vocabulary.json) and reused at inference
    rank.vocabulary.save(tmp_path / "vocabulary.json")
    reloaded = RankTokenizer(CellVocabulary.load(tmp_path / "vocabulary.json"))
    cells = corpus[0][:20]
    assert [g.tolist() for g in reloaded.tokenize(cells).genes] == [g.tolist() for g in rank.tokenize(cells).genes]
    with pytest.raises(ValueError, match="target_sum"):
        RankTokenizer.fit_streaming(medians, target_sum=1e6)


def test_a_dataset_must_keep_its_value_kind_across_chunks() -> None:
    genes = [f"G{i}" for i in range(6)]
    counts = hand_made(0, genes, 10, "x")
    guessed = hand_made(0, genes, 10, "x", kind="log1p")
    del counts.obs["value_kind"], guessed.obs["value_kind"]  # left to be guessed chunk by chunk
    medians = ss.StreamingMedians()
    medians.update(counts)
    with pytest.raises(CellValuesError, match="value_kind"):
        medians.update(guessed)
    # no dataset column: the cells are one dataset ""
    assert ss.prepare_chunk(counts.copy())[0].dataset == "x"
    del counts.obs["dataset"]
    assert [part.dataset for part in ss.prepare_chunk(counts)] == [""]
