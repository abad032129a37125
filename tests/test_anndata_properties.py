"""Property-based tests of the AnnData entry points: whatever cells come in, the call either works or
raises the error class it documents, with a sentence; never a crash from deep inside numpy or torch.

Inputs: 0 to 6 cells x 0 to 6 genes; int, float and bool values, dense or sparse; NaN, inf and
negative values; empty, duplicated and unknown gene and cell names; disease, cell type and value-kind
columns present or not. Entry points: validate_cells and inspect_upload (never raise), embed_cells
(CellValuesError) with a tiny random checkpoint, and the deletion workflow's cardiomyopathy_selection,
select_cells and run_perturbation (PerturbError) with a tiny random encoder.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellang.cells import CellValidation, inspect_upload, validate_cells, write_h5ad
from cellang.embedding.embed import embed_cells, obsm_keys
from cellang.perturbation.engine import PerturbError
from cellang.perturbation.presets import cardiomyopathy_selection
from cellang.perturbation.workflow import (
    DeletionResult,
    PerturbationRequest,
    Selection,
    run_perturbation,
    select_cells,
)
from cellang.tokenizers.cells import CellValuesError
from cellang.tokenizers.rank import RankTokenizer
from tests.perturb_fixtures import save_tiny_checkpoint, tiny_encoder

pytestmark = pytest.mark.filterwarnings("ignore:.* names are not unique:UserWarning")  # drawn on purpose
FUZZ = settings(max_examples=60, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
GENES = ["MYH7", "TTN", "LMNA", "MYBPC3", "TNNT2", "ACTC1", "NPPA", "GAPDH"]
GENE_NAMES = GENES + ["", "NOT_A_GENE", "ENSG00000092054", "0", "1"]  # empty, unknown, Ensembl, numbered
CELL_NAMES = ["a", "b", "c", ""]
CLEAN = [0.0, 0.0, 0.0, 1.0, 2.0, 7.0, 0.5, 250.0]
BAD = CLEAN + [-1.0, -0.25, np.nan, np.inf, 1e30]
STATES = ["normal", "DCM", "hypertrophic cardiomyopathy", "control", "myocarditis", "nan"]
CELL_TYPES = ["Cardiomyocyte", "Fibroblast", "ventricular cardiac muscle cell"]
VALUE_KINDS = ["counts", "log1p", "TPM", "scaled", "unknown"]


def _names(draw, pool: list[str], plain: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """len(plain) names: drawn from the pool (repeats, empty and unknown names allowed) or the plain ones."""
    if draw(st.booleans()):
        return draw(st.lists(st.sampled_from(pool), min_size=len(plain), max_size=len(plain)))
    return plain


@st.composite
def anndatas(draw, usable: bool = False) -> ad.AnnData:  # type: ignore[no-untyped-def]
    """Any small AnnData; ``usable``: cells with labels and mostly clean values (to get past the checks)."""
    n_cells, n_genes = draw(st.integers(2 if usable else 0, 6)), draw(st.integers(1 if usable else 0, 6))
    pool = BAD if draw(st.integers(0, 4 if usable else 1)) == 1 else CLEAN
    values = np.array(draw(st.lists(st.sampled_from(pool), min_size=n_cells * n_genes,
                                    max_size=n_cells * n_genes)), dtype=np.float64).reshape(n_cells, n_genes)
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int32", "int64", "bool"]))
    if dtype == "bool":
        values = np.nan_to_num(values) != 0
    elif dtype.startswith("int"):
        values = np.nan_to_num(values, nan=0.0, posinf=9.0).clip(-9, 1e6)
    with np.errstate(over="ignore"):  # 1e30 overflows float16 to inf: another value to survive
        matrix = values.astype(dtype)
    layout = draw(st.sampled_from(["dense"] if dtype == "float16" else ["dense", "csr", "csc"]))  # scipy: no fp16
    if layout != "dense":
        matrix = sp.csr_matrix(matrix) if layout == "csr" else sp.csc_matrix(matrix)
    obs = pd.DataFrame(index=pd.Index(_names(draw, CELL_NAMES, [f"cell{i}" for i in range(n_cells)]), dtype=object))
    if usable or draw(st.booleans()):
        states = draw(st.lists(st.sampled_from(STATES[:3] if usable else STATES), min_size=n_cells,
                               max_size=n_cells))
        obs["disease"] = pd.Categorical(states) if draw(st.booleans()) else states
    if usable or draw(st.booleans()):
        obs["cell_type"] = draw(st.lists(st.sampled_from(CELL_TYPES), min_size=n_cells, max_size=n_cells))
    if draw(st.integers(0, 3)) == 0:
        kinds = VALUE_KINDS[:2] if usable else VALUE_KINDS
        obs["value_kind"] = draw(st.lists(st.sampled_from(kinds), min_size=n_cells, max_size=n_cells))
    var = pd.DataFrame(index=pd.Index(_names(draw, GENE_NAMES, GENES[:n_genes]), dtype=object))
    if draw(st.integers(0, 3)) == 0:  # gene ids in a column, as many files keep them
        var["feature_name"] = _names(draw, GENE_NAMES, GENES[:n_genes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated names warn; they are part of what is tested
        adata = ad.AnnData(None if draw(st.integers(0, 9)) == 0 else matrix, obs=obs, var=var)  # None: no X
    if draw(st.integers(0, 4)) == 0:  # a counts layer is read instead of X
        adata.layers["counts"] = matrix.copy()
    return adata


@pytest.fixture(scope="module")
def heart_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(checkpoint directory, encoder, tokeniser): random, tiny, fitted on real-looking heart counts."""
    rng = np.random.default_rng(0)
    cells = ad.AnnData(rng.poisson(3, size=(30, len(GENES))).astype(np.float32) + 1,
                       var=pd.DataFrame(index=GENES))
    directory = save_tiny_checkpoint(tmp_path_factory.mktemp("cells-rank"), [cells], max_len=8)
    tokenizer = RankTokenizer.fit([cells], max_len=8, min_cells=3)
    return directory, tiny_encoder(len(tokenizer.vocabulary), max_len=8, n_layer=1), tokenizer


