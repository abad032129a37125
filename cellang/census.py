"""CELLxGENE Census connector: build a query, fetch raw counts as AnnData (needs the internet).

The Census (https://chanzuckerberg.github.io/cellxgene-census/) holds tens of millions of
standardised human cells, heart included; no registry package ships heart cells, so this is where
cardiomyocyte data come from. :class:`CensusQuery` turns lists of tissues, cell types and diseases
into a SOMA ``obs_value_filter`` (always ``is_primary_data == True``, so no cell is counted twice);
:func:`cardiomyocyte_query` is the preset for cardiomyocytes of normal, dilated and hypertrophic
cardiomyopathy hearts. :func:`fetch_census` runs the query through ``cellxgene_census.open_soma()``
and ``get_anndata()`` (X = raw counts), samples cells with a seed when asked, and returns an AnnData
with the atlas's standard ``obs`` columns.

``cellxgene-census`` is imported only when fetching. Offline, :func:`fetch_census` raises
:class:`CensusUnavailable` at once with a message that says the Census needs the internet.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from cellang.errors import CellangError

CENSUS_HOST = "census.cellxgene.cziscience.com"  # serves the release directory open_soma() reads first
ORGANISM = "Homo sapiens"
OBS_COLUMNS = ("soma_joinid", "dataset_id", "donor_id", "assay", "cell_type", "cell_type_ontology_term_id",
               "tissue", "tissue_general", "disease", "development_stage", "sex", "is_primary_data")

CARDIOMYOCYTE_TYPES = (  # Cell Ontology labels used by Census heart datasets
    "cardiac muscle cell",  # CL:0000746
    "regular atrial cardiac myocyte",  # CL:0002129
    "regular ventricular cardiac myocyte",  # CL:0002131
    "atrial cardiac muscle cell",
    "ventricular cardiac muscle cell",
)
CARDIOMYOPATHY_DISEASES = ("normal", "dilated cardiomyopathy", "hypertrophic cardiomyopathy")


class CensusUnavailable(CellangError, RuntimeError):
    """The Census cannot be queried: no internet, or the cellxgene-census package is missing."""


def _quoted(values: Sequence[str]) -> str:
    for value in values:
        if "'" in value:
            raise ValueError(f"a filter value cannot contain a single quote: {value!r}")
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


@dataclass(frozen=True)
class CensusQuery:
    """What to fetch. Empty lists mean 'any'. ``max_cells`` samples cells (seeded) after filtering."""

    tissues: tuple[str, ...] = ()  # matched against tissue_general (e.g. 'heart'); see tissue_column
    cell_types: tuple[str, ...] = ()
    diseases: tuple[str, ...] = ()
    organism: str = ORGANISM
    tissue_column: str = "tissue_general"
    census_version: str = "stable"
    max_cells: int | None = None
    seed: int = 0
    obs_columns: tuple[str, ...] = field(default=OBS_COLUMNS)

    def obs_value_filter(self) -> str:
        """The SOMA value filter: primary data only, then each non-empty list as an ``in`` clause."""
        clauses = ["is_primary_data == True"]
        for column, values in ((self.tissue_column, self.tissues), ("cell_type", self.cell_types),
                               ("disease", self.diseases)):
            if values:
                clauses.append(f"{column} in {_quoted(values)}")
        return " and ".join(clauses)

    def describe(self) -> str:
        parts = [self.organism]
        for label, values in (("tissue", self.tissues), ("cell type", self.cell_types), ("disease", self.diseases)):
            if values:
                parts.append(f"{label}: {', '.join(values)}")
        if self.max_cells:
            parts.append(f"at most {self.max_cells:,} cells (seed {self.seed})")
        return "; ".join(parts) + f"; Census {self.census_version}, primary data, raw counts"

    def get_anndata_kwargs(self) -> dict:
        """Keyword arguments for ``cellxgene_census.get_anndata`` (besides the open census)."""
        return {"organism": self.organism, "measurement_name": "RNA", "X_name": "raw",
                "obs_value_filter": self.obs_value_filter(), "obs_column_names": list(self.obs_columns)}


def cardiomyocyte_query(diseases: Sequence[str] = CARDIOMYOPATHY_DISEASES, *, max_cells: int | None = 20_000,
                        seed: int = 0, census_version: str = "stable") -> CensusQuery:
    """Cardiomyocytes from heart tissue: normal vs dilated vs hypertrophic cardiomyopathy by default."""
    unknown = [d for d in diseases if d not in CARDIOMYOPATHY_DISEASES]
    if unknown:
        raise ValueError(f"the cardiomyocyte preset compares {', '.join(CARDIOMYOPATHY_DISEASES)}; not {unknown}")
    return CensusQuery(tissues=("heart",), cell_types=CARDIOMYOCYTE_TYPES, diseases=tuple(diseases),
                       max_cells=max_cells, seed=seed, census_version=census_version)


PRESETS = {"cardiomyocytes (normal, DCM, HCM)": cardiomyocyte_query}


def _offline(reason: object) -> CensusUnavailable:
    return CensusUnavailable(
        f"cannot reach the CELLxGENE Census: {reason}. Fetching Census data needs internet access; use the "
        "embedded atlas or upload an .h5ad file instead."
    )


def check_reachable(host: str = CENSUS_HOST, port: int = 443, timeout: float = 5.0) -> None:
    """Raise :class:`CensusUnavailable` unless a TCP connection to the Census host opens in ``timeout`` s."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as error:
        raise _offline(f"{host} did not answer ({error.__class__.__name__}: {error})") from error


