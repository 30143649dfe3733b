"""`make bench`: the public benchmarks of issue 4 in one run, written to docs/benchmarks.md.

SQuAD 2.0 (dev half) and RealTimeQA 2022 news, all three retrieval modes side by side with the shipped
config; then the fusion weights and the confidence threshold tuned on the SQuAD dev split only and
reported on the test split; the off-collection refusal check; the bot load test when it exists. The
ingested collections are cached (.cache/eval), so a rerun skips the embedding.

    python -m scripts.bench --data ../shared/data [--limit N] [--skip-news]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from engine.config import ROOT, Settings, load_settings
from engine.service import Engine
from evaluation import datasets, metrics, runner, tune

MODES = ("bm25", "dense", "hybrid")
LOADTEST = ROOT / "scripts" / "loadtest_bot.py"
LOADTEST_ARGS = ("--users", "100", "--questions", "5")

# Issue 4, measured before this project on the same machine kind (kept verbatim for reference).
BASELINES_MD = """\
| figure | BM25 | dense | hybrid (RRF) |
|---|---|---|---|
| SQuAD2-half paragraph R@1 / R@5 (2,910 answerable) | 80.8 / 94.3 | 66.6 / 89.5 | 77.7 / 95.6 |
| RealTimeQA article R@1 / R@5 / R@10 (206) | 39.3 / 68.0 / 79.1 | 31.1 / 66.5 / 78.2 | 40.3 / 72.8 / 82.0 |
| best-sentence support accuracy, SQuAD2 answerable, top-3 passages | | | 76.5 (cosine+IDF overlap) |
| end-to-end with abstention, SQuAD2 all 6,078 (always abstain = 52.1) | | | 58.8; AUROC 0.645 |
| news ingest, 29,414 chunks of 200 words (half truncated at 256 word pieces) | | | 1,246 s (23.6 chunks/s) |
| retrieval latency per question, news corpus | 0.9 ms | 16.5 ms | 17.6 ms |
"""


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _passages(st: dict[str, Any]) -> str:
    """How passages are cut and embedded, in words (older result files lack the newer keys)."""
    text = f"{st['chunk_words']}-word passages"
    if st.get("overlap_sentences"):
        text += f" overlapping by {st['overlap_sentences']} sentence(s)"
    if st.get("embed_title"):
        text += ", embedded with their article title"
    if st.get("passage_tokens"):
        text += f" (first {st['passage_tokens']} word pieces)"
    if st.get("bm25_max_terms"):
        text += f"; BM25 on the question's {st['bm25_max_terms']} rarest words"
    elif "bm25_max_terms" in st:
        text += "; BM25 on every word of the question"
    return text


def _splits(items: Sequence[Any], dev_titles: set[str]) -> dict[str, list[Any]]:
    """all / dev / test parts of SQuAD outcomes or rankings (dev: the first 8 titles)."""
    return {
        "all": list(items),
        "dev": [x for x in items if x.question.group in dev_titles],
        "test": [x for x in items if x.question.group not in dev_titles],
    }


def run_squad(path: Path, settings: Settings, cache: Path, limit: int | None) -> dict[str, Any]:
    """Retrieval of every mode on every answerable question; full answers with the shipped settings."""
    full = datasets.load_squad2(path, "all")
    dev_titles = {q.group for q in datasets.load_squad2(path, "dev").questions}
    questions = full.limited(limit).questions
    prep = runner.prepare(full, settings, cache_root=cache, progress=sys.stderr.isatty(), log=_log)
    out: dict[str, Any] = {"ingest": dataclasses.asdict(prep.ingest), "retrieval": {}, "shipped": {}}
    try:
        for mode in MODES:
            _log(f"SQuAD retrieval: {len(questions)} questions, mode {mode}")
            rankings = runner.rank_all(prep, questions, mode=mode)
            out["retrieval"][mode] = {k: runner.ranking_report(v) for k, v in _splits(rankings, dev_titles).items()}
        engine = prep.engine_for(runner.with_index(settings, **TITLES))
        try:
            _log(f"SQuAD retrieval: {len(questions)} questions, hybrid with article titles")
            rankings = runner.rank_all(prep, questions, engine=engine, mode="hybrid")
        finally:
            engine.store.close()
        out["titles"] = {k: runner.ranking_report(v) for k, v in _splits(rankings, dev_titles).items()}
        _log(f"SQuAD answers: {len(questions)} questions, shipped settings")
        outs = runner.ask_all(prep, questions, log=_log)
        for split, subset in _splits(outs, dev_titles).items():
            rep = runner.report(full, prep, subset, settings, None)
            rep["split"] = split
            out["shipped"][split] = rep
        out["sentences"] = {}
        for label, changes in SENTENCE_VARIANTS:
            other = runner.with_answer(settings, **changes)
            if other.answer == settings.answer:  # the shipped answer step: its run above
                out["sentences"][label] = out["shipped"]
                continue
            _log(f"SQuAD answers: {len(questions)} questions, answer step {label}")
            engine = prep.engine_for(other)
            try:
                outs = runner.ask_all(prep, questions, engine=engine, recall=False, log=_log)
            finally:
                engine.store.close()
            out["sentences"][label] = {
                split: runner.report(full, prep, subset, other, None)
                for split, subset in _splits(outs, dev_titles).items()
            }
    finally:
        prep.close()
    return out


def run_news(
    rtqa_dir: Path,
    squad_path: Path,
    settings: Settings,
    tuned: Settings | None,
    cache: Path,
    limit: int | None,
    sample_articles: int = 300,
) -> dict[str, Any]:
    """Every mode on the RealTimeQA questions; the off-collection check with shipped and tuned settings."""
    news = datasets.load_realtimeqa(rtqa_dir)
    questions = news.limited(limit).questions
    squad = datasets.load_squad2(squad_path, "all").limited(limit)
    # asked on the days the news questions were (in turn), as they are: the articles of those days come first
    off_questions = datasets.asked_on_days_of([q for q in squad.questions if q.answerable], news.questions)
    off_set = datasets.EvalSet("squad2 answerable", "squad2", off_questions)
    prep = runner.prepare(news, settings, cache_root=cache, progress=sys.stderr.isatty(), log=_log)
    out: dict[str, Any] = {"ingest": dataclasses.asdict(prep.ingest), "retrieval": {}, "modes": {}}
    out["off_collection"], out["retrieval_split"] = {}, {}
    dev_ids = {q.id for q in datasets.load_realtimeqa(rtqa_dir, "dev").questions}
    template = datasets.template_gold(news)  # gold "article" is a page template: no retrieval can find it
    latencies: list[float] = []
    try:
        sample = ingest_sample(news, settings, prep.engine.embedder, sample_articles)
        if sample and sample["passages_per_s"]:
            sample["projected_whole_s"] = _r(prep.ingest.passages / sample["passages_per_s"])
        out["ingest_sample"] = sample
        for mode in MODES:
            _log(f"RealTimeQA: {len(questions)} questions, mode {mode}")
            rankings = runner.rank_all(prep, questions, mode=mode)
            out["retrieval"][mode] = runner.ranking_report(rankings)
            out["retrieval_split"][mode] = _news_splits(rankings, dev_ids, template)
            outs = runner.ask_all(prep, questions, mode=mode, log=_log)
            out["modes"][mode] = runner.report(news, prep, outs, settings, mode)
            if mode == settings.index.mode:
                latencies += [o.latency_ms for o in outs]
        for key, overrides, label in (
            ("titles", TITLES, "hybrid with article titles"),
            ("recency_off", NO_RECENCY, "hybrid without the recency boost"),
        ):
            variant = runner.with_index(settings, **overrides)
            out[key] = _news_variant(prep, news, questions, off_set, variant, dev_ids, template, label)
        out["sentence_latency"] = {}
        for label, changes in SENTENCE_VARIANTS:  # the same questions, one way after the other
            engine = prep.engine_for(runner.with_answer(settings, **changes))
            try:
                _log(f"RealTimeQA: {len(questions)} questions, answer step {label}")
                outs = runner.ask_all(prep, questions, engine=engine, recall=False, log=_log)
            finally:
                engine.store.close()
            lat = [o.latency_ms for o in outs if o.error is None]
            out["sentence_latency"][label] = {
                "n": len(lat),
                "median": _r(metrics.percentile(lat, 50)),
                "p95": _r(metrics.percentile(lat, 95)),
            }
        variants = [("shipped", settings)] + ([("tuned", tuned)] if tuned is not None else [])
        for label, s in variants:
            engine = prep.engine_for(s)
            try:
                if label == "tuned":
                    _log("RealTimeQA with the tuned settings")
                    outs = runner.ask_all(prep, questions, engine=engine, log=_log)
                    out["tuned"] = runner.report(news, prep, outs, s, None)
                outs, out["off_collection"][label] = _ask_off_collection(prep, news, off_set, engine, s, label)
                if label == "shipped":
                    latencies += [o.latency_ms for o in outs]
            finally:
                engine.store.close()
    finally:
        prep.close()
    out["latency_news"] = {
        "n": len(latencies),
        "median": _r(metrics.percentile(latencies, 50)),
        "p95": _r(metrics.percentile(latencies, 95)),
        "p99": _r(metrics.percentile(latencies, 99)),
    }
    return out


def _news_splits(rankings: Sequence[runner.Ranking], dev_ids: set[str], template: set[str]) -> dict[str, Any]:
    """RealTimeQA recall on the dev weeks (the first half), the test weeks, and the questions whose gold is
    an article rather than a page template."""
    return {
        "dev": runner.ranking_report([r for r in rankings if r.question.id in dev_ids]),
        "test": runner.ranking_report([r for r in rankings if r.question.id not in dev_ids]),
        "own_text": runner.ranking_report([r for r in rankings if r.question.id not in template]),
    }


def _news_variant(
    prep: runner.Prepared,
    news: datasets.EvalSet,
    questions: Sequence[datasets.Question],
    off_set: datasets.EvalSet,
    variant: Settings,
    dev_ids: set[str],
    template: set[str],
    label: str,
) -> dict[str, Any]:
    """Hybrid retrieval with other index settings (TITLES, NO_RECENCY) on the RealTimeQA questions, and what
    it does to the answers: support, refusals, and the off-collection refusals."""
    engine = prep.engine_for(variant)
    try:
        _log(f"RealTimeQA: {len(questions)} questions, {label}")
        rankings = runner.rank_all(prep, questions, engine=engine, mode="hybrid")
        out: dict[str, Any] = {"retrieval": runner.ranking_report(rankings)}
        out.update(_news_splits(rankings, dev_ids, template))
        outs = runner.ask_all(prep, questions, engine=engine, log=_log)
        out["answers"] = runner.report(news, prep, outs, variant, None)
        _, out["off_collection"] = _ask_off_collection(prep, news, off_set, engine, variant, label)
    finally:
        engine.store.close()
    return out


def _ask_off_collection(
    prep: runner.Prepared,
    news: datasets.EvalSet,
    off_set: datasets.EvalSet,
    engine: Engine,
    settings: Settings,
    label: str,
) -> tuple[list[runner.Outcome], dict[str, Any]]:
    """The SQuAD answerable questions asked of the news with `engine` (built from `settings`): each outcome,
    and the share refused."""
    _log(f"off-collection: {len(off_set.questions)} SQuAD questions against the news ({label})")
    outs = runner.ask_all(prep, off_set.questions, engine=engine, recall=False, log=_log)
    return outs, runner.off_collection_report(off_set, news, prep, outs, None, settings)


def ingest_sample(news: datasets.EvalSet, settings: Settings, embedder: Any, n: int) -> dict[str, Any] | None:
    """Embed n news articles afresh (spread over the set) so every run measures the ingest rate now,
    whatever the cached whole-collection ingest measured when it was built."""
    docs = news.documents or ()
    if n <= 0 or not docs:
        return None
    picked = tuple(docs[i * len(docs) // n] for i in range(min(n, len(docs))))
    sample = datasets.EvalSet(f"{news.name} sample", news.format, (), picked)
    _log(f"ingest rate: embedding {len(picked)} news articles afresh")
    prep = runner.prepare(sample, settings, cache_root=None, embedder=embedder, log=_log)
    try:
        ing = prep.ingest
        return {
            "articles": ing.articles,
            "passages": ing.passages,
            "seconds": _r(ing.seconds),
            "passages_per_s": _r(ing.passages_per_s),
            "load_average": ing.load_average,
        }
    finally:
        prep.close()


BACKENDS = ("onnx-int8", "torch")
# Article titles in the convex fusion, as chosen on RealTimeQA's dev weeks (docs/benchmarks.md: Targets);
# measured beside the shipped setting, which leaves them out.
TITLES = {"title_share": 0.15, "candidates": 200}
NO_RECENCY = {"recency_boost": 0.0}  # the shipped fusion without dates, measured beside it
SENTENCE_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (  # answer.sentence_vectors, answer.rerank_sentences
    ("static, rerank 1", {"sentence_vectors": "static", "rerank_sentences": 1}),
    ("static, rerank 2", {"sentence_vectors": "static", "rerank_sentences": 2}),
    ("model", {"sentence_vectors": "model"}),
)


def run_backends(
    squad_path: Path, rtqa_dir: Path | None, settings: Settings, cache: Path, limit: int | None, sample: int
) -> dict[str, Any]:
    """The speed-up's price, side by side in this run: SQuAD retrieval and the news ingest rate with each
    embedding backend other than the shipped one (everything else as shipped). The shipped backend's row is
    the run's own SQuAD retrieval and news ingest sample (see `_backends`), not measured twice."""
    from index.embedder import Embedder

    full = datasets.load_squad2(squad_path, "all")
    dev_titles = {q.group for q in datasets.load_squad2(squad_path, "dev").questions}
    questions = full.limited(limit).questions
    news = datasets.load_realtimeqa(rtqa_dir) if rtqa_dir is not None else None
    out: dict[str, Any] = {}
    for backend in (b for b in BACKENDS if b != settings.index.backend):
        s = runner.with_index(settings, backend=backend)
        s_idx = s.index
        embedder = Embedder(s_idx.model, s_idx.backend, s_idx.batch_size)
        _log(f"backend {backend}: SQuAD retrieval, news ingest rate")
        prep = runner.prepare(full, s, cache_root=cache, embedder=embedder, log=_log)
        row: dict[str, Any] = {"retrieval": {}}
        try:
            for mode in ("dense", "hybrid"):
                splits = _splits(runner.rank_all(prep, questions, mode=mode), dev_titles)
                row["retrieval"][mode] = {k: runner.ranking_report(v) for k, v in splits.items()}
        finally:
            prep.close()
        if news is not None:
            row["ingest_sample"] = ingest_sample(news, s, embedder, sample)
        out[backend] = row
    return out


