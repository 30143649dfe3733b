"""Embedding, the dense index, FTS queries and retrieval, on the real packaged model and real FAISS/SQLite."""

from __future__ import annotations

import datetime
import hashlib
import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.models import Document
from corpus.store import Store
from engine.config import IndexSettings
from engine.errors import UserError
from index.chunking import chunk_text
from index.dense import DenseIndex, DenseIndexError
from index.embedder import Embedder
from index.lexical import query_terms, rarest_terms, terms_query
from index.retriever import Retriever, convex_fuse, rrf_fuse
from index.titles import TitleIndex

MODEL = "packaged:all-MiniLM-L6-v2"


# `embedder`: the session-scoped packaged MiniLM from tests/conftest.py (loaded once for the whole run).


# ---- embedder ------------------------------------------------------------------------------------


def test_embedder_loads_packaged_model_offline(embedder: Embedder) -> None:
    assert embedder.name == MODEL
    assert embedder.dim == 384
    vecs = embedder.encode(["The volcano erupted.", "Farmers harvested maize.", ""])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    q = embedder.encode_query("When did the eruption happen?")
    assert q.shape == (384,)
    assert float(q @ vecs[0]) > float(q @ vecs[1])  # meaning, not noise
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.max_tokens == 256
    assert embedder.count_tokens("hello world") == 4  # [CLS] hello world [SEP]


def test_embedder_is_thread_safe(embedder: Embedder) -> None:
    texts = [f"Sentence number {i} about topic {i % 3}." for i in range(12)]
    expected = embedder.encode(texts)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = embedder.encode(texts)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 3
    for r in results.values():
        np.testing.assert_allclose(r, expected, atol=1e-5)


def test_unavailable_model_is_a_clear_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="could not be loaded offline") as err:
        Embedder("no-such-org/no-such-model-xyz")
    assert "no-such-org/no-such-model-xyz" in str(err.value) and "packaged:all-MiniLM-L6-v2" in str(err.value)
    with pytest.raises(UserError, match="Unknown packaged model"):
        Embedder("packaged:gpt-17")
    with pytest.raises(UserError, match="Unknown embedding backend"):
        Embedder(MODEL, backend="tpu")
    with pytest.raises(UserError, match="could not be loaded offline"):
        Embedder(str(tmp_path))  # an empty folder is not a model


def test_onnx_backend_without_onnxruntime_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if onnxruntime had been uninstalled
    with pytest.raises(UserError, match=r"pip install onnx onnxruntime, or set index.backend: torch"):
        Embedder(MODEL, backend="onnx-int8", cache_dir=tmp_path)


# ---- dense index ---------------------------------------------------------------------------------


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_dense_add_search_remove() -> None:
    vecs = _unit(20)
    ids = np.arange(100, 120, dtype=np.int64)
    idx = DenseIndex(16)
    idx.add(ids, vecs)
    assert len(idx) == 20
    top = idx.search(vecs[7], 3)
    assert top[0][0] == 107 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert idx.remove(np.array([107, 999])) == 1
    assert 107 not in [i for i, _ in idx.search(vecs[7], 20)]
    assert len(idx.search(vecs[0], 100)) == 19  # k larger than the index: all of it, no -1 ids
    # Adding an id again replaces it instead of duplicating it.
    idx.add(np.array([100]), vecs[5:6])
    assert len(idx) == 19
    assert idx.search(vecs[5], 2)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert list(idx.ids()) == sorted(set(range(100, 120)) - {107})
    with pytest.raises(ValueError):
        idx.add(np.array([1]), np.ones((1, 8), np.float32))
    assert DenseIndex(16).search(vecs[0], 5) == []


def test_dense_save_load_round_trip_atomic(tmp_path: Path) -> None:
    vecs = _unit(50)
    idx = DenseIndex(16)
    idx.add(np.arange(1, 51), vecs)
    path = tmp_path / "dense.faiss"
    idx.save(path, {"model": MODEL, "generation": 7})
    idx.remove(np.array([3]))
    idx.save(path, {"model": MODEL, "generation": 8})  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.faiss", "dense.json"]  # no temp files left
    loaded, manifest = DenseIndex.load(path)
    assert manifest["generation"] == 8 and manifest["count"] == 49 and manifest["dim"] == 16
    assert manifest["model"] == MODEL
    assert list(loaded.ids()) == list(idx.ids())
    assert loaded.search(vecs[9], 1) == idx.search(vecs[9], 1)