def _has(matrix: object, test) -> bool:  # type: ignore[no-untyped-def]
    """True when any stored value of ``matrix`` passes ``test``; False for no matrix."""
    if matrix is None:
        return False
    data = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return bool(np.asarray(test(data.astype(np.float64))).any())


@FUZZ
@given(adata=anndatas())
def test_validate_cells_never_raises_and_names_bad_values(adata: ad.AnnData) -> None:
    report = validate_cells(adata)
    assert isinstance(report, CellValidation) and (report.n_cells, report.n_genes) == adata.shape
    if adata.n_obs and adata.n_vars and adata.X is not None:
        if _has(adata.X, np.isnan):
            assert any("missing (NaN)" in e for e in report.errors) and not report.ok
        if _has(adata.X, lambda v: v < 0):
            assert any("negative values" in e for e in report.errors)
    else:
        assert not report.ok
    for level, sentence in report.messages():
        assert level in ("error", "warning", "note") and sentence and "\n" not in sentence


@settings(FUZZ, max_examples=25)
@given(adata=anndatas())
def test_uploads_of_any_cells_end_in_messages(adata: ad.AnnData, tmp_path: Path) -> None:
    try:
        path = write_h5ad(adata, tmp_path / "upload.h5ad")
    except Exception:  # noqa: BLE001 - a file anndata cannot write cannot be uploaded either
        return
    result = inspect_upload(io.BytesIO(path.read_bytes()), "upload.h5ad")
    assert result.error is not None or result.validation is not None
    assert result.messages() and all(sentence for _, sentence in result.messages())


@FUZZ
@given(adata=anndatas())
def test_embed_cells_embeds_or_says_why_not(adata: ad.AnnData, heart_model) -> None:  # type: ignore[no-untyped-def]
    directory = heart_model[0]
    try:
        out = embed_cells(adata, "cells-rank", checkpoint_dir=directory, device="cpu", batch_size=4)
    except CellValuesError as error:
        assert type(error) is CellValuesError and str(error)
        read = adata.layers["counts"] if "counts" in adata.layers else adata.X  # what the tokeniser reads
        assert read is None or _has(read, lambda v: ~np.isfinite(v) | (v < 0)) or "value_kind" in adata.obs
        return
    for key in obsm_keys("cells-rank"):
        assert out.obsm[key].shape == (adata.n_obs, 16) and np.isfinite(out.obsm[key]).all()


