#!/usr/bin/env python
"""Load test: a real `articlebot serve` process against the loopback Bot API, N users x M questions.

Reports replies/s and latency p50/p95/p99 and checks that every question got exactly one reply in its own
chat. Traffic stays on 127.0.0.1; every wait is bounded. Run by `make bench`:

    .venv/bin/python scripts/loadtest_bot.py --users 100 --questions 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.botapi import BotApiEmulator  # noqa: E402
from tests.botapi.load import QUESTIONS, run_load  # noqa: E402
from tests.botapi.process import BotProcess, synthetic_article, write_config  # noqa: E402

ADMIN = 1001
DEFAULT_SAMPLE = ROOT.parent / "shared" / "articles" / "russia-us-talks-syria-airstrikes.txt"


def peak_rss_mb(pid: int) -> float | None:
    """The bot's peak resident memory (VmHWM), where /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def seed(api: BotApiEmulator, sample: Path, extra_articles: int) -> None:
    """The sample article and some synthetic ones, uploaded by the admin as documents."""
    docs = [(sample.name, sample.read_bytes())] if sample.exists() else []
    docs += [
        (f"harbour-{i}.txt", synthetic_article(800, seed=i, title=f"Harbour report {i}")) for i in range(extra_articles)
    ]
    for name, data in docs:
        mark = api.mark(ADMIN)
        api.send_document(ADMIN, ADMIN, name, data)
        [reply] = api.wait_messages(ADMIN, 1, after=mark, timeout=300)
        if not reply.text.startswith("Added article"):
            raise SystemExit(f"could not seed {name}: {reply.text}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--questions", type=int, default=5, help="questions per user, asked one after another")
    p.add_argument("--articles", type=int, default=10, help="synthetic articles added beside the sample")
    p.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    p.add_argument("--timeout", type=float, default=300.0, help="longest wait for one reply, seconds")
    p.add_argument("--text", help="send this instead of the questions (e.g. /help: the front end alone)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="articlebot-load-") as tmp, BotApiEmulator() as api:
        work = Path(tmp)
        config = write_config(work / "config.yaml", telegram={"rate_limit_per_minute": 1000})
        bot = BotProcess(api, config, work / "data", work / "bot.log", admins=str(ADMIN))
        try:
            t0 = time.monotonic()
            bot.wait_ready()
            print(f"bot ready in {time.monotonic() - t0:.1f} s; seeding articles", file=sys.stderr)
            seed(api, args.sample, args.articles)
            print(f"running {args.users} users x {args.questions} questions", file=sys.stderr)
            texts = (args.text,) if args.text else QUESTIONS
            report = run_load(api, users=args.users, questions=args.questions, reply_timeout=args.timeout, texts=texts)
            rss = peak_rss_mb(bot.proc.pid)
        finally:
            code = bot.terminate()
        failures = [f"{m}: {d}" for m, d in api.errors if m != "setMyCommands"]
        result = report.as_dict() | {"bot_peak_rss_mb": rss, "bot_exit_code": code, "api_errors": failures}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(report.summary())
            print(f"bot peak RSS {rss:.0f} MB; exit code {code}" if rss else f"bot exit code {code}")
            for failure in failures:
                print(f"Bot API error: {failure}")
        return 0 if report.ok and code == 0 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