def test_dense_save_failure_leaves_no_temp_file_and_old_index(tmp_path: Path) -> None:
    idx = DenseIndex(16)
    idx.add(np.arange(1, 4), _unit(3))
    path = tmp_path / "dense.faiss"
    idx.save(path, {"generation": 1})
    idx.add(np.array([9]), _unit(1, seed=5))
    with pytest.raises(TypeError):
        idx.save(path, {"generation": object()})  # manifest not JSON: fails after the index was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.faiss", "dense.json"]
    # The index file moved on but the manifest did not: load refuses instead of serving a mismatch.
    with pytest.raises(DenseIndexError, match="does not match its manifest"):
        DenseIndex.load(path)


def test_dense_missing_or_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "dense.faiss"
    with pytest.raises(DenseIndexError, match="missing"):
        DenseIndex.load(path)
    idx = DenseIndex(16)
    idx.add(np.arange(1, 11), _unit(10))
    idx.save(path, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DenseIndexError, match="corrupt"):
        DenseIndex.load(path)
    path.write_bytes(b"garbage")  # even with a matching checksum, not a FAISS index
    manifest = path.with_suffix(".json")
    m = json.loads(manifest.read_text())
    m["index_sha256"] = hashlib.sha256(b"garbage").hexdigest()
    manifest.write_text(json.dumps(m))
    with pytest.raises(DenseIndexError, match="corrupt"):
        DenseIndex.load(path)
    manifest.write_text("{not json")
    with pytest.raises(DenseIndexError, match="unreadable"):
        DenseIndex.load(path)


def test_dense_concurrent_search_and_update() -> None:
    idx = DenseIndex(16)
    vecs = _unit(200)
    idx.add(np.arange(200), vecs)
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for i in range(200):
                res = idx.search(vecs[i % 50], 5)
                assert all(0 <= cid < 400 for cid, _ in res)
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            for i in range(100):
                idx.remove(np.array([100 + i]))
                idx.add(np.array([300 + i]), vecs[100 + i : 101 + i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(idx) == 200 and idx.ids().max() == 399


# ---- lexical -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    conn.executemany(
        "INSERT INTO t(text) VALUES (?)",
        [("The volcano erupted in January.",), ("Obama's speech on NEAR-term goals (and more)",)],
    )
    yield conn
    conn.close()


def test_fts_query_keeps_informative_words() -> None:
    assert terms_query(query_terms("When did the volcano erupt?")) == '"volcano" OR "erupt"'
    assert terms_query(query_terms("What is it?")) == ""
    assert terms_query(query_terms("")) == ""
    assert terms_query(query_terms('"NEAR(a b)" AND * OR -x:y')) == '"near" OR "b" OR "x" OR "y"'


def test_fts_query_matches_stemmed_and_possessive_words(fts: sqlite3.Connection) -> None:
    rows = fts.execute(
        "SELECT text FROM t WHERE t MATCH ?", (terms_query(query_terms("eruptions of volcanoes")),)
    ).fetchall()
    assert rows == [("The volcano erupted in January.",)]
    rows = fts.execute(
        "SELECT text FROM t WHERE t MATCH ?", (terms_query(query_terms("Obama’s near-term goals")),)
    ).fetchall()
    assert len(rows) == 1 and "Obama" in rows[0][0]


_HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\"'*^:()-+NEARORANDNOT{}[]\\,.;~`@#$%&/ \t\n")),
        st.characters(codec="utf-8"),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(question=st.one_of(_HOSTILE, st.text(max_size=80)))
def test_fts_query_never_breaks_fts(fts: sqlite3.Connection, question: str) -> None:
    q = terms_query(query_terms(question))
    if q:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (q,)).fetchall()  # must not raise


def test_rarest_terms_keeps_the_least_common_in_question_order() -> None:
    terms = ["show", "wildly", "season", "zebra", "lit"]
    freqs = [6349, 86, 3222, 0, 114]
    assert rarest_terms(terms, freqs, 2) == ["wildly", "lit"]
    assert rarest_terms(terms, freqs, 3) == ["wildly", "season", "lit"]
    assert rarest_terms(terms, freqs, 0) == ["show", "wildly", "season", "lit"]  # 0: all that can match
    assert rarest_terms(["a", "b"], [7, 7], 1) == ["a"]  # ties: the earlier word


