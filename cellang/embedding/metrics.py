"""How good is a cell embedding? scIB-style scores, the HVG + PCA baseline, and UMAP coordinates.

- :func:`avg_bio`: do cells of one type sit together? NMI and ARI of a clustering of the embedding
  against the labels, and the label silhouette (ASW); AvgBIO is their mean (Luecken et al. 2022, scIB).
- :func:`batch_asw`: are batches mixed within each cell type? 1 is perfect mixing.
- :func:`pca_embedding`: the usual baseline a learned embedding must beat (normalise, log, HVG, scale, PCA);
  normalising and log1p are :mod:`cellang.preprocess`'s, as for the tokenisers.
- :func:`umap_coordinates`: a 2-D map of an embedding (umap-learn on exact nearest neighbours).

Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_samples, silhouette_score
from sklearn.neighbors import NearestNeighbors

from cellang.preprocess import detect_value_kind, log1p, normalise_total, stated_value_kinds

LEIDEN_RESOLUTIONS = tuple(round(0.1 * i, 1) for i in range(1, 21))  # 0.1 ... 2.0, as scIB
CLUSTER_NEIGHBOURS = 15
LINEAR_KINDS = ("fpkm", "tpm", "cpm", "rpkm", "normalised", "normalized")


def leiden_available() -> bool:
    """True when igraph is importable (scanpy's Leiden with flavor='igraph' needs nothing more)."""
    return importlib.util.find_spec("igraph") is not None


def _as_matrix(embedding: np.ndarray) -> np.ndarray:
    matrix = np.asarray(embedding, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"an embedding must be a 2-D array (cells x dimensions), not shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("the embedding holds NaN or infinite values")
    return matrix


def _as_labels(labels: Sequence[object], n_cells: int, what: str = "labels") -> np.ndarray:
    values = np.asarray([str(label) for label in labels], dtype=object)
    if len(values) != n_cells:
        raise ValueError(f"{len(values)} {what} for {n_cells} cells")
    return values


def _leiden_clusterings(matrix: np.ndarray, seed: int) -> list[np.ndarray]:
    """Leiden clusterings of the kNN graph of ``matrix`` at scIB's resolutions (needs igraph)."""
    import scanpy as sc  # imported here: scanpy pulls numba, which is slow to import

    graph = ad.AnnData(np.zeros((len(matrix), 0), dtype=np.float32), obsm={"X_emb": matrix})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.neighbors(graph, use_rep="X_emb", n_neighbors=min(CLUSTER_NEIGHBOURS, len(matrix) - 1),
                        random_state=seed)
        out = []
        for resolution in LEIDEN_RESOLUTIONS:
            sc.tl.leiden(graph, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                         directed=False, key_added="cluster")
            out.append(graph.obs["cluster"].astype(str).to_numpy())
    return out


def _kmeans_clustering(matrix: np.ndarray, k: int, seed: int) -> np.ndarray:
    k = max(1, min(k, len(np.unique(matrix, axis=0))))  # never more clusters than distinct points
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(matrix)


def clustering_method() -> str:
    """The clustering :func:`avg_bio` uses here, in words."""
    if leiden_available():
        return f"Leiden on a {CLUSTER_NEIGHBOURS}-nearest-neighbour graph at resolutions 0.1 to 2.0, best NMI kept"
    return "k-means with k = the number of labels (seeded, 10 starts; Leiden needs igraph, not installed)"


def clusterings(matrix: np.ndarray, n_labels: int, seed: int = 0) -> tuple[str, list[np.ndarray]]:
    """(method, clusterings): Leiden at several resolutions when igraph is there, else seeded k-means
    with k = the number of labels."""
    if leiden_available() and len(matrix) > 2:
        return "leiden", _leiden_clusterings(matrix, seed)
    return "kmeans", [_kmeans_clustering(matrix, n_labels, seed)]


def label_asw(matrix: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette (euclidean) of the labels, rescaled from [-1, 1] to [0, 1]."""
    n_labels = len(set(labels))
    if not 2 <= n_labels <= len(labels) - 1:
        raise ValueError(f"a silhouette needs 2 to {len(labels) - 1} labels, not {n_labels}")
    return float((silhouette_score(matrix, labels, metric="euclidean") + 1) / 2)


def avg_bio(embedding: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict:
    """NMI, ARI, ASW and AvgBIO (their mean) of ``embedding`` (cells x dims) against ``labels``.

    The clustering is Leiden on a 15-nearest-neighbour graph at resolutions 0.1 to 2.0 when igraph is
    installed, else k-means with k = the number of labels (seeded, 10 starts). As scIB does, the
    clustering with the best NMI is kept and its NMI and ARI are reported. ASW is the label silhouette
    rescaled to [0, 1] as (s + 1) / 2. Keys: nmi, ari, asw, avg_bio (:func:`clustering_method` says
    which clustering is used).
    """
    matrix = _as_matrix(embedding)
    values = _as_labels(labels, len(matrix))
    n_labels = len(set(values))
    if n_labels < 2:
        raise ValueError("scoring needs at least 2 different labels")
    if len(matrix) <= n_labels:
        raise ValueError(f"scoring needs more cells ({len(matrix)}) than labels ({n_labels})")
    _method, found = clusterings(matrix, n_labels, seed)
    nmis = [normalized_mutual_info_score(values, clusters, average_method="arithmetic") for clusters in found]
    best = int(np.argmax(nmis))
    nmi = float(nmis[best])
    ari = float(adjusted_rand_score(values, found[best]))
    asw = label_asw(matrix, values)
    return {"nmi": nmi, "ari": ari, "asw": asw, "avg_bio": float(np.mean([nmi, ari, asw]))}


def batch_asw(embedding: np.ndarray, batches: Sequence[str], labels: Sequence[str]) -> float:
    """scIB's batch silhouette: within each cell type, 1 - |silhouette of the batches| per cell, averaged
    per cell type, then over cell types. 1: batches fully mixed; 0: fully separated.

    Cell types found in a single batch (or with one cell per batch) are skipped, as in scIB.
    NaN when there are fewer than 2 batches, or no cell type spans 2 batches.
    """
    matrix = _as_matrix(embedding)
    batch = _as_labels(batches, len(matrix), "batches")
    label = _as_labels(labels, len(matrix))
    if len(set(batch)) < 2:
        return float("nan")
    scores = []
    for cell_type in sorted(set(label)):
        inside = label == cell_type
        n_batches = len(set(batch[inside]))
        if n_batches < 2 or n_batches == int(inside.sum()):
            continue
        per_cell = silhouette_samples(matrix[inside], batch[inside], metric="euclidean")
        scores.append(float(np.mean(1 - np.abs(per_cell))))
    return float(np.mean(scores)) if scores else float("nan")


def embedding_scores(embedding: np.ndarray, labels: Sequence[str], batches: Sequence[str],
                     seed: int = 0) -> dict[str, float | None]:
    """What the embedding benchmarks report for one embedding: :func:`avg_bio`'s keys plus ``batch_asw``
    (None with a single batch, or when no cell type spans two batches)."""
    scores: dict[str, float | None] = dict(avg_bio(embedding, list(labels), seed=seed))
    value = batch_asw(embedding, list(batches), list(labels)) if len(set(batches)) > 1 else float("nan")
    scores["batch_asw"] = value if np.isfinite(value) else None
    return scores


def view_scores(adata: ad.AnnData, model: str, labels: Sequence[str], batches: Sequence[str],
                seed: int = 0) -> dict[str, dict[str, float | None]]:
    """:func:`embedding_scores` of both views ``embed_cells`` wrote for ``model`` into ``adata.obsm``, as the
    benchmarks name them: {"<model> CLS": ..., "<model> mean": ...}."""
    from cellang.embedding.embed import obsm_keys

    cls_key, mean_key = obsm_keys(model)
    return {f"{model} CLS": embedding_scores(adata.obsm[cls_key], labels, batches, seed),
            f"{model} mean": embedding_scores(adata.obsm[mean_key], labels, batches, seed)}


# ---------------------------------------------------------------------------------------------
# The HVG + PCA baseline

def _value_kind(adata: ad.AnnData) -> str:
    """The value kind stated in obs['value_kind'] (the atlas writes it), else detected from X. Unlike the
    tokenisers, a baseline reads any X: several or blank stated kinds fall back to detection."""
    kinds = stated_value_kinds(adata)
    if len(kinds) == 1 and kinds[0] not in ("", "nan", "None"):
        return kinds[0].lower()
    return detect_value_kind(adata.X).kind


def log_expression(adata: ad.AnnData) -> tuple[sp.csr_matrix, str]:
    """X on a log scale (float32 CSR) and the value kind it came from: counts are normalised to 10,000
    per cell and log1p'd, linear normalised values (FPKM, TPM...) log1p'd, log1p data kept as is."""
    kind = _value_kind(adata)
    matrix = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    if kind == "counts":
        matrix = log1p(normalise_total(matrix, 1e4))
    elif kind in LINEAR_KINDS:
        matrix = log1p(matrix)
    return matrix, kind


def pca_embedding(adata: ad.AnnData, n_hvg: int = 1200, n_pcs: int = 50, seed: int = 0) -> np.ndarray:
    """The HVG + PCA baseline (cells x PCs): log expression (see :func:`log_expression`), the ``n_hvg``
    most variable genes (scanpy, seurat flavour), each gene scaled to unit variance (clipped to +-10), PCA.

    ``n_pcs`` is capped by the data: at most cells - 1 and genes - 1 components.
    """
    import scanpy as sc

    if adata.n_obs < 2:
        raise ValueError("PCA needs at least 2 cells")
    matrix, _kind = log_expression(adata)
    expressed = np.flatnonzero(np.asarray((matrix != 0).sum(axis=0)).ravel() > 0)
    if len(expressed) < 2:
        raise ValueError("PCA needs at least 2 expressed genes")
    work = ad.AnnData(matrix[:, expressed])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if work.n_vars > n_hvg:
            table = sc.pp.highly_variable_genes(work, flavor="seurat", n_top_genes=n_hvg, inplace=False)
            keep = np.flatnonzero(np.asarray(table["highly_variable"], dtype=bool))
            work = ad.AnnData(work.X[:, keep])
        dense = np.asarray(work.X.todense(), dtype=np.float64)
    std = dense.std(axis=0, ddof=1)
    std[~(std > 0)] = 1.0
    scaled = np.clip((dense - dense.mean(axis=0)) / std, -10.0, 10.0)
    n_components = max(1, min(n_pcs, scaled.shape[0] - 1, scaled.shape[1] - 1))
    from sklearn.decomposition import PCA

    solver = "full" if min(scaled.shape) <= 2_000 else "randomized"
    return PCA(n_components=n_components, svd_solver=solver, random_state=seed).fit_transform(scaled).astype(
        np.float32)


# ---------------------------------------------------------------------------------------------
# UMAP

def exact_neighbours(matrix: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and euclidean distances of each cell's ``n_neighbors`` nearest cells, itself first
    (brute force, exact)."""
    search = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric="euclidean").fit(matrix)
    distances, indices = search.kneighbors(matrix)
    return indices.astype(np.int32), distances.astype(np.float32)


def umap_coordinates(embedding: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP coordinates (cells x 2) of ``embedding``, the same for the same seed.

    The nearest neighbours are computed exactly (scikit-learn, brute force) and handed to umap-learn,
    so no approximate index is built. ``n_neighbors`` is capped at cells - 1 for small data; at
    least 3 cells are needed. Small data (< 16 cells) start from a random layout instead of a spectral one.
    """
    import umap  # imported here: umap pulls numba and pynndescent, which are slow to import

    matrix = _as_matrix(embedding).astype(np.float32)
    n_cells = len(matrix)
    if n_cells < 3:
        raise ValueError(f"UMAP needs at least 3 cells, not {n_cells}")
    k = max(2, min(n_neighbors, n_cells - 1))
    indices, distances = exact_neighbours(matrix, k)
    reducer = umap.UMAP(n_neighbors=k, n_components=2, random_state=seed, precomputed_knn=(indices, distances),
                        init="spectral" if n_cells >= 16 else "random", n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no NNDescent index" and "random_state disables parallelism"
        return np.asarray(reducer.fit_transform(matrix), dtype=np.float32)


def metrics_frame(rows: dict[str, dict]) -> pd.DataFrame:
    """A table of scores: one row per embedding name, columns AvgBIO, NMI, ARI, ASW, batch ASW."""
    names = {"avg_bio": "AvgBIO", "nmi": "NMI", "ari": "ARI", "asw": "ASW", "batch_asw": "batch ASW"}
    frame = pd.DataFrame([{"embedding": name, **{label: scores.get(key, np.nan) for key, label in names.items()}}
                          for name, scores in rows.items()])
    return frame.astype({label: float for label in names.values()})