def run_loadtest() -> dict[str, Any] | None:
    """The bot load test (scripts/loadtest_bot.py, written separately), its output kept verbatim."""
    if not LOADTEST.exists():
        return None
    cmd = [sys.executable, "scripts/loadtest_bot.py", *LOADTEST_ARGS]
    _log("bot load test: " + " ".join(cmd))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    except subprocess.TimeoutExpired:
        return {
            "command": " ".join(["python scripts/loadtest_bot.py", *LOADTEST_ARGS]),
            "returncode": None,
            "output": "timed out after 1 h",
        }
    return {
        "command": " ".join(["python scripts/loadtest_bot.py", *LOADTEST_ARGS]),
        "returncode": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "output": (proc.stdout.strip() or proc.stderr.strip())[-6000:],
    }


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# ---- the document ----------------------------------------------------------------------------------


def p(x: float | None) -> str:
    return runner.fmt_pct(x)


def _met(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher else value <= target
    return "**met**" if ok else "**missed**"


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {res['date']}. Every figure below was measured in that one run "
        "(the embedded collections come from the cache when present; their ingest time is the one measured "
        "when they were built, with its date).",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}. "
        f"Model `{res['settings']['model']}`, backend `{res['settings']['backend']}`, "
        f"{_passages(res['settings'])}. Load average (1 min) at the start and the end of "
        f"the run: {', '.join(runner.fmt_num(x) for x in res.get('load_average') or ())} (other work on the "
        f"machine slows every timing here; the quality figures do not depend on it). The run took "
        f"{res.get('seconds')} s.",
    ]
    if res.get("limit"):
        lines += [
            "",
            f"**Partial run**: at most {res['limit']} questions per set (`--limit`); not the published figures.",
        ]
    lines += ["", "Reproduce:", "", "```", *res["commands"], "```", ""]
    lines += _targets(res)
    lines += _side_by_side(res)
    lines += _recency(res)
    lines += _titles(res)
    lines += _answers(res)
    lines += _sentence_vectors(res)
    lines += _backends(res)
    lines += _tuning(res)
    lines += _off_collection(res)
    lines += _cost(res)
    lines += _loadtest(res)
    lines += ["## Baselines (issue 4, for reference)", "", BASELINES_MD]
    return "\n".join(lines).rstrip() + "\n"


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _targets(res: dict[str, Any]) -> list[str]:
    sq, news, tu = res.get("squad"), res.get("news"), res.get("tuning")
    test = _get(tu, "reports", "test")
    shipped = _get(sq, "shipped", "test")
    # (figure, target text, baseline text, path in a report, goal, higher is better)
    specs: list[tuple[str, str, str, tuple[str, ...], float, bool]] = [
        ("SQuAD2 paragraph R@1 (test split)", "≥ 85", "77.7 (hybrid, all 16)", ("retrieval", "recall@1"), 0.85, True),
        ("SQuAD2 paragraph R@5 (test split)", "≥ 97", "95.6 (hybrid, all 16)", ("retrieval", "recall@5"), 0.97, True),
        (
            "support, SQuAD2 answerable (test): best sentence, before abstention",
            "≥ 82",
            "76.5 (all 16)",
            ("answer", "support_before_abstention"),
            0.82,
            True,
        ),
        (
            "support, SQuAD2 answerable (test): as answered, a refusal counts as unsupported",
            "≥ 82",
            "",
            ("answer", "support"),
            0.82,
            True,
        ),
        (
            "end-to-end with abstention, SQuAD2 (test)",
            "≥ 65",
            "58.8 (all 16)",
            ("abstention", "end_to_end"),
            0.65,
            True,
        ),
    ]
    out = [
        "## Targets",
        "",
        "Shipped: `config.yaml` as it is. Tuned: fusion weights and `answer.min_confidence` chosen on the "
        "SQuAD dev split (first 8 titles) only, for its end-to-end accuracy; the test split (last 8 titles) was "
        "never looked at while choosing. The status reads the tuned column for the SQuAD targets and the "
        "shipped one for the two news refusal targets, which must hold together with one setting. The shipped "
        "refusal rule (`answer.min_confidence`, `answer.off_topic_cosine`, `answer.off_topic_words`) is chosen "
        "for them on the dev halves only (SQuAD's dev titles asked against the news, RealTimeQA's first half of "
        "the weeks) by a rule written before it was first used: off-collection refused >= 95.5 % and "
        "RealTimeQA refused <= 10 %, then the fewest RealTimeQA refusals, then the fewest SQuAD dev answerable "
        "refusals (`python -m scripts.choose_refusal --data ../shared/data` redoes the choice; `off_topic_words` "
        "is bounded at 2, so that a two-word question whose quote holds both words stays answerable). Last "
        "chosen on 2026-12-06, after the confidence learned the question's names that the passage never "
        "mentions: `min_confidence` 0.18, `off_topic_cosine` 0.44, `off_topic_words` 2 (214 settings met the "
        "rule; dev halves 95.5 % off-collection refused, 6.8 % of RealTimeQA, 17.8 % of SQuAD's dev answerable "
        "questions). The rule spends the off-collection margin down to its dev bound, so the figure on all "
        "2,910 questions lands near the target of 95. How the rule got its present form, and the choices before "
        "it: docs/history.md.",
        "",
        "| figure | target | baseline | shipped | tuned | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, target, base, path, goal, higher in specs:
        value = _get(test, *path)
        out.append(
            f"| {name} | {target} | {base} | {p(_get(shipped, *path))} | {p(value)} | {_met(value, goal, higher)} |"
        )
    auroc_s, auroc_t = _get(shipped, "abstention", "auroc"), _get(test, "abstention", "auroc")
    out.append(
        f"| AUROC of the confidence, SQuAD2 (test) | ≥ 0.70 | 0.645 (all 16) | {runner.fmt_auroc(auroc_s)} | "
        f"{runner.fmt_auroc(auroc_t)} | {_met(auroc_t, 0.70)} |"
    )
    # The last field names the column the status reads: the refusal pair, the shipped rule chosen for it on dev.
    news_rows = [
        ("RealTimeQA article R@5", "≥ 80", "72.8 (hybrid)", _get(news, "modes", "hybrid", "retrieval", "recall@5"),
         _get(news, "tuned", "retrieval", "recall@5"), 0.80, True, "tuned"),
        ("off-collection refused (SQuAD2 answerable asked against the news)", "≥ 95", "",
         _get(news, "off_collection", "shipped", "refused"), _get(news, "off_collection", "tuned", "refused"),
         0.95, True, "shipped"),
        ("RealTimeQA questions refused against the news", "≤ 10", "",
         _get(news, "modes", "hybrid", "abstention", "refused"), _get(news, "tuned", "abstention", "refused"),
         0.10, False, "shipped"),
    ]  # fmt: skip
    for name, target, base, shipped_v, tuned_v, goal, higher, judged in news_rows:
        status = _met(shipped_v if judged == "shipped" else tuned_v, goal, higher)
        out.append(f"| {name} | {target} | {base} | {p(shipped_v)} | {p(tuned_v)} | {status} |")
    ingest = _get(news, "ingest", "seconds")
    projected = _get(news, "ingest_sample", "projected_whole_s")
    shown = "n/a" if ingest is None else f"{ingest:.0f} s"
    if projected is not None:
        shown += f" (at this run's rate: {projected:.0f} s)"
    out.append(f"| news ingest, whole collection | ≤ 720 s | 1,246 s | {shown} | | {_met(ingest, 720, False)} |")
    lat = _get(news, "latency_news")
    if lat:
        for key, goal in (("median", 40.0), ("p95", 80.0)):
            out.append(
                f"| `ask` latency {key}, news collection, full answer, warm | ≤ {goal:.0f} ms | "
                f"17.6 ms (retrieval only) | {runner.fmt_num(lat[key])} ms | | "
                f"{_met(lat[key], goal, False)} |"
            )
    out += [
        "",
        "A missed target is reported with its figure; nothing here was tuned on the test split (the refusal "
        "rule's form was revisited once after a run's test-half figure: docs/history.md, Refusing).",
        "",
    ]
    return out


def _recall_cell(r: dict[str, Any] | None) -> str:
    r = r or {}
    return " / ".join(p(r.get(f"recall@{k}")) for k in (1, 5, 10))


def _ms_cell(r: dict[str, Any] | None, keys: Sequence[str]) -> str:
    r = r or {}
    return " / ".join(runner.fmt_num(r.get(k)) for k in keys)


def _side_by_side(res: dict[str, Any]) -> list[str]:
    sq, news = res.get("squad"), res.get("news")
    out = [
        "## All three retrieval modes, shipped config",
        "",
        "| figure | BM25 | dense | hybrid |",
        "|---|---|---|---|",
    ]

    def row(name: str, cell: Any) -> None:
        out.append(f"| {name} | " + " | ".join(cell(m) for m in MODES) + " |")

    if sq:
        for split, label in (("all", "all 16 titles"), ("test", "test split"), ("dev", "dev split")):
            n = _get(sq, "retrieval", "hybrid", split, "n")
            row(
                f"SQuAD2 paragraph R@1 / R@5 / R@10, {label} ({n} answerable)",
                lambda m, split=split: _recall_cell(_get(sq, "retrieval", m, split)),
            )
        row(
            "SQuAD2 retrieval ms per question, median / p95",
            lambda m: _ms_cell(_get(sq, "retrieval", m, "all"), ("retrieve_ms_median", "retrieve_ms_p95")),
        )
    if news:
        n = _get(news, "retrieval", "hybrid", "n")
        row(f"RealTimeQA article R@1 / R@5 / R@10 ({n})", lambda m: _recall_cell(_get(news, "retrieval", m)))
        for split, label in (("dev", "dev weeks (first half)"), ("test", "test weeks (second half)")):
            n = _get(news, "retrieval_split", "hybrid", split, "n")
            row(
                f"RealTimeQA article R@1 / R@5 / R@10, {label} ({n})",
                lambda m, split=split: _recall_cell(_get(news, "retrieval_split", m, split)),
            )
        n = _get(news, "retrieval_split", "hybrid", "own_text", "n")
        row(
            f"RealTimeQA article R@1 / R@5 / R@10, gold article not a page template ({n})",
            lambda m: _recall_cell(_get(news, "retrieval_split", m, "own_text")),
        )
        row(
            "news retrieval ms per question, median / p95",
            lambda m: _ms_cell(_get(news, "retrieval", m), ("retrieve_ms_median", "retrieve_ms_p95")),
        )
        row(
            "RealTimeQA support as answered / refused",
            lambda m: (
                f"{p(_get(news, 'modes', m, 'answer', 'support'))} / "
                f"{p(_get(news, 'modes', m, 'abstention', 'refused'))}"
            ),
        )
        row(
            "news `ask` ms, full answer, median / p95 / p99",
            lambda m: _ms_cell(_get(news, "modes", m, "cost"), ("ask_ms_median", "ask_ms_p95", "ask_ms_p99")),
        )
    out += [
        "",
        "Recall: the gold article among the first k articles of the bot's own ranking (its retriever with the "
        "shipped settings; passages collapsed to their article). Retrieval time: the query embedding (not in "
        "bm25 mode) and the search, as `Engine.ask` does them.",
        "",
    ]
    return out


def _news_variant_rows(news: dict[str, Any], key: str) -> list[str]:
    """Table rows: the shipped settings beside the news variant `key` (run_news), on the news questions."""
    t = news[key]
    out = [
        f"| RealTimeQA article R@1 / R@5 / R@10 ({_get(t, 'retrieval', 'n')}) | "
        f"{_recall_cell(_get(news, 'retrieval', 'hybrid'))} | {_recall_cell(t['retrieval'])} |"
    ]
    for split, name in (("dev", "dev weeks"), ("test", "test weeks"), ("own_text", "gold not a page template")):
        shipped = _get(news, "retrieval_split", "hybrid", split)
        out.append(f"| same, {name} ({_get(t, split, 'n')}) | {_recall_cell(shipped)} | {_recall_cell(t.get(split))} |")
    out.append(
        "| news retrieval ms, median / p95 | "
        f"{_ms_cell(_get(news, 'retrieval', 'hybrid'), ('retrieve_ms_median', 'retrieve_ms_p95'))} | "
        f"{_ms_cell(t['retrieval'], ('retrieve_ms_median', 'retrieve_ms_p95'))} |"
    )
    keys = ("ask_ms_median", "ask_ms_p95")
    out.append(
        "| `ask` ms on the RealTimeQA questions, median / p95 | "
        f"{_ms_cell(_get(news, 'modes', 'hybrid', 'cost'), keys)} | {_ms_cell(_get(t, 'answers', 'cost'), keys)} |"
    )
    for name, path in (
        ("RealTimeQA support before abstention", ("answer", "support_before_abstention")),
        ("RealTimeQA answered with support", ("answer", "support")),
        ("RealTimeQA refused", ("abstention", "refused")),
    ):
        out.append(f"| {name} | {p(_get(news, 'modes', 'hybrid', *path))} | {p(_get(t, 'answers', *path))} |")
    out.append(
        "| off-collection refused (SQuAD2 answerable against the news) | "
        f"{p(_get(news, 'off_collection', 'shipped', 'refused'))} | {p(_get(t, 'off_collection', 'refused'))} |"
    )
    return out


def _recency(res: dict[str, Any]) -> list[str]:
    news = res.get("news")
    if not _get(news, "recency_off"):
        return []
    assert news is not None
    out = [
        "## The day a question is asked (`index.recency_boost`), side by side",
        "",
        "| figure | shipped (`recency_boost: 0.3`, `recency_days: 14`) | `index.recency_boost: 0` |",
        "|---|---|---|",
        *_news_variant_rows(news, "recency_off"),
        "",
        "A news question asks about the news of its day (\"this week\", \"recently\", often no word at all), "
        "and a news collection holds the same story from many weeks. Each RealTimeQA question is asked on its "
        "quiz's date (the bot asks on the day of the message; `articlebot ask --asked-on`; the jsonl format's "
        "`asked`), and a passage of an article published on that day (or the day after: time zones) gets 0.3 "
        "added to its fused score, fading linearly to 0.02 at 14 days before it; older articles, articles "
        "dated later (the collection's later weeks) and articles without a date get no boost. The "
        "off-collection questions are asked on the "
        "RealTimeQA questions' days in turn (`datasets.asked_on_days_of`), so they meet those days' articles "
        "first too. The form and values were chosen on RealTimeQA's dev weeks, retrieval only, by the rule "
        "written before looking (best R@5, then R@1), offline over boosts 0.05 to 0.5, windows 3 to 14 days, "
        "a flat or a fading boost, on every question or only those with a time word: 0.3, 14 days, fading, "
        "every question (dev weeks R@5 92.2 in that grid, which ranked the articles of all fused passages, against "
        "90.3 from the first 30 here; 87.4 at best with time words only). The choice read "
        "the dev weeks only (a first, smaller grid printed the test weeks beside them). SQuAD's paragraphs "
        "have no dates: none of its figures move. Weighting the boost in "
        "the answer step's sentence score too was tried on the dev weeks (0.5 to 4 times it): no more "
        "supported answers, more refusals; not shipped. Convex fusion of both lists only (RRF scores are on "
        "another scale; the bm25 and dense modes above have no boost).",
        "",
    ]
    return out


def _titles(res: dict[str, Any]) -> list[str]:
    sq, news = res.get("squad"), res.get("news")
    if not _get(news, "titles") and not _get(sq, "titles"):
        return []
    label = ", ".join(f"`index.{k}: {v}`" for k, v in TITLES.items())
    out = [
        "## Article titles in the fusion (`index.title_share`), side by side",
        "",
        f"| figure | shipped (no titles) | {label} |",
        "|---|---|---|",
    ]
    if news and news.get("titles"):
        out += _news_variant_rows(news, "titles")
    if sq and sq.get("titles"):
        for split, name in (("test", "test split"), ("dev", "dev split"), ("all", "all 16 titles")):
            out.append(
                f"| SQuAD2 paragraph R@1 / R@5 / R@10, {name} | {_recall_cell(_get(sq, 'retrieval', 'hybrid', split))} "
                f"| {_recall_cell(_get(sq, 'titles', split))} |"
            )
    out += [
        "",
        "The headline names the story a news question asks about: adding the question's BM25 score over the "
        "article titles (divided by the best title's) to each passage's fused score, and fusing 200 passages "
        "of each list instead of 50, were chosen on RealTimeQA's dev weeks before the recency boost (R@5 67.0 "
        "-> 77.7 there) with the SQuAD dev split as a guard, and then moved the refusal trade-off the wrong way "
        "(on the dev halves, offline: 96.4 % off-collection refused and 9.7 % of RealTimeQA, against 95.6 and "
        "7.8 without them). Both columns above have the recency boost, which finds the news article more often "
        "than the titles ever did; on top of it the titles add rank-1 hits but no R@5 and fewer supported "
        "answers, so they stay an option. The column uses the shipped confidence and refusal rule. Its "
        "retrieval time is not a warm figure: it includes a new engine's first reads (BM25 postings, the "
        "titles), which the shipped column's engine had already made, besides the cost of fusing 200 "
        "candidates of each list; the same holds for the recency-off column above.",
        "",
    ]
    return out


def _answers(res: dict[str, Any]) -> list[str]:
    sq = res.get("squad")
    if not sq:
        return []
    out = [
        "## Answers on SQuAD2, shipped config",
        "",
        "| split | support before abstention | support as answered | answered | EM / F1 | end-to-end "
        "(always abstain) | AUROC | refused | `ask` ms median / p95 / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in ("test", "all", "dev"):
        r = _get(sq, "shipped", split)
        if not r:
            continue
        a, ab = r["answer"], r["abstention"]
        out.append(
            f"| {split} | {p(a['support_before_abstention'])} | {p(a['support'])} | {p(a['answered'])} | "
            f"{p(a['exact_match'])} / {p(a['f1'])} | {p(ab.get('end_to_end'))} ({p(ab.get('always_abstain'))}) | "
            f"{runner.fmt_auroc(ab.get('auroc'))} | {p(ab['refused'])} | "
            f"{_ms_cell(r['cost'], ('ask_ms_median', 'ask_ms_p95', 'ask_ms_p99'))} |"
        )
    out += [
        "",
        "Support: the first quote shown holds a gold answer (case-insensitive; numbers on word boundaries). "
        "Before abstention: the sentence it would cite with no threshold. End-to-end: answered with a "
        "supporting quote, or refused when the paragraph has no answer. AUROC: the confidence separating "
        "answerable questions whose best sentence holds the answer from the rest.",
        "",
    ]
    return out


def _shipped_variant(res: dict[str, Any]) -> str | None:
    """The label of the variant whose SQuAD figures are the shipped run's own."""
    rows = _get(res, "squad", "sentences") or {}
    shipped = _get(res, "squad", "shipped")
    return next((label for label, by_split in rows.items() if by_split is shipped or by_split == shipped), None)


def _sentence_vectors(res: dict[str, Any]) -> list[str]:
    rows = _get(res, "squad", "sentences")
    if not rows or len(rows) < 2:
        return []
    out = [
        "## Sentence vectors side by side (`answer.sentence_vectors`, `answer.rerank_sentences`)",
        "",
        "How the answer step ranks the candidate sentences: `static` (word-piece vectors weighted by rarity in "
        "the collection, answer/static.py; MiniLM embeds only the best `answer.rerank_sentences` and re-ranks "
        "them by the mean of both cosines) or `model` (MiniLM embeds every candidate). Same run, same retrieval, "
        "same confidence weights.",
        "",
        "| sentence vectors | support before abstention, test (all) | end-to-end, test | AUROC, test | "
        "SQuAD `ask` ms median / p95 | news `ask` ms median / p95 (RealTimeQA questions) |",
        "|---|---|---|---|---|---|",
    ]
    for vectors, by_split in rows.items():
        test, every = by_split.get("test") or {}, by_split.get("all") or {}
        lat = _get(res, "news", "sentence_latency", vectors) or {}
        if vectors == _shipped_variant(res):
            vectors += " (shipped)"
        out.append(
            f"| {vectors} | {p(_get(test, 'answer', 'support_before_abstention'))} "
            f"({p(_get(every, 'answer', 'support_before_abstention'))}) | "
            f"{p(_get(test, 'abstention', 'end_to_end'))} | {runner.fmt_auroc(_get(test, 'abstention', 'auroc'))} | "
            f"{_ms_cell(every.get('cost'), ('ask_ms_median', 'ask_ms_p95'))} | "
            f"{_ms_cell(lat, ('median', 'p95'))} |"
        )
    return [*out, ""]


def _backends(res: dict[str, Any]) -> list[str]:
    if not res.get("backends") or not res.get("squad"):
        return []
    shipped = {"retrieval": res["squad"]["retrieval"], "ingest_sample": _get(res, "news", "ingest_sample")}
    b = {res["settings"]["backend"]: shipped, **res["backends"]}
    out = [
        "## Embedding backends side by side",
        "",
        "The same retrieval with the model run by ONNX Runtime with int8 weights (shipped) and by "
        "sentence-transformers on torch (float32); the news ingest rate on the same sample of articles.",
        "",
        "| backend | SQuAD2 dense R@1 / R@5 / R@10, test | SQuAD2 hybrid R@1 / R@5 / R@10, test | hybrid, all 16 "
        "| retrieval ms median (hybrid) | news ingest passages/s |",
        "|---|---|---|---|---|---|",
    ]
    for backend, row in b.items():
        out.append(
            f"| {backend} | {_recall_cell(_get(row, 'retrieval', 'dense', 'test'))} | "
            f"{_recall_cell(_get(row, 'retrieval', 'hybrid', 'test'))} | "
            f"{_recall_cell(_get(row, 'retrieval', 'hybrid', 'all'))} | "
            f"{runner.fmt_num(_get(row, 'retrieval', 'hybrid', 'all', 'retrieve_ms_median'))} | "
            f"{runner.fmt_num(_get(row, 'ingest_sample', 'passages_per_s'))} |"
        )
    return [*out, ""]


def _tuning(res: dict[str, Any]) -> list[str]:
    tu = res.get("tuning")
    if not tu:
        return []
    c = tu["chosen"]
    out = [
        "## Tuning (SQuAD dev split only)",
        "",
        "Chosen: " + ", ".join(f"`index.{k}: {v}`" for k, v in c["index"].items()) + " (best dev R@1 + ½·R@5), "
        f"`answer.min_confidence: {c['min_confidence']}` "
        f"(best dev end-to-end, {p(c['dev_end_to_end_at_threshold'])}).",
        "",
        "| split | R@1 | R@5 | R@10 | support before abstention | support as answered | end-to-end | AUROC | refused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in ("test", "all", "dev"):
        r = tu["reports"][split]
        out.append(
            f"| {split}{' (tuned on)' if split == 'dev' else ''} | {p(r['retrieval']['recall@1'])} | "
            f"{p(r['retrieval']['recall@5'])} | {p(r['retrieval']['recall@10'])} | "
            f"{p(r['answer']['support_before_abstention'])} | {p(r['answer']['support'])} | "
            f"{p(r['abstention'].get('end_to_end'))} | {runner.fmt_auroc(r['abstention'].get('auroc'))} | "
            f"{p(r['abstention']['refused'])} |"
        )
    out += [
        "",
        "Fusion grid on the dev split (convex score fusion and weighted RRF), best first:",
        "",
        "| fusion | R@1 | R@5 | R@10 |",
        "|---|---|---|---|",
    ]
    for g in tu["fusion_grid_dev"]:
        out.append(f"| {g['label']} | {p(g['recall@1'])} | {p(g['recall@5'])} | {p(g['recall@10'])} |")
    return [*out, ""]


def _off_collection(res: dict[str, Any]) -> list[str]:
    news = res.get("news")
    if not news:
        return []
    out = [
        "## Off-collection refusal",
        "",
        "| settings | SQuAD2 answerable asked against the news: refused | RealTimeQA asked against the news: refused |",
        "|---|---|---|",
    ]
    for label, rtqa in (("shipped", _get(news, "modes", "hybrid")), ("tuned", news.get("tuned"))):
        off = _get(news, "off_collection", label)
        if off:
            out.append(
                f"| {label} | {p(off['refused'])} ({off['questions']}) | {p(_get(rtqa, 'abstention', 'refused'))} |"
            )
    return [*out, ""]


def _cost(res: dict[str, Any]) -> list[str]:
    out = [
        "## Cost",
        "",
        "| collection | articles | passages | ingest | passages/s | measured (load average before, after) |",
        "|---|---|---|---|---|---|",
    ]
    rows = (
        ("SQuAD2 dev half", _get(res, "squad", "ingest")),
        ("RealTimeQA news", _get(res, "news", "ingest")),
        ("RealTimeQA news, sample embedded in this run", _get(res, "news", "ingest_sample")),
    )
    for name, ing in rows:
        if ing:
            secs = ing.get("seconds")
            rate = ing["passages"] / secs if secs else None
            load = ing.get("load_average")
            when = (ing.get("measured_at") or "this run") + (" (cached)" if ing.get("cached") else "")
            if load:
                when += " (" + ", ".join(runner.fmt_num(x) for x in load) + ")"
            out.append(
                f"| {name} | {ing['articles']} | {ing['passages']} | {runner.fmt_num(_r(secs))} s | "
                f"{runner.fmt_num(_r(rate))} | {when} |"
            )
    lat = _get(res, "news", "latency_news")
    if lat:
        out += [
            "",
            f"`ask` on the news collection, shipped hybrid settings, {lat['n']} questions (RealTimeQA and "
            f"the off-collection SQuAD questions), warm, in-process: median {lat['median']} ms, "
            f"p95 {lat['p95']} ms, p99 {lat['p99']} ms.",
        ]
    out += ["", f"Peak RSS of the benchmark process: {res.get('peak_rss_mb')} MB.", ""]
    return out


def _loadtest(res: dict[str, Any]) -> list[str]:
    lt = res.get("loadtest")
    if lt is None:
        return ["## Bot load test", "", "Not run: scripts/loadtest_bot.py is not in this checkout.", ""]
    return [
        "## Bot load test",
        "",
        f"`{lt['command']}` (exit {lt['returncode']}, {lt.get('seconds', '?')} s):",
        "",
        "```",
        lt["output"],
        "```",
        "",
    ]


# ---- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data dir")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--cache-dir", type=Path, default=runner.DEFAULT_CACHE_ROOT)
    ap.add_argument("--limit", type=int, help="at most N questions per set (a quick, partial run)")
    ap.add_argument("--skip-news", action="store_true", help="SQuAD only (the news ingest is the slow part)")
    ap.add_argument("--skip-loadtest", action="store_true")
    ap.add_argument(
        "--ingest-sample", type=int, default=300, metavar="N", help="news articles embedded afresh to measure the rate"
    )
    ap.add_argument(
        "--render", type=Path, metavar="JSON", help="only write --out again from a run's raw figures (no measuring)"
    )
    args = ap.parse_args(argv)
    if args.render:
        args.out.write_text(render(json.loads(args.render.read_text(encoding="utf-8"))), encoding="utf-8")
        return 0
    squad_path = args.data / "squad2-dev-half" / "dev-v2.0.json"
    rtqa_dir = args.data / "realtimeqa-2022"
    for needed in (squad_path, *(() if args.skip_news else (rtqa_dir,))):
        if not needed.exists():
            print(f"error: {needed} not found (see {args.data}/README.md)", file=sys.stderr)
            return 1
    settings = load_settings()
    load_start = _loadavg()
    t0 = time.perf_counter()
    cmd = "python -m scripts.bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    res: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": runner.machine(),
        "settings": runner.settings_summary(settings, None),
        "limit": args.limit,
        "commands": [
            "make bench    # = " + cmd.strip(),
            f"articlebot eval {squad_path} --format squad2 --split test --mode hybrid",
            f"articlebot eval {squad_path} --format squad2 --tune",
            f"articlebot eval {rtqa_dir} --format realtimeqa --mode hybrid",
            f"articlebot eval {squad_path} --format squad2 --against {rtqa_dir}",
        ],
    }
    res["squad"] = run_squad(squad_path, settings, args.cache_dir, args.limit)
    _log("tuning on the SQuAD dev split")
    res["tuning"] = tune.tune_squad(squad_path, settings, cache_root=args.cache_dir, limit=args.limit, log=_log)
    c = res["tuning"]["chosen"]
    tuned = runner.with_answer(
        runner.with_index(settings, **c["index"]),
        min_confidence=c["min_confidence"],
    )
    res["backends"] = run_backends(
        squad_path, None if args.skip_news else rtqa_dir, settings, args.cache_dir, args.limit, args.ingest_sample
    )
    if not args.skip_news:
        res["news"] = run_news(rtqa_dir, squad_path, settings, tuned, args.cache_dir, args.limit, args.ingest_sample)
    if not args.skip_loadtest:
        res["loadtest"] = run_loadtest()
    res["peak_rss_mb"] = runner.peak_rss_mb()
    res["load_average"] = [load_start, _loadavg()]
    res["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(res), encoding="utf-8")
    raw = args.cache_dir / "bench-results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    _log(f"wrote {args.out} (raw figures: {raw}) in {res['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
