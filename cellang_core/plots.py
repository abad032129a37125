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
