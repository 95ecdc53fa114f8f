"""Tuning methods, one module each; importing this package fills the registry."""

from taskscout.tuning.methods import bitfit, lora, prefix, prompt  # noqa: F401  (registration)
from taskscout.tuning.methods.base import (
    METHODS,
    MethodConfig,
    TuningMethod,
    build_method,
    get_method,
)

__all__ = ["METHODS", "MethodConfig", "TuningMethod", "build_method", "get_method"]
