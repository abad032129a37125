"""Tests for cellang.cells: reading, validation, value kinds, gene harmonisation, uploads.

Small files are written in each test so every expected answer is known: real gene symbols with
made-up values.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from cellang.cells import (
    CellFileError,
    detect_value_kind,
    harmonise_var,
    inspect_upload,
    is_hdf5,
    read_cells,
    sample_indices,
    validate_cells,
    write_h5ad,
)
from cellang.cells.io import content_sha256

GENES = ["ACTC1", "TNNT2", "MYH3", "DES", "TTN", "MYOD1", "MYOG", "ACTB", "GAPDH", "TP53"]
ENSEMBL = ["ENSG00000159251", "ENSG00000118194", "ENSG00000109063", "ENSG00000175084", "ENSG00000155657",
           "ENSG00000129152", "ENSG00000122180", "ENSG00000075624", "ENSG00000111640", "ENSG00000141510"]


def counts_matrix(n_cells: int, n_genes: int = len(GENES), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.poisson(2.0, size=(n_cells, n_genes)).astype(np.float32)
    matrix[:, 0] += 1  # no empty cells
    return matrix


def make_cells(n_cells: int = 40, genes: list[str] | None = None, matrix: np.ndarray | None = None) -> ad.AnnData:
    genes = genes or GENES
    matrix = counts_matrix(n_cells, len(genes)) if matrix is None else matrix
    obs = pd.DataFrame({"cell_type": pd.Categorical(["myoblast", "myotube"] * (n_cells // 2))},
                       index=[f"cell{i:04d}" for i in range(n_cells)])
    return ad.AnnData(sp.csr_matrix(matrix), obs=obs, var=pd.DataFrame(index=genes))


# --- reading: bad files ---------------------------------------------------------------------------

def test_text_file_is_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "cells.h5ad"
    path.write_text("gene,cell1\nACTB,3\n")
    assert not is_hdf5(path)
    with pytest.raises(CellFileError, match="not an HDF5 file"):
        read_cells(path)
    with pytest.raises(CellFileError, match="not an HDF5 file"):
        read_cells(io.BytesIO(path.read_bytes()))


def test_hdf5_without_cells_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["numbers"] = np.arange(5)
    assert is_hdf5(path)
    with pytest.raises(CellFileError, match="neither AnnData groups"):
        read_cells(path)


def test_truncated_h5ad_is_unreadable(tmp_path: Path) -> None:
    good = write_h5ad(make_cells(), tmp_path / "good.h5ad")
    broken = tmp_path / "broken.h5ad"
    broken.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CellFileError):
        read_cells(broken)


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CellFileError, match="does not exist"):
        read_cells(tmp_path / "nowhere.h5ad")


def test_pickles_and_other_formats_are_named_and_never_loaded(tmp_path: Path) -> None:
    import pickle  # tests/test_cli_run_deletion.py proves with a tripwire that nothing is unpickled

    good = write_h5ad(make_cells(), tmp_path / "good.h5ad").read_bytes()
    cases = {pickle.dumps({"X": counts_matrix(3)}): "a Python pickle, not an .h5ad .*never loaded",
             b"": "empty \\(0 bytes\\)", gzip.compress(good): "gzip-compressed", b"PK\x03\x04rest": "a zip archive",
             b"\x93NUMPY\x01\x00": "a NumPy array file"}
    for data, words in cases.items():
        (tmp_path / "odd.h5ad").write_bytes(data)
        buffer = io.BytesIO(data)
        buffer.name = "odd.h5ad"  # as an upload is named
        for source in (tmp_path / "odd.h5ad", buffer):
            with pytest.raises(CellFileError, match=f"odd.h5ad is {words}"):
                read_cells(source)
    assert "Python pickle" in inspect_upload(pickle.dumps([1]), "cells.h5ad").error


# --- validation --------------------------------------------------------------------------------

def test_good_counts_validate_cleanly() -> None:
    report = validate_cells(make_cells())
    assert report.ok, report.errors
    assert report.value_kind == "counts"
    assert report.fraction_recognised == 1.0
    assert any("100.0% of the 10 gene identifiers" in n for n in report.notes)


def test_nan_and_inf_values_are_errors() -> None:
    matrix = counts_matrix(20)
    matrix[0, 1] = np.nan
    matrix[3, 2] = np.inf
    report = validate_cells(make_cells(20, matrix=matrix))
    assert not report.ok
    assert any("1 missing (NaN)" in e for e in report.errors)
    assert any("1 infinite" in e for e in report.errors)


def test_negative_values_are_errors_that_name_scaling() -> None:
    matrix = counts_matrix(20) - 2.5
    report = validate_cells(make_cells(20, matrix=matrix))
    assert not report.ok
    assert any("negative values" in e and "scaled" in e for e in report.errors)
    assert report.value_kind == "scaled"


def test_numbered_genes_mean_missing_gene_names() -> None:
    adata = make_cells()
    adata.var_names = [str(i) for i in range(adata.n_vars)]
    report = validate_cells(adata)
    assert any("Gene names are missing" in e for e in report.errors)


def test_gene_names_found_in_a_var_column() -> None:
    adata = make_cells()
    adata.var["gene_symbols"] = GENES
    adata.var_names = [str(i) for i in range(adata.n_vars)]
    report = validate_cells(adata)
    assert report.ok, report.errors
    assert report.gene_id_source == "gene_symbols"
    assert any("'gene_symbols'" in n for n in report.notes)


def test_zero_cells_and_zero_genes() -> None:
    no_cells = ad.AnnData(sp.csr_matrix((0, 3), dtype=np.float32), var=pd.DataFrame(index=GENES[:3]))
    assert validate_cells(no_cells).errors == ["The data hold no cells (0 rows in X)."]
    no_genes = ad.AnnData(sp.csr_matrix((4, 0), dtype=np.float32), obs=pd.DataFrame(index=list("abcd")))
    assert validate_cells(no_genes).errors == ["The data hold no genes (0 columns in X)."]


def test_unmapped_genes_below_half_are_an_error() -> None:
    genes = GENES[:3] + [f"NOTAGENE{i}" for i in range(7)]
    report = validate_cells(make_cells(genes=genes))
    assert report.fraction_recognised == pytest.approx(0.3)
    assert any("30.0% of the 10 gene identifiers" in e and "At least 50%" in e for e in report.errors)


def test_mostly_mapped_genes_are_reported_not_refused() -> None:
    genes = GENES[:7] + ["NOTAGENE1", "NOTAGENE2", "NOTAGENE3"]
    report = validate_cells(make_cells(genes=genes))
    assert report.ok
    assert any("70.0%" in n and "NOTAGENE1" in n for n in report.notes)


def test_empty_cells_give_a_warning() -> None:
    matrix = counts_matrix(10)
    matrix[4] = 0
    report = validate_cells(make_cells(10, matrix=matrix))
    assert report.ok
    assert any("1 cells express no gene" in w for w in report.warnings)


# --- value kinds -------------------------------------------------------------------------------

def test_value_kinds_are_told_apart() -> None:
    counts = counts_matrix(50)
    assert detect_value_kind(sp.csr_matrix(counts)).kind == "counts"
    normalised = counts / counts.sum(axis=1, keepdims=True) * 1e4
    assert detect_value_kind(np.log1p(normalised)).kind == "log1p"
    assert detect_value_kind(counts / counts.sum(axis=1, keepdims=True) * 1e6).kind == "normalised"  # TPM-like
    assert detect_value_kind(counts - counts.mean(axis=0)).kind == "scaled"
    assert detect_value_kind(np.zeros((3, 3))).kind == "empty"


# --- sampling and backed reading ---------------------------------------------------------------

def test_sample_indices_are_seeded_sorted_and_bounded() -> None:
    first = sample_indices(1000, 100, seed=3)
    assert first is not None and len(first) == 100 and np.all(np.diff(first) > 0)
    assert np.array_equal(first, sample_indices(1000, 100, seed=3))
    assert not np.array_equal(first, sample_indices(1000, 100, seed=4))
    assert sample_indices(50, 100) is None and sample_indices(50, None) is None


class CountingReader(io.BytesIO):
    """A buffer that counts the bytes h5py reads from it."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


