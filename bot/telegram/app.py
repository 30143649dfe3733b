"""Builds and runs the Telegram Application: long polling by default, a webhook when given a URL.

The engine is built once by the caller (`articlebot serve`) and handed to the handlers through
`bot_data` in post_init (PTB examples/contexttypesbot.py). Updates from different chats run
concurrently; a chat's updates run in order (ordering.PerChatOrderProcessor). On SIGTERM/SIGINT PTB stops
fetching, then waits for every update already fetched and every task the handlers started (an article
being added is stored and confirmed, a reindex finishes), then exits.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import ApplicationBuilder, ContextTypes

from bot.telegram import handlers
from bot.telegram.access import Access, RateLimiter
from bot.telegram.context import BotApplication, BotContext, BotData
from bot.telegram.ordering import PerChatOrderProcessor
from engine.config import Settings
from engine.errors import UserError
from engine.service import Engine

log = logging.getLogger(__name__)

# Adds fetch and embed; two at a time keep the 2-core machine's questions answered while they run (the
# asyncio default pool, which questions use, is never taken by a slow link).
ADD_THREADS = 2
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
PUBLIC_COMMANDS = [
    BotCommand("ask", "Ask a question about the articles"),
    BotCommand("list", "Browse the articles"),
    BotCommand("help", "What I do and how to ask"),
]
ADD_COMMAND = BotCommand("add", "Add an article: /add URL, or /add and pasted text")
ADMIN_COMMANDS = [
    BotCommand("remove", "Remove an article: /remove ID"),
    BotCommand("reindex", "Rebuild the search index"),
    BotCommand("stats", "Articles, passages, index size, model, uptime"),
]


class _RedactToken(logging.Filter):
    """The token is part of every Bot API URL; make sure no log line ever carries it."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), None
        # A rejected token comes back in the exception's own text ("The token `...` was rejected"): the
        # traceback is formatted here, redacted, and kept as the text the handler prints.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def redact(self, text: str) -> str:
        return text.replace(self.token, "<token>")


def _token() -> str:
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise UserError(
            "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you (it is read only from the environment)."
        )
    return token


def _protect_logs(token: str) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # logs every request URL, token included
    redact = _RedactToken(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)


def build_application(settings: Settings, engine: Engine) -> BotApplication:
    """The Application with its handlers; services go into bot_data at post_init."""
    tg = settings.telegram
    builder = (
        ApplicationBuilder()
        .token(_token())
        .context_types(ContextTypes(context=BotContext, bot_data=BotData))
        .concurrent_updates(PerChatOrderProcessor())
        .post_init(functools.partial(_post_init, settings=settings, engine=engine))
        .post_shutdown(_post_shutdown)
    )
    if tg.base_url:
        builder = builder.base_url(tg.base_url)
    if tg.base_file_url:
        builder = builder.base_file_url(tg.base_file_url)
    app: BotApplication = builder.build()  # type: ignore[assignment]
    handlers.register(app)
    return app


async def _post_init(app: BotApplication, *, settings: Settings, engine: Engine) -> None:
    data = app.bot_data
    data.engine = engine
    data.settings = settings
    data.access = Access(settings.telegram)
    data.limiter = RateLimiter(settings.telegram.rate_limit_per_minute)
    data.adds = ThreadPoolExecutor(ADD_THREADS, thread_name_prefix="add")
    await register_commands(app, settings)
    for notice in engine.notices:
        log.warning("engine: %s", notice)
    log.info("bot @%s ready: %d articles", app.bot.username, engine.count())


async def _post_shutdown(app: BotApplication) -> None:
    """After every update and task has finished (adds included): let the add threads go."""
    if app.bot_data.adds is not None:
        app.bot_data.adds.shutdown(wait=True)


async def register_commands(app: BotApplication, settings: Settings) -> None:
    """setMyCommands: everyone sees ask/list/help (and add if allowed); admins also the admin commands."""
    public = list(PUBLIC_COMMANDS)
    if settings.telegram.who_can_add == "everyone":
        public.insert(1, ADD_COMMAND)
    await app.bot.set_my_commands(public)
    for admin in settings.telegram.admins:
        try:
            await app.bot.set_my_commands(
                [*PUBLIC_COMMANDS[:1], ADD_COMMAND, *PUBLIC_COMMANDS[1:], *ADMIN_COMMANDS],
                scope=BotCommandScopeChat(admin),
            )
        except TelegramError as exc:  # the admin has not opened a chat with the bot yet
            log.info("admin commands not registered for %s: %s", admin, exc)


def serve(
    settings: Settings,
    engine: Engine,
    *,
    webhook_url: str | None = None,
    listen: str = "127.0.0.1",
    port: int = 8443,
) -> None:
    """Run the bot until SIGINT/SIGTERM: long polling, or a webhook at `webhook_url` on listen:port."""
    token = _token()
    _protect_logs(token)
    app = build_application(settings, engine)
    try:
        _run(app, settings, webhook_url, listen, port)
    except TelegramError as exc:
        raise _start_failed(exc, token) from None
    log.info("bot stopped")


def _run(app: BotApplication, settings: Settings, webhook_url: str | None, listen: str, port: int) -> None:
    if webhook_url:
        path = urllib.parse.urlsplit(webhook_url).path.strip("/")
        log.info("starting the bot with a webhook at %s (listening on %s:%d)", webhook_url, listen, port)
        app.run_webhook(
            listen=listen,
            port=port,
            url_path=path,
            webhook_url=webhook_url,
            secret_token=secrets.token_urlsafe(32),  # Telegram sends it back; other callers are refused
            allowed_updates=ALLOWED_UPDATES,
            bootstrap_retries=3,
        )
    else:
        log.info("starting the bot with long polling")
        app.run_polling(allowed_updates=ALLOWED_UPDATES, timeout=settings.telegram.poll_timeout_s, bootstrap_retries=3)


def _start_failed(exc: TelegramError, token: str) -> UserError:
    """What `serve` says when the bot cannot start: one line, never the token (Telegram's own message for a
    rejected token quotes it)."""
    if isinstance(exc, InvalidToken):
        return UserError(
            "Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped): get the current one from @BotFather."
        )
    return UserError(f"Could not start the bot: {str(exc).replace(token, '<token>')}")
