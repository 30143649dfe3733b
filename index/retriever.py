"""Find the passages most likely to answer a question: BM25, dense vectors, or both fused.

Lexical search catches names, numbers and rare words exactly; dense search catches paraphrases. Two
fusions are offered. `convex` (the default) adds the two scores after putting them on one scale: BM25
divided by the best BM25 score of the question, cosine as it is; a passage found by one list only gets
the other list's floor. It keeps how much better the first passage is than the second, which rank fusion
throws away, and on SQuAD it beats RRF at rank 1 (Bruch et al., "An Analysis of Fusion Functions for
Hybrid Retrieval", 2023, found the same; docs/benchmarks.md has our figures). `rrf` (reciprocal rank
fusion) needs no scale at all and is kept for collections where BM25 scores are erratic.
"""

from __future__ import annotations

import datetime
import threading

import numpy as np

from corpus.models import iso_day
from corpus.store import Store
from engine.config import IndexSettings
from index.bm25 import Bm25
from index.dense import DenseIndex
from index.embedder import Embedder
from index.lexical import query_terms
from index.models import Hit
from index.titles import TitleIndex

MODES = ("hybrid", "bm25", "dense")
FUSIONS = ("convex", "rrf")


def rrf_fuse(
    bm25: list[tuple[int, float]],
    dense: list[tuple[int, float]],
    *,
    rrf_k: int,
    bm25_weight: float = 1.0,
    dense_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: sum of w / (rrf_k + rank) over the rankings an id appears in.

    Ties are broken by the better of the two ranks, then by id, so results are deterministic.
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking, weight in ((bm25, bm25_weight), (dense, dense_weight)):
        for rank, (cid, _) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
            best[cid] = min(best.get(cid, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0]))


