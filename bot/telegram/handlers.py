"""Thin handlers: parse the update, make one engine call off the event loop, format, reply."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import html
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.render import positive_number
from bot.telegram import callbacks
from bot.telegram import format as fmt
from bot.telegram.access import Action
from bot.telegram.context import BotContext
from corpus.extract import SUPPORTED_SUFFIXES
from corpus.fetch import suffix_for_type
from engine.errors import UserError

log = logging.getLogger(__name__)

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API serves files up to 20 MB to bots
PROGRESS_EVERY_S = 2.0
GROUP_PROGRESS_EVERY_S = 5.0  # Telegram allows a bot about 20 messages a minute in one group
TYPING_EVERY_S = 4.5
# One /add fetches its links one after another (up to corpus.fetch_timeout_s each): more than a few in one
# message is a list to paste over several messages, or a way to keep the bot busy.
MAX_LINKS_PER_ADD = 10
_MESSAGES = filters.UpdateType.MESSAGE  # edited messages are not questions asked again
T = TypeVar("T")


# ---- plumbing --------------------------------------------------------------------------------------


async def send(update: Update, reply: str | Sequence[str], markup: InlineKeyboardMarkup | None = None) -> Message:
    """Reply with HTML (split to fit) or ready parts, in order; buttons go under the last part.
    In groups the first part quotes the message it answers."""
    message = update.effective_message
    assert message is not None
    parts = fmt.split_html(reply) if isinstance(reply, str) else reply
    sent: Message | None = None
    for i, part in enumerate(parts):
        sent = await message.reply_html(
            part,
            reply_markup=markup if i == len(parts) - 1 else None,
            do_quote=None if i == 0 else False,
            disable_web_page_preview=True,
            allow_sending_without_reply=True,  # the question may be deleted before its answer is ready
        )
    assert sent is not None, "no part to send"
    return sent


async def say(update: Update, text: str) -> None:
    """A short notice: as a callback answer (toast) for buttons, as a reply for messages."""
    if update.callback_query is not None:
        plain = html.unescape(re.sub(r"<[^<>]*>", "", text))
        await update.callback_query.answer(fmt.shorten(plain, 200))
    elif update.effective_message is not None:
        await send(update, text)


async def admit(update: Update, context: BotContext, action: Action, command: str) -> bool:
    """Rate limit, then role check; a refusal is explained to the user once and logged."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return False
    sender = _sender(update)
    verdict = context.limiter.hit(sender)
    if verdict != "ok":
        log.info("rate limited sender %s in chat %s (%s)", sender, chat.id, command)
        if verdict == "warn":
            await say(update, fmt.slow_down(context.limiter.per_minute))
        elif update.callback_query is not None:
            await update.callback_query.answer()
        return False
    if sender != user.id and not context.access.can_act_anonymously(action):
        log.info("refused %s to a message sent as chat %s", command, sender)
        await say(update, fmt.esc(fmt.anonymous_refusal(command)))
        return False
    reason = context.access.refusal(action, user.id, chat.id, command)
    if reason:
        log.info("refused %s to user %s in chat %s: %s", command, user.id, chat.id, reason)
        await say(update, fmt.esc(reason))
        return False
    return True


@contextlib.asynccontextmanager
async def typing(context: BotContext, chat_id: int) -> AsyncIterator[None]:
    """Show "typing" in the chat while the body runs (Telegram clears it after 5 s, so repeat)."""
    done = asyncio.Event()

    async def keep_typing() -> None:
        while not done.is_set():
            with contextlib.suppress(TelegramError):
                await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), TYPING_EVERY_S)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        done.set()
        # Let a call in flight finish rather than abort its connection; never wait long (wait_for cancels).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 1.0)


def _topic(message: Message | None) -> int | None:
    """The forum topic a message is in (a message sent to its chat should land there too)."""
    return message.message_thread_id if message is not None and message.is_topic_message else None


def _sender(update: Update) -> int:
    """Who sent it, for rate limits and list buttons: the user, or the group or channel a message was sent as
    (`sender_chat`: anonymous admins of every group share one user id; each group is its own sender)."""
    message = update.effective_message if update.callback_query is None else None
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id
    user = update.effective_user
    return user.id if user is not None else 0


