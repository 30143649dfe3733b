"""`articlebot eval`: measure retrieval, answer and abstention quality on a question set.

Thin: parse the options, hand them to `evaluation.runner`, print a table or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.errors import UserError

FORMATS = ("jsonl", "squad2", "realtimeqa")


def add_eval_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    e = sub.add_parser(
        "eval",
        parents=parents,
        help="measure retrieval, answer and abstention quality on a question set",
        description="Ingest the set's articles (cached), ask every question through the bot's engine, and "
        "report recall@1/5/10, support, exact match/F1, abstention and cost. The jsonl format is your own "
        'questions, one {"question", "answers": [...], "article": title or URL, "answerable": bool, "asked": '
        '"YYYY-MM-DD"} per line (all but "question" optional; "asked", the day asked, defaults to today), '
        "asked against the current collection (or --data-dir). The public sets are ingested into a "
        "cache keyed by the data, model, backend and chunking, so a rerun skips the embedding.",
    )
    e.add_argument("questions", help="a JSONL file of your questions, a SQuAD 2.0 .json file, or a RealTimeQA dir")
    e.add_argument("--format", choices=FORMATS, help="question set format (default: from the path)")
    e.add_argument("--mode", choices=["hybrid", "bm25", "dense"], help="retrieval mode (default: config)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument(
        "--split",
        choices=["dev", "test", "all"],
        default="all",
        help="squad2: dev = the first 8 titles, test = the rest; realtimeqa: dev = the first half of the weeks",
    )
    e.add_argument("--limit", type=int, metavar="N", help="ask N questions, spread evenly over the set")
    e.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where ingested public sets are kept between runs (default: .cache/eval in the repository)",
    )
    e.add_argument("--no-cache", action="store_true", help="ingest into a temporary directory, then delete it")
    e.add_argument(
        "--against",
        metavar="PATH",
        help="ask the questions against another set's articles (a SQuAD file or RealTimeQA dir) and report "
        "how many are refused: the off-collection check",
    )
    e.add_argument("--against-format", choices=FORMATS[1:], help="format of --against (default: from the path)")
    e.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting for this run, e.g. --set answer.min_confidence=0.4 (repeatable)",
    )
    e.add_argument(
        "--tune",
        action="store_true",
        help="squad2: pick the fusion weights and answer.min_confidence on the dev split, then report the "
        "test split and all titles with them",
    )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation import datasets, runner

    settings = runner.override(settings, args.set)
    path = Path(args.questions).expanduser()
    fmt = args.format or (datasets.guess_format(path) if path.exists() else None)
    cache_root: Path | None = Path(args.cache_dir).expanduser() if args.cache_dir else runner.DEFAULT_CACHE_ROOT
    if args.no_cache:
        cache_root = None
    # A public set goes into its cache dir unless --data-dir names one; the user's jsonl uses the collection.
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir and fmt != "jsonl" else None
    progress = sys.stderr.isatty()

    if args.tune:
        if fmt != "squad2":
            raise UserError("--tune works on a SQuAD 2.0 file (the dev split picks, the test split reports)")
        from evaluation import tune

        result = tune.tune_squad(
            path,
            settings,
            cache_root=cache_root,
            data_dir=data_dir,
            limit=args.limit,
            progress=progress,
            log=_log,
        )
        print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else tune.format_tuning(result))
        return 0

    evalset = datasets.load(path, fmt, args.split).limited(args.limit)
    if args.against:
        against = Path(args.against).expanduser()
        collection = datasets.load(against, args.against_format)
        rep = runner.off_collection(
            evalset, collection, settings, mode=args.mode, cache_root=cache_root, progress=progress, log=_log
        )
        print(json.dumps(rep, ensure_ascii=False, indent=1) if args.json else runner.format_off_collection(rep))
        return 0

    rep = runner.evaluate(
        evalset,
        settings,
        mode=args.mode,
        cache_root=cache_root,
        data_dir=data_dir,
        progress=progress,
        log=_log,
    )
    print(json.dumps(rep, ensure_ascii=False, indent=1) if args.json else runner.format_table(rep))
    return 0
