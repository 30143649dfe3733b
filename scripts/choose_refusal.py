"""Choose the shipped refusal rule (`answer.min_confidence`, `answer.off_topic_cosine`, `answer.off_topic_words`)
on the dev halves only, by the rule written before it was first used (session 7, docs/benchmarks.md):

    python -m scripts.choose_refusal --data ../shared/data

Every dev question is asked once with the refusal rule off (the answer step records the signals it decides
on); each setting of the grid is then applied to those signals with `answer.composer.refuses`, the function
the bot itself runs. The dev halves: the SQuAD dev split's answerable questions asked against the RealTimeQA
news (all should be refused), RealTimeQA's dev weeks against the news (answerable), and the SQuAD dev split
against its own paragraphs. The rule: off-collection refused >= 95.5 % and RealTimeQA refused <= 10 %, then
the fewest RealTimeQA refusals, then the fewest SQuAD dev answerable refusals, then the most off-collection
refusals. The test halves are never asked.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from answer.composer import refuses
from engine.config import ROOT, AnswerSettings, load_settings
from evaluation import datasets, runner

OFF_REFUSED_MIN = 0.955
NEWS_REFUSED_MAX = 0.10
MIN_CONFIDENCE = tuple(np.round(np.arange(0.05, 0.505, 0.01), 2))
OFF_TOPIC_COSINE = tuple(np.round(np.arange(0.40, 0.705, 0.01), 2))
# At most 2: a question with two content words whose quote holds both must stay answerable from a passage far
# in meaning ("How many civilians reportedly died?" on the sample article: 2.0 words held, passage cosine
# 0.16). The data sets do not teach this bound: with words up to 4 the rule chose 3.75 on 2026-11-26, which
# refused that question (docs/benchmarks.md, Targets).
OFF_TOPIC_WORDS = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))


@dataclass(frozen=True)
class Asked:
    """One dev question's answer with the rule off: its signals (empty when nothing could be quoted, which
    every setting refuses)."""

    kind: str  # off | news | squad
    answerable: bool
    signals: Mapping[str, float]


@dataclass(frozen=True)
class Choice:
    min_confidence: float
    off_topic_cosine: float
    off_topic_words: float
    off_refused: float
    news_refused: float
    squad_answerable_refused: float


def refused_share(asked: Sequence[Asked], settings: AnswerSettings) -> float:
    return sum(not a.signals or refuses(a.signals, settings) for a in asked) / len(asked) if asked else 0.0


def choose(
    asked: Sequence[Asked],
    grid: Iterable[tuple[float, float, float]] | None = None,
    base: AnswerSettings | None = None,
) -> tuple[Choice | None, int]:
    """The setting the rule picks over `grid` (min_confidence, off_topic_cosine, off_topic_words), and how
    many settings met its two bounds; None when none did."""
    base = base or AnswerSettings()
    off = [a for a in asked if a.kind == "off"]
    news = [a for a in asked if a.kind == "news"]
    squad = [a for a in asked if a.kind == "squad" and a.answerable]
    best: tuple[tuple[float, float, float], Choice] | None = None
    met = 0
    for t, c, w in grid if grid is not None else itertools.product(MIN_CONFIDENCE, OFF_TOPIC_COSINE, OFF_TOPIC_WORDS):
        s = base.model_copy(update={"min_confidence": t, "off_topic_cosine": c, "off_topic_words": w})
        off_r, news_r = refused_share(off, s), refused_share(news, s)
        if off_r < OFF_REFUSED_MIN or news_r > NEWS_REFUSED_MAX:
            continue
        met += 1
        squad_r = refused_share(squad, s)
        key = (news_r, squad_r, -off_r)
        if best is None or key < best[0]:
            best = (key, Choice(t, c, w, off_r, news_r, squad_r))
    return (best[1] if best else None), met


def ask_dev(data: Path, log: runner.Log) -> list[Asked]:
    """Every dev question, asked once with the refusal rule off."""
    settings = runner.with_answer(load_settings(), min_confidence=0.0, off_topic_cosine=0.0)
    squad_path = data / "squad2-dev-half" / "dev-v2.0.json"
    squad_dev = datasets.load_squad2(squad_path, "dev").questions
    news_dev = datasets.load_realtimeqa(data / "realtimeqa-2022", "dev").questions
    news = datasets.load_realtimeqa(data / "realtimeqa-2022")

    def asked(prep: runner.Prepared, questions: Sequence[datasets.Question], kind: str) -> list[Asked]:
        log(f"{kind}: {len(questions)} questions")
        return [
            Asked(kind, q.answerable, dict(prep.engine.ask(q.text, asked_on=q.asked).signals or {})) for q in questions
        ]

    out: list[Asked] = []
    prep = runner.prepare(datasets.load_squad2(squad_path), settings, log=log)
    try:
        out += asked(prep, squad_dev, "squad")
    finally:
        prep.close()
    prep = runner.prepare(news, settings, log=log)
    try:
        # on the days the news questions were asked (in turn): the days `make bench` gives these questions
        out += asked(prep, datasets.asked_on_days_of([q for q in squad_dev if q.answerable], news.questions), "off")
        out += asked(prep, news_dev, "news")
    finally:
        prep.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    shipped = load_settings().answer
    asked = ask_dev(args.data, log)
    off, news = [a for a in asked if a.kind == "off"], [a for a in asked if a.kind == "news"]
    print(
        f"shipped: min_confidence {shipped.min_confidence}, off_topic_cosine {shipped.off_topic_cosine}, "
        f"off_topic_words {shipped.off_topic_words}: dev off-collection refused "
        f"{100 * refused_share(off, shipped):.1f} %, RealTimeQA dev refused {100 * refused_share(news, shipped):.1f} %"
    )
    choice, met = choose(asked, base=shipped)
    if choice is None:
        print("no setting of the grid meets the rule on the dev halves")
        return 1
    print(
        f"chosen ({met} settings met the rule): min_confidence {choice.min_confidence}, off_topic_cosine "
        f"{choice.off_topic_cosine}, off_topic_words {choice.off_topic_words}: dev off-collection refused "
        f"{100 * choice.off_refused:.1f} %, RealTimeQA dev refused {100 * choice.news_refused:.1f} %, "
        f"SQuAD dev answerable refused {100 * choice.squad_answerable_refused:.1f} %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
