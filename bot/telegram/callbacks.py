"""Inline-button data: built and parsed here only, so forged or stale data is recognised in one place."""

from __future__ import annotations

import re

_PASSAGE = re.compile(r"p:(\d{1,15})")
_PAGE = re.compile(r"l:(\d{1,6}):(\d{1,15})")


def passage_data(chunk_id: int) -> str:
    return f"p:{chunk_id}"


def page_data(page: int, user_id: int) -> str:
    """A /list page button; carries the user who asked, so only they page their list."""
    return f"l:{page}:{user_id}"


def parse_passage(data: str | None) -> int | None:
    m = _PASSAGE.fullmatch(data or "")
    return int(m.group(1)) if m else None


def parse_page(data: str | None) -> tuple[int, int] | None:
    m = _PAGE.fullmatch(data or "")
    return (int(m.group(1)), int(m.group(2))) if m else None
