#!/usr/bin/env python
"""Soak run: a real `articlebot serve` process against the loopback Bot API, many users for minutes.

U simulated users (default 200) over D seconds (default 600) ask questions (answerable and off-topic), add
pasted text and small files, page through /list with the buttons, open cited passages, ask for /help and
chat in group chats; an admin runs /reindex in the middle. Reports replies/s, latency p50/p95/p99 per
kind, the bot's RSS (start, middle, end, peak) and checks that every message got exactly one reply in its
own chat, that the reindex finished, that memory did not keep growing and that nothing crashed. Traffic
stays on 127.0.0.1; the run stops itself at a hard deadline. Full length in `make bench`:

    .venv/bin/python -m scripts.soak_bot [--users 200] [--seconds 600] [--json] [--out FILE]

Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.botapi.soak import SoakConfig, run_soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    defaults = SoakConfig()
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--users", type=int, default=defaults.users, help="simulated users (default %(default)s)")
    p.add_argument("--seconds", type=float, default=defaults.seconds, help="length of the run (default %(default)s)")
    p.add_argument(
        "--think",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=defaults.think_s,
        help="seconds a user pauses after each reply (default %(default)s)",
    )
    p.add_argument("--groups", type=int, default=None, help="group chats (default: one per 50 users)")
    p.add_argument("--fillers", type=int, default=defaults.fillers, help="long articles loaded at the start")
    p.add_argument("--reply-timeout", type=float, default=defaults.reply_timeout_s, help="longest wait for a reply")
    p.add_argument(
        "--rss-growth-limit",
        type=float,
        default=defaults.rss_growth_limit_pct,
        help="allowed growth of the median RSS from the second quarter to the last, in %% (default %(default)s)",
    )
    p.add_argument(
        "--rss-trend-limit",
        type=float,
        default=defaults.rss_trend_limit_pct,
        help="allowed growth of the median RSS from the third quarter to the last, in %% (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--work", type=Path, help="keep the data dir and the bot's log here (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", type=Path, help="write a markdown section for docs/benchmarks.md to this file")
    args = p.parse_args(argv)
    if args.users < 1 or args.seconds <= 0:
        p.error("--users and --seconds must be positive")
    cfg = SoakConfig(
        users=args.users,
        seconds=args.seconds,
        think_s=(min(args.think), max(args.think)),
        groups=args.groups,
        fillers=args.fillers,
        reply_timeout_s=args.reply_timeout,
        rss_growth_limit_pct=args.rss_growth_limit,
        rss_trend_limit_pct=args.rss_trend_limit,
        seed=args.seed,
    )

    def log(msg: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    log(f"{cfg.users} users for {cfg.seconds:.0f} s; hard deadline {cfg.hard_deadline_s:.0f} s")
    with tempfile.TemporaryDirectory(prefix="articlebot-soak-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run_soak(cfg, work, log=log)
    command = "python -m scripts.soak_bot " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.markdown(command.strip()), encoding="utf-8")
        log(f"wrote {args.out}")
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
