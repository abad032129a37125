"""Counts and range checks in words, the one way every page, script and message writes them:
``plural(1, "cell")`` is "1 cell", ``plural(2874, "cell")`` is "2,874 cells";
``out_of_range("Seed", -5, 0, MAX_SEED)`` is "Seed must be between 0 and 4,294,967,295; got -5."
"""

from __future__ import annotations

MAX_SEED = 2**32 - 1  # numpy's seeds run 0 .. 2**32 - 1


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` with thousands separators and ``word`` (or ``many``, default word + "s") as it agrees."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def out_of_range(label: str, value: float, low: float, high: float | None = None) -> str | None:
    """A sentence when ``value`` lies outside ``low`` .. ``high`` (None: no upper bound), else None."""
    if value != value or value < low or (high is not None and value > high):
        bound = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
        return f"{label} must be {bound}; got {value:,}."
    return None


__all__ = ["MAX_SEED", "out_of_range", "plural"]
