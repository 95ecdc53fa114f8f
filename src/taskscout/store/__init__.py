"""The run store: a SQLite index plus safetensors files under one directory.

* :mod:`.records` -- the records read and written (runs, checkpoints, embeddings, transfers);
* :mod:`.schema` -- the SQL schema, its versioned migrations, what counts as a store;
* :mod:`.connection` -- SQLite connections and write transactions;
* :mod:`.tensors` -- atomic safetensors writes, sha256-verified reads;
* :mod:`.runstore` -- :class:`RunStore`: tasks, runs, checkpoints, embeddings, queries, gc;
* :mod:`.transfers` -- :class:`TransferTable`, the measured transfers (``RunStore.transfers``);
* :mod:`.codec`, :mod:`.errors` -- canonical JSON / hashes / ids, and the exceptions.

All SQL of the store lives in this package; code elsewhere uses the methods.
"""

from taskscout.store.connection import backup_copy
from taskscout.store.errors import CorruptTensorError, StoreError
from taskscout.store.records import (
    CHECKPOINT_KINDS,
    LAYER_REDUCES,
    CheckpointRecord,
    EmbeddingRecord,
    RunRecord,
    TransferRecord,
)
from taskscout.store.runstore import RunStore, Store, closing_unless_given, open_store
from taskscout.store.schema import SCHEMA_VERSION
from taskscout.store.transfers import TransferTable

__all__ = [
    "CHECKPOINT_KINDS",
    "LAYER_REDUCES",
    "SCHEMA_VERSION",
    "CheckpointRecord",
    "CorruptTensorError",
    "EmbeddingRecord",
    "RunRecord",
    "RunStore",
    "Store",
    "StoreError",
    "TransferRecord",
    "TransferTable",
    "backup_copy",
    "closing_unless_given",
    "open_store",
]
