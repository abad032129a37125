"""The embedded single-cell atlas: registry sources and readers, the build, and the loader.

Build with ``cellang build atlas``; read with :func:`load_atlas_dataset` and
:func:`atlas_summary`. The build modules (``sources``, ``rds``, ``build``) are imported only by the
build script, so the app never needs ``pyreadr`` or ``rdata`` at run time.
"""

from cellang.atlas.store import (
    ATLAS_DIR,
    atlas_datasets,
    atlas_manifest,
    atlas_obs,
    atlas_summary,
    atlas_table,
    dataset_table,
    load_atlas_dataset,
)

__all__ = ["ATLAS_DIR", "atlas_datasets", "atlas_manifest", "atlas_obs", "atlas_summary", "atlas_table",
           "dataset_table", "load_atlas_dataset"]