# ---- retriever -----------------------------------------------------------------------------------

ARTICLES = {
    "Volcano": (
        "The Hunga Tonga volcano erupted violently in January 2022. Its plume reached 57 kilometres into the "
        "sky, higher than any eruption on record. Scientists said the blast was heard in Alaska. Ash fell on "
        "the islands of Tonga for days. A tsunami reached the coasts of Japan and Peru."
    ),
    "Harvest": (
        "Farmers in Kenya reported a record maize harvest this year. Heavy rainfall in the spring helped the "
        "crops. Prices at local markets fell by a third as grain flooded in. Exporters expect strong demand "
        "from Uganda and Tanzania. The agriculture ministry plans to expand storage silos."
    ),
    "Launch": (
        "The European Space Agency launched a new weather satellite from French Guiana on Tuesday. The "
        "satellite will monitor storms over the Atlantic. It was carried by an Ariane 6 rocket. Engineers "
        "confirmed the solar panels deployed correctly. The mission is planned to last ten years."
    ),
}


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[Store, DenseIndex]]:
    store = Store(tmp_path_factory.mktemp("retr") / "articles.db")
    dense = DenseIndex(embedder.dim)
    for title, text in ARTICLES.items():
        chunks = chunk_text(0, text, chunk_words=20, overlap_sentences=0)
        vecs = embedder.encode([c.text for c in chunks])
        art = store.add_article(Document(text=text, title=title, source="test"), title, "t", chunks, vecs)
        stored = store.article_chunks(art.id)
        dense.add(np.array([c.id for c in stored]), vecs)
    yield store, dense
    store.close()


def _retriever(corpus: tuple[Store, DenseIndex], embedder: Embedder, **kw: object) -> Retriever:
    store, dense = corpus
    return Retriever(store, embedder, dense, IndexSettings(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How high did the volcano plume reach?", "57 kilometres"),
        ("Which rocket carried the weather satellite?", "Ariane 6"),
        ("Why did maize prices fall at the markets?", "fell by a third"),
    ],
)
def test_retriever_finds_the_passage(
    corpus: tuple[Store, DenseIndex], embedder: Embedder, mode: str, question: str, expected: str
) -> None:
    hits = _retriever(corpus, embedder).search(question, 3, mode=mode)
    assert hits and expected in hits[0].chunk.text, [h.chunk.text for h in hits]
    assert len(hits) <= 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    if mode == "bm25":
        assert top.bm25_rank == 1 and top.dense_rank is None and top.score == top.bm25_score
    elif mode == "dense":
        assert top.dense_rank == 1 and top.bm25_rank is None and top.score == top.dense_score
    else:
        assert top.bm25_rank is not None and top.dense_rank is not None
        # The default convex fusion: 0.4 * BM25 / (the question's best BM25) + 0.6 * cosine (titles are off).
        best_bm25 = _retriever(corpus, embedder).search(question, 1, mode="bm25")[0].bm25_score
        assert top.bm25_score is not None and top.dense_score is not None and best_bm25
        assert top.score == pytest.approx(0.4 * top.bm25_score / best_bm25 + 0.6 * top.dense_score)
        # With titles on, an article named by the question ("Volcano") gets share x its title's score (1).
        titled = _retriever(corpus, embedder, title_share=0.15).search(question, 1)[0]
        title = TitleIndex(corpus[0]).scores(question).get(titled.chunk.article_id, 0.0)
        assert title == (1.0 if "volcano" in question else 0.0)
        assert titled.score == pytest.approx(top.score + 0.15 * title)
        rrf_top = _retriever(corpus, embedder, fusion="rrf").search(question, 3)[0]
        assert rrf_top.bm25_rank is not None and rrf_top.dense_rank is not None
        assert rrf_top.score == pytest.approx(1 / (60 + rrf_top.bm25_rank) + 1 / (60 + rrf_top.dense_rank))


def test_dense_finds_a_paraphrase_bm25_cannot(corpus: tuple[Store, DenseIndex], embedder: Embedder) -> None:
    question = "Which nation had a bumper corn yield?"  # no word in common with the passage
    r = _retriever(corpus, embedder)
    assert r.search(question, 3, mode="bm25") == []
    dense = r.search(question, 1, mode="dense")
    assert "record maize harvest" in dense[0].chunk.text
    assert "record maize harvest" in r.search(question, 1, mode="hybrid")[0].chunk.text


