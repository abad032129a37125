"""Embedding scores (AvgBIO, batch ASW), the HVG + PCA baseline and UMAP coordinates on planted data."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang.embedding import metrics as embedding_metrics
from cellang.embedding.metrics import (
    avg_bio,
    batch_asw,
    exact_neighbours,
    log_expression,
    pca_embedding,
    umap_coordinates,
)


def blobs(n_per: int = 40, n_types: int = 3, dims: int = 10, spread: float = 0.3, seed: int = 0):
    """Well separated clusters: cells x dims, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_types, dims))
    labels = np.repeat([f"type {i}" for i in range(n_types)], n_per)
    points = centres[np.repeat(np.arange(n_types), n_per)] + rng.normal(scale=spread, size=(n_types * n_per, dims))
    return points, labels


def test_planted_clusters_score_perfectly() -> None:
    points, labels = blobs()
    scores = avg_bio(points, labels, seed=0)
    assert set(scores) == {"nmi", "ari", "asw", "avg_bio"}
    assert scores["nmi"] == pytest.approx(1.0) and scores["ari"] == pytest.approx(1.0)
    assert scores["asw"] > 0.9
    assert scores["avg_bio"] == pytest.approx(np.mean([scores["nmi"], scores["ari"], scores["asw"]]))
    assert avg_bio(points, list(labels), seed=0) == scores  # deterministic, any sequence of labels


def test_shuffled_labels_score_about_zero() -> None:
    points, labels = blobs(n_per=60)
    shuffled = np.random.default_rng(1).permutation(labels)
    scores = avg_bio(points, shuffled, seed=0)
    assert scores["nmi"] < 0.05 and abs(scores["ari"]) < 0.05
    assert scores["asw"] == pytest.approx(0.5, abs=0.05)  # silhouette ~0, rescaled to (0 + 1) / 2


def test_avg_bio_refuses_what_it_cannot_score() -> None:
    points, labels = blobs()
    with pytest.raises(ValueError, match="at least 2 different labels"):
        avg_bio(points, ["same"] * len(points))
    with pytest.raises(ValueError, match="labels for"):
        avg_bio(points, labels[:-1])
    with pytest.raises(ValueError, match="NaN"):
        avg_bio(np.full((4, 2), np.nan), ["a", "b", "a", "b"])


def test_kmeans_is_the_fallback_without_igraph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_metrics, "leiden_available", lambda: False)
    method, found = embedding_metrics.clusterings(blobs()[0], 3, seed=0)
    assert method == "kmeans" and len(found) == 1 and len(set(found[0])) == 3
    assert "k-means" in embedding_metrics.clustering_method()


@pytest.mark.skipif(not embedding_metrics.leiden_available(), reason="igraph is not installed (k-means is used)")
def test_leiden_finds_planted_clusters() -> None:
    points, labels = blobs()
    method, found = embedding_metrics.clusterings(points, 3, seed=0)
    assert method == "leiden" and len(found) == len(embedding_metrics.LEIDEN_RESOLUTIONS)
    assert avg_bio(points, labels)["nmi"] == pytest.approx(1.0)


def batch_fixture(separated: bool):
    """Two cell types far apart, each in two batches: batches either mixed or pushed apart."""
    points, labels = blobs(n_per=60, n_types=2, spread=1.0)
    batches = np.tile(["b1", "b2"], len(points) // 2)
    if separated:
        points = points + (batches == "b2")[:, None] * 6.0
    return points, batches, labels


def test_batch_asw_mixed_is_high_and_separated_is_low() -> None:
    mixed = batch_asw(*batch_fixture(separated=False))
    separated = batch_asw(*batch_fixture(separated=True))
    assert mixed > 0.9
    assert separated < 0.4
    assert 0.0 <= separated < mixed <= 1.0


def test_batch_asw_needs_two_batches_and_skips_single_batch_types() -> None:
    points, batches, labels = batch_fixture(separated=True)
    assert np.isnan(batch_asw(points, ["one"] * len(points), labels))
    single = np.where(labels == "type 0", "b1", batches)  # type 0 only in b1: skipped, type 1 still scored
    assert batch_asw(points, single, labels) == pytest.approx(
        batch_asw(points[labels == "type 1"], batches[labels == "type 1"], labels[labels == "type 1"]))
    by_type = np.where(labels == "type 0", "b1", "b2")  # no type spans two batches
    assert np.isnan(batch_asw(points, by_type, labels))


def counts_adata(n_cells: int = 60, n_genes: int = 300, kind: str = "counts", seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], n_cells // 3)
    rates = rng.gamma(0.5, 2.0, size=(3, n_genes))
    counts = rng.poisson(rates[groups] * rng.uniform(0.5, 2.0, size=(n_cells, 1))).astype(np.float32)
    obs = pd.DataFrame({"cell_type": [f"t{g}" for g in groups], "value_kind": kind},
                       index=[f"cell{i}" for i in range(n_cells)])
    return ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))


