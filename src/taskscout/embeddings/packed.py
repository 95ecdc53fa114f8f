"""The packed pool: every task vector of one (backbone, method, checkpoint, layer_reduce) as one
float32 matrix on disk, so ranking a target against a large pool is one chunked matrix-vector
product instead of thousands of file reads.

Layout, inside the store::

    <root>/cache/packed/<slug>.json                 index: tasks, embedding ids + sha256, norms
    <root>/cache/packed/<slug>-<digest16>.npy       (N, D) float32, row i = vector of tasks[i]

``slug`` names the (backbone, method, checkpoint, layer_reduce); ``digest`` is the sha256 of the
sorted (task, embedding_id, sha256) triples of the pool, i.e. of the set of embedding ids the
pool holds (each id fixes one file content, recorded in the store). An index is used only when
its digest equals the store's current one, so a stale cache is never read: adding a run or
embedding changes the digest and the next call rebuilds, reusing the rows it already has and
loading (sha256-verified, :meth:`RunStore.load_embedding`) only the new files. The matrix is
written first under a new name, then the index is replaced atomically, so a killed build leaves
the previous pack (or none), never an index pointing at a half-written matrix.

The pool holds, like :func:`taskscout.embeddings.pool.pool_embeddings`, the embedding of the
latest complete run of every task; the vector form of a prompt matrix is its token mean. All
rows must have the same shape (:class:`IncompatibleEmbeddingError` otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.embeddings.task_embedding import embedding_of_run
from taskscout.embeddings.tupate import as_vector
from taskscout.store import RunStore
from taskscout.tuning.config import checkpoint_kind
from taskscout.tuning.methods import get_method
from taskscout.util import make_progress

__all__ = ["PackedPool", "cosine_to_pool", "pack_dir", "packed_pool", "pool_entries"]

CHUNK_BYTES = 4 * 2**20
"""Rows are read and scored in chunks of at most this many bytes of float32 (bounded memory)."""
_FORMAT = 1


@dataclass(frozen=True)
class PoolEntry:
    """One task of the pool: its latest run and (if computed) that run's embedding."""

    task: str
    run_id: str
    embedding_id: str | None
    sha256: str | None
    shape: tuple[int, ...] | None


