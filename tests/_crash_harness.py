"""Kill writers at random moments and check what survives: shared by tests/test_crash.py and the soak script.

A campaign drives `tests._crash_driver` (one forked child per write), SIGKILLs the child at a random delay
within the write's measured duration, or lets it kill itself at a named narrow window, then restarts an
Engine on the data dir and checks the promises of issue 5: every confirmed article is present and
answerable, nothing is half-written, the index agrees with the store (or was repaired and said so), and
no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests._crash_corpus import SyntheticArticle, make_article

ROOT = Path(__file__).resolve().parent.parent
# Everything a data dir may hold after a restart; anything else is debris of a killed writer.
ALLOWED_FILES = {"articles.db", "articles.db-wal", "articles.db-shm", "dense.faiss", "dense.json", "write.lock"}
WORDS = (120, 90)  # reindex alternates the chunking, so a half-applied reindex would show as a mix
Log = Callable[[str], None]


# ---- the driver process -------------------------------------------------------------------------------


@dataclass
class OpRun:
    """One write: the events its child printed (all before it died) and how it ended."""

    cmd: dict[str, Any]
    events: list[dict[str, Any]]
    killed: bool  # ended by SIGKILL (ours or its own at a kill point)
    after_done: bool  # the kill came after the write had finished and printed its confirmations
    seconds: float | None  # start -> done, when the write finished

    def of(self, ev: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ev"] == ev]


class Driver:
    """The `tests._crash_driver` process, talked to over pipes; every wait is bounded.

    persistent=True: one Engine for all commands (a stand-in for the running bot), used with
    `send`/`until`/`call`; otherwise a fork per write, used with `run`.
    """

    def __init__(self, data_dir: Path, log_path: Path, startup_timeout_s: float = 240.0, persistent: bool = False):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self.data_dir = data_dir
        self._stderr = log_path.open("wb")
        argv = [sys.executable, "-m", "tests._crash_driver", "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            argv + (["--persistent"] if persistent else []),
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )  # fmt: skip
        self.log_path = log_path
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pending: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(time.monotonic() + startup_timeout_s, "ready")
        self.load_seconds = float(ready["load_seconds"])
        if persistent:
            self._next(time.monotonic() + startup_timeout_s, "engine")

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def until(self, event: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait for the next `event` (persistent mode); a crash of the engine is raised, a UserError kept."""
        return self._next(time.monotonic() + timeout_s, event)

    def call(self, cmd: dict[str, Any], timeout_s: float = 180.0) -> list[dict[str, Any]]:
        """One command in persistent mode: every event it printed, up to and including `done`."""
        self.send(cmd)
        return self.finish(timeout_s)

    def finish(self, timeout_s: float = 180.0) -> list[dict[str, Any]]:
        """The events of the command sent last, up to and including its `done`."""
        deadline = time.monotonic() + timeout_s
        events = []
        while True:
            ev = self._next(deadline, "start", "added", "duplicate", "failed", "removed", "reindexed", "answer",
                            "locked", "released", "error", "done")  # fmt: skip
            events.append(ev)
            if ev["ev"] == "done":
                return events

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self._events.put(json.loads(raw))
            except ValueError:
                self._events.put({"ev": "garbage", "line": raw.decode("utf-8", "replace")})
        self._events.put(None)

    def _next(self, deadline: float, *wanted: str) -> dict[str, Any]:
        """The next event of one of the `wanted` kinds; others are kept for a later call, in order."""
        for i, ev in enumerate(self._pending):
            if ev["ev"] in wanted:
                return self._pending.pop(i)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"driver: no {'/'.join(wanted)} event in time; see {self.log_path}")
            try:
                got = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if got is None:
                raise RuntimeError(f"driver exited (code {self.proc.poll()}); see {self.log_path}")
            if got["ev"] == "error" and not got.get("user_error") and "error" not in wanted:
                raise RuntimeError(f"driver child crashed:\n{got['message']}")
            if got["ev"] in wanted:
                return got
            self._pending.append(got)

    def run(self, cmd: dict[str, Any], kill_after: float | None = None, timeout_s: float = 300.0) -> OpRun:
        """Send one write; SIGKILL its child `kill_after` s after it starts (None: let it finish)."""
        deadline = time.monotonic() + timeout_s
        cmd = {**cmd, "linger": bool(kill_after is not None or cmd.get("kill_at"))}
        self.send(cmd)
        pid = int(self._next(deadline, "child")["child"])
        start = self._next(deadline, "start", "exit")
        events = [start]
        done_at: float | None = None
        seconds = None
        if start["ev"] == "start":
            t_start = time.monotonic()
            kill_at = t_start + kill_after if kill_after is not None else None
            while True:  # collect until exit; kill when our time comes (or at `done` for a missed point)
                if kill_at is not None and time.monotonic() >= kill_at:
                    _kill(pid)
                    kill_at = None
                wait_until = min(deadline, kill_at) if kill_at is not None else deadline
                try:
                    ev = self._next(wait_until, "exit", "done", "added", "duplicate", "failed", "removed",
                                    "reindexed", "error")  # fmt: skip
                except TimeoutError:
                    if kill_at is not None and time.monotonic() < deadline:
                        continue
                    _kill(pid)
                    raise
                events.append(ev)
                if ev["ev"] == "done":
                    done_at = time.monotonic()
                    seconds = float(ev["seconds"])
                    if cmd["linger"] and kill_at is None:
                        _kill(pid)  # a kill point that was never reached: the write is complete anyway
                if ev["ev"] == "exit":
                    break
        killed = events[-1].get("signal") == signal.SIGKILL
        return OpRun(cmd, events, killed, killed and done_at is not None, seconds)

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=30)
        finally:
            self._stderr.close()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