def test_log_expression_follows_the_value_kind() -> None:
    adata = counts_adata()
    logged, kind = log_expression(adata)
    assert kind == "counts"
    assert np.allclose(np.expm1(logged.toarray()).sum(axis=1), 1e4, rtol=1e-4)
    adata.obs["value_kind"] = "FPKM"
    logged, kind = log_expression(adata)
    assert kind == "fpkm" and np.allclose(logged.toarray(), np.log1p(adata.X.toarray()))
    adata.obs["value_kind"] = "log1p"
    assert np.allclose(log_expression(adata)[0].toarray(), adata.X.toarray())
    del adata.obs["value_kind"]  # no stated kind: detected from X (whole numbers: counts)
    assert log_expression(adata)[1] == "counts"


def test_pca_baseline_shape_determinism_and_caps() -> None:
    adata = counts_adata()
    first = pca_embedding(adata, n_hvg=100, n_pcs=20, seed=0)
    assert first.shape == (60, 20) and first.dtype == np.float32
    assert np.array_equal(first, pca_embedding(adata, n_hvg=100, n_pcs=20, seed=0))
    assert pca_embedding(adata).shape == (60, 50)  # 300 genes < 1200 HVG: all genes kept
    assert avg_bio(first, adata.obs["cell_type"])["nmi"] > 0.9  # the planted groups are found
    tiny = counts_adata(n_cells=9, n_genes=40)
    assert pca_embedding(tiny).shape == (9, 8)  # capped at cells - 1
    with pytest.raises(ValueError, match="at least 2 cells"):
        pca_embedding(tiny[:1].copy())


def test_umap_is_deterministic_and_uses_exact_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynndescent

    class NoIndex(pynndescent.NNDescent):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise AssertionError("an approximate nearest-neighbour index was built")

    def no_search(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("umap searched the neighbours itself instead of using the precomputed ones")

    monkeypatch.setattr("umap.umap_.NNDescent", NoIndex)
    monkeypatch.setattr("umap.umap_.nearest_neighbors", no_search)
    monkeypatch.setattr("umap.umap_.pairwise_distances", no_search)  # umap's own exact path for small data
    points, _ = blobs(n_per=30)
    first = umap_coordinates(points, seed=0)
    assert first.shape == (90, 2) and np.isfinite(first).all()
    assert np.array_equal(first, umap_coordinates(points, seed=0))
    assert not np.array_equal(first, umap_coordinates(points, seed=1))

    indices, distances = exact_neighbours(points.astype(np.float32), 15)
    brute = np.argsort(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2), axis=1)[:, :15]
    assert np.array_equal(indices[:, 0], np.arange(90)) and np.allclose(distances[:, 0], 0, atol=1e-3)
    assert all(set(a) == set(b) for a, b in zip(indices, brute))


def test_umap_of_tiny_data_caps_neighbours() -> None:
    points, _ = blobs(n_per=2, n_types=3)  # 6 cells: 5 neighbours at most
    coords = umap_coordinates(points, seed=0, n_neighbors=15)
    assert coords.shape == (6, 2) and np.isfinite(coords).all()
    assert umap_coordinates(points[:3], seed=0).shape == (3, 2)
    with pytest.raises(ValueError, match="at least 3 cells"):
        umap_coordinates(points[:2])
