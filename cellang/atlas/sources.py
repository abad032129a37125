"""The single-cell datasets that ship inside registry packages, and one reader for each.

Each :class:`AtlasSource` names the exact package files it reads (recorded in the manifest) and a
reader that turns the fetched files into an AnnData with the original gene identifiers and the
standard ``obs`` columns (see :data:`STANDARD_OBS`) next to the dataset's own labels. Gene
harmonisation and writing happen in :mod:`cellang.atlas.build`.

No registry package ships heart or cardiomyocyte cells: heart data come from the CELLxGENE Census
(:mod:`cellang.census`) or from the user's own files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellang.atlas.rds import read_rds
from cellang.registry import PackageFile

STANDARD_OBS = ("dataset", "cell_type", "batch", "state", "value_kind")
VALUE_KINDS = ("counts", "log1p", "FPKM", "TPM")


@dataclass
class RawCells:
    """A reader's result: cells x genes with original gene ids as ``var_names``."""

    adata: ad.AnnData
    fallback_columns: tuple[str, ...] = ()  # var columns tried for ids that do not map
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AtlasSource:
    name: str
    title: str
    files: tuple[PackageFile, ...]
    value_kind: str
    labels: str  # what the original labels are, in words
    licence: str
    read: Callable[[str, Sequence[Path]], RawCells]


def _standard_obs(index: Sequence[str], dataset: str, cell_type: Sequence[str], batch: Sequence[str] | str,
                  state: Sequence[str] | str, value_kind: str) -> pd.DataFrame:
    n = len(index)

    def column(values: Sequence[str] | str) -> pd.Categorical:
        return pd.Categorical([values] * n if isinstance(values, str) else [str(v) for v in values])

    return pd.DataFrame({
        "dataset": column(dataset), "cell_type": column(cell_type), "batch": column(batch),
        "state": column(state), "value_kind": column(value_kind),
    }, index=pd.Index([str(i) for i in index]))


def _csr(matrix: object) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix, dtype=np.float32)
    out.sort_indices()
    out.eliminate_zeros()
    return out


