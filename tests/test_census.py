"""Tests for the CELLxGENE Census connector: query building, the cardiomyocyte preset, offline errors.

No test reaches the Census. The offline test makes the host unreachable on purpose, so it passes on
machines with internet too.
"""

from __future__ import annotations

import builtins
import socket

import pandas as pd
import pytest

from cellang import census
from cellang.census import (
    CARDIOMYOCYTE_TYPES,
    CensusQuery,
    CensusUnavailable,
    cardiomyocyte_query,
    check_reachable,
    fetch_census,
    standard_obs,
)


def test_empty_query_keeps_only_primary_data() -> None:
    query = CensusQuery()
    assert query.obs_value_filter() == "is_primary_data == True"
    kwargs = query.get_anndata_kwargs()
    assert kwargs["organism"] == "Homo sapiens"
    assert kwargs["X_name"] == "raw" and kwargs["measurement_name"] == "RNA"
    assert "donor_id" in kwargs["obs_column_names"] and "disease" in kwargs["obs_column_names"]


def test_lists_become_in_clauses_in_a_fixed_order() -> None:
    query = CensusQuery(tissues=("heart",), cell_types=("fibroblast", "pericyte"), diseases=("normal",))
    assert query.obs_value_filter() == (
        "is_primary_data == True and tissue_general in ['heart'] and cell_type in ['fibroblast', 'pericyte'] "
        "and disease in ['normal']"
    )
    assert CensusQuery(tissues=("left ventricle",), tissue_column="tissue").obs_value_filter().endswith(
        "tissue in ['left ventricle']")


def test_quotes_in_values_are_refused() -> None:
    with pytest.raises(ValueError, match="single quote"):
        CensusQuery(cell_types=("o'brien cell",)).obs_value_filter()


def test_cardiomyocyte_preset() -> None:
    query = cardiomyocyte_query()
    text = query.obs_value_filter()
    assert text.startswith("is_primary_data == True and tissue_general in ['heart']")
    assert "'cardiac muscle cell'" in text and "'regular ventricular cardiac myocyte'" in text
    assert "disease in ['normal', 'dilated cardiomyopathy', 'hypertrophic cardiomyopathy']" in text
    assert query.cell_types == CARDIOMYOCYTE_TYPES
    assert query.max_cells == 20_000 and query.seed == 0
    only_dcm = cardiomyocyte_query(["normal", "dilated cardiomyopathy"], max_cells=None)
    assert "disease in ['normal', 'dilated cardiomyopathy']" in only_dcm.obs_value_filter()
    assert "at most" not in only_dcm.describe()
    with pytest.raises(ValueError, match="cardiomyocyte preset"):
        cardiomyocyte_query(["influenza"])


def test_offline_fetch_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(address, timeout=None):  # type: ignore[no-untyped-def]
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(census.socket, "create_connection", unreachable)
    with pytest.raises(CensusUnavailable, match=r"cannot reach the CELLxGENE Census: .* needs internet"):
        fetch_census(cardiomyocyte_query())
    with pytest.raises(CensusUnavailable, match="census.cellxgene.cziscience.com"):
        check_reachable()


def test_missing_client_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_census(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "cellxgene_census":
            raise ImportError("No module named 'cellxgene_census'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_census)
    with pytest.raises(CensusUnavailable, match="pip install cellxgene-census"):
        fetch_census(CensusQuery())


def test_census_obs_gets_the_atlas_columns() -> None:
    obs = pd.DataFrame({"dataset_id": ["d1", "d2"], "donor_id": ["p1", "p2"], "cell_type": ["cardiac muscle cell"] * 2,
                        "disease": ["normal", "dilated cardiomyopathy"]})
    out = standard_obs(obs)
    assert list(out["dataset"]) == ["census:d1", "census:d2"]
    assert list(out["batch"]) == ["p1", "p2"]
    assert list(out["state"]) == ["normal", "dilated cardiomyopathy"]
    assert set(out["value_kind"]) == {"counts"}
