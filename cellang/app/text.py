"""Counts and range checks in words, for the pages: the library's one rule (:mod:`cellang.text`), under the names
the pages use."""

from __future__ import annotations

from cellang import text

MAX_SEED = text.MAX_SEED  # the largest seed a page accepts (numpy's seeds run 0 .. 2**32 - 1)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` with thousands separators and ``word`` as it agrees: "1 cell", "2,874 cells"."""
    return text.plural(count, word, many)


def out_of_range(label: str, value: float, low: float, high: float | None = None) -> str | None:
    """A sentence when ``value`` lies outside ``low`` .. ``high`` (None: no upper bound), else None."""
    return text.out_of_range(label, value, low, high)
