"""The store's transfers table (``RunStore.transfers``), without models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskscout.store import CorruptTensorError, RunStore, StoreError, TransferRecord, TransferTable


def record(**kw) -> TransferRecord:
    base = dict(
        transfer_id=TransferRecord.make_id("src-run", "tgt-run", "early"),
        source_run_id="src-run",
        source_task="mnli",
        target="rte",
        backbone="b",
        method="lora",
        seed=0,
        config_hash="tgt-run",
        settings_hash="s1",
        checkpoint="early",
        status="complete",
        score=61.5,
        baseline_run_id="tgt-run",
        best_epoch=1,
        dev_scores=[55.0, 61.5],
        config={"lr": 1e-3},
    )
    base.update(kw)
    return TransferRecord(**base)


@pytest.fixture
def store(tmp_path: Path):
    with RunStore(tmp_path / "store") as s:
        yield s


def test_transfers_round_trip_with_state(store: RunStore):
    assert isinstance(store.transfers, TransferTable)
    state = {"w": torch.arange(6, dtype=torch.float32).view(2, 3)}
    saved = store.transfers.save(record(), state)
    assert saved.file == f"tensors/xfer-{saved.transfer_id}.safetensors"
    assert store.transfers.get(saved.transfer_id) == saved
    assert torch.equal(store.transfers.load_state(saved.transfer_id)["w"], state["w"])
    assert store.gc() == []  # the kept state is referenced
    assert store.transfers.find(target="rte") == [saved]
    assert store.transfers.find(target="cola") == []
    # a complete row is never replaced
    again = store.transfers.save(record(score=1.0))
    assert again == saved
    (store.root / saved.file).write_bytes(b"garbage")
    with pytest.raises(CorruptTensorError, match="xfer-"):
        store.transfers.load_state(saved.transfer_id)


def test_failed_transfer_is_replaced_by_its_retry(store: RunStore):
    failed = store.transfers.save(record(status="failed", score=None, error="OOM"))
    assert store.transfers.find() == [] and store.transfers.find(status="failed") == [failed]
    with pytest.raises(StoreError, match="kept no state"):
        store.transfers.load_state(failed.transfer_id)
    done = store.transfers.save(record())
    assert store.transfers.find(status=None) == [done]


def test_bad_transfer_records_are_refused(store: RunStore):
    with pytest.raises(StoreError, match="status"):
        store.transfers.save(record(status="weird"))
    with pytest.raises(StoreError, match="error text"):
        store.transfers.save(record(status="failed"))
    assert store.transfers.find(status=None) == []
