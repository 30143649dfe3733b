"""Updates of different chats run concurrently; within one chat they run one after another, in order."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# The base class holds a semaphore slot from the moment an update arrives; it is set this high so that
# arrival never waits on it (which could reorder a chat's updates). `running` bounds real concurrency.
_ADMISSION = 100_000


class PerChatOrderProcessor(BaseUpdateProcessor):
    """Chains each chat's updates: an update starts when the previous one of its chat has finished.

    PTB starts one task per update in the order the updates arrive, and `do_process_update` runs up
    to its first await in that order, so the chain is built in arrival order.
    """

    def __init__(self, running: int = 64):
        super().__init__(_ADMISSION)
        self._running = asyncio.Semaphore(running)
        self._tails: dict[int, asyncio.Future[None]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _chat_key(update)
        previous = self._tails.get(key) if key is not None else None
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._tails[key] = mine
        started = False
        try:
            if previous is not None:
                await asyncio.shield(previous)
            async with self._running:
                started = True
                await coroutine
        finally:
            if not started and inspect.iscoroutine(coroutine):
                coroutine.close()
            if not mine.done():
                mine.set_result(None)
            if key is not None and self._tails.get(key) is mine:
                del self._tails[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Wait for the chains still running (PTB's stop() already waits for their tasks)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tails.values())


def _chat_key(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None
