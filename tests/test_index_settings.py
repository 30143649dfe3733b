"""What the engine embeds for a passage, and what it records about how the index was built."""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from engine.service import DB_NAME

TITLE = "Harbour bridge reopens after repairs"
TEXT = (
    "The council said the work took eleven weeks. Engineers replaced forty steel cables and repainted "
    "the towers. Traffic resumed on Monday morning."
)


def _stored(engine: Any) -> tuple[list[Any], np.ndarray]:
    article = engine.list_articles()[0]
    chunks = engine.store.article_chunks(article.id)
    _, vectors = engine.store.all_vectors()
    return chunks, vectors


def test_passages_are_embedded_with_their_title(make_engine: Any, embedder: Any) -> None:
    engine = make_engine(index={"embed_title": True})
    engine.add_text(TEXT, title=TITLE, added_by="t")
    chunks, vectors = _stored(engine)
    assert len(chunks) == 1 and chunks[0].text == TEXT  # the passage (what quotes use) has no title in it
    with_title, alone = embedder.encode([f"{TITLE}\n{TEXT}", TEXT])
    assert float(vectors[0] @ with_title) > 0.999
    assert float(vectors[0] @ alone) < 0.99  # the title really changed the vector


def test_embed_title_off_embeds_the_passage_alone(make_engine: Any, embedder: Any) -> None:
    engine = make_engine(index={"embed_title": False})
    engine.add_text(TEXT, title=TITLE, added_by="t")
    _, vectors = _stored(engine)
    assert float(vectors[0] @ embedder.encode([TEXT])[0]) > 0.999


def test_reindex_embeds_titles_and_records_the_settings(make_engine: Any, embedder: Any, tmp_path: Any) -> None:
    data = tmp_path / "data"
    old = make_engine(data, index={"embed_title": False})
    old.add_text(TEXT, title=TITLE, added_by="t")
    assert old.store.get_meta()["embed_title"] == "false"
    assert old.store.get_meta()["backend"] == embedder.backend
    old.store.close()

    new = make_engine(data, index={"embed_title": True})
    assert new.mismatch is None  # same model: the old vectors still answer
    assert any("embed_title=false" in n and "articlebot reindex" in n for n in new.notices), new.notices
    assert new.ask("How many steel cables were replaced?").citations  # still served meanwhile

    new.reindex()
    assert new.notices == []
    assert new.store.get_meta()["embed_title"] == "true"
    _, vectors = _stored(new)
    assert float(vectors[0] @ embedder.encode([f"{TITLE}\n{TEXT}"])[0]) > 0.999
    new.store.close()
    assert make_engine(data, index={"embed_title": True}).notices == []


def test_a_store_from_before_the_backend_was_recorded_asks_for_a_reindex(make_engine: Any, tmp_path: Any) -> None:
    data = tmp_path / "data"
    engine = make_engine(data)
    engine.add_text(TEXT, title=TITLE, added_by="t")
    engine.store.close()
    with sqlite3.connect(data / DB_NAME) as conn:  # what a store written before this key existed holds
        conn.execute("DELETE FROM meta WHERE key = 'backend'")
    conn.close()
    notices = make_engine(data).notices
    assert any("backend=unrecorded" in n and "articlebot reindex" in n for n in notices), notices


def test_passage_tokens_embeds_only_the_first_word_pieces(make_engine: Any, embedder: Any) -> None:
    engine = make_engine(index={"embed_title": False, "passage_tokens": 16})
    engine.add_text(TEXT, title=TITLE, added_by="t")
    _, vectors = _stored(engine)
    pieces = embedder._model.tokenizer.tokenize(TEXT)
    assert len(pieces) > 14
    head = embedder._model.tokenizer.convert_tokens_to_string(pieces[:14])  # 14 + [CLS] + [SEP] = 16
    first, whole = embedder.encode([head, TEXT])
    assert float(vectors[0] @ first) > 0.999
    assert float(vectors[0] @ whole) < 0.99
    assert embedder.max_tokens == 256  # the window is back for questions and other callers
    assert engine.store.get_meta()["passage_tokens"] == "16"


def test_the_model_memory_is_given_back_once_per_job(make_engine: Any, monkeypatch: Any) -> None:
    engine = make_engine(index={"batch_size": 2, "chunk_words": 40})  # a reindex progress step: 16 passages
    calls: list[int] = []
    monkeypatch.setattr(engine.embedder, "release_memory", lambda: calls.append(1))
    engine.add_text("Tides\n" + "The harbour tide rose two metres overnight. " * 100, added_by="test")
    assert calls == [1]  # one add, however many batches it embedded
    steps: list[int] = []
    engine.reindex(lambda done, total: steps.append(done))
    assert len(steps) > 1 and calls == [1, 1]  # one reindex of several progress steps: once more
