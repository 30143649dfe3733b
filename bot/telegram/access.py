"""Who may do what, and how often: roles from the settings and a per-user sliding-window rate limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from engine.config import TelegramSettings

Action = Literal["ask", "add", "admin"]
Verdict = Literal["ok", "warn", "drop"]


class Access:
    """Roles: admins (config + ARTICLEBOT_ADMINS), who may add, who may ask."""

    def __init__(self, settings: TelegramSettings):
        self.admins = frozenset(settings.admins)
        self.who_can_add = settings.who_can_add
        self.add_allowlist = frozenset(settings.add_allowlist)
        self.ask_allowlist = frozenset(settings.ask_allowlist)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def can_add(self, user_id: int) -> bool:
        if self.who_can_add == "everyone" or self.is_admin(user_id):
            return True
        return self.who_can_add == "allowlist" and user_id in self.add_allowlist

    def can_act_anonymously(self, action: Action) -> bool:
        """Whether a message sent as a group or channel (no person behind it) may do this: ask, and add when
        everyone may."""
        return action == "ask" or (action == "add" and self.who_can_add == "everyone")

    def refusal(self, action: Action, user_id: int, chat_id: int, command: str) -> str | None:
        """None when allowed; otherwise the reason, phrased for the user."""
        if self.is_admin(user_id):
            return None
        if action == "admin":
            return f"Sorry, only the bot's admins can use {command}."
        if self.ask_allowlist and user_id not in self.ask_allowlist and chat_id not in self.ask_allowlist:
            return "Sorry, this bot only answers approved users and chats. Ask an admin for access."
        if action == "add" and not self.can_add(user_id):
            if self.who_can_add == "admins":
                return "Sorry, only the bot's admins can add articles."
            return "Sorry, adding articles is limited to an allowlist of users. Ask an admin to add you."
        return None


class RateLimiter:
    """At most `per_minute` actions per user in any 60 s; the first refused one in a window gets a warning."""

    def __init__(self, per_minute: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}
        self._calls = 0

    def hit(self, user_id: int) -> Verdict:
        now = self.clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        self._calls += 1
        if self._calls % 1000 == 0:
            self._forget_idle(now)
        if len(hits) < self.per_minute:
            hits.append(now)
            return "ok"
        warned = self._warned.get(user_id)
        if warned is None or warned <= now - self.window_s:
            self._warned[user_id] = now
            return "warn"
        return "drop"

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded over months: drop users with no hit in the window."""
        for user_id in [u for u, h in self._hits.items() if not h or h[-1] <= now - self.window_s]:
            del self._hits[user_id]
        for user_id in [u for u, t in self._warned.items() if t <= now - self.window_s]:
            del self._warned[user_id]
