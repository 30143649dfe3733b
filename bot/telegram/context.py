"""The typed CallbackContext: handlers reach the engine and settings through it (PTB contexttypesbot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram.ext import Application, CallbackContext, ExtBot

from bot.telegram.access import Access, RateLimiter

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
    reindexing: bool = False


class BotContext(CallbackContext[ExtBot[None], dict, dict, BotData]):  # type: ignore[type-arg]
    """CallbackContext with typed shortcuts to the services."""

    @property
    def engine(self) -> Engine:
        engine = self.bot_data.engine
        if engine is None:
            raise RuntimeError("the engine is not set: post_init has not run")
        return engine

    @property
    def settings(self) -> Settings:
        settings = self.bot_data.settings
        if settings is None:
            raise RuntimeError("the settings are not set: post_init has not run")
        return settings

    @property
    def access(self) -> Access:
        access = self.bot_data.access
        if access is None:
            raise RuntimeError("access rules are not set: post_init has not run")
        return access

    @property
    def limiter(self) -> RateLimiter:
        limiter = self.bot_data.limiter
        if limiter is None:
            raise RuntimeError("the rate limiter is not set: post_init has not run")
        return limiter


BotApplication = Application[ExtBot[None], BotContext, dict, dict, BotData, None]  # type: ignore[type-arg]