def test_backed_subsampling_of_h5ad(tmp_path: Path) -> None:
    original = make_cells(1000)
    path = write_h5ad(original, tmp_path / "big.h5ad")
    one = read_cells(path, max_cells=100, seed=7)
    two = read_cells(path, max_cells=100, seed=7)
    assert one.n_obs == 100 and list(one.obs_names) == list(two.obs_names)
    positions = original.obs_names.get_indexer(one.obs_names)
    assert np.all(np.diff(positions) > 0)  # file order kept
    assert np.array_equal(one.X.toarray(), original.X[positions].toarray())
    assert list(one.obs["cell_type"]) == list(original.obs["cell_type"].iloc[positions])
    assert list(read_cells(path, max_cells=100, seed=8).obs_names) != list(one.obs_names)
    assert read_cells(path, max_cells=5000).n_obs == 1000


def test_sampling_reads_only_a_small_part_of_a_large_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matrix = sp.random(10_000, 1000, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    matrix.data = np.ceil(matrix.data * 20)
    adata = ad.AnnData(matrix, obs=pd.DataFrame(index=[f"c{i}" for i in range(10_000)]),
                       var=pd.DataFrame(index=[f"G{i}" for i in range(1000)]))
    data = write_h5ad(adata, tmp_path / "large.h5ad").read_bytes()
    buffer = CountingReader(data)
    sample = read_cells(buffer, max_cells=5, seed=0)
    assert sample.shape == (5, 1000)
    chosen = sample_indices(10_000, 5, seed=0)
    assert np.array_equal(sample.X.toarray(), matrix[chosen].toarray())
    assert buffer.bytes_read < 0.2 * len(data), (buffer.bytes_read, len(data))


def test_dense_x_and_layers_are_subset_too(tmp_path: Path) -> None:
    adata = make_cells(50)
    adata.layers["counts"] = adata.X.copy()
    adata.X = adata.X.toarray()
    adata.obsm["X_umap"] = np.arange(100, dtype=np.float64).reshape(50, 2)
    sample = read_cells(write_h5ad(adata, tmp_path / "dense.h5ad"), max_cells=7, seed=3)
    chosen = sample_indices(50, 7, seed=3)
    assert np.array_equal(sample.X, adata.X[chosen])
    assert np.array_equal(sample.layers["counts"].toarray(), adata.layers["counts"][chosen].toarray())
    assert np.array_equal(sample.obsm["X_umap"], adata.obsm["X_umap"][chosen])


def test_buffer_reading_subsamples_too(tmp_path: Path) -> None:
    path = write_h5ad(make_cells(300), tmp_path / "cells.h5ad")
    from_path = read_cells(path, max_cells=30, seed=1)
    from_buffer = read_cells(io.BytesIO(path.read_bytes()), max_cells=30, seed=1)
    assert from_buffer.n_obs == 30 and list(from_buffer.obs_names) == list(from_path.obs_names)


# --- 10x formats -------------------------------------------------------------------------------

def _ten_x_parts(n_cells: int = 12) -> tuple[sp.csc_matrix, list[str]]:
    cells_by_genes = sp.csr_matrix(counts_matrix(n_cells))
    barcodes = [f"AAAC{i:04d}-1" for i in range(n_cells)]
    return cells_by_genes, barcodes


def test_10x_mtx_folder(tmp_path: Path) -> None:
    matrix, barcodes = _ten_x_parts()
    folder = tmp_path / "filtered_feature_bc_matrix"
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as handle:
        scipy.io.mmwrite(handle, sp.coo_matrix(matrix.T.astype(np.int64)))  # genes x cells, as CellRanger writes
    with gzip.open(folder / "features.tsv.gz", "wt") as handle:
        handle.writelines(f"{e}\t{g}\tGene Expression\n" for e, g in zip(ENSEMBL, GENES))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as handle:
        handle.writelines(f"{b}\n" for b in barcodes)
    adata = read_cells(folder)
    assert adata.shape == (12, 10)
    assert list(adata.var_names) == GENES and list(adata.var["gene_ids"]) == ENSEMBL
    assert list(adata.obs_names) == barcodes
    assert np.array_equal(adata.X.toarray(), matrix.toarray())
    assert read_cells(folder, max_cells=5, seed=0).n_obs == 5
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(CellFileError, match="no barcodes"):
        read_cells(folder)


def _write_10x_h5(path: Path, matrix: sp.csr_matrix, barcodes: list[str]) -> None:
    genes_by_cells = sp.csc_matrix(matrix.T)  # CellRanger: features x barcodes, stored CSC
    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix")
        group["barcodes"] = np.array(barcodes, dtype="S")
        group["data"] = genes_by_cells.data.astype(np.int32)
        group["indices"] = genes_by_cells.indices.astype(np.int64)
        group["indptr"] = genes_by_cells.indptr.astype(np.int64)
        group["shape"] = np.array(genes_by_cells.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array(ENSEMBL, dtype="S")
        features["name"] = np.array(GENES, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(GENES), dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(GENES), dtype="S")


def test_10x_h5_from_path_and_buffer(tmp_path: Path) -> None:
    matrix, barcodes = _ten_x_parts()
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_10x_h5(path, matrix, barcodes)
    adata = read_cells(path)
    assert adata.shape == (12, 10) and list(adata.var_names) == GENES
    assert np.array_equal(adata.X.toarray(), matrix.toarray())
    from_buffer = read_cells(io.BytesIO(path.read_bytes()), max_cells=4, seed=2)
    assert from_buffer.n_obs == 4 and set(from_buffer.obs_names) <= set(barcodes)
    assert validate_cells(adata).value_kind == "counts"


# --- harmonisation -----------------------------------------------------------------------------

def test_harmonise_var_maps_drops_and_sums() -> None:
    ids = ["p53", "ENSG00000159251.7", "DES", "NOTAGENE", "TP53", "ACTB"]  # p53 and TP53 are one gene
    matrix = np.array([[1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 0, 1]], dtype=np.float32)
    adata = ad.AnnData(sp.csr_matrix(matrix), obs=pd.DataFrame(index=["a", "b"]), var=pd.DataFrame(index=ids))
    out, report = harmonise_var(adata)
    assert list(out.var_names) == ["TP53", "ACTC1", "DES", "ACTB"]
    assert out.var.loc["TP53", "original_id"] == "p53|TP53" and out.var.loc["TP53", "n_merged"] == 2
    assert out.var.loc["ACTC1", "ensembl_id"] == "ENSG00000159251"
    assert out.var.loc["ACTC1", "mapped_by"] == "ensembl"
    assert np.array_equal(out.X.toarray(), [[6, 2, 3, 6], [0, 1, 0, 1]])  # 1 + 5 summed, NOTAGENE gone
    assert report.unknown == ["NOTAGENE"] and report.merged == {"TP53": ["p53", "TP53"]}
    assert report.aggregation == "sum"
    assert "1 unknown dropped" in report.summary()


def test_harmonise_log1p_sums_on_the_linear_scale() -> None:
    linear = np.array([[1.0, 3.0, 2.0]])
    adata = ad.AnnData(sp.csr_matrix(np.log1p(linear)), obs=pd.DataFrame(index=["a"]),
                       var=pd.DataFrame(index=["p53", "TP53", "ACTB"]))
    out, report = harmonise_var(adata)
    assert report.aggregation == "log1p_sum"
    assert out.X.toarray()[0] == pytest.approx(np.log1p([4.0, 2.0]), rel=1e-6)


def test_harmonise_uses_fallback_column_for_unmapped_ids() -> None:
    adata = ad.AnnData(sp.csr_matrix(np.ones((2, 2), dtype=np.float32)), obs=pd.DataFrame(index=["a", "b"]),
                       var=pd.DataFrame({"symbol": ["MYH3", "DES"]}, index=["ENSG99999999999.1", "ENSG00000175084"]))
    out, report = harmonise_var(adata, id_source="var_names", fallback_columns=("symbol",))
    assert list(out.var_names) == ["MYH3", "DES"]
    assert report.mapped_by == {"approved": 1, "ensembl": 1}


# --- writing -----------------------------------------------------------------------------------

def test_write_h5ad_is_byte_stable_and_round_trips(tmp_path: Path) -> None:
    adata = make_cells(30)
    adata.obs["donor"] = ["d1", "d2", "d3"] * 10
    first = write_h5ad(adata, tmp_path / "one.h5ad")
    second = write_h5ad(adata, tmp_path / "two.h5ad")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    back = read_cells(first)
    assert content_sha256(back) == content_sha256(adata)
    with h5py.File(first) as handle:
        assert handle["X/data"].compression == "gzip"


# --- uploads -----------------------------------------------------------------------------------

def _h5ad_bytes(adata: ad.AnnData, tmp_path: Path) -> bytes:
    return write_h5ad(adata, tmp_path / "upload.h5ad").read_bytes()


def test_upload_of_good_file_is_read_validated_and_summarised(tmp_path: Path) -> None:
    result = inspect_upload(_h5ad_bytes(make_cells(40), tmp_path), "mine.h5ad")
    assert result.ok and result.error is None
    assert result.adata.n_obs == 40
    assert result.label_column() == "cell_type"
    assert dict(zip(result.label_table()["label"], result.label_table()["cells"])) == {"myoblast": 20, "myotube": 20}


def test_upload_size_limit_has_a_clear_message(tmp_path: Path) -> None:
    data = _h5ad_bytes(make_cells(40), tmp_path)
    result = inspect_upload(data, "mine.h5ad", max_mb=0.001)
    assert not result.ok and result.adata is None
    assert "uploads are limited to" in result.error


def test_upload_of_non_hdf5_and_subsampling_note(tmp_path: Path) -> None:
    assert "not an HDF5 file" in inspect_upload(b"just text", "notes.h5ad").error
    result = inspect_upload(io.BytesIO(_h5ad_bytes(make_cells(100), tmp_path)), "mine.h5ad", max_cells=10)
    assert result.adata.n_obs == 10 and result.cells_in_file == 100
    assert any("holds 100 cells; a random sample of 10" in m for _, m in result.messages())


def test_missing_x_and_non_numbers_are_errors_not_crashes(tmp_path: Path) -> None:
    cells = make_cells(6)
    no_x = ad.AnnData(obs=cells.obs, var=cells.var)
    assert "no expression matrix (X is missing)" in validate_cells(no_x).errors[0]
    with h5py.File(write_h5ad(cells, tmp_path / "no_x.h5ad"), "a") as handle:
        del handle["X"]
    upload = inspect_upload((tmp_path / "no_x.h5ad").read_bytes(), "no_x.h5ad")
    assert any("X is missing" in m for _, m in upload.messages())
    strings = ad.AnnData(np.full((6, len(GENES)), "3", dtype=object), obs=cells.obs, var=cells.var)
    assert any("not numbers" in e for e in validate_cells(strings).errors)


def test_duplicated_cell_names_are_a_warning() -> None:
    cells = make_cells(4)
    cells.obs_names = ["a", "a", "b", "c"]
    assert any("1 cell names occur more than once" in w for w in validate_cells(cells).warnings)


def test_upload_with_bad_values_reports_errors(tmp_path: Path) -> None:
    matrix = counts_matrix(20)
    matrix[0, 0] = np.nan
    result = inspect_upload(_h5ad_bytes(make_cells(20, matrix=matrix), tmp_path), "nan.h5ad")
    assert not result.ok
    assert ("error", "X holds 1 missing (NaN) values; expression values must all be numbers.") in result.messages()
