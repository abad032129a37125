"""What the Cell embeddings page does: embed a dataset with a cell encoder, map it, score it against PCA.

:func:`explore` = :func:`embed_and_map` (the slow part: encoder, HVG + PCA baseline, UMAPs of every
view) + :func:`score` (AvgBIO and batch ASW of every view against one label column). The page caches
the first per (dataset, model) and the second per label column; the downloads are in :mod:`.exports`.
The model is a shipped encoder or one of the user's (:class:`~.loading.CellModel`, listed by
:func:`~.loading.scan_cell_models`); every result, table and download names it. Problems the user can fix
raise :class:`ExplorerError` with a plain sentence; problems that only limit the result (no labels, tiny
data) become ``messages``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from cellang.atlas import atlas_manifest
from cellang.cells import labels as cell_labels
from cellang.cells.labels import MAX_LABELS, batch_column, label_strings
from cellang.embedding.loading import CellModel
from cellang.embedding.metrics import (
    avg_bio,
    batch_asw,
    clustering_method,
    metrics_frame,
    pca_embedding,
    umap_coordinates,
)
from cellang.embedding.workflow import EmbeddingError, embed_dataset, resolve_model
from cellang.progress import Progress, part, report

VIEWS = ("cls", "mean", "pca")
VIEW_TITLES = {"cls": "CLS token", "mean": "mean-pooled genes", "pca": "PCA baseline (HVG)"}
N_HVG = 1200  # highly variable genes of the PCA baseline
N_PCS = 50  # at most this many principal components
MIN_CELLS = 3
UMAP_NEIGHBOURS = 15


ExplorerError = EmbeddingError  # the page's name for it


@dataclass
class ExplorerResult:
    """One dataset embedded by one model. ``adata`` carries the embeddings in ``obsm`` (model CLS and
    mean, the PCA baseline) and the UMAP of each view (``X_umap_<view>``); ``umap`` maps view -> (n, 2)."""

    adata: ad.AnnData
    model: str
    seed: int
    umap: dict[str, np.ndarray]
    label_column: str | None = None
    metrics: pd.DataFrame | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # (level: note / warning, sentence)
    cell_model: CellModel | None = None  # the encoder that made it (name, folder, description)

    def produced_by(self) -> str:
        """'Embedded with <name> (<folder>): <description>.', or with the name alone when the folder is unknown."""
        if self.cell_model is None:
            return f"Embedded with {self.model}."
        return f"Embedded with {self.cell_model.produced_by()}: {self.cell_model.description}."

    def obsm_key(self, view: str) -> str:
        return obsm_key(self.model, view)

    def embedding(self, view: str) -> np.ndarray:
        return np.asarray(self.adata.obsm[self.obsm_key(view)])

    def view_title(self, view: str) -> str:
        return view_title(self.model, view)


@dataclass(frozen=True)
class Scores:
    """The metrics table (None when the embedding cannot be scored) and what the page should say."""

    table: pd.DataFrame | None
    label_column: str | None
    messages: tuple[tuple[str, str], ...] = ()


def obsm_key(model: str, view: str) -> str:
    """Where a view lives in ``obsm``: X_cells_binned_cls, X_cells_binned_mean, X_pca."""
    if view == "pca":
        return "X_pca"
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
    return f"X_{model.replace('-', '_')}_{view}"


def view_title(model: str, view: str) -> str:
    return VIEW_TITLES["pca"] if view == "pca" else f"{model} {VIEW_TITLES[view]}"


def row_title(model: str, view: str) -> str:
    """A view's short name in the metrics table: cells-binned CLS, cells-binned mean, PCA (HVG)."""
    return "PCA (HVG)" if view == "pca" else f"{model} {view if view == 'mean' else 'CLS'}"


def label_choices(obs: pd.DataFrame) -> list[str]:
    """obs columns that can serve as cell labels (to score against), preferred columns (cell_type, ...) first."""
    return cell_labels.label_choices(obs)


def default_label_column(obs: pd.DataFrame) -> str | None:
    """The label column a page offers first, or None when the cells hold no labels."""
    return cell_labels.default_label_column(obs)


