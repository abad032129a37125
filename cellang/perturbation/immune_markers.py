"""Immune cell-type markers for the marker-deletion validation (``cellang benchmark deletion-validity``).

In:  the labelled immune datasets of the atlas and, when the package registry answers, grnndata's
     ``celltype.gmt``.
Out: per shared cell type (B, plasma, CD4 T, CD8 T, Treg, NK, monocyte, DC) its marker symbols: from the
     GMT's "Immune system" sets (``gmt_markers``) or derived by rank_genes_groups on the OTHER labelled
     datasets (``derived_markers``, so a dataset's markers never come from its own cells).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from cellang.cli import one_line
from cellang.genes import load_resolver
from cellang.gmt import read_gmt
from cellang.perturbation.validation import derive_markers, rank_genes_groups_table
from cellang.registry import PackageFile, RegistryUnavailable, fetch_member

# Labelled immune datasets: cell-type label -> a type shared across datasets (for derived markers).
IMMUNE_TYPES: dict[str, dict[str, str]] = {
    "spectra_immune": {"B_memory": "B", "B_naive": "B", "plasma": "plasma", "CD4_T": "CD4 T", "CD8_T": "CD8 T",
                       "Treg": "Treg", "NK": "NK", "MDC": "monocyte", "DC": "DC"},
    "pbmc68k_reduced": {"CD14+ Monocyte": "monocyte", "CD19+ B": "B", "CD4+/CD25 T Reg": "Treg",
                        "CD4+/CD45RA+/CD25- Naive T": "CD4 T", "CD4+/CD45RO+ Memory": "CD4 T", "CD56+ NK": "NK",
                        "CD8+ Cytotoxic T": "CD8 T", "CD8+/CD45RA+ Naive Cytotoxic": "CD8 T", "Dendritic": "DC"},
    "pbmc3k_decoupler": {"B": "B", "CD14+ Mono": "monocyte", "CD8 T": "CD8 T", "DC": "DC", "FCGR3A+ Mono": "monocyte",
                         "Memory CD4 T": "CD4 T", "NK": "NK", "Naive CD4 T": "CD4 T"},
    "wu2020_tcells": {"4.1-Trm": "CD4 T", "4.2-RPL32": "CD4 T", "4.3-TCF7": "CD4 T", "4.4-FOS": "CD4 T",
                      "4.5-IL6ST": "CD4 T", "4.6a-Treg": "Treg", "4.6b-Treg": "Treg", "8.1-Teff": "CD8 T",
                      "8.2-Tem": "CD8 T", "8.3a-Trm": "CD8 T", "8.3b-Trm": "CD8 T", "8.3c-Trm": "CD8 T"},
}
# grnndata celltype.gmt "Immune system" sets per shared type (Treg has none).
GMT_SETS: dict[str, tuple[str, ...]] = {
    "B": ("Naive B cells", "Memory B cells"), "plasma": ("Plasma B cells",),
    "CD4 T": ("Naive CD4+ T cells", "Memory CD4+ T cells", "Effector CD4+ T cells"),
    "CD8 T": ("Naive CD8+ T cells", "Memory CD8+ T cells", "Effector CD8+ T cells"),
    "NK": ("Natural killer cells",),
    "monocyte": ("Classical Monocytes", "Non-classical monocytes", "Intermediate monocytes"),
    "DC": ("Myeloid Dendritic cells",),
}
GMT_FILE = ("pypi", "grnndata", "1.3.2", "grnndata/celltype.gmt", "MIT")


def gmt_markers(vocabulary) -> tuple[dict[str, list[str]], dict]:  # type: ignore[no-untyped-def]
    """{shared type: marker symbols} from grnndata's celltype.gmt, and the source record (or the reason it
    could not be read)."""
    try:
        source = fetch_member(PackageFile(*GMT_FILE))
    except (RegistryUnavailable, KeyError, OSError) as error:
        return {}, {"error": one_line(error)}
    sets = {s.name: s.genes for s in read_gmt(source.path, strict=False).gene_sets if s.description == "Immune system"}
    resolver = load_resolver()
    out, unresolved = {}, {}
    for kind, names in GMT_SETS.items():
        symbols, missing = [], []
        for raw in dict.fromkeys(g.strip() for name in names for g in sets[name] if g.strip()):
            match = resolver.resolve(raw) if raw not in vocabulary else None
            symbol = raw if match is None else (match.symbol if match.mapped else None)
            (symbols if symbol else missing).append(symbol or raw)
        out[kind] = sorted(set(symbols))
        unresolved[kind] = missing
    return out, {**source.manifest_entry(), "sets": {k: list(n) for k, n in GMT_SETS.items()},
                 "unresolved": unresolved}


def derived_markers(data: Callable[[str], tuple], min_cells: int = 5) -> tuple[dict[tuple[str, str], list[str]], dict]:
    """{(dataset, shared type): markers from the OTHER labelled immune datasets}, and per dataset and type
    where its markers came from. ``data(name)``: (AnnData, log-normalised expression, gene names) of an
    atlas dataset."""
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for name, types in IMMUNE_TYPES.items():
        adata, expression, genes = data(name)
        kinds = adata.obs["cell_type"].astype(str).map(types).to_numpy()
        for kind in sorted(set(types.values())):
            group = kinds == kind
            if group.sum() >= min_cells and (~group).sum() >= min_cells:
                tables[(name, kind)] = rank_genes_groups_table(expression, genes, group)
    markers, notes = {}, {}
    for name, types in IMMUNE_TYPES.items():
        for kind in sorted(set(types.values())):
            others = [t for (d, k), t in sorted(tables.items()) if k == kind and d != name]
            markers[(name, kind)] = derive_markers(others)
            notes[f"{name}/{kind}"] = {"from": sorted(d for (d, k) in tables if k == kind and d != name),
                                       "markers": markers[(name, kind)]}
    return markers, notes
