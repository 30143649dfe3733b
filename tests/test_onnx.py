"""The int8 ONNX backend: exported locally, offline, and close to the float model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.embedder import Embedder

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = [
    "According to them, this has resulted in the death of 36 civilians including children.",
    "Netflix announced Sunday that the wildly popular South Korean show is green lit for a second season.",
    "The central bank raised interest rates by three quarters of a percentage point.",
]


def test_int8_backend_exports_once_and_agrees_with_torch(tmp_path: Path, embedder: Any) -> None:
    fast = Embedder("packaged:all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    exported = list((tmp_path / "onnx").rglob("*.onnx"))
    assert [p.name for p in exported] == ["model-int8-v2.onnx"]
    assert not [p for p in (tmp_path / "onnx").rglob("*") if p.name.startswith(".export-")]
    a, b = embedder.encode(TEXTS), fast.encode(TEXTS)
    assert b.shape == (3, 384) and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    assert (a * b).sum(1).min() > 0.97
    # Each text is still nearest to its own float embedding: retrieval order survives quantisation.
    assert list((b @ a.T).argmax(1)) == [0, 1, 2]
    again = Embedder("packaged:all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    # Dynamic quantisation scales activations per batch, so compare like with like: the same single input.
    assert np.allclose(again.encode_query(TEXTS[0]), fast.encode_query(TEXTS[0]), atol=1e-6)
    assert float(again.encode_query(TEXTS[0]) @ b[0]) > 0.99

    # Giving the arena back after a job leaves the vectors as they were.
    before = fast.encode_query(TEXTS[1])
    fast.encode(TEXTS * fast.batch_size)
    fast.release_memory()
    assert np.allclose(fast.encode_query(TEXTS[1]), before, atol=1e-6)
