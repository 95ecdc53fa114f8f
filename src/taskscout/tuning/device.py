"""Where a run trains: the device choice and the CPU's native-bf16 check."""

from __future__ import annotations

import functools
import os

import torch


def resolve_device(device: str | None = None) -> torch.device:
    """The torch device to train on: ``device`` if given, else $TASKSCOUT_DEVICE, else ``cpu``.

    ``"auto"`` picks ``cuda`` when a GPU is visible. Results on a GPU are not bit-identical to
    CPU results (the device is recorded with every run, not hashed into its id).
    """
    name = device or os.environ.get("TASKSCOUT_DEVICE") or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 (AVX512-BF16 or AMX); emulated bf16 is far slower."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
