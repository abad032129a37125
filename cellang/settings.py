"""``cl.settings``: the few choices a notebook user makes once per session.

    import cellang as cl
    cl.settings.device = "cpu"          # "auto" (CUDA when present), "cpu" or "cuda"
    cl.settings.verbosity = "info"      # messages through logging: "warning" (default), "info", "debug"
    cl.settings.n_threads = 2           # torch's CPU threads (None: torch's default)
    cl.settings.models_dir = "my-models"  # where adapted and fine-tuned models are written and listed
    cl.settings.progress_bar = False    # tqdm bars (notebook-aware) for long calls

Environment variables set the same at start-up: CELLANG_MODELS (models folder), CELLANG_CACHE (downloads),
CELLANG_HOME (the folder holding data/ and checkpoints/).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOGGER_NAME = "cellang"
LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
DEVICES = ("auto", "cpu", "cuda")

logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())  # a library is quiet unless asked


def _one_of(setting: str, value: object, allowed: tuple[str, ...]) -> str:
    choice = str(value).strip().lower()
    if choice not in allowed:
        raise ValueError(f"settings.{setting}: {value!r} is not one of {', '.join(allowed)}")
    return choice


class _Folder:
    """A folder setting kept in its environment variable, so that the lower layers (:mod:`cellang.paths`,
    which reads the variable) and any child process see the same folder."""

    def __init__(self, variable: str, reader: str, doc: str) -> None:
        self.variable, self.reader, self.__doc__ = variable, reader, f"{doc} ({variable})"

    def __get__(self, settings: object, owner: type | None = None) -> Path:
        from cellang import paths

        return getattr(paths, self.reader)()

    def __set__(self, settings: object, value: str | Path) -> None:
        os.environ[self.variable] = str(Path(value).expanduser())


class Settings:
    """Session-wide choices; each setter checks its value and says what it accepts."""

    def __init__(self) -> None:
        self._device = "auto"
        self._n_threads: int | None = None
        self.progress_bar = True
        self.verbosity = "warning"

    @property
    def device(self) -> str:
        """The device preference every call without its own uses: "auto", "cpu" or "cuda"."""
        return self._device

    @device.setter
    def device(self, value: str) -> None:
        self._device = _one_of("device", value, DEVICES)

    @property
    def verbosity(self) -> str:
        """How much the ``cellang`` logger says: "error", "warning" (default), "info" or "debug"."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: str) -> None:
        choice = self._verbosity = _one_of("verbosity", value, tuple(LEVELS))
        logger = logging.getLogger(LOGGER_NAME)
        logger.setLevel(LEVELS[choice])
        if choice in ("info", "debug") and not any(getattr(h, "_cellang", False) for h in logger.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._cellang = True  # type: ignore[attr-defined]
            logger.addHandler(handler)

    @property
    def n_threads(self) -> int | None:
        """torch's CPU threads; None leaves torch's default."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value: int | None) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"settings.n_threads: {value!r} is not a whole number >= 1 (or None)")
            import torch

            torch.set_num_threads(value)
        self._n_threads = value

    models_dir = _Folder("CELLANG_MODELS", "user_model_dir",
                         "Where the user's own models (adapted, fine-tuned) are written and listed.")
    cache_dir = _Folder("CELLANG_CACHE", "cache_dir", "Where registry downloads and Census fetches are kept.")

    @property
    def data_dir(self) -> Path:
        """The shipped data (corpus, cell atlas, gene table), read-only; CELLANG_HOME at start-up moves it."""
        from cellang.paths import DATA_DIR

        return DATA_DIR

    def __repr__(self) -> str:
        return (f"cellang settings: device={self.device!r}, verbosity={self.verbosity!r}, "
                f"n_threads={self.n_threads!r}, progress_bar={self.progress_bar!r}, "
                f"models_dir='{self.models_dir}', cache_dir='{self.cache_dir}'")


settings = Settings()


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def progress_bar(description: str):
    """A ``progress(fraction, text)`` callback drawing a tqdm bar (tqdm.auto: a widget in a notebook) when
    ``settings.progress_bar`` is on, and logging each new message at info level; call ``.close()`` when done."""
    return _Bar(description)


class _Bar:
    def __init__(self, description: str) -> None:
        self._last = ""
        self._bar = None
        if settings.progress_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=1000, desc=description, leave=False,
                             bar_format="{l_bar}{bar}| {postfix}")

    def __call__(self, fraction: float, text: str) -> None:
        if text != self._last:
            logger().info(text)
            self._last = text
        if self._bar is not None:
            self._bar.n = int(round(min(max(fraction, 0.0), 1.0) * 1000))
            self._bar.set_postfix_str(text[:80], refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