def test_search_with_vector_reuses_the_query_embedding(
    corpus: tuple[Store, DenseIndex], embedder: Embedder
) -> None:
    r = _retriever(corpus, embedder)
    q = "Where was the satellite launched from?"
    qvec = embedder.encode_query(q)
    assert r.search_with_vector(q, qvec, 4) == r.search(q, 4)
    assert r.search_with_vector(q, None, 4, mode="bm25") == r.search(q, 4, mode="bm25")
    with pytest.raises(ValueError, match="query vector"):
        r.search_with_vector(q, None, 4, mode="dense")
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        r.search(q, 4, mode="magic")
    assert r.search(q, 0) == []


def test_weights_and_settings_mode(corpus: tuple[Store, DenseIndex], embedder: Embedder) -> None:
    q = "How high did the volcano plume reach?"
    bm25_ids = [h.chunk.id for h in _retriever(corpus, embedder).search(q, 3, mode="bm25")]
    dense_ids = [h.chunk.id for h in _retriever(corpus, embedder).search(q, 3, mode="dense")]
    # A weight or share of zero switches that list off entirely, under either fusion.
    for off_dense in ({"fusion": "rrf", "dense_weight": 0.0}, {"fusion": "convex", "bm25_share": 1.0}):
        only_bm25 = _retriever(corpus, embedder, **off_dense).search(q, 3)
        assert all(h.dense_rank is None for h in only_bm25)
        assert [h.chunk.id for h in only_bm25] == bm25_ids
    for off_bm25 in ({"fusion": "rrf", "bm25_weight": 0.0}, {"fusion": "convex", "bm25_share": 0.0}):
        only_dense = _retriever(corpus, embedder, **off_bm25).search(q, 3)
        assert all(h.bm25_rank is None for h in only_dense)
        assert [h.chunk.id for h in only_dense] == dense_ids
    default_dense = _retriever(corpus, embedder, mode="dense").search(q, 2)
    assert all(h.bm25_rank is None and h.dense_rank is not None for h in default_dense)


def test_set_dense_swaps_index_and_stale_ids_are_skipped(
    corpus: tuple[Store, DenseIndex], embedder: Embedder
) -> None:
    store, _ = corpus
    r = _retriever(corpus, embedder)
    q = "Which rocket carried the weather satellite?"
    r.set_dense(DenseIndex(embedder.dim))
    assert r.search(q, 3, mode="dense") == []
    hybrid = r.search(q, 3)  # still answered lexically
    assert hybrid and "Ariane 6" in hybrid[0].chunk.text
    # A dense index holding an id the store no longer has (removed by another process) is harmless.
    stale = DenseIndex(embedder.dim)
    ids, vecs = store.all_vectors()
    stale.add(ids, vecs)
    stale.add(np.array([10_000]), embedder.encode([q]))  # the best match, but no such chunk
    r.set_dense(stale)
    hits = r.search(q, 2, mode="dense")
    assert len(hits) == 2 and all(h.chunk.id != 10_000 for h in hits)
    with pytest.raises(ValueError, match="dim"):
        r.set_dense(DenseIndex(8))
    assert r.dense is stale


def test_convex_fusion_scales_bm25_and_fills_the_missing_side() -> None:
    bm25 = [(1, 8.0), (2, 4.0)]  # normalised: 1.0, 0.5
    dense = [(2, 0.9), (3, 0.5)]  # the floor of this list is 0.5
    fused = dict(convex_fuse(bm25, dense, bm25_share=0.3))
    assert fused[1] == pytest.approx(0.3 * 1.0 + 0.7 * 0.5)  # not in the dense list: its floor
    assert fused[2] == pytest.approx(0.3 * 0.5 + 0.7 * 0.9)
    assert fused[3] == pytest.approx(0.3 * 0.0 + 0.7 * 0.5)  # not in the BM25 list: 0
    assert [cid for cid, _ in convex_fuse(bm25, dense, bm25_share=0.3)] == [2, 1, 3]
    # A large BM25 margin wins when BM25 has the larger share; RRF would see only the ranks.
    assert convex_fuse(bm25, dense, bm25_share=0.9)[0][0] == 1
    # Equal scores are ordered by id, so results never depend on dict order.
    assert [cid for cid, _ in convex_fuse([], [(5, 0.4), (4, 0.4)], bm25_share=0.5)] == [4, 5]
    # A lexical list whose scores are all 0 or less (a one-word corpus) adds nothing, and never divides by 0.
    assert convex_fuse([(7, 0.0)], [(8, 0.2)], bm25_share=0.5) == [(7, pytest.approx(0.1)), (8, pytest.approx(0.1))]