def _read_h5ad(path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


# --- HSMM: human skeletal muscle myoblasts, 0-72 h of differentiation (Trapnell et al. 2014) -------

_HSMM_DIR = "usr/lib/R/site-library/HSMMSingleCell/data/"
_HSMM_CELL_TYPES = {  # Monocle's State, named as in Trapnell et al. 2014; the marker genes agree
    "1": "proliferating myoblast", "2": "differentiating myoblast", "3": "interstitial mesenchymal cell",
}
_HSMM_STATES = {0: "myoblast", 24: "differentiating", 48: "differentiating", 72: "myotube"}


def read_hsmm(name: str, paths: Sequence[Path]) -> RawCells:
    import pyreadr

    expression, sheet, genes = (next(iter(pyreadr.read_r(str(p)).values())) for p in paths)
    if list(expression.columns) != list(sheet.index) or list(expression.index) != list(genes.index):
        raise ValueError("HSMM expression matrix, sample sheet and gene annotation do not line up")
    hours = sheet["Hours"].astype(str).astype(int).to_numpy()
    monocle_state = sheet["State"].astype(str).to_numpy()
    obs = _standard_obs(
        sheet.index, name, [_HSMM_CELL_TYPES[s] for s in monocle_state],
        sheet["Library"].astype(str).str.split("_").str[0], [_HSMM_STATES[h] for h in hours], "FPKM",
    )
    obs["hours"] = hours
    obs["media"] = pd.Categorical(sheet["Media"].astype(str).to_numpy())
    obs["monocle_state"] = pd.Categorical(monocle_state)
    obs["pseudotime"] = sheet["Pseudotime"].to_numpy(dtype=np.float64)
    obs["library"] = sheet["Library"].astype(str).to_numpy()
    obs["mapped_fragments"] = sheet["Mapped.Fragments"].to_numpy(dtype=np.int64)
    var = pd.DataFrame({
        "gene_short_name": genes["gene_short_name"].astype(str).to_numpy(),
        "biotype": genes["biotype"].astype(str).to_numpy(),
    }, index=pd.Index([str(i) for i in genes.index]))
    adata = ad.AnnData(_csr(expression.to_numpy(dtype=np.float32).T), obs=obs, var=var)
    notes = [
        "cell_type names Monocle's State column as Trapnell et al. 2014 do (1 proliferating, 2 differentiating "
        "myoblasts, 3 interstitial mesenchymal cells); state is the culture time: 0 h in growth medium = "
        "myoblast, 24 and 48 h in differentiation medium = differentiating, 72 h = myotube; batch is the "
        "sequencing library (one per time point).",
        "genes are mapped by Ensembl id, then by gene_short_name for retired ids.",
    ]
    return RawCells(adata, fallback_columns=("gene_short_name",), notes=notes)


HSMM = AtlasSource(
    name="hsmm", title="Human skeletal muscle myoblasts differentiating to myotubes, 0-72 h (Smart-seq, "
                       "Trapnell et al. 2014)",
    files=tuple(PackageFile("debian", "r-bioc-hsmmsinglecell", "1.18.0-1", _HSMM_DIR + f, "Artistic-2.0")
                for f in ("HSMM_expr_matrix.rda", "HSMM_sample_sheet.rda", "HSMM_gene_annotation.rda")),
    value_kind="FPKM", labels="Hours, Media (GM/DM), Monocle State, Pseudotime", licence="Artistic-2.0",
    read=read_hsmm,
)


# --- Spectra sample: immune cells, log1p-normalised ------------------------------------------------

def read_spectra(name: str, paths: Sequence[Path]) -> RawCells:
    source = _read_h5ad(paths[0])
    labels = source.obs["cell_type_annotations"].astype(str).to_numpy()
    obs = _standard_obs(source.obs_names, name, labels, name, "unknown", "log1p")
    obs["original_label"] = pd.Categorical(labels)
    adata = ad.AnnData(_csr(source.X), obs=obs, var=pd.DataFrame(index=source.var_names.astype(str)))
    return RawCells(adata, notes=["tissue, donor and disease are not stated by the package: batch is the "
                                  "dataset and state 'unknown'."])


SPECTRA = AtlasSource(
    name="spectra_immune", title="Immune cells, Spectra sample data",
    files=(PackageFile("pypi", "scspectra", "0.2.1", "Spectra/data/sample_data.h5ad", "MIT"),),
    value_kind="log1p", labels="cell_type_annotations (14 immune types)", licence="MIT", read=read_spectra,
)


# --- PBMC 68k reduced (scanpy): counts recovered from the log1p-normalised .raw ---------------------

def recover_counts(log1p_values: sp.spmatrix, tolerance: float = 0.05) -> tuple[sp.csr_matrix, dict]:
    """Counts from log1p(counts / total * scale): expm1, divide each cell by its smallest non-zero value
    (one count), refine that unit by least squares, round. Reports how many cells come out whole."""
    linear = sp.csr_matrix(log1p_values, dtype=np.float64)
    linear.data = np.expm1(linear.data)
    n = linear.shape[0]
    first_pass, refined = np.zeros(n, bool), np.zeros(n, bool)
    for row in range(n):
        start, end = linear.indptr[row], linear.indptr[row + 1]
        values = linear.data[start:end]
        if values.size == 0:
            first_pass[row] = refined[row] = True
            continue
        ratio = values / values[values > 0].min()
        first_pass[row] = np.abs(ratio - np.round(ratio)).max() < tolerance
        counts = np.maximum(np.round(ratio), 1.0)
        unit = float(values @ counts / (counts @ counts))
        ratio = values / unit
        refined[row] = np.abs(ratio - np.round(ratio)).max() < tolerance
        linear.data[start:end] = np.round(ratio)
    stats = {"integer_cells_min_unit": round(float(first_pass.mean()), 4),
             "integer_cells_refined_unit": round(float(refined.mean()), 4), "tolerance": tolerance}
    return _csr(linear), stats


def read_pbmc68k(name: str, paths: Sequence[Path]) -> RawCells:
    source = _read_h5ad(paths[0])
    counts, stats = recover_counts(source.raw.X)
    labels = source.obs["bulk_labels"].astype(str).to_numpy()
    obs = _standard_obs(source.obs_names, name, labels, name, "normal", "counts")
    obs["original_label"] = pd.Categorical(labels)
    obs["louvain"] = pd.Categorical(source.obs["louvain"].astype(str).to_numpy())
    obs["phase"] = pd.Categorical(source.obs["phase"].astype(str).to_numpy())
    obs["percent_mito"] = source.obs["percent_mito"].to_numpy(dtype=np.float64)
    adata = ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=source.raw.var_names.astype(str)))
    notes = [
        "X holds counts recovered from .raw (log1p of library-size-normalised counts): expm1, divided by each "
        f"cell's smallest non-zero value, rounded. {stats['integer_cells_min_unit']:.1%} of cells are whole "
        f"numbers within {stats['tolerance']} at that step; refining each cell's unit by least squares makes "
        f"{stats['integer_cells_refined_unit']:.1%} whole. The package's X (scaled values) is not kept.",
        "healthy donor PBMCs (10x Genomics, Zheng et al. 2017): state 'normal'; one donor, so batch is the dataset.",
    ]
    return RawCells(adata, notes=notes, stats=stats)


