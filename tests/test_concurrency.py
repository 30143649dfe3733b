"""Two processes on one data dir (issue 5): `articlebot add` from a shell while the bot writes and answers.

The "bot" is tests/_crash_driver.py --persistent: one long-lived Engine in its own process, as in
`articlebot serve`, taking commands over a pipe. Writers are serialised by the flock on write.lock: a second
writer waits (and after the timeout is told so, clearly); readers never wait; the bot picks up another
process's writes on its next question, without a restart.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import corpus.store
import engine.service
from engine.errors import UserError
from engine.locking import data_dir_lock
from tests._crash_corpus import SyntheticArticle, make_article
from tests._crash_harness import (
    ADDED_LINE,
    Driver,
    cli_command,
    open_engine,
    retrieval_problems,
    snapshot,
    store_problems,
    stray_files,
)

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    """The running bot: an Engine in another process, loaded once for this module."""
    work = tmp_path_factory.mktemp("two-processes")
    (work / "data").mkdir()
    driver = Driver(work / "data", work / "bot.log", persistent=True)
    yield driver
    driver.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return tmp_path / "src"


def _ok(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors = [e["message"] for e in events if e["ev"] in ("error", "failed")]
    assert not errors, errors
    return events


def _bot_add(bot: Driver, articles: list[SyntheticArticle], src: Path) -> dict[str, int]:
    events = _ok(bot.call({"op": "add", "sources": [str(a.write(src)) for a in articles]}))
    return {e["title"]: int(e["id"]) for e in events if e["ev"] == "added"}


def _bot_cites(bot: Driver, article: SyntheticArticle) -> list[int]:
    """The article ids the bot's answer to `article`'s question cites."""
    [answer] = [e for e in _ok(bot.call({"op": "ask", "question": article.question})) if e["ev"] == "answer"]
    return [] if answer["abstained"] else list(answer["articles"])


def _local(data_dir: Path, embedder: Any) -> Any:
    """An Engine in the test process: a second process's view of the same data dir."""
    return open_engine(data_dir, embedder)


def test_cli_add_while_the_bot_writes_and_answers(bot: Driver, src: Path, embedder: Any) -> None:
    seed = [make_article(i, paragraphs=4) for i in range(100, 103)]
    seed_ids = _bot_add(bot, seed, src)
    from_cli = [make_article(i, paragraphs=4) for i in (110, 111)]
    from_bot = [make_article(i, paragraphs=4) for i in range(120, 132)]
    proc = subprocess.Popen(
        cli_command("--data-dir", str(bot.data_dir), "add", *(str(a.write(src)) for a in from_cli)),
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    writes = asks = 0
    deadline = time.monotonic() + 300
    pending = iter(from_bot)
    while proc.poll() is None and time.monotonic() < deadline:  # the bot keeps writing and answering
        article = next(pending, None)
        if article is not None:
            assert article.title in _bot_add(bot, [article], src)
            writes += 1
        asked = seed[asks % len(seed)]
        assert seed_ids[asked.title] in _bot_cites(bot, asked)
        asks += 1
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert writes >= 1, "the bot did not write while the CLI ran"
    cli_ids = {title: int(i) for i, title in ADDED_LINE.findall(out)}
    assert set(cli_ids) == {a.title for a in from_cli}, out

    for article in from_cli:  # the running bot answers from the CLI's articles, no restart
        assert cli_ids[article.title] in _bot_cites(bot, article)

    fresh = _local(bot.data_dir, embedder)
    try:
        stored = {a.id: a.title for a in fresh.list_articles()}
        written = [*seed, *from_bot[:writes], *from_cli]
        assert sorted(t for t in stored.values() if t in {a.title for a in written}) == sorted(
            a.title for a in written
        )  # each exactly once
        assert fresh.check() == [] and store_problems(bot.data_dir / "articles.db") == []
        assert stray_files(bot.data_dir) == []
        ids = {i: a for a in written for i, t in stored.items() if t == a.title}
        assert retrieval_problems(fresh, ids, ask=set()) == []
    finally:
        fresh.store.close()


def test_a_second_writer_waits_and_questions_do_not(bot: Driver, src: Path, embedder: Any) -> None:
    known = make_article(140, paragraphs=4)
    known_id = _bot_add(bot, [known], src)[known.title]
    new = make_article(141, paragraphs=4)
    path = str(new.write(src))
    local = _local(bot.data_dir, embedder)
    try:
        bot.send({"op": "hold_lock", "seconds": 6})
        bot.until("locked")
        answer = local.ask(known.question)  # a reader: never waits for the writers' lock
        asked_at = time.monotonic()
        [result] = local.add([path])  # a writer: waits for the other process to finish
        added_at = time.monotonic()
        released = bot.until("released")
        bot.until("done")
        assert not answer.abstained and known_id in [c.article_id for c in answer.citations]
        assert asked_at < released["t"] <= added_at  # CLOCK_MONOTONIC is system-wide
        assert result.ok and result.article is not None
        assert result.article.id in _bot_cites(bot, new)  # the bot sees it on its next question

        local.remove(result.article.id)  # and stops citing what another process removed
        assert result.article.id not in _bot_cites(bot, new)
    finally:
        local.store.close()


def test_a_writer_that_cannot_get_the_lock_is_told_clearly(
    bot: Driver, src: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = make_article(145, paragraphs=4)
    _bot_add(bot, [seed], src)
    new = make_article(146, paragraphs=4)
    path = str(new.write(src))
    short: Callable[..., Any] = functools.partial(data_dir_lock, timeout_s=0.5)
    monkeypatch.setattr(engine.service, "data_dir_lock", short)  # 120 s in production
    local = _local(bot.data_dir, embedder)
    try:
        before = snapshot(bot.data_dir)
        bot.send({"op": "hold_lock", "seconds": 4})
        bot.until("locked")
        busy = rf"Another articlebot process is writing to {re.escape(str(bot.data_dir))}; try again in a moment"
        with pytest.raises(UserError, match=busy):
            local.add([path])
        with pytest.raises(UserError, match=busy):
            local.remove(1)
        bot.until("released")
        bot.until("done")
        assert snapshot(bot.data_dir) == before
        [result] = local.add([path])  # once the other writer is done, the same command works
        assert result.ok
    finally:
        local.store.close()


def test_both_processes_add_the_same_article_at_once(bot: Driver, src: Path, embedder: Any) -> None:
    article = make_article(150, paragraphs=4)
    path = str(article.write(src))
    local = _local(bot.data_dir, embedder)
    try:
        bot.send({"op": "add", "sources": [path]})
        [mine] = local.add([path])
        events = bot.finish()
        theirs = [e for e in events if e["ev"] in ("added", "duplicate")]
        assert len(theirs) == 1, events
        stored = [a for a in local.list_articles() if a.title == article.title]
        assert len(stored) == 1
        if mine.ok:
            assert theirs[0]["ev"] == "duplicate" and theirs[0]["id"] == stored[0].id
        else:
            assert mine.duplicate is not None and mine.duplicate.id == stored[0].id
            assert theirs[0]["ev"] == "added" and theirs[0]["id"] == stored[0].id
    finally:
        local.store.close()


def test_starting_while_another_process_holds_a_long_transaction_is_told_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "articles.db"
    corpus.store.Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)  # e.g. a reindex of a large collection
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(corpus.store, "BUSY_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(UserError, match=r"Another articlebot process is writing to .*try again in a moment"):
            corpus.store.Store(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    corpus.store.Store(path).close()  # and works once it is done
