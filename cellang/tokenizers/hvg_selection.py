"""How the binned tokeniser's vocabulary is chosen from per-dataset gene variability (see :mod:`.binned`).

Shared by the in-memory fit (:func:`.binned.highly_variable_genes`) and the streaming one
(:class:`.streaming_hvg.StreamingHVG`), so both apply the same rule to the same statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HVG_SELECTIONS = {  # name -> how the training record describes it
    "shared": "scanpy highly_variable_genes flavor=seurat batch_key=dataset on log1p(1e4)",
    "per-dataset": "each dataset's expressed genes ranked by scanpy seurat normalised dispersion on log1p(1e4), "
                   "taken in turn across datasets",
}
HVG_SELECTION = "per-dataset"  # the shipped cells-binned vocabulary


def check_hvg_selection(selection: str) -> None:
    if selection not in HVG_SELECTIONS:
        raise ValueError(f"hvg_selection must be one of {', '.join(HVG_SELECTIONS)}, got {selection!r}")


def ranked_by_dispersion(dispersions_norm: np.ndarray, genes: Sequence[str]) -> list[str]:
    """Genes by normalised dispersion, highest first, ties by name; NaN (no variance) left out."""
    finite = ~np.isnan(dispersions_norm)
    names = np.asarray([str(g) for g in genes])[finite]
    return [str(g) for g in names[np.lexsort((names, -dispersions_norm[finite]))]]


def take_in_turn(rankings: Sequence[Sequence[str]], n_top: int) -> list[str]:
    """The first n_top genes in order of their best rank in any ranking (ties: the earlier ranking):
    the rankings take turns, each adding its next gene unless already taken.
    E.g. [[a, b, c], [a, d]], 3 -> [a, b, d]."""
    chosen: dict[str, None] = {}
    for depth in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if depth < len(ranking):
                chosen.setdefault(ranking[depth], None)
                if len(chosen) == n_top:
                    return list(chosen)
    return list(chosen)
