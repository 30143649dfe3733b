"""The cached BM25 (index/bm25.py) gives exactly FTS5's ranking and scores, and never serves stale postings."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from corpus.models import Document
from corpus.store import Store
from index.bm25 import Bm25
from index.chunking import chunk_text
from index.lexical import query_terms, rarest_terms, terms_query

DIM = 8
# Few words, several forms of each (porter stems them alike), so passages share words unevenly.
_WORDS = (
    "volcano volcanoes erupted eruption ash plume rocket rockets launch launched satellite orbit maize "
    "price prices fell market markets farmer farmers harvest rain drought storm flood river bridge city "
    "council vote voted election minister budget tax school teacher pupils"
)
WORDS = _WORDS.split()


def _vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(n).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _add(store: Store, text: str, title: str) -> int:
    chunks = chunk_text(0, text, chunk_words=12, overlap_sentences=0)
    doc = Document(text=text, title=title, source="test")
    return store.add_article(doc, f"hash-{title}", "tester", chunks, _vectors(len(chunks))).id


def _text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 6)):
        words = rng.choices(WORDS, weights=[1 + (i % 7) ** 2 for i in range(len(WORDS))], k=rng.randint(3, 14))
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def _fts(store: Store, terms: list[str], k: int, max_terms: int) -> list[tuple[int, float]]:
    """What the retriever searched before the cache: FTS5's bm25() over the rarest words."""
    if max_terms > 0 and len(terms) > max_terms:
        terms = rarest_terms(terms, store.doc_frequencies(terms), max_terms)
    return store.lexical_search(terms_query(terms), k)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "articles.db")
    rng = random.Random(7)
    for i in range(40):
        _add(s, _text(rng), f"a{i}")
    yield s
    s.close()


def test_same_passages_and_scores_as_fts5(store: Store) -> None:
    bm25 = Bm25(store)
    rng = random.Random(11)
    compared = 0
    for _ in range(300):
        question = " ".join(rng.choices([*WORDS, "the", "which", "zebra"], k=rng.randint(1, 9)))
        terms = query_terms(question)
        for k in (1, 5, 50):
            for max_terms in (0, 2, 8):
                expected = _fts(store, terms, k, max_terms)
                got = bm25.search(terms, k, max_terms)
                # Equal floats, not close ones: the same formula, constants and order of additions.
                assert got == expected, (question, k, max_terms)
                compared += len(expected) > 0
    assert compared > 1000 and bm25.fallbacks == 0
    assert bm25.search([], 5, 8) == [] and bm25.search(["zebra"], 5, 8) == []


def test_ties_at_the_cut_are_broken_by_id_as_fts5_does(tmp_path: Path) -> None:
    with Store(tmp_path / "ties.db") as store:
        for i in range(12):  # identical passages score alike: only the id can order them
            _add(store, "Maize prices fell at the market." if i % 2 else f"Storm {i}.", f"t{i}")
        for k in (1, 3, 6, 10):
            assert Bm25(store).search(["maize"], k, 8) == _fts(store, ["maize"], k, 8)
        assert len({s for _, s in Bm25(store).search(["maize"], 6, 8)}) == 1


def test_a_write_by_another_process_is_seen_at_the_next_question(store: Store, tmp_path: Path) -> None:
    bm25 = Bm25(store)
    terms = query_terms("volcano tsunami")
    before = bm25.search(terms, 10, 8)
    other = Store(store.path)  # another process's connection to the same file
    try:
        new_id = _add(other, "A tsunami followed the volcano eruption.", "new")
        after = bm25.search(terms, 10, 8)
        assert after == _fts(store, terms, 10, 8) and after != before
        assert {c.id for c in store.article_chunks(new_id)} & {cid for cid, _ in after}
        other.remove_article(new_id)
        assert bm25.search(terms, 10, 8) == before == _fts(store, terms, 10, 8)
    finally:
        other.close()


def test_postings_of_another_generation_are_never_mixed_in(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    bm25 = Bm25(store)
    terms = query_terms("rocket launch orbit")
    bm25.search(terms, 5, 8)  # the cache now holds this generation's lengths
    real = store.fts_postings
    writes: list[int] = []

    def write_first(tokens: list[str]) -> tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]:
        if not writes:  # another process adds an article between the lengths and the postings
            with Store(store.path) as other:
                writes.append(_add(other, "Rocket launch to orbit, rocket again.", "mid"))
        return real(tokens)

    monkeypatch.setattr(store, "fts_postings", write_first)
    got = bm25.search(query_terms("rocket satellite orbit maize"), 5, 8)
    assert writes and got == _fts(store, query_terms("rocket satellite orbit maize"), 5, 8)
    assert bm25.fallbacks == 0  # retried on the new generation, not handed to FTS5


def test_a_word_fts5_splits_is_searched_by_fts5(store: Store) -> None:
    bm25 = Bm25(store)
    got = bm25.search(["maize-price", "farmer"], 5, 8)  # FTS5 reads "maize-price" as the phrase "maize price"
    assert bm25.fallbacks == 1
    assert got == store.lexical_search(terms_query(["maize-price", "farmer"]), 5)


def test_the_cache_stays_within_its_bound(store: Store) -> None:
    small = Bm25(store, max_postings=20)
    rng = random.Random(3)
    for _ in range(60):
        terms = query_terms(" ".join(rng.choices(WORDS, k=4)))
        assert small.search(terms, 5, 0) == _fts(store, terms, 5, 0)
        snap = small._snap
        assert snap is not None
        assert snap.held == sum(len(p) for p, _ in snap.postings.values())
        assert snap.held <= 20 or len(snap.postings) == 1


def test_an_empty_store_finds_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.db") as store:
        assert Bm25(store).search(["volcano"], 5, 8) == []
