"""Pick the fusion weights and `answer.min_confidence` on the SQuAD dev split only, then report the test
split (never seen while choosing) and all titles with the chosen values.

The weights are chosen on retrieval alone (recall of the gold paragraph), the threshold on the end-to-end
accuracy of the answers: one run with the threshold at 0 gives every question's confidence and the
sentence the bot would cite, and the answer step abstains exactly when the confidence is below the
threshold, so every threshold can be scored from that one run. The test split is then asked for real
with the chosen values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import Settings
from evaluation import datasets, metrics, runner
from evaluation.runner import Log, Outcome, Prepared

# The fusions tried on dev, as `index` settings. Convex: the BM25 share of the score. RRF: rrf_k x
# (bm25_weight, dense_weight); the ratio of the weights is what matters in a weighted RRF.
SHARES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
RRF_KS: tuple[int, ...] = (10, 30, 60)
WEIGHTS: tuple[tuple[float, float], ...] = (
    (1.0, 0.0),
    (1.0, 0.25),
    (1.0, 0.5),
    (1.0, 1.0),
    (0.5, 1.0),
)


def fusion_candidates(
    shares: Sequence[float] = SHARES, rrf_ks: Sequence[int] = RRF_KS, weights: Sequence[tuple[float, float]] = WEIGHTS
) -> list[dict[str, Any]]:
    """Every fusion the grid tries, as `index` setting overrides."""
    out: list[dict[str, Any]] = [{"fusion": "convex", "bm25_share": share} for share in shares]
    out += [
        {"fusion": "rrf", "rrf_k": k, "bm25_weight": b, "dense_weight": d} for k in rrf_ks for b, d in weights
    ]
    return out


def _quiet(_: str) -> None:
    return None


def fusion_grid(
    prep: Prepared,
    questions: Sequence[datasets.Question],
    settings: Settings,
    *,
    candidates: Sequence[dict[str, Any]] | None = None,
    log: Log = _quiet,
) -> list[dict[str, Any]]:
    """Recall@1/5/10 of the gold article for every fusion candidate on the given questions, best first
    (by R@1 + R@5 / 2). Each row holds the candidate's `index` overrides and a readable label."""
    qs = [q for q in questions if q.answerable and prep.gold_ids(q)]
    texts = [" ".join(q.text.split()) for q in qs]
    qvecs = prep.engine.embedder.encode(texts) if texts else np.zeros((0, prep.engine.embedder.dim))
    rows = []
    for overrides in candidates if candidates is not None else fusion_candidates():
        engine = prep.engine_for(runner.with_index(settings, **overrides))
        try:
            ranked = [
                runner.ranked_with_vector(engine, t, v, "hybrid", runner.RECALL_DEPTH, q.asked)
                for q, t, v in zip(qs, texts, qvecs, strict=True)
            ]
        finally:
            engine.store.close()
        row: dict[str, Any] = {"index": dict(overrides), "label": runner.fusion_label(engine.settings.index)}
        for k in (1, 5, 10):
            row[f"recall@{k}"] = round(
                metrics.mean([metrics.recall_at(r, prep.gold_ids(q), k) for r, q in zip(ranked, qs, strict=True)])
                or 0.0,
                4,
            )
        log(f"  {row['label']}: R@1 {row['recall@1']:.3f} R@5 {row['recall@5']:.3f}")
        rows.append(row)
    rows.sort(key=lambda r: (-(r["recall@1"] + 0.5 * r["recall@5"]), -r["recall@10"]))
    return rows


def end_to_end_at(outcomes: Sequence[Outcome], threshold: float) -> float | None:
    """End-to-end accuracy had the bot abstained below `threshold` (outcomes asked with threshold 0)."""
    judged = [o for o in outcomes if not o.question.answerable or o.question.answers]
    correct = []
    for o in judged:
        abstain = o.abstained or o.confidence < threshold
        if o.question.answerable:
            correct.append(float(not abstain and o.candidate_supported))
        else:
            correct.append(float(abstain))
    return metrics.mean(correct)


def pick_threshold(outcomes: Sequence[Outcome]) -> tuple[float, float]:
    """The min_confidence (rounded to 0.01) with the best end-to-end accuracy; the lowest of equals."""
    best_t, best = 0.0, -1.0
    for step in range(0, 101):
        t = step / 100
        acc = end_to_end_at(outcomes, t) or 0.0
        if acc > best + 1e-12:
            best_t, best = t, acc
    return best_t, best


def tune_squad(
    path: Path,
    settings: Settings,
    *,
    cache_root: Path | None = runner.DEFAULT_CACHE_ROOT,
    data_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Choose on dev, report dev, test and all: the figures on test are the honest ones."""
    full = datasets.load_squad2(path, "all")
    dev = datasets.load_squad2(path, "dev").limited(limit)
    prep = runner.prepare(full, settings, cache_root=cache_root, data_dir=data_dir, progress=progress, log=log)
    try:
        log(f"tuning the fusion on {dev.name} dev ({len(dev.questions)} questions) ...")
        grid = fusion_grid(prep, dev.questions, settings, log=log)
        best = grid[0]
        tuned = runner.with_index(settings, **best["index"])
        mode = "hybrid"
        log("tuning answer.min_confidence on dev ...")
        engine0 = prep.engine_for(runner.with_answer(tuned, min_confidence=0.0))
        try:
            dev_at_zero = runner.ask_all(prep, dev.questions, engine=engine0, mode=mode, log=log)
        finally:
            engine0.store.close()
        threshold, dev_e2e = pick_threshold(dev_at_zero)
        tuned = runner.with_answer(tuned, min_confidence=threshold)
        log(
            f"chosen: {best['label']}, min_confidence={threshold}; asking the test split ..."
        )
        test = datasets.load_squad2(path, "test").limited(limit)
        engine = prep.engine_for(tuned)
        try:
            test_out = runner.ask_all(prep, test.questions, engine=engine, mode=mode, log=log)
        finally:
            engine.store.close()
        # Dev is not asked again: the run at threshold 0 with the threshold applied is the same answers.
        dev_out = runner.apply_threshold(dev_at_zero, threshold)
        splits = {"dev": dev_out, "test": test_out, "all": [*dev_out, *test_out]}
        reports = {}
        for name, outs in splits.items():
            rep = runner.report(full, prep, outs, tuned, mode)
            rep["split"] = name
            reports[name] = rep
        return {
            "chosen": {
                "mode": mode,
                "index": best["index"],
                "label": best["label"],
                "min_confidence": threshold,
                "dev_end_to_end_at_threshold": round(dev_e2e, 4),
            },
            "fusion_grid_dev": grid,
            "reports": reports,
        }
    finally:
        prep.close()


def format_tuning(result: dict[str, Any]) -> str:
    c = result["chosen"]
    lines = [
        "chosen on the dev split (first 8 titles):",
        *(f"  index.{key}: {value}" for key, value in c["index"].items()),
        f"  answer.min_confidence: {c['min_confidence']}"
        f"   (dev end-to-end {runner.fmt_pct(c['dev_end_to_end_at_threshold'])})",
        "",
        "fusion grid on dev (best first): R@1  R@5  R@10",
    ]
    width = max((len(r["label"]) for r in result["fusion_grid_dev"]), default=0)
    for r in result["fusion_grid_dev"]:
        lines.append(
            f"  {r['label'].ljust(width)}  " + "  ".join(runner.fmt_pct(r[f"recall@{k}"]) for k in (1, 5, 10))
        )
    for name in ("test", "all", "dev"):
        lines += ["", runner.format_table(result["reports"][name])]
    return "\n".join(lines)
