"""A small reader for R serialisation (``.rds``) built on PyPI ``rdata``'s low-level parser.

``rdata.conversion`` cannot turn S4 objects such as a Seurat object into Python; its parser can
still walk them. :class:`RNode` wraps one parsed R object and gives the few things a Seurat reader
needs: slots (attributes) by name, list elements by name, character vectors, factors and a
``dgCMatrix`` as a SciPy sparse matrix. No R code and no pickle is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from rdata.parser import RObjectType, parse_file

T = RObjectType


def _resolve(obj):  # type: ignore[no-untyped-def]
    while obj is not None and obj.info.type == T.REF:
        obj = obj.referenced_object
    return obj


def _symbol(obj) -> str | None:  # type: ignore[no-untyped-def]
    obj = _resolve(obj)
    if obj is None:
        return None
    if obj.info.type == T.SYM:
        return _symbol(obj.value)
    if obj.info.type == T.CHAR:
        return obj.value.decode("utf-8") if isinstance(obj.value, bytes) else str(obj.value)
    return str(obj.value)


def _pairlist(obj) -> dict[str, object]:  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}
    obj = _resolve(obj)
    while obj is not None and obj.info.type == T.LIST:
        head, tail = obj.value
        out[_symbol(obj.tag) or ""] = head
        obj = _resolve(tail)
    return out


class RNode:
    """One R object from a parsed ``.rds`` file."""

    def __init__(self, obj):  # type: ignore[no-untyped-def]
        self.obj = _resolve(obj)

    @property
    def type(self) -> RObjectType:
        return self.obj.info.type

    @property
    def attributes(self) -> dict[str, RNode]:
        if self.obj.attributes is None:
            return {}
        return {name: RNode(value) for name, value in _pairlist(self.obj.attributes).items()}

    def slot(self, name: str) -> RNode:
        """An S4 slot or an attribute; KeyError names what exists."""
        attributes = self.attributes
        if name not in attributes:
            raise KeyError(f"R object has no slot {name!r}; it has {', '.join(attributes)}")
        return attributes[name]

    def strings(self) -> list[str | None]:
        if self.type != T.STR:
            raise TypeError(f"expected a character vector, found {self.type.name}")
        return [None if c.value is None else c.value.decode("utf-8") for c in self.obj.value]

    def array(self) -> np.ndarray:
        if self.type not in (T.INT, T.REAL, T.LGL):
            raise TypeError(f"expected a numeric vector, found {self.type.name}")
        return np.asarray(self.obj.value)

    def elements(self) -> dict[str, RNode]:
        """Elements of an R list (generic vector) by name."""
        if self.type != T.VEC:
            raise TypeError(f"expected a list, found {self.type.name}")
        names = self.slot("names").strings() if "names" in self.attributes else []
        values = [RNode(v) for v in self.obj.value]
        names = names or [str(i) for i in range(len(values))]
        return dict(zip((n or "" for n in names), values))

    def factor(self) -> list[str]:
        """An R factor as its labels (NA as empty string)."""
        levels = self.slot("levels").strings()
        return ["" if code < 1 else str(levels[code - 1]) for code in self.array()]

    def column(self) -> np.ndarray | list[str]:
        """A data.frame column: numbers as an array, factors and strings as lists of str."""
        if "levels" in self.attributes:
            return self.factor()
        if self.type == T.STR:
            return [s or "" for s in self.strings()]
        return self.array()

    def dgc_matrix(self) -> tuple[sp.csc_matrix, list[str], list[str]]:
        """A Matrix::dgCMatrix as (CSC matrix, row names, column names)."""
        shape = tuple(int(v) for v in self.slot("Dim").array())
        matrix = sp.csc_matrix(
            (self.slot("x").array().astype(np.float64), self.slot("i").array(), self.slot("p").array()),
            shape=shape,
        )
        row_names, column_names = (RNode(v).strings() for v in self.slot("Dimnames").obj.value)
        return matrix, [str(r) for r in row_names], [str(c) for c in column_names]


def read_rds(path: Path) -> RNode:
    """Parse an ``.rds`` file (gzip, bzip2 or xz compressed) into its top-level :class:`RNode`."""
    return RNode(parse_file(path).object)
