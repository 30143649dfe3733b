"""Locks: one writer per data dir across processes, and a readers-writer lock inside one process."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import UserError


@contextmanager
def data_dir_lock(data_dir: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Serialise writers of one data dir across processes (`articlebot add` beside a running bot).

    The lock is an flock on a file that is never deleted, so it is released by the kernel even when the
    holder is killed; a second writer waits, and after `timeout_s` is told clearly.
    """
    fd = _open_lock_file(data_dir)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(
                        f"Another articlebot process is writing to {data_dir}; try again in a moment."
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock_file(data_dir: Path) -> int:
    try:
        return os.open(data_dir / "write.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # a read-only mount, a full disk (no inode), no permission: say which
        raise UserError(
            f"Cannot write to the data directory {data_dir} ({exc.strerror}): nothing was saved."
        ) from exc


@contextmanager
def try_data_dir_lock(data_dir: Path) -> Iterator[bool]:
    """Take the writers' lock if it is free right now: yields whether it was taken (never waits, never
    fails), for housekeeping that must not race a writer but can be skipped (saving the index cache)."""
    try:
        fd = _open_lock_file(data_dir)
    except UserError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class RWLock:
    """Many readers (questions) at once, or one writer (the swap of an index)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