def atlas_choices() -> dict[str, str]:
    """Atlas dataset name -> a label for a chooser: title, cells, value kind."""
    return {entry["name"]: f"{entry['name']}: {entry['title']} ({entry['cells']:,} cells, {entry['value_kind']})"
            for entry in atlas_manifest()["datasets"]}


# ---------------------------------------------------------------------------------------------
# Embedding, baseline, maps

def embed_and_map(adata: ad.AnnData, model: str | CellModel, seed: int = 0, progress: Progress | None = None, *,
                  harmonise: bool = False) -> ExplorerResult:
    """Embed ``adata`` with ``model`` (CLS and mean-pooled), compute the HVG + PCA baseline and a UMAP of
    each. ``adata`` itself is not changed; the result holds a copy with the embeddings in ``obsm`` and the
    encoder named in ``uns["cellang_embedding"]``.

    model: a :class:`CellModel` or a name (see :func:`resolve_model`).
    ``harmonise``: first re-index the genes by approved symbol (for uploads; the atlas already is).
    """
    cell_model = resolve_model(model)
    model = cell_model.name
    if adata.n_obs < MIN_CELLS:
        raise ExplorerError(f"The data hold {adata.n_obs} cell(s); embedding and mapping need at least {MIN_CELLS}.")
    embedded, messages = embed_dataset(adata, cell_model, harmonise=harmonise, progress=part(progress, 0.0, 0.55))
    report(progress, 0.55, f"PCA baseline ({N_HVG:,} highly variable genes, up to {N_PCS} PCs)...")
    try:
        embedded.obsm["X_pca"] = pca_embedding(embedded, n_hvg=N_HVG, n_pcs=N_PCS, seed=seed)
    except ValueError as error:
        raise ExplorerError(f"The PCA baseline cannot be computed: {error}.") from error
    if adata.n_obs <= UMAP_NEIGHBOURS:
        messages.append(("note", f"Only {adata.n_obs} cells: each cell's map position uses its "
                                 f"{adata.n_obs - 1} neighbours instead of {UMAP_NEIGHBOURS}."))
    maps: dict[str, np.ndarray] = {}
    for i, view in enumerate(VIEWS):
        report(progress, 0.65 + 0.11 * i, f"UMAP of the {view_title(model, view)}...")
        maps[view] = umap_coordinates(embedded.obsm[obsm_key(model, view)], seed=seed, n_neighbors=UMAP_NEIGHBOURS)
        embedded.obsm[f"X_umap_{view}"] = maps[view]
    report(progress, 1.0, "Done.")
    return ExplorerResult(adata=embedded, model=model, seed=seed, umap=maps, messages=messages, cell_model=cell_model)


# ---------------------------------------------------------------------------------------------
# Scores

