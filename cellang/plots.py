"""Plotly figures for the app. Functions take tables or corpus objects and return figures; no I/O."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def sets_per_source(table: pd.DataFrame) -> go.Figure:
    """Bar chart of ``table`` (columns ``source``, ``sets``), the 'all' row left out."""
    rows = table[table["source"] != "all"]
    figure = px.bar(rows, x="source", y="sets", text="sets", title="Gene sets per source")
    figure.update_layout(xaxis_title="", yaxis_title="gene sets", margin={"t": 50, "b": 10})
    return figure


def size_distribution(frame: pd.DataFrame) -> go.Figure:
    """Histogram of set sizes (column ``size``) coloured by ``source``, log-scaled counts."""
    figure = px.histogram(frame, x="size", color="source", nbins=50, log_y=True,
                          title="Gene-set size distribution")
    figure.update_layout(xaxis_title="genes per set", yaxis_title="gene sets (log scale)",
                         barmode="stack", margin={"t": 50, "b": 10})
    return figure


MAX_COLOUR_CATEGORIES = 30  # more categories than this: the rarest are drawn together as "other"
NUMERIC_MIN_VALUES = 11  # numeric columns with at least this many distinct values get a colour scale


def _escaped(values: object) -> list[str]:
    """Strings shown as text: plotly reads a little HTML in text, so <, > and & are written as entities."""
    import html

    return [html.escape(str(value), quote=False) for value in values]


def embedding_scatter(coords: object, colour_values: object, colour_name: str | None, hover: pd.DataFrame) -> go.Figure:
    """A 2-D map of cells (``coords``: cells x 2), coloured by ``colour_values`` (one per cell; None: one
    colour, for cells without any obs column).

    Numeric values with at least 11 distinct values get a continuous colour scale (missing ones grey);
    anything else is categorical, one legend entry per value (the 30 most frequent; the rest as "other").
    ``hover``: one row per cell, every column shown on hover. Labels and names are data: they are shown
    as text, never read as markup.
    """
    import numpy as np

    points = np.asarray(coords, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"coords must be cells x 2, not shape {points.shape}")
    if colour_values is None:
        colour_values, colour_name = ["all cells"] * len(points), colour_name or "cells"
    values = pd.Series(list(colour_values) if not isinstance(colour_values, pd.Series) else colour_values.to_numpy())
    hover = hover.reset_index(drop=True)
    if len(values) != len(points) or len(hover) != len(points):
        raise ValueError(f"{len(points)} cells, {len(values)} colour values and {len(hover)} hover rows")
    custom = np.column_stack([_escaped(hover[c]) for c in hover.columns]) if len(hover.columns) else None
    template = "<br>".join(f"{name}: %{{customdata[{i}]}}" for i, name in enumerate(_escaped(hover.columns)))
    template += "<extra></extra>"
    size = 7 if len(points) <= 1_000 else 5 if len(points) <= 10_000 else 3
    name = _escaped([colour_name])[0]
    figure = go.Figure()

    def add(mask: np.ndarray, label: str, legend: bool = True, **marker: object) -> None:
        figure.add_trace(go.Scattergl(x=points[mask, 0], y=points[mask, 1], mode="markers", name=label,
                                      showlegend=legend, customdata=None if custom is None else custom[mask],
                                      hovertemplate=template, marker={"size": size, "opacity": 0.85, **marker}))

    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    if numeric and values.nunique(dropna=True) >= NUMERIC_MIN_VALUES:
        numbers = values.astype(float).to_numpy()
        missing = np.isnan(numbers)
        if missing.any():
            add(missing, "missing", color="lightgrey")
        add(~missing, name, legend=False, color=numbers[~missing], colorscale="Viridis", showscale=True,
            colorbar={"title": {"text": name}})
    else:
        labels = values.astype(object).where(values.notna(), "missing").astype(str)
        counts = labels.value_counts(sort=True)
        many = len(counts) > MAX_COLOUR_CATEGORIES
        kept = list(counts.index[:MAX_COLOUR_CATEGORIES - 1] if many else counts.index)
        if len(kept) < len(counts):
            labels = labels.where(labels.isin(kept), f"other ({len(counts) - len(kept)} values)")
        # Up to 10 labels: Tableau's 10, each hue once (Dark24 gives its 1st and 10th labels two blues).
        palette = px.colors.qualitative.T10 if len(kept) + (len(kept) < len(counts)) <= 10 else \
            px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
        order = sorted(labels.unique(), key=lambda v: (v.startswith("other ("), v == "missing", v))
        for i, label in enumerate(order):
            add((labels == label).to_numpy(), _escaped([label])[0], color=palette[i % len(palette)])
    # Legend under the map, not beside it: beside, a long legend squeezes the map in a half-width column.
    figure.update_layout(legend={"title": {"text": name}, "itemsizing": "constant", "orientation": "h",
                                 "yanchor": "top", "y": -0.08, "xanchor": "left", "x": 0},
                         margin={"t": 30, "b": 10, "l": 10, "r": 10},
                         xaxis={"title": "UMAP 1", "showticklabels": False, "zeroline": False},
                         yaxis={"title": "UMAP 2", "showticklabels": False, "zeroline": False},
                         plot_bgcolor="white", height=560 + 22 * min(len(figure.data), MAX_COLOUR_CATEGORIES) // 4)
    return figure


VOLCANO_SCORE = ("effect", "mean_score")  # a deletion ranking's x axis; gene-pair tables have no effect


def perturbation_volcano(table: pd.DataFrame, known: object = (), score_label: str = "effect toward the goal",
                         label_top: int = 10) -> go.Figure:
    """Volcano of a ranked perturbation table (columns gene, cells, effect or mean_score, q): x = the effect (the
    mean score in tables without one), y = -log10 q; known genes (an iterable of symbols) drawn and named in red; the first `label_top`
    genes named, each label on its own row with a line to its point, so neighbours do not overprint."""
    import numpy as np

    if table.empty:
        return go.Figure().update_layout(title="No genes were scored", height=420)
    known_set = {str(g) for g in known}
    q = table["q"].astype(float).clip(lower=1e-300).to_numpy()
    frame = pd.DataFrame({"gene": _escaped(table["gene"]), "score": table[VOLCANO_SCORE[0] if VOLCANO_SCORE[0] in table
                                                                           else VOLCANO_SCORE[1]].astype(float),
                          "neg_log_q": -np.log10(q), "cells": table["cells"].astype(int),
                          "kind": ["known gene" if str(g) in known_set else "other gene" for g in table["gene"]]})
    figure = go.Figure()
    for kind, colour, size in (("other gene", "rgba(90,90,90,0.55)", 6), ("known gene", "crimson", 10)):
        part = frame[frame["kind"] == kind]
        if part.empty:
            continue
        figure.add_trace(go.Scattergl(
            x=part["score"], y=part["neg_log_q"], mode="markers", name=kind, marker={"color": colour, "size": size},
            customdata=np.column_stack([part["gene"], part["cells"]]),
            hovertemplate="%{customdata[0]}<br>score %{x:.4g}<br>-log10 q %{y:.2f}<br>cells %{customdata[1]}"
                          "<extra></extra>"))
    # Top genes often share one q and nearly one score: labels on the points would overprint, so each name
    # sits on its own row above the cluster, alternating sides, with a thin line to its point.
    named = pd.concat([frame.head(label_top), frame[frame["kind"] == "known gene"]]).drop_duplicates("gene")
    for k, row in enumerate(named.itertuples()):
        colour = "crimson" if row.kind == "known gene" else "black"
        figure.add_annotation(x=row.score, y=row.neg_log_q, text=row.gene, showarrow=True, arrowhead=0,
                              arrowwidth=1, arrowcolor="rgba(90,90,90,0.6)", ax=60 if k % 2 == 0 else -60,
                              ay=-24 - 16 * (k // 2), font={"color": colour, "size": 11})
    figure.add_hline(y=-np.log10(0.05), line_dash="dot", line_color="grey", annotation_text="q = 0.05")
    figure.update_layout(xaxis_title=score_label, yaxis_title="-log10 q (BH)", plot_bgcolor="white",
                         height=460 + 16 * (len(named) // 2),
                         margin={"t": 30, "b": 10}, legend={"title": {"text": ""}})
    return figure
