"""A process to kill: runs one Engine write per command, in a forked child that the harness SIGKILLs.

    python -m tests._crash_driver --data-dir DIR

Loading the model takes seconds, a write a fraction of that, so a process started per kill would mostly
die while loading. This one loads the model once, never runs it (torch must not have run before a fork),
then for each JSON command read from stdin forks a child that opens a fresh `Engine` on the data dir,
announces `start`, performs the write exactly as `articlebot add/remove/reindex` does, prints the same
confirmations the CLI prints (`added #N`, `removed #N`, `reindexed`) and then waits to be killed. The
child is a real process with its own SQLite connections, flock and file descriptors; the kill is a real
SIGKILL from outside.

Commands (one JSON object per line):
    {"op": "add", "sources": [...], "chunk_words": 120}
    {"op": "remove", "id": 3, "chunk_words": 120}
    {"op": "reindex", "chunk_words": 90}
optional keys: "kill_at" (a point where the child kills itself: "in_transaction", "after_commit",
"dense_temp", "between_renames"), "linger" (default true: after `done`, wait up to 120 s to be killed).
Events printed (JSON lines): ready, child, start, added, duplicate, failed, removed, reindexed, error,
done, exit.

With --persistent there is no fork: one Engine serves every command, like the running bot, for the
two-process tests; it also takes {"op": "ask", "question": ...} (event `answer`) and
{"op": "hold_lock", "seconds": 3} (holds the writers' lock: events `locked`, `released`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
KILL_POINTS = ("in_transaction", "after_commit", "dense_temp", "between_renames")
LINGER_S = 120.0


def emit(event: str, **fields: Any) -> None:
    """One JSON line in a single write(2), so the parent's and the child's lines never interleave."""
    line = json.dumps({"ev": event, "pid": os.getpid(), "t": time.monotonic(), **fields}) + "\n"
    os.write(1, line.encode("utf-8"))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    """Make this child SIGKILL itself at `point`: the narrow windows a random delay rarely hits."""
    import corpus.store
    import index.dense

    if point in ("in_transaction", "after_commit"):
        original = corpus.store.Store._write

        @contextlib.contextmanager
        def write(self: Any, bump: bool = True) -> Iterator[Any]:
            with original(self, bump) as conn:
                yield conn
                if bump and point == "in_transaction":
                    _die()  # rows written, COMMIT not reached
            if bump and point == "after_commit":
                _die()  # committed; the dense cache is not updated or saved yet

        corpus.store.Store._write = write  # type: ignore[method-assign]
    elif point in ("dense_temp", "between_renames"):
        real_replace = os.replace

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            name = Path(dst).name
            if (point == "dense_temp" and name.endswith(".faiss")) or (
                point == "between_renames" and name.endswith(".json")
            ):
                _die()  # a temp file is on disk; for between_renames the new .faiss is already in place
            real_replace(src, dst, *args, **kwargs)

        index.dense.os.replace = replace  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown kill point {point!r}; use one of {KILL_POINTS}")


def _settings(data_dir: Path, chunk_words: int | None) -> Any:
    from engine.config import load_settings

    settings = load_settings(ROOT / "config.yaml", data_dir)
    if chunk_words:
        index = settings.index.model_copy(update={"chunk_words": int(chunk_words)})
        settings = settings.model_copy(update={"index": index})
    return settings


def perform(engine: Any, cmd: dict[str, Any]) -> None:
    """One command on `engine`, reported as the CLI reports it (confirmations after the call returns)."""
    from engine.errors import UserError
    from engine.locking import data_dir_lock

    t0 = time.monotonic()
    emit("start", op=cmd["op"], notices=engine.notices)
    try:
        if cmd["op"] == "add":
            for r in engine.add(cmd["sources"], added_by=cmd.get("by", "crash-test")):
                if r.article:
                    emit("added", id=r.article.id, title=r.article.title, source=r.source)
                elif r.duplicate:
                    emit("duplicate", id=r.duplicate.id, source=r.source)
                else:
                    emit("failed", source=r.source, error=r.error)
        elif cmd["op"] == "remove":
            article = engine.remove(int(cmd["id"]))
            emit("removed", id=article.id, title=article.title)
        elif cmd["op"] == "reindex":
            report = engine.reindex()
            emit("reindexed", articles=report.articles, passages=report.passages,
                 chunk_words=engine.settings.index.chunk_words)  # fmt: skip
        elif cmd["op"] == "ask":
            answer = engine.ask(cmd["question"])
            emit("answer", abstained=answer.abstained, text=answer.text,
                 articles=[c.article_id for c in answer.citations])  # fmt: skip
        elif cmd["op"] == "hold_lock":  # a long write in another process, as seen by the others
            with data_dir_lock(engine.data_dir):
                emit("locked")
                time.sleep(float(cmd["seconds"]))
                emit("released")
        else:
            raise ValueError(f"unknown op {cmd['op']!r}")
    except UserError as exc:
        emit("error", message=str(exc), user_error=True)
    except Exception:
        emit("error", message=traceback.format_exc(), user_error=False)
    emit("done", seconds=time.monotonic() - t0)


def run_child(cmd: dict[str, Any], data_dir: Path, embedder: Any) -> None:
    """The forked child: a fresh Engine, one write, the CLI's confirmations, then wait for the kill."""
    from engine.service import Engine

    signal.alarm(int(LINGER_S) + 300)  # never outlive a harness that died
    engine = Engine(_settings(data_dir, cmd.get("chunk_words")), embedder=embedder)
    if cmd.get("kill_at"):
        _arm(cmd["kill_at"])
    perform(engine, cmd)
    if cmd.get("linger", True):
        deadline = time.monotonic() + LINGER_S
        while time.monotonic() < deadline:
            time.sleep(0.05)


def serve_persistent(data_dir: Path, embedder: Any) -> None:
    """One long-lived Engine, like the bot: it writes and answers while other processes write too."""
    from engine.service import Engine

    engine = Engine(_settings(data_dir, None), embedder=embedder)
    emit("engine", notices=engine.notices)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        perform(engine, cmd)
    engine.store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--persistent", action="store_true", help="one Engine for every command, no fork")
    args = p.parse_args(argv)
    from index.embedder import Embedder

    t0 = time.monotonic()
    s = _settings(args.data_dir, None).index
    embedder = Embedder(s.model, s.backend, s.batch_size)  # loaded, never run here (fork safety)
    emit("ready", load_seconds=time.monotonic() - t0)
    if args.persistent:
        serve_persistent(args.data_dir, embedder)
        return 0
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_child(cmd, args.data_dir, embedder)
            except BaseException:
                emit("error", message=traceback.format_exc(), user_error=False)
                code = 1
            os._exit(code)
        emit("child", child=pid)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            emit("exit", child=pid, signal=os.WTERMSIG(status))
        else:
            emit("exit", child=pid, code=os.WEXITSTATUS(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
