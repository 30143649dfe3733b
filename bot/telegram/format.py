"""Replies in Telegram HTML: everything escaped, every message at most 4,096 UTF-16 units.

Every piece of text that comes from an article, a title, a URL or a user goes through `esc` (or `href`),
so no input can open a tag. Messages are built as blocks joined by blank lines; `split_html` cuts a long
reply between blocks, then between lines, then between words, never inside a tag or an entity, and closes
and reopens the tags that are open at the cut so every part is valid on its own.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from answer.models import Answer, Citation
from bot.render import plural
from bot.telegram import callbacks
from corpus.models import Article
from engine.service import AddResult, ReindexReport, Stats
from index.models import Chunk

MAX_MESSAGE = 4096  # Telegram's limit, in UTF-16 code units of the text after entity parsing
MAX_HREF = 2048  # longer URLs are shown without a link rather than risking a part that cannot be split
REFUSAL = "I couldn't find that in the articles."
EXAMPLE_QUESTION = "How many civilians reportedly died?"

_UNSAFE = re.compile(r"[\ud800-\udfff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TOKEN = re.compile(r"<[^<>]*>|&#?[0-9a-zA-Z]+;|[^<&]")
_TAG_NAME = re.compile(r"</?([a-zA-Z][a-zA-Z0-9-]*)")


# ---- escaping ------------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """Drop control characters and replace lone surrogates, which Telegram refuses as invalid UTF-8."""
    return _UNSAFE.sub(lambda m: "\ufffd" if m.group(0) >= "\ud800" else "", text)


def esc(text: str) -> str:
    """Text for an HTML message body."""
    return html.escape(clean(text), quote=False)


def href(url: str | None) -> str | None:
    """An attribute-safe http(s) URL, or None when it should not be a link."""
    if not url:
        return None
    url = clean(url).strip()
    if not url.lower().startswith(("http://", "https://")) or any(ch.isspace() for ch in url):
        return None
    escaped = html.escape(url, quote=True)
    return escaped if utf16_len(escaped) <= MAX_HREF else None


def link(title: str, url: str | None) -> str:
    target = href(url)
    return f'<a href="{target}">{esc(title)}</a>' if target else esc(title)


def utf16_len(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def shorten(text: str, limit: int) -> str:
    """Plain text cut at a word boundary to at most `limit` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


# ---- splitting -----------------------------------------------------------------------------------------


def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Valid Telegram HTML in, a list of valid parts of at most `limit` UTF-16 units out (no empty part)."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        head, rest = _cut(rest, limit)
        if _has_text(head):
            parts.append(head)
    if _has_text(rest):
        parts.append(rest)
    return parts


def _has_text(part: str) -> bool:
    return bool(html.unescape(re.sub(r"<[^<>]*>", "", part)).strip())