async def _adding(context: BotContext, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an add on the bot's own small pool of add threads: a link that is slow to answer holds one of
    them, never a thread that questions are answered on."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(context.adds, functools.partial(fn, *args, **kwargs))


def _added_by(update: Update) -> str:
    user = update.effective_user
    return f"telegram:{user.id}" if user else "telegram"


def _command_body(message: Message) -> str:
    """What follows the command, newlines kept (pasted text)."""
    text = message.text or ""
    first = message.entities[0] if message.entities else None
    if first is not None and first.type == MessageEntity.BOT_COMMAND and first.offset == 0:
        return text[first.length :].strip()  # commands are ASCII: UTF-16 length == str length
    return text.strip()


# ---- asking ----------------------------------------------------------------------------------------


async def answer_question(update: Update, context: BotContext, question: str, command: str) -> None:
    if not await admit(update, context, "ask", command):
        return
    if not question.strip():
        await say(update, f"Ask me a question about the articles, for example: /ask {fmt.esc(fmt.EXAMPLE_QUESTION)}")
        return
    chat = update.effective_chat
    assert chat is not None
    async with typing(context, chat.id):
        # the day the message was sent (Telegram's clock, in UTC like `today()`): its recent articles rank higher
        sent = update.effective_message.date if update.effective_message else None
        day = sent.astimezone(datetime.UTC).date() if sent else None
        answer = await asyncio.to_thread(context.engine.ask, question, asked_on=day)
    await send(update, fmt.answer_messages(answer), fmt.answer_keyboard(answer))


async def on_private_text(update: Update, context: BotContext) -> None:
    """In a private chat any text is a question."""
    message = update.effective_message
    assert message is not None
    await answer_question(update, context, message.text or "", "question")


async def on_group_text(update: Update, context: BotContext) -> None:
    """In a group: only when mentioned or when replying to one of the bot's messages."""
    message = update.effective_message
    assert message is not None
    me = f"@{context.bot.username}".lower()
    text = message.text or ""
    mentions = [e for e in message.entities if e.type == MessageEntity.MENTION]
    mentioned = any(message.parse_entity(e).lower() == me for e in mentions)
    replied = bool(
        message.reply_to_message
        and message.reply_to_message.from_user
        and message.reply_to_message.from_user.id == context.bot.id
    )
    if not (mentioned or replied):
        return
    if mentioned:
        for e in sorted(mentions, key=lambda e: e.offset, reverse=True):
            if message.parse_entity(e).lower() == me:
                # offsets are UTF-16 units; parse_entity found the same text, so cut by it
                text = text.replace(message.parse_entity(e), " ", 1)
    await answer_question(update, context, " ".join(text.split()), "question")


async def on_ask(update: Update, context: BotContext) -> None:
    message = update.effective_message
    assert message is not None
    await answer_question(update, context, _command_body(message), "/ask")


async def on_passage(update: Update, context: BotContext) -> None:
    """ "Show passage": the whole passage a citation came from, as a reply to the answer."""
    query = update.callback_query
    assert query is not None
    chunk_id = callbacks.parse_passage(query.data)
    if chunk_id is None:
        await query.answer("This button is no longer valid.")
        return
    if not await admit(update, context, "ask", "Show passage"):
        return
    found = await asyncio.to_thread(context.engine.passage, chunk_id)
    if found is None:
        await query.answer("That passage is no longer in the collection (it was removed or reindexed). Ask again.")
        return
    await query.answer()
    parts = fmt.passage_messages(*found)
    message = query.message
    if isinstance(message, Message) and message.is_accessible:
        for part in parts:
            await message.reply_html(
                part, do_quote=True, disable_web_page_preview=True, allow_sending_without_reply=True
            )
    else:  # too old for Telegram to show us: send it to the chat instead
        chat = update.effective_chat
        assert chat is not None
        for part in parts:
            await context.bot.send_message(
                chat.id, part, parse_mode=ParseMode.HTML, message_thread_id=_topic(update.effective_message)
            )


# ---- adding ----------------------------------------------------------------------------------------


def _is_url(token: str) -> bool:
    return token.lower().startswith(("http://", "https://")) and len(token) > 8


async def on_add(update: Update, context: BotContext) -> None:
    """/add URL..., or /add followed by pasted text (first line the title)."""
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and chat is not None
    if not await admit(update, context, "add", "/add"):
        return
    body = _command_body(message)
    if not body:
        await say(
            update,
            "Send /add with a link (<i>/add https://example.com/story</i>), or /add followed by "
            "the article's text with its title on the first line, or send me the file.",
        )
        return
    tokens = body.split()
    links = all(_is_url(t) for t in tokens)
    if links and len(tokens) > MAX_LINKS_PER_ADD:
        await say(
            update,
            f"That is {len(tokens)} links; send at most {MAX_LINKS_PER_ADD} per /add (the rest in another message).",
        )
        return
    async with typing(context, chat.id):
        if links:
            results = await _adding(context, context.engine.add, tokens, added_by=_added_by(update))
        else:
            results = [await _adding(context, context.engine.add_text, body, added_by=_added_by(update))]
    await send(update, fmt.added_message(results))


def _caption_is_add(caption: str | None, username: str) -> bool:
    words = (caption or "").split()
    return bool(words) and words[0].lower() in ("/add", f"/add@{username.lower()}")


async def on_document(update: Update, context: BotContext) -> None:
    """A file sent to the bot (in groups: with the caption /add); size and type checked before download."""
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and chat is not None and message.document is not None
    if chat.type != ChatType.PRIVATE and not _caption_is_add(message.caption, context.bot.username):
        return
    if not await admit(update, context, "add", "document"):
        return
    doc = message.document
    name = doc.file_name or "the file"
    suffix = Path(doc.file_name or "").suffix.lower()
    typed = suffix_for_type(doc.mime_type or "")  # no name, or one without a suffix: read it by its type, as a link
    if not suffix and typed is not None:
        suffix = typed
        name = f"{Path(doc.file_name or 'document').name}{suffix}"
    if suffix not in SUPPORTED_SUFFIXES:
        await say(update, f"Could not add {fmt.esc(name)}: I can only read {fmt.file_kinds(SUPPORTED_SUFFIXES)} files.")
        return
    limit = min(int(context.settings.corpus.max_file_mb * 1_000_000), TELEGRAM_DOWNLOAD_LIMIT)
    if doc.file_size is not None and doc.file_size > limit:
        await say(
            update,
            f"Could not add {fmt.esc(name)}: it is {doc.file_size / 1_000_000:.1f} MB and the "
            f"limit is {limit / 1_000_000:g} MB.",
        )
        return
    async with typing(context, chat.id):
        try:
            file = await doc.get_file()
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:  # Telegram refused or failed to hand over the file: say so
            log.warning("could not download %s for user %s: %s", name, _added_by(update), exc)
            await say(
                update,
                f"Could not add {fmt.esc(name)}: Telegram did not hand over the file ({fmt.esc(str(exc))}). "
                "Please send it again.",
            )
            return
        result = await _adding(context, context.engine.add_upload, name, data, added_by=_added_by(update))
    await send(update, fmt.added_message([result]))


# ---- browsing --------------------------------------------------------------------------------------


async def _page(context: BotContext, page: int, user_id: int) -> tuple[str, InlineKeyboardMarkup | None]:
    size = context.settings.telegram.list_page_size
    total = await asyncio.to_thread(context.engine.count)
    page = min(page, fmt.pages(total, size) - 1)
    articles = await asyncio.to_thread(context.engine.list_articles, page * size, size)
    return fmt.list_message(articles, page, size, total), fmt.list_keyboard(page, total, size, user_id)


async def on_list(update: Update, context: BotContext) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    if not await admit(update, context, "ask", "/list"):
        return
    number = positive_number(_command_body(message))
    page = number - 1 if number is not None else 0
    # a list asked for as a group or channel (anonymous admins) can be paged by anyone: owner 0
    text, markup = await _page(context, page, user.id if _sender(update) == user.id else 0)
    await send(update, text, markup)


async def on_list_page(update: Update, context: BotContext) -> None:
    """Prev/next: the data is checked (format, owner, range) before the list message is edited."""
    query = update.callback_query
    assert query is not None
    parsed = callbacks.parse_page(query.data)
    if parsed is None:
        await query.answer("This button is no longer valid.")
        return
    page, owner = parsed
    if owner not in (0, query.from_user.id):
        await query.answer("These buttons belong to someone else's list. Send /list to get your own.")
        return
    if not await admit(update, context, "ask", "/list"):
        return
    size = context.settings.telegram.list_page_size
    total = await asyncio.to_thread(context.engine.count)
    if page >= fmt.pages(total, size):
        await query.answer(f"That page no longer exists: the list has {fmt.pages(total, size)} page(s) now.")
        return
    if query.message is None or not query.message.is_accessible:
        await query.answer("This list is too old to change. Send /list again.")
        return
    text, markup = await _page(context, page, owner)
    try:
        await query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True
        )
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise
    await query.answer()


