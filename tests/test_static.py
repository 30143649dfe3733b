"""The answer step's static sentence vectors: the word-piece table, the rarity weights, and the
collection's word-piece counts the store keeps beside the articles."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from answer.static import StaticEncoder, sif_weights
from engine.service import DB_NAME

RIVER = "The river flooded the valley after three days of rain. Farmers moved their cattle to the hills."
BRIDGE = "Engineers replaced forty steel cables on the harbour bridge. Traffic resumed on Monday morning."


def _expected_counts(embedder: Any, texts: list[str]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for ids in embedder.token_ids(texts):
        total.update(ids)
    return dict(total)


def _stored_counts(engine: Any) -> dict[int, int]:
    ids, counts = engine.store.token_counts()
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def test_sif_weights_favour_rare_pieces() -> None:
    weights = sif_weights(6, np.array([1, 2, 9]), np.array([900, 100, 5]), a=1e-3)
    assert weights[1] < weights[2] < weights[0] == weights[3]  # the more frequent, the lighter
    # p = (count + 1) / (all pieces counted + vocabulary): 1005 counted (id 9 is outside this vocabulary)
    assert weights[1] == pytest.approx(1e-3 / (1e-3 + 901 / 1011), rel=1e-5)
    assert weights[0] == pytest.approx(1e-3 / (1e-3 + 1 / 1011), rel=1e-5)
    empty = sif_weights(4, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert np.all(empty == empty[0])  # nothing counted: every piece weighs the same


def test_a_small_collection_weighs_pieces_almost_alike() -> None:
    # Two short articles say little about which pieces are common: the weights must not let the pieces
    # the articles happen not to contain outweigh the rest a hundred to one.
    small = sif_weights(30522, np.array([1996, 2000, 3000]), np.array([6, 3, 1]))
    assert small.max() / small.min() < 1.25  # without the smoothing: 600 to one
    big = sif_weights(30522, np.array([1996, 3000]), np.array([600_000, 10]))
    assert big[3000] / big[1996] > 50  # a large collection tells "the" from a rare word


def test_static_encoder_is_the_weighted_sum_of_piece_vectors() -> None:
    table = np.array([[1, 0], [0, 1], [1, 1], [3, 4]], dtype=np.float16)
    weights = np.array([1.0, 0.5, 2.0, 1.0], dtype=np.float32)
    pieces = {"a": [0, 1], "b": [2, 2, 3], "": []}
    enc = StaticEncoder(table, weights, lambda texts: [pieces[t] for t in texts])
    vecs = enc.encode(["a", "b", ""])
    assert np.allclose(vecs[0], np.array([1.0, 0.5]) / np.hypot(1.0, 0.5))
    assert np.allclose(vecs[1], np.array([7.0, 8.0]) / np.hypot(7.0, 8.0))  # 2*[1,1] twice + [3,4]
    assert np.all(vecs[2] == 0)  # nothing to embed: a zero vector, not NaN
    assert np.allclose(enc.encode_query("a"), vecs[0])
    with pytest.raises(ValueError, match="4 token vectors but 3 weights"):
        StaticEncoder(table, weights[:3], lambda texts: [])


def test_token_vectors_are_the_models_output_for_each_piece_alone(embedder: Any) -> None:
    table = embedder.token_vectors()
    assert table.shape == (embedder.vocab_size, embedder.dim) and table.dtype == np.float16
    piece = embedder.token_ids(["harbour"])[0][0]
    tok = embedder._tokenizer
    out = embedder._token_outputs(np.array([[tok.cls_token_id, piece, tok.sep_token_id]], dtype=np.int64))
    assert np.allclose(table[piece].astype(np.float32), out[0, 1], atol=2e-2)
    assert embedder.token_vectors() is table  # computed (or read) once per process


def test_token_vectors_are_read_back_from_the_cache(
    embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index.embedder import Embedder

    first = Embedder(embedder.name, embedder.backend, cache_dir=tmp_path)
    table = first.token_vectors()
    saved = list((tmp_path / "static").glob("*.npy"))
    assert len(saved) == 1 and not list((tmp_path / "static").glob("*.tmp"))
    second = Embedder(embedder.name, embedder.backend, cache_dir=tmp_path)
    monkeypatch.setattr(second, "_compute_token_table", None)  # reading the file must not compute it again
    assert np.array_equal(second.token_vectors(), table)


def test_counts_follow_adds_and_removes(make_engine: Any, embedder: Any) -> None:
    engine = make_engine()
    river = engine.add_text(RIVER, title="Floods", added_by="t").article
    engine.add_text(BRIDGE, title="Bridge", added_by="t")
    assert _stored_counts(engine) == _expected_counts(embedder, [RIVER, BRIDGE])
    engine.remove(river.id)
    assert _stored_counts(engine) == _expected_counts(embedder, [BRIDGE])
    assert engine.store.get_meta()["tokens_counted_by"] == engine.settings.index.model


def test_a_refused_duplicate_counts_nothing(make_engine: Any, embedder: Any) -> None:
    engine = make_engine()
    engine.add_text(RIVER, title="Floods", added_by="t")
    before = _stored_counts(engine)
    result = engine.add_text(RIVER, title="Floods again", added_by="t")
    assert result.duplicate is not None and _stored_counts(engine) == before


def test_a_store_from_before_the_counts_is_counted_at_start(make_engine: Any, embedder: Any, tmp_path: Path) -> None:
    engine = make_engine()
    engine.add_text(RIVER, title="Floods", added_by="t")
    engine.add_text(BRIDGE, title="Bridge", added_by="t")
    engine.store.close()
    with sqlite3.connect(tmp_path / "data" / DB_NAME) as conn:  # what an older articlebot left
        conn.execute("DELETE FROM token_counts")
        conn.execute("DELETE FROM meta WHERE key = 'tokens_counted_by'")
    reopened = make_engine()
    assert _stored_counts(reopened) == _expected_counts(embedder, [RIVER, BRIDGE])
    answer = reopened.ask("Where did the farmers move their cattle?")
    shown = answer.citations or answer.closest  # the best sentence, whatever the confidence
    assert "hills" in shown[0].quote


def test_weights_change_when_another_process_adds(make_engine: Any, tmp_path: Path) -> None:
    reader, writer = make_engine(), make_engine()
    reader.add_text(RIVER, title="Floods", added_by="t")
    before = reader._static_encoder().weights.copy()
    writer.add_text(BRIDGE, title="Bridge", added_by="t")
    after = reader._static_encoder().weights
    cable = reader.embedder.token_ids(["cables"])[0][0]
    assert after[cable] < before[cable]  # seen now, so lighter


@pytest.mark.parametrize("vectors", ["static", "model"])
def test_both_sentence_vectors_answer_with_a_verified_quote(make_engine: Any, vectors: str) -> None:
    engine = make_engine(answer={"sentence_vectors": vectors})
    engine.add_text(RIVER, title="Floods", added_by="t")
    engine.add_text(BRIDGE, title="Bridge", added_by="t")
    answer = engine.ask("How many steel cables were replaced?")
    assert not answer.abstained
    assert "forty steel cables" in answer.citations[0].quote and "forty" in answer.text


class _Fixed:
    """An encoder that gives each known sentence a fixed cosine with the question (2-d unit vectors)."""

    def __init__(self, cosines: dict[str, float]):
        self.cosines = cosines
        self.calls: list[list[str]] = []

    def encode(self, texts: Any) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[c, np.sqrt(1 - c * c)] for c in (self.cosines[t] for t in texts)], dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return np.array([1.0, 0.0], dtype=np.float32)


@pytest.mark.parametrize(("rerank", "first"), [(1, "Alpha"), (2, "Beta")])
def test_minilm_re_ranks_the_best_static_sentences_by_the_mean_cosine(rerank: int, first: str) -> None:
    from answer.composer import compose
    from corpus.models import Article
    from engine.config import AnswerSettings
    from index.models import Chunk, Hit

    sentences = ["Alpha rose.", "Beta fell.", "Gamma held."]
    text = " ".join(sentences)
    article = Article(id=1, title="t", text=text, source="s", content_hash="h", added_by="t", added_at="now")
    hit = Hit(Chunk(1, 0, 0, len(text), text, id=1), score=1.0)
    static = _Fixed({"Alpha rose.": 0.9, "Beta fell.": 0.8, "Gamma held.": 0.1})
    model = _Fixed({"Alpha rose.": 0.2, "Beta fell.": 0.7, "Gamma held.": 0.95})
    settings = AnswerSettings(rerank_sentences=rerank, min_confidence=0.0, off_topic_cosine=0.0)
    answer = compose("Which one?", [hit], {1: article}, model, settings, sentence_encoder=static)
    # MiniLM embedded only the best `rerank` by the static score (Gamma, its favourite, is never seen)
    assert model.calls == [sentences[:rerank]]
    # rerank 2: Beta's mean (0.75) beats Alpha's (0.55); rerank 1: Alpha stays first
    assert answer.citations[0].quote.startswith(first)
    assert answer.signals["cosine"] == pytest.approx(model.cosines[answer.citations[0].quote])


def test_soft_coverage_matches_each_question_piece_with_its_closest_piece() -> None:
    # unit vectors 0: [1, 0], 1: [0, 1], 2: [0.6, 0.8] (length 5 in the table: the cosine ignores length)
    table = np.array([[1, 0], [0, 1], [3, 4]], dtype=np.float16)
    weights = np.array([1.0, 3.0, 1.0], dtype=np.float32)
    pieces = {"q": [0, 1], "exact": [1, 0, 0], "near": [2], "half": [0], "": []}
    enc = StaticEncoder(table, weights, lambda texts: [pieces[t] for t in texts])
    soft = enc.soft_coverage("q", ["exact", "near", "half", ""])
    # question weights 1 and 3 (shares 0.25, 0.75); "near" is at cosine 0.6 from piece 0, 0.8 from piece 1
    assert soft == pytest.approx([1.0, 0.25 * 0.6 + 0.75 * 0.8, 0.25 * 1.0 + 0.75 * 0.0, 0.0])
    assert np.all(enc.soft_coverage("", ["exact"]) == 0)  # a question with no pieces covers nothing
    assert enc.with_weights(np.ones(3, dtype=np.float32)).soft_coverage("q", ["half"]) == pytest.approx([0.5])


def test_numpy_runs_the_answer_steps_products_on_one_thread() -> None:
    from threadpoolctl import threadpool_info

    import answer.static  # noqa: F401  (sets it at import)

    numpy_blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]
    assert numpy_blas and all(lib["num_threads"] == 1 for lib in numpy_blas)


def test_soft_coverage_ranks_the_sentences_and_feeds_the_confidence() -> None:
    from answer.composer import SOFT_CANDIDATES, compose
    from corpus.models import Article
    from engine.config import AnswerSettings
    from index.models import Chunk, Hit

    sentences = [f"Item {n} stood." for n in range(20)]
    text = " ".join(sentences)
    article = Article(id=1, title="t", text=text, source="s", content_hash="h", added_by="t", added_at="now")
    hit = Hit(Chunk(1, 0, 0, len(text), text, id=1), score=1.0)
    flat = _Fixed(dict.fromkeys(sentences, 0.5))  # every sentence alike by cosine and by word overlap
    seen: list[list[str]] = []

    def soft(question: str, texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.array([0.9 if t == "Item 3 stood." else 0.2 for t in texts], dtype=np.float32)

    settings = AnswerSettings(min_confidence=0.0, off_topic_cosine=0.0)
    answer = compose("Which item?", [hit], {1: article}, flat, settings, sentence_encoder=flat, soft_coverage=soft)
    assert answer.citations[0].quote == "Item 3 stood."  # without soft coverage the first sentence wins the tie
    assert answer.signals["soft"] == pytest.approx(0.9)
    assert len(seen) == 1 and len(seen[0]) == SOFT_CANDIDATES  # only the best by the cheap signals are scored
    plain = compose("Which item?", [hit], {1: article}, flat, settings, sentence_encoder=flat)
    assert plain.citations[0].quote == "Item 0 stood." and plain.signals["soft"] == plain.signals["lexical"]


def test_norms_are_computed_a_block_at_a_time_without_changing_them() -> None:
    from answer.static import _norms

    table = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float16)
    table[4] = 0  # a zero vector gets a tiny length, not 0 (no division by zero)
    expected = np.maximum(np.linalg.norm(table.astype(np.float32), axis=1), 1e-12)
    assert np.allclose(_norms(table, rows=2), expected) and _norms(table, rows=2)[4] == pytest.approx(1e-12)


def test_threads_asking_at_once_build_one_static_encoder(make_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import answer.static

    engine = make_engine()
    engine.add_text(RIVER, title="Floods", added_by="t")
    builds: list[int] = []
    norms = answer.static._norms

    def slow_norms(table: np.ndarray, rows: int = 2048) -> np.ndarray:
        builds.append(1)
        time.sleep(0.2)  # the other threads arrive while this one builds
        return norms(table, rows)

    monkeypatch.setattr(answer.static, "_norms", slow_norms)
    engine._static = None
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(engine._static_encoder())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 4 and all(e is got[0] for e in got)
    assert builds == [1]  # each thread building its own held the table in float32 four times over (bot peak +350 MB)
