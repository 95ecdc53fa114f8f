"""Tuning methods, one module each; importing this package fills the registry."""

from taskscout.tuning.methods import (  # noqa: F401  (registration)
    bitfit,
    full,
    lora,
    prefix,
    prompt,
)
from taskscout.tuning.methods.base import (
    METHODS,
    MethodConfig,
    TuningMethod,
    build_method,
    get_method,
)

__all__ = ["METHODS", "MethodConfig", "TuningMethod", "build_method", "get_method"]
