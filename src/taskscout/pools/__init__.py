"""Source pools as a product: build one (tasks x methods into a run store, resumable, on
worker processes or Ray), describe it, import existing PEFT LoRA adapters into it, and export
its LoRA entries as PEFT adapter folders.

* :mod:`.build` -- :func:`build_pool`: every (task, method) run plus its embeddings;
* :mod:`.info` -- :func:`pool_info`: one row per (task, method) entry;
* :mod:`.adapters` -- :func:`import_adapter`, :func:`export_adapter`;
* :mod:`.standard` -- the standard pool shipped with the package (:func:`standard_store`: its
  writable per-user copy; :func:`standard_recipe`, :func:`standard_provenance`).
"""

from taskscout.pools.adapters import export_adapter, import_adapter
from taskscout.pools.build import PoolBuildSummary, build_pool
from taskscout.pools.info import pool_info
from taskscout.pools.standard import (
    StandardPoolError,
    check_standard_backbone,
    open_pool,
    pool_defaults,
    standard_pool_dir,
    standard_pool_summary,
    standard_provenance,
    standard_recipe,
    standard_store,
)

__all__ = [
    "PoolBuildSummary",
    "StandardPoolError",
    "build_pool",
    "check_standard_backbone",
    "export_adapter",
    "import_adapter",
    "open_pool",
    "pool_defaults",
    "pool_info",
    "standard_pool_dir",
    "standard_pool_summary",
    "standard_provenance",
    "standard_recipe",
    "standard_store",
]
