"""Shared fixtures: the real MiniLM model loaded once per session, and fresh engines on temp data dirs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ARTICLEBOT_SHARED", ROOT.parent / "shared"))
SAMPLE = SHARED / "articles" / "russia-us-talks-syria-airstrikes.txt"
SAMPLE_QUOTE = "According to them, this has resulted in the death of 36 civilians including children."


@pytest.fixture(scope="session")
def embedder() -> Any:
    from index.embedder import Embedder

    return Embedder("packaged:all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def sample_path() -> Path:
    if not SAMPLE.exists():
        pytest.skip(f"sample article not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture
def make_engine(tmp_path: Path, embedder: Any) -> Callable[..., Any]:
    """A fresh Engine on its own data dir; keyword arguments override config sections."""
    from engine.config import load_settings
    from engine.service import Engine

    def make(data_dir: Path | None = None, **sections: dict[str, Any]) -> Any:
        settings = load_settings(ROOT / "config.yaml", data_dir or tmp_path / "data")
        if sections:
            settings = settings.model_copy(
                update={k: getattr(settings, k).model_copy(update=v) for k, v in sections.items()}
            )
        return Engine(settings, embedder=embedder)

    return make
