"""Ingest a question set's articles (cached), ask every question through the Engine, and score it.

Everything goes through `engine.service.Engine`, the object behind the bot: the answer is `Engine.ask`,
and the ranking used for recall comes from the same `Retriever` with the same settings (asked for more
passages than the answer step reads, so that recall@10 of articles can be measured).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from corpus.extract import content_hash
from engine.config import ROOT, IndexSettings, Settings
from engine.errors import UserError
from engine.service import Engine, today
from evaluation import metrics
from evaluation.datasets import EvalSet, Question, asked_on_days_of

# Bump when the cached data dir layout or the loaders' documents change meaning, or the vectors do
# (2: the ONNX export v2, whose int8 vectors differ from v1's in rounding; 3: "v." no longer ends a sentence,
# which moved passage boundaries in 122 of the RealTimeQA articles).
CACHE_VERSION = 3
DEFAULT_CACHE_ROOT = ROOT / ".cache" / "eval"
MANIFEST = "eval-manifest.json"
PROGRESS = "eval-progress.json"  # an ingest under way: its key and the seconds spent so far
INGEST_BATCH = 250  # articles embedded and stored per step of a resumable ingest
RECALL_DEPTH = 10  # articles ranked for recall@1/5/10
WARMUP_QUESTIONS = 3

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ---- settings overrides ----------------------------------------------------------------------------


def override(settings: Settings, assignments: Sequence[str]) -> Settings:
    """Apply `section.key=value` overrides (YAML values), validated like the config file."""
    if not assignments:
        return settings
    raw = settings.model_dump()
    for item in assignments:
        key, sep, value = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) != 2 or path[0] not in raw or not isinstance(raw[path[0]], dict):
            raise UserError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. answer.min_confidence=0.4")
        if path[1] not in raw[path[0]]:
            raise UserError(f"--set {item!r}: {path[0]} has no key {path[1]!r}")
        raw[path[0]][path[1]] = yaml.safe_load(value)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UserError(f"--set: {msg}") from None


def with_index(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"index": settings.index.model_copy(update=changes)})


def with_answer(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"answer": settings.answer.model_copy(update=changes)})


# ---- ingest ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestInfo:
    articles: int
    passages: int
    seconds: float | None  # None: the articles were already there (the user's collection)
    cached: bool
    measured_at: str | None = None
    skipped: int = 0  # documents the engine refused (empty, duplicate text)
    load_average: tuple[float | None, float | None] | None = None  # 1-min load before and after the ingest

    @property
    def passages_per_s(self) -> float | None:
        return self.passages / self.seconds if self.seconds else None


@dataclass
class Prepared:
    """An engine over the set's articles and the map from the set's article keys to stored ids."""

    engine: Engine
    gold: dict[str, tuple[int, ...]]
    ingest: IngestInfo
    data_dir: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def gold_ids(self, q: Question) -> tuple[int, ...]:
        return tuple(dict.fromkeys(i for key in q.gold for i in self.gold.get(key, ())))

    def engine_for(self, settings: Settings) -> Engine:
        """Another engine on the same data dir with other retrieval/answer settings (shares the model)."""
        return Engine(settings.model_copy(update={"data_dir": self.data_dir}), embedder=self.engine.embedder)

    def close(self) -> None:
        self.engine.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def cache_key(evalset: EvalSet, settings: Settings) -> str:
    """What decides the stored passages and vectors: the texts, the model, the backend, the chunking."""
    s = settings.index
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", s.model).strip("_")[-60:]
    return (
        f"{evalset.format}-{evalset.fingerprint()}-{model}-{s.backend}-w{s.chunk_words}-o{s.overlap_sentences}"
        f"{'-t' if s.embed_title else ''}{f'-p{s.passage_tokens}' if s.passage_tokens else ''}"
        f"-v{CACHE_VERSION}"
    )


def prepare(
    evalset: EvalSet,
    settings: Settings,
    *,
    cache_root: Path | None = DEFAULT_CACHE_ROOT,
    data_dir: Path | None = None,
    embedder: Any = None,
    progress: bool = False,
    log: Log = _quiet,
) -> Prepared:
    """An engine holding the set's articles: the current collection (jsonl), or a cached ingest.

    `data_dir` forces where a public set is ingested; `cache_root=None` ingests into a temporary dir.
    """
    if evalset.documents is None:
        return _current_collection(evalset, settings, embedder)
    tmp = None
    owned = data_dir is None
    if data_dir is None:
        if cache_root is None:
            tmp = tempfile.TemporaryDirectory(prefix="articlebot-eval-")
            data_dir = Path(tmp.name)
        else:
            data_dir = cache_root / cache_key(evalset, settings)
    try:
        prepared = _cached(evalset, settings, data_dir, embedder) if tmp is None else None
        if prepared is None:
            prepared = _ingest(evalset, settings, data_dir, embedder, progress, log, owned)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    prepared._tmp = tmp
    return prepared


def _current_collection(evalset: EvalSet, settings: Settings, embedder: Any) -> Prepared:
    from corpus.extract import canonical_url

    engine = Engine(settings, embedder=embedder)
    articles = engine.store.list_articles()
    if not articles:
        engine.store.close()
        raise UserError(
            f"The collection in {settings.data_dir} is empty: add the articles your questions are about "
            "first (articlebot add URL|PATH), or use --data-dir."
        )
    by_name: dict[str, list[int]] = {}
    for a in articles:
        for name in {a.title.casefold().strip(), a.source.casefold().strip(), (a.url or "").casefold()}:
            if name:
                by_name.setdefault(name, []).append(a.id)
    gold: dict[str, tuple[int, ...]] = {}
    for q in evalset.questions:
        for key in q.gold:
            if key in gold:
                continue
            ids = by_name.get(key.casefold().strip())
            if ids is None and "://" in key:
                ids = by_name.get(canonical_url(key).casefold())
            if ids is None:
                engine.store.close()
                raise UserError(
                    f"{evalset.name}: question {q.id} names the article {key!r}, but no article in "
                    f"{settings.data_dir} has that title or URL (see articlebot list)"
                )
            gold[key] = tuple(ids)
    info = IngestInfo(articles=len(articles), passages=engine.store.chunk_count(), seconds=None, cached=True)
    return Prepared(engine, gold, info, settings.data_dir)


def _cached(evalset: EvalSet, settings: Settings, data_dir: Path, embedder: Any) -> Prepared | None:
    manifest_path = data_dir / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        gold = {k: tuple(v) for k, v in manifest["keys"].items()}
        info = IngestInfo(
            articles=int(manifest["articles"]),
            passages=int(manifest["passages"]),
            seconds=float(manifest["ingest_seconds"]),
            cached=True,
            measured_at=manifest.get("measured_at"),
            skipped=int(manifest.get("skipped", 0)),
            load_average=tuple(manifest["load_average"]) if manifest.get("load_average") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    engine = Engine(settings.model_copy(update={"data_dir": data_dir}), embedder=embedder)
    if engine.mismatch or engine.check() or engine.store.count() != info.articles:
        engine.store.close()
        return None
    return Prepared(engine, gold, info, data_dir)


def _ingest(
    evalset: EvalSet, settings: Settings, data_dir: Path, embedder: Any, progress: bool, log: Log, owned: bool
) -> Prepared:
    """Ingest in batches, noting the time spent after each, so that an interrupted ingest of a large
    collection resumes where it stopped (stored articles are recognised as duplicates, not re-embedded)."""
    assert evalset.documents is not None
    state_path = data_dir / PROGRESS
    state: dict[str, Any] = {}
    if data_dir.exists() and any(data_dir.iterdir()):
        if state_path.exists() and not (data_dir / MANIFEST).exists():
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("key") != cache_key(evalset, settings):
            # A stale ingest is redone; a directory this code did not make is not touched.
            if not (owned or (data_dir / MANIFEST).exists() or state_path.exists()):
                raise UserError(
                    f"{data_dir} already holds data that is not an evaluation ingest; give an empty directory"
                )
            shutil.rmtree(data_dir)
            state = {}
    data_dir.mkdir(parents=True, exist_ok=True)
    state = state or {"key": cache_key(evalset, settings), "seconds": 0.0, "load_average": [_loadavg(), None]}
    engine = Engine(settings.model_copy(update={"data_dir": data_dir}), progress=progress, embedder=embedder)
    docs = [doc for _, doc in evalset.documents]
    resumed = engine.store.count()
    log(f"ingesting {len(docs)} articles into {data_dir}" + (f" (resuming: {resumed} stored)" if resumed else ""))
    results = []
    for start in range(0, len(docs), INGEST_BATCH):
        t0 = time.perf_counter()
        results += engine.add_documents(docs[start : start + INGEST_BATCH], added_by="eval")
        state["seconds"] += time.perf_counter() - t0
        tmp = data_dir / (PROGRESS + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(state_path)
        if len(docs) > INGEST_BATCH:
            log(f"  {min(start + INGEST_BATCH, len(docs))}/{len(docs)} articles, {state['seconds']:.0f} s")
    seconds = round(float(state["seconds"]), 2)  # as the manifest keeps it: a rerun reports the same figure
    gold: dict[str, tuple[int, ...]] = {}
    skipped = 0
    for (key, doc), r in zip(evalset.documents, results, strict=True):
        # The same text twice in one batch is refused rather than reported as a duplicate: look it up.
        stored = r.article or r.duplicate or engine.store.find_duplicate(doc.url, content_hash(doc.text))
        if stored is None:
            skipped += 1
            continue
        gold[key] = (stored.id,)
    info = IngestInfo(
        articles=engine.store.count(),
        passages=engine.store.chunk_count(),
        seconds=seconds,
        cached=False,
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        skipped=skipped,
        load_average=(state["load_average"][0], _loadavg()),
    )
    manifest = {
        "version": CACHE_VERSION,
        "dataset": evalset.name,
        "format": evalset.format,
        "fingerprint": evalset.fingerprint(),
        "model": settings.index.model,
        "backend": settings.index.backend,
        "chunk_words": settings.index.chunk_words,
        "overlap_sentences": settings.index.overlap_sentences,
        "articles": info.articles,
        "passages": info.passages,
        "skipped": skipped,
        "ingest_seconds": seconds,
        "resumed": bool(resumed),
        "measured_at": info.measured_at,
        "machine": machine(),
        # Other work on the machine slows the embedding: the load average before and after, for the record.
        "load_average": list(info.load_average or ()),
        "keys": {k: list(v) for k, v in gold.items()},
    }
    tmp = data_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    tmp.replace(data_dir / MANIFEST)
    state_path.unlink(missing_ok=True)
    log(f"ingested {info.articles} articles, {info.passages} passages in {seconds:.1f} s")
    return Prepared(engine, gold, info, data_dir)


# ---- asking ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the bot did with one question, and where the gold article ranked."""

    question: Question
    gold_ids: tuple[int, ...]
    ranked: tuple[int, ...]  # article ids, best first (up to RECALL_DEPTH); empty when not measured
    abstained: bool
    confidence: float
    text: str
    quote: str | None  # the first citation's quote (None under a refusal)
    candidate: str | None  # what it would have cited: first citation, else first closest passage
    latency_ms: float
    error: str | None = None

    @property
    def supported(self) -> bool:
        return self.quote is not None and metrics.contains_answer(self.quote, self.question.answers)

    @property
    def candidate_supported(self) -> bool:
        return self.candidate is not None and metrics.contains_answer(self.candidate, self.question.answers)


