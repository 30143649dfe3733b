"""BM25 over the store's FTS5 index, scored in numpy from cached postings: FTS5's own scores, faster.

FTS5's bm25() costs ~1.5 us for every passage that holds any query word: on the news collection (31,304
passages) a question's 8 words match 8,000 passages at the median and the search took 12.5 ms, most of a
retrieval's time, while finding the matches alone took 1.6 ms. The scoring does not need SQL: this module
reads each word's postings (passage, count) from FTS5 once, keeps them, and computes the same formula with
the same constants, terms in the same order (so the same float operations): the same passages, scores and
ties as `Store.lexical_search`, which tests/test_bm25.py checks. Common words recur across questions and
are fetched once; rare words are cheap to fetch.

Everything cached belongs to one store generation (every write bumps it, in any process): a question that
finds the store moved on drops the cache and reads afresh, and every read returns the generation it saw, so
postings of two generations are never mixed. A word FTS5 splits into several tokens is a phrase to FTS5;
such a question (rare) is searched by FTS5 itself.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from corpus.store import Store
from index.lexical import rarest_terms, terms_query

K1 = 1.2  # FTS5's bm25() constants (sqlite3 ext/fts5/fts5_aux.c)
B = 0.75
MAX_POSTINGS = 4_000_000  # cached (passage, count) pairs, 8 bytes each: 32 MB at most; the news holds 3.7 M
MAX_WORDS = 100_000  # word -> tokens entries kept (cleared when full)
RETRIES = 3


class _Stale(Exception):
    """The store moved to another generation while a question was being searched."""


@dataclass
class _Snapshot:
    """One store generation: passage ids and length norms, and the postings read so far."""

    generation: int
    ids: np.ndarray  # chunk ids, ascending
    norm: np.ndarray  # K1 * (1 - B + B * length / average length), float64, per passage
    postings: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=OrderedDict)
    counts: dict[str, int] = field(default_factory=dict)  # passages holding a token
    held: int = 0  # pairs in `postings`


class Bm25:
    """`search(terms, k, max_terms)`: what `store.lexical_search` gives for the same words, from a cache."""

    def __init__(self, store: Store, *, max_postings: int = MAX_POSTINGS):
        self.store = store
        self.max_postings = max_postings
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self._tokens: dict[str, tuple[str, ...]] = {}
        self.fallbacks = 0  # questions FTS5 searched itself (a word it splits, or a store that kept moving)

    def search(self, terms: Sequence[str], k: int, max_terms: int) -> list[tuple[int, float]]:
        """The k best passages for the question's words (`index.lexical.query_terms`): (chunk id, BM25 score)
        best first, ties by id. With `max_terms` > 0 only that many of the rarest words are searched."""
        if k <= 0 or not terms:
            return []
        tokens = self._words(terms)
        if all(len(t) == 1 for t in tokens):
            for _ in range(RETRIES):
                try:
                    return self._search([t[0] for t in tokens], k, max_terms)
                except _Stale:
                    continue
        with self._lock:
            self.fallbacks += 1
        if max_terms > 0 and len(terms) > max_terms:
            terms = rarest_terms(terms, self.store.doc_frequencies(terms), max_terms)
        return self.store.lexical_search(terms_query(terms), k)

    def _words(self, terms: Sequence[str]) -> list[tuple[str, ...]]:
        """How FTS5 tokenizes each word (fixed by the tokenizer, so kept across generations)."""
        known: dict[str, tuple[str, ...]] = {}
        for t in terms:
            if (tokens := self._tokens.get(t)) is not None:
                known[t] = tokens
        missing = [t for t in dict.fromkeys(terms) if t not in known]
        if missing:
            found = dict(zip(missing, self.store.fts_tokens(missing), strict=True))
            known.update(found)
            with self._lock:
                if len(self._tokens) + len(found) > MAX_WORDS:
                    self._tokens.clear()
                self._tokens.update(found)
        return [known[t] for t in terms]

    def _snapshot(self) -> _Snapshot:
        generation = self.store.generation()
        snap = self._snap
        if snap is not None and snap.generation == generation:
            return snap
        gen, ids, lengths = self.store.fts_lengths()
        total = float(lengths.sum())
        avgdl = total / len(ids) if len(ids) else 1.0
        norm = K1 * (1 - B + B * lengths.astype(np.float64) / avgdl) if total > 0 else np.full(len(ids), K1)
        snap = _Snapshot(gen, ids, norm)
        with self._lock:
            if self._snap is None or self._snap.generation != gen:
                self._snap = snap
            return self._snap

    def _counts(self, snap: _Snapshot, tokens: Sequence[str]) -> list[int]:
        missing = [t for t in tokens if t not in snap.counts]
        if missing:
            gen, found = self.store.fts_doc_counts(missing)
            if gen != snap.generation:
                raise _Stale
            with self._lock:
                snap.counts.update(found)
        return [snap.counts[t] for t in tokens]

    def _postings(self, snap: _Snapshot, tokens: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            got = {t: snap.postings[t] for t in tokens if t in snap.postings}
            for t in got:
                snap.postings.move_to_end(t)
        missing = [t for t in dict.fromkeys(tokens) if t not in got]
        if not missing:
            return got
        gen, fetched = self.store.fts_postings(missing)
        if gen != snap.generation:
            raise _Stale
        for token, (chunk_ids, tf) in fetched.items():
            pos = np.searchsorted(snap.ids, chunk_ids)
            if len(pos) and (pos[-1] >= len(snap.ids) or not np.array_equal(snap.ids[pos], chunk_ids)):
                raise _Stale  # postings of passages this snapshot does not hold
            got[token] = (pos.astype(np.int32), tf.astype(np.int32))
        with self._lock:
            for token in missing:
                if token not in snap.postings:
                    snap.postings[token] = got[token]
                    snap.held += len(got[token][0])
            while snap.held > self.max_postings and len(snap.postings) > 1:
                _, (pos, _) = snap.postings.popitem(last=False)
                snap.held -= len(pos)
        return got

    def _search(self, tokens: list[str], k: int, max_terms: int) -> list[tuple[int, float]]:
        snap = self._snapshot()
        n = len(snap.ids)
        if n == 0:
            return []
        counts = self._counts(snap, tokens)
        if max_terms > 0 and len(tokens) > max_terms:
            kept = rarest_terms(range(len(tokens)), counts, max_terms)
            tokens, counts = [tokens[i] for i in kept], [counts[i] for i in kept]
        postings = self._postings(snap, [t for t, c in zip(tokens, counts, strict=True) if c > 0])
        scores = np.zeros(n, dtype=np.float64)
        for token, hits in zip(tokens, counts, strict=True):
            if hits == 0:
                continue  # FTS5 counts the phrase, but it adds 0 to every passage
            idf = math.log((n - hits + 0.5) / (hits + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            pos, tf = postings[token]
            freq = tf.astype(np.float64)  # FTS5 sums the hits in a double
            scores[pos] += idf * ((freq * (K1 + 1.0)) / (freq + snap.norm[pos]))
        found = np.flatnonzero(scores > 0)
        if len(found) > k:
            # Ties at the k-th score must be kept whole, then broken by id as FTS5's ORDER BY does.
            kth = np.partition(scores[found], len(found) - k)[len(found) - k]
            found = found[scores[found] >= kth]
        order = sorted(found.tolist(), key=lambda i: (-scores[i], i))[:k]
        return [(int(snap.ids[i]), float(scores[i])) for i in order]