ADDED_LINE = re.compile(r"^added\s+#(\d+)\s+(.*?)\s+\(\d+ passages?\)$", re.M)


def cli_command(*args: str) -> list[str]:
    """The installed `articlebot` console script (or the module, outside a venv)."""
    script = Path(sys.executable).with_name("articlebot")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "bot.cli", *args]


def kill_cli_add(
    data_dir: Path, sources: list[str], *, chunk_words: int, delay_s: float, work: Path, timeout_s: float = 300.0
) -> tuple[OpRun, int | None]:
    """Run the real `articlebot add` and SIGKILL it `delay_s` after its first article is committed.

    Returns the run (its `added` confirmations parsed from what the CLI printed) and how many articles
    it had committed when the kill was sent (None: it finished first). The trigger is a reader polling
    the database every 5 ms: a kill timed from process start would nearly always land in model loading.
    """
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    config["index"]["chunk_words"] = chunk_words  # the store's chunking, so the adds match it
    config_path = work / f"config-{chunk_words}.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = cli_command("--config", str(config_path), "--data-dir", str(data_dir), "add", *sources)
    reader = sqlite3.connect(f"file:{data_dir / 'articles.db'}?mode=ro", uri=True)
    start = reader.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    committed: int | None = None
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            count = reader.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
            if count > start:
                time.sleep(delay_s)
                committed = reader.execute("SELECT COUNT(*) FROM articles").fetchone()[0] - start
                _kill(proc.pid)
                break
            time.sleep(0.005)
    finally:
        reader.close()
        if proc.poll() is None and committed is None:
            _kill(proc.pid)
    out, err = proc.communicate(timeout=60)
    events: list[dict[str, Any]] = [
        {"ev": "added", "id": int(i), "title": t} for i, t in ADDED_LINE.findall(out.decode("utf-8", "replace"))
    ]
    if proc.returncode not in (0, -signal.SIGKILL):
        events.append({"ev": "error", "message": err.decode("utf-8", "replace")[-2000:]})
    killed = proc.returncode == -signal.SIGKILL
    cmd = {"op": "add", "sources": sources, "cli": True}
    return OpRun(cmd, events, killed, killed and bool(events), None), committed


# ---- checks -------------------------------------------------------------------------------------------


def stray_files(data_dir: Path) -> list[str]:
    """Files in the data dir that are not part of a store (temp files of a killed writer, journals)."""
    return sorted(p.name for p in data_dir.iterdir() if p.name not in ALLOWED_FILES)