async def on_unknown_button(update: Update, context: BotContext) -> None:
    assert update.callback_query is not None
    await update.callback_query.answer("This button is no longer valid.")


async def on_help(update: Update, context: BotContext) -> None:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    if not await admit(update, context, "ask", "/help"):
        return
    access = context.access
    private = chat.type == ChatType.PRIVATE
    can_add = access.can_add(user.id)
    await send(
        update,
        fmt.help_message(
            is_admin=access.is_admin(user.id), can_add=can_add, private=private, suffixes=SUPPORTED_SUFFIXES
        ),
    )


async def on_not_text(update: Update, context: BotContext) -> None:
    """A photo, sticker, voice note... in a private chat: say what the bot reads instead of staying silent."""
    if not await admit(update, context, "ask", "media"):
        return
    await say(update, fmt.esc(fmt.not_text(SUPPORTED_SUFFIXES)))


async def on_unknown_command(update: Update, context: BotContext) -> None:
    """Commands the bot lacks; ignored when for another bot (/cmd@other) or bare in a group."""
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    command = (message.text or "").split()[0]
    _, _, addressee = command.partition("@")
    if addressee and addressee.lower() != context.bot.username.lower():
        return
    if not addressee and chat.type != ChatType.PRIVATE:
        return
    if not await admit(update, context, "ask", command):
        return
    await say(update, fmt.unknown_command(command.split("@")[0]))


