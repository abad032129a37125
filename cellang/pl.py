"""``cl.pl``: the figures the app draws, for a notebook. Each returns an object that displays itself there
(a plotly Figure, or an HTML drawing); nothing is computed that a ``cl.tl`` / ``cl.pw`` call did not already
compute, except the 2-D map of an embedding.

    import cellang as cl
    cl.pl.umap(adata, rep="X_cells_binned_cls", color="cell_type")
    cl.pl.volcano(cl.tl.rank_deletions(adata, groupby="cell_type", start="myotube", goal="myoblast"))
    cl.pl.network(cl.pw.complete(["MYOD1", "MYOG", "DES"]))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import anndata as ad
import pandas as pd

__all__ = ["NetworkDrawing", "corpus_sizes", "corpus_sources", "network", "scatter", "umap", "volcano"]


def umap(adata: ad.AnnData, rep: str = "X_cells_binned_cls", color: str | None = None, *, seed: int = 0):
    """A UMAP of an embedding, coloured by an ``obs`` column.

    Parameters
    ----------
    adata
        Cells with the embedding in ``obsm[rep]`` (from :func:`cellang.tl.embed`, or any, e.g. ``X_pca``).
    rep
        The ``obsm`` key to map. Its 2-D map is computed once (exact neighbours, seeded) and kept in
        ``obsm[rep + "_umap"]``.
    color
        An ``obs`` column to colour by (None: one colour).
    seed
        Seeds the map.

    Returns
    -------
    plotly.graph_objects.Figure; hovering a cell shows its colour label. Labels are shown as text.
    """
    from cellang.embedding.metrics import umap_coordinates
    from cellang.errors import CellangError
    from cellang.plots import embedding_scatter

    if rep not in adata.obsm:
        raise CellangError(f"cl.pl.umap: obsm has no {rep!r} (it has {', '.join(adata.obsm) or 'nothing'}); "
                           "run cl.tl.embed(adata, model=...) first")
    if color is not None and color not in adata.obs:
        raise CellangError(f"cl.pl.umap: no obs column {color!r}; the columns are {', '.join(adata.obs.columns)}")
    key = f"{rep}_umap"
    if key not in adata.obsm:
        adata.obsm[key] = umap_coordinates(adata.obsm[rep], seed=seed)
    values = adata.obs[color] if color is not None else None
    hover = pd.DataFrame({"cell": adata.obs_names.astype(str)})
    if color is not None:
        hover[color] = adata.obs[color].astype(str).to_numpy()
    figure = embedding_scatter(adata.obsm[key], values, color, hover)
    return figure.update_layout(title=f"UMAP of {rep}")


def scatter(coords, values=None, name: str | None = None, hover: pd.DataFrame | None = None):  # type: ignore[no-untyped-def]
    """A 2-D map of cells (a UMAP already computed), as :func:`umap` draws it.

    Parameters
    ----------
    coords
        Cells x 2 coordinates.
    values
        One colour value per cell (None: one colour). Numbers with at least 11 distinct values get a colour
        scale; anything else one legend entry per value (the 30 most frequent, the rest as "other").
    name
        What the values are (the legend's title).
    hover
        One row per cell; every column is shown on hover (default: the cell's number).

    Returns
    -------
    plotly.graph_objects.Figure; labels are shown as text, never read as markup.
    """
    from cellang.plots import embedding_scatter

    if hover is None:
        hover = pd.DataFrame({"cell": range(1, len(coords) + 1)})
    return embedding_scatter(coords, values, name, hover)


def corpus_sources(table: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Gene sets per corpus source.

    Parameters
    ----------
    table
        Columns ``source`` and ``sets`` (e.g. ``cl.datasets.corpus().source_table()``); an ``all`` row is left out.

    Returns
    -------
    plotly.graph_objects.Figure (a bar chart).
    """
    from cellang.plots import sets_per_source

    return sets_per_source(table)


def corpus_sizes(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    """The distribution of gene-set sizes, by source.

    Parameters
    ----------
    frame
        One row per set with columns ``size`` and ``source`` (e.g. ``cl.datasets.corpus().to_frame()``).

    Returns
    -------
    plotly.graph_objects.Figure (a histogram, log-scaled counts).
    """
    from cellang.plots import size_distribution

    return size_distribution(frame)


def volcano(table: pd.DataFrame, known: Iterable[str] = (), *, label_top: int = 10,
            score_label: str = "effect toward the goal (control SDs)"):
    """The volcano of a deletion ranking: the effect toward the goal (beyond expression-matched controls) against
    -log10 q.

    Parameters
    ----------
    table
        The DataFrame of :func:`cellang.tl.rank_deletions` (columns gene, cells, effect, q).
    known
        Genes drawn and named in red (expected targets).
    label_top
        How many of the best genes are named.
    score_label
        The x axis's title (what the score is).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    from cellang.errors import CellangError
    from cellang.plots import perturbation_volcano

    missing = [c for c in ("gene", "cells", "effect", "q") if c not in table]
    if missing:
        raise CellangError(f"cl.pl.volcano: the table has no {', '.join(missing)} column; pass the DataFrame "
                           "cl.tl.rank_deletions returned")
    return perturbation_volcano(table, known, score_label=score_label, label_top=label_top)


@dataclass(frozen=True)
class NetworkDrawing:
    """A co-membership network: ``graph`` (networkx) and ``html`` (a self-contained page, works offline);
    shows itself in a notebook."""

    graph: object
    html: str

    def _repr_html_(self) -> str:
        import html

        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:600px;'
                'border:none"></iframe>')

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.html)


def network(completion: pd.DataFrame, *, max_edges_per_gene: int = 5) -> NetworkDrawing:
    """The completion drawn as the page draws it: prompt genes and predicted genes, each predicted gene linked
    to the prompt genes it shares the most training sets with.

    Parameters
    ----------
    completion
        The DataFrame of :func:`cellang.pw.complete` (its ``.attrs`` name the prompt and hidden genes).
    max_edges_per_gene
        Links drawn per predicted gene, strongest first.

    Returns
    -------
    NetworkDrawing: ``.graph`` (nodes with role prompt / recovered / novel, edges weighted by shared sets) and
    ``.html``; ``.save(path)`` writes the page.
    """
    from cellang.completion.network import co_membership_graph, render_network_html
    from cellang.corpus import load_corpus
    from cellang.errors import CellangError

    if "prompt" not in completion.attrs or "gene" not in completion:
        raise CellangError("cl.pl.network: pass the DataFrame cl.pw.complete returned (it names its prompt)")
    train = [p.genes for p in load_corpus().split("train")]
    predicted = list(zip(completion["gene"].astype(str), completion["score"].astype(float)))
    graph = co_membership_graph(completion.attrs["prompt"], predicted, train, max_edges_per_gene,
                                masked=completion.attrs.get("hidden", ()))
    return NetworkDrawing(graph, render_network_html(graph))
