"""Who may do what, how often, and in which order the bot handles a chat's messages."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from pydantic import ValidationError
from telegram import Chat, Message, Update, User

from bot.telegram.access import Access, RateLimiter
from bot.telegram.ordering import PerChatOrderProcessor
from engine.config import TelegramSettings

ADMIN, ALICE, BOB, GROUP = 1, 2, 3, -100


def test_admins_may_do_everything_others_are_told_why_not() -> None:
    access = Access(TelegramSettings(admins=[ADMIN], who_can_add="admins"))
    assert access.refusal("admin", ADMIN, ADMIN, "/reindex") is None
    assert access.refusal("add", ADMIN, GROUP, "/add") is None
    assert access.refusal("admin", ALICE, ALICE, "/reindex") == "Sorry, only the bot's admins can use /reindex."
    assert access.refusal("add", ALICE, ALICE, "/add") == "Sorry, only the bot's admins can add articles."
    assert access.refusal("ask", ALICE, GROUP, "question") is None


def test_add_allowlist() -> None:
    access = Access(TelegramSettings(admins=[ADMIN], who_can_add="allowlist", add_allowlist=[ALICE]))
    assert access.refusal("add", ALICE, ALICE, "/add") is None
    assert "allowlist" in (access.refusal("add", BOB, BOB, "/add") or "")
    assert Access(TelegramSettings(who_can_add="everyone")).refusal("add", BOB, BOB, "/add") is None


def test_ask_allowlist_admits_listed_users_and_chats() -> None:
    access = Access(TelegramSettings(admins=[ADMIN], ask_allowlist=[ALICE, GROUP]))
    assert access.refusal("ask", ALICE, ALICE, "question") is None
    assert access.refusal("ask", BOB, GROUP, "question") is None  # anyone in an allowed group
    assert access.refusal("ask", ADMIN, ADMIN, "question") is None
    reason = access.refusal("ask", BOB, BOB, "question")
    assert reason and "approved users and chats" in reason
    assert access.refusal("add", BOB, BOB, "/add") == reason  # who may not ask may not add either


def test_messages_sent_as_a_group_may_ask_and_add_but_no_admin_command() -> None:
    everyone = Access(TelegramSettings(who_can_add="everyone"))
    assert everyone.can_act_anonymously("ask") and everyone.can_act_anonymously("add")
    assert not everyone.can_act_anonymously("admin")
    assert not Access(TelegramSettings(who_can_add="admins")).can_act_anonymously("add")
    for shared in (1087968824, 136817688, 777000):  # GroupAnonymousBot, Channel_Bot, Telegram
        with pytest.raises(ValidationError, match=f"{shared} is the id Telegram gives every message sent as"):
            TelegramSettings(admins=[ADMIN, shared])
        with pytest.raises(ValidationError, match=f"{shared} is the id"):
            TelegramSettings(add_allowlist=[shared])


def test_rate_limit_is_a_sliding_window_with_one_warning() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    verdicts = []
    for t in (0, 10, 20, 21, 22, 59, 60.5, 61, 70, 82, 83):
        now[0] = t
        verdicts.append(limiter.hit(ALICE))
    # 3 in any minute; the first refused one warns, the next warning comes a window later (t=83).
    assert verdicts == ["ok", "ok", "ok", "warn", "drop", "drop", "ok", "drop", "ok", "ok", "warn"]
    assert limiter.hit(BOB) == "ok"  # per user


def test_rate_limiter_forgets_idle_users() -> None:
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    for user in range(5000):
        limiter.hit(user)
    now[0] = 1000.0
    for _ in range(1000):
        limiter.hit(ALICE)
    assert len(limiter._hits) < 10


def _update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE if chat_id > 0 else Chat.GROUP)
    message = Message(update_id, dt.datetime.now(dt.UTC), chat, from_user=User(7, "u", False), text="x")
    return Update(update_id, message=message)


async def test_a_chats_updates_run_in_order_and_chats_run_concurrently() -> None:
    processor = PerChatOrderProcessor(running=8)
    log: list[tuple[str, int, int]] = []

    async def handle(chat: int, n: int, delay: float) -> None:
        log.append(("start", chat, n))
        await asyncio.sleep(delay)
        log.append(("end", chat, n))

    # chat 1's first update is slow; its later ones must wait; chat 2's must not.
    plan = [(1, 0, 0.3), (1, 1, 0.0), (2, 0, 0.0), (1, 2, 0.05), (2, 1, 0.0)]
    tasks = [
        asyncio.create_task(processor.process_update(_update(i, chat), handle(chat, n, delay)))
        for i, (chat, n, delay) in enumerate(plan)
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    chat1 = [(kind, n) for kind, chat, n in log if chat == 1]
    assert chat1 == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert log.index(("end", 2, 1)) < log.index(("end", 1, 0))  # chat 2 did not wait for chat 1


async def test_a_failing_update_does_not_stall_its_chat() -> None:
    processor = PerChatOrderProcessor()
    done: list[int] = []

    async def boom() -> None:
        raise RuntimeError("handler bug")

    async def ok() -> None:
        done.append(1)

    first = asyncio.create_task(processor.process_update(_update(1, 5), boom()))
    second = asyncio.create_task(processor.process_update(_update(2, 5), ok()))
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(first, 5)
    await asyncio.wait_for(second, 5)
    assert done == [1]
