"""The ``cellang`` command line (:mod:`.main` dispatches ``cellang <command>`` to one module of this package
each) and its one error path: bad arguments and bad files end in exit code 2 and one line naming the problem,
never a traceback.

    parser = cli.Parser(description=__doc__)
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8)
    parser.add_argument("--limit", type=cli.at_least(1))
    ...
    if __name__ == "__main__":
        raise SystemExit(cli.run(main))

In:  a script's ``main(argv) -> int``.
Out: its exit code; 2 with ``cellang <command>: error: <one line>`` on standard error for any error the project
raises on purpose (:class:`~cellang.errors.CellangError`: ``CellFileError``, ``GmtFormatError``,
``PerturbError``, unreachable registries ...), a ``ValueError``, or an ``OSError`` for files.
Set ``CELLANG_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cellang.errors import CellangError
from cellang.text import MAX_SEED

USAGE_EXIT = 2
PROG: str | None = None  # how the running command is named in messages ("cellang complete"); set by cellang.cli.main
# Errors a user can cause with an argument or a file; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (CellangError, ValueError, OSError)


def one_line(message: object) -> str:
    """A message on one line: inner line breaks become '; ', surrounding space goes."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip()) or "unknown error"


def fail(message: object, prog: str | None = None) -> int:
    """Print ``prog: error: message`` (one line) to standard error and return the usage exit code."""
    prog = prog or PROG or Path(sys.argv[0]).name or "cellang"
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return USAGE_EXIT


class Parser(argparse.ArgumentParser):
    """argparse with the description shown verbatim and errors on one line (no usage dump):
    ``run_deletion.py: error: argument --max-cells: must be at least 1, got 0 (--help for usage)``."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if PROG:
            kwargs.setdefault("prog", PROG)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(f"{message} (--help for usage)", self.prog)
        raise SystemExit(USAGE_EXIT)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; documented errors become :func:`fail` (exit 2), Ctrl-C exits 130."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if os.environ.get("CELLANG_DEBUG"):
            raise
        return fail(_describe(error))


def _describe(error: BaseException) -> str:
    # OSError's str() is "[Errno 2] No such file or directory: 'x'"; say it the way a person would.
    if isinstance(error, OSError) and error.strerror:
        where = f"{Path(error.filename).name}: " if error.filename else ""
        return f"{where}{error.strerror.lower()}"
    return str(error)


# --- argument types: each returns the value or raises ArgumentTypeError with the reason -------------------

def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How a command was run, as its results record it: ``cellang <command> <arguments>`` for the module
    ``script`` of this package (``benchmark_perturb`` -> ``cellang benchmark perturb ...``)."""
    from cellang.cli.main import command_of

    words = command_of(script)
    if argv is None:
        argv = sys.argv[1 + len(words):] if Path(sys.argv[0]).name == "cellang" else sys.argv[1:]
    return " ".join(["cellang", *words, *argv])


def write_results(prefix: Path, result: dict, text: str, *, indent: int = 1, **json_options: Any) -> None:
    """A benchmark's results: ``result`` as <prefix>.json (json.dumps with ``indent`` and ``json_options``),
    ``text`` as <prefix>.md, and the text printed."""
    prefix.with_suffix(".json").write_text(json.dumps(result, indent=indent, **json_options) + "\n", encoding="utf-8")
    prefix.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer argument that must be >= minimum."""

    def parse(text: str) -> int:
        value = integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def number(low: float, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number >= low (> low when ``above``), and < high when given: rates, weights, tolerances."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or (high is not None and value >= high):
            bound = f"{'above' if above else 'at least'} {low:g}" + (f" and below {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def output_dir(text: str) -> Path:
    """A folder to write into: it may not exist yet, but nothing on its path may be a file."""
    path = Path(text)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise argparse.ArgumentTypeError(f"{part} is a file, not a folder")
    return path


def output_prefix(text: str) -> Path:
    """An output prefix (PREFIX.json, PREFIX.md ...): its folder must be usable as by :func:`output_dir`."""
    path = Path(text)
    output_dir(str(path.parent))
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file prefix such as {path / 'result'}")
    return path


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a mask ratio, a share)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def seed(text: str) -> int:
    """A random seed: 0 .. MAX_SEED (what numpy accepts)."""
    value = integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {value}")
    return value


def existing_file(text: str) -> Path:
    """A path that exists and is a regular file (checked before any work starts)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file: {text}")
    return path


def existing_dir(text: str) -> Path:
    """A path that exists and is a folder (checked before any work starts)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {text}")
    return path


__all__ = ["Parser", "USAGE_EXIT", "USER_ERRORS", "at_least", "command_line", "existing_dir", "existing_file", "fail",
           "fraction", "integer", "number", "one_line", "output_dir", "output_prefix", "run", "seed", "write_results"]
