"""Tensor files of the run store: atomic safetensors writes and sha256-verified reads.

A file is written to a temporary name in the same directory (``.tmp-<uuid>-<name>``), fsynced
and renamed into place, so a reader never sees a partial file under its final name; a killed
writer leaves only temporary files, which :meth:`taskscout.store.RunStore.gc` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from taskscout.store.errors import CorruptTensorError, StoreError

__all__ = [
    "TENSOR_DIR",
    "TMP_PREFIX",
    "decode_tensors",
    "fsync_dir",
    "prepare_tensors",
    "read_verified",
    "write_tensor_file",
]

TENSOR_DIR = "tensors"  # under the store root
TMP_PREFIX = ".tmp-"


def prepare_tensors(tensors: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no storage (safetensors refuses sharing).

    ``what`` names the tensors in the :class:`StoreError` raised for anything but a
    ``dict[str, torch.Tensor]``.
    """
    if not isinstance(tensors, Mapping):
        raise StoreError(
            f"{what}: expected a dict[str, torch.Tensor], got {type(tensors).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise StoreError(
                f"{what}: expected dict[str, torch.Tensor], found {name!r}: {type(t).__name__}"
            )
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        seen.add(ptr)
        out[name] = t
    return out


def fsync_dir(path: Path) -> None:
    """Flushes a directory entry change (rename) to disk where the platform supports it."""
    with contextlib.suppress(OSError):  # not supported on every platform / file system
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_tensor_file(
    directory: Path, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> str:
    """Atomically writes ``directory/name`` (safetensors with ``metadata``), creating
    ``directory`` if needed; returns the sha256 (hex) of the file's bytes."""
    data = st_save(tensors, metadata=metadata)
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)
    return digest


def read_verified(path: Path, sha256: str, recovery: str) -> bytes:
    """The bytes of ``path`` if their sha256 is ``sha256``; else :class:`CorruptTensorError`
    naming the file and ending with ``recovery`` (what the user can do about it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptTensorError(f"tensor file {path} is missing. {recovery}") from None
    except OSError as e:
        raise CorruptTensorError(f"tensor file {path} is unreadable ({e}). {recovery}") from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise CorruptTensorError(
            f"tensor file {path} is corrupt or truncated: sha256 {actual[:16]}... differs "
            f"from the recorded {sha256[:16]}... ({len(data)} bytes). {recovery}"
        )
    return data


def decode_tensors(data: bytes, path: Path, recovery: str) -> dict[str, torch.Tensor]:
    """The CPU tensors of safetensors ``data`` read from ``path`` (named in the error)."""
    try:
        return st_load(data)
    except Exception as e:  # sha matched but the file does not parse: written corrupt
        raise CorruptTensorError(
            f"tensor file {path} cannot be read as safetensors ({e}). {recovery}"
        ) from e
