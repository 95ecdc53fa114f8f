"""The standard source pool shipped inside the package, and the writable copy rankings use.

The package carries ``taskscout/pools/standard/`` (``store.sqlite``, ``tensors/``,
``provenance.json``, ``LICENCES.md``; made by ``tools/make_standard_pool.py``): tasks whose
licences allow redistributing derived parameters, each with a ``lora`` and a ``bitfit`` run on
the packaged all-MiniLM-L6-v2, their task embeddings and mean text embeddings.

The packaged folder may be read-only (site-packages) and is never opened as a store: ranking
tunes the target into the store it ranks against, so :func:`standard_store` opens a per-user
copy, ``$TASKSCOUT_HOME/pools/standard-<version>`` (default home ``~/.cache/taskscout``), made on
first use and verified against the file hashes in ``provenance.json``. ``<version>`` is a hash
of ``provenance.json``, so a new taskscout release with another pool gets a fresh copy. Targets
must be tuned with the pool's recipe (:func:`standard_recipe`) and backbone
(:func:`check_standard_backbone`) for their embeddings to be comparable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from functools import cache
from importlib import resources
from pathlib import Path

from taskscout.backbone import resolve_backbone
from taskscout.store import RunStore, Store, StoreError, open_store

__all__ = [
    "HOME_ENV",
    "StandardPoolError",
    "check_standard_backbone",
    "open_pool",
    "pool_defaults",
    "standard_pool_dir",
    "standard_pool_summary",
    "standard_provenance",
    "standard_recipe",
    "standard_store",
    "standard_version",
    "taskscout_home",
]

HOME_ENV = "TASKSCOUT_HOME"
PROVENANCE = "provenance.json"


class StandardPoolError(StoreError):
    """The standard pool is missing, damaged, or cannot serve this request (another backbone)."""


def standard_pool_dir() -> Path:
    """The packaged folder of the standard pool (read it only; see :func:`standard_store`)."""
    return Path(str(resources.files("taskscout.pools").joinpath("standard")))


@cache
def _provenance_bytes(folder: Path) -> bytes:
    path = folder / PROVENANCE
    try:
        return path.read_bytes()
    except OSError as e:
        raise StandardPoolError(
            f"the standard pool is not installed ({path}: {e}); reinstall taskscout, or give "
            "a pool with --pool PATH (pool=PATH in Python)"
        ) from e


def standard_provenance() -> dict:
    """The pool's ``provenance.json``: ``backbone`` (id, sha256 of its weights), ``recipe``
    (:class:`~taskscout.tuning.config.TuneConfig` fields), ``methods``, ``tasks`` (per task:
    type, family, sizes, run ids, data ``source`` commits, licence), ``licences`` (every
    catalog task with its decision and reason), ``device``, ``build_date``, ``command``,
    ``taskscout_commit``, ``files`` (relative path -> sha256) and ``size_bytes``."""
    return json.loads(_provenance_bytes(standard_pool_dir()))


def standard_version() -> str:
    """16 hex characters identifying the packaged pool (sha256 of its provenance)."""
    return hashlib.sha256(_provenance_bytes(standard_pool_dir())).hexdigest()[:16]


def standard_recipe() -> dict:
    """The tuning options the pool was built with (non-None fields of its TuneConfig, without
    the backbone): pass them to tune a target comparably; explicit user options win."""
    recipe = standard_provenance()["recipe"]
    return {k: v for k, v in recipe.items() if v not in (None, {}) and k != "backbone"}


def check_standard_backbone(backbone: str | os.PathLike | None) -> str:
    """The backbone id of ``backbone`` if it is the standard pool's; else
    :class:`StandardPoolError` (before any work: tasks of other backbones are never compared)."""
    want = standard_provenance()["backbone"]["id"]
    got = resolve_backbone(backbone).backbone_id
    if got != want:
        raise StandardPoolError(
            f"the standard pool was built on backbone {want!r}; backbone {got!r} cannot be "
            "compared with it. Rank against a pool built on your backbone (--pool PATH; "
            "`taskscout pool build ... --backbone ...`), or drop --backbone"
        )
    return got


def taskscout_home() -> Path:
    """``$TASKSCOUT_HOME`` if set, else ``~/.cache/taskscout``: per-user writable state."""
    env = os.environ.get(HOME_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "taskscout"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_verified(src: Path, dst: Path, files: dict[str, str]) -> None:
    for rel, digest in files.items():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src / rel, target)
        except OSError as e:
            raise StandardPoolError(f"the standard pool is incomplete: {src / rel}: {e}") from e
        if _sha256(target) != digest:
            raise StandardPoolError(
                f"the standard pool's file {src / rel} does not match its recorded sha256; "
                "reinstall taskscout"
            )


def standard_store(home: str | os.PathLike | None = None) -> RunStore:
    """The writable per-user copy of the standard pool, opened (made on first use).

    Lives in ``<home>/pools/standard-<version>`` (``home``: :func:`taskscout_home`). The copy is
    assembled in a temporary folder beside it, every file checked against ``provenance.json``,
    then renamed into place, so a half-made copy is never used and concurrent first uses are
    safe. Targets tuned by ``rank`` are added to this copy; the packaged files are only read.
    """
    src = standard_pool_dir()
    prov = standard_provenance()
    base = Path(home).expanduser() if home is not None else taskscout_home()
    dest = base / "pools" / f"standard-{standard_version()}"
    if not (dest / "store.sqlite").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            _copy_verified(src, tmp, prov["files"])
            shutil.copyfile(src / PROVENANCE, tmp / PROVENANCE)
            try:
                tmp.rename(dest)
            except OSError:
                if not (dest / "store.sqlite").is_file():  # not another process's copy
                    raise
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    return RunStore(dest)


def pool_defaults(
    store: Store | None, pool: Store | None, backbone: str | os.PathLike | None
) -> dict:
    """The default tuning options for a target ranked against the pool given as ``store=`` /
    ``pool=``: none for a pool the caller names; without either (the standard pool), its
    recipe, after checking that ``backbone`` is the pool's (:class:`StandardPoolError`)."""
    if store is not None or pool is not None:
        return {}
    check_standard_backbone(backbone)
    return standard_recipe()


