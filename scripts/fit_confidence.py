"""Fit the answer step's confidence (answer/composer.py: C_BIAS, CONFIDENCE_WEIGHTS) on SQuAD dev only.

    python -m scripts.fit_confidence --data ../shared/data

Each question of the SQuAD 2.0 dev split (the first 8 titles) is asked twice with the shipped settings and
no threshold: against the SQuAD paragraphs (positive: the sentence it would quote holds a gold answer;
negative: a wrong sentence or an unanswerable question) and, its answerable ones, against the RealTimeQA
news (all negative: the collection is about something else). A logistic regression of the answer's
`signals` on that label gives the weights. The test split and the RealTimeQA questions are never used.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from answer.composer import CONFIDENCE_WEIGHTS
from engine.config import ROOT, load_settings
from evaluation import datasets, metrics, runner

FEATURES = tuple(CONFIDENCE_WEIGHTS)


Row = tuple[list[float], int, str]  # signals, label, kind: answerable | unanswerable | off


def _rows(prep: runner.Prepared, questions: list[datasets.Question], on_topic: bool) -> list[Row]:
    out = []
    for q in questions:
        ans = prep.engine.ask(q.text, asked_on=q.asked)
        if not ans.signals:
            continue  # nothing to quote (no passage, or only questions): refused whatever the weights
        shown = ans.citations or ans.closest
        good = on_topic and q.answerable and bool(shown) and metrics.contains_answer(shown[0].quote, q.answers)
        kind = "off" if not on_topic else "answerable" if q.answerable else "unanswerable"
        out.append(([ans.signals[f] for f in FEATURES], int(good), kind))
    return out


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, help="at most N dev questions (a quick look)")
    args = ap.parse_args(argv)
    settings = runner.with_answer(load_settings(), min_confidence=0.0)
    squad_path = args.data / "squad2-dev-half" / "dev-v2.0.json"
    dev = datasets.load_squad2(squad_path, "dev").limited(args.limit)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows: list[Row] = []
    prep = runner.prepare(datasets.load_squad2(squad_path), settings, log=log)
    try:
        rows += _rows(prep, list(dev.questions), on_topic=True)
    finally:
        prep.close()
    news = datasets.load_realtimeqa(args.data / "realtimeqa-2022")
    prep = runner.prepare(news, settings, log=log)
    try:  # on the days the news questions were asked, in turn, as `make bench` asks them
        off = datasets.asked_on_days_of([q for q in dev.questions if q.answerable], news.questions)
        rows += _rows(prep, list(off), on_topic=False)
    finally:
        prep.close()
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    model = LogisticRegression(C=100.0, max_iter=1000).fit(x, y)
    weights = dict(zip(FEATURES, (round(float(w), 2) for w in model.coef_[0]), strict=True))
    print(f"{len(y)} answers, {int(y.sum())} positive")
    print(f"C_BIAS = {float(model.intercept_[0]):.2f}")
    print(f"CONFIDENCE_WEIGHTS = {weights}")
    old = sum(CONFIDENCE_WEIGHTS[f] * x[:, i] for i, f in enumerate(FEATURES))
    print(f"dev AUROC: fitted {roc_auc_score(y, model.decision_function(x)):.3f}, current {roc_auc_score(y, old):.3f}")
    conf = model.predict_proba(x)[:, 1]
    kinds = np.array([r[2] for r in rows])
    on = kinds != "off"
    print("threshold  dev end-to-end  dev off-collection refused")
    for t in np.arange(0.05, 0.61, 0.05):
        right = np.where(kinds == "unanswerable", conf < t, (y == 1) & (conf >= t))
        print(f"{t:9.2f}  {right[on].mean():14.3f}  {(conf[kinds == 'off'] < t).mean():26.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