@FUZZ
@given(adata=anndatas(),
       disease=st.sampled_from(["dilated cardiomyopathy", "hypertrophic cardiomyopathy", "myocarditis"]),
       analysis=st.sampled_from(["deletion", "treatment", "both"]))
def test_cardiomyopathy_selection_selects_or_says_why_not(adata: ad.AnnData, disease: str, analysis: str) -> None:
    try:
        selection = cardiomyopathy_selection(adata, disease, analysis)
        start, goal = select_cells(adata, selection)
    except PerturbError as error:
        assert type(error) is PerturbError and str(error)
        return
    assert start.size and goal.size and not set(start) & set(goal)


GOOD_REQUEST = {"mode": ["delete", "overexpress"], "pooling": ["mean", "cls"], "precision": ["float32", "bfloat16"],
                "max_cells": [None, 1, 3, 200], "max_goal_cells": [1, 500], "min_cells": [1, 2], "seed": [0, 7],
                "genes": [None, ["MYH7", "NOT_A_GENE"], ["myh7"], ["GAPDH", "TTN"]]}
BAD_REQUEST = {"mode": ["knockout", ""], "pooling": ["max"], "precision": ["half"], "max_cells": [0, -2],
               "max_goal_cells": [0], "min_cells": [0, -1], "seed": [-1, 2**32], "genes": [[], ["  "]],
               "device": ["tpu"]}


@st.composite
def requests(draw) -> dict:  # type: ignore[no-untyped-def]
    return {name: draw(st.sampled_from(values)) for name, values in GOOD_REQUEST.items()}


def _selection(adata: ad.AnnData, data) -> Selection:  # type: ignore[no-untyped-def]
    """Start and goal labels drawn from one of the cells' label columns."""
    column = data.draw(st.sampled_from([c for c in ("disease", "cell_type") if c in adata.obs] or ["disease"]))
    labels = (sorted(set(adata.obs[column].astype(str))) if column in adata.obs else []) or ["normal"]
    start = data.draw(st.lists(st.sampled_from(labels), min_size=1, max_size=2, unique=True))
    others = [label for label in labels if label not in start] or ["DCM"]  # "DCM" may be absent: refused
    goal = data.draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
    return Selection(column, tuple(start), tuple(goal))


@FUZZ
@given(adata=anndatas(), request=requests(), bad=st.sampled_from(sorted(BAD_REQUEST)), data=st.data())
def test_bad_requests_are_refused_before_a_model_is_loaded(adata: ad.AnnData, request: dict, bad: str,
                                                           data) -> None:  # type: ignore[no-untyped-def]
    request[bad] = data.draw(st.sampled_from(BAD_REQUEST[bad]))
    with pytest.raises(PerturbError) as refused:  # no encoder given: loading one would fail differently
        run_perturbation(adata, PerturbationRequest(_selection(adata, data), **request),
                         checkpoint_dir="no-such-checkpoint")
    assert type(refused.value) is PerturbError and "\n" not in str(refused.value)


@FUZZ
@given(adata=anndatas(usable=True), request=requests(), data=st.data())
def test_run_perturbation_ranks_or_says_why_not(adata: ad.AnnData, request: dict, data,  # type: ignore[no-untyped-def]
                                                heart_model) -> None:
    _, encoder, tokenizer = heart_model
    try:
        result = run_perturbation(adata, PerturbationRequest(_selection(adata, data), device="cpu", **request),
                                  encoder=encoder, tokenizer=tokenizer)
    except PerturbError as error:
        assert type(error) is PerturbError and str(error) and "\n" not in str(error).strip()
        return
    assert isinstance(result, DeletionResult)
    assert result.settings["start_cells"] >= request["min_cells"] >= 1
    assert (result.ranked["cells"] >= request["min_cells"]).all()
    assert np.isfinite(result.scores["shift"]).all()