def test_rrf_fusion_order() -> None:
    fused = rrf_fuse([(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)], rrf_k=60)
    assert [cid for cid, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    weighted = rrf_fuse([(1, 9.0)], [(3, 0.9)], rrf_k=60, bm25_weight=0.5, dense_weight=2.0)
    assert [cid for cid, _ in weighted] == [3, 1]


def _matches(store: Store, phrase: str) -> int:
    conn = sqlite3.connect(store.path)
    try:
        query = '"' + phrase.replace('"', '""') + '"'
        return int(conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (query,)).fetchone()[0])
    finally:
        conn.close()


def test_doc_frequencies_count_passages_as_fts_matches_them(corpus: tuple[Store, DenseIndex]) -> None:
    store, _ = corpus
    words = ["volcanoes", "Tonga", "rocket", "satellite", "the", "zebra"]
    assert store.doc_frequencies(words) == [_matches(store, w) for w in words]
    assert store.doc_frequencies(["volcanoes"])[0] >= 1  # stemmed as FTS5 stems: volcano
    assert store.doc_frequencies(["zebra"]) == [0] and store.doc_frequencies([]) == []
    # A term FTS5 splits is a phrase: counted by its rarer token, never fewer than the phrase matches.
    freq = store.doc_frequencies(["weather-satellite"])[0]
    assert freq == min(_matches(store, "weather"), _matches(store, "satellite"))
    assert freq >= _matches(store, "weather satellite")
    assert store.doc_frequencies(["rocket", "rocket"]) == [_matches(store, "rocket")] * 2  # asked twice, same


def test_bm25_searches_only_the_rarest_words(
    corpus: tuple[Store, DenseIndex], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = corpus
    question = "Which rocket carried the new weather satellite launched over the Atlantic from French Guiana?"
    fetched: list[str] = []
    real = store.fts_postings

    def spy(tokens: list[str]) -> tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]:
        fetched.extend(tokens)
        return real(tokens)

    monkeypatch.setattr(store, "fts_postings", spy)
    retriever = _retriever(corpus, embedder, bm25_max_terms=3)
    hits = retriever.search(question, 3, mode="bm25")
    assert hits and "Ariane 6" in " ".join(h.chunk.text for h in hits)
    terms = query_terms(question)
    kept = rarest_terms(terms, store.doc_frequencies(terms), 3)
    assert len(terms) > 3 and len(kept) == 3
    assert sorted(fetched) == sorted(t for toks in store.fts_tokens(kept) for t in toks)  # read only those 3
    dropped = [t for t in terms if t not in kept]
    assert max(_matches(store, t) for t in kept) <= min(_matches(store, t) for t in dropped)
    assert [(h.chunk.id, h.score) for h in hits] == store.lexical_search(terms_query(kept), 3)
    every = _retriever(corpus, embedder, bm25_max_terms=0).search(question, 3, mode="bm25")
    assert [(h.chunk.id, h.score) for h in every] == store.lexical_search(terms_query(terms), 3)  # 0: every word


def test_a_passage_removed_between_the_two_reads_is_replaced_by_the_next(
    corpus: tuple[Store, DenseIndex], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = corpus
    r = _retriever(corpus, embedder)
    q = "Which rocket carried the weather satellite?"
    full = r.search(q, 3)
    gone = full[0].chunk.id
    real = store.chunks
    # Another process removes the best passage after its article was read and before its text is.
    monkeypatch.setattr(store, "chunks", lambda ids: {i: c for i, c in real(ids).items() if i != gone})
    hits = r.search(q, 3)
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in r.search(q, 4) if h.chunk.id != gone][:3]
    assert len(hits) == 3 and gone not in {h.chunk.id for h in hits}