# ---- admin -----------------------------------------------------------------------------------------


async def on_remove(update: Update, context: BotContext) -> None:
    message = update.effective_message
    assert message is not None
    if not await admit(update, context, "admin", "/remove"):
        return
    number = positive_number(_command_body(message))
    if number is None:
        await say(update, "Send /remove with the article's number, as /list shows it, e.g. <i>/remove 3</i>.")
        return
    article = await asyncio.to_thread(context.engine.remove, number)
    await send(update, fmt.removed_message(article))


async def on_stats(update: Update, context: BotContext) -> None:
    if not await admit(update, context, "admin", "/stats"):
        return
    stats = await asyncio.to_thread(context.engine.stats)
    await send(update, fmt.stats_message(stats))


async def on_reindex(update: Update, context: BotContext) -> None:
    """Start the rebuild in the background (the chat stays free); progress edits one message."""
    if not await admit(update, context, "admin", "/reindex"):
        return
    if context.bot_data.reindexing:
        await say(update, "A reindex is already running; I'll say here when it is done.")
        return
    context.bot_data.reindexing = True
    try:
        status = await send(update, fmt.reindex_progress(0, 0, 0))
    except BaseException:
        context.bot_data.reindexing = False
        raise
    context.application.create_task(_reindex(context, status), update=update, name="reindex")


async def _reindex(context: BotContext, status: Message) -> None:
    """Progress is a courtesy: an edit Telegram refuses (flood control, a network hiccup) is skipped and the
    reindex goes on; the result is always said, as a new message if the status cannot be edited."""
    progress = {"done": 0, "total": 0}
    started = time.monotonic()
    every = PROGRESS_EVERY_S if status.chat.type == ChatType.PRIVATE else GROUP_PROGRESS_EVERY_S
    quiet_until = 0.0

    def report(done: int, total: int) -> None:  # called from the worker thread
        progress.update(done=done, total=total)

    try:
        job = asyncio.ensure_future(asyncio.to_thread(context.engine.reindex, report))
        shown = status.text_html
        while not job.done():
            await asyncio.wait({job}, timeout=every)
            text = fmt.reindex_progress(progress["done"], progress["total"], time.monotonic() - started)
            if job.done() or text == shown or time.monotonic() < quiet_until:
                continue
            try:
                await status.edit_text(text, parse_mode=ParseMode.HTML)
                shown = text
            except RetryAfter as exc:
                quiet_until = time.monotonic() + _seconds(exc.retry_after)
            except TelegramError as exc:
                log.warning("reindex progress not shown: %s", exc)
        try:
            final = fmt.reindex_done(job.result())
        except UserError as exc:
            final = fmt.esc(str(exc))
        await _conclude(context, status, final, max(0.0, quiet_until - time.monotonic()))
    finally:
        context.bot_data.reindexing = False


