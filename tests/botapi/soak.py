"""A soak run: a real `articlebot serve` process, many simulated users over minutes, checked reply by reply.

A load test of one kind (load.run_load) measures throughput; a soak measures whether the bot stays correct
and its memory flat through a long, mixed session: questions (answerable and off-topic), /add of pasted
text and of small files, /list paging with the inline buttons, "Show passage", /help, chatter in group
chats that must be ignored, and one admin /reindex in the middle. Each user waits for its reply and then
thinks for a few seconds (a closed loop: the bot is measured, not a queue that grows without end).

Every bot message, edit and callback answer is attributed to the user action it answers (groups: by the
quoted message; private chats: by order, since a user has one action open at a time), so the report can
say that every message got exactly one reply, in its own chat, with the right kind of content. The bot's
resident memory is sampled every second from /proc. Every wait is bounded; the run stops itself at a hard
deadline. Traffic stays on 127.0.0.1.

    report = run_soak(SoakConfig(users=20, seconds=40, think_s=(3, 8)), work_dir)
    assert report.ok, report.summary()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests._corpus_samples import make_docx, make_pdf
from tests.botapi.load import percentile
from tests.botapi.process import BotProcess, write_config
from tests.botapi.server import BotApiEmulator, BotEvent

ADMIN = 1001
WARMUP_USER = 2001  # and the ids after it, one per warm-up question
FIRST_USER = 20_000_000
FIRST_GROUP = -1_005_000_000_000
BOT_USERNAME = "articlebot_soak_bot"
PAGE_SIZE = 10
REFUSAL = "I couldn't find that in the articles."
SORRY = "Sorry, something went wrong"
ALLOWED_API_ERRORS = {("setMyCommands", "Bad Request: chat not found")}  # admin scope before the admin's chat

# ---- what the users talk about ---------------------------------------------------------------------------

ARTICLES: tuple[tuple[str, str], ...] = (
    (
        "Skerry Island ferry adds winter crossings",
        "The ferry between Skerry Island and Northport will run six extra crossings each week from 1 December, "
        "the harbour office said on Tuesday. The new crossings leave Skerry at 06:40 and return from Northport "
        "at 18:15. Commuters had complained about crowded boats since the autumn timetable cut the late sailing. "
        "The extra crossings will cost 240,000 euros this winter, paid from the regional transport fund. "
        "Captain Mira Holm, who has run the route for eleven years, said her crew welcomed the change.",
    ),
    (
        "Northport library reopens after flood repairs",
        "The Northport public library reopened on Monday, fourteen months after the March flood filled its "
        "basement with water. The repairs cost 1.3 million euros, most of it covered by insurance. The library "
        "lost about 9,000 books in the flood, most of them from its local history collection. Head librarian "
        "Jonas Berg said volunteers had spent the winter drying and scanning the surviving letters and maps. "
        "A new pump system now protects the basement, and the reading room has moved to the first floor.",
    ),
    (
        "Council approves protected bike lanes on Harbour Road",
        "Northport city council voted 17 to 4 on Thursday to build protected bike lanes along Harbour Road, "
        "which is 3.2 kilometres long. Work starts in April and should take five months. The lanes will be "
        "separated from traffic by a low concrete kerb. Shop owners on the road had asked the council to keep "
        "the parking spaces in front of their shops; the plan removes 40 of the 120 spaces. Mayor Ilse Varga "
        "said the lanes would make the school run safer for children.",
    ),
    (
        "Glacier museum records a visitor high",
        "The Vatna Glacier Museum welcomed 182,000 visitors last year, its highest number since it opened in "
        "1998. Director Petra Lind said a new exhibition on melting ice sheets drew school classes from across "
        "the country. Ticket prices stayed at 14 euros for adults. The museum plans to add a second hall for "
        "temporary exhibitions by 2027, at a cost of 4 million euros.",
    ),
    (
        "Crane operators end strike at Northport container terminal",
        "Crane operators at the Northport container terminal returned to work on Saturday after a nine-day "
        "strike. The union accepted a pay rise of 6.5 percent over two years and a limit of ten night shifts "
        "a month. During the strike about 60 ships waited outside the port or were sent to other harbours. "
        "The terminal operator said it would take two weeks to clear the backlog of containers.",
    ),
)

ANSWERABLE = (
    "How many extra crossings will the Skerry ferry run each week?",
    "How much will the extra ferry crossings cost this winter?",
    "How many books did the Northport library lose in the flood?",
    "How much did the library repairs cost?",
    "How did the council vote on the Harbour Road bike lanes?",
    "How many parking spaces does the bike lane plan remove?",
    "How many visitors did the glacier museum have last year?",
    "When did the Vatna Glacier Museum open?",
    "How long did the crane operators' strike last?",
    "What pay rise did the crane operators accept?",
)

OFF_TOPIC = (
    "What is the capital of Australia?",
    "Who painted the Mona Lisa?",
    "How do I bake sourdough bread at home?",
    "What is the boiling point of mercury?",
    "Which team won the 1998 football World Cup?",
)

CHATTER = (
    "Is anyone going to the market on Saturday?",
    "Thanks, that helps.",
    "I missed the meeting yesterday, did I miss anything?",
    "Good morning everyone",
    "Has someone got a spare umbrella?",
)

# What users do, with relative weights. Each user's first action is fixed (the kinds in turn over the
# users), so even a short run covers every kind; after that the weights decide.
PRIVATE_MIX = {
    "ask": 40,
    "off_topic": 12,
    "help": 6,
    "list": 12,
    "add_text": 6,
    "add_dup": 1,  # a note someone already added, pasted again
    "add_doc": 4,
    "unknown_cmd": 2,
}
GROUP_MIX = {
    "ask": 20,  # /ask QUESTION
    "mention": 20,  # @bot QUESTION
    "follow_up": 10,  # a question sent as a reply to the bot's earlier answer
    "help": 5,
    "list": 8,
    "chatter": 25,  # not addressed to the bot: must be ignored
    "other_bot": 5,  # /help@otherbot: must be ignored
}

_NOTE_WORDS = {
    "club": ("choir", "chess club", "knitting circle", "walking group", "book club", "repair cafe"),
    "place": ("old mill", "parish hall", "community garden", "school gym", "fire station", "town square"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Sunday"),
    "item": ("a flask of tea", "warm boots", "a notebook", "your own tools", "a packed lunch", "good humour"),
}
_FILLER_WORDS = (  # noqa: SIM905 - a sentence of words reads better than a 40-line list
    "garden choir bake sale parish volunteer hall roof appeal raffle ticket summer fair cake stall "
    "flower show judge marrow prize village green bench plaque donation committee minutes treasurer "
    "organ recital bell ringers rota jumble tombola hedge footpath stile ramblers picnic lantern"
).split()


def note_text(token: str, rng: random.Random) -> str:
    """A short community notice (one passage): pasted with /add or sent as a file; `token` keeps it unique."""
    w = {k: rng.choice(v) for k, v in _NOTE_WORDS.items()}
    return (
        f"Community notice {token}\n\n"
        f"The {w['club']} meets at the {w['place']} every {w['day']} evening at seven o'clock. "
        f"New members are welcome; please bring {w['item']}. The meeting for notice {token} will discuss "
        f"the spring programme, the rota for the {w['place']} and the collection for the new heating. "
        f"Questions go to the {w['club']} secretary before {w['day']}."
    )


def filler_article(i: int, words: int = 600) -> tuple[str, str]:
    """A long article on unrelated parish topics: volume for /list pages and for the reindex."""
    rng = random.Random(i)
    sentences = []
    for _ in range(words // 12):
        body = " ".join(rng.choice(_FILLER_WORDS) for _ in range(12))
        sentences.append(body[0].upper() + body[1:] + ".")
    return f"Parish newsletter {i}", " ".join(sentences)


# ---- settings and report -----------------------------------------------------------------------------------


@dataclass
class SoakConfig:
    """How big and how long; defaults are the full run of `make bench` (200 users, 10 minutes)."""

    users: int = 200
    seconds: float = 600.0
    # Pause after each reply: people read the answer and its quotes, then type. With 60-180 s, 200 users
    # send about 1.6 messages/s, half of what the bot served on the shared 2-core machine when saturated
    # (~3.4/s): busy, but the latency measured is the bot's, not a queue's.
    think_s: tuple[float, float] = (60.0, 180.0)
    browse_s: tuple[float, float] = (1.0, 4.0)  # pause before pressing a button under a reply
    groups: int | None = None  # group chats (default: one per 50 users, at least 1)
    group_members: int = 8
    group_share: float = 0.3  # how often a group member acts in its group rather than in private
    fillers: int = 30  # long articles loaded at the start besides the five news articles
    filler_words: int = 600
    reindex_at: float = 0.5  # when the admin sends /reindex, as a fraction of the run
    reply_timeout_s: float = 120.0  # a reply slower than this is counted as lost
    setup_timeout_s: float = 600.0  # bot start-up and loading the articles
    # Memory. The bot is ~750 MB, nearly all of it the model, torch and libraries. The reindex in the middle
    # raises RSS once by ~150 MB (~20 %): glibc keeps the per-thread arena where the reindex's batches of
    # activations lived (measured: with MALLOC_ARENA_MAX=2 the step is gone; repeated reindexes level off
    # after three). So: the last quarter's median may be at most 30 % above the second's (the one-off step
    # plus noise), and at most 5 % above the third's (both after the step: a leak keeps growing there,
    # a one-off does not; 5 % of ~900 MB in a quarter of a 10-minute run is ~18 MB/min).
    rss_growth_limit_pct: float = 30.0  # last quarter's median RSS vs the second quarter's
    rss_trend_limit_pct: float = 5.0  # last quarter's median RSS vs the third quarter's
    seed: int = 1

    @property
    def n_groups(self) -> int:
        return self.groups if self.groups is not None else max(1, self.users // 50)

    @property
    def hard_deadline_s(self) -> float:
        """The whole run, set-up included, never takes longer than this."""
        return self.setup_timeout_s + self.seconds + 2 * self.reply_timeout_s + 120.0


@dataclass
class KindStats:
    count: int
    p50: float
    p95: float
    p99: float
    max: float


@dataclass
class SoakReport:
    users: int
    seconds: float
    groups: int
    think_s: tuple[float, float]
    started: str = ""
    machine_cpus: int = 0
    setup_s: float = 0.0
    wall_s: float = 0.0  # from the first user action to the last reply
    actions: int = 0  # user messages and button presses
    expected_replies: int = 0
    replies: int = 0  # bot responses attributed to an action (a message, or an edit / answer for a press)
    replies_per_s: float = 0.0
    latency_ms: dict[str, KindStats] = field(default_factory=dict)  # per kind, and "all"
    # all kinds, split by whether the action overlapped the reindex (it competes for the CPU and the model)
    latency_reindex_ms: dict[str, KindStats] = field(default_factory=dict)  # "during", "outside"
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # bot messages no action explains (a reply to ignored chatter, a misrouted reply)
    wrong_chat: int = 0
    bad_content: int = 0
    timeouts: int = 0
    answers_changed: int = 0  # a question answered differently from the warm-up (informative)
    passage_stale: int = 0  # "Show passage" after the reindex replaced the passage ids (expected)
    articles_seeded: int = 0
    articles_added: int = 0
    articles_final: int | None = None
    reindex: dict[str, Any] = field(default_factory=dict)
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    rss_quarters_mb: list[float] = field(default_factory=list)
    rss_growth_pct: float | None = None  # median of the 4th quarter vs the 2nd
    rss_trend_pct: float | None = None  # median of the 4th quarter vs the 3rd
    rss_trend_limit_pct: float = 0.0
    rss_timeline_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, MB)
    rss_growth_limit_pct: float = 0.0
    bot_cpu_pct: float | None = None  # of one core, during the soak window
    load_average: dict[str, float] = field(default_factory=dict)
    bot_exit_code: int | None = None
    api_errors: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # a few of the problems, spelled out
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        lat = self.latency_ms.get("all")
        lines = [
            f"soak: {self.users} users, {self.groups} group chats, {self.seconds:.0f} s; {self.actions} actions, "
            f"{self.replies}/{self.expected_replies} replies = {self.replies_per_s:.2f} replies/s",
            f"latency (all kinds) p50 {lat.p50:.0f} ms, p95 {lat.p95:.0f} ms, p99 {lat.p99:.0f} ms, "
            f"max {lat.max:.0f} ms"
            if lat
            else "latency: no replies",
            "latency p50/p95, during vs outside the reindex: "
            + "; ".join(f"{k} {v.p50:.0f}/{v.p95:.0f} ms (n={v.count})" for k, v in self.latency_reindex_ms.items()),
            f"lost {self.lost}, duplicated {self.duplicated}, unexpected {self.unexpected}, wrong chat "
            f"{self.wrong_chat}, bad content {self.bad_content}, timed out {self.timeouts}",
            f"articles: {self.articles_seeded} at start + {self.articles_added} added = "
            f"{self.articles_seeded + self.articles_added}; /stats says {self.articles_final}",
            f"reindex: {self._reindex_line()}; Show passage pressed on an answer from before it: "
            f"{self.passage_stale} (told to ask again); answers differing from the warm-up: {self.answers_changed}",
            f"bot RSS MB: start {_f(self.rss_mb.get('start'))}, middle {_f(self.rss_mb.get('middle'))}, end "
            f"{_f(self.rss_mb.get('end'))}, peak {_f(self.rss_mb.get('peak'))}; quarters "
            + " / ".join(f"{q:.0f}" for q in self.rss_quarters_mb)
            + f"; growth Q2->Q4 {_f(self.rss_growth_pct, '.1f')} % (limit {self.rss_growth_limit_pct:g} %), "
            f"Q3->Q4 {_f(self.rss_trend_pct, '.1f')} % (limit {self.rss_trend_limit_pct:g} %)",
            f"bot CPU {_f(self.bot_cpu_pct)} % of one core; load average (1 min) during the run: mean "
            f"{_f(self.load_average.get('mean'), '.2f')}, max {_f(self.load_average.get('max'), '.2f')} "
            f"on {self.machine_cpus} CPUs",
            f"bot exit code {self.bot_exit_code}",
        ]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines += [f"  e.g. {e}" for e in self.examples[:10]]
        return "\n".join(lines)

    def _reindex_line(self) -> str:
        r = self.reindex
        if not r.get("done"):
            return f"NOT done ({r.get('final_text', 'no status message')})"
        return (
            f"done in {r['seconds']:.1f} s ({r['articles']} articles, {r['passages']} passages), "
            f"{r['progress_edits']} progress edit(s) + the final edit"
        )

    def markdown(self, command: str = "") -> str:
        """A section for docs/benchmarks.md."""
        la = self.load_average
        head = [
            "## Bot soak run",
            "",
            f"{'`' + command + '`' if command else 'Soak run'} on {self.started}: a real `articlebot serve` against "
            f"the loopback Bot API; {self.users} simulated users ({self.groups} group chats among them) for "
            f"{self.seconds:.0f} s, each waiting for its reply and then thinking {self.think_s[0]:g}–"
            f"{self.think_s[1]:g} s; questions, off-topic questions, /add of pasted text and files, /list paging, "
            "Show passage, /help, group chatter, one admin /reindex in the middle.",
            "",
            f"Machine: {self.machine_cpus} CPUs shared with other work; load average (1 min) during the run: "
            f"mean {_f(la.get('mean'), '.2f')}, max {_f(la.get('max'), '.2f')} (at the end: "
            f"{_f(la.get('end_1'), '.2f')} / {_f(la.get('end_5'), '.2f')} / {_f(la.get('end_15'), '.2f')}). "
            f"The bot used {_f(self.bot_cpu_pct)} % of one core.",
            "",
            f"**Result: {'passed' if self.ok else 'FAILED'}.**",
            "",
            "| figure | value |",
            "|---|---|",
            f"| user actions (messages and button presses) | {self.actions} |",
            f"| replies / expected | {self.replies} / {self.expected_replies} |",
            f"| replies/s | {self.replies_per_s:.2f} |",
            f"| lost / duplicated / unexpected / wrong chat | {self.lost} / {self.duplicated} / {self.unexpected} / "
            f"{self.wrong_chat} |",
            f"| replies with the wrong content / timed out | {self.bad_content} / {self.timeouts} |",
            f"| articles at start + added = /stats at the end | {self.articles_seeded} + {self.articles_added} = "
            f"{self.articles_final} |",
            f"| reindex | {self._reindex_line()} |",
            f"| Show passage on an answer from before the reindex (told to ask again) | {self.passage_stale} |",
            f"| bot RSS start / middle / end / peak | {_f(self.rss_mb.get('start'))} / {_f(self.rss_mb.get('middle'))} "
            f"/ {_f(self.rss_mb.get('end'))} / {_f(self.rss_mb.get('peak'))} MB |",
            f"| RSS median per quarter | {' / '.join(f'{q:.0f}' for q in self.rss_quarters_mb)} MB |",
            f"| RSS growth, 2nd to 4th quarter (the reindex in between) | {_f(self.rss_growth_pct, '.1f')} % "
            f"(limit {self.rss_growth_limit_pct:g} %) |",
            f"| RSS growth, 3rd to 4th quarter (after the reindex) | {_f(self.rss_trend_pct, '.1f')} % "
            f"(limit {self.rss_trend_limit_pct:g} %) |",
            "",
            "| kind | n | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        for kind, s in sorted(self.latency_ms.items(), key=lambda kv: (kv[0] == "all", kv[0])):
            head.append(f"| {kind} | {s.count} | {s.p50:.0f} | {s.p95:.0f} | {s.p99:.0f} | {s.max:.0f} |")
        for when, s in self.latency_reindex_ms.items():
            head.append(
                f"| all, {when} the reindex | {s.count} | {s.p50:.0f} | {s.p95:.0f} | {s.p99:.0f} | {s.max:.0f} |"
            )
        if self.problems:
            head += ["", *[f"- problem: {p}" for p in self.problems]]
        return "\n".join(head) + "\n"


def _f(x: float | None, spec: str = ".0f") -> str:
    return "n/a" if x is None else format(x, spec)


# ---- attributing what the bot does to what the users did ---------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """A bot message as it was when sent (the emulator's Sent is edited in place later)."""

    chat_id: int
    message_id: int
    text: str
    reply_to: int | None
    buttons: tuple[tuple[str, str], ...]
    quotes: int  # blockquote entities
    at: float


@dataclass
class Action:
    """One thing a user did; `done` resolves when its reply is complete."""

    kind: str
    user: int
    chat: int
    sent_at: float
    done: asyncio.Future[None]
    message_id: int | None = None  # the user's message
    expect: int = 1  # bot messages expected (0: must be ignored)
    query_id: str | None = None  # for a button press
    target: int | None = None  # the bot message the button is on
    page: int | None = None
    question: str | None = None
    token: str | None = None  # text an /add reply must name
    replies: list[Seen] = field(default_factory=list)
    edits: list[tuple[float, str]] = field(default_factory=list)
    answer: dict[str, Any] | None = None
    finished_at: float | None = None
    problem: str | None = None


class Tracker:
    """Runs on the event loop; the emulator's listener hands it events thread-safely."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.actions: list[Action] = []
        self.chats: set[int] = set()
        self.by_message: dict[tuple[int, int], Action] = {}  # (chat, user message id)
        self.last_in_private: dict[int, Action] = {}  # the latest message action of each private chat
        self.by_query: dict[str, Action] = {}
        self.edit_owner: dict[tuple[int, int], Action] = {}  # list message -> the press waiting for its edit
        self.passage_owner: dict[tuple[int, int], Action] = {}  # answer message -> the press waiting
        self.quiet_edits: set[tuple[int, int]] = set()  # edits nobody waits for on purpose (reindex status)
        self.unexpected: list[str] = []
        self.wrong_chat: list[str] = []
        self.signatures: dict[str, str] = {}  # question -> warm-up signature

    # -- from the emulator's thread
    def listener(self, event: BotEvent) -> None:
        seen = None
        if event.sent is not None:
            s = event.sent
            seen = Seen(
                s.chat_id,
                s.message_id,
                s.text,
                s.reply_to,
                tuple(s.buttons()),
                len(s.entity_texts("blockquote")),
                event.at,
            )
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self.loop.call_soon_threadsafe(self.on_event, event, seen)

    # -- on the loop
    def new(self, kind: str, user: int, chat: int, **kw: Any) -> Action:
        self.chats.add(chat)
        action = Action(kind, user, chat, time.monotonic(), self.loop.create_future(), **kw)
        self.actions.append(action)
        return action

    def sent_message(self, action: Action, message_id: int) -> None:
        action.message_id = message_id
        self.by_message[(action.chat, message_id)] = action
        if action.chat > 0 and action.expect:
            self.last_in_private[action.chat] = action
        if not action.expect:
            self._finish(action, action.sent_at)

    def pressed(self, action: Action, query_id: str) -> None:
        action.query_id = query_id
        self.by_query[query_id] = action
        assert action.target is not None
        owners = self.edit_owner if action.kind.endswith("page") else self.passage_owner
        owners[(action.chat, action.target)] = action

    def on_event(self, event: BotEvent, seen: Seen | None) -> None:
        if event.kind == "answered":
            action = self.by_query.get(event.query_id or "")
            if action is None:
                self.unexpected.append(f"callback answer to unknown query {event.query_id}")
                return
            action.answer = event.answer
            self._check_press(action)
        elif event.kind == "edited" and event.sent is not None:
            key = (event.sent.chat_id, event.sent.message_id)
            action = self.edit_owner.get(key)
            if action is None:
                if key not in self.quiet_edits:
                    self.unexpected.append(f"edit of message {key[1]} in chat {key[0]} nobody asked for")
                return
            action.edits.append((event.at, seen.text if seen else event.sent.text))
            self._check_press(action)
        elif event.kind == "sent" and seen is not None:
            self._on_message(seen)

    def _on_message(self, seen: Seen) -> None:
        chat = seen.chat_id
        if chat not in self.chats:
            self.wrong_chat.append(f"message to chat {chat}, where no user spoke: {seen.text[:80]!r}")
            return
        action: Action | None
        if seen.reply_to is not None:
            action = self.by_message.get((chat, seen.reply_to)) or self.passage_owner.get((chat, seen.reply_to))
        elif chat > 0:
            action = self.last_in_private.get(chat)
        else:
            action = None  # a group reply must quote the message it answers
        if action is None:
            self.unexpected.append(f"message in chat {chat} that answers nothing: {seen.text[:80]!r}")
            return
        action.replies.append(seen)
        if action.kind.endswith("passage"):
            self._check_press(action)
        elif len(action.replies) == 1 and action.expect:
            self._finish(action, seen.at)

    def _check_press(self, action: Action) -> None:
        if action.finished_at is not None or action.answer is None:
            return
        if action.answer.get("text"):  # a toast instead of the result: stale passage or a refusal
            self._finish(action, float(action.answer["at"]))
        elif action.kind.endswith("page") and action.edits:
            self._finish(action, max(float(action.answer["at"]), action.edits[0][0]))
        elif action.kind.endswith("passage") and action.replies:
            self._finish(action, max(float(action.answer["at"]), action.replies[0].at))

    def _finish(self, action: Action, at: float) -> None:
        action.finished_at = at
        if not action.done.done():
            action.done.set_result(None)


# ---- the users ---------------------------------------------------------------------------------------------


class Soak:
    """The users, the admin and the checks of one run; `run()` is the whole soak window plus the drain."""

    def __init__(self, api: BotApiEmulator, cfg: SoakConfig, tracker: Tracker, deadline: float):
        self.api, self.cfg, self.t = api, cfg, tracker
        self.deadline = deadline
        self.start = 0.0
        self.stop_at = 0.0
        self.timeouts = 0
        self.notes: list[tuple[str, int]] = []  # (text, article number) of pasted notes, for re-sends
        self.groups = [FIRST_GROUP - g for g in range(cfg.n_groups)]
        members = min(cfg.group_members, max(1, cfg.users // cfg.n_groups))
        self.member_of = {
            FIRST_USER + i: self.groups[i // members] for i in range(min(cfg.users, len(self.groups) * members))
        }
        self.group_answers: dict[tuple[int, int], int] = {}  # (group, user) -> a bot answer that quoted them
        self.reindex_status: int | None = None
        self.reindex_sent_at = 0.0
        self.stats_text: str | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def wait(self, action: Action) -> bool:
        """The reply, within the reply timeout (and the run's deadline); False when it did not come."""
        try:
            await asyncio.wait_for(asyncio.shield(action.done), max(0.1, min(self.cfg.reply_timeout_s, self.left())))
            return True
        except TimeoutError:
            self.timeouts += 1
            action.problem = f"no reply within {self.cfg.reply_timeout_s:.0f} s"
            return False

    async def say(
        self, kind: str, user: int, chat: int, text: str, *, expect: int = 1, reply_to: int | None = None, **kw: Any
    ) -> Action | None:
        action = self.t.new(kind, user, chat, expect=expect, **kw)
        self.t.sent_message(action, self.api.send_text(chat, user, text, reply_to=reply_to))
        if expect and not await self.wait(action):
            return None
        return action

    async def upload(self, kind: str, user: int, name: str, data: bytes, token: str) -> Action | None:
        action = self.t.new(kind, user, user, token=token)
        self.t.sent_message(action, self.api.send_document(user, user, name, data))
        return action if await self.wait(action) else None

    async def press(self, kind: str, user: int, chat: int, on: Seen, data: str, page: int | None = None) -> bool:
        action = self.t.new(kind, user, chat, target=on.message_id, page=page)
        self.t.pressed(action, self.api.press(chat, user, on.message_id, data))
        return await self.wait(action)

    async def pause(self, span: tuple[float, float], rng: random.Random) -> None:
        """Think for a while; nobody keeps thinking past the end of the run."""
        await asyncio.sleep(max(0.0, min(rng.uniform(*span), self.stop_at - time.monotonic())))

    def running(self) -> bool:
        return time.monotonic() < self.stop_at and self.left() > self.cfg.reply_timeout_s

    # -- one user's session
    async def user(self, index: int) -> None:
        uid = FIRST_USER + index
        rng = random.Random(self.cfg.seed * 1_000_003 + index)
        group = self.member_of.get(uid)
        await asyncio.sleep(rng.uniform(0, min(self.cfg.think_s[1], self.cfg.seconds / 3)))  # people arrive
        n = 0
        while self.running():
            n += 1
            first = n == 1
            if group is not None and (first or rng.random() < self.cfg.group_share):
                kind = list(GROUP_MIX)[index % len(GROUP_MIX)] if first else None
                ok = await self.group_turn(uid, group, rng, kind)
            else:
                kind = list(PRIVATE_MIX)[index % len(PRIVATE_MIX)] if first else None
                ok = await self.private_turn(uid, rng, n, kind)
            if not ok:
                return  # no reply: later replies could not be told apart; this user stops
            await self.pause(self.cfg.think_s, rng)

    async def private_turn(self, uid: int, rng: random.Random, n: int, kind: str | None = None) -> bool:
        kind = kind or rng.choices(list(PRIVATE_MIX), weights=list(PRIVATE_MIX.values()))[0]
        eager = n == 1  # the first time, follow up with the buttons for sure
        token = f"u{uid}-{n}"
        if kind == "ask" or kind == "off_topic":
            question = rng.choice(ANSWERABLE if kind == "ask" else OFF_TOPIC)
            action = await self.say(kind, uid, uid, question, question=question)
            if action is None:
                return False
            reply = action.replies[0]
            if reply.buttons and (eager or rng.random() < 0.3) and self.running():
                await self.pause(self.cfg.browse_s, rng)
                return await self.press("passage", uid, uid, reply, reply.buttons[0][1])
            return True
        if kind == "help":
            return await self.say("help", uid, uid, "/help") is not None
        if kind == "unknown_cmd":
            return await self.say("unknown_cmd", uid, uid, "/frobnicate now") is not None
        if kind == "list":
            return await self.browse(uid, uid, "/list", rng, eager)
        if kind == "add_dup" and self.notes:
            text, number = rng.choice(self.notes)
            return await self.say("add_dup", uid, uid, "/add " + text, token=f"#{number} ") is not None
        if kind in ("add_text", "add_dup"):
            text = note_text(token, rng)
            action = await self.say("add_text", uid, uid, "/add " + text, token=token)
            if action is None:
                return False
            found = re.match(r"Added article #(\d+)", action.replies[0].text)
            if found:
                self.notes.append((text, int(found.group(1))))
            return True
        # a small file: .txt, .md, .docx or .pdf
        suffix = rng.choice((".txt", ".md", ".docx", ".pdf"))
        text = note_text(token, rng)
        title, body = text.split("\n\n", 1)
        if suffix == ".txt":
            data = text.encode()
        elif suffix == ".md":
            data = f"# {title}\n\n{body}\n".encode()
        elif suffix == ".docx":
            data = make_docx([body], title=title)
        else:
            data = make_pdf(re.findall(r".{1,80}(?:\s|$)", body), title=title)
        return await self.upload("add_doc", uid, f"notice-{token}{suffix}", data, token) is not None

    async def browse(self, uid: int, chat: int, command: str, rng: random.Random, eager: bool = False) -> bool:
        """/list, then a page or two with the buttons, as someone looking for an article does."""
        prefix = "group_" if chat < 0 else ""
        action = await self.say(prefix + "list", uid, chat, command)
        if action is None:
            return False
        listing = action.replies[0]
        page, presses = 0, 1 + (rng.random() < 0.5)
        for _ in range(presses):
            if not listing.buttons or (rng.random() > 0.7 and not eager) or not self.running():
                break
            await self.pause(self.cfg.browse_s, rng)
            _, data = listing.buttons[-1] if rng.random() < 0.7 else listing.buttons[0]
            page = int(data.split(":")[1])  # l:PAGE:OWNER
            if not await self.press(prefix + "page", uid, chat, listing, data, page=page):
                return False
            current = self.api.find(chat, listing.message_id)
            listing = Seen(chat, listing.message_id, current.text, None, tuple(current.buttons()), 0, 0.0)
        return True

    async def group_turn(self, uid: int, group: int, rng: random.Random, kind: str | None = None) -> bool:
        eager = kind is not None
        kind = kind or rng.choices(list(GROUP_MIX), weights=list(GROUP_MIX.values()))[0]
        question = rng.choice(ANSWERABLE if rng.random() < 0.8 else OFF_TOPIC)
        if kind == "follow_up" and (group, uid) not in self.group_answers:
            # nothing to follow up yet: ask by mention first, then follow up (or stop here if not eager)
            if not await self.group_turn(uid, group, rng, "mention") or not eager or not self.running():
                return (group, uid) in self.group_answers
            await self.pause(self.cfg.browse_s, rng)
        if kind == "chatter":
            await self.say("group_chatter", uid, group, rng.choice(CHATTER), expect=0)
            return True
        if kind == "other_bot":
            await self.say("group_other_bot", uid, group, rng.choice(("/help@otherbot", "/reindex@otherbot")), expect=0)
            return True
        if kind == "help":
            return await self.say("group_help", uid, group, f"/help@{BOT_USERNAME}") is not None
        if kind == "list":
            return await self.browse(uid, group, "/list", rng, eager)
        text = {
            "ask": f"/ask {question}",
            "mention": f"@{BOT_USERNAME} {question}",
            "follow_up": question,
        }[kind]
        reply_to = self.group_answers.get((group, uid)) if kind == "follow_up" else None
        action = await self.say("group_" + kind, uid, group, text, reply_to=reply_to, question=question)
        if action is None:
            return False
        self.group_answers[(group, uid)] = action.replies[0].message_id
        return True

    # -- the admin
    async def admin(self) -> None:
        await asyncio.sleep(max(0.0, self.start + self.cfg.seconds * self.cfg.reindex_at - time.monotonic()))
        action = await self.say("reindex", ADMIN, ADMIN, "/reindex")
        if action is None:
            return
        self.reindex_status = action.replies[0].message_id
        self.reindex_sent_at = action.sent_at
        self.t.quiet_edits.add((ADMIN, self.reindex_status))

    async def run(self) -> None:
        self.start = time.monotonic()
        self.stop_at = self.start + self.cfg.seconds
        tasks = [asyncio.create_task(self.user(i)) for i in range(self.cfg.users)]
        tasks.append(asyncio.create_task(self.admin()))
        drain = max(1.0, self.stop_at + self.cfg.reply_timeout_s + 30 - time.monotonic())
        _, late = await asyncio.wait(tasks, timeout=min(drain, max(1.0, self.left())))
        for task in late:  # past the deadline: stop waiting
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:  # a bug in the soak itself: show it
                raise error
        # the reindex must have finished before the final count
        await self.until(self.reindex_finished, min(self.cfg.reply_timeout_s * 2, max(1.0, self.left() - 30)))
        await asyncio.sleep(2.0)  # late duplicates would show up here
        action = await self.say("stats", ADMIN, ADMIN, "/stats")
        if action is not None:
            self.stats_text = action.replies[0].text
        await asyncio.sleep(1.0)

    def reindex_finished(self) -> bool:
        if self.reindex_status is None:
            return True  # never started: reported as a problem
        return self.api.find(ADMIN, self.reindex_status).text.startswith(("Reindex done", "A reindex", "Could not"))

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.5)
        return True


# ---- checking the replies ----------------------------------------------------------------------------------


def signature(seen: Seen) -> str:
    """What kind of answer a reply is: a refusal, or an answer citing a given article first."""
    if seen.text.startswith(REFUSAL):
        return "refused"
    found = re.search(r"^\[1\] (.+?)(?: · |$)", seen.text, re.M)
    return "answered: " + (found.group(1) if found else "?")


def content_problem(action: Action, page_size: int) -> str | None:
    """Why the reply is not the kind of reply this action gets, or None when it is."""
    kind = action.kind.removeprefix("group_")
    if action.answer is not None and action.answer.get("text") and kind == "page":
        return f"page press refused: {action.answer['text']!r}"
    if kind == "page":
        if not action.edits:
            return None
        first = (action.page or 0) * page_size + 1
        text = action.edits[0][1]
        return (
            None
            if text.startswith((f"Articles {first}–", f"Article {first} of"))
            else f"page {action.page}: {text[:60]!r}"
        )
    if not action.replies:
        return None
    text = action.replies[0].text
    if text.startswith(SORRY):
        return f"the bot failed: {text[:80]!r}"
    if kind in ("ask", "off_topic", "mention", "follow_up"):
        if text.startswith(REFUSAL) or (action.replies[0].quotes and re.search(r"^\[1\] ", text, re.M)):
            return None
        return f"not an answer or a refusal: {text[:80]!r}"
    expected = {
        "help": "I answer questions about a collection of articles",
        "unknown_cmd": "I don't know /frobnicate",
        "reindex": "Reindexing",
        "stats": "Stats",
        "passage": "Passage ",
    }
    if kind in expected:
        return None if text.startswith(expected[kind]) else f"{kind}: {text[:80]!r}"
    if kind == "list":
        if not text.startswith(("Articles 1–", "Article 1 of")):
            return f"list: {text[:60]!r}"
        owners = {data.rsplit(":", 1)[-1] for _, data in action.replies[0].buttons}
        return None if owners <= {str(action.user)} else f"list buttons for user(s) {owners}, sent by {action.user}"
    if kind in ("add_text", "add_doc"):
        ok = text.startswith("Added article #") and (action.token or "") in text
        return None if ok else f"{kind}: {text[:80]!r}"
    if kind == "add_dup":
        return None if text.startswith(f"I already have that one: {action.token}") else f"add_dup: {text[:80]!r}"
    return None


@dataclass
class Sample:
    t: float  # monotonic
    rss_kb: int
    hwm_kb: int
    cpu_s: float
    load1: float


class RssSampler:
    """VmRSS / VmHWM / CPU time of the bot process and the machine's load average, once a second."""

    def __init__(self, pid: int, every: float = 1.0):
        self.pid, self.every = pid, every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def read(self) -> Sample | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        hwm = int(fields.get("VmHWM", "0 kB").split()[0])
        parts = stat.rsplit(")", 1)[-1].split()
        cpu = (int(parts[11]) + int(parts[12])) / self._tick  # utime + stime
        return Sample(time.monotonic(), rss, hwm, cpu, os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.every)


def _memory(report: SoakReport, samples: list[Sample], start: float, end: float) -> None:
    window = [s for s in samples if start <= s.t <= end]
    if len(window) < 8:
        report.problems.append(f"too few memory samples ({len(window)}) to judge memory growth")
        return
    mb = [s.rss_kb / 1024 for s in window]
    span = end - start
    quarters = [
        [s.rss_kb / 1024 for s in window if start + q * span / 4 <= s.t < start + (q + 1) * span / 4] for q in range(4)
    ]
    report.rss_quarters_mb = [round(statistics.median(q), 1) if q else 0.0 for q in quarters]
    middle = min(window, key=lambda s: abs(s.t - (start + span / 2)))
    report.rss_mb = {
        "start": round(mb[0], 1),
        "middle": round(middle.rss_kb / 1024, 1),
        "end": round(mb[-1], 1),
        "max_sampled": round(max(mb), 1),
        "peak": round(max(s.hwm_kb for s in samples) / 1024, 1),  # VmHWM: the kernel's own high-water mark
    }
    step = max(1, len(window) // 60)
    report.rss_timeline_mb = [(round(s.t - start, 1), round(s.rss_kb / 1024, 1)) for s in window[::step]]
    _, q2, q3, q4 = report.rss_quarters_mb
    if q2 > 0 and q3 > 0:
        report.rss_growth_pct = round(100 * (q4 - q2) / q2, 2)
        report.rss_trend_pct = round(100 * (q4 - q3) / q3, 2)
        for name, pct, limit, before in (
            ("second", report.rss_growth_pct, report.rss_growth_limit_pct, q2),
            ("third", report.rss_trend_pct, report.rss_trend_limit_pct, q3),
        ):
            if pct > limit:
                report.problems.append(
                    f"memory grew {pct:.1f} % from the {name} quarter to the last ({before:.0f} -> {q4:.0f} MB; "
                    f"limit {limit:g} %)"
                )
    cpu = window[-1].cpu_s - window[0].cpu_s
    report.bot_cpu_pct = round(100 * cpu / max(window[-1].t - window[0].t, 1e-9), 1)
    loads = [s.load1 for s in window]
    report.load_average.update(mean=round(statistics.fmean(loads), 2), max=round(max(loads), 2))


def _stats(values: list[float]) -> KindStats:
    return KindStats(
        len(values),
        round(percentile(values, 50), 1),
        round(percentile(values, 95), 1),
        round(percentile(values, 99), 1),
        round(max(values), 1),
    )


def evaluate(report: SoakReport, soak: Soak, tracker: Tracker, page_size: int) -> None:
    """Every action against its replies: counts, latencies, content, and the problems they add up to."""
    latencies: dict[str, list[float]] = {}
    numbers: Counter[int] = Counter()
    first_action = min((a.sent_at for a in tracker.actions), default=soak.start)
    last_reply = first_action
    for a in tracker.actions:
        press = a.query_id is not None
        report.actions += 1
        expected = 1 if press else a.expect
        report.expected_replies += expected
        got = len(a.replies) if not a.kind.endswith("page") else len(a.edits)
        toast = str((a.answer or {}).get("text", ""))
        stale = press and bool(toast)
        if a.kind.endswith("passage") and "no longer in the collection" in toast:
            report.passage_stale += 1
        done = a.finished_at is not None and (a.expect or press)
        if done:
            assert a.finished_at is not None
            report.replies += 1
            if a.kind != "stats":  # the admin's check after the run is not part of it
                last_reply = max(last_reply, a.finished_at)
            latencies.setdefault(a.kind, []).append((a.finished_at - a.sent_at) * 1000)
        limit = 0 if stale else expected
        if expected and not done:
            report.lost += 1
            report.examples.append(f"lost: {a.kind} by {a.user} in chat {a.chat}: {a.problem or 'no reply'}")
        if got > limit:
            if expected == 0:
                report.unexpected += got
                report.examples.append(f"replied to {a.kind} in chat {a.chat}: {a.replies[0].text[:60]!r}")
            else:
                report.duplicated += got - limit
                report.examples.append(f"{got} replies to {a.kind} by {a.user} in chat {a.chat}")
        problem = content_problem(a, page_size)
        if problem:
            report.bad_content += 1
            report.examples.append(f"wrong reply to {a.kind} by {a.user}: {problem}")
        if a.replies and a.kind.removeprefix("group_") in ("add_text", "add_doc"):
            found = re.match(r"Added article #(\d+)", a.replies[0].text)
            if found:
                numbers[int(found.group(1))] += 1
        if a.question and a.replies:
            expected_sig = tracker.signatures.get(a.question)
            if expected_sig and signature(a.replies[0]) != expected_sig:
                report.answers_changed += 1
    report.unexpected += len(tracker.unexpected)
    report.examples += tracker.unexpected[:5]
    report.wrong_chat = len(tracker.wrong_chat) + sum(
        "chat not found" in d for m, d in soak.api.errors if m != "setMyCommands"
    )
    report.examples += tracker.wrong_chat[:5]
    report.timeouts = soak.timeouts
    report.articles_added = len(numbers)
    if any(c > 1 for c in numbers.values()):
        report.problems.append(f"an article number was confirmed twice: {[n for n, c in numbers.items() if c > 1]}")
    report.wall_s = round(max(last_reply - first_action, 1e-9), 1)
    report.replies_per_s = round(report.replies / report.wall_s, 2)
    everything = [x for v in latencies.values() for x in v]
    report.latency_ms = {k: _stats(v) for k, v in sorted(latencies.items())}
    if everything:
        report.latency_ms["all"] = _stats(everything)
    for name in ("lost", "duplicated", "unexpected", "wrong_chat", "bad_content", "timeouts"):
        if getattr(report, name):
            report.problems.append(f"{name.replace('_', ' ')}: {getattr(report, name)}")
    # the reindex: started, its status message edited, finished
    if soak.reindex_status is None:
        report.problems.append("the admin's /reindex got no status message")
    else:
        status = soak.api.find(ADMIN, soak.reindex_status)
        progress = [t for t, html in status.edits if html.startswith("Reindexing")]
        found = re.match(r"Reindex done: (\d+) articles, (\d+) passages in ([\d.]+) s", status.text)
        report.reindex = {
            "done": bool(found),
            "final_text": status.text[:120],
            "edits": len(status.edits),
            "progress_edits": len(progress),
            "articles": int(found.group(1)) if found else None,
            "passages": int(found.group(2)) if found else None,
            "seconds": float(found.group(3)) if found else None,
            "wall_s": round(status.edits[-1][0] - soak.reindex_sent_at, 1) if status.edits else None,
            "started_at_s": round(soak.reindex_sent_at - soak.start, 1),
        }
        if not found:
            report.problems.append(f"the reindex did not finish: {status.text[:100]!r}")
        if status.edits:
            begin, end = soak.reindex_sent_at, status.edits[-1][0]
            split: dict[str, list[float]] = {"during": [], "outside": []}
            for a in tracker.actions:
                if a.finished_at is not None and (a.expect or a.query_id) and a.kind not in ("reindex", "stats"):
                    overlaps = a.sent_at < end and a.finished_at > begin
                    split["during" if overlaps else "outside"].append((a.finished_at - a.sent_at) * 1000)
            report.latency_reindex_ms = {k: _stats(v) for k, v in split.items() if v}
        if not status.edits:
            report.problems.append("the reindex status message was never edited")
    # nothing lost from the collection
    if soak.stats_text is not None:
        found = re.search(r"Articles: (\d+)", soak.stats_text)
        report.articles_final = int(found.group(1)) if found else None
    expected_total = report.articles_seeded + report.articles_added
    if report.articles_final != expected_total:
        report.problems.append(
            f"/stats counts {report.articles_final} articles; {report.articles_seeded} were loaded and "
            f"{report.articles_added} confirmed added"
        )


# ---- the whole run -----------------------------------------------------------------------------------------


def seed_articles(api: BotApiEmulator, cfg: SoakConfig, deadline: float) -> int:
    """The news articles and the fillers, uploaded by the admin as files (as an editor loads a collection)."""
    docs = [(f"news-{i}.txt", f"{title}\n\n{body}") for i, (title, body) in enumerate(ARTICLES)]
    docs += [(f"newsletter-{i}.txt", "\n\n".join(filler_article(i, cfg.filler_words))) for i in range(cfg.fillers)]
    for name, text in docs:
        mark = api.mark(ADMIN)
        api.send_document(ADMIN, ADMIN, name, text.encode())
        [reply] = api.wait_messages(ADMIN, 1, after=mark, timeout=max(1.0, min(180.0, deadline - time.monotonic())))
        if not reply.text.startswith("Added article"):
            raise RuntimeError(f"could not load {name}: {reply.text}")
    return len(docs)


def warm_up(api: BotApiEmulator, deadline: float) -> dict[str, str]:
    """Every question at once, each from its own user, before the clock starts: the model and the worker
    threads are warm (memory measured from here on is the steady state), and each answer's kind is known."""
    questions = (*ANSWERABLE, *OFF_TOPIC)
    marks = {WARMUP_USER + i: api.mark(WARMUP_USER + i) for i in range(len(questions))}
    for i, question in enumerate(questions):
        api.send_text(WARMUP_USER + i, WARMUP_USER + i, question)
    found: dict[str, str] = {}
    for i, question in enumerate(questions):
        uid = WARMUP_USER + i
        timeout = max(1.0, min(180.0, deadline - time.monotonic()))
        [reply] = api.wait_messages(uid, 1, after=marks[uid], timeout=timeout)
        found[question] = signature(Seen(uid, reply.message_id, reply.text, None, (), 0, reply.at))
    return found


def check_log(log: str) -> list[str]:
    """Log records with a traceback or at ERROR level (the soak injects no faults: there must be none)."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    return [r[:2000] for r in records if "Traceback" in r or re.match(r"\S+ \S+ (ERROR|CRITICAL) ", r)]


def run_soak(cfg: SoakConfig, work: Path, *, log: Callable[[str], None] = lambda msg: None) -> SoakReport:
    """Start the emulator and `articlebot serve` in `work`, load the articles, run the users, check."""
    hard_deadline = time.monotonic() + cfg.hard_deadline_s
    report = SoakReport(
        cfg.users,
        cfg.seconds,
        cfg.n_groups,
        cfg.think_s,
        rss_growth_limit_pct=cfg.rss_growth_limit_pct,
        rss_trend_limit_pct=cfg.rss_trend_limit_pct,
    )
    report.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report.machine_cpus = os.cpu_count() or 0
    t_setup = time.monotonic()
    with BotApiEmulator(username=BOT_USERNAME) as api:
        config = write_config(
            work / "config.yaml",
            telegram={"rate_limit_per_minute": 1000, "list_page_size": PAGE_SIZE, "who_can_add": "everyone"},
        )
        bot = BotProcess(api, config, work / "data", work / "bot.log", admins=str(ADMIN))
        try:
            bot.wait_ready(timeout=min(cfg.setup_timeout_s, 300.0))
            log(f"bot ready in {time.monotonic() - t_setup:.1f} s; loading {len(ARTICLES) + cfg.fillers} articles")
            setup_deadline = min(hard_deadline, t_setup + cfg.setup_timeout_s)
            report.articles_seeded = seed_articles(api, cfg, setup_deadline)
            signatures = warm_up(api, setup_deadline)
            answered = sum(v != "refused" for q, v in signatures.items() if q in ANSWERABLE)
            log(f"warm-up: {answered}/{len(ANSWERABLE)} answerable questions answered; soak starts")
            report.setup_s = round(time.monotonic() - t_setup, 1)
            loop = asyncio.new_event_loop()
            tracker = Tracker(loop)
            tracker.signatures = signatures
            soak = Soak(api, cfg, tracker, hard_deadline - 90)
            api.add_listener(tracker.listener)
            with RssSampler(bot.proc.pid) as sampler:
                try:
                    loop.run_until_complete(soak.run())
                finally:
                    api.remove_listener(tracker.listener)
                    loop.close()
                soak_end = soak.start + cfg.seconds
            report.load_average.update(zip(("end_1", "end_5", "end_15"), os.getloadavg(), strict=True))
            evaluate(report, soak, tracker, PAGE_SIZE)
            _memory(report, sampler.samples, soak.start, min(soak_end, sampler.samples[-1].t if sampler.samples else 0))
        finally:
            report.bot_exit_code = bot.terminate()
        report.api_errors = [f"{m}: {d}" for m, d in api.errors if (m, d) not in ALLOWED_API_ERRORS]
        report.log_problems = check_log(bot.log_text())
    if report.api_errors:
        report.problems.append(f"{len(report.api_errors)} Bot API call(s) refused, e.g. {report.api_errors[0]}")
    if report.log_problems:
        report.problems.append(
            f"{len(report.log_problems)} error record(s) in the bot's log, e.g. {report.log_problems[0][:300]}"
        )
    if report.bot_exit_code != 0:
        report.problems.append(f"the bot exited with {report.bot_exit_code} on SIGTERM")
    if time.monotonic() > hard_deadline:
        report.problems.append(f"the run overran its hard deadline of {cfg.hard_deadline_s:.0f} s")
    return report
