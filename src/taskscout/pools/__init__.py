"""Source pools as a product: build one (tasks x methods into a run store, resumable, on
worker processes or Ray), describe it, import existing PEFT LoRA adapters into it, and export
its LoRA entries as PEFT adapter folders.

* :mod:`.build` -- :func:`build_pool`: every (task, method) run plus its embeddings;
* :mod:`.info` -- :func:`pool_info`: one row per (task, method) entry;
* :mod:`.adapters` -- :func:`import_adapter`, :func:`export_adapter`.
"""

from taskscout.pools.adapters import export_adapter, import_adapter
from taskscout.pools.build import PoolBuildSummary, build_pool
from taskscout.pools.info import pool_info

__all__ = ["PoolBuildSummary", "build_pool", "export_adapter", "import_adapter", "pool_info"]
