"""PEFT LoRA adapters in and out of a pool.

* :func:`import_adapter`: a folder with ``adapter_config.json`` + ``adapter_model.safetensors``
  of a LoRA on the pool's backbone becomes a pool entry: a complete ``lora`` run record (its
  config records where it came from), ``early`` and ``best`` checkpoints holding the adapter's
  tensors (the same tensors for both: an adapter has one state), a task head if the folder has
  one, and its task embeddings. A different base model, other target modules, another rank or
  tensor shapes that do not fit the backbone are refused (:class:`AdapterMismatchError`) before
  anything is written.
* :func:`export_adapter`: a pool entry's LoRA checkpoint as a PEFT adapter folder that
  ``peft.PeftModel.from_pretrained(base, folder)`` loads (plus the task head beside it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from taskscout.backbone import PACKAGED_ID, load_backbone, resolve_backbone
from taskscout.data import TaskData
from taskscout.embeddings.task_embedding import embedding_of_run, stored_run
from taskscout.store import RunRecord, RunStore
from taskscout.tuning.config import CHECKPOINTS, RUN_CONFIG_FORMAT, checkpoint_kind
from taskscout.tuning.methods import build_method
from taskscout.tuning.methods.lora import LoraMethodConfig
from taskscout.tuning.peft_format import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterMismatchError,
    check_adapter_fits,
    read_lora_adapter,
    read_task_head,
    write_adapter_folder,
)
from taskscout.tuning.run import run_backbone_location

__all__ = ["AdapterMismatchError", "export_adapter", "import_adapter"]

#: the max_len recorded with an imported run (what LogME tokenises target texts with)
IMPORT_MAX_LEN = 128


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _base_names(backbone: str | None) -> tuple[str, str, set[str]]:
    """(backbone id, location, every name an adapter's ``base_model_name_or_path`` may use for
    this backbone)."""
    ref = resolve_backbone(backbone)
    names = {ref.backbone_id, ref.location, str(Path(ref.location).resolve())}
    if ref.backbone_id == PACKAGED_ID:
        names |= {PACKAGED_ID, "all-MiniLM-L6-v2"}
    return ref.backbone_id, ref.location, names


def _pool_lora_config(db: RunStore | None, backbone_id: str) -> dict:
    """The LoRA config of the pool's lora runs on ``backbone_id`` (the latest one), else the
    default :class:`LoraMethodConfig`."""
    if db is not None:
        runs = db.latest_runs(method="lora", backbone=backbone_id)
        if runs:
            return dict(max(runs.values(), key=lambda r: r.created_at).config["method_config"])
    return LoraMethodConfig().to_dict()


def import_adapter(
    store: str | Path | RunStore,
    folder: str | Path,
    task: str,
    *,
    backbone: str | None = None,
    data: TaskData | None = None,
    seed: int = 0,
) -> RunRecord:
    """Import the PEFT LoRA adapter in ``folder`` as the ``lora`` run of ``task`` in ``store``
    (created if missing) and store its task embeddings (both checkpoints, mean over layers).

    ``backbone``: the pool's backbone (default: the packaged MiniLM). ``data``: the task's data,
    if known (its fingerprint, sizes and spec are recorded; without it the run has
    ``num_train`` 0 and no task record). Idempotent: importing the same adapter again returns
    the stored run. Refused before anything is written: a folder that is not a LoRA adapter
    (ValueError), an adapter that does not fit the pool (:class:`AdapterMismatchError`, naming
    each difference), a task that already has another lora run in the pool (ValueError).
    """
    folder = Path(folder)
    if not task or not task.strip():
        raise ValueError("an imported adapter needs a task name")
    if data is not None and data.spec.name != task:
        raise ValueError(f"task {task!r} but the data is of task {data.spec.name!r}")
    adapter = read_lora_adapter(folder)
    head = read_task_head(folder)
    backbone_id, location, names = _base_names(backbone)
    if isinstance(store, RunStore):
        db: RunStore | None = store
    else:
        root = Path(store)
        db = RunStore(root, create=False) if (root / "store.sqlite").exists() else None
    expected_config = _pool_lora_config(db, backbone_id)
    _, _, encoder = load_backbone(backbone)
    reference = build_method("lora", encoder, expected_config).tuned_state()
    check_adapter_fits(adapter, reference, expected_config, names)
    method_config = {**expected_config, **adapter.method_config}
    method_config["target_modules"] = list(expected_config["target_modules"])
    run_config = {
        "task": task,
        "task_fingerprint": data.fingerprint() if data is not None else "",
        "backbone": backbone_id,
        "method": "lora",
        "method_config": method_config,
        "train": {"max_len": IMPORT_MAX_LEN, "seed": int(seed)},
        "format": RUN_CONFIG_FORMAT,
        "imported": {
            "adapter_sha256": _sha256(folder / ADAPTER_WEIGHTS),
            "config_sha256": _sha256(folder / ADAPTER_CONFIG),
        },
    }
    run_id = RunStore.config_hash(run_config)
    if db is None:
        db = RunStore(store)
    existing = db.get_run(run_id)
    if existing is not None and existing.status == "complete":
        _embed_both(db, existing)
        return existing
    other = db.latest_run(task, method="lora", backbone=backbone_id)
    if other is not None:
        raise ValueError(
            f"task {task!r} already has lora run {other.run_id} in pool {db.root}; import the "
            "adapter under another task name, or delete that run first"
        )
    if data is not None:
        db.check_task_source(task, data.source)
    record = RunRecord(
        run_id=run_id,
        task=task,
        backbone=backbone_id,
        method="lora",
        seed=int(seed),
        config={
            **run_config,
            "backbone_location": location,
            "provenance": {
                "imported_from": str(folder.resolve()),
                "base_model_name_or_path": adapter.base_model,
                "peft_version": adapter.raw_config.get("peft_version"),
                "head": head is not None,
            },
        },
        num_train=len(data.train) if data is not None else 0,
        num_dev=len(data.dev) if data is not None else 0,
    )
    state = {f"method.{k}": v for k, v in adapter.state.items()}
    if head is not None:
        state.update(head[0])
    if data is not None:
        db.put_task(
            task,
            data.spec.to_dict(),
            data.fingerprint(),
            len(data.train),
            len(data.dev),
            source=data.source,
        )
    run = db.save_run(record, {kind: (state, 0, None) for kind in CHECKPOINTS})
    _embed_both(db, run)
    return run


def _embed_both(db: RunStore, run: RunRecord) -> None:
    for checkpoint in CHECKPOINTS:
        embedding_of_run(db, run, checkpoint, "mean")


def export_adapter(
    store: str | Path | RunStore,
    folder: str | Path,
    *,
    task: str | None = None,
    run_id: str | None = None,
    checkpoint: str = "best",
    backbone: str | None = None,
    head: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the ``checkpoint`` of a pool entry's lora run (``run_id``, else the latest lora
    run of ``task`` on ``backbone``; without one, on the only backbone the task has lora runs
    on) as a PEFT adapter folder; with ``head``, the run's task
    head beside it (``head.safetensors`` + ``taskscout_head.json``) when the checkpoint has
    one. ``base_model_name_or_path`` is the hub id of the packaged MiniLM, else the folder the
    run's backbone was loaded from. Returns the folder. ValueError when there is no such run."""
    checkpoint = checkpoint_kind(checkpoint)
    if task is None and run_id is None:
        raise ValueError("give a task or a run id to export")
    db = store if isinstance(store, RunStore) else RunStore(store, create=False)
    if backbone is None and run_id is None:  # the pool's own backbone, if it has one
        backbones = {r.backbone for r in db.find_runs(task=task, method="lora")}
        if len(backbones) > 1:
            raise ValueError(
                f"task {task!r} has lora runs on several backbones ({sorted(backbones)}): "
                "pass backbone="
            )
        run = db.latest_run(task, method="lora")
    else:
        run = stored_run(db, task, "lora", resolve_backbone(backbone).backbone_id, run_id)
    if run is None:
        raise ValueError(f"no lora run of task {task!r} in pool {db.root}")
    if run.method != "lora":
        raise ValueError(f"run {run.run_id} is a {run.method} run; only lora runs export to PEFT")
    state = db.load_checkpoint(run.run_id, checkpoint)
    spec = None
    if head:
        info = db.get_task(run.task)
        spec = info["spec"] if info else {"name": run.task}
    return write_adapter_folder(
        folder,
        state,
        run.config["method_config"],
        backbone_id=run.backbone,
        backbone_location=run_backbone_location(run),
        spec=spec,
        task=run.task,
        overwrite=overwrite,
    )