def _closers(stack: Sequence[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Split at the best safe point that fits: blank line at top level, line, word, then any character."""
    stack: list[tuple[str, str]] = []  # (tag name, the opening tag as written)
    used = 0
    closers = 0
    seen_text = False
    # priority -> (index in text, u16 length before it, open tags there)
    best: dict[int, tuple[int, int, tuple[tuple[str, str], ...]]] = {}
    prev = ""
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        size = utf16_len(tok)
        if tok.startswith("</"):
            name = stack.pop()[0]
            closers -= len(name) + 3
        elif tok.startswith("<"):
            tm = _TAG_NAME.match(tok)
            name = tm.group(1).lower() if tm else "b"
            stack.append((name, tok))
            closers += len(name) + 3
        if used + size + closers > limit:
            break
        used += size
        if tok.startswith("<"):
            continue
        seen_text = True
        end = m.end()
        frozen = tuple(stack)
        if tok == "\n":
            prio = (0 if prev == "\n" else 1) if not stack else 2
        elif tok == " ":
            prio = 3
        else:
            prio = 4
        best[prio] = (end, used, frozen)
        if prio < 4:
            best[4] = (end, used, frozen)
        prev = tok
    if not seen_text or not best:
        # Only when the open tags alone nearly fill the limit, which our replies never do (hrefs are capped):
        # cut after the first character, over the limit, rather than loop forever.
        best[4] = _first_character(text)
    choice = None
    for prio in range(5):
        if prio in best and (best[prio][1] >= limit // 2 or prio == 4):
            choice = best[prio]
            break
    assert choice is not None
    index, _, open_tags = choice
    head = text[:index].rstrip(" \n") if not open_tags else text[:index]
    tail = "".join(raw for _, raw in open_tags) + text[index:].lstrip(" \n")
    return head + _closers(open_tags), tail


def _first_character(text: str) -> tuple[int, int, tuple[tuple[str, str], ...]]:
    stack: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok.startswith("</"):
            stack.pop()
        elif tok.startswith("<"):
            tm = _TAG_NAME.match(tok)
            stack.append((tm.group(1).lower() if tm else "b", tok))
        else:
            return m.end(), 0, tuple(stack)
    raise ValueError("no text to split")


def join_blocks(blocks: Iterable[str]) -> list[str]:
    """Blocks (each valid HTML) separated by blank lines, split into sendable parts."""
    return split_html("\n\n".join(b for b in blocks if b))


# ---- answers -------------------------------------------------------------------------------------------


def source_line(c: Citation | Article, n: int | None = None) -> str:
    """'[n] <a href=url>title</a> · outlet · date' (no link when there is no web URL)."""
    parts = [link(c.title or "Untitled", c.url)]
    if c.outlet:
        parts.append(esc(c.outlet))
    if c.published:
        parts.append(esc(c.published))
    elif c.added_at:
        parts.append(f"added {esc(c.added_at[:10])}")
    prefix = f"[{n}] " if n is not None else ""
    return prefix + " · ".join(parts)


def answer_messages(answer: Answer) -> list[str]:
    """The short answer, then each citation as a quote and its source; or the refusal."""
    if answer.abstained or not answer.citations:
        blocks = [esc(REFUSAL)]
        if answer.closest:
            blocks.append("<i>Closest passages I found. I could not tell that they answer the question:</i>")
            blocks.append(
                "\n".join(
                    f"• <i>{esc(shorten(c.quote, 240))}</i> ({link(c.title or 'Untitled', c.url)})"
                    for c in answer.closest
                )
            )
        return join_blocks(blocks)
    blocks = [esc(answer.text)]
    blocks += [f"<blockquote>{esc(c.quote.strip())}</blockquote>\n{source_line(c, c.n)}" for c in answer.citations]
    return join_blocks(blocks)


def answer_keyboard(answer: Answer) -> InlineKeyboardMarkup | None:
    """One "Show passage" button per citation."""
    if answer.abstained or not answer.citations:
        return None
    buttons = [
        InlineKeyboardButton(f"Show passage [{c.n}]", callback_data=callbacks.passage_data(c.chunk_id))
        for c in answer.citations
    ]
    return InlineKeyboardMarkup([buttons[i : i + 3] for i in range(0, len(buttons), 3)])


def passage_messages(article: Article, chunk: Chunk) -> list[str]:
    """The whole passage a citation came from, with its article."""
    head = f"<b>Passage {chunk.seq + 1} of article #{article.id}</b>\n{source_line(article)}"
    return join_blocks([head, f"<blockquote>{esc(chunk.text.strip())}</blockquote>"])


# ---- articles ------------------------------------------------------------------------------------------


def added_message(results: Sequence[AddResult]) -> str:
    """One line per source: added (number, title, passages), duplicate (which one), or why not."""
    lines = []
    for r in results:
        if r.article is not None:
            a = r.article
            lines.append(f"Added article #{a.id}: <b>{esc(a.title)}</b> ({plural(a.passages, 'passage')}).")
        elif r.duplicate is not None:
            d = r.duplicate
            lines.append(f"I already have that one: #{d.id} <b>{esc(d.title)}</b>.")
        else:
            lines.append(f"Could not add it: {esc(r.error or 'unknown reason')}")
    return "\n".join(lines)


def pages(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def list_message(articles: Sequence[Article], page: int, page_size: int, total: int) -> str:
    if total == 0:
        return "No articles yet. Add one with /add URL, /add and pasted text, or by sending me a document."
    first, last = page * page_size + 1, page * page_size + len(articles)
    lines = [f"<b>Article {first} of {total}</b>" if first == last else f"<b>Articles {first}–{last} of {total}</b>"]
    for a in articles:
        extra = [esc(x) for x in (a.outlet, a.published) if x]
        extra.append(plural(a.passages, "passage"))
        lines.append(f"#{a.id} {link(shorten(a.title or 'Untitled', 120), a.url)} · " + " · ".join(extra))
    return "\n".join(lines)


def list_keyboard(page: int, total: int, page_size: int, user_id: int) -> InlineKeyboardMarkup | None:
    last = pages(total, page_size) - 1
    row = []
    if page > 0:
        row.append(InlineKeyboardButton("‹ Prev", callback_data=callbacks.page_data(page - 1, user_id)))
    if page < last:
        row.append(InlineKeyboardButton("Next ›", callback_data=callbacks.page_data(page + 1, user_id)))
    return InlineKeyboardMarkup([row]) if row else None


# ---- admin ---------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s}s" if m else f"{s}s"


def stats_message(stats: Stats) -> str:
    return "\n".join(
        [
            "<b>Stats</b>",
            f"Articles: {stats.articles}",
            f"Passages: {stats.passages}",
            f"Index: {stats.index_vectors} vectors, {_size(stats.index_bytes)}",
            f"Model: {esc(stats.model)} ({esc(stats.backend)})",
            f"Uptime: {duration(stats.uptime_s)}",
        ]
    )


def reindex_progress(done: int, total: int, elapsed: float) -> str:
    if total <= 0:
        return f"Reindexing… reading the articles ({duration(elapsed)})."
    return f"Reindexing… {done}/{total} passages embedded ({duration(elapsed)})."


def reindex_done(report: ReindexReport) -> str:
    return (
        f"Reindex done: {report.articles} articles, {report.passages} passages in {report.seconds:.1f} s. "
        "Questions now use the new index."
    )


def removed_message(article: Article) -> str:
    return f"Removed article #{article.id}: <b>{esc(article.title)}</b>."


# ---- help ----------------------------------------------------------------------------------------------


def help_message(*, is_admin: bool, can_add: bool, private: bool, suffixes: Iterable[str]) -> str:
    how = (
        "Just send me a question."
        if private
        else "In this group, mention me, reply to one of my messages, or use /ask followed by your question."
    )
    lines = [
        "I answer questions about a collection of articles, quoting the passages I rely on.",
        "",
        f"{how} For example: <i>{esc(EXAMPLE_QUESTION)}</i>",
        "",
        "/ask QUESTION: ask a question",
        "/list: browse the articles",
    ]
    if can_add:
        lines.append("/add URL: add an article from the web (or /add with pasted text, first line the title)")
        where = "" if private else " with the caption /add"
        lines.append(f"Send a file to add it ({esc(file_kinds(suffixes))}){where}.")
    if is_admin:
        lines.append("Admin: /remove ID, /reindex, /stats")
    lines.append("/help: this message")
    return "\n".join(lines)


def unknown_command(command: str) -> str:
    return f"I don't know {esc(command)}. Send /help to see what I can do."


def slow_down(per_minute: int) -> str:
    return (
        f"You're sending messages faster than I can answer them (the limit is {per_minute} a minute). "
        "Please wait a moment; I'll ignore messages until then."
    )


def anonymous_refusal(command: str) -> str:
    return (
        f"Sorry, {command} needs your own account, and this message was sent as a group or channel (an "
        "anonymous admin, or a channel's post). Turn off \u201cRemain anonymous\u201d, or send it to me in a "
        "private chat."
    )


def file_kinds(suffixes: Iterable[str]) -> str:
    """The file kinds the bot reads, as users know them (".htm" is ".html")."""
    return " ".join(sorted(set(suffixes) - {".htm"}))


def not_text(suffixes: Iterable[str]) -> str:
    return (
        "I only read text. Ask your question in a message, or add an article: send me the file "
        f"({file_kinds(suffixes)}), a link with /add, or /add followed by the text."
    )


SORRY = "Sorry, something went wrong on my side while handling that. It has been logged; please try again later."
