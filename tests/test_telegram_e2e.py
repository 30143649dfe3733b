"""`articlebot serve` as a separate process against the loopback Bot API, the test acting as the users.

One bot process for the whole module (fresh data dir, test config), so the tests share a collection:
the sample article is added by the `sample` fixture, other tests add their own articles. Every wait is
bounded; a failure prints the tail of the bot's log.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.botapi import BotApiEmulator, Sent
from tests.botapi.load import run_load
from tests.botapi.process import BotProcess, synthetic_article, wait_quiet, write_config

ADMIN = 1001
ADMIN_CHAT = -1009999  # receives error reports
BOT = "articlebot_test_bot"
QUESTION = "How many civilians reportedly died?"
QUOTE = "According to them, this has resulted in the death of 36 civilians including children."
RATE = 20
PAGE = 5
WAIT = 60.0
SLOW = 240.0  # ingest and reindex of the big article on a busy 2-core machine
RATES = {"2022-06-02": "0.5", "2022-06-16": "0.75"}  # day published -> the figure that day's article gives
RATES_FILLER = "The bank's governor said inflation was still too high and that the bank would act again if needed."
BIG_WORDS = 80_000  # ~250 passages: embedding them outlasts a question's answer on a fast CPU too


class User:
    """A Telegram user in one chat (private by default): says things, waits for the bot's replies."""

    def __init__(self, api: BotApiEmulator, user_id: int, chat_id: int | None = None):
        self.api, self.id, self.chat = api, user_id, chat_id if chat_id is not None else user_id

    def say(
        self,
        text: str,
        *,
        expect: int = 1,
        reply_to: int | None = None,
        timeout: float = WAIT,
        date: int | None = None,
    ) -> list[Sent]:
        mark = self.api.mark(self.chat)
        self.api.send_text(self.chat, self.id, text, reply_to=reply_to, date=date)
        return self.api.wait_messages(self.chat, expect, after=mark, timeout=timeout)

    def send_file(
        self,
        name: str,
        data: bytes,
        *,
        caption: str | None = None,
        file_size: int | None = None,
        timeout: float = WAIT,
    ) -> Sent:
        mark = self.api.mark(self.chat)
        self.api.send_document(self.chat, self.id, name, data, caption=caption, file_size=file_size)
        return self.api.wait_messages(self.chat, 1, after=mark, timeout=timeout)[0]

    def press(self, message: Sent, data: str) -> str:
        """Press a button (or forge one) on a message; returns the bot's callback answer text."""
        query = self.api.press(self.chat, self.id, message.message_id, data)
        return str(self.api.wait_answer(query, timeout=WAIT)["text"])


