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


def duration(seconds: float) -> str:
    """Seconds in words, as every progress message writes them: '45 s', or '3 min' from two minutes on."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def time_left(elapsed: float, done: int, total: int) -> str:
    """'about N s left' (or min) at the rate so far; the pages show it beside their progress bars."""
    if done <= 0 or done >= total:
        return "done" if done >= total else "estimating time left"
    return f"about {duration(elapsed / done * (total - done))} left"


def part(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A callback whose 0..1 maps onto ``start``..``end`` of ``progress`` (None stays None)."""
    if progress is None:
        return None
    return lambda fraction, text: report(progress, start + (end - start) * fraction, text)


__all__ = ["Progress", "duration", "part", "report", "time_left"]