def convex_fuse(
    bm25: list[tuple[int, float]], dense: list[tuple[int, float]], *, bm25_share: float
) -> list[tuple[int, float]]:
    """bm25_share * bm25 / max(bm25) + (1 - bm25_share) * cosine over the union of both lists.

    A passage missing from the BM25 list scores 0 there (it matched no query word, or fewer than the
    last one kept); one missing from the dense list gets the lowest cosine of that list (it is at most
    that similar). Ties are broken by id, so results are deterministic.
    """
    top = max((score for _, score in bm25), default=0.0)
    lexical = {cid: (score / top if top > 0 else 0.0) for cid, score in bm25}
    cosine = dict(dense)
    floor = min(cosine.values(), default=0.0)
    scores = {
        cid: bm25_share * lexical.get(cid, 0.0) + (1.0 - bm25_share) * cosine.get(cid, floor)
        for cid in lexical.keys() | cosine.keys()
    }
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    """Searches the store (BM25) and the dense index; the dense index can be swapped after a reindex."""

    def __init__(self, store: Store, embedder: Embedder, dense: DenseIndex, settings: IndexSettings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._dense = dense
        self._swap_lock = threading.Lock()
        self.bm25 = Bm25(store)
        self.titles = TitleIndex(store)

    @property
    def dense(self) -> DenseIndex:
        return self._dense

    def set_dense(self, dense: DenseIndex) -> None:
        """Use a new dense index from now on; searches already running finish on the old one."""
        if dense.dim != self.embedder.dim:
            raise ValueError(f"dense index has dim {dense.dim}, the embedder {self.embedder.dim}")
        with self._swap_lock:
            self._dense = dense

    def _mode(self, mode: str | None) -> str:
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        return mode

    def search(
        self, question: str, k: int, *, mode: str | None = None, asked_on: datetime.date | None = None
    ) -> list[Hit]:
        """The k best passages for `question`, best first (fewer if the corpus holds fewer matches).
        `asked_on`, the day the question is asked, lets the articles published just before it come first
        (`index.recency_boost`); None leaves dates out."""
        mode = self._mode(mode)
        qvec = self.embedder.encode_query(question) if mode != "bm25" else None
        return self.search_with_vector(question, qvec, k, mode, asked_on=asked_on)

    def search_with_vector(
        self,
        question: str,
        qvec: np.ndarray | None,
        k: int,
        mode: str | None = None,
        *,
        asked_on: datetime.date | None = None,
    ) -> list[Hit]:
        """Like `search`, reusing a query embedding the caller already has (needed unless mode is bm25)."""
        mode = self._mode(mode)
        if k <= 0:
            return []
        s = self.settings
        if s.fusion == "convex":
            bm25_on, dense_on = s.bm25_share > 0, s.bm25_share < 1
        else:
            bm25_on, dense_on = s.bm25_weight > 0, s.dense_weight > 0
        use_bm25 = mode == "bm25" or (mode == "hybrid" and bm25_on)
        use_dense = mode == "dense" or (mode == "hybrid" and dense_on)
        depth = max(k, s.candidates)
        bm25 = self.bm25.search(query_terms(question), depth, s.bm25_max_terms) if use_bm25 else []
        dense: list[tuple[int, float]] = []
        if use_dense:
            if qvec is None:
                raise ValueError(f"mode {mode!r} needs the query vector")
            dense = self._dense.search(qvec, depth)
        # The article of every candidate passage, in one query that reads no text. The dense index is a
        # cache and may still hold a passage another process just removed: such ids are dropped here.
        article_of = self.store.chunk_articles({cid for cid, _ in bm25} | {cid for cid, _ in dense})
        bm25 = [(cid, score) for cid, score in bm25 if cid in article_of]
        dense = [(cid, score) for cid, score in dense if cid in article_of]
        if mode == "bm25":
            ranked = bm25
        elif mode == "dense":
            ranked = dense
        elif not dense or not bm25:  # one list is off or empty: fusing would only rescale it
            ranked = bm25 or dense
        elif s.fusion == "convex":
            ranked = convex_fuse(bm25, dense, bm25_share=s.bm25_share)
            if s.title_share > 0:
                titles = self.titles.scores(question)
                ranked = sorted(
                    ((cid, score + s.title_share * titles.get(article_of[cid], 0.0)) for cid, score in ranked),
                    key=lambda kv: (-kv[1], kv[0]),
                )
            if s.recency_boost > 0 and asked_on is not None:
                recency = self._recency(article_of, asked_on)
                ranked = sorted(
                    ((cid, score + recency.get(article_of[cid], 0.0)) for cid, score in ranked),
                    key=lambda kv: (-kv[1], kv[0]),
                )
        else:
            ranked = rrf_fuse(
                bm25, dense, rrf_k=s.rrf_k, bm25_weight=s.bm25_weight, dense_weight=s.dense_weight
            )
        # Text only for the passages returned. One removed by another process since the query above is
        # left out, and the next candidates take its place.
        chunks = self.store.chunks(cid for cid, _ in ranked[:k])
        end = k
        while len(chunks) < min(k, len(ranked)) and end < len(ranked):
            more = self.store.chunks(cid for cid, _ in ranked[end : end + k])
            chunks.update(more)
            end += k
        kept = [(cid, score) for cid, score in ranked[:end] if cid in chunks][:k]
        bm25_at = {cid: (rank, score) for rank, (cid, score) in enumerate(bm25, start=1)}
        dense_at = {cid: (rank, score) for rank, (cid, score) in enumerate(dense, start=1)}
        hits: list[Hit] = []
        for cid, score in kept:
            b, d = bm25_at.get(cid), dense_at.get(cid)
            hits.append(
                Hit(
                    chunk=chunks[cid],
                    score=float(score),
                    dense_score=d[1] if d else None,
                    bm25_score=b[1] if b else None,
                    dense_rank=d[0] if d else None,
                    bm25_rank=b[0] if b else None,
                )
            )
        return hits

    def _recency(self, article_of: dict[int, int], asked_on: datetime.date) -> dict[int, float]:
        """What `recency_boost` adds to the passages of each candidate article published `age` days before
        `asked_on`: boost x (1 - age / (recency_days + 1)) for 0 <= age <= recency_days (a day later
        counts as 0: time zones). News questions ask about the news of their day ("this week",
        "recently", or no word at all): in RealTimeQA the gold article is 0 to 6 days older than its question
        (5th to 95th percentile), and the same story's older articles rank beside it (docs/benchmarks.md)."""
        s = self.settings
        out: dict[int, float] = {}
        for article_id, value in self.store.published(set(article_of.values())).items():
            day = iso_day(value[:10])  # a date, or the date of a timestamp
            age = (asked_on - day).days if day else None
            if age is not None and -1 <= age <= s.recency_days:
                out[article_id] = s.recency_boost * (1.0 - max(age, 0) / (s.recency_days + 1))
        return out
