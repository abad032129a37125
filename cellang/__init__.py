"""cellang: do cells have a language?

    import cellang as cl
    cl.pw.complete(["MYOD1", "MYOG", "DES"], n=20)          # gene lists: complete, search, enrich
    adata = cl.datasets.cells("hsmm")                         # the embedded atlas and corpus
    cl.tl.embed(adata, model="cells-binned")                  # cells: embed, adapt, rank_deletions
    cl.pl.umap(adata, rep="X_cells_binned_cls", color="cell_type")   # the app's figures
    cl.settings.device = "cpu"                                # device, verbosity, threads, folders

``cl.pw``, ``cl.tl``, ``cl.pl`` and ``cl.datasets`` are the public API (each loads on first use, so
``import cellang`` is quick); every error raised on purpose derives from :class:`CellangError`. Below them the
package holds all logic, one package per workflow: ``completion`` (a gene list becomes a completion),
``embedding`` (cells become embeddings), ``perturbation`` (a deletion is scored), over the lower layers
(``genes``, ``gmt``, ``corpus``, ``cells``, ``atlas``, ``preprocess``, ``tokenizers``, ``models``, ``training``,
``checkpoints``, ``device``, ``progress``). Data flows one way: sources -> data -> tokenisers -> models ->
workflows -> API -> app and command line (``cellang.app``, ``cellang.cli``). Inference never imports training.
"""

from __future__ import annotations

import importlib

from cellang.errors import CellangError
from cellang.settings import settings

__version__ = "0.1.0"
__all__ = ["CellangError", "datasets", "pl", "pw", "settings", "tl"]

_NAMESPACES = ("datasets", "pl", "pw", "tl")


def __getattr__(name: str):
    if name in _NAMESPACES:
        module = importlib.import_module(f"cellang.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cellang' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMESPACES))
