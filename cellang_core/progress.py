"""The one progress callback: ``progress(fraction, text)``, fraction from 0 to 1, as Streamlit's progress bar
and the scripts' printers take it. Long work reports through :func:`report`; a step that runs a sub-task
hands it :func:`part` so the sub-task's 0..1 fills only its share of the bar."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], object]


def report(progress: Progress | None, fraction: float, text: str) -> None:
    """Call ``progress`` (when there is one) with ``fraction`` clamped to 0..1."""
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), text)


def part(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A callback whose 0..1 maps onto ``start``..``end`` of ``progress`` (None stays None)."""
    if progress is None:
        return None
    return lambda fraction, text: report(progress, start + (end - start) * fraction, text)


__all__ = ["Progress", "part", "report"]