def _import_census():  # type: ignore[no-untyped-def]
    try:
        import cellxgene_census
    except ImportError as error:
        raise CensusUnavailable(
            "the CELLxGENE Census client is not installed: run `pip install cellxgene-census` (it also needs "
            "internet access to fetch data)"
        ) from error
    return cellxgene_census


def standard_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Add the atlas's standard columns to Census obs: dataset, cell_type, batch (donor), state (disease)."""
    out = obs.copy()
    out["dataset"] = pd.Categorical(("census:" + obs["dataset_id"].astype(str)).to_numpy())
    out["batch"] = pd.Categorical(obs["donor_id"].astype(str).to_numpy())
    out["state"] = pd.Categorical(obs["disease"].astype(str).to_numpy())
    out["value_kind"] = pd.Categorical(["counts"] * len(obs))
    out["cell_type"] = pd.Categorical(obs["cell_type"].astype(str).to_numpy())
    return out


def fetch_census(query: CensusQuery, *, timeout: float = 5.0) -> ad.AnnData:
    """Fetch the cells of ``query`` (raw counts, var indexed by gene symbol) from the live Census."""
    census_module = _import_census()
    check_reachable(timeout=timeout)
    try:
        with census_module.open_soma(census_version=query.census_version) as census:
            kwargs = query.get_anndata_kwargs()
            if query.max_cells is not None:
                organism_key = query.organism.lower().replace(" ", "_")
                ids = (census["census_data"][organism_key].obs
                       .read(value_filter=kwargs["obs_value_filter"], column_names=["soma_joinid"])
                       .concat().to_pandas()["soma_joinid"].to_numpy())
                if ids.size > query.max_cells:
                    rng = np.random.default_rng(query.seed)
                    ids = np.sort(rng.choice(ids, size=query.max_cells, replace=False))
                kwargs = {**kwargs, "obs_coords": ids, "obs_value_filter": None}
            adata = census_module.get_anndata(census, **kwargs)
    except CensusUnavailable:
        raise
    except OSError as error:  # requests' ConnectionError is an OSError
        raise _offline(error) from error
    except Exception as error:  # tiledbsoma reports S3 failures with its own error types
        if type(error).__name__ in ("SOMAError", "TileDBError"):
            raise CensusUnavailable(f"the CELLxGENE Census query failed: {error}") from error
        raise
    adata.obs = standard_obs(adata.obs)
    if "feature_name" in adata.var.columns:
        if "feature_id" in adata.var.columns:
            adata.var["ensembl_id"] = adata.var["feature_id"].astype(str).to_numpy()
        adata.var_names = adata.var["feature_name"].astype(str).to_numpy()
        adata.var_names_make_unique()
    adata.uns["census_query"] = {"filter": query.obs_value_filter(), "description": query.describe()}
    return adata


def open_census_cells(query: CensusQuery, *, timeout: float = 5.0):
    """(the open Census, a :class:`~cellang.cells.stream.SomaCells` streaming the cells of ``query``).

    The caller closes the Census (``census.close()``) when training is done. ``query.max_cells`` is not applied:
    streaming has no need to sample. The record names the filter and the Census release."""
    from cellang.cells.stream import SomaCells

    census_module = _import_census()
    check_reachable(timeout=timeout)
    try:
        census = census_module.open_soma(census_version=query.census_version)
        organism_key = query.organism.lower().replace(" ", "_")
        release = census["census_info"]["summary"].read().concat().to_pandas()
        build = dict(zip(release["label"], release["value"])).get("census_build_date", query.census_version)
        cells = SomaCells(census["census_data"][organism_key], obs_value_filter=query.obs_value_filter(),
                          description={"kind": "census", "filter": query.obs_value_filter(),
                                       "census_version": query.census_version, "census_build_date": build,
                                       "description": query.describe()})
    except OSError as error:
        raise _offline(error) from error
    return census, cells


__all__ = ["CARDIOMYOCYTE_TYPES", "CARDIOMYOPATHY_DISEASES", "CensusQuery", "CensusUnavailable", "PRESETS",
           "cardiomyocyte_query", "check_reachable", "fetch_census", "open_census_cells", "standard_obs"]
