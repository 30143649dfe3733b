"""Plain-text and JSON renderings of answers and articles, for the CLI and the console chat."""

from __future__ import annotations

import textwrap
from typing import Any

from answer.models import Answer, Citation
from corpus.models import Article


def source_line(c: Citation | Article) -> str:
    """Title, outlet, date and link, as known."""
    parts = [c.title]
    if c.outlet:
        parts.append(c.outlet)
    if c.published:
        parts.append(c.published)
    added = getattr(c, "added_at", None)
    if not c.published and added:
        parts.append(f"added {added[:10]}")
    if c.url:
        parts.append(c.url)
    return " · ".join(parts)


def _quote(c: Citation, indent: str) -> str:
    body = textwrap.fill(
        f"\u201c{' '.join(c.quote.split())}\u201d", width=100, initial_indent="", subsequent_indent=indent
    )
    return body


def answer_text(answer: Answer) -> str:
    lines = [answer.text]
    if answer.abstained:
        if answer.closest:
            lines.append("Closest passages (I could not tell that they answer it):")
            for c in answer.closest:
                lines.append(f"  - {_quote(c, '    ')}")
                lines.append(f"    {source_line(c)}")
        return "\n".join(lines)
    for c in answer.citations:
        lines.append(f"[{c.n}] {_quote(c, '    ')}")
        lines.append(f"    {source_line(c)}")
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "confidence": round(answer.confidence, 4),
        "citations": [_citation_json(c) for c in answer.citations],
        "closest": [_citation_json(c) for c in answer.closest],
        "timings_ms": answer.timings_ms,
    }


def _citation_json(c: Citation) -> dict[str, Any]:
    return {
        "n": c.n,
        "article_id": c.article_id,
        "chunk_id": c.chunk_id,
        "title": c.title,
        "url": c.url,
        "outlet": c.outlet,
        "published": c.published,
        "quote": c.quote,
        "start": c.start,
        "end": c.end,
        "score": round(c.score, 4),
    }


def article_json(a: Article) -> dict[str, Any]:
    return {
        "id": a.id,
        "title": a.title,
        "url": a.url,
        "outlet": a.outlet,
        "byline": a.byline,
        "published": a.published,
        "added_by": a.added_by,
        "added_at": a.added_at,
        "passages": a.passages,
        "source": a.source,
        "chars": len(a.text),
    }


def article_line(a: Article) -> str:
    return f"#{a.id:<4} {source_line(a)}  ({plural(a.passages, 'passage')})"


def positive_number(text: str) -> int | None:
    """A number a user typed (an article's, a page's): ASCII digits, at least 1; None otherwise ("²" is a
    digit to str.isdigit, not to int)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdecimal() and int(text) > 0 else None


def plural(n: int, noun: str) -> str:
    """ "1 passage", "3 passages"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