def store_problems(db_path: Path, chunk_words: int | None = None) -> list[str]:
    """Half-written data, read straight from SQLite: articles without passages, passages that are not
    slices of their article, FTS rows out of step with the passages, a damaged file."""
    from index.chunking import chunk_text

    problems: list[str] = []
    conn = sqlite3.connect(db_path)
    try:
        if (ok := conn.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"sqlite integrity_check: {ok}")
        try:  # FTS5 against its content table (rank 1: compare with the external content too)
            conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            problems.append(f"FTS integrity-check failed: {exc}")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        words = chunk_words or int(meta.get("chunk_words", 120))
        overlap = int(meta.get("overlap_sentences", 1))
        dim = int(meta.get("dim", 384))
        articles = conn.execute("SELECT id, title, text FROM articles ORDER BY id").fetchall()
        rows = conn.execute('SELECT id, article_id, seq, start, "end", text, length(vector) FROM chunks').fetchall()
        by_article: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_article.setdefault(r[1], []).append(r)
        ids = {a[0] for a in articles}
        if orphans := sorted({r[1] for r in rows} - ids):
            problems.append(f"passages of missing articles {orphans}")
        for aid, title, text in articles:
            got = sorted(by_article.get(aid, []), key=lambda r: r[2])
            if not got:
                problems.append(f"article #{aid} {title!r} has no passages")
                continue
            want = chunk_text(aid, text, words, overlap)
            if [(r[2], r[3], r[4], r[5]) for r in got] != [(c.seq, c.start, c.end, c.text) for c in want]:
                problems.append(f"article #{aid}: passages are not its text cut at chunk_words={words}")
            if any(text[r[3] : r[4]] != r[5] for r in got):
                problems.append(f"article #{aid}: a passage is not a slice of the article text")
            if any(r[6] != 4 * dim for r in got):
                problems.append(f"article #{aid}: a vector of the wrong size")
        fts_ids = sorted(r[0] for r in conn.execute("SELECT id FROM chunks_fts_docsize"))
        if fts_ids != sorted(r[0] for r in rows):
            problems.append(f"FTS holds {len(fts_ids)} passages, the chunks table {len(rows)}")
    finally:
        conn.close()
    return problems


def snapshot(data_dir: Path) -> dict[str, Any]:
    """The store's logical content (articles, passages, vectors, meta), to show a failed write changed nothing."""
    conn = sqlite3.connect(f"file:{data_dir / 'articles.db'}?mode=ro", uri=True)
    try:
        return {
            "articles": conn.execute("SELECT id, title, content_hash, text FROM articles ORDER BY id").fetchall(),
            "chunks": conn.execute(
                'SELECT id, article_id, seq, start, "end", text, vector FROM chunks ORDER BY id'
            ).fetchall(),
            "meta": sorted(conn.execute("SELECT key, value FROM meta")),
        }
    finally:
        conn.close()


def file_digests(data_dir: Path) -> dict[str, str]:
    """sha256 of every file in the data dir, to show a refused write did not touch a byte."""
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data_dir.iterdir()) if p.is_file()}