@dataclass
class PackedPool:
    """A packed pool: ``tasks[i]`` has vector row i of the (N, D) float32 ``matrix_path``."""

    backbone: str
    method: str
    checkpoint: str
    layer_reduce: str
    shape: tuple[int, ...]  # shape of each stored embedding ((D,), or (L, H) for prompt)
    tasks: list[str]
    embedding_ids: list[str]
    norms: np.ndarray  # (N,) float64, Euclidean norm of each row (in float64)
    matrix_path: Path
    digest: str
    built: bool  # True if this call (re)built the matrix, False if it was read from the cache
    loaded_files: int  # embedding files read (sha256-verified) by this call
    excluded: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Tasks of the same (backbone, method, ...) left out by ``shape=``, with their shape."""

    @property
    def dim(self) -> int:
        return int(self.shape[-1])

    def __len__(self) -> int:
        return len(self.tasks)

    def index_of(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tasks)}


def pack_dir(db: RunStore) -> Path:
    return db.root / "cache" / "packed"


def _slug(backbone: str, method: str, checkpoint: str, layer_reduce: str) -> str:
    key = hashlib.sha256(f"{backbone}\0{method}\0{checkpoint}\0{layer_reduce}".encode()).hexdigest()
    return f"{method}-{checkpoint}-{layer_reduce}-{key[:12]}"


def pool_entries(
    db: RunStore, *, method: str, backbone: str, checkpoint: str, layer_reduce: str
) -> dict[str, PoolEntry]:
    """task -> :class:`PoolEntry` of its latest complete ``method`` run on ``backbone`` (the
    store's rule, :meth:`RunStore.latest_embedding_entries`), in one query."""
    rows = db.latest_embedding_entries(
        method=method, backbone=backbone, checkpoint=checkpoint, layer_reduce=layer_reduce
    )
    return {row[0]: PoolEntry(*row) for row in rows}


def _vector_shape(shape: tuple[int, ...]) -> int:
    return int(shape[-1])  # (D,) -> D; prompt (L, H) -> H (token mean)


def _check_shapes(entries: list[PoolEntry], method: str) -> tuple[int, ...]:
    first = entries[0]
    for e in entries[1:]:
        if e.shape != first.shape:
            raise IncompatibleEmbeddingError(
                f"cannot pack {method} embeddings of different shapes: task {e.task!r} has "
                f"shape={e.shape} but task {first.task!r} has {first.shape} (different method "
                "options or layer_reduce); tune them alike or rank them separately"
            )
    return first.shape  # type: ignore[return-value]


def _digest(key: tuple[str, str, str, str], entries: list[PoolEntry]) -> str:
    h = hashlib.sha256(json.dumps(list(key)).encode())
    for e in entries:
        h.update(f"\n{e.task}\0{e.embedding_id}\0{e.sha256}".encode())
    return h.hexdigest()


def _read_index(path: Path) -> dict | None:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if index.get("format") == _FORMAT else None


def _npy_offset(path: Path) -> tuple[int, tuple[int, ...]]:
    """(byte offset of the data, shape) of a C-ordered float32 .npy file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
        if fortran or dtype != np.dtype("<f4"):
            raise ValueError(f"{path}: expected a C-ordered little-endian float32 matrix")
        return f.tell(), tuple(shape)


def _iter_rows(path: Path, n: int, d: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Row chunks (k, d) float32 of the packed matrix: read-only views of a memory map, each
    released from this process (``MADV_DONTNEED``) once the next one is asked for, so resident
    memory stays at about one chunk (the file stays in the OS page cache). Consume each chunk
    before asking for the next."""
    offset, shape = _npy_offset(path)
    if shape != (n, d):
        raise ValueError(f"{path}: matrix shape {shape}, index says {(n, d)}")
    if n == 0:
        return
    rows = max(1, chunk_bytes // (4 * max(d, 1)))
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        if hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        matrix = np.frombuffer(mm, dtype="<f4", count=n * d, offset=offset).reshape(n, d)
        for start in range(0, n, rows):
            k = min(rows, n - start)
            yield matrix[start : start + k]
            if hasattr(mm, "madvise"):
                first = offset + 4 * d * start
                aligned = first - first % mmap.PAGESIZE
                mm.madvise(mmap.MADV_DONTNEED, aligned, first + 4 * d * k - aligned)
        del matrix
    finally:
        with contextlib.suppress(BufferError):  # a caller still holds a view: closed by GC
            mm.close()


def _vector(tensor: torch.Tensor) -> np.ndarray:
    return as_vector(tensor).detach().to(torch.float32).numpy()


def _compute_missing(db, missing: list[PoolEntry], checkpoint, layer_reduce, progress) -> None:
    with make_progress(progress, extra=False) as bar:
        job = bar.add_task("embedding stored runs", total=len(missing))
        for e in missing:
            run = db.get_run(e.run_id)
            embedding_of_run(db, run, checkpoint, layer_reduce)
            bar.update(job, advance=1)


def packed_pool(
    db: RunStore,
    *,
    method: str,
    backbone: str,
    checkpoint: str = "early",
    layer_reduce: str = "mean",
    shape: tuple[int, ...] | None = None,
    progress: bool = False,
) -> PackedPool:
    """The packed pool of (backbone, method, checkpoint, layer_reduce), from the cache when it is
    current, else (re)built: stored runs without an embedding are embedded first
    (:func:`~taskscout.embeddings.task_embedding.embedding_of_run`), rows of a previous pack
    are reused by embedding id, the others are read sha256-verified. ``shape``: keep only the
    tasks whose embedding has this shape (one pack per shape); without it, rows of different
    shapes raise :class:`IncompatibleEmbeddingError`. ``ValueError`` if no task is left."""
    checkpoint = checkpoint_kind(checkpoint)
    reduce_ = get_method(method).embedding_reduce(layer_reduce)
    key = (backbone, method, checkpoint, reduce_)
    entries = pool_entries(
        db, method=method, backbone=backbone, checkpoint=checkpoint, layer_reduce=reduce_
    )
    missing = [e for e in entries.values() if e.embedding_id is None]
    if missing:
        _compute_missing(db, missing, checkpoint, layer_reduce, progress)
        entries = pool_entries(
            db, method=method, backbone=backbone, checkpoint=checkpoint, layer_reduce=reduce_
        )
    excluded: dict[str, tuple[int, ...]] = {}
    if shape is not None:
        shape = tuple(int(x) for x in shape)
        excluded = {t: e.shape for t, e in entries.items() if e.shape != shape}  # type: ignore[misc]
        entries = {t: e for t, e in entries.items() if e.shape == shape}
    if not entries:
        what = "" if shape is None else f" with embeddings of shape {shape}"
        raise ValueError(
            f"store {db.root} holds no complete {method} run{what} for backbone {backbone!r}"
        )
    ordered = [entries[t] for t in sorted(entries)]
    shape = _check_shapes(ordered, method)
    digest = _digest(key, ordered)
    folder = pack_dir(db)
    slug = f"{_slug(*key)}-{'x'.join(map(str, shape))}"
    index_path = folder / f"{slug}.json"
    old = _read_index(index_path)
    tasks = [e.task for e in ordered]
    ids = [e.embedding_id for e in ordered]
    if old is not None and old["digest"] == digest and (folder / old["matrix"]).is_file():
        return PackedPool(
            *key,
            shape=shape,
            tasks=tasks,
            embedding_ids=ids,  # type: ignore[arg-type]
            norms=np.asarray(old["norms"], dtype=np.float64),
            matrix_path=folder / old["matrix"],
            digest=digest,
            built=False,
            loaded_files=0,
            excluded=excluded,
        )
    packed = _build(db, key, ordered, shape, digest, folder, slug, old, progress)
    packed.excluded = excluded
    return packed


class _OldRows:
    """Rows of the previous pack by ``embedding_id:sha256``, read one at a time (pread)."""

    def __init__(self, folder: Path, old: dict | None, d: int) -> None:
        self.where: dict[str, int] = {}
        self.fd = None
        path = None if old is None else folder / old["matrix"]
        if path is None or not path.is_file() or old.get("dim") != d:
            return
        try:
            self.offset, shape = _npy_offset(path)
        except (OSError, ValueError):
            return
        if shape != (len(old["embedding_ids"]), d):
            return
        self.d = d
        self.fd = os.open(path, os.O_RDONLY)
        keys = zip(old["embedding_ids"], old["sha256"], strict=True)
        self.where = {f"{e}:{s}": i for i, (e, s) in enumerate(keys)}

    def get(self, key: str) -> np.ndarray | None:
        i = self.where.get(key)
        if i is None or self.fd is None:
            return None
        data = os.pread(self.fd, 4 * self.d, self.offset + 4 * self.d * i)
        return np.frombuffer(data, dtype="<f4") if len(data) == 4 * self.d else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _build(db, key, ordered, shape, digest, folder, slug, old, progress) -> PackedPool:
    d = _vector_shape(shape)
    n = len(ordered)
    folder.mkdir(parents=True, exist_ok=True)
    reuse = _OldRows(folder, old, d)
    name = f"{slug}-{digest[:16]}.npy"
    tmp = folder / f".tmp-{uuid.uuid4().hex}-{name}"
    norms = np.empty(n, dtype=np.float64)
    loaded = 0
    try:
        with open(tmp, "xb") as f, make_progress(progress and n > 200, extra=False) as bar:
            header = {"descr": "<f4", "fortran_order": False, "shape": (n, d)}
            np.lib.format.write_array_header_1_0(f, header)
            job = bar.add_task(f"packing {n} {key[1]} embeddings", total=n)
            for i, e in enumerate(ordered):
                row = reuse.get(f"{e.embedding_id}:{e.sha256}")
                if row is None:
                    row = _vector(db.load_embedding(e.embedding_id))  # sha256-verified
                    loaded += 1
                if row.shape != (d,):
                    raise IncompatibleEmbeddingError(
                        f"task {e.task!r}: vector of shape {row.shape}, the pack has ({d},)"
                    )
                f.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
                norms[i] = float(np.linalg.norm(row.astype(np.float64)))
                if i % 256 == 0:
                    bar.update(job, completed=i)
            bar.update(job, completed=n)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        reuse.close()
    index = {
        "format": _FORMAT,
        "backbone": key[0],
        "method": key[1],
        "checkpoint": key[2],
        "layer_reduce": key[3],
        "shape": list(shape),
        "dim": d,
        "digest": digest,
        "matrix": name,
        "tasks": [e.task for e in ordered],
        "embedding_ids": [e.embedding_id for e in ordered],
        "sha256": [e.sha256 for e in ordered],
        "norms": norms.tolist(),
    }
    tmp_index = folder / f".tmp-{uuid.uuid4().hex}-{slug}.json"
    tmp_index.write_text(json.dumps(index), encoding="utf-8")
    os.replace(tmp_index, folder / f"{slug}.json")
    if old is not None and old.get("matrix") != name:
        with contextlib.suppress(OSError):
            (folder / old["matrix"]).unlink()
    return PackedPool(
        *key,
        shape=tuple(shape),
        tasks=index["tasks"],
        embedding_ids=index["embedding_ids"],
        norms=norms,
        matrix_path=folder / name,
        digest=digest,
        built=True,
        loaded_files=loaded,
    )


def cosine_to_pool(
    pool: PackedPool, target: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> np.ndarray:
    """cos(e_t, e_s) for every row s of the pack, (N,) float64, computed like
    :func:`~taskscout.embeddings.similarity.cosine_scores` (float64, zero vector -> 0) in chunks
    of at most ``chunk_bytes`` of float32 rows. ``target``: the target's embedding ((D,) or a
    prompt matrix, of the pack's stored shape)."""
    if tuple(target.shape) != tuple(pool.shape):
        raise IncompatibleEmbeddingError(
            f"cannot compare embeddings: the target has shape={tuple(target.shape)} but the "
            f"packed {pool.method} pool has {tuple(pool.shape)}"
        )
    t = torch.from_numpy(_vector(target)).double()
    t = t / t.norm().clamp(min=1e-12)
    dots = torch.empty(len(pool), dtype=torch.float64)
    wide = None  # one reused float64 buffer: no allocation (and page faults) per chunk
    start = 0
    for chunk in _iter_rows(pool.matrix_path, len(pool), pool.dim, chunk_bytes):
        k = len(chunk)
        if wide is None:
            wide = np.empty((k, pool.dim), dtype=np.float64)
        np.copyto(wide[:k], chunk)  # numpy's cast is vectorised (several x torch's copy_)
        torch.mv(torch.from_numpy(wide[:k]), t, out=dots[start : start + k])
        start += k
    return dots.numpy() / np.maximum(pool.norms, 1e-12)
