"""Crash safety (issue 5): SIGKILL during writes, a full disk and a read-only data dir.

The kill tests drive real processes (tests/_crash_driver.py, and the `articlebot` console script) and kill
them with SIGKILL; after each kill a fresh Engine opens the data dir and tests/_crash_harness.py checks what a
user relies on: every confirmed article is there and answerable, nothing half-written is visible, the index
agrees with the store (or was repaired and said so), and no temp file is left. The full-length run is
`python -m scripts.crash_soak --kills 50`.

Full disk and read-only: real file systems where the kernel allows it (a small tmpfs, a read-only bind
mount, inside `unshare -rm`), and injected faults at the same write points otherwise (SQLite's
max_page_count and query_only give the real SQLite errors; os.open/os.fsync raise the real errno).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from engine.errors import UserError
from tests._crash_corpus import SyntheticArticle, make_article
from tests._crash_harness import (
    WORDS,
    Campaign,
    cli_command,
    file_digests,
    kill_cli_add,
    open_engine,
    retrieval_problems,
    snapshot,
    store_problems,
    stray_files,
)

KILLS = int(os.environ.get("ARTICLEBOT_CRASH_KILLS", "7"))
SEED = int(os.environ.get("ARTICLEBOT_CRASH_SEED") or random.randrange(1_000_000))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _unshare_works() -> bool:
    """User + mount namespaces: a real tmpfs or read-only bind mount without touching the host."""
    if not shutil.which("unshare"):
        return False
    try:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt && mount -o remount,ro /mnt"],
            capture_output=True, timeout=20,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _unshare_works(), reason="needs `unshare -rm` for a real read-only or full file system"
)


@pytest.fixture
def seeded(tmp_path: Path, embedder: Any) -> Iterator[tuple[Any, list[SyntheticArticle]]]:
    """An engine on a data dir holding three articles."""
    engine = open_engine(tmp_path / "data", embedder)
    articles = [make_article(i, paragraphs=4) for i in range(3)]
    assert all(r.ok for r in engine.add([str(a.write(tmp_path / "src")) for a in articles]))
    yield engine, articles
    engine.store.close()


def _cites(engine: Any, article: SyntheticArticle, article_id: int) -> bool:
    answer = engine.ask(article.question)
    return not answer.abstained and any(
        c.article_id == article_id and article.answer in c.quote for c in answer.citations
    )


# ---- SIGKILL -------------------------------------------------------------------------------------------


def test_sigkill_during_add_remove_and_reindex_loses_nothing_confirmed(tmp_path: Path, embedder: Any) -> None:
    """Writers killed at random delays within each write's measured duration, and at the narrow windows
    (inside the transaction, after COMMIT, with a temp file on disk, between the two renames)."""
    report = Campaign(tmp_path, embedder, seed=SEED).run(kills=KILLS, deadline_s=360)
    print(report.summary())
    assert report.problems == [], report.summary() + "\n" + "\n".join(report.problems)
    assert report.kills >= KILLS, report.summary()
    assert {"remove", "reindex"} <= set(report.ops), report.summary()
    assert {"add_one", "add_batch", "add_dir"} & set(report.ops), report.summary()
    assert report.mid_write >= KILLS // 2, report.summary()
    if KILLS >= 7:  # four targeted kills: at least one left a temp file and one a stale index
        assert report.strays_found and report.stale_index_found >= 1, report.summary()


def test_sigkill_of_the_real_cli_in_the_middle_of_a_batch(
    seeded: tuple[Any, list[SyntheticArticle]], tmp_path: Path, embedder: Any
) -> None:
    """`articlebot add` on ten files, killed as soon as the first of them is committed."""
    engine, seed_articles = seeded
    data = engine.data_dir
    engine.store.close()
    batch = [make_article(i, paragraphs=4) for i in range(3, 13)]
    paths = [str(a.write(tmp_path / "batch")) for a in batch]
    run, committed = kill_cli_add(data, paths, chunk_words=WORDS[0], delay_s=0.0, work=tmp_path)
    assert committed is not None, f"the batch never started writing: {run.events}"
    assert run.killed and not run.of("error")
    confirmed = {int(e["id"]): e["title"] for e in run.of("added")}

    leftovers = stray_files(data)
    fresh = open_engine(data, embedder)
    try:
        stored = {a.id: a for a in fresh.list_articles()}
        by_title = {a.title: a for a in [*seed_articles, *batch]}
        print(
            f"killed with {committed} of 10 committed; {len(stored) - 3} kept; "
            f"{len(confirmed)} confirmed; notices {fresh.notices}; debris {leftovers}"
        )
        assert all(stored.get(i) and stored[i].title == t for i, t in confirmed.items())
        assert {a.title for a in seed_articles} <= {a.title for a in stored.values()}
        if len(stored) > 3 and not confirmed:  # committed but the index file was never saved: repaired
            assert any(n.startswith("Repaired the search index") for n in fresh.notices), fresh.notices
        assert fresh.check() == []
        assert store_problems(data / "articles.db") == []
        assert stray_files(data) == []
        present = {i: by_title[a.title] for i, a in stored.items()}
        assert retrieval_problems(fresh, present, ask={max(present)}) == []
    finally:
        fresh.store.close()


# ---- full disk, injected at the real SQLite and OS error points ----------------------------------------


def _disk_full_for_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQLite connection opened from now on may not grow the database: SQLITE_FULL, as on a full disk."""
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_full_disk_during_add_and_reindex_is_a_clear_error_and_changes_nothing(
    seeded: tuple[Any, list[SyntheticArticle]],
    tmp_path: Path,
    embedder: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, _ = seeded
    data = engine.data_dir
    engine.store.close()
    before = snapshot(data)
    big = make_article(40, paragraphs=30)
    path = str(big.write(tmp_path / "src"))
    _disk_full_for_sqlite(monkeypatch)

    full = open_engine(data, embedder)
    [result] = full.add([path])
    assert not result.ok
    assert "is full: nothing was saved" in (result.error or "") and path in (result.error or "")
    smaller_chunks = open_engine(data, embedder, chunk_words=40)  # many more passages: the file must grow
    with pytest.raises(UserError, match="is full: nothing was saved"):
        smaller_chunks.reindex()
    code = main(["--data-dir", str(data), "add", path])
    _, err = capsys.readouterr()
    assert code == 1 and "is full: nothing was saved" in err and "Traceback" not in err
    assert snapshot(data) == before
    assert store_problems(data / "articles.db") == [] and stray_files(data) == []

    monkeypatch.undo()  # space freed: the next add works, no restart needed
    again = open_engine(data, embedder)
    [result] = again.add([path])
    assert result.ok and result.article is not None
    assert _cites(again, big, result.article.id)
    for e in (full, smaller_chunks, again):
        e.store.close()


def test_full_disk_when_saving_the_index_keeps_the_article_and_repairs_at_start(
    seeded: tuple[Any, list[SyntheticArticle]], tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store commits, the FAISS cache cannot be written: the article stays (the store is the truth),
    the user is told, no temp file remains, and the next start rebuilds the cache and says so."""
    engine, _ = seeded
    new = make_article(41, paragraphs=4)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    [result] = engine.add([str(new.write(tmp_path / "src"))])
    monkeypatch.undo()
    assert result.ok and result.article is not None
    assert any("Could not save the index file (No space left on device)" in n for n in engine.notices)
    assert stray_files(engine.data_dir) == []
    assert _cites(engine, new, result.article.id)  # this process still answers from it
    engine.store.close()

    fresh = open_engine(engine.data_dir, embedder)
    assert any(n.startswith("Repaired the search index") for n in fresh.notices), fresh.notices
    assert fresh.check() == []
    assert _cites(fresh, new, result.article.id)
    fresh.store.close()


# ---- read-only data dir, injected ----------------------------------------------------------------------


def _refuse_writes_in(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Opening any file of `directory` for writing fails with EROFS (the lock file, index temp files)."""
    real_open = os.open
    target = directory.resolve()
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def guarded(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & writing and Path(path).resolve().parent == target:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def _read_only_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite connections opened from now on are read-only (SQLITE_READONLY on any write)."""
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA query_only = ON")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_data_dir_turning_read_only_under_a_running_engine(
    seeded: tuple[Any, list[SyntheticArticle]],
    tmp_path: Path,
    embedder: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, articles = seeded
    data = engine.data_dir
    before = snapshot(data)
    index_files = {k: v for k, v in file_digests(data).items() if k.startswith("dense.")}
    new = make_article(42, paragraphs=4)
    path = str(new.write(tmp_path / "src"))

    _refuse_writes_in(monkeypatch, data)
    for write in (lambda: engine.add([path]), lambda: engine.remove(1), engine.reindex):
        with pytest.raises(UserError, match=r"Cannot write to the data directory .*Read-only file system"):
            write()
    assert _cites(engine, articles[0], 1)  # questions are still answered
    code = main(["--data-dir", str(data), "add", path])
    _, err = capsys.readouterr()
    assert code == 1 and "Read-only file system" in err and "nothing was saved" in err and "Traceback" not in err
    monkeypatch.undo()

    # The database refusing writes while the lock file is fine: this engine's connection, then a new process.
    engine.store._conn().execute("PRAGMA query_only = ON")
    [result] = engine.add([path])
    assert not result.ok and "is read-only: nothing was saved" in (result.error or "")
    with pytest.raises(UserError, match="is read-only: nothing was saved"):
        engine.remove(1)
    engine.store._conn().execute("PRAGMA query_only = OFF")
    _read_only_sqlite(monkeypatch)
    code = main(["--data-dir", str(data), "add", path])
    _, err = capsys.readouterr()
    assert code == 1 and "is read-only" in err and "Traceback" not in err
    monkeypatch.undo()

    assert snapshot(data) == before
    assert {k: v for k, v in file_digests(data).items() if k.startswith("dense.")} == index_files
    assert stray_files(data) == []
    [result] = engine.add([path])  # writable again: works without a restart
    assert result.ok and result.article is not None and _cites(engine, new, result.article.id)


# ---- real file systems (unshare) -----------------------------------------------------------------------

# Bind-mount the data dir read-only over itself inside a private mount namespace, then run the CLI.
_READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
# A 6 MB tmpfs holding a copy of the data dir, filled up to the last 64 KB, then `articlebot add`.
_FULL = """
set -e
mount -t tmpfs -o size=6m tmpfs "$MNT"
cp -a "$DATA"/. "$MNT"/
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true
truncate -s -64K "$MNT/filler"
set +e
"$@" --data-dir "$MNT" add "$BIG"
echo $? > "$OUT/code"
rm -f "$MNT/filler"
cp -a "$MNT"/. "$OUT/data"/
"""


@needs_unshare
def test_read_only_mount_every_write_command_refused_clearly(
    seeded: tuple[Any, list[SyntheticArticle]], tmp_path: Path
) -> None:
    engine, _ = seeded
    data = engine.data_dir
    engine.store.close()
    before = file_digests(data)
    path = str(make_article(43, paragraphs=4).write(tmp_path / "src"))
    for args in (["add", path], ["remove", "1"], ["reindex"]):
        proc = subprocess.run(
            ["unshare", "-rm", "sh", "-c", _READ_ONLY, "sh", str(data), *cli_command("--data-dir", str(data), *args)],
            env=ENV, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "is read-only" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert file_digests(data) == before


@needs_unshare
def test_full_file_system_add_is_refused_clearly_and_the_store_is_intact(
    seeded: tuple[Any, list[SyntheticArticle]], tmp_path: Path, embedder: Any
) -> None:
    engine, articles = seeded
    data = engine.data_dir
    engine.store.close()
    before = snapshot(data)
    big = make_article(44, paragraphs=40)
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (tmp_path / "mnt").mkdir()
    env = {**ENV, "MNT": str(tmp_path / "mnt"), "DATA": str(data), "OUT": str(out),
           "BIG": str(big.write(tmp_path / "src"))}  # fmt: skip
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _FULL, "sh", *cli_command()],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (out / "code").read_text().strip() == "1", proc.stderr
    assert "is full: nothing was saved" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    after = out / "data"
    assert snapshot(after) == before
    assert store_problems(after / "articles.db") == [] and stray_files(after) == []
    fresh = open_engine(after, embedder)
    assert fresh.check() == [] and _cites(fresh, articles[2], 3)
    fresh.store.close()
