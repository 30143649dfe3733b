"""The dense (vector) index: exact inner-product search over chunk vectors with FAISS.

It is a cache of the `chunks` table, rebuilt from the stored vectors whenever it is missing or stale, so
saving is about never leaving a half-written file behind: the index and then its manifest are each
written to a temp file, fsynced and renamed. The manifest carries checksums of both, so a crash between
the two renames, or a truncated file, is detected on load instead of serving wrong passages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from engine.errors import UserError

MANIFEST_FORMAT = 1

# Every search here is one question against a flat index: OpenMP threads only add start-up cost to it
# (on the 54k-passage news collection, median 8 ms with one thread, 11-13 ms with two), and the cores are
# the embedding model's.
faiss.omp_set_num_threads(1)


class DenseIndexError(UserError):
    """The index file is missing, unreadable or does not match its manifest: rebuild it from the store."""


def manifest_path(path: Path) -> Path:
    """dense.faiss -> dense.json"""
    return Path(path).with_suffix(".json")


def ids_checksum(ids: np.ndarray) -> str:
    """sha256 of the sorted ids as little-endian int64: compares an index with the store cheaply."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype="<i8")).tobytes()).hexdigest()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_temp_files(path: Path) -> list[str]:
    """Delete the temp files a killed `save` left beside `path` and its manifest; returns their names.

    Only safe while no other process is saving: callers hold the data dir's writers' lock.
    """
    removed = []
    for target in (Path(path), manifest_path(path)):
        for tmp in target.parent.glob(f"{_temp_prefix(target)}*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp.name)
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a partial one."""
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DenseIndex:
    """FAISS IndexIDMap2(IndexFlatIP) keyed by chunk id; one lock serialises searches and updates."""

    def __init__(self, dim: int, _index: Any = None):
        if dim < 1:
            raise ValueError(f"dimension must be positive, got {dim}")
        self.dim = int(dim)
        self._index = _index if _index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._lock = threading.Lock()

    def _prepare(self, vectors: np.ndarray, n: int | None = None) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.dim or (n is not None and arr.shape[0] != n):
            want = f"({n if n is not None else 'n'}, {self.dim})"
            raise ValueError(f"expected vectors of shape {want}, got {np.asarray(vectors).shape}")
        return np.ascontiguousarray(arr)

    def _ids_unlocked(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under these ids; an id already present is replaced (adding twice is harmless)."""
        id_arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("duplicate ids in one add()")
        mat = self._prepare(vectors, len(id_arr))
        if not len(id_arr):
            return
        with self._lock:
            present = id_arr[np.isin(id_arr, self._ids_unlocked())]
            if len(present):
                self._index.remove_ids(faiss.IDSelectorBatch(present))
            self._index.add_with_ids(mat, id_arr)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (absent ones are ignored); returns how many were removed."""
        id_arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(id_arr):
            return 0
        with self._lock:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest chunk ids by inner product (cosine for unit vectors), best first."""
        query = self._prepare(vector, 1)
        with self._lock:
            k = min(int(k), self._index.ntotal)
            if k <= 0:
                return []
            scores, ids = self._index.search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def ids(self) -> np.ndarray:
        """Every id in the index, sorted, int64."""
        with self._lock:
            return np.sort(self._ids_unlocked())

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the index then its manifest (with dim, count and checksums added); returns the manifest."""
        path = Path(path)
        with self._lock:
            data = faiss.serialize_index(self._index).tobytes()
            ids = self._ids_unlocked()
        full = {
            **manifest,
            "format": MANIFEST_FORMAT,
            "dim": self.dim,
            "count": len(ids),
            "ids_sha256": ids_checksum(ids),
            "index_sha256": hashlib.sha256(data).hexdigest(),
        }
        write_atomic(path, data)
        write_atomic(manifest_path(path), json.dumps(full, indent=2, sort_keys=True).encode("utf-8"))
        return full

    @classmethod
    def load(cls, path: Path) -> tuple[DenseIndex, dict[str, Any]]:
        """Read an index saved by `save`; DenseIndexError says what is wrong if it cannot be trusted."""
        path = Path(path)
        mpath = manifest_path(path)
        fix = "it is rebuilt from the database (articlebot reindex also rebuilds it)"
        try:
            data = path.read_bytes()
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DenseIndexError(f"Dense index {exc.filename} is missing: {fix}") from exc
        except (OSError, ValueError) as exc:
            raise DenseIndexError(f"Dense index manifest {mpath} is unreadable ({exc}): {fix}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise DenseIndexError(f"Dense index manifest {mpath} has an unknown format: {fix}")
        if hashlib.sha256(data).hexdigest() != manifest.get("index_sha256"):
            raise DenseIndexError(
                f"Dense index {path} does not match its manifest (corrupt or partly written): {fix}"
            )
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise DenseIndexError(f"Dense index {path} is corrupt ({exc}): {fix}") from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise DenseIndexError(f"Dense index {path} is not an id-mapped index: {fix}")
        dense = cls(int(index.d), _index=index)
        ids = dense._ids_unlocked()
        if (
            int(index.d) != manifest.get("dim")
            or len(ids) != manifest.get("count")
            or ids_checksum(ids) != manifest.get("ids_sha256")
        ):
            raise DenseIndexError(f"Dense index {path} disagrees with its manifest: {fix}")
        return dense, manifest
