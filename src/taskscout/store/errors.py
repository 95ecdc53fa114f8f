"""The run store's exceptions."""

from __future__ import annotations

__all__ = ["CorruptTensorError", "StoreError"]


class StoreError(RuntimeError):
    """Any error of the run store; the message names the store path or file concerned."""


class CorruptTensorError(StoreError):
    """A tensor file is missing, truncated, unreadable or does not match its recorded sha256."""
