"""The article database: SQLite (WAL), the single source of truth for articles, passages and their vectors.

Every write is one `BEGIN IMMEDIATE` transaction, so a process killed mid-write leaves the previous state,
and every write bumps `meta.generation` so other processes (and the dense index cache) can tell the store
moved on. The FTS5 index over passage text is kept by triggers, inside the same transaction as `chunks`.
Connections are per thread (sqlite3 objects must not be shared), so the Telegram bot's worker threads can
call one `Store` at once; SQLite's own locking (busy timeout 30 s) orders writers across processes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from corpus.models import Article, Document
from engine.errors import UserError
from index.models import Chunk

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

FTS_TOKENIZE = "porter unicode61"  # chunks_fts and doc_frequencies must tokenize and stem alike

# Separate statements, not executescript(): that would COMMIT the open transaction first.
_SCHEMA = [
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS articles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    title        TEXT NOT NULL,
    text         TEXT NOT NULL,
    source       TEXT NOT NULL,
    content_hash TEXT NOT NULL UNIQUE,
    url          TEXT UNIQUE,
    outlet       TEXT,
    byline       TEXT,
    published    TEXT,
    added_by     TEXT NOT NULL,
    added_at     TEXT NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS chunks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    start      INTEGER NOT NULL,
    "end"      INTEGER NOT NULL,
    text       TEXT NOT NULL,
    vector     BLOB NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id, seq)",
    # How often each word piece of the embedding model's tokenizer occurs in the stored articles: the
    # answer step weighs sentence words by it (answer/static.py). Kept in the article's own transaction.
    """
CREATE TABLE IF NOT EXISTS token_counts (
    token INTEGER PRIMARY KEY,
    n     INTEGER NOT NULL
)""",
    f"""
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='{FTS_TOKENIZE}'
)""",
]

# External-content FTS5 must be told about every insert and delete, with the old text. Triggers also fire
# for rows removed by ON DELETE CASCADE, so removing an article cleans its FTS rows too.
_TRIGGERS = [
    """
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END""",
    """
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END""",
    """
CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE OF text ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END""",
]
_DROP_TRIGGERS = [f"DROP TRIGGER IF EXISTS {name}" for name in ("chunks_ai", "chunks_ad", "chunks_au")]

# Per connection, in memory: a scratch FTS5 table that tokenizes query terms exactly as chunks_fts does
# (stemmed), its token list, and the passage counts and occurrences of chunks_fts's terms. Nothing is
# written to the file.
_TEMP_VOCAB = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5(text, tokenize='{FTS_TOKENIZE}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_tokens USING fts5vocab(temp, query_terms, 'instance')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.passage_terms USING fts5vocab(main, chunks_fts, 'row')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.passage_instances USING fts5vocab(main, chunks_fts, 'instance')",
]


def _varint(blob: bytes) -> int:
    """The first varint of an FTS5 docsize record (SQLite's: 7 bits a byte, high bit = more follow): with
    one indexed column, the passage's length in tokens."""
    value = 0
    for byte in blob[:9]:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value


_ARTICLE_COLS = (
    "a.id, a.title, a.text, a.source, a.content_hash, a.added_by, a.added_at, a.url, a.outlet, a.byline, "
    "a.published, (SELECT COUNT(*) FROM chunks c WHERE c.article_id = a.id)"
)
_CHUNK_COLS = 'id, article_id, seq, start, "end", text'


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _article(row: sqlite3.Row | tuple[Any, ...]) -> Article:
    return Article(
        id=row[0], title=row[1], text=row[2], source=row[3], content_hash=row[4], added_by=row[5],
        added_at=row[6], url=row[7], outlet=row[8], byline=row[9], published=row[10], passages=row[11],
    )  # fmt: skip


def _articles(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[Article]:
    return [
        _article(r) for r in conn.execute(f"SELECT {_ARTICLE_COLS} FROM articles a WHERE {where}", params)
    ]


def _chunk(row: sqlite3.Row | tuple[Any, ...]) -> Chunk:
    return Chunk(article_id=row[1], seq=row[2], start=row[3], end=row[4], text=row[5], id=row[0])


def _as_matrix(vectors: np.ndarray, n: int) -> np.ndarray:
    """Vectors as a C-contiguous little-endian float32 (n, dim) matrix, so blobs read back identically."""
    arr = np.asarray(vectors, dtype="<f4")
    if n == 0 and arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim == 2 else 0)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"expected {n} vectors as an (n, dim) matrix, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _read_only(directory: Path) -> bool:
    """A read-only mount, or (for non-root users) a directory without write permission."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY) or not os.access(directory, os.W_OK)
    except OSError:
        return False


def storage_error(path: Path, exc: sqlite3.Error, *, writing: bool = True) -> UserError | None:
    """The reason a database operation failed, when the user can act on it (full, read-only, busy)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = path.parent
    outcome = ": nothing was saved" if writing else ""
    if primary == sqlite3.SQLITE_FULL:
        return UserError(f"The disk holding {where} is full{outcome}. Free some space and try again.")
    if primary == sqlite3.SQLITE_READONLY or (
        primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR) and _read_only(where)
    ):  # a file system remounted read-only under a running process fails its writes with an I/O error
        return UserError(
            f"The data directory {where} is read-only{outcome}. articlebot needs to write there: "
            "check its mount and permissions."
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return UserError(f"Another articlebot process is writing to {where}; try again in a moment.")
    if primary == sqlite3.SQLITE_IOERR:
        return UserError(f"Disk error on {path} ({exc}){outcome}. Check the disk.")
    if primary == sqlite3.SQLITE_CANTOPEN:
        return UserError(f"Cannot open {path} ({exc}): check that the data directory exists and is writable.")
    return None


def _generation(conn: sqlite3.Connection) -> int:
    """The store's write counter, read on the caller's connection (inside its transaction)."""
    return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def _in_batches(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    """Split id lists so `IN (?, ...)` stays under SQLite's variable limit."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class Store:
    """Articles, passages, vectors and the FTS index in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: dict[int, sqlite3.Connection] = {}
        self._conns_lock = threading.Lock()
        self._closed = False
        self._init_schema()

    # ---- connections and transactions -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        # check_same_thread=False only so close() may close every thread's connection; each
        # connection is otherwise used by the thread that opened it alone.
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            err = storage_error(self.path, exc, writing=False)
            raise err or UserError(f"Cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise storage_error(self.path, exc, writing=False) or UserError(
                f"{self.path} is not a usable articlebot database: {exc}"
            ) from exc
        if str(mode).lower() != "wal":
            conn.close()
            raise UserError(f"{self.path}: could not switch the database to WAL mode (got {mode})")
        self._local.conn = conn
        with self._conns_lock:
            self._prune_dead_threads()
            self._conns[threading.get_ident()] = conn
        return conn

    def _prune_dead_threads(self) -> None:
        """Close connections of threads that have ended, so a long-lived bot does not leak them."""
        alive = {t.ident for t in threading.enumerate()}
        for ident in [i for i in self._conns if i not in alive]:
            self._conns.pop(ident).close()

    @contextmanager
    def _write(self, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write transaction, taking the write lock up front (no busy deadlocks).

        A full disk, a read-only directory or a writer that holds on too long is a UserError saying so;
        the transaction is rolled back (SQLite has already done it for some errors, e.g. a full disk).
        """
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if (err := storage_error(self.path, exc)) is None:
                raise
            raise err from exc
        try:
            yield conn
            if bump:
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and (err := storage_error(self.path, exc)):
                raise err from exc
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs see one consistent snapshot (WAL)."""
        conn = self._conn()
        if conn.in_transaction:  # called from inside a write (e.g. a reindex generator): already consistent
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (call at shutdown, when no other thread uses the store)."""
        with self._conns_lock:
            for conn in self._conns.values():
                conn.close()
            self._conns.clear()
            self._closed = True
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _init_schema(self) -> None:
        conn = self._conn()
        try:
            with self._write(bump=False):
                for stmt in _SCHEMA + _TRIGGERS:
                    conn.execute(stmt)
                conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))  # fmt: skip
                conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0')")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0])
        except sqlite3.DatabaseError as exc:
            raise storage_error(self.path, exc, writing=False) or UserError(
                f"{self.path} is not a usable articlebot database: {exc}"
            ) from exc
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written by a newer articlebot (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade articlebot"
            )

    # ---- articles ---------------------------------------------------------------------------------

    def find_duplicate(self, url: str | None, content_hash: str) -> Article | None:
        """The stored article with this canonical URL or this content hash, if any."""
        found = _articles(
            self._conn(),
            "a.content_hash = ? OR (? IS NOT NULL AND a.url = ?) ORDER BY a.content_hash = ? DESC LIMIT 1",
            (content_hash, url, url, content_hash),
        )
        return found[0] if found else None

    def add_article(
        self,
        doc: Document,
        content_hash: str,
        added_by: str,
        chunks: list[Chunk],
        vectors: np.ndarray,
        tokens: Mapping[int, int] | None = None,
    ) -> Article:
        """Store an article with its passages, vectors, FTS rows and word-piece counts in one transaction.

        Raises UserError if an article with the same URL or content hash is already stored (also when
        another process stored it between the caller's duplicate check and this call).
        """
        matrix = _as_matrix(vectors, len(chunks))
        self._check_chunks(doc.text, chunks)
        added_at = _now()
        try:
            with self._write() as conn:
                self._check_dim(conn, matrix)
                cur = conn.execute(
                    "INSERT INTO articles(title, text, source, content_hash, url, outlet, byline, published, "
                    "added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc.title, doc.text, doc.source, content_hash, doc.url, doc.outlet, doc.byline,
                     doc.published, added_by, added_at),
                )  # fmt: skip
                article_id = int(cur.lastrowid or 0)
                self._insert_chunks(conn, article_id, chunks, matrix)
                if tokens:
                    self._count_tokens(conn, tokens, +1)
        except sqlite3.IntegrityError as exc:
            dup = self.find_duplicate(doc.url, content_hash)
            if dup is None:
                raise
            raise UserError(f"This article is already stored as #{dup.id} ({dup.title!r})") from exc
        return Article(
            id=article_id, title=doc.title, text=doc.text, source=doc.source, content_hash=content_hash,
            added_by=added_by, added_at=added_at, url=doc.url, outlet=doc.outlet, byline=doc.byline,
            published=doc.published, passages=len(chunks),
        )  # fmt: skip

    def remove_article(
        self, article_id: int, tokens: Callable[[str], Mapping[int, int]] | None = None
    ) -> Article:
        """Delete an article with its passages and FTS rows; returns what was removed. `tokens` gives the
        article text's word-piece counts, taken off the collection's in the same transaction."""
        with self._write() as conn:
            found = _articles(conn, "a.id = ?", (article_id,))
            if not found:
                raise UserError(f"There is no article #{article_id}")
            conn.execute("DELETE FROM articles WHERE id = ?", (article_id,))
            if tokens is not None:
                self._count_tokens(conn, tokens(found[0].text), -1)
        return found[0]

    # ---- word-piece counts ------------------------------------------------------------------------

    @staticmethod
    def _count_tokens(conn: sqlite3.Connection, tokens: Mapping[int, int], sign: int) -> None:
        conn.executemany(
            "INSERT INTO token_counts(token, n) VALUES (?, ?) ON CONFLICT(token) DO UPDATE SET n = n + excluded.n",
            [(int(t), sign * int(n)) for t, n in tokens.items()],
        )
        if sign < 0:
            conn.execute("DELETE FROM token_counts WHERE n <= 0")

    def replace_token_counts(self, tokens: Mapping[int, int], counted_by: str) -> None:
        """Set the collection's word-piece counts from scratch (a new tokenizer, or a store from before
        they were kept) and record whose tokenizer counted them. Bumps the generation, so other processes
        pick the new counts up."""
        with self._write() as conn:
            conn.execute("DELETE FROM token_counts")
            self._count_tokens(conn, tokens, +1)
            self._set_meta(conn, {"tokens_counted_by": counted_by})

    def token_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(word-piece ids, counts) over every stored article, both int64."""
        rows = self._conn().execute("SELECT token, n FROM token_counts").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        counts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        return ids, counts

    def get(self, article_id: int) -> Article | None:
        found = _articles(self._conn(), "a.id = ?", (article_id,))
        return found[0] if found else None

    def get_many(self, ids: Iterable[int]) -> dict[int, Article]:
        wanted = sorted({int(i) for i in ids})
        out: dict[int, Article] = {}
        with self._read() as conn:
            for batch in _in_batches(wanted):
                marks = ",".join("?" * len(batch))
                for article in _articles(conn, f"a.id IN ({marks})", batch):
                    out[article.id] = article
        return out

    def list_articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """Articles oldest first (by id), a page at a time."""
        page = (-1 if limit is None else max(0, limit), max(0, offset))
        return _articles(self._conn(), "1 ORDER BY a.id LIMIT ? OFFSET ?", page)

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    # ---- passages and vectors ---------------------------------------------------------------------

    def chunks(self, ids: Iterable[int]) -> dict[int, Chunk]:
        """Passages by chunk id; ids no longer stored are simply absent."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, Chunk] = {}
        with self._read() as conn:
            for batch in _in_batches(wanted):
                marks = ",".join("?" * len(batch))
                for row in conn.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE id IN ({marks})", batch):
                    out[row[0]] = _chunk(row)
        return out

    def chunk_articles(self, ids: Iterable[int]) -> dict[int, int]:
        """The article of each passage id (no text read: cheap for the hundreds of candidates a search
        fuses); ids no longer stored are simply absent."""
        return self._column_by_id("SELECT id, article_id FROM chunks WHERE id IN ({marks})", ids)

    def published(self, ids: Iterable[int]) -> dict[int, str]:
        """The publication date (as stored, ISO) of each article id that has one; others are absent."""
        sql = "SELECT id, published FROM articles WHERE id IN ({marks}) AND published IS NOT NULL"
        return self._column_by_id(sql, ids)

    def _column_by_id(self, sql: str, ids: Iterable[int]) -> dict[int, Any]:
        """{id: value} from `sql` (selecting id, value; "{marks}" stands for the ids), in batches."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, Any] = {}
        with self._read() as conn:
            for batch in _in_batches(wanted):
                out.update(conn.execute(sql.format(marks=",".join("?" * len(batch))), batch))
        return out

    def titles(self) -> tuple[int, list[tuple[int, str]]]:
        """(generation, every article's (id, title)), read in one transaction."""
        with self._read() as conn:
            gen = _generation(conn)
            rows = conn.execute("SELECT id, title FROM articles ORDER BY id").fetchall()
        return gen, [(int(i), str(t)) for i, t in rows]

    def article_chunks(self, article_id: int) -> list[Chunk]:
        """An article's passages in order, with their ids (e.g. to add them to the dense index)."""
        rows = self._conn().execute(
            f"SELECT {_CHUNK_COLS} FROM chunks WHERE article_id = ? ORDER BY seq", (article_id,)
        )
        return [_chunk(r) for r in rows]

    def article_chunk_ids(self, article_id: int) -> np.ndarray:
        """An article's chunk ids (int64) in passage order: row i matches the i-th vector given to add."""
        rows = self._conn().execute("SELECT id FROM chunks WHERE article_id = ? ORDER BY seq", (article_id,))
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def chunk_count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunk_ids(self) -> np.ndarray:
        """All chunk ids, sorted, as int64 (cheap: no vectors read)."""
        rows = self._conn().execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def id_snapshot(self) -> tuple[int, np.ndarray]:
        """(generation, sorted chunk ids) read in one transaction, for reconciling the dense index.

        Chunk ids come from AUTOINCREMENT and are never reused, so a cache that holds exactly these ids
        holds exactly these passages; diff against it, then fetch only the missing rows with `vectors`.
        """
        with self._read() as conn:
            gen = _generation(conn)
            rows = conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return gen, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, sorted int64; their vectors (n, dim) float32). Ids no longer stored are skipped."""
        wanted = sorted({int(i) for i in ids})
        found: list[int] = []
        blobs: list[bytes] = []
        with self._read() as conn:
            for batch in _in_batches(wanted):
                marks = ",".join("?" * len(batch))
                for cid, blob in conn.execute(
                    f"SELECT id, vector FROM chunks WHERE id IN ({marks}) ORDER BY id", batch
                ):
                    found.append(cid)
                    blobs.append(blob)
            dim = self._meta_dim(conn)
        return self._pack(found, blobs, dim)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids int64 sorted, vectors (n, dim) float32): everything the dense index is built from."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
            dim = self._meta_dim(conn)
        return self._pack([r[0] for r in rows], [r[1] for r in rows], dim)

    @staticmethod
    def _pack(ids: list[int], blobs: list[bytes], dim: int | None) -> tuple[np.ndarray, np.ndarray]:
        id_arr = np.asarray(ids, dtype=np.int64)
        if not blobs:
            return id_arr, np.zeros((0, dim or 0), dtype=np.float32)
        width = len(blobs[0]) // 4
        if any(len(b) != width * 4 for b in blobs):
            raise UserError("The database holds vectors of different sizes: run `articlebot reindex`")
        mat = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), width)
        return id_arr, mat.astype(np.float32, copy=True)

    def lexical_search(self, fts_query: str, k: int) -> list[tuple[int, float]]:
        """BM25 over passages: (chunk id, -bm25) best first; "" (nothing searchable) gives []."""
        if not fts_query.strip() or k <= 0:
            return []
        rows = (
            self._conn()
            .execute(
                "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY s, rowid LIMIT ?",
                (fts_query, int(k)),
            )
            .fetchall()
        )
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _vocab(self) -> sqlite3.Connection:
        """This thread's connection with the temp tables of `_TEMP_VOCAB` made."""
        conn = self._conn()
        if not getattr(self._local, "vocab", False):
            for sql in _TEMP_VOCAB:
                conn.execute(sql)
            self._local.vocab = True
        return conn

    def fts_tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """The tokens chunks_fts makes of each word (stemmed): one for most words, several for a word FTS5
        splits ("weather-satellite"), none for a word it drops."""
        if not words:
            return []
        conn = self._vocab()
        conn.execute("DELETE FROM temp.query_terms")
        conn.executemany("INSERT INTO temp.query_terms(rowid, text) VALUES (?, ?)", list(enumerate(words)))
        rows = conn.execute("SELECT doc, term FROM temp.query_tokens ORDER BY doc, col, offset").fetchall()
        conn.execute("DELETE FROM temp.query_terms")
        out: list[list[str]] = [[] for _ in words]
        for i, token in rows:
            out[int(i)].append(str(token))
        return [tuple(t) for t in out]

    def doc_frequencies(self, terms: Sequence[str]) -> list[int]:
        """How many passages hold each term, as FTS5 matches it (stemmed; for a term FTS5 splits into
        several tokens, its rarest token's count, an upper bound of the phrase's). 0: matches nothing."""
        tokens = self.fts_tokens(terms)
        _, count = self.fts_doc_counts({t for toks in tokens for t in toks})
        return [min((count[t] for t in toks), default=0) for toks in tokens]

    def fts_doc_counts(self, tokens: Iterable[str]) -> tuple[int, dict[str, int]]:
        """(generation, how many passages hold each FTS token; 0 for none), read in one transaction."""
        wanted = sorted(set(tokens))
        self._vocab()
        with self._read() as conn:
            gen = _generation(conn)
            count = dict.fromkeys(wanted, 0)
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                sql = f"SELECT term, doc FROM temp.passage_terms WHERE term IN ({marks})"
                count.update((str(t), int(n)) for t, n in conn.execute(sql, part))
        return gen, count

    def fts_postings(self, tokens: Iterable[str]) -> tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """(generation, for each FTS token the passages holding it and how often: chunk ids ascending
        (int64) and counts (int64)), read from the FTS5 index in one transaction. Cost: one row per
        occurrence, ~2 us each (a word in 5,000 of the news passages: ~11 ms)."""
        wanted = sorted(set(tokens))
        self._vocab()
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        with self._read() as conn:
            gen = _generation(conn)
            for token in wanted:
                rows = conn.execute(
                    "SELECT doc, count(*) FROM temp.passage_instances WHERE term = ? GROUP BY doc ORDER BY doc",
                    (token,),
                ).fetchall()
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                tf = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
                out[token] = (ids, tf)
        return gen, out

    def fts_lengths(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(generation, chunk ids ascending, each passage's length in FTS tokens), in one transaction:
        what FTS5's bm25() reads for the length normalisation."""
        with self._read() as conn:
            gen = _generation(conn)
            rows = conn.execute("SELECT id, sz FROM chunks_fts_docsize ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        lengths = np.fromiter((_varint(r[1]) for r in rows), dtype=np.int64, count=len(rows))
        return gen, ids, lengths

    def replace_all_chunks(self, rows: Iterable[tuple[int, list[Chunk], np.ndarray]], meta: dict) -> None:
        """Reindex: swap every article's passages, vectors and FTS rows and update meta, all or nothing.

        `rows` yields (article_id, chunks, vectors) and is consumed inside the transaction, so it may
        compute embeddings lazily; the write lock is held meanwhile (other writers wait, readers do not).
        It may read articles through this store (same thread), but the old passages are already gone.
        Every stored article must appear exactly once; otherwise, or if `rows` raises, nothing changes.
        """
        with self._write() as conn:
            # Bulk path: drop the per-row FTS triggers, refill, then rebuild FTS from `chunks` in one go.
            # DDL is transactional in SQLite, so a failure restores triggers, chunks and FTS alike.
            for stmt in _DROP_TRIGGERS:
                conn.execute(stmt)
            conn.execute("DELETE FROM chunks")
            seen: set[int] = set()
            dim: int | None = None
            for article_id, chunks, vectors in rows:
                if article_id in seen:
                    raise ValueError(f"article #{article_id} given twice to replace_all_chunks")
                seen.add(article_id)
                row = conn.execute("SELECT text FROM articles WHERE id = ?", (article_id,)).fetchone()
                if row is None:
                    raise ValueError(f"replace_all_chunks: no article #{article_id}")
                self._check_chunks(row[0], chunks)
                matrix = _as_matrix(vectors, len(chunks))
                if matrix.shape[0]:
                    if dim is not None and matrix.shape[1] != dim:
                        raise ValueError(f"article #{article_id}: vectors of dim {matrix.shape[1]} not {dim}")
                    dim = matrix.shape[1]
                self._insert_chunks(conn, article_id, chunks, matrix)
            missing = conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0] - len(seen)
            if missing:
                raise ValueError(f"replace_all_chunks: {missing} stored article(s) got no new passages")
            if dim is not None and "dim" in meta and int(meta["dim"]) != dim:
                raise ValueError(f"replace_all_chunks: vectors have dim {dim} but meta says {meta['dim']}")
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
            for stmt in _TRIGGERS:
                conn.execute(stmt)
            self._set_meta(conn, meta)

    @staticmethod
    def _insert_chunks(
        conn: sqlite3.Connection, article_id: int, chunks: list[Chunk], matrix: np.ndarray
    ) -> None:
        conn.executemany(
            'INSERT INTO chunks(article_id, seq, start, "end", text, vector) VALUES (?, ?, ?, ?, ?, ?)',
            ((article_id, c.seq, c.start, c.end, c.text, matrix[i].tobytes()) for i, c in enumerate(chunks)),
        )

    @staticmethod
    def _check_chunks(text: str, chunks: list[Chunk]) -> None:
        """Refuse passages that are not exact slices of the article: citations rely on it."""
        for c in chunks:
            if not (0 <= c.start <= c.end <= len(text)) or text[c.start : c.end] != c.text:
                raise ValueError(f"chunk seq {c.seq} is not the article text [{c.start}:{c.end}]")

    @staticmethod
    def _meta_dim(conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return int(row[0]) if row and str(row[0]).isdigit() else None

    def _check_dim(self, conn: sqlite3.Connection, matrix: np.ndarray) -> None:
        dim = self._meta_dim(conn)
        if matrix.shape[0] and dim is not None and matrix.shape[1] != dim:
            raise ValueError(f"vectors have dim {matrix.shape[1]} but the store holds dim {dim}")

    # ---- meta -------------------------------------------------------------------------------------

    def generation(self) -> int:
        """A counter bumped by every article or passage write, in any process."""
        return _generation(self._conn())

    def get_meta(self) -> dict[str, str]:
        return {k: v for k, v in self._conn().execute("SELECT key, value FROM meta")}

    def set_meta(self, **kv: Any) -> None:
        """Record settings (model, dim, chunk_words, ...); values are stored as strings."""
        with self._write(bump=False) as conn:
            self._set_meta(conn, kv)

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, kv: dict[str, Any]) -> None:
        for key in kv:
            if key in ("generation", "schema_version"):
                raise ValueError(f"meta key {key!r} is managed by the store")
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(str(k), str(v)) for k, v in kv.items()],
        )
