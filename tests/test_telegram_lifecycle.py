"""Webhook mode and a clean SIGTERM: an article being added when the bot is told to stop is still stored
and confirmed before the process exits."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus.store import Store
from engine.service import DB_NAME
from tests.botapi import BotApiEmulator
from tests.botapi.process import BotProcess, synthetic_article, write_config

USER = 8001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def webhook_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotApiEmulator, BotProcess, str, Path]]:
    tmp = tmp_path_factory.mktemp("webhook")
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram-hook"
    with BotApiEmulator() as api:
        proc = BotProcess(
            api,
            write_config(tmp / "config.yaml"),
            tmp / "data",
            tmp / "bot.log",
            extra_args=("--webhook", hook, "--listen", "127.0.0.1", "--port", str(port)),
        )
        try:
            proc.wait_ready(webhook=True)
            yield api, proc, hook, tmp / "data"
        finally:
            proc.terminate()


def test_webhook_delivers_updates_and_refuses_strangers(
    webhook_bot: tuple[BotApiEmulator, BotProcess, str, Path],
) -> None:
    api, _, hook, _ = webhook_bot
    assert api.webhook["url"] == hook and api.webhook.get("secret_token")
    api.send_text(USER, USER, "/help")
    [reply] = api.wait_messages(USER, 1, timeout=60)
    assert "I answer questions about a collection of articles" in reply.text
    forged = urllib.request.Request(
        hook, data=b'{"update_id": 1}', method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)  # no secret token: not from Telegram
    assert refused.value.code == 403


def test_sigterm_finishes_the_article_being_added(webhook_bot: tuple[BotApiEmulator, BotProcess, str, Path]) -> None:
    api, proc, _, data_dir = webhook_bot
    mark = api.mark(USER)
    api.download_delay = 2.0  # SIGTERM arrives while the bot is still downloading the file
    api.send_document(USER, USER, "harbour.txt", synthetic_article(2_000, seed=2))
    api.wait_until(lambda: "getFile" in api.calls, 60, "the bot to start adding the document")
    signalled = time.monotonic()
    assert proc.terminate(timeout=180) == 0, proc.log_tail()
    [confirmation] = api.messages(USER)[mark:]
    assert confirmation.at > signalled, "the article was done before SIGTERM: the test proves nothing"
    assert confirmation.text.startswith("Added article #1: Harbour logistics report ("), confirmation.text
    store = Store(data_dir / DB_NAME)
    try:
        assert [a.title for a in store.list_articles()] == ["Harbour logistics report"]
    finally:
        close = getattr(store, "close", None)
        if close:
            close()
    assert "Traceback" not in proc.log_text(), proc.log_tail()


def test_a_rejected_token_is_said_in_one_line_and_never_printed(tmp_path: Path) -> None:
    """Telegram's own error for a revoked token quotes it; neither the log nor the traceback may."""
    secret = "123:AAHrevokedSECRETtoken0123456789"
    with BotApiEmulator() as api:  # it answers 401 Unauthorized to any token but its own, as Telegram does
        proc = BotProcess(
            api,
            write_config(tmp_path / "config.yaml"),
            tmp_path / "data",
            tmp_path / "bot.log",
            env={"TELEGRAM_BOT_TOKEN": secret},
        )
        try:
            code = proc.proc.wait(180)
        finally:
            proc.terminate()
    log = proc.log_text()
    assert code == 1, log
    assert "error: Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped)" in log, log
    assert secret not in log and "AAHrevokedSECRET" not in log, log
    assert "<token>" in log  # the library's error was logged, redacted