def test_title_index_scores_articles_whose_title_holds_question_words(tmp_path: Path) -> None:
    store = Store(tmp_path / "articles.db")
    try:
        titles = TitleIndex(store)
        assert titles.scores("Who won the Colombian election?") == {}  # an empty store
        ids = {}
        for title in (
            "Colombia election results: Petro wins",
            "Colombia elections: a run-off in June",
            "Maize prices fall in Kenya",
        ):
            doc = Document(text=f"{title}. Body text.", title=title, source="t")
            ids[title] = store.add_article(doc, title, "t", [], np.zeros((0, 4), dtype=np.float32)).id
        got = titles.scores("What were the election results in Colombia?")
        # Stems match ("elections"), stop words do not count; the best title scores 1, the others less.
        assert set(got) == {ids["Colombia election results: Petro wins"], ids["Colombia elections: a run-off in June"]}
        assert got[ids["Colombia election results: Petro wins"]] == 1.0
        assert 0 < got[ids["Colombia elections: a run-off in June"]] < 1
        assert titles.scores("What is the weather like?") == {}
        # Another connection's write is seen at the next question (the store's generation moved).
        other = Store(tmp_path / "articles.db")
        try:
            other.remove_article(ids["Colombia election results: Petro wins"])
        finally:
            other.close()
        assert titles.scores("What were the election results in Colombia?") == {
            ids["Colombia elections: a run-off in June"]: 1.0
        }
    finally:
        store.close()


def test_title_share_lifts_the_article_its_title_names(tmp_path: Path, embedder: Embedder) -> None:
    store = Store(tmp_path / "articles.db")
    dense = DenseIndex(embedder.dim)
    texts = {  # one story twice; only the first headline names the country the question asks about
        "Colombia election results: Petro wins the presidency": (
            "Gustavo Petro won the presidential run-off on Sunday with 50.4 % of the vote."
        ),
        "Latin America's week in review": (
            "In Colombia, Gustavo Petro won the presidential run-off on Sunday, officials said."
        ),
    }
    try:
        for title, text in texts.items():
            chunks = chunk_text(0, text, chunk_words=50, overlap_sentences=0)
            vecs = embedder.encode([c.text for c in chunks])
            art = store.add_article(Document(text=text, title=title, source="t"), title, "t", chunks, vecs)
            dense.add(np.array([c.id for c in store.article_chunks(art.id)]), vecs)
        question = "Who won the presidential run-off in Colombia?"

        def ranked(share: float) -> list[tuple[str, float]]:
            hits = Retriever(store, embedder, dense, IndexSettings(title_share=share)).search(question, 2)
            return [(store.get(h.chunk.article_id).title, h.score) for h in hits]  # type: ignore[union-attr]

        plain, lifted, strong = ranked(0.0), ranked(0.15), ranked(0.3)
        assert plain[0][0] == "Latin America's week in review"  # its passage holds "Colombia"
        # The share times the title's score (1: the only title holding a question word) is added to each
        # passage of that article, nothing to the others.
        before, after = dict(plain), dict(lifted)
        assert after["Colombia election results: Petro wins the presidency"] == pytest.approx(
            before["Colombia election results: Petro wins the presidency"] + 0.15
        )
        assert after["Latin America's week in review"] == before["Latin America's week in review"]
        assert strong[0][0] == "Colombia election results: Petro wins the presidency"
        rrf = Retriever(store, embedder, dense, IndexSettings(fusion="rrf", title_share=0.3)).search(question, 2)
        bm25_rank, dense_rank = rrf[0].bm25_rank, rrf[0].dense_rank
        assert bm25_rank is not None and dense_rank is not None
        assert rrf[0].score == pytest.approx(1 / (60 + bm25_rank) + 1 / (60 + dense_rank))  # titles: convex only
    finally:
        store.close()


