"""Cell files uploaded to a page (Data, Cell embeddings, In-silico deletion): the app's limits, and one way to read
an upload, through :func:`cellang.datasets.read_upload`. The result lives in the user's session only."""

from __future__ import annotations

from typing import Any

import cellang as cl

MAX_UPLOAD_MB = 200  # the same as server.maxUploadSize in .streamlit/config.toml
UPLOAD_MAX_CELLS = 20_000  # larger uploads are subsampled (seeded) to keep the session small


def read_upload(upload: Any) -> Any:
    """A Streamlit upload (a binary buffer with a ``name``) read and checked within the app's limits: the
    :class:`~cellang.cells.upload.UploadResult` of :func:`cellang.datasets.read_upload`."""
    return cl.datasets.read_upload(upload, upload.name, max_mb=MAX_UPLOAD_MB, max_cells=UPLOAD_MAX_CELLS)
