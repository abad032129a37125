"""The one place that knows which device we run on.

Everything else asks `pick_device()` and uses `autocast_context(device)`; nothing else in the
project writes "cuda" or "cpu".
"""

from __future__ import annotations

import contextlib
import random
from typing import ContextManager

import numpy as np
import torch


def pick_device(preference: str | None = None, *, local_rank: int = 0) -> torch.device:
    """Resolve a device preference to a `torch.device`.

    preference: "auto" (CUDA when available, else CPU), "cpu", or "cuda"; None: ``cl.settings.device``
    (itself "auto" unless changed).
    local_rank: which GPU to use on a multi-GPU machine (set by torchrun); ignored on CPU.
    Raises ValueError for "cuda" when no CUDA device is visible, or for an unknown preference.
    """
    if preference is None:
        from cellang.settings import settings

        preference = settings.device
    choice = (preference or "auto").strip().lower()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "device 'cuda' was requested but no CUDA GPU is available to PyTorch "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                "use --device auto or --device cpu"
            )
        return torch.device("cuda", local_rank)
    raise ValueError(f"unknown device preference {preference!r}; expected 'auto', 'cpu' or 'cuda'")


PRECISIONS = ("auto", "float32", "bfloat16")


def autocast_context(device: torch.device, precision: str = "auto") -> ContextManager[object]:
    """The autocast context for `precision` on `device`.

    "auto": bf16 on CUDA (halves activation memory, uses tensor cores), fp32 on CPU, where bf16 is slow
    without AVX512-BF16/AMX and breaks bitwise agreement with fp32 runs. "bfloat16" asks for bf16 on
    either (inference on a CPU that has AVX512-BF16 runs about twice as fast); "float32" for none.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "bfloat16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: torch.device) -> str:
    """A one-line human description, e.g. "CUDA: NVIDIA H100 (80 GB)" or "CPU (2 threads)"."""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        gigabytes = round(properties.total_memory / 1024**3)
        return f"CUDA: {properties.name} ({gigabytes} GB)"
    return f"CPU ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
