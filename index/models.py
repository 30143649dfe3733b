"""Values that cross the index boundary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """A passage of one article: `text == article.text[start:end]`, never cutting a sentence."""

    article_id: int
    seq: int  # position within the article, from 0
    start: int
    end: int
    text: str
    id: int = 0  # assigned by the store; also the FAISS id


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its fused score and its rank in each ranking (None: not ranked there)."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None