PBMC68K = AtlasSource(
    name="pbmc68k_reduced", title="PBMC 68k subset (10x, healthy donor), scanpy's pbmc68k_reduced",
    files=(PackageFile("pypi", "scanpy", "1.11.5", "scanpy/datasets/10x_pbmc68k_reduced.h5ad", "BSD-3-Clause"),),
    value_kind="counts", labels="bulk_labels (10 types), louvain, phase", licence="BSD-3-Clause",
    read=read_pbmc68k,
)


# --- celltypist sample: raw UMI counts, whole transcriptome, no labels -----------------------------

def read_celltypist(name: str, paths: Sequence[Path]) -> RawCells:
    table = pd.read_csv(paths[0], index_col=0)
    values = table.to_numpy(dtype=np.float64)
    deviation = float(np.abs(values - np.round(values)).max())
    if deviation > 1e-6:
        raise ValueError(f"celltypist sample should hold whole-number counts; a value is {deviation} off")
    obs = _standard_obs(table.index, name, "unknown", name, "unknown", "counts")
    adata = ad.AnnData(_csr(np.round(values)), obs=obs,
                       var=pd.DataFrame(index=pd.Index([str(c) for c in table.columns])))
    notes = ["no labels, tissue or donor in the package: cell_type and state 'unknown', batch the dataset.",
             f"the CSV writes some counts as e.g. 0.999999999999999; they are rounded (largest deviation "
             f"{deviation:.1e}).",
             "gene names are older GENCODE/Ensembl symbols (RP11-..., AC0...): about a third do not map and "
             "are dropped."]
    return RawCells(adata, notes=notes)


CELLTYPIST = AtlasSource(
    name="celltypist_immune", title="Immune cells, whole transcriptome, celltypist sample",
    files=(PackageFile("pypi", "celltypist", "1.7.1", "celltypist/data/samples/sample_cell_by_gene.csv", "MIT"),),
    value_kind="counts", labels="none", licence="MIT", read=read_celltypist,
)


# --- infercnvpy oligodendroglioma (Tirosh et al. 2016), 4 patients ---------------------------------

def _oligo_cell_type(label: str) -> str:
    if label.startswith("malignant"):
        return "malignant cell"
    return {"Oligodendrocytes (non-malignant)": "oligodendrocyte",
            "Microglia/Macrophage": "microglia/macrophage"}.get(label, label)


def read_oligodendroglioma(name: str, paths: Sequence[Path]) -> RawCells:
    source = _read_h5ad(paths[0])
    labels = source.obs["cell_type"].astype(str).to_numpy()
    patients = [cell.split("_")[0] for cell in source.obs_names]
    obs = _standard_obs(source.obs_names, name, [_oligo_cell_type(s) for s in labels], patients,
                        "oligodendroglioma", "TPM")
    obs["original_label"] = pd.Categorical(labels)
    var = source.var[["chromosome", "start", "end"]].copy()
    var.index = source.var_names.astype(str)
    adata = ad.AnnData(_csr(source.X), obs=obs, var=var)
    notes = ["batch is the patient, the prefix of the cell name (MGH36, MGH53, MGH54, 93, 97); every cell comes "
             "from a tumour, so state is 'oligodendroglioma' for malignant and non-malignant cells alike.",
             "values are TPM-like (Smart-seq2; about 1e5 per cell over the 9,450 genes kept)."]
    return RawCells(adata, notes=notes)


