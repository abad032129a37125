"""Cells become embeddings: the one path from an AnnData and an encoder's name to CLS and mean-pooled embeddings
in ``obsm``, used by ``cl.tl.embed``, the Cell embeddings page and the CLI.

In:  an AnnData (cells x genes; raw counts, log1p, TPM or FPKM; symbols, or any identifiers with
     ``harmonise``) and an encoder: a shipped name (cells-binned, cells-rank), a user model's name (my-...) or a
     :class:`~.loading.CellModel`.
Out: a copy with ``obsm["X_<model>_cls"]``, ``obsm["X_<model>_mean"]`` (float32) and the encoder's report in
     ``uns["cellang_embedding"][<model>]``, plus what the user should be told (``messages``: (level, sentence)).
Problems the user can fix raise :class:`EmbeddingError` with a plain sentence.
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from cellang import checkpoints
from cellang.cells import harmonise_var
from cellang.cells.io import subset_cells
from cellang.embedding import embed
from cellang.embedding.embed import obsm_keys
from cellang.embedding.loading import CELL_MODELS, CellModel, cell_models, find_cell_model, shipped_cell_model
from cellang.errors import CellangError
from cellang.progress import Progress, report
from cellang.tokenizers.cells import value_kind

EMBED_CHUNK = 1000  # cells per encoder call: the progress bar moves between calls
Messages = list[tuple[str, str]]


class EmbeddingError(CellangError, ValueError):
    """The embedding cannot be made as asked; the message says why in plain words."""


def resolve_model(model: str | CellModel) -> CellModel:
    """The encoder ``model`` names: a CellModel as given; a shipped name (cells-binned, cells-rank) or a listed
    user model's name (my-...). EmbeddingError when the shipped checkpoint is missing or there is no such model."""
    if isinstance(model, CellModel):
        return model
    if model in CELL_MODELS:
        problem = checkpoints.why_missing(model)
        if problem:
            raise EmbeddingError(problem)
        return shipped_cell_model(model)
    found = find_cell_model(model)
    if found is None:
        names = ", ".join(m.name for m in cell_models()) or "none"
        raise EmbeddingError(f"There is no cell encoder called {model!r}; the encoders are {names}.")
    return found


def _embed_call(adata: ad.AnnData, cell_model: CellModel) -> ad.AnnData:
    model = cell_model.name
    try:
        return embed.embed_cells(adata, model=model, checkpoint_dir=cell_model.path)
    except FileNotFoundError as error:
        raise EmbeddingError(checkpoints.why_missing(model, cell_model.path)
                            or f"The {model} encoder is not available: {error}") from error
    except checkpoints.CheckpointError as error:
        raise EmbeddingError(f"The {model} encoder ({cell_model.folder}) cannot be read: {error}") from error
    except (ValueError, KeyError) as error:
        raise EmbeddingError(f"The {model} encoder cannot embed these cells: {error}") from error


def _embed_with_model(adata: ad.AnnData, cell_model: CellModel, progress: Progress | None = None,
                      span: tuple[float, float] = (0.02, 1.0)) -> ad.AnnData:
    """``adata`` with the model's CLS and mean embeddings in obsm, embedded ``EMBED_CHUNK`` cells at a
    time so that the progress bar moves. A cell's embedding does not depend on the other cells in its
    batch, and the value kind is decided once for all cells, so chunks give the same result as one call."""
    n_cells, model = adata.n_obs, cell_model.name
    if n_cells <= EMBED_CHUNK:
        return _embed_call(adata, cell_model)
    stated = None
    if "counts" not in adata.layers and "value_kind" not in adata.obs.columns:
        stated = value_kind(adata)
    keys = obsm_keys(model)
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    reports = []
    for start in range(0, n_cells, EMBED_CHUNK):
        rows = np.arange(start, min(start + EMBED_CHUNK, n_cells))
        report(progress, span[0] + (span[1] - span[0]) * start / n_cells,
                f"Embedding cells {start + 1:,} to {rows[-1] + 1:,} of {n_cells:,} with {model}...")
        chunk = subset_cells(adata, rows)
        if stated is not None:
            chunk.obs["value_kind"] = stated
        done = _embed_call(chunk, cell_model)
        for key in keys:
            if key not in done.obsm:
                raise EmbeddingError(f"The {model} encoder wrote no {key} embedding.")
            parts[key].append(np.asarray(done.obsm[key]))
        reports.append(dict(done.uns.get(embed.UNS_KEY, {})).get(model))
    for key in keys:
        adata.obsm[key] = np.concatenate(parts[key])
    if all(isinstance(r, dict) for r in reports) and reports:
        merged = dict(reports[0])
        merged["cells_without_genes"] = int(sum(int(r.get("cells_without_genes", 0)) for r in reports))
        adata.uns[embed.UNS_KEY] = {**dict(adata.uns.get(embed.UNS_KEY, {})), model: merged}
    return adata