def dense_file_agrees(data_dir: Path) -> bool:
    """Does the FAISS cache on disk hold exactly the stored passages (and match its manifest)?"""
    from index.dense import DenseIndex

    conn = sqlite3.connect(f"file:{data_dir / 'articles.db'}?mode=ro", uri=True)
    try:
        ids = np.asarray([r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
    finally:
        conn.close()
    try:
        dense, _ = DenseIndex.load(data_dir / "dense.faiss")
    except Exception:
        return False
    return bool(np.array_equal(dense.ids(), ids))


def open_engine(data_dir: Path, embedder: Any, chunk_words: int = WORDS[0]) -> Any:
    from engine.config import load_settings
    from engine.service import Engine

    settings = load_settings(ROOT / "config.yaml", data_dir)
    settings = settings.model_copy(update={"index": settings.index.model_copy(update={"chunk_words": chunk_words})})
    return Engine(settings, embedder=embedder)


def retrieval_problems(engine: Any, articles: dict[int, SyntheticArticle], ask: set[int]) -> list[str]:
    """Each article's question finds one of its passages first, by meaning (the dense index) and by
    words (FTS); for the ids in `ask`, the full answer cites it with the fact."""
    problems: list[str] = []
    if not articles:
        return problems
    ids = sorted(articles)
    qvecs = engine.embedder.encode([articles[i].question for i in ids])
    for aid, qvec in zip(ids, qvecs, strict=True):
        art = articles[aid]
        for mode in ("dense", "bm25"):
            hits = engine.retriever.search_with_vector(art.question, qvec, 5, mode=mode)
            found = [h.chunk.article_id for h in hits[: 1 if mode == "bm25" else 5]]
            if aid not in found:
                problems.append(f"article #{aid}: its question does not find it in {mode} search ({found})")
        if aid in ask:
            answer = engine.ask(art.question)
            if answer.abstained or not any(c.article_id == aid and art.answer in c.quote for c in answer.citations):
                problems.append(f"article #{aid}: asked {art.question!r}, got {answer.text!r}")
    return problems


# ---- the campaign -------------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    kills: int = 0
    ops: Counter[str] = field(default_factory=Counter)  # killed ops by kind
    points: Counter[str] = field(default_factory=Counter)  # targeted kill points hit
    mid_write: int = 0  # killed before its confirmation
    after_done: int = 0  # killed after it had confirmed
    confirmed_adds: int = 0
    confirmed_removes: int = 0
    unconfirmed_commits: int = 0  # committed by a killed child before its confirmation (allowed)
    stale_index_found: int = 0  # restarts that found dense.faiss out of step with the store
    repaired_with_notice: int = 0
    strays_found: list[str] = field(default_factory=list)  # debris seen before a restart
    restarts: int = 0
    max_articles: int = 0
    load_seconds: float = 0.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {self.kills} kills ({dict(self.ops)}; targeted {dict(self.points)}; "
            f"{self.mid_write} mid-write, {self.after_done} after confirming), {self.restarts} restarts, "
            f"{self.confirmed_adds} confirmed adds, {self.confirmed_removes} confirmed removes, "
            f"{self.unconfirmed_commits} unconfirmed commits kept, stale index at {self.stale_index_found} "
            f"restarts ({self.repaired_with_notice} repaired with a notice), "
            f"debris before restart {len(self.strays_found)} {sorted(set(self.strays_found))[:4]}, "
            f"{self.seconds:.0f} s (driver load {self.load_seconds:.1f} s); problems: {len(self.problems)}"
        )


# (op, kill point): the narrow windows a random delay rarely hits. Any 4 in a row (cyclically) hold an add,
# a remove and a reindex, and a point that leaves a temp file (dense_temp or between_renames).
TARGETS = [
    ("add_batch", "in_transaction"),
    ("remove", "after_commit"),
    ("reindex", "between_renames"),
    ("add_one", "dense_temp"),
    ("add_dir", "after_commit"),
    ("remove", "dense_temp"),
    ("reindex", "in_transaction"),
    ("add_one", "between_renames"),
    ("add_batch", "after_commit"),
    ("remove", "in_transaction"),
    ("reindex", "dense_temp"),
    ("add_dir", "between_renames"),
]
KINDS = ["add_one", "add_batch", "add_dir", "remove", "reindex"]


class Campaign:
    def __init__(self, work: Path, embedder: Any, seed: int, log: Log | None = None, max_articles: int = 10):
        self.work = work
        self.data_dir = work / "data"
        self.src = work / "src"
        self.embedder = embedder
        self.rng = random.Random(seed)
        self.report = Report(seed=seed)
        self.log = log or (lambda _msg: None)
        self.max_articles = max_articles
        self.words = WORDS[0]
        self.next_index = 0
        self.by_title: dict[str, SyntheticArticle] = {}
        self.confirmed: dict[int, SyntheticArticle] = {}  # confirmed adds, minus confirmed removes
        self.gone: set[int] = set()  # confirmed removes
        self.maybe_gone: int | None = None  # the target of a remove killed before it confirmed
        self.present: dict[int, SyntheticArticle] = {}
        self.durations: dict[str, float] = {}  # per kind: seconds per source (adds) or per article

    # -- ops --

    def _new_articles(self, n: int) -> list[SyntheticArticle]:
        out = []
        for _ in range(n):
            art = make_article(self.next_index, paragraphs=4)
            self.next_index += 1
            self.by_title[art.title] = art
            out.append(art)
        return out

    def _command(self, kind: str) -> tuple[dict[str, Any], float]:
        """The command for `kind` and its expected duration (s)."""
        if kind == "remove":
            victim = self.rng.choice(sorted(self.present))
            return {"op": "remove", "id": victim, "chunk_words": self.words}, self.durations.get("remove", 0.5)
        if kind == "reindex":
            other = WORDS[1] if self.words == WORDS[0] else WORDS[0]
            per = self.durations.get("reindex", 1.0)
            return {"op": "reindex", "chunk_words": other}, per * max(1, len(self.present))
        n = {"add_one": 1, "add_batch": 3, "add_dir": 3}[kind]
        arts = self._new_articles(n)
        if kind == "add_dir":
            folder = self.src / f"batch-{arts[0].index:03d}"
            for a in arts:
                a.write(folder)
            sources = [str(folder)]
        else:
            sources = [str(a.write(self.src)) for a in arts]
        return {"op": "add", "sources": sources, "chunk_words": self.words}, self.durations.get("add", 1.0) * n

    def _learn(self, kind: str, run: OpRun) -> None:
        """Fold a completed write's duration into the estimate used to draw kill delays."""
        if run.seconds is None:
            return
        if kind == "reindex":
            value = run.seconds / max(1, len(self.present))
        elif kind == "remove":
            value = run.seconds
        else:
            kind, value = "add", run.seconds / max(1, len(run.of("added")) + len(run.of("duplicate")))
        old = self.durations.get(kind)
        self.durations[kind] = value if old is None else 0.5 * old + 0.5 * value

    def _account(self, run: OpRun) -> None:
        """What the user was told before the kill becomes what the store must hold."""
        for ev in run.of("added"):
            self.confirmed[int(ev["id"])] = self.by_title[ev["title"]]
            self.report.confirmed_adds += 1
        for ev in run.of("removed"):
            self.confirmed.pop(int(ev["id"]), None)
            self.gone.add(int(ev["id"]))
            self.report.confirmed_removes += 1
        if run.cmd["op"] == "remove" and not run.of("removed"):
            self.maybe_gone = int(run.cmd["id"])  # killed before confirming: either outcome is allowed
        for ev in run.of("reindexed"):
            self.words = int(ev["chunk_words"])
        for ev in run.of("error"):
            self.report.problems.append(f"{run.cmd['op']} failed: {ev['message'][:300]}")

    def _cli_kill(self) -> OpRun:
        """The real console script adding a batch of 6, killed 0-10 ms after its first commit."""
        arts = self._new_articles(6)
        sources = [str(a.write(self.src)) for a in arts]
        run, committed = kill_cli_add(
            self.data_dir, sources, chunk_words=self.words, delay_s=self.rng.uniform(0.0, 0.01), work=self.work
        )
        self.report.points["cli_mid_batch"] += committed is not None and not run.after_done
        return run

    # -- restart and check --

    def restart_and_check(self, run: OpRun | None, ask_new: bool = True) -> None:
        before = set(self.present)
        strays = stray_files(self.data_dir) if self.data_dir.exists() else []
        self.report.strays_found.extend(strays)
        stale = not dense_file_agrees(self.data_dir)
        self.report.stale_index_found += stale
        conn = sqlite3.connect(f"file:{self.data_dir / 'articles.db'}?mode=ro", uri=True)
        try:
            meta_words = int(dict(conn.execute("SELECT key, value FROM meta")).get("chunk_words", WORDS[0]))
        finally:
            conn.close()
        if run is not None and run.of("reindexed") and meta_words != self.words:
            self.report.problems.append(f"reindex confirmed to {self.words} words but the store has {meta_words}")
        self.words = meta_words
        engine = open_engine(self.data_dir, self.embedder, self.words)
        self.report.restarts += 1
        try:
            problems: list[str] = []
            repaired = [n for n in engine.notices if n.startswith("Repaired")]
            if stale and not repaired:
                problems.append(f"the index file disagreed with the store but no repair was reported {engine.notices}")
            self.report.repaired_with_notice += bool(stale and repaired)
            problems += engine.check()
            if left := stray_files(self.data_dir):
                problems.append(f"files left in the data dir after a restart: {left} (before: {strays})")
            problems += store_problems(self.data_dir / "articles.db", self.words)
            stored = {a.id: a for a in engine.list_articles()}
            if self.maybe_gone is not None and self.maybe_gone not in stored:
                self.confirmed.pop(self.maybe_gone, None)
                self.report.unconfirmed_commits += 1
            self.maybe_gone = None
            for aid, art in self.confirmed.items():
                if aid not in stored or stored[aid].title != art.title:
                    problems.append(f"confirmed article #{aid} {art.title!r} is missing after the kill")
            for aid in self.gone & set(stored):
                problems.append(f"article #{aid} was confirmed removed but is back")
            unknown = [a.title for a in stored.values() if a.title not in self.by_title]
            if unknown:
                problems.append(f"articles nobody added: {unknown}")
            self.present = {aid: self.by_title[a.title] for aid, a in stored.items() if a.title in self.by_title}
            new_unconfirmed = set(self.present) - before - set(self.confirmed)
            self.report.unconfirmed_commits += len(new_unconfirmed)
            # The full answer step for the newest confirmed article (retrieval is checked for every one).
            confirmed_now = sorted(int(e["id"]) for e in run.of("added")) if run is not None else []
            ask = {confirmed_now[-1]} if confirmed_now and ask_new else set()
            problems += retrieval_problems(engine, self.present, ask)
            if not self.present and self.confirmed:
                problems.append("the store is empty")
            if engine.count() and len(engine.dense) != engine.store.chunk_count():
                problems.append("the loaded index does not hold every passage")
        finally:
            engine.store.close()
        self.report.max_articles = max(self.report.max_articles, len(self.present))
        where = f"after {run.cmd if run else 'setup'}"
        self.report.problems.extend(f"{where}: {p}" for p in problems)

    # -- the loop --

    def _kind(self, wanted: str) -> str:
        """A remove needs victims: with fewer than 3 articles, add one instead."""
        if wanted == "remove" and len(self.present) < 3:
            return "add_one"
        return wanted

    def _make_room(self, driver: Driver, kind: str) -> None:
        """Plain (not killed) removes before an add would pass max_articles, so reindex stays short."""
        size = {"add_one": 1, "add_batch": 3, "add_dir": 3, "add_cli": 6}.get(kind, 0)
        for _ in range(8):
            if not size or len(self.present) + size <= self.max_articles:
                return
            cleanup = driver.run({"op": "remove", "id": max(self.present), "chunk_words": self.words})
            self._account(cleanup)
            self.restart_and_check(cleanup, ask_new=False)

    def run(self, kills: int, deadline_s: float, targeted_every: int = 2, cli_every: int = 0) -> Report:
        """Baseline writes (measured, not killed), then `kills` killed writes, each followed by a restart.

        Every `targeted_every`-th kill hits a named window; every `cli_every`-th (if set) kills the real
        `articlebot add` console script on a batch instead of the driver."""
        t0 = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        driver = Driver(self.data_dir, self.work / "driver.log")
        self.report.load_seconds = driver.load_seconds
        try:
            for kind in ("add_batch", "add_one", "remove", "reindex"):
                cmd, _ = self._command(self._kind(kind))
                run = driver.run(cmd)
                self._learn(kind, run)
                self._account(run)
                self.restart_and_check(run, ask_new=kind == "add_one")
                self.log(f"baseline {kind}: {run.seconds or 0:.2f} s")
            first_target = self.rng.randrange(len(TARGETS))
            kinds: list[str] = []
            for k in range(kills):
                if time.monotonic() - t0 > deadline_s:
                    self.report.problems.append(f"deadline of {deadline_s:.0f} s reached after {k} kills")
                    break
                if self.report.problems:
                    break
                point = None
                if cli_every and k % cli_every == cli_every - 1:
                    self._make_room(driver, "add_cli")
                    run = self._cli_kill()
                    self._account(run)
                    self.report.kills += run.killed
                    self.report.ops["add_cli"] += 1
                    self.report.after_done += run.after_done
                    self.report.mid_write += run.killed and not run.after_done
                    self.restart_and_check(run)
                    self.log(f"kill {k + 1}/{kills}: real CLI add; {len(self.present)} articles")
                    continue
                if targeted_every and k % targeted_every == 0:
                    kind, point = TARGETS[(first_target + k // targeted_every) % len(TARGETS)]
                else:
                    if not kinds:
                        kinds = self.rng.sample(KINDS, len(KINDS))
                    kind = kinds.pop()
                kind = self._kind(kind)
                self._make_room(driver, kind)
                cmd, expected = self._command(kind)
                if point:
                    cmd["kill_at"] = point
                    run = driver.run(cmd)
                else:
                    delay = self.rng.uniform(0.0, 1.25 * expected)  # about 1 in 5 after it confirmed
                    run = driver.run(cmd, kill_after=delay)
                self._learn(kind, run)
                self._account(run)
                self.report.kills += run.killed
                self.report.ops[kind] += 1
                if point and run.killed and not run.after_done:
                    self.report.points[point] += 1
                self.report.after_done += run.after_done
                self.report.mid_write += run.killed and not run.after_done
                self.restart_and_check(run)
                self.log(
                    f"kill {k + 1}/{kills}: {kind} {point or 'random'} "
                    f"{'after confirming' if run.after_done else 'mid-write'}; {len(self.present)} articles"
                )
        finally:
            driver.close()
            self.report.seconds = time.monotonic() - t0
        return self.report