def ranked_with_vector(
    engine: Engine, question: str, qvec: Any, mode: str | None, depth: int, asked_on: date | None = None
) -> list[int]:
    """The articles the bot's retriever ranks for a question asked on `asked_on` (default today, as
    `Engine.ask`), best passage first, `depth` of them."""
    # More passages than articles wanted: several passages of one article collapse into one rank. With
    # k <= index.candidates the first top_k passages are exactly the ones `Engine.ask` answers from.
    k = max(depth * 3, engine.settings.answer.top_k)
    hits = engine.retriever.search_with_vector(question, qvec, k, mode=mode, asked_on=asked_on or today())
    return metrics.collapse(h.chunk.article_id for h in hits)[:depth]


def query_vectors(engine: Engine, texts: Sequence[str]) -> Any:
    """Question vectors in one batch: the model and normalisation `encode_query` uses, computed once per
    run instead of once per question. Equal up to float rounding with a float backend; with onnx-int8 the
    activations are quantised per batch, so a vector can differ a little from the question embedded alone
    (RealTimeQA R@5 69.4 this way vs 69.9 in `rank_all` on an AMD EPYC, before the recency boost)."""
    return engine.embedder.encode(list(texts))


def ask_all(
    prep: Prepared,
    questions: Sequence[Question],
    *,
    engine: Engine | None = None,
    mode: str | None = None,
    recall: bool = True,
    log: Log = _quiet,
) -> list[Outcome]:
    """Ask every question (after a few warm-up asks, not timed) and rank articles for recall."""
    engine = engine or prep.engine
    for q in questions[:WARMUP_QUESTIONS]:
        with contextlib.suppress(UserError):
            engine.ask(q.text, mode=mode, asked_on=q.asked)
    texts = [" ".join(q.text.split()) for q in questions]
    ranked_for = [i for i, q in enumerate(questions) if recall and prep.gold_ids(q)]
    vectors = dict(zip(ranked_for, query_vectors(engine, [texts[i] for i in ranked_for]), strict=True))
    out: list[Outcome] = []
    step = max(len(questions) // 10, 200)
    for i, q in enumerate(questions):
        gold = prep.gold_ids(q)
        t0 = time.perf_counter()
        try:
            ans = engine.ask(q.text, mode=mode, asked_on=q.asked)
        except UserError as exc:
            out.append(Outcome(q, gold, (), True, 0.0, "", None, None, 0.0, error=str(exc)))
            continue
        latency = (time.perf_counter() - t0) * 1000
        ranked: tuple[int, ...] = ()
        if i in vectors:
            ranked = tuple(ranked_with_vector(engine, texts[i], vectors[i], mode, RECALL_DEPTH, q.asked))
        quote = ans.citations[0].quote if ans.citations and not ans.abstained else None
        shown = ans.citations or ans.closest
        out.append(
            Outcome(
                question=q,
                gold_ids=gold,
                ranked=ranked,
                abstained=ans.abstained,
                confidence=float(ans.confidence),
                text=ans.text,
                quote=quote,
                candidate=shown[0].quote if shown else None,
                latency_ms=latency,
            )
        )
        if (i + 1) % step == 0:
            log(f"  {i + 1}/{len(questions)} questions")
    return out


@dataclass(frozen=True)
class Ranking:
    """Where the gold article ranked for one question, and how long the retrieval took."""

    question: Question
    gold_ids: tuple[int, ...]
    ranked: tuple[int, ...]
    ms: float


def rank_all(
    prep: Prepared, questions: Sequence[Question], *, engine: Engine | None = None, mode: str | None = None
) -> list[Ranking]:
    """Retrieval alone for the answerable questions with a gold article: cheap, so every mode can be
    measured on every question. The time is the bot's retrieval: the query embedding (unless bm25) and
    the search."""
    engine = engine or prep.engine
    mode = mode or engine.settings.index.mode
    out = []
    for q in questions:
        gold = prep.gold_ids(q)
        if not (q.answerable and gold):
            continue
        text = " ".join(q.text.split())
        t0 = time.perf_counter()
        qvec = engine.embedder.encode_query(text) if mode != "bm25" else None
        ranked = ranked_with_vector(engine, text, qvec, mode, RECALL_DEPTH, q.asked)
        out.append(Ranking(q, gold, tuple(ranked), (time.perf_counter() - t0) * 1000))
    return out


def recall_figures(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict[str, Any]:
    """recall@1/5/10 over (ranked article ids, gold ids) pairs, and how many there were."""
    figures: dict[str, Any] = {
        f"recall@{k}": _pct(metrics.mean([metrics.recall_at(r, g, k) for r, g in pairs])) for k in (1, 5, 10)
    }
    figures["n"] = len(pairs)
    return figures


def ranking_report(rankings: Sequence[Ranking]) -> dict[str, Any]:
    rep = recall_figures([(r.ranked, r.gold_ids) for r in rankings])
    ms = [r.ms for r in rankings]
    rep.update(
        retrieve_ms_median=_round(metrics.percentile(ms, 50)), retrieve_ms_p95=_round(metrics.percentile(ms, 95))
    )
    return rep


def apply_threshold(outcomes: Sequence[Outcome], threshold: float) -> list[Outcome]:
    """The outcomes had the bot run with `answer.min_confidence = threshold`, from a run at 0: the answer
    step refuses exactly when the confidence is below it or the question is off-topic, which no threshold
    changes (tests/test_eval.py checks this equivalence)."""
    out = []
    for o in outcomes:
        if o.abstained or o.confidence >= threshold:
            out.append(o)
        else:
            out.append(dataclasses.replace(o, abstained=True, text="", quote=None))
    return out


# ---- scoring ---------------------------------------------------------------------------------------


def _pct(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Retrieval, answer and abstention figures (fractions 0-1) and ask latency of a run."""
    answerable = [o for o in outcomes if o.question.answerable]
    with_gold = [o for o in answerable if o.gold_ids and o.ranked]
    with_answers = [o for o in answerable if o.question.answers]
    answered = [o for o in with_answers if not o.abstained]
    retrieval = recall_figures([(o.ranked, o.gold_ids) for o in with_gold])
    answer = {
        "support": _pct(metrics.mean([float(o.supported) for o in with_answers])),
        "support_if_answered": _pct(metrics.mean([float(o.supported) for o in answered])),
        # The sentence it would cite were there no threshold (comparable to a no-abstention baseline).
        "support_before_abstention": _pct(metrics.mean([float(o.candidate_supported) for o in with_answers])),
        "answered": _pct(len(answered) / len(with_answers)) if with_answers else None,
        "exact_match": _pct(metrics.mean([_answer_score(o, metrics.exact_match) for o in with_answers])),
        "f1": _pct(metrics.mean([_answer_score(o, metrics.f1_score) for o in with_answers])),
        "n": len(with_answers),
    }
    judged = [o for o in outcomes if not o.question.answerable or o.question.answers]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    abstention: dict[str, Any] = {
        "refused": _pct(metrics.mean([float(o.abstained) for o in outcomes])),
        "refused_answerable": _pct(metrics.mean([float(o.abstained) for o in answerable])),
        "n": len(judged),
    }
    if unanswerable:
        correct = [(o.abstained if not o.question.answerable else (not o.abstained and o.supported)) for o in judged]
        labels = [o.question.answerable and o.candidate_supported for o in judged]
        abstention.update(
            end_to_end=_pct(metrics.mean([float(c) for c in correct])),
            always_abstain=_pct(len(unanswerable) / len(judged)) if judged else None,
            auroc=_pct(metrics.auroc([o.confidence for o in judged], labels)),
        )
    latencies = [o.latency_ms for o in outcomes if o.error is None]
    cost = {
        "ask_ms_median": _round(metrics.percentile(latencies, 50)),
        "ask_ms_p95": _round(metrics.percentile(latencies, 95)),
        "ask_ms_p99": _round(metrics.percentile(latencies, 99)),
    }
    days = sorted(o.question.asked for o in outcomes if o.question.asked is not None)
    undated = len(outcomes) - len(days)
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "errors": sum(o.error is not None for o in outcomes),
        # the days asked on (recent articles rank higher): a question without one was asked today
        "asked": {
            "first": days[0].isoformat() if days else None,
            "last": days[-1].isoformat() if days else None,
            "dated": len(days),
            "today": today().isoformat() if undated else None,
            "undated": undated,
        },
        "retrieval": retrieval,
        "answer": answer,
        "abstention": abstention,
        "cost": cost,
    }


def _answer_score(o: Outcome, fn: Callable[[str, Sequence[str]], float]) -> float:
    return 0.0 if o.abstained else fn(o.text, o.question.answers)


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def fusion_label(s: IndexSettings) -> str:
    """The hybrid fusion in a few words, e.g. "convex bm25_share=0.3" or "rrf k=60 weights 1.0/1.0"."""
    if s.fusion == "convex":
        return (
            f"convex bm25_share={s.bm25_share}"
            + (f" title_share={s.title_share}" if s.title_share else "")
            + (f" recency_boost={s.recency_boost}/{s.recency_days}d" if s.recency_boost else "")
        )
    return f"rrf k={s.rrf_k} weights {s.bm25_weight}/{s.dense_weight}"


def settings_summary(settings: Settings, mode: str | None) -> dict[str, Any]:
    s, a = settings.index, settings.answer
    return {
        "mode": mode or s.mode,
        "model": s.model,
        "backend": s.backend,
        "chunk_words": s.chunk_words,
        "overlap_sentences": s.overlap_sentences,
        "embed_title": s.embed_title,
        "passage_tokens": s.passage_tokens,
        "bm25_max_terms": s.bm25_max_terms,
        "fusion": fusion_label(s),
        "candidates": s.candidates,
        "top_k": a.top_k,
        "min_confidence": a.min_confidence,
        "off_topic": f"cosine<{a.off_topic_cosine} words<{a.off_topic_words}" if a.off_topic_cosine else "off",
    }


def report(
    evalset: EvalSet, prep: Prepared, outcomes: Sequence[Outcome], settings: Settings, mode: str | None
) -> dict[str, Any]:
    """The whole evaluation as one JSON-ready object."""
    result = score(outcomes)
    ing = prep.ingest
    result["cost"].update(
        ingest_s=_round(ing.seconds, 1),
        passages_per_s=_round(ing.passages_per_s, 1),
        ingest_cached=ing.cached,
        ingest_measured_at=ing.measured_at,
        ingest_load_average=list(ing.load_average) if ing.load_average else None,
        peak_rss_mb=peak_rss_mb(),
    )
    return {
        "dataset": evalset.name,
        "format": evalset.format,
        "split": evalset.split,
        "articles": ing.articles,
        "passages": ing.passages,
        "skipped_articles": ing.skipped,
        "settings": settings_summary(settings, mode),
        **result,
    }


def evaluate(
    evalset: EvalSet,
    settings: Settings,
    *,
    mode: str | None = None,
    cache_root: Path | None = DEFAULT_CACHE_ROOT,
    data_dir: Path | None = None,
    progress: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Prepare, ask, score: the whole of `articlebot eval` for one set and one mode."""
    prep = prepare(evalset, settings, cache_root=cache_root, data_dir=data_dir, progress=progress, log=log)
    try:
        outcomes = ask_all(prep, evalset.questions, mode=mode, log=log)
        return report(evalset, prep, outcomes, prep.engine.settings, mode)
    finally:
        prep.close()


def off_collection(
    evalset: EvalSet,
    collection: EvalSet,
    settings: Settings,
    *,
    mode: str | None = None,
    cache_root: Path | None = DEFAULT_CACHE_ROOT,
    progress: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Ask a set's answerable questions against another set's articles: every answer there is wrong,
    so the share refused is the honesty of the refusals."""
    prep = prepare(collection, settings, cache_root=cache_root, progress=progress, log=log)
    try:
        questions = asked_on_days_of([q for q in evalset.questions if q.answerable], collection.questions)
        outcomes = ask_all(prep, questions, mode=mode, recall=False, log=log)
        return off_collection_report(evalset, collection, prep, outcomes, mode)
    finally:
        prep.close()


def off_collection_report(
    evalset: EvalSet,
    collection: EvalSet,
    prep: Prepared,
    outcomes: Sequence[Outcome],
    mode: str | None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The share refused, with the settings the questions were asked with (default: the prepared engine's)."""
    latencies = [o.latency_ms for o in outcomes if o.error is None]
    return {
        "questions_from": evalset.name,
        "collection": collection.name,
        "articles": prep.ingest.articles,
        "passages": prep.ingest.passages,
        "questions": len(outcomes),
        "refused": _pct(metrics.mean([float(o.abstained) for o in outcomes])),
        "settings": settings_summary(settings or prep.engine.settings, mode),
        "cost": {
            "ask_ms_median": _round(metrics.percentile(latencies, 50)),
            "ask_ms_p95": _round(metrics.percentile(latencies, 95)),
            "ask_ms_p99": _round(metrics.percentile(latencies, 99)),
            "peak_rss_mb": peak_rss_mb(),
        },
    }


def format_off_collection(rep: dict[str, Any]) -> str:
    c, s = rep["cost"], rep["settings"]
    lat = " / ".join(fmt_num(c[k]) for k in ("ask_ms_median", "ask_ms_p95", "ask_ms_p99"))
    return "\n".join(
        [
            f"off-collection: {rep['questions']} answerable questions of {rep['questions_from']} asked "
            f"against {rep['collection']} ({rep['articles']} articles, {rep['passages']} passages), "
            f"mode {s['mode']}",
            f"refused (higher is better): {fmt_pct(rep['refused'])}",
            f"ask latency median / p95 / p99 (warm): {lat} ms",
            f"settings: min_confidence={s['min_confidence']} off-topic: {s['off_topic']} "
            f"fusion: {s['fusion']}",
        ]
    )


# ---- presentation ----------------------------------------------------------------------------------


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def fmt_num(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:g}{unit}"


def format_table(rep: dict[str, Any]) -> str:
    """A plain-text table of one report, figures in percent."""
    r, a, ab, c, s = rep["retrieval"], rep["answer"], rep["abstention"], rep["cost"], rep["settings"]
    rows: list[tuple[str, str]] = [
        (
            "retrieval: gold article recall@1 / @5 / @10",
            f"{fmt_pct(r['recall@1'])} / {fmt_pct(r['recall@5'])} / {fmt_pct(r['recall@10'])}  (n={r['n']})",
        ),
        ("answer: support (first quote holds a gold answer)", f"{fmt_pct(a['support'])}  (n={a['n']})"),
        ("answer: support before abstention (best sentence)", fmt_pct(a["support_before_abstention"])),
        (
            "answer: support when it answered / answered",
            f"{fmt_pct(a['support_if_answered'])} / {fmt_pct(a['answered'])}",
        ),
        ("answer: exact match / F1 of the short answer", f"{fmt_pct(a['exact_match'])} / {fmt_pct(a['f1'])}"),
        (
            "abstention: refused (all / answerable)",
            f"{fmt_pct(ab['refused'])} / {fmt_pct(ab['refused_answerable'])}",
        ),
    ]
    if "end_to_end" in ab:
        e2e = f"{fmt_pct(ab['end_to_end'])}  ({fmt_pct(ab['always_abstain'])})"
        rows.append(("abstention: end-to-end accuracy (always abstain)", e2e))
        rows.append(("abstention: AUROC of the confidence", fmt_auroc(ab["auroc"])))
    if c.get("ingest_s") is not None:
        cached = f" (cached; measured {c.get('ingest_measured_at') or 'earlier'})" if c.get("ingest_cached") else ""
        rows.append(("cost: ingest", f"{c['ingest_s']} s, {fmt_num(c['passages_per_s'])} passages/s{cached}"))
    lat = " / ".join(fmt_num(c[k]) for k in ("ask_ms_median", "ask_ms_p95", "ask_ms_p99"))
    rows.append(("cost: ask latency median / p95 / p99 (warm)", f"{lat} ms"))
    rows.append(("cost: peak RSS", f"{fmt_num(c.get('peak_rss_mb'))} MB"))
    asked = rep.get("asked") or {}
    days = [f"{asked['first']} to {asked['last']} ({asked['dated']} questions)"] if asked.get("dated") else []
    days += [f"today, {asked['today']} ({asked['undated']} questions)"] if asked.get("undated") else []
    if days:
        rows.append(("asked on (recent articles rank higher)", "; ".join(days)))
    split = f", split {rep['split']}" if rep["format"] == "squad2" else ""
    head = (
        f"{rep['dataset']} ({rep['format']}{split}), mode {s['mode']}: {rep['questions']} questions "
        f"({rep['answerable']} answerable), {rep['articles']} articles, {rep['passages']} passages"
    )
    if rep.get("errors"):
        head += f"; {rep['errors']} questions refused as input"
    width = max(len(k) for k, _ in rows)
    lines = [head, "-" * len(head)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append(
        f"settings: fusion {s['fusion']} "
        f"top_k={s['top_k']} min_confidence={s['min_confidence']} off-topic: {s['off_topic']} "
        f"model={s['model']} backend={s['backend']}"
    )
    return "\n".join(lines)


def fmt_auroc(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """nproc, RAM and CPU model, for the record beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        ram_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    return {"nproc": os.cpu_count(), "ram_gb": ram_gb, "cpu": cpu, "python": platform.python_version()}
