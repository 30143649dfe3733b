"""Answers are data: each citation points at a retrieved passage and quotes its article verbatim."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Citation:
    n: int  # 1-based number used in the answer text, e.g. [1]
    article_id: int
    chunk_id: int  # the retrieved passage the quote comes from
    quote: str  # == article.text[start:end], checked before output
    start: int  # character offsets of the quote in the article text
    end: int
    score: float
    title: str
    url: str | None = None
    outlet: str | None = None
    published: str | None = None
    added_at: str | None = None


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # short answer with [n] markers, or the refusal
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...] = ()
    # shown under a refusal as "closest passages", never as support
    closest: tuple[Citation, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    # what the confidence was computed from (see answer.composer._confidence); empty when nothing was found
    signals: dict[str, float] = field(default_factory=dict)