def open_pool(
    store: Store | None,
    pool: Store | None = None,
    *,
    create: bool = True,
    backbone: str | os.PathLike | None = None,
) -> RunStore:
    """The pool given as ``store=`` / ``pool=`` (:func:`~taskscout.store.open_store`, exactly as
    before), or without either the standard pool's per-user copy (:func:`standard_store`), after
    checking that ``backbone`` is the standard pool's (:func:`check_standard_backbone`)."""
    if store is None and pool is None:
        check_standard_backbone(backbone)
        return standard_store()
    return open_store(store, pool, create=create)


def standard_pool_summary() -> dict:
    """What ``taskscout pool info`` prints without a pool: ``tasks`` (one row per shipped
    task: type, family, sizes, early dev scores, licence decision), ``excluded`` (task ->
    reason), the recipe, backbone, methods, device, build date, size; from the provenance
    only (nothing is opened or copied)."""
    prov = standard_provenance()
    decisions = {d["task"]: d for d in prov["licences"]}
    rows = []
    for task, info in sorted(prov["tasks"].items()):
        row = {
            "task": task,
            "type": info["type"],
            "family": info.get("family"),
            "num_train": info["num_train"],
        }
        for method, score in info.get("early_dev_score", {}).items():
            row[f"{method}_early"] = score
        row["licence"] = decisions[task]["reason"] if task in decisions else ""
        rows.append(row)
    return {
        "name": prov.get("name", "standard"),
        "folder": str(standard_pool_dir()),
        "copy": str(taskscout_home() / "pools" / f"standard-{standard_version()}"),
        "version": standard_version(),
        "backbone": prov["backbone"],
        "methods": prov["methods"],
        "recipe": prov["recipe"],
        "device": prov["device"],
        "build_date": prov["build_date"],
        "command": prov["command"],
        "taskscout_commit": prov["taskscout_commit"],
        "size_bytes": prov["size_bytes"],
        "tasks": rows,
        "excluded": {
            d["task"]: d["reason"] for d in prov["licences"] if d["decision"] != "allowed"
        },
    }