def score(result: ExplorerResult, label_column: str | None, seed: int | None = None) -> Scores:
    """AvgBIO (NMI, ARI, ASW) of every view against ``label_column``, and batch ASW when the data hold
    more than one batch. Cells whose label is missing ('unknown', empty) are left out of the scores.
    A column that does not exist raises ExplorerError; data without labels give no table and a message."""
    seed = result.seed if seed is None else seed
    obs = result.adata.obs
    if label_column is None:
        return Scores(None, None, (("note", "This dataset has no cell labels (no obs column with 2 or more known "
                                            "labels), so the embeddings cannot be scored; the map is still "
                                            "shown."),))
    if label_column not in obs.columns:
        raise ExplorerError(f"There is no column {label_column!r} in this dataset; its columns are "
                            f"{', '.join(map(str, obs.columns))}.")
    labels = label_strings(obs[label_column])
    known = np.flatnonzero(np.asarray([v is not None for v in labels]))
    distinct = sorted({labels[i] for i in known})
    if len(distinct) < 2:
        said = f"only '{distinct[0]}'" if distinct else "no known labels"
        return Scores(None, label_column, (("note", f"The column '{label_column}' holds {said} (missing and "
                                                    "'unknown' values do not count), so the embeddings cannot be "
                                                    "scored against it; the map is still shown."),))
    if len(distinct) > min(MAX_LABELS, len(known) - 1):
        return Scores(None, label_column, (("warning", f"The column '{label_column}' holds {len(distinct):,} "
                                                       "different values: too many to score as cell labels. "
                                                       "Choose a column of cell types."),))
    messages: list[tuple[str, str]] = []
    if len(known) < len(labels):
        messages.append(("note", f"{len(labels) - len(known):,} cells without a known '{label_column}' are left "
                                 f"out of the scores; {len(known):,} are scored."))
    batches = batch_column(obs)
    batch_values = label_strings(obs[batches]).astype(str)[known] if batches else None
    rows = {}
    for view in VIEWS:
        matrix = result.embedding(view)[known]
        scores = avg_bio(matrix, labels[known].astype(str), seed=seed)
        if batch_values is not None:
            scores["batch_asw"] = batch_asw(matrix, batch_values, labels[known].astype(str))
        rows[row_title(result.model, view)] = scores
    table = metrics_frame(rows)
    if batches is None:
        messages.append(("note", "One batch only, so batch mixing (batch ASW) is not scored."))
    elif table["batch ASW"].isna().all():
        messages.append(("note", f"No cell type spans two '{batches}' values, so batch ASW cannot be scored."))
    messages.append(("note", f"Clustering: {clustering_method()}. Batch ASW uses the column '{batches}'."
                     if batches else f"Clustering: {clustering_method()}."))
    if table["batch ASW"].isna().all():  # said in a note above; an empty column would print "None"
        table = table.drop(columns="batch ASW")
    return Scores(table, label_column, tuple(messages))


def side_by_side(base: ExplorerResult, adapted: ExplorerResult, label_column: str | None,
                 seed: int | None = None) -> Scores:
    """The scores of two encoders on the same cells (a base and its adaptation) in one table: the base's views,
    the adapted model's, then PCA's row once."""
    first, second = score(base, label_column, seed), score(adapted, label_column, seed)
    if first.table is None or second.table is None:
        return first
    is_pca = first.table["embedding"] == row_title(base.model, "pca")
    rows = [first.table[~is_pca], second.table[second.table["embedding"] != row_title(base.model, "pca")],
            first.table[is_pca]]
    return Scores(pd.concat(rows, ignore_index=True), first.label_column, first.messages)


def explore(adata: ad.AnnData, model: str | CellModel, label_column: str | None = None, seed: int = 0,
            progress: Progress | None = None, *, harmonise: bool = False) -> ExplorerResult:
    """Embed, map and score in one call (see :func:`embed_and_map` and :func:`score`)."""
    if label_column is not None and label_column not in adata.obs.columns:
        raise ExplorerError(f"There is no column {label_column!r} in this dataset; its columns are "
                            f"{', '.join(map(str, adata.obs.columns))}.")
    result = embed_and_map(adata, model, seed=seed, progress=progress, harmonise=harmonise)
    scores = score(result, label_column, seed=seed)
    result.label_column, result.metrics = scores.label_column, scores.table
    result.messages.extend(scores.messages)
    return result


class ResultCache:
    """The ``size`` most recently used results by key, safe to share between sessions (threads) of the app."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._results: dict[Hashable, ExplorerResult] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], ExplorerResult]) -> ExplorerResult:
        """The result cached under ``key``; ``make()`` builds it (outside the lock) when it is missing."""
        with self._lock:
            if key in self._results:
                self._results[key] = self._results.pop(key)  # now the most recently used
                return self._results[key]
        result = make()
        with self._lock:
            self._results[key] = result
            while len(self._results) > self.size:
                self._results.pop(next(iter(self._results)))
        return result

    def __len__(self) -> int:
        return len(self._results)


# ---------------------------------------------------------------------------------------------
# What the page shows per cell

def hover_frame(result: ExplorerResult, columns: Sequence[str | None]) -> pd.DataFrame:
    """Per-cell hover table: the cell id, then the given obs columns (missing or repeated ones skipped)."""
    obs = result.adata.obs
    frame = pd.DataFrame({"cell": np.asarray(obs.index.astype(str), dtype=object)})
    for column in dict.fromkeys(c for c in columns if c is not None and c in obs.columns):
        frame[str(column)] = obs[column].to_numpy()
    return frame