async def _conclude(context: BotContext, status: Message, text: str, wait_s: float) -> None:
    """Put the result in the status message; if Telegram will not edit it, say it in a new message."""
    for attempt in range(3):
        await asyncio.sleep(min(wait_s, 60.0))
        try:
            await status.edit_text(text, parse_mode=ParseMode.HTML)
            return
        except RetryAfter as exc:
            wait_s = _seconds(exc.retry_after)
        except TelegramError as exc:
            log.warning("reindex result not edited in (attempt %d): %s", attempt + 1, exc)
            wait_s = 1.0
    try:
        await context.bot.send_message(
            status.chat_id, text, parse_mode=ParseMode.HTML, message_thread_id=_topic(status)
        )
    except TelegramError as exc:  # flood control longer than the tries above: the log keeps the result
        log.error("reindex result not shown in chat %s (%s): %s", status.chat_id, exc, text)


def _seconds(retry_after: Any) -> float:
    """RetryAfter.retry_after: seconds, or a timedelta where PTB is told to give one."""
    return retry_after.total_seconds() if isinstance(retry_after, datetime.timedelta) else float(retry_after)


# ---- errors ----------------------------------------------------------------------------------------


async def on_error(update: object, context: BotContext) -> None:
    """The one error handler: a user error is shown as is; anything else is logged in full and the user
    gets a short honest message, never a traceback (PTB examples/errorhandlerbot.py)."""
    error = context.error
    try:
        if isinstance(error, UserError):
            log.info("user error: %s", error)
            if isinstance(update, Update):
                await say(update, fmt.esc(str(error)))
            return
        if isinstance(error, NetworkError) and not isinstance(update, Update):
            log.warning("network trouble talking to the Bot API: %s", error)
            return
        log.error("error while handling an update", exc_info=error)
        if isinstance(update, Update) and not isinstance(error, Forbidden):
            if update.callback_query is not None:
                with contextlib.suppress(TelegramError):
                    await update.callback_query.answer("Sorry, something went wrong. It has been logged.")
            elif update.effective_chat is not None:
                await context.bot.send_message(
                    update.effective_chat.id, fmt.SORRY, message_thread_id=_topic(update.effective_message)
                )
        admin_chat = context.settings.telegram.admin_chat_id if context.bot_data.settings else None
        if admin_chat is not None and error is not None:
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            trace = trace.replace(context.bot.token, "<token>")
            where = (
                f" (chat {update.effective_chat.id})" if isinstance(update, Update) and update.effective_chat else ""
            )
            report = f"<b>Error{where}</b>\n<pre>{fmt.esc(trace[-3000:])}</pre>"
            await context.bot.send_message(admin_chat, report, parse_mode=ParseMode.HTML)
    except Exception:  # the error handler must never raise
        log.exception("the error handler failed too")


# ---- registration ----------------------------------------------------------------------------------


def register(app: Application) -> None:  # type: ignore[type-arg]
    """All handlers in group 0; commands addressed to another bot never match CommandHandler."""
    commands = {
        "start": on_help,
        "help": on_help,
        "ask": on_ask,
        "add": on_add,
        "list": on_list,
        "remove": on_remove,
        "reindex": on_reindex,
        "stats": on_stats,
    }
    for name, callback in commands.items():
        app.add_handler(CommandHandler(name, callback, filters=_MESSAGES))
    app.add_handler(MessageHandler(_MESSAGES & filters.COMMAND, on_unknown_command))
    app.add_handler(MessageHandler(_MESSAGES & filters.ChatType.PRIVATE & filters.TEXT, on_private_text))
    app.add_handler(MessageHandler(_MESSAGES & filters.ChatType.GROUPS & filters.TEXT, on_group_text))
    app.add_handler(MessageHandler(_MESSAGES & filters.Document.ALL, on_document))
    media = (
        filters.PHOTO | filters.Sticker.ALL | filters.VOICE | filters.AUDIO | filters.VIDEO | filters.VIDEO_NOTE
        | filters.ANIMATION | filters.LOCATION | filters.CONTACT | filters.POLL
    )
    app.add_handler(MessageHandler(_MESSAGES & filters.ChatType.PRIVATE & media & ~filters.Document.ALL, on_not_text))
    app.add_handler(CallbackQueryHandler(on_passage, pattern=r"^p:"))
    app.add_handler(CallbackQueryHandler(on_list_page, pattern=r"^l:"))
    app.add_handler(CallbackQueryHandler(on_unknown_button))
    app.add_error_handler(on_error)
