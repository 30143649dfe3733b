"""Question sets: the user's own JSONL, SQuAD 2.0 and RealTimeQA, read into one shape.

A set carries its articles (as `Document`s keyed by a stable key: the SQuAD paragraph title, the news URL)
and its questions, whose gold articles are named by those keys; the JSONL set has no articles of its own
and names its gold articles by title or URL in the current collection.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from corpus.models import Document, iso_day
from engine.errors import UserError

Format = Literal["jsonl", "squad2", "realtimeqa"]
Split = Literal["dev", "test", "all"]
FORMATS: tuple[str, ...] = ("jsonl", "squad2", "realtimeqa")
SQUAD_DEV_TITLES = 8  # the first 8 titles tune, the last 8 report (issue 4)


@dataclass(frozen=True)
class Question:
    """One question; `gold` names the article(s) that hold its answer (keys of the set's documents)."""

    id: str
    text: str
    answers: tuple[str, ...]
    gold: tuple[str, ...]
    answerable: bool = True
    group: str = ""  # the SQuAD title the question belongs to
    asked: datetime.date | None = None  # the day it was asked (None: today, as the bot would)


@dataclass(frozen=True)
class EvalSet:
    """Questions, and the articles to ingest (None: use the current collection)."""

    name: str
    format: str
    questions: tuple[Question, ...]
    documents: tuple[tuple[str, Document], ...] | None = None
    split: str = "all"

    def fingerprint(self) -> str:
        """A short hash of the articles, so a cached ingest is reused only for the same texts."""
        h = hashlib.sha256(f"{self.format}\n".encode())
        for key, doc in self.documents or ():
            for part in (key, doc.title, doc.url or "", doc.text):
                h.update(part.encode("utf-8", "surrogatepass"))
                h.update(b"\x00")
        return h.hexdigest()[:12]

    def limited(self, n: int | None) -> EvalSet:
        """At most n questions, spread evenly over the set (the first n would all be from one topic)."""
        if n is None or n >= len(self.questions):
            return self
        if n < 1:
            raise UserError("--limit must be at least 1")
        total = len(self.questions)
        picked = tuple(self.questions[i * total // n] for i in range(n))
        return replace(self, questions=picked)


def guess_format(path: Path) -> str:
    """A directory is RealTimeQA, a .json file SQuAD 2.0, anything else the user's JSONL."""
    if path.is_dir():
        return "realtimeqa"
    return "squad2" if path.suffix.lower() == ".json" else "jsonl"


def load(path: Path, fmt: str | None = None, split: str = "all") -> EvalSet:
    """Read a question set; errors name the file (and the line) and what is wrong."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    fmt = fmt or guess_format(path)
    if split != "all" and fmt == "jsonl":
        raise UserError("--split dev|test applies to the squad2 and realtimeqa formats only")
    if fmt == "jsonl":
        return load_jsonl(path)
    if fmt == "squad2":
        return load_squad2(path, split)
    if fmt == "realtimeqa":
        return load_realtimeqa(path, split)
    raise UserError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# ---- the user's own questions ----------------------------------------------------------------------


def _str_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v.strip())
    return None


def load_jsonl(path: Path) -> EvalSet:
    """One `{"question", "answers": [...], "article"?, "answerable"?, "asked"?}` per line; blank lines
    skipped. "asked" is the day the question is asked ("YYYY-MM-DD"; default today)."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory; the jsonl format is one question per line in a file")
    questions = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f'{where}: expected an object with a "question"')
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise UserError(f'{where}: "question" must be a non-empty string')
        answers = _str_list(row.get("answers", []))
        if answers is None:
            raise UserError(f'{where}: "answers" must be a list of strings')
        article = row.get("article")
        if article is not None and (not isinstance(article, str) or not article.strip()):
            raise UserError(f'{where}: "article" must be the title or URL of an article in the collection')
        answerable = row.get("answerable", bool(answers))
        if not isinstance(answerable, bool):
            raise UserError(f'{where}: "answerable" must be true or false')
        asked = row.get("asked")
        if asked is not None:
            asked = iso_day(asked)
            if asked is None:
                raise UserError(f'{where}: "asked" must be the day the question is asked, as "YYYY-MM-DD"')
        questions.append(
            Question(
                id=str(row.get("id", n)),
                text=question.strip(),
                answers=answers,
                gold=(article.strip(),) if article else (),
                answerable=answerable,
                asked=asked,
            )
        )
    if not questions:
        raise UserError(f"{path}: no questions in the file")
    return EvalSet(name=path.name, format="jsonl", questions=tuple(questions))


# ---- SQuAD 2.0 -------------------------------------------------------------------------------------


def squad_title(title: str, n: int) -> str:
    """The article title of the n-th paragraph (1-based) of a SQuAD Wikipedia article."""
    return f"{title.replace('_', ' ')} \u00b6{n}"


def load_squad2(path: Path, split: str = "all") -> EvalSet:
    """Each paragraph is one article; questions of the split (dev: first 8 titles, test: the rest)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a SQuAD 2.0 file ({exc.__class__.__name__}: {exc})") from None
    if split not in ("dev", "test", "all"):
        raise UserError(f"unknown split {split!r}; use dev, test or all")
    documents: list[tuple[str, Document]] = []
    questions: list[Question] = []
    for t, article in enumerate(data):
        in_split = split == "all" or (split == "dev") == (t < SQUAD_DEV_TITLES)
        for p, para in enumerate(article["paragraphs"], 1):
            key = squad_title(article["title"], p)
            doc = Document(text=para["context"], title=key, source=f"squad2:{article['title']}#{p}")
            documents.append((key, doc))
            if not in_split:
                continue
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible"))
                answers = () if impossible else tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(
                    Question(
                        id=qa["id"],
                        text=qa["question"],
                        answers=answers,
                        gold=(key,),
                        answerable=not impossible,
                        group=article["title"],
                    )
                )
    if not questions:
        raise UserError(f"{path}: no questions in the {split} split ({len(data)} titles; dev is the first "
                        f"{SQUAD_DEV_TITLES}, test the rest)")  # fmt: skip
    return EvalSet(name=path.name, format="squad2", questions=tuple(questions), documents=tuple(documents), split=split)


# ---- RealTimeQA ------------------------------------------------------------------------------------


def _canonical(url: str) -> str:
    try:
        from corpus.extract import canonical_url
    except ImportError:  # the extractor is optional for loading; the store dedups on what it is given
        return url.strip()
    return canonical_url(url.strip())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {n}: not valid JSON ({exc.msg})") from None
    return rows


def _title_from_url(url: str) -> str:
    parts = [p for p in urlsplit(url).path.split("/") if p and p != "index.html"]
    slug = parts[-1] if parts else url
    return slug.rsplit(".", 1)[0].replace("-", " ").replace("_", " ").strip() or url


def _clean_text(text: str) -> str:
    """Scraped text may carry control characters and CRLF; a Document holds clean text with \n only."""
    try:
        from corpus.extract import strip_format_controls
    except ImportError:
        pass
    else:
        text = strip_format_controls(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:10].replace("/", "-")


def load_realtimeqa(directory: Path, split: str = "all") -> EvalSet:
    """The news collection is every article of the gold and gcs files (gold text wins for a URL);
    the questions are those with a gold article that has text. The split is by week: dev is the first
    half of the weeks (the quiz's own order), test the rest; the collection is always every article."""
    if split not in ("dev", "test", "all"):
        raise UserError(f"unknown split {split!r}; use dev, test or all")
    if not directory.is_dir():
        raise UserError(f"{directory}: the realtimeqa format is a directory of *_qa/_gold/_gcs.jsonl files")
    gold_files = sorted(directory.glob("*_gold.jsonl"))
    gcs_files = sorted(directory.glob("*_gcs.jsonl"))
    qa_files = sorted(directory.glob("*_qa.jsonl"))
    if not gold_files or not qa_files:
        raise UserError(f"{directory}: no *_gold.jsonl or *_qa.jsonl files (is this a RealTimeQA directory?)")
    texts: dict[str, dict[str, Any]] = {}  # canonical url -> first non-empty record, gold before gcs
    titles: dict[str, str] = {}
    gold_of: dict[str, list[str]] = {}
    for f in gold_files:
        for row in _read_jsonl(f):
            for r in row.get("search_result") or []:
                url, text = r.get("url"), r.get("text") or ""
                if not url or not text.strip():
                    continue
                key = _canonical(url)
                texts.setdefault(key, r)
                gold_of.setdefault(row["question_id"], [])
                if key not in gold_of[row["question_id"]]:
                    gold_of[row["question_id"]].append(key)
    for f in gcs_files:
        for row in _read_jsonl(f):
            for r in row.get("search_result") or []:
                url = r.get("url")
                if not url:
                    continue
                key = _canonical(url)
                if r.get("title") and key not in titles:
                    titles[key] = str(r["title"]).strip()
                if (r.get("text") or "").strip():
                    texts.setdefault(key, r)
    documents = []
    for key, r in texts.items():
        text = _clean_text(r["text"])
        if not text:
            continue
        authors = r.get("authors") or []
        doc = Document(
            text=text,
            title=titles.get(key) or _title_from_url(key),
            source=key,
            url=key,
            outlet=urlsplit(key).hostname,
            byline=", ".join(a for a in authors if isinstance(a, str)) or None,
            published=_date(r.get("publish_date")),
        )
        documents.append((key, doc))
    kept = {key for key, _ in documents}
    gold_of = {q: [k for k in keys if k in kept] for q, keys in gold_of.items()}
    questions = []
    dev_weeks = (len(qa_files) + 1) // 2
    for w, f in enumerate(qa_files):
        if split != "all" and (split == "dev") != (w < dev_weeks):
            continue
        for row in _read_jsonl(f):
            gold = gold_of.get(row["question_id"])
            if not gold:
                continue
            choices: Sequence[str] = row["choices"]
            answers = tuple(choices[int(i)] for i in row["answer"])
            questions.append(
                Question(
                    id=row["question_id"],
                    text=row["question_sentence"],
                    answers=answers,
                    gold=tuple(gold),
                    asked=iso_day(_date(row.get("question_date"))),
                )
            )
    return EvalSet(
        name=directory.name, format="realtimeqa", questions=tuple(questions), documents=tuple(documents), split=split
    )


def asked_on_days_of(questions: Sequence[Question], others: Sequence[Question]) -> tuple[Question, ...]:
    """`questions` asked on the days `others` were, in turn (the i-th on the day of the (i mod n)-th dated
    one); a question with its own day keeps it. The off-collection check asks a collection's wrong questions
    on the days its own questions were asked, so that both meet the articles of those days first."""
    days = [q.asked for q in others if q.asked is not None]
    if not days:
        return tuple(questions)
    return tuple(q if q.asked else replace(q, asked=days[i % len(days)]) for i, q in enumerate(questions))


def template_gold(evalset: EvalSet, min_urls: int = 3) -> set[str]:
    """Ids of the questions whose every gold article's text is a page template, not an article: the same
    text under `min_urls` or more different URLs. In RealTimeQA 2022, 12 of the 206 questions have as their
    only gold article a video player's ad-feedback form (210 characters, 23 URLs); the store keeps one copy
    of a text, so no retrieval can rank their gold article for them."""
    texts = {key: doc.text for key, doc in evalset.documents or ()}
    urls = Counter(texts.values())
    return {
        q.id
        for q in evalset.questions
        if q.gold and all(key in texts and urls[texts[key]] >= min_urls for key in q.gold)
    }
