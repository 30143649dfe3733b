"""The Engine: the one service behind the CLI, the console chat, the Telegram bot and the evaluation.

Built once per process. Every method is synchronous and thread-safe; front ends on an event loop call it
with `asyncio.to_thread`. The SQLite store is the source of truth; the FAISS file is a cache of the stored
vectors that is checked at start and whenever another process has written to the store.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from answer.composer import compose
from answer.models import Answer
from answer.static import StaticEncoder, sif_weights
from corpus import extract
from corpus.fetch import fetch_document
from corpus.models import Article, Document
from corpus.store import Store
from engine.config import Settings
from engine.errors import IndexMismatch, UserError
from engine.locking import RWLock, data_dir_lock, try_data_dir_lock
from index.chunking import chunk_text
from index.dense import DenseIndex, remove_temp_files
from index.embedder import Embedder
from index.models import Chunk
from index.retriever import Retriever

log = logging.getLogger(__name__)
_SURROGATE = re.compile("[\ud800-\udfff]")

DB_NAME = "articles.db"
DENSE_NAME = "dense.faiss"
Progress = Callable[[int, int], None]


def today() -> datetime.date:
    """The day a question is asked when the caller does not say: today in UTC."""
    return datetime.datetime.now(datetime.UTC).date()


@dataclass(frozen=True)
class AddResult:
    """What became of one source: stored now, already there, or refused with a reason to show."""

    source: str
    article: Article | None = None
    duplicate: Article | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.article is not None


@dataclass(frozen=True)
class ReindexReport:
    articles: int
    passages: int
    seconds: float


@dataclass(frozen=True)
class Stats:
    articles: int
    passages: int
    index_vectors: int
    index_bytes: int
    model: str
    backend: str
    uptime_s: float
    data_dir: str


class Engine:
    def __init__(self, settings: Settings, *, progress: bool = False, embedder: Embedder | None = None):
        self.settings = settings
        self.progress = progress
        self.data_dir = settings.data_dir
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"Cannot create the data directory {self.data_dir}: {exc.strerror}") from exc
        self.store = Store(self.data_dir / DB_NAME)
        s = settings.index
        self.embedder = embedder or _shared_embedder(s.model, s.backend, s.batch_size)
        self._rw = RWLock()  # questions read; the swap of a rebuilt index writes
        self._write = threading.Lock()  # one writer in this process (the data-dir lock covers others)
        self._reindexing = threading.Lock()
        self._started = time.monotonic()
        self.notices: list[str] = []  # what the start-up check found and did, for the front end to show
        self.mismatch: str | None = self._check_settings()
        self._generation = -1
        self.dense = DenseIndex(self.embedder.dim)
        self.retriever = Retriever(self.store, self.embedder, self.dense, s)
        self._static: tuple[int, StaticEncoder] | None = None  # (store generation, its word-piece weights)
        self._static_lock = threading.Lock()
        self.embedder.token_vectors()  # read, or computed once per machine: at start, not at a question
        if self.mismatch is None:
            self._load_dense()
            try:
                self._ensure_token_counts()
            except (UserError, OSError) as exc:  # e.g. a read-only data dir: answers work, on the old counts
                self.notices.append(f"Could not count the articles' words for the answer step: {exc}")
                log.warning("could not count word pieces: %s", exc)

    # ---- consistency -------------------------------------------------------------------------------

    def _index_meta(self) -> dict[str, str]:
        s = self.settings.index
        return {
            "model": s.model,
            "dim": str(self.embedder.dim),
            "backend": str(getattr(self.embedder, "backend", s.backend)),  # what really embeds
            "chunk_words": str(s.chunk_words),
            "overlap_sentences": str(s.overlap_sentences),
            "embed_title": str(s.embed_title).lower(),
            "passage_tokens": str(s.passage_tokens),
        }

    def _check_settings(self) -> str | None:
        """Compare the store's model/chunking with the config; a new store adopts the config."""
        want = self._index_meta()
        have = self.store.get_meta()
        if self.store.chunk_count() == 0:
            if any(have.get(k) != v for k, v in want.items()):
                self.store.set_meta(**want)
            return None
        if have.get("model") != want["model"] or have.get("dim") != want["dim"]:
            return (
                f"The index was built with the model {have.get('model')!r} but the config asks for "
                f"{want['model']!r}. Run `articlebot reindex` to rebuild it."
            )
        # Stores from before a key was recorded say nothing about it: that is reported as "unrecorded".
        keys = ("backend", "chunk_words", "overlap_sentences", "embed_title", "passage_tokens")
        changed = [k for k in keys if have.get(k) != want[k]]
        if changed:
            # Old passages and vectors still answer (the same model); only new ones would differ. Say so.
            self.notices.append(
                "The passages were indexed with other settings ("
                + ", ".join(f"{k}={have.get(k, 'unrecorded')}" for k in changed)
                + "); run `articlebot reindex` to apply the new ones."
            )
        return None

    def _dense_manifest(self) -> dict[str, object]:
        return {**self._index_meta(), "generation": self._generation}

    def _load_dense(self) -> None:
        """Load the FAISS cache (at start, or after another process wrote) and repair it if it disagrees.

        A repaired cache is saved only if this process can take the writers' lock at once, and the store
        is read under it: a writer holding the lock saves its own, newer cache, and an older one never
        overwrites it. Temp files of a writer that was killed mid-save are cleared under the lock too.
        """
        with try_data_dir_lock(self.data_dir) as locked:
            if locked:
                self._remove_temp_files()
            self._reload_dense(save=locked)

    def _remove_temp_files(self) -> None:
        """Clear what a killed save left behind (the caller holds the writers' lock)."""
        removed = remove_temp_files(self.data_dir / DENSE_NAME)
        if removed:
            self.notices.append(f"Removed {len(removed)} temporary file(s) left by an interrupted write.")
            log.info("removed temp files left by an interrupted write: %s", ", ".join(removed))

    def _reload_dense(self, *, save: bool) -> None:
        """Load the FAISS cache; rebuild it from the stored vectors if it is missing or disagrees."""
        path = self.data_dir / DENSE_NAME
        generation = self.store.generation()
        ids, vectors = self.store.all_vectors()
        reason = None
        if path.exists():
            try:
                dense, manifest = DenseIndex.load(path)
            except Exception as exc:  # a corrupt cache is repaired, never fatal
                reason = f"the index file could not be read ({exc})"
            else:
                if manifest.get("model") != self.settings.index.model or dense.dim != self.embedder.dim:
                    reason = "the index file was built with another model"
                elif not np.array_equal(np.sort(dense.ids()), np.sort(ids)):
                    reason = "the index file and the store hold different passages"
                else:
                    self._install_dense(dense, generation)
                    return
        elif len(ids):
            reason = "the index file is missing"
        dense = DenseIndex(self.embedder.dim)
        if len(ids):
            dense.add(ids, vectors)
        self._install_dense(dense, generation)
        if reason:
            self.notices.append(f"Repaired the search index: {reason}; rebuilt {len(ids)} passages from the store.")
            log.info("index repaired: %s (%d passages)", reason, len(ids))
        if save:
            self._save_dense()

    def _install_dense(self, dense: DenseIndex, generation: int) -> None:
        with self._rw.write():
            self.dense = dense
            self.retriever.set_dense(dense)
            self._generation = generation

    def _save_dense(self) -> None:
        """Write the cache (the caller holds the writers' lock, so no other process is saving)."""
        self._remove_temp_files()
        try:
            self.dense.save(self.data_dir / DENSE_NAME, self._dense_manifest())
        except OSError as exc:
            # The store holds the truth; the cache is rebuilt at the next start. Say so, do not fail the write.
            self.notices.append(f"Could not save the index file ({exc.strerror}); it will be rebuilt at start.")
            log.error("could not save the index file: %s", exc)

    def _sync(self) -> None:
        """Pick up writes made by another process (e.g. `articlebot add` while the bot runs)."""
        if self.store.generation() != self._generation:
            with self._write:
                if self.store.generation() != self._generation:
                    log.info("store changed on disk; reloading the index")
                    self._load_dense()

    def check(self) -> list[str]:
        """The start-up consistency check, for `articlebot check`: problems found (empty when all agree)."""
        problems = [self.mismatch] if self.mismatch else []
        ids, _ = self.store.all_vectors()
        if not np.array_equal(np.sort(self.dense.ids()), np.sort(ids)):
            problems.append("The search index and the store disagree; restart or run `articlebot reindex`.")
        return problems

    def _require_index(self) -> None:
        if self.mismatch:
            raise IndexMismatch(self.mismatch)

    # ---- adding ------------------------------------------------------------------------------------

    def add(
        self, sources: Sequence[str], *, title: str | None = None, added_by: str = "cli"
    ) -> list[AddResult]:
        """Add URLs, files and directories; every item is reported, the rest of a batch still goes in."""
        self._require_index()
        docs: list[tuple[str, Document | None, str | None]] = []
        for source in sources:
            if source.lower().startswith(("http://", "https://")) or "://" in source:
                docs.append(self._fetch(source, title))
                continue
            try:
                paths = extract.collect_paths(Path(source))
            except UserError as exc:
                docs.append((source, None, str(exc)))
                continue
            if not paths:
                docs.append((source, None, f"{source}: no supported files in this directory"))
            for path in paths:
                try:
                    doc = extract.extract_file(path, self._max_bytes)
                    if title and len(paths) == 1:
                        doc = _retitle(doc, title)
                    docs.append((str(path), doc, None))
                except UserError as exc:
                    docs.append((str(path), None, str(exc)))
        return self._ingest(docs, added_by)

    def _fetch(self, url: str, title: str | None) -> tuple[str, Document | None, str | None]:
        try:
            doc = fetch_document(url, self.settings.corpus)
        except UserError as exc:
            return url, None, str(exc)
        return url, (_retitle(doc, title) if title else doc), None

    def add_text(self, text: str, *, title: str | None = None, added_by: str) -> AddResult:
        self._require_index()
        try:
            doc = extract.document_from_text(text, title)
        except UserError as exc:
            return AddResult("pasted text", error=str(exc))
        return self._ingest([("pasted text", doc, None)], added_by)[0]

    def add_upload(self, filename: str, data: bytes, *, added_by: str) -> AddResult:
        self._require_index()
        try:
            doc = extract.extract_bytes(filename, data, self._max_bytes)
        except UserError as exc:
            return AddResult(filename, error=str(exc))
        return self._ingest([(filename, doc, None)], added_by)[0]

    def add_documents(self, docs: Iterable[Document], *, added_by: str) -> list[AddResult]:
        """Bulk path for already-extracted documents (the evaluation's data sets)."""
        self._require_index()
        return self._ingest([(d.source, d, None) for d in docs], added_by)

    @property
    def _max_bytes(self) -> int:
        return int(self.settings.corpus.max_file_mb * 1_000_000)

    def _ingest(self, items: list[tuple[str, Document | None, str | None]], added_by: str) -> list[AddResult]:
        """Chunk and embed everything in one batch, then store each article in its own transaction."""
        results: dict[int, AddResult] = {}
        todo: list[tuple[int, str, Document, str, list[Chunk]]] = []
        seen: dict[str, int] = {}
        twins: dict[int, int] = {}
        for i, (source, doc, error) in enumerate(items):
            if doc is None:
                results[i] = AddResult(source, error=error or f"{source}: could not be read")
                continue
            digest = extract.content_hash(doc.text)
            dup = self.store.find_duplicate(doc.url, digest)
            if dup is not None:
                results[i] = AddResult(source, duplicate=dup)
                continue
            if digest in seen:  # the same text twice in one batch: reported against the first
                twins[i] = seen[digest]
                continue
            seen[digest] = i
            s = self.settings.index
            chunks = chunk_text(0, doc.text, s.chunk_words, s.overlap_sentences)
            if not chunks:
                results[i] = AddResult(source, error=f"{source}: no text to index")
                continue
            todo.append((i, source, doc, digest, chunks))
        if todo:
            tokens = list(self._token_counts([doc.text for _, _, doc, _, _ in todo]))
            texts = [self._embed_text(doc.title, c) for _, _, doc, _, chunks in todo for c in chunks]
            vectors = self._embed_passages(texts, progress=self.progress and len(texts) > 64)
            self.embedder.release_memory()
            offset = 0
            with self._write, data_dir_lock(self.data_dir):
                if self.store.generation() != self._generation:
                    self._reload_dense(save=False)  # saved below
                for (i, source, doc, digest, chunks), counts in zip(todo, tokens, strict=True):
                    vecs = vectors[offset : offset + len(chunks)]
                    offset += len(chunks)
                    dup = self.store.find_duplicate(doc.url, digest)  # another process may have added it
                    if dup is not None:
                        results[i] = AddResult(source, duplicate=dup)
                        continue
                    try:
                        article = self.store.add_article(doc, digest, added_by, chunks, vecs, counts)
                    except UserError as exc:  # disk full, read-only: this item failed, say why
                        results[i] = AddResult(source, error=f"{source}: {exc}")
                        continue
                    ids = np.asarray(self.store.article_chunk_ids(article.id), dtype=np.int64)
                    with self._rw.write():
                        self.dense.add(ids, vecs)
                        self._generation = self.store.generation()
                    results[i] = AddResult(source, article=article)
                    log.info("added article %d %r (%d passages) by %s", article.id, article.title,
                             article.passages, added_by)
                self._save_dense()
        for i, first in twins.items():
            r = results[first]
            stored = r.article or r.duplicate
            results[i] = AddResult(items[i][0], duplicate=stored) if stored else AddResult(items[i][0], error=r.error)
        return [results[i] for i in range(len(items))]

    # ---- asking ------------------------------------------------------------------------------------

    def ask(
        self, question: str, *, k: int | None = None, mode: str | None = None, asked_on: datetime.date | None = None
    ) -> Answer:
        """Answer `question` from the collection. `asked_on` (default: today, UTC) is the day it is asked:
        the passages of articles published in the days before it rank higher (`index.recency_boost`)."""
        question = " ".join(question.split())
        if not question:
            raise UserError("The question is empty: type a question about the articles.")
        surrogate = _SURROGATE.search(question)
        if surrogate:  # the tokenizer cannot take it; Telegram's JSON can carry one ("\ud800")
            raise UserError(
                f"The question contains an unpaired surrogate U+{ord(surrogate.group()):04X} (not valid text): "
                "retype it."
            )
        limit = self.settings.answer.max_question_chars
        if len(question) > limit:
            raise UserError(f"The question is {len(question)} characters long; the limit is {limit}.")
        self._require_index()
        self._sync()
        top_k = k or self.settings.answer.top_k
        t0 = time.perf_counter()
        qvec = self.embedder.encode_query(question)
        t1 = time.perf_counter()
        with self._rw.read():
            hits = self.retriever.search_with_vector(question, qvec, top_k, mode=mode, asked_on=asked_on or today())
        t2 = time.perf_counter()
        articles = self.store.get_many({h.chunk.article_id for h in hits})
        static = self._static_encoder()
        answer = compose(
            question,
            hits,
            articles,
            self.embedder,
            self.settings.answer,
            query_vector=qvec,
            top_k=top_k,
            sentence_encoder=static if self.settings.answer.sentence_vectors == "static" else None,
            soft_coverage=static.soft_coverage,
        )
        t3 = time.perf_counter()
        answer.timings_ms.update(
            embed=round((t1 - t0) * 1000, 2),
            retrieve=round((t2 - t1) * 1000, 2),
            total=round((t3 - t0) * 1000, 2),
        )
        return answer

    def _static_encoder(self) -> StaticEncoder:
        """Sentence vectors from word-piece vectors, weighted by the collection's counts as of now."""
        generation = self.store.generation()
        cached = self._static
        if cached is not None and cached[0] == generation:
            return cached[1]
        with self._static_lock:  # one thread rebuilds it; the others wait for it instead of each building one
            cached = self._static
            if cached is not None and cached[0] == generation:
                return cached[1]
            ids, counts = self.store.token_counts()
            weights = sif_weights(self.embedder.vocab_size, ids, counts)
            encoder = (
                cached[1].with_weights(weights)
                if cached is not None
                else StaticEncoder(self.embedder.token_vectors(), weights, self.embedder.token_ids)
            )
            self._static = (generation, encoder)
            return encoder

    def _token_counts(self, texts: Sequence[str], batch: int = 256) -> Iterator[dict[int, int]]:
        """Each text's word-piece counts (for the collection's counts, answer/static.py), in order. Tokenized
        a batch at a time: a folder of thousands of articles would otherwise hold every id list at once."""
        for start in range(0, len(texts), batch):
            for ids in self.embedder.token_ids(texts[start : start + batch]):
                values, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
                yield dict(zip(values.tolist(), counts.tolist(), strict=True))

    def _ensure_token_counts(self) -> None:
        """Count the word pieces of every article if the store's counts are from another tokenizer or
        from before they were kept (a one-off: 17 s for the 3,779 news articles, another job running)."""
        by = self.settings.index.model
        if self.store.get_meta().get("tokens_counted_by") == by:
            return
        with self._write, data_dir_lock(self.data_dir):
            if self.store.get_meta().get("tokens_counted_by") == by:
                return
            total: dict[int, int] = {}
            articles = self.store.list_articles()
            for counts in self._token_counts([a.text for a in articles]):
                for t, n in counts.items():
                    total[t] = total.get(t, 0) + n
            before = self.store.generation()
            self.store.replace_token_counts(total, by)
            if self._generation == before:  # only the counts changed: the loaded index is still current
                self._generation = self.store.generation()
            if articles:
                log.info("counted the word pieces of %d articles (%d kinds)", len(articles), len(total))

    def passage(self, chunk_id: int) -> tuple[Article, Chunk] | None:
        chunk = self.store.chunks([chunk_id]).get(chunk_id)
        if chunk is None:
            return None
        article = self.store.get(chunk.article_id)
        return (article, chunk) if article else None

    # ---- browsing and admin ------------------------------------------------------------------------

    def get(self, article_id: int) -> Article | None:
        return self.store.get(article_id)

    def list_articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        return self.store.list_articles(offset, limit)

    def count(self) -> int:
        return self.store.count()

    def remove(self, article_id: int) -> Article:
        with self._write, data_dir_lock(self.data_dir):
            if self.store.generation() != self._generation:
                self._reload_dense(save=False)  # saved below
            ids = np.asarray(self.store.article_chunk_ids(article_id), dtype=np.int64)
            # UserError if there is no such article
            article = self.store.remove_article(article_id, tokens=lambda text: next(self._token_counts([text])))
            with self._rw.write():
                self.dense.remove(ids)
                self._generation = self.store.generation()
            self._save_dense()
        log.info("removed article %d %r", article.id, article.title)
        return article

    def reindex(self, progress: Progress | None = None) -> ReindexReport:
        """Re-chunk and re-embed every article; questions use the old index until the swap."""
        if not self._reindexing.acquire(blocking=False):
            raise UserError("A reindex is already running.")
        try:
            t0 = time.perf_counter()
            s = self.settings.index
            articles = self.store.list_articles()
            titles = {a.id: a.title for a in articles}
            planned = self._plan_reindex(articles)
            total = sum(len(chunks) for _, chunks in planned)
            texts = [self._embed_text(titles[a], c) for a, chunks in planned for c in chunks]
            vectors = self._embed_with_progress(texts, progress, total)
            self.embedder.release_memory()  # once for the whole job, not after each progress step
            with self._write, data_dir_lock(self.data_dir):
                # Articles added or removed while we embedded: drop the removed, embed the new ones now.
                current = {a.id: a for a in self.store.list_articles()}
                rows, offset = [], 0
                for article_id, chunks in planned:
                    vecs = vectors[offset : offset + len(chunks)]
                    offset += len(chunks)
                    if article_id in current:
                        rows.append((article_id, chunks, vecs))
                done = {a for a, _ in planned}
                for article_id, chunks in self._plan_reindex([a for i, a in current.items() if i not in done]):
                    title = current[article_id].title
                    vecs = self._embed_passages([self._embed_text(title, c) for c in chunks])
                    rows.append((article_id, chunks, vecs))
                self.store.replace_all_chunks(rows, self._index_meta())
                self.mismatch = None
                self.notices.clear()
                ids, all_vecs = self.store.all_vectors()
                dense = DenseIndex(self.embedder.dim)
                if len(ids):
                    dense.add(ids, all_vecs)
                self._install_dense(dense, self.store.generation())
                self._save_dense()
            self._ensure_token_counts()  # counted by another model's tokenizer before a model change
            passages = sum(len(c) for _, c, _ in rows)
            log.info("reindexed %d articles, %d passages (model %s)", len(rows), passages, s.model)
            return ReindexReport(len(rows), passages, time.perf_counter() - t0)
        finally:
            self._reindexing.release()

    def _embed_text(self, title: str, chunk: Chunk) -> str:
        """What the model embeds for a passage: the title first when `embed_title` (a passage deep in an
        article rarely names its subject; the title does), else the passage alone. Quotes and BM25 use
        the passage text only."""
        title = " ".join(title.split())
        return f"{title}\n{chunk.text}" if self.settings.index.embed_title and title else chunk.text

    def _embed_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self.embedder.encode(texts, progress=progress, max_tokens=self.settings.index.passage_tokens)

    def _plan_reindex(self, articles: Iterable[Article]) -> list[tuple[int, list[Chunk]]]:
        s = self.settings.index
        return [(a.id, chunk_text(a.id, a.text, s.chunk_words, s.overlap_sentences)) for a in articles]

    def _embed_with_progress(self, texts: list[str], progress: Progress | None, total: int) -> np.ndarray:
        if progress is None:
            return self._embed_passages(texts, progress=self.progress)
        parts, step = [], max(self.settings.index.batch_size * 8, 1)
        for start in range(0, len(texts), step):
            parts.append(self._embed_passages(texts[start : start + step]))
            progress(min(start + step, total), total)
        if not parts:
            progress(0, 0)
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.vstack(parts)

    def stats(self) -> Stats:
        path = self.data_dir / DENSE_NAME
        return Stats(
            articles=self.store.count(),
            passages=self.store.chunk_count(),
            index_vectors=len(self.dense),
            index_bytes=path.stat().st_size if path.exists() else 0,
            model=self.settings.index.model,
            backend=self.settings.index.backend,
            uptime_s=time.monotonic() - self._started,
            data_dir=str(self.data_dir),
        )


@functools.lru_cache(maxsize=2)
def _shared_embedder(model: str, backend: str, batch_size: int) -> Embedder:
    """Models are loaded once per process, however many engines (tests, evaluation) are opened."""
    return Embedder(model, backend, batch_size)


def _retitle(doc: Document, title: str) -> Document:
    return replace(doc, title=title.strip()[:200] or doc.title)