OLIGODENDROGLIOMA = AtlasSource(
    name="oligodendroglioma", title="Oligodendroglioma, 5 patients (Smart-seq2, Tirosh et al. 2016), infercnvpy",
    files=(PackageFile("pypi", "infercnvpy", "0.6.1", "infercnvpy/datasets/data/oligodendroglioma.h5ad",
                       "BSD-3-Clause"),),
    value_kind="TPM", labels="cell_type (malignant per patient, oligodendrocytes, microglia/macrophages)",
    licence="BSD-3-Clause", read=read_oligodendroglioma,
)


# --- decoupleR PBMC 3k subset: a Seurat object in .rds ---------------------------------------------

def read_decoupler_pbmc(name: str, paths: Sequence[Path]) -> RawCells:
    seurat = read_rds(paths[0])
    assay = seurat.slot("assays").elements()["RNA"]
    data, genes, cells = assay.slot("data").dgc_matrix()
    meta = {key: node.column() for key, node in seurat.slot("meta.data").elements().items()}
    labels = seurat.slot("active.ident").factor()
    obs = _standard_obs(cells, name, labels, list(meta["orig.ident"]), "normal", "log1p")
    obs["original_label"] = pd.Categorical(labels)
    obs["seurat_clusters"] = pd.Categorical(list(meta["seurat_clusters"]))
    n_count = np.asarray(meta["nCount_RNA"], dtype=np.float64)
    obs["n_count_rna"] = n_count
    obs["n_feature_rna"] = np.asarray(meta["nFeature_RNA"], dtype=np.int64)
    obs["percent_mt"] = np.asarray(meta["percent.mt"], dtype=np.float64)
    log1p = _csr(data.T)
    # Seurat LogNormalize: log1p(count / nCount_RNA * 10000); invert it with the stored nCount_RNA.
    linear = log1p.astype(np.float64)
    linear.data = np.expm1(linear.data)
    counts = sp.diags(n_count / 1e4) @ linear
    counts = sp.csr_matrix(counts)
    whole = float(np.mean(np.abs(counts.data - np.round(counts.data)) < 0.01))
    counts.data = np.round(counts.data)
    adata = ad.AnnData(log1p, obs=obs, var=pd.DataFrame(index=pd.Index(genes)), layers={"counts": _csr(counts)})
    notes = [
        "read from the Seurat object's RNA assay 'data' slot (LogNormalize, scale 10,000) with rdata's low-level "
        "parser; the 'counts' slot is empty in the package, so layers['counts'] is recovered as "
        f"expm1(data) * nCount_RNA / 10,000 ({whole:.2%} of values within 0.01 of a whole number, then rounded).",
        "cell_type is the object's active identity (8 types x 20 cells); 10x PBMC 3k from a healthy donor: "
        "state 'normal', batch the sample (orig.ident).",
    ]
    return RawCells(adata, notes=notes, stats={"counts_whole_fraction": round(whole, 4)})


DECOUPLER_PBMC = AtlasSource(
    name="pbmc3k_decoupler", title="PBMC 3k subset (10x, healthy donor), decoupleR's Seurat example",
    files=(PackageFile("debian", "r-bioc-decoupler", "2.4.0+dfsg-1",
                       "usr/lib/R/site-library/decoupleR/extdata/sc_data.rds", "GPL-3"),),
    value_kind="log1p", labels="active identity (8 PBMC types), seurat_clusters", licence="GPL-3",
    read=read_decoupler_pbmc,
)


# --- scirpy's Wu et al. 2020 subset: T cells of tumour, adjacent normal tissue and blood ------------

