"""Sentence vectors without running the model: a weighted sum of per-word-piece vectors.

The answer step compares the question with the candidate sentences of the retrieved passages. Running
MiniLM on five sentences was ~30 ms of a 60-80 ms question on this 2-core CPU. Here each word piece has
one vector, the model's own output for it alone (`Embedder.token_vectors`, computed once), and a
sentence is the sum of its pieces' vectors weighted by how rare the piece is in the collection (SIF,
Arora et al. 2017: a / (a + p(piece))), as model2vec builds static models from a transformer. The same
vectors give soft coverage: each question piece matched with its closest piece of a sentence. In the latest
`make bench` run the sentence it would quote held the answer within 0.3 points as often as with MiniLM on
every sentence (SQuAD 2.0 test split 81.4 vs 81.7 %) and `ask` on the news took 44 instead of 73 ms (median,
RealTimeQA questions); docs/benchmarks.md has the side-by-side table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

# The composer's "says the same thing" threshold (SUPPORT_COSINE, 0.6 for MiniLM) on this scale: MiniLM put
# 3.9 % of 154,081 pairs of candidate sentences (the RealTimeQA questions' top 5 passages) at >= 0.6, and
# these vectors put the same share at >= 0.765. Near copies (>= 0.95) are as rare on both scales.
SUPPORT_COSINE = 0.765
SIF_A = 1e-3  # chosen on the SQuAD dev split, before the smoothing (1e-4: 75.7, 1e-3: 77.5, 1e-2: 77.1 % support)


# soft_coverage multiplies a question's ~20 word pieces by the ~1,100 of five news passages. numpy's OpenBLAS
# runs such a product on every core, and its idle threads then spin and take the CPU from the model and
# FAISS calls of the next question: `ask` on the news (206 RealTimeQA questions, median) took 79 ms with it
# (embedding the question 8.7 ms, retrieval 30.6 ms) and 48 ms with numpy's BLAS on one thread (4.5, 20.1 ms;
# another run of the same questions). numpy's own BLAS only: FAISS has its own.
for _blas in ThreadpoolController().select(user_api="blas").lib_controllers:
    if "numpy" in _blas.filepath:
        _blas.set_num_threads(1)


def sif_weights(vocab_size: int, ids: np.ndarray, counts: np.ndarray, a: float = SIF_A) -> np.ndarray:
    """a / (a + p) per word piece, p its share of the collection's word pieces with one more of each
    piece of the vocabulary (add-one smoothing): a collection of a few articles says little about which
    pieces are common, so its weights stay close to equal, and they sharpen as articles are added."""
    seen = np.zeros(vocab_size, dtype=np.float64)
    keep = (ids >= 0) & (ids < vocab_size)
    seen[ids[keep]] = counts[keep]
    p = (seen + 1.0) / (float(counts.sum()) + vocab_size)
    return (a / (a + p)).astype(np.float32)


class StaticEncoder:
    """What the answer step needs (`answer.composer.Encoder`): unit vectors for texts and a question."""

    support_cosine = SUPPORT_COSINE

    def __init__(
        self,
        table: np.ndarray,
        weights: np.ndarray,
        tokenize: Callable[[Sequence[str]], list[list[int]]],
        *,
        norms: np.ndarray | None = None,
    ):
        if table.shape[0] != weights.shape[0]:
            raise ValueError(f"{table.shape[0]} token vectors but {weights.shape[0]} weights")
        self.table = table
        self.weights = weights
        self.tokenize = tokenize
        self.norms = _norms(table) if norms is None else norms  # for the cosines of soft_coverage

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for i, ids in enumerate(self.tokenize(texts)):
            if ids:
                idx = np.asarray(ids, dtype=np.int64)
                out[i] = self.weights[idx] @ self.table[idx].astype(np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def soft_coverage(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """How much of the question each text covers, in meaning, one word piece at a time: each piece of
        the question is matched with its closest piece of the text (cosine of their vectors), and the
        matches are averaged with the pieces' SIF weights, so "stators" meets "stator" and "publish" meets
        "publishing" where exact word overlap does not (ColBERT's MaxSim, on static vectors)."""
        pieces = self.tokenize([question, *texts])
        q = np.asarray(pieces[0], dtype=np.int64)
        out = np.zeros(len(texts), dtype=np.float32)
        lengths = np.array([len(ids) for ids in pieces[1:]], dtype=np.int64)
        total = float(self.weights[q].sum()) if len(q) else 0.0
        if total <= 0 or not lengths.any():
            return out
        ids = np.fromiter((i for p in pieces[1:] for i in p), dtype=np.int64, count=int(lengths.sum()))
        sim = (self.table[q].astype(np.float32) / self.norms[q, None]) @ self.table[ids].astype(np.float32).T
        sim /= self.norms[ids]
        present = lengths > 0
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[present]
        best = np.maximum.reduceat(sim, starts, axis=1)  # question piece x text: its closest piece there
        out[present] = (self.weights[q] / total) @ best
        return out

    def with_weights(self, weights: np.ndarray) -> StaticEncoder:
        """The same vectors with other weights (the collection changed), without recomputing the norms."""
        return StaticEncoder(self.table, weights, self.tokenize, norms=self.norms)


def _norms(table: np.ndarray, rows: int = 2048) -> np.ndarray:
    """Each row's length, a block at a time: the whole table in float32 at once (and its squares) raised a
    process's peak RSS by 92 MB at its first question, once per thread that builds an encoder."""
    out = np.empty(table.shape[0], dtype=np.float32)
    for start in range(0, table.shape[0], rows):
        out[start : start + rows] = np.linalg.norm(table[start : start + rows].astype(np.float32), axis=1)
    return np.maximum(out, 1e-12)
