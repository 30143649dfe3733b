"""The article database: what is stored comes back exactly, writes are all-or-nothing, threads share it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from corpus.models import Document
from corpus.store import Store
from engine.errors import UserError
from index.chunking import chunk_text
from index.models import Chunk

DIM = 8

VOLCANO = (
    "The Hunga Tonga volcano erupted in January 2022. Its plume reached 57 kilometres into the sky.\n\n"
    "Scientists said the blast was the largest recorded by modern instruments. Ash fell on nearby islands."
)
HARVEST = (
    "Farmers in Kenya reported a record maize harvest this year. Rainfall was well above the average.\n\n"
    "Prices at local markets fell by a third. Exporters expect strong demand from neighbouring countries."
)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _add(store: Store, text: str, *, url: str | None = None, title: str = "T", seed: int = 0):
    chunks = chunk_text(0, text, chunk_words=20, overlap_sentences=1)
    doc = Document(text=text, title=title, source=url or "pasted text", url=url)
    return store.add_article(doc, f"hash-{hash(text)}", "tester", chunks, _vectors(len(chunks), seed))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "articles.db")
    yield s
    s.close()


def test_add_get_list_remove_round_trip(store: Store) -> None:
    a = _add(store, VOLCANO, url="https://news.example/volcano", title="Volcano")
    b = _add(store, HARVEST, title="Harvest")
    assert a.passages > 1 and a.id != b.id
    got = store.get(a.id)
    assert got is not None
    assert (got.title, got.text, got.url, got.added_by, got.passages) == (
        "Volcano", VOLCANO, "https://news.example/volcano", "tester", a.passages,
    )  # fmt: skip
    assert [x.id for x in store.list_articles()] == [a.id, b.id]
    assert [x.id for x in store.list_articles(offset=1, limit=5)] == [b.id]
    assert set(store.get_many([a.id, b.id, 999])) == {a.id, b.id}
    assert store.count() == 2
    removed = store.remove_article(a.id)
    assert removed.title == "Volcano"
    assert store.get(a.id) is None
    assert store.count() == 1
    assert store.chunk_count() == b.passages
    with pytest.raises(UserError, match=f"#{a.id}"):
        store.remove_article(a.id)


def test_stored_chunks_are_exact_slices_of_the_article(store: Store) -> None:
    a = _add(store, VOLCANO)
    chunks = store.article_chunks(a.id)
    assert len(chunks) == a.passages
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert VOLCANO[c.start : c.end] == c.text
    assert store.chunks([c.id for c in chunks]) == {c.id: c for c in chunks}
    ids = store.article_chunk_ids(a.id)
    assert ids.dtype == np.int64 and list(ids) == [c.id for c in chunks]
    assert len(store.article_chunk_ids(999)) == 0


def test_rejects_chunks_that_are_not_slices(store: Store) -> None:
    bad = [Chunk(article_id=0, seq=0, start=0, end=5, text="Hxxxx")]
    with pytest.raises(ValueError, match="not the article text"):
        store.add_article(Document(text=VOLCANO, title="T", source="x"), "h", "t", bad, _vectors(1))
    assert store.count() == 0


def test_duplicates_found_by_url_or_by_hash(store: Store) -> None:
    a = _add(store, VOLCANO, url="https://news.example/volcano")
    assert store.find_duplicate("https://news.example/volcano", "other-hash") == a
    assert store.find_duplicate(None, a.content_hash) == a
    assert store.find_duplicate("https://news.example/else", a.content_hash) == a
    assert store.find_duplicate("https://news.example/else", "other-hash") is None
    assert store.find_duplicate(None, "other-hash") is None
    # Inserting a duplicate anyway (e.g. another process raced us) is refused, naming the stored article.
    with pytest.raises(UserError, match=f"already stored as #{a.id}"):
        _add(store, VOLCANO + " Updated.", url="https://news.example/volcano")
    with pytest.raises(UserError, match=f"#{a.id}"):
        store.add_article(Document(text=VOLCANO, title="T", source="x"), a.content_hash, "t", [], _vectors(0))
    assert store.count() == 1


def test_articles_without_url_are_not_duplicates_of_each_other(store: Store) -> None:
    _add(store, VOLCANO)
    _add(store, HARVEST)
    assert store.count() == 2


def test_generation_bumps_on_every_write(store: Store) -> None:
    g0 = store.generation()
    a = _add(store, VOLCANO)
    assert store.generation() == g0 + 1
    _add(store, HARVEST)
    assert store.generation() == g0 + 2
    store.remove_article(a.id)
    assert store.generation() == g0 + 3
    with pytest.raises(UserError):
        store.remove_article(a.id)
    assert store.generation() == g0 + 3  # a refused write changes nothing


def test_fts_finds_added_passages_and_forgets_removed_ones(store: Store) -> None:
    a = _add(store, VOLCANO)
    b = _add(store, HARVEST)
    hits = store.lexical_search('"volcano" OR "erupted"', 5)
    assert hits, "the added article is searchable"
    ids_a = {c.id for c in store.article_chunks(a.id)}
    assert hits[0][0] in ids_a
    assert all(score > 0 for _, score in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # Porter stemming: "prices" in the text, "price" in the query.
    maize = store.lexical_search('"price"', 5)
    assert maize and maize[0][0] in {c.id for c in store.article_chunks(b.id)}
    store.remove_article(a.id)
    assert store.lexical_search('"volcano" OR "erupted"', 5) == []
    assert store.lexical_search("", 5) == []
    conn = sqlite3.connect(store.path)
    conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")  # raises if out of sync
    conn.close()


def test_vectors_round_trip(store: Store) -> None:
    ids0, mat0 = store.all_vectors()
    assert ids0.shape == (0,) and mat0.shape[0] == 0
    text = VOLCANO
    chunks = chunk_text(0, text, 20, 1)
    vecs = _vectors(len(chunks), seed=3)
    a = store.add_article(Document(text=text, title="T", source="x"), "h", "t", chunks, vecs)
    ids, mat = store.all_vectors()
    assert ids.dtype == np.int64 and mat.dtype == np.float32
    assert list(ids) == [c.id for c in store.article_chunks(a.id)]
    np.testing.assert_array_equal(mat, vecs)
    found, sub = store.vectors([int(ids[-1]), 12345])
    assert list(found) == [ids[-1]]
    np.testing.assert_array_equal(sub, vecs[-1:])
    gen, snap = store.id_snapshot()
    assert gen == store.generation() and list(snap) == list(ids)


def test_meta(store: Store) -> None:
    store.set_meta(model="packaged:all-MiniLM-L6-v2", dim=DIM, chunk_words=120)
    meta = store.get_meta()
    assert meta["model"] == "packaged:all-MiniLM-L6-v2"
    assert meta["dim"] == str(DIM)
    assert meta["schema_version"] == "1"
    with pytest.raises(ValueError):
        store.set_meta(generation=5)
    # A vector of another size than the recorded dim is refused.
    with pytest.raises(ValueError, match="dim"):
        store.add_article(
            Document(text="One sentence.", title="T", source="x"),
            "h", "t", [Chunk(0, 0, 0, 13, "One sentence.")], np.ones((1, DIM + 1), np.float32),
        )  # fmt: skip


def _rows_for(store: Store, chunk_words: int) -> Iterator[tuple[int, list[Chunk], np.ndarray]]:
    for art in store.list_articles():
        chunks = chunk_text(art.id, art.text, chunk_words, 0)
        yield art.id, chunks, _vectors(len(chunks), seed=art.id + 10)


def test_replace_all_chunks_swaps_everything(store: Store) -> None:
    a = _add(store, VOLCANO)
    _add(store, HARVEST)
    old_ids = set(store.chunk_ids().tolist())
    g = store.generation()
    store.replace_all_chunks(_rows_for(store, 1000), {"chunk_words": 1000, "model": "m2"})
    assert store.generation() == g + 1
    assert store.get_meta()["chunk_words"] == "1000"
    new_chunks = store.article_chunks(a.id)
    assert [c.text for c in new_chunks] == [VOLCANO]  # one passage for the whole short article now
    assert not old_ids & set(store.chunk_ids().tolist()), "chunk ids are never reused"
    assert store.lexical_search('"volcano"', 5)[0][0] == new_chunks[0].id
    conn = sqlite3.connect(store.path)
    conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    conn.close()
    # Incremental FTS maintenance still works after the bulk swap.
    store.remove_article(a.id)
    assert store.lexical_search('"volcano"', 5) == []


def test_replace_all_chunks_failing_midway_keeps_previous_state(store: Store) -> None:
    _add(store, VOLCANO)
    _add(store, HARVEST)
    before = (store.all_vectors()[0].tolist(), store.get_meta(), store.lexical_search('"maize"', 5))

    def failing() -> Iterator[tuple[int, list[Chunk], np.ndarray]]:
        rows = _rows_for(store, 1000)
        yield next(rows)
        raise RuntimeError("embedding crashed")

    with pytest.raises(RuntimeError, match="embedding crashed"):
        store.replace_all_chunks(failing(), {"chunk_words": 1000})
    after = (store.all_vectors()[0].tolist(), store.get_meta(), store.lexical_search('"maize"', 5))
    assert after == before
    # Triggers are back: new articles are searchable.
    _add(store, "Penguins nest on the ice shelf. They return every winter.")
    assert store.lexical_search('"penguins"', 5)


def test_replace_all_chunks_must_cover_every_article(store: Store) -> None:
    _add(store, VOLCANO)
    b = _add(store, HARVEST)
    rows = [r for r in _rows_for(store, 1000) if r[0] != b.id]
    with pytest.raises(ValueError, match="1 stored article"):
        store.replace_all_chunks(rows, {})
    assert len(store.article_chunks(b.id)) == b.passages


def test_a_second_store_on_the_same_file_sees_writes(tmp_path: Path) -> None:
    path = tmp_path / "articles.db"
    with Store(path) as one, Store(path) as two:
        a = _add(one, VOLCANO)
        assert two.get(a.id) is not None
        assert two.generation() == one.generation()
        assert two.lexical_search('"volcano"', 3)
        two.remove_article(a.id)
        assert one.get(a.id) is None
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_write_and_read_concurrently(store: Store) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for j in range(5):
                text = f"Article {n}-{j} mentions topic{n}x{j} twice. Topic{n}x{j} is the subject here."
                _add(store, text, seed=n * 10 + j)
                assert store.lexical_search(f'"topic{n}x{j}"', 5)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert store.count() == 20
    assert store.generation() == 20
    assert len(store.all_vectors()[0]) == store.chunk_count()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "articles.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="not a usable articlebot database"):
        Store(bad)


def test_a_process_killed_mid_write_leaves_the_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "articles.db"
    with Store(path) as s:
        _add(s, VOLCANO)
        _add(s, HARVEST)
        before = (s.all_vectors()[0].tolist(), s.generation(), s.get_meta())
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from pathlib import Path
        from corpus.store import Store
        from index.chunking import chunk_text
        s = Store(Path({str(path)!r}))
        def rows():
            for art in s.list_articles():
                chunks = chunk_text(art.id, art.text, 1000, 0)
                yield art.id, chunks, np.ones((len(chunks), {DIM}), np.float32)
                os._exit(3)  # killed after writing the first article's new passages
        s.replace_all_chunks(rows(), {{"chunk_words": 1000}})
        """
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=120, capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()
    with Store(path) as s:
        assert (s.all_vectors()[0].tolist(), s.generation(), s.get_meta()) == before
        assert s.lexical_search('"volcano"', 3)


def test_reindex_rows_may_read_the_store(store: Store) -> None:
    """The engine's reindex generator reads the articles while the swap transaction is open."""
    a = _add(store, VOLCANO)

    def rows() -> Iterator[tuple[int, list[Chunk], np.ndarray]]:
        for art in store.get_many(x.id for x in store.list_articles()).values():
            chunks = chunk_text(art.id, art.text, 1000, 0)
            yield art.id, chunks, _vectors(len(chunks))

    store.replace_all_chunks(rows(), {})
    assert [c.text for c in store.article_chunks(a.id)] == [VOLCANO]