def test_recency_boost_lifts_the_articles_of_the_days_before_the_question(tmp_path: Path, embedder: Embedder) -> None:
    store = Store(tmp_path / "articles.db")
    dense = DenseIndex(embedder.dim)
    texts = {  # one story in three weeks' news, and an undated copy; the question says "this week" only
        "2022-06-02": "The central bank raised interest rates by half a point on Wednesday, its governor said.",
        "2022-06-16": "The central bank raised interest rates by three quarters of a point on Wednesday.",
        "2022-06-30": "The central bank raised interest rates again on Wednesday, by half a point.",
        None: "The central bank raised interest rates by a quarter point on Wednesday, the governor said.",
    }
    try:
        ids = {}
        for published, text in texts.items():
            chunks = chunk_text(0, text, chunk_words=50, overlap_sentences=0)
            vecs = embedder.encode([c.text for c in chunks])
            doc = Document(text=text, title="Rates", source=f"t{published}", published=published)
            art = store.add_article(doc, text, "t", chunks, vecs)
            dense.add(np.array([c.id for c in store.article_chunks(art.id)]), vecs)
            ids[art.id] = published
        question = "By how much did the central bank raise interest rates this week?"

        def ranked(asked_on: datetime.date | None, **kw: object) -> list[tuple[str | None, float]]:
            r = Retriever(store, embedder, dense, IndexSettings(**kw))  # type: ignore[arg-type]
            return [(ids[h.chunk.article_id], h.score) for h in r.search(question, 4, asked_on=asked_on)]

        order = ranked(None, recency_boost=0.3, recency_days=14)
        assert order[-1][0] == "2022-06-16"  # by the words alone, the week's article comes last
        plain = dict(order)
        assert plain == dict(ranked(datetime.date(2022, 6, 17), recency_boost=0.0))  # off: the same scores
        # Asked a day after the second article: it gets 0.3 x (1 - 1/15); the first, 15 days old, nothing;
        # the third is dated after the question (a later week), the undated one has no day: nothing either.
        lifted = ranked(datetime.date(2022, 6, 17), recency_boost=0.3, recency_days=14)
        assert lifted[0][0] == "2022-06-16"
        after = dict(lifted)
        assert after["2022-06-16"] == pytest.approx(plain["2022-06-16"] + 0.3 * (1 - 1 / 15))
        for other in ("2022-06-02", "2022-06-30", None):
            assert after[other] == pytest.approx(plain[other])
        # Published the day after the question (time zones) counts as that day; the boost fades with age.
        assert dict(ranked(datetime.date(2022, 6, 29), recency_boost=0.3, recency_days=14))["2022-06-30"] == (
            pytest.approx(plain["2022-06-30"] + 0.3)
        )
        week_old = dict(ranked(datetime.date(2022, 6, 23), recency_boost=0.3, recency_days=14))
        assert week_old["2022-06-16"] == pytest.approx(plain["2022-06-16"] + 0.3 * (1 - 7 / 15))
        last_day = dict(ranked(datetime.date(2022, 6, 30), recency_boost=0.3, recency_days=14))
        assert last_day["2022-06-16"] == pytest.approx(plain["2022-06-16"] + 0.3 / 15)  # 14 days: the last one
        assert last_day["2022-06-02"] == pytest.approx(plain["2022-06-02"])  # 28 days
        too_old = dict(ranked(datetime.date(2022, 7, 1), recency_boost=0.3, recency_days=14))
        assert too_old["2022-06-16"] == pytest.approx(plain["2022-06-16"])  # 15 days: nothing
        # RRF scores are on another scale: the boost is for convex fusion only.
        rrf = ranked(datetime.date(2022, 6, 17), fusion="rrf", recency_boost=0.3)
        assert max(score for _, score in rrf) < 0.1
    finally:
        store.close()


def test_the_answer_comes_from_the_news_of_the_day_asked(make_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine()
    try:
        stories = {  # the same sentence but for the figure: the words cannot tell them apart
            "2022-06-02": "The central bank raised its key interest rate by 0.5 points on Wednesday.",
            "2022-06-16": "The central bank raised its key interest rate by 0.75 points on Wednesday.",
        }
        for day, text in stories.items():
            doc = Document(text=text, title="Central bank raises rates", source=f"news:{day}", published=day)
            assert engine.add_documents([doc], added_by="test")[0].ok
        question = "By how much did the central bank raise its interest rate this week?"
        answers = {day: engine.ask(question, asked_on=datetime.date.fromisoformat(day)).text for day in stories}
        assert answers == {"2022-06-02": "0.5 points [1].", "2022-06-16": "0.75 points [1]."}
        # Without a day the question is asked today (UTC): the day the clock says.
        for today, points in ((datetime.date(2022, 6, 3), "0.5"), (datetime.date(2022, 6, 17), "0.75")):
            monkeypatch.setattr("engine.service.today", lambda today=today: today)
            assert engine.ask(question).text == f"{points} points [1]."
    finally:
        engine.store.close()