@pytest.fixture(scope="module")
def api() -> Iterator[BotApiEmulator]:
    with BotApiEmulator(username=BOT) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def bot(api: BotApiEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    tmp = tmp_path_factory.mktemp("telegram")
    config = write_config(
        tmp / "config.yaml",
        corpus={"max_file_mb": 1},
        index={"batch_size": 8},  # small batches: a question waits for one batch of a bulk embed, not all
        telegram={"rate_limit_per_minute": RATE, "list_page_size": PAGE, "admin_chat_id": ADMIN_CHAT},
    )
    api.open_chat(ADMIN_CHAT, "Articlebot admins")
    proc = BotProcess(api, config, tmp / "data", tmp / "bot.log", admins=str(ADMIN))
    try:
        proc.wait_ready()
        yield proc
    finally:
        code = proc.terminate()
    log = proc.log_text()
    assert code == 0, f"the bot exited with {code} on SIGTERM:\n{proc.log_tail()}"
    assert api.token not in log, "the bot token appeared in the log"
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    unexpected = [r for r in records if "Traceback" in r and "injected fault" not in r]
    assert not unexpected, "unexpected errors in the bot's log:\n" + "\n".join(unexpected)


@pytest.fixture(scope="module")
def sample(api: BotApiEmulator, bot: BotProcess, sample_path: Path) -> Sent:
    """The sample article, uploaded as a document by an admin."""
    return User(api, ADMIN).send_file(sample_path.name, sample_path.read_bytes())


def answered_36(reply: Sent) -> None:
    assert "36" in reply.text.split("\n")[0], reply.text
    quotes = reply.entity_texts("blockquote")
    assert any("36 civilians" in q for q in quotes), reply.html
    assert "Russia, US to Hold Talks on Coordinating Airstrikes in Syria" in reply.text


# ---- adding and asking --------------------------------------------------------------------------


def test_start_registers_commands_and_explains_with_an_example(api: BotApiEmulator, bot: BotProcess) -> None:
    commands = {c["command"] for c in next(iter(api.commands.values()))}
    assert {"ask", "add", "list", "help"} <= commands
    [reply] = User(api, 2001).say("/start")
    assert QUESTION in reply.text
    assert "/list" in reply.text and "/add" in reply.text
    assert "/reindex" not in reply.text  # admin commands shown to admins only
    assert "/reindex" in User(api, ADMIN).say("/help")[0].text


def test_upload_then_pasted_text_is_a_duplicate(api: BotApiEmulator, sample: Sent, sample_path: Path) -> None:
    assert re.match(r"Added article #\d+: Russia, US to Hold Talks .* \(\d+ passages\)\.", sample.text), sample.text
    number = re.search(r"#(\d+)", sample.text).group(1)  # type: ignore[union-attr]
    [reply] = User(api, 2002).say("/add " + sample_path.read_text(encoding="utf-8"))
    assert reply.text.startswith(f"I already have that one: #{number} Russia, US to Hold Talks"), reply.text


def test_question_is_answered_with_a_quoted_citation(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 2003)
    [reply] = user.say(QUESTION)
    answered_36(reply)
    assert QUOTE in reply.entity_texts("blockquote")
    assert re.search(r"^\[1\] Russia, US to Hold Talks", reply.text, re.M)
    assert "typing" in api.actions(user.chat)
    labels = [label for label, _ in reply.buttons()]
    assert labels and labels == [f"Show passage [{n}]" for n in range(1, len(labels) + 1)]


def test_off_topic_question_is_refused_without_sources(api: BotApiEmulator, sample: Sent) -> None:
    [reply] = User(api, 2004).say("What is the capital of Australia?")
    assert reply.text.startswith("I couldn't find that in the articles.")
    assert not reply.entity_texts("blockquote")
    assert not re.search(r"^\[\d+\]", reply.text, re.M)
    assert not reply.buttons()


def test_show_passage_reveals_the_surrounding_text(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 2005)
    [answer] = user.say(QUESTION)
    [(_, data)] = answer.buttons()[:1]
    mark = api.mark(user.chat)
    assert user.press(answer, data) == ""
    [passage] = api.wait_messages(user.chat, 1, after=mark)
    assert passage.reply_to == answer.message_id
    [text] = passage.entity_texts("blockquote")
    assert QUOTE in text and len(text) > len(QUOTE)
    # forged or stale buttons get a polite answer and nothing else
    assert "no longer in the collection" in user.press(answer, "p:987654321")
    assert "no longer valid" in user.press(answer, "p:../../etc")
    assert "no longer valid" in user.press(answer, "delete_everything")
    assert api.mark(user.chat) == mark + 1


def test_large_upload_does_not_delay_other_users(api: BotApiEmulator, sample: Sent) -> None:
    uploader, asker = User(api, 2006), User(api, 2007)
    mark = api.mark(uploader.chat)
    api.send_document(uploader.chat, uploader.id, "harbour.txt", synthetic_article(BIG_WORDS, seed=1))
    api.wait_until(lambda: "typing" in api.actions(uploader.chat), WAIT, "the upload to start")
    asked = time.monotonic()
    [answer] = asker.say(QUESTION)
    [confirmation] = api.wait_messages(uploader.chat, 1, after=mark, timeout=SLOW)
    assert confirmation.text.startswith("Added article #"), confirmation.text
    answered_36(answer)
    if confirmation.at < asked + 0.5:
        pytest.skip("the upload finished before the question was handled: nothing overlapped")
    assert answer.at < confirmation.at, "the question waited for another user's upload"


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """A loopback web server with one article page; other paths are 404."""
    paragraphs = "".join(
        f"<p>The ferry from Skerry Island to the mainland will run {n} extra crossings each week this winter, "
        f"the harbour office said on Tuesday, after complaints from commuters about crowded boats.</p>"
        for n in range(2, 9)
    )
    pages = {
        "/news/ferry.html": (
            "<html><head><title>Skerry ferry adds winter crossings</title></head><body><article>"
            f"<h1>Skerry ferry adds winter crossings</h1>{paragraphs}</article></body></html>"
        ).encode()
    }
    for day, points in RATES.items():  # one story in two weeks' news, told in the same words
        pages[f"/news/rates-{day}.html"] = (
            f'<html><head><title>Brannock central bank raises rates</title><meta property="article:published_time" '
            f'content="{day}T09:00:00Z"></head><body><article><h1>Brannock central bank raises rates</h1>'
            f"<p>The Brannock central bank raised its key interest rate by {points} points on Wednesday.</p>"
            f"<p>{RATES_FILLER}</p></article></body></html>"
        ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path in pages
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            body = pages[self.path] if found else b"<html><body>Not found</body></html>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_by_url_and_a_dead_link(api: BotApiEmulator, sample: Sent, web: str) -> None:
    user = User(api, 2008)
    [added] = user.say(f"/add {web}/news/ferry.html")
    assert re.match(r"Added article #\d+: Skerry ferry adds winter crossings \(\d+ passages\)\.", added.text), (
        added.text
    )
    [again] = user.say(f"/add {web}/news/ferry.html")
    assert again.text.startswith("I already have that one: #")
    [dead] = user.say(f"/add {web}/news/gone.html")
    assert dead.text.startswith("Could not add it:") and "404" in dead.text, dead.text


def test_a_question_meets_the_news_of_the_day_it_is_asked(api: BotApiEmulator, sample: Sent, web: str) -> None:
    user = User(api, 2009)
    for day in RATES:
        [added] = user.say(f"/add {web}/news/rates-{day}.html")
        assert added.text.startswith("Added article #"), added.text
    question = "By how much did the Brannock central bank raise its interest rate this week?"
    for day, points in RATES.items():  # the message's own date, as Telegram sends it, is the day asked
        sent = int(datetime.datetime.fromisoformat(f"{day}T18:00:00+00:00").timestamp())
        [reply] = user.say(question, date=sent)
        assert reply.text.startswith(f"{points} points"), (day, reply.text)


# ---- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/reindex", "/remove 1", "/stats"])
def test_admin_commands_are_refused_to_others(api: BotApiEmulator, bot: BotProcess, sample: Sent, command: str) -> None:
    private, group = User(api, 2010), User(api, 2010, chat_id=-1002010)
    name = command.split()[0]
    for user in (private, group):
        [reply] = user.say(command)
        assert reply.text == f"Sorry, only the bot's admins can use {name}.", reply.text
    [listing] = private.say("/list")
    assert "Russia, US to Hold Talks" in listing.text  # /remove 1 did nothing
    assert f"refused {name} to user 2010" in bot.log_text()  # refusals are logged


def test_admin_reindex_runs_while_others_are_answered(api: BotApiEmulator, sample: Sent) -> None:
    admin, other = User(api, ADMIN), User(api, 2011)
    [status] = admin.say("/reindex")
    assert status.text.startswith("Reindexing")
    [refused] = admin.say("/reindex")
    asked = time.monotonic()
    [answer] = other.say(QUESTION)
    answered_36(answer)
    api.wait_until(lambda: api.find(admin.chat, status.message_id).text.startswith("Reindex done"), SLOW, "the reindex")
    done = api.find(admin.chat, status.message_id)
    assert re.match(r"Reindex done: \d+ articles, \d+ passages", done.text), done.text
    times = [t for t, html in done.edits if html.startswith("Reindexing")]  # the final edit is not throttled
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(times)), "progress edits not throttled"
    [stats] = admin.say("/stats")
    assert re.search(r"Articles: \d+\nPassages: \d+\nIndex: \d+ vectors", stats.text), stats.text
    finished = done.edits[-1][0]
    if finished < asked + 0.5:
        pytest.skip("the reindex finished before the question was handled: nothing overlapped")
    assert answer.at < finished, "the question waited for the reindex"
    if refused.at < finished:
        assert "already running" in refused.text, refused.text


def test_a_status_edit_telegram_refuses_does_not_lose_the_reindex(api: BotApiEmulator, sample: Sent) -> None:
    admin = User(api, ADMIN)
    api.fail_next("editMessageText", chat_id=admin.chat)  # a progress edit, or the result's: either is skipped
    [status] = admin.say("/reindex")
    done = api.wait_until(
        lambda: [m for m in api.messages(admin.chat) if m.message_id >= status.message_id and "Reindex done" in m.text],
        SLOW,
        "the reindex result",
    )
    assert re.match(r"Reindex done: \d+ articles", done[0].text), done[0].text
    assert not [m for m in api.messages(admin.chat) if m.message_id > status.message_id and m.text.startswith("Sorry")]
    [again] = admin.say("/reindex")  # the first one is over: a second one starts
    assert again.text.startswith("Reindexing"), again.text
    api.wait_until(lambda: api.find(admin.chat, again.message_id).text.startswith("Reindex done"), SLOW, "reindex")


def test_admin_removes_an_article(api: BotApiEmulator, sample: Sent) -> None:
    admin = User(api, ADMIN)
    [added] = admin.say("/add Lighthouse keepers\nThe lighthouse on Skerry Island was automated in 1987.")
    number = re.search(r"#(\d+)", added.text).group(1)  # type: ignore[union-attr]
    [removed] = admin.say(f"/remove {number}")
    assert removed.text == f"Removed article #{number}: Lighthouse keepers."
    [again] = admin.say(f"/remove {number}")
    assert number in again.text and "Removed" not in again.text  # says there is no such article
    [usage] = admin.say("/remove the first one")
    assert "/remove 3" in usage.text


# ---- browsing -----------------------------------------------------------------------------------


def test_list_pages_with_buttons_and_refuses_forged_presses(api: BotApiEmulator, sample: Sent) -> None:
    for n in range(10):
        User(api, 3001 + n % 2).say(f"/add Port bulletin {n}\nThe ferry timetable changes number {n} took effect.")
    user = User(api, 3003)
    [listing] = user.say("/list")
    total = int(re.search(r"Articles 1–5 of (\d+)", listing.text).group(1))  # type: ignore[union-attr]
    assert total >= 11 and len(re.findall(r"^#\d+ ", listing.text, re.M)) == PAGE
    assert [label for label, _ in listing.buttons()] == ["Next ›"]

    def shown() -> str:
        return api.find(user.chat, listing.message_id).text

    assert user.press(listing, listing.buttons()[0][1]) == ""
    assert shown().startswith(f"Articles 6–10 of {total}")
    page2 = api.find(user.chat, listing.message_id)
    assert [label for label, _ in page2.buttons()] == ["‹ Prev", "Next ›"]
    assert user.press(page2, page2.buttons()[0][1]) == ""
    assert shown().startswith(f"Articles 1–5 of {total}")

    before = (shown(), len(api.find(user.chat, listing.message_id).edits))
    assert "no longer exists" in user.press(listing, f"l:999:{user.id}")
    assert "someone else's list" in user.press(listing, "l:1:424242")
    assert "no longer valid" in user.press(listing, "l:1")
    assert "no longer valid" in user.press(listing, "l:-1:3003")
    stale = api.press(user.chat, user.id, 999_999, f"l:1:{user.id}")  # a message too old to be shown
    assert "too old" in api.wait_answer(stale)["text"]
    assert (shown(), len(api.find(user.chat, listing.message_id).edits)) == before


# ---- groups -------------------------------------------------------------------------------------


def test_group_answers_only_when_addressed(api: BotApiEmulator, sample: Sent) -> None:
    group, other = -1004001, 4002
    alice = User(api, 4001, chat_id=group)
    mark = api.mark(group)
    api.send_text(group, other, "How many civilians reportedly died? Anyone know?")
    api.send_text(group, other, "/reindex@otherbot")
    api.send_text(group, other, "/help@otherbot")
    api.send_text(group, other, "/frobnicate")
    api.send_document(group, other, "notes.txt", b"Minutes of the meeting.\nNothing to add.")
    [help_reply] = alice.say("/help")  # replies follow message order: everything before was ignored
    assert api.mark(group) == mark + 1 and "mention me" in help_reply.text

    asked = api.mark(group)
    question_id = api.send_text(group, 4001, f"@{BOT} how many civilians reportedly died?")
    [mention] = api.wait_messages(group, 1, after=asked)
    answered_36(mention)
    assert mention.reply_to == question_id  # in groups the answer quotes the question
    [follow_up] = alice.say(QUESTION, reply_to=mention.message_id)
    answered_36(follow_up)
    [command] = alice.say(f"/ask {QUESTION}")
    answered_36(command)
    [addressed] = alice.say(f"/ask@{BOT} {QUESTION}")
    answered_36(addressed)
    [unknown] = alice.say(f"/frobnicate@{BOT}")
    assert unknown.text == "I don't know /frobnicate. Send /help to see what I can do."


def test_group_replies_keep_message_order(api: BotApiEmulator, sample: Sent) -> None:
    group = -1004003
    mark = api.mark(group)
    ids = [
        api.send_text(group, 4003, text)
        for text in (
            f"/ask {QUESTION}",
            "/help",
            "/ask What is the capital of Australia?",
            "/list",
            f"/nope@{BOT}",
        )
    ]
    replies = api.wait_messages(group, 5, after=mark)
    assert [r.reply_to for r in replies] == ids
    answered_36(replies[0])
    assert "mention me" in replies[1].text
    assert replies[2].text.startswith("I couldn't find that")
    assert replies[3].text.startswith("Articles 1–")
    assert replies[4].text.startswith("I don't know /nope")


def test_group_document_needs_the_add_caption(api: BotApiEmulator, sample: Sent) -> None:
    group = -1004004
    user = User(api, 4004, chat_id=group)
    reply = user.send_file(
        "tides.md", b"# Tide tables\n\nHigh tide at Skerry Island is at 06:12 on Mondays.", caption="/add"
    )
    assert reply.text.startswith("Added article #") and "Tide tables" in reply.text


def test_a_question_deleted_before_its_answer_still_gets_it(api: BotApiEmulator, sample: Sent) -> None:
    group = -1004005
    mark = api.mark(group)
    api.send_text(group, 4005, f"/ask {QUESTION}", deleted=True)  # Telegram refuses a reply to it
    [reply] = api.wait_messages(group, 1, after=mark)
    answered_36(reply)
    assert reply.reply_to is None


def test_replies_stay_in_the_forum_topic_they_were_asked_in(api: BotApiEmulator, sample: Sent) -> None:
    forum = -1004008
    mark = api.mark(forum)
    api.send_text(forum, 4008, f"/ask {QUESTION}", topic=7)
    [answer] = api.wait_messages(forum, 1, after=mark)
    answered_36(answer)
    assert answer.topic == 7 and answer.reply_to is not None
    mark = api.mark(forum)
    api.send_text(forum, 4008, f"/ask {QUESTION}", topic=9, deleted=True)  # sent without the reply: topic kept
    [answer] = api.wait_messages(forum, 1, after=mark)
    answered_36(answer)
    assert answer.topic == 9 and answer.reply_to is None
    mark, reports = api.mark(forum), api.mark(ADMIN_CHAT)
    api.fail_next("sendMessage", chat_id=forum)  # the error reply goes to the topic too
    api.send_text(forum, 4008, "/help", topic=11)
    [sorry] = api.wait_messages(forum, 1, after=mark)
    assert sorry.text.startswith("Sorry, something went wrong") and sorry.topic == 11
    api.wait_messages(ADMIN_CHAT, 1, after=reports)  # its report, before another test counts the reports


def test_anonymous_admins_are_each_their_group_and_never_bot_admins(api: BotApiEmulator, sample: Sent) -> None:
    first, second = -1004006, -1004007
    mark = api.mark(first)
    for _ in range(RATE):  # the first group's whole allowance
        api.send_text(first, 0, "/help", as_chat=True)
    api.wait_messages(first, RATE, after=mark)
    mark = api.mark(second)
    api.send_text(second, 0, "/help", as_chat=True)
    [other_group] = api.wait_messages(second, 1, after=mark)
    assert "mention me" in other_group.text, other_group.text  # not the first group's "slow down"
    mark = api.mark(second)
    api.send_text(second, 0, "/remove 1", as_chat=True)
    [refused] = api.wait_messages(second, 1, after=mark)
    assert refused.text.startswith("Sorry, /remove needs your own account"), refused.text
    [listing] = User(api, ADMIN).say("/list")
    assert "#1 " in listing.text  # nothing was removed


def test_numbers_are_ascii_digits(api: BotApiEmulator, sample: Sent) -> None:
    user, admin = User(api, 6005), User(api, ADMIN)
    reports = api.mark(ADMIN_CHAT)
    [listing] = user.say("/list \u00b2")  # "²" is a digit to str.isdigit, not to int()
    assert re.match(r"Articles? 1\b", listing.text), listing.text
    [usage] = admin.say("/remove \u2460")
    assert usage.text.startswith("Send /remove with the article's number"), usage.text
    assert wait_quiet(api, ADMIN_CHAT, 1.0) == reports, "an error report was sent"


def test_pictures_and_nameless_files(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 6006)
    mark = api.mark(user.chat)
    api.send_photo(user.chat, user.id, caption="How many civilians died?")
    [hint] = api.wait_messages(user.chat, 1, after=mark)
    assert hint.text.startswith("I only read text.") and ".pdf" in hint.text, hint.text
    mark = api.mark(user.chat)
    text = b"Lighthouse log\n\nThe Skerry lighthouse keeper logged 14 ships passing on Sunday."
    api.send_document(user.chat, user.id, None, text, mime_type="text/plain")
    [added] = api.wait_messages(user.chat, 1, after=mark)
    assert added.text.startswith("Added article #") and "Lighthouse log" in added.text, added.text


class Tarpit:
    """A loopback server that accepts connections and never answers, until `release` hangs up on them and
    refuses any more."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/slow"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.held.append(self.server.accept()[0])

    def release(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    try:
        yield pit
    finally:
        pit.release()


def test_links_that_never_answer_do_not_hold_questions(api: BotApiEmulator, sample: Sent, tarpit: Tarpit) -> None:
    url = tarpit.url
    adders = [User(api, 6100 + n) for n in range(6)]  # as many as asyncio's default threads on 2 cores
    marks = [api.mark(u.chat) for u in adders]
    for n, adder in enumerate(adders):
        api.send_text(adder.chat, adder.id, f"/add {url}?n={n}")
    api.wait_until(lambda: len(tarpit.held) >= 2, WAIT, "the adds to reach the silent server")
    [answer] = User(api, 6110).say(QUESTION)
    answered_36(answer)
    stuck = [len(api.messages(u.chat)) - m for u, m in zip(adders, marks, strict=True)]
    assert stuck == [0] * 6, "an add finished before the question: the test proves nothing"
    tarpit.release()  # it hangs up and refuses more: every add fails at once
    for adder, mark in zip(adders, marks, strict=True):
        [failed] = api.wait_messages(adder.chat, 1, after=mark, timeout=SLOW)
        assert failed.text.startswith("Could not add it:"), failed.text
    [too_many] = User(api, 6111).say("/add " + " ".join(f"{url}?m={n}" for n in range(11)))
    assert too_many.text.startswith("That is 11 links; send at most 10 per /add"), too_many.text


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_input_gets_a_reason(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 6001)
    assert "/add https://" in user.say("/add")[0].text
    for name in ("setup.exe", "photo.jpg", "noextension"):
        reply = user.send_file(name, b"MZ\x90\x00 not a document")
        assert reply.text.startswith(f"Could not add {name}: I can only read"), reply.text
        assert ".pdf" in reply.text and ".docx" in reply.text
    binary = random.Random(1).randbytes(4000)
    for name in ("random.txt", "broken.pdf", "broken.docx"):
        reply = user.send_file(name, binary)
        assert reply.text.startswith("Could not add it:") and name in reply.text, reply.text
    long_title = "Headline " * 700  # 6,300 characters on the first line
    reply = user.send_file("long-title.txt", (long_title + "\n\nThe body of the story.").encode())
    assert reply.text.startswith("Added article #"), reply.text  # and every part was valid and short enough
    downloads = len(api.downloads)
    reply = user.send_file("huge.pdf", b"%PDF-1.4 tiny", file_size=5_000_000)
    assert reply.text == "Could not add huge.pdf: it is 5.0 MB and the limit is 1 MB.", reply.text
    assert len(api.downloads) == downloads, "the bot downloaded a file over the limit"
    [long_question] = user.say("Why? " * 1000)
    assert "characters long; the limit is" in long_question.text
    [unknown] = user.say("/frobnicate now")
    assert unknown.text == "I don't know /frobnicate. Send /help to see what I can do."
    [empty_ask] = user.say("/ask")
    assert QUESTION in empty_ask.text


def test_flood_gets_one_slow_down_reply(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 6002)
    mark = api.mark(user.chat)
    for i in range(RATE + 5):
        api.send_text(user.chat, user.id, f"/help {i}")
    replies = api.wait_messages(user.chat, RATE + 1, after=mark)
    assert wait_quiet(api, user.chat, 1.5) == mark + RATE + 1
    assert all("/list" in r.text for r in replies[:RATE])
    assert "faster than I can answer" in replies[RATE].text and str(RATE) in replies[RATE].text


def test_an_unexpected_failure_gets_a_short_honest_reply(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 6003)
    reports = api.mark(ADMIN_CHAT)
    api.fail_next("sendMessage", chat_id=user.chat)  # Telegram has a bad moment
    [reply] = user.say("/help")
    assert reply.text == (
        "Sorry, something went wrong on my side while handling that. It has been logged; please try again later."
    )
    [report] = api.wait_messages(ADMIN_CHAT, 1, after=reports)
    assert report.text.startswith(f"Error (chat {user.chat})")
    assert "Traceback" in report.text and "injected fault" in report.text
    [trace] = report.entity_texts("pre")
    assert "NetworkError" in trace


def test_a_failed_download_is_explained(api: BotApiEmulator, sample: Sent) -> None:
    user = User(api, 6004)
    api.fail_next("getFile", code=400, description="Bad Request: file is temporarily unavailable")
    reply = user.send_file("notes.txt", b"Some notes.\nMore notes.")
    assert reply.text.startswith("Could not add notes.txt: Telegram did not hand over the file")
    assert "send it again" in reply.text


def test_small_load_every_question_gets_exactly_one_reply(api: BotApiEmulator, sample: Sent) -> None:
    report = run_load(api, users=5, questions=2, first_user_id=9_000_000, reply_timeout=WAIT)
    assert report.ok and report.replies == 10, report.summary()


def test_bot_called_only_emulated_methods_and_sent_valid_html(api: BotApiEmulator, sample: Sent) -> None:
    assert api.unknown_methods == []
    allowed = {
        ("setMyCommands", "Bad Request: chat not found"),  # admin scope before the admin's first chat
        ("sendMessage", "Internal Server Error: injected fault"),
        ("getFile", "Bad Request: file is temporarily unavailable"),
        ("editMessageText", "Internal Server Error: injected fault"),
    }
    assert set(api.errors) <= allowed, list(zip(api.errors, api.error_params, strict=True))