def _harmonised(adata: ad.AnnData, messages: Messages) -> ad.AnnData:
    """``adata`` with genes re-indexed by approved symbol (what the encoders' vocabularies use)."""
    harmonised, report = harmonise_var(adata)
    if harmonised.n_vars == 0:
        raise EmbeddingError("None of the gene identifiers is a recognised human gene symbol or Ensembl id, so "
                            "the encoders cannot read these cells.")
    messages.append(("note", f"Genes harmonised to approved symbols: {report.summary()}"))
    return harmonised


def _record_model(adata: ad.AnnData, cell_model: CellModel) -> None:
    """Add the encoder's folder, kind and description to its report in ``uns["cellang_embedding"]``."""
    report = dict(adata.uns.get(embed.UNS_KEY, {}))
    entry = dict(report.get(cell_model.name, {}))
    entry.update(model=cell_model.name, checkpoint_folder=cell_model.folder, shipped=cell_model.shipped,
                 mode=cell_model.mode, description=cell_model.description)
    adata.uns[embed.UNS_KEY] = {**report, cell_model.name: entry}


def _coverage(adata: ad.AnnData, model: str, messages: Messages) -> None:
    """Say how many of the model's genes the cells have (embed_cells reports it in uns)."""
    report = dict(adata.uns.get(embed.UNS_KEY, {})).get(model)
    if not isinstance(report, dict) or "fraction_model_genes_present" not in report:
        return
    fraction = float(report["fraction_model_genes_present"])
    used, total = int(report.get("n_genes_used", 0)), int(report.get("n_model_genes", 0))
    messages.append(("warning" if fraction < 0.5 else "note",
                     f"{used:,} of the {model} encoder's {total:,} genes ({fraction:.0%}) are in these cells; "
                     "the others count as not expressed."))
    empty = int(report.get("cells_without_genes", 0))
    if empty:
        messages.append(("warning", f"{empty:,} cells express none of the encoder's genes: their embeddings "
                                    "carry no information about them."))


def embed_dataset(adata: ad.AnnData, model: str | CellModel, *, harmonise: bool = False,
                  progress: Progress | None = None) -> tuple[ad.AnnData, Messages]:
    """(a copy of ``adata`` embedded by ``model``, messages); ``adata`` itself is not changed.

    ``harmonise``: first re-index the genes by approved symbol (uploads; the atlas already is). The copy then has
    the harmonised genes. EmbeddingError names what is wrong (no such model, unreadable values, no known gene).
    """
    cell_model = resolve_model(model)
    model = cell_model.name
    messages: Messages = []
    report(progress, 0.02, f"Embedding {adata.n_obs:,} cells with {model}...")
    work = _harmonised(adata, messages) if harmonise else adata.copy()
    embedded = _embed_with_model(work, cell_model, progress)
    _record_model(embedded, cell_model)
    _coverage(embedded, model, messages)
    for key in obsm_keys(model):
        if key not in embedded.obsm:
            raise EmbeddingError(f"The {model} encoder wrote no {key} embedding.")
        embedded.obsm[key] = np.asarray(embedded.obsm[key], dtype=np.float32)
    report(progress, 1.0, f"Embedded {adata.n_obs:,} cells with {model}.")
    return embedded, messages


def embed_into(adata: ad.AnnData, model: str | CellModel, *, harmonise: bool = False,
               progress: Progress | None = None) -> tuple[str, Messages]:
    """Embed ``adata`` with ``model`` and write the result into ``adata`` itself (its own genes kept): its
    ``obsm`` views and its entry in ``uns["cellang_embedding"]``. Returns (the model's name, messages)."""
    name = resolve_model(model).name
    embedded, messages = embed_dataset(adata, name, harmonise=harmonise, progress=progress)
    for key in obsm_keys(name):
        adata.obsm[key] = embedded.obsm[key]
    adata.uns[embed.UNS_KEY] = {**dict(adata.uns.get(embed.UNS_KEY, {})), name: embedded.uns[embed.UNS_KEY][name]}
    return name, messages