_WU_STATES = {"Tumor": "tumour", "NAT": "normal adjacent tissue", "Blood": "blood"}
_WU_CANCERS = {"Lung": "lung", "Endo": "endometrial", "Renal": "renal", "Colon": "colorectal"}
_ENTREZ_PREFIX = "GeneID:"


def read_wu2020(name: str, paths: Sequence[Path]) -> RawCells:
    source = _read_h5ad(paths[0])
    obs_in = source.obs
    labels = obs_in["cluster_orig"].astype(str).to_numpy()
    tissue = obs_in["source"].astype(str).to_numpy()
    unknown_tissue = sorted(set(tissue) - set(_WU_STATES))
    if unknown_tissue:
        raise ValueError(f"Wu 2020 T cells: unexpected tissue sources {unknown_tissue}")
    patients = obs_in["patient"].astype(str).to_numpy()
    cancers = [next((c for p, c in _WU_CANCERS.items() if patient.startswith(p)), "unknown") for patient in patients]
    matrix = _csr(source.X)
    deviation = float(np.abs(matrix.data - np.round(matrix.data)).max()) if matrix.nnz else 0.0
    if deviation > 0 or (matrix.data < 0).any():
        raise ValueError(f"Wu 2020 T cells should hold raw UMI counts; a value is {deviation} from a whole number")
    obs = _standard_obs(source.obs_names, name, labels, patients, [_WU_STATES[t] for t in tissue], "counts")
    obs["original_label"] = pd.Categorical(labels)
    obs["patient"] = pd.Categorical(patients)
    obs["sample"] = pd.Categorical(obs_in["sample"].astype(str).to_numpy())
    obs["tissue_source"] = pd.Categorical(tissue)
    obs["cancer_type"] = pd.Categorical(cancers)
    obs["clonotype"] = obs_in["clonotype_orig"].astype(str).to_numpy()
    gene_ids = source.var["gene_ids"].astype(str)
    if not gene_ids.str.startswith(_ENTREZ_PREFIX).all():
        raise ValueError("Wu 2020 T cells: var['gene_ids'] should hold NCBI GeneID:<Entrez id> values")
    var = pd.DataFrame({"gene_symbol": source.var_names.astype(str).to_numpy()},
                       index=pd.Index(gene_ids.str.slice(len(_ENTREZ_PREFIX)).to_numpy()))
    adata = ad.AnnData(matrix, obs=obs, var=var)
    notes = [
        "scirpy's test subset of Wu et al. 2020 (10x scRNA-seq with TCR sequencing): 200 T cells of 14 patients "
        "with lung, endometrial, renal or colorectal cancer. cell_type is the file's cluster_orig, the authors' 16 "
        "T-cell clusters kept verbatim (numbered 4.x for CD4 and 8.x for CD8 clusters, plus 3.1-MT); batch is the "
        "patient; state is the file's source column: Tumor = tumour, NAT = normal adjacent tissue, Blood = blood.",
        "X holds the file's raw UMI counts (every value a whole number). The sample, the cancer type (from the "
        "patient name) and the TCR clonotype are kept in obs; the other TCR columns and the UMAP are not.",
        "genes are mapped by Entrez id (var gene_ids, GeneID:<id>), then by the file's symbol (gene_symbol) for "
        "retired ids; most ids that map to neither are LOC genes, which have no HGNC symbol.",
    ]
    return RawCells(adata, fallback_columns=("gene_symbol",), notes=notes)


WU2020 = AtlasSource(
    name="wu2020_tcells", title="Human T cells of tumour, adjacent normal tissue and blood, 14 patients (10x, "
                                "Wu et al. 2020), scirpy test data",
    files=(PackageFile("pypi", "scirpy", "0.22.5", "scirpy/tests/data/wu2020_200_v0_11.h5ad", "BSD-3-Clause"),),
    value_kind="counts", labels="cluster_orig (16 T-cell subtypes), patient, source (Tumor/NAT/Blood), clonotype",
    licence="BSD-3-Clause", read=read_wu2020,
)

ATLAS_SOURCES: tuple[AtlasSource, ...] = (HSMM, SPECTRA, PBMC68K, CELLTYPIST, OLIGODENDROGLIOMA, DECOUPLER_PBMC,
                                          WU2020)
