"""Values that cross the corpus boundary."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


def iso_day(value: object) -> datetime.date | None:
    """The day a "YYYY-MM-DD" string names (a publication date, the day a question is asked); None for
    anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Document:
    """An extracted article, not yet stored. `text` is clean UTF-8 with no control characters but \\n."""

    text: str
    title: str
    source: str  # where it came from: a URL, a file path, or "pasted text"
    url: str | None = None  # canonical URL when fetched from the web
    outlet: str | None = None  # site or publication name
    byline: str | None = None
    published: str | None = None  # ISO date (YYYY-MM-DD) when known


@dataclass(frozen=True)
class Article:
    """A stored article. `id` is stable; `content_hash` is of the normalised text."""

    id: int
    title: str
    text: str
    source: str
    content_hash: str
    added_by: str
    added_at: str  # ISO timestamp, UTC
    url: str | None = None
    outlet: str | None = None
    byline: str | None = None
    published: str | None = None
    passages: int = 0
