"""BM25 of the question over the articles' titles: the headline names the story a news question asks about.

A question's words often match many passages of several articles on one story (other outlets, other weeks);
the headline is the article's own summary of what it is about, and a question that repeats it points at that
article (RealTimeQA dev weeks: article R@5 67.0 -> 77.7 with 0.15 x the title's score added to the fused
passage score and 200 candidates; off by default, as it moves the refusal trade-off: docs/benchmarks.md).
Passages carry no title in the FTS index (quotes and BM25 read the passage alone), so the titles are scored
here, in memory: one short row per article, rebuilt when the store's generation moves (every write, in any
process, bumps it). Words are matched as the answer step matches them (light stems, no stop words:
answer.lexical), with FTS5's BM25 constants.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from answer.lexical import content_stems
from corpus.store import Store

K1 = 1.2
B = 0.75


@dataclass(frozen=True)
class _Titles:
    generation: int
    ids: np.ndarray  # article ids
    norm: np.ndarray  # K1 * (1 - B + B * length / average length), per title
    postings: dict[str, np.ndarray]  # stem -> the title rows holding it


class TitleIndex:
    """`scores(question)`: each article whose title holds a question word, with its title's BM25 score
    divided by the best one (so in (0, 1], the best title 1)."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._titles: _Titles | None = None

    def scores(self, question: str) -> dict[int, float]:
        stems = content_stems(question)
        if not stems:
            return {}
        titles = self._snapshot()
        n = len(titles.ids)
        total = np.zeros(n, dtype=np.float64)
        for stem in stems:
            rows = titles.postings.get(stem)
            if rows is None:
                continue
            idf = math.log(1.0 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            total[rows] += idf * (K1 + 1.0) / (1.0 + titles.norm[rows])  # each stem once per title
        hit = np.flatnonzero(total > 0)
        if not len(hit):
            return {}
        best = float(total[hit].max())
        return {int(titles.ids[i]): float(total[i]) / best for i in hit}

    def _snapshot(self) -> _Titles:
        generation = self.store.generation()
        cached = self._titles
        if cached is not None and cached.generation == generation:
            return cached
        with self._lock:  # one thread rebuilds; the others wait for it instead of each building one
            cached = self._titles
            if cached is not None and cached.generation >= generation:  # that one, or a newer one
                return cached
            self._titles = built = _build(*self.store.titles())
            return built


def _build(generation: int, rows: list[tuple[int, str]]) -> _Titles:
    lengths = np.zeros(len(rows), dtype=np.float64)
    where: defaultdict[str, list[int]] = defaultdict(list)
    for row, (_, title) in enumerate(rows):
        stems = content_stems(title)  # each stem once: a headline rarely repeats a word
        lengths[row] = len(stems)
        for stem in stems:
            where[stem].append(row)
    average = float(lengths.mean()) if len(rows) and lengths.sum() > 0 else 1.0
    postings = {stem: np.asarray(rows_, dtype=np.int64) for stem, rows_ in where.items()}
    return _Titles(
        generation,
        np.asarray([article_id for article_id, _ in rows], dtype=np.int64),
        K1 * (1 - B + B * lengths / average),
        postings,
    )

