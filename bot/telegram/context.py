"""The typed CallbackContext: handlers reach the engine and settings through it (PTB contexttypesbot)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from telegram.ext import Application, CallbackContext, ExtBot

from bot.telegram.access import Access, RateLimiter

T = TypeVar("T")

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.service import Engine


@dataclass
class BotData:
    """Built empty by PTB; filled once in post_init with the services built at start-up."""

    engine: Engine | None = None
    settings: Settings | None = None
    access: Access | None = None
    limiter: RateLimiter | None = None
    adds: ThreadPoolExecutor | None = None  # adds run here, apart from the threads questions are answered on
    reindexing: bool = False


class BotContext(CallbackContext[ExtBot[None], dict, dict, BotData]):  # type: ignore[type-arg]
    """CallbackContext with typed shortcuts to the services."""

    @property
    def engine(self) -> Engine:
        return _ready(self.bot_data.engine, "the engine")

    @property
    def settings(self) -> Settings:
        return _ready(self.bot_data.settings, "the settings")

    @property
    def access(self) -> Access:
        return _ready(self.bot_data.access, "the access rules")

    @property
    def limiter(self) -> RateLimiter:
        return _ready(self.bot_data.limiter, "the rate limiter")

    @property
    def adds(self) -> ThreadPoolExecutor:
        return _ready(self.bot_data.adds, "the add threads")


def _ready(service: T | None, what: str) -> T:
    if service is None:
        raise RuntimeError(f"{what}: not set, post_init has not run")
    return service


BotApplication = Application[ExtBot[None], BotContext, dict, dict, BotData, None]  # type: ignore[type-arg]
