"""The long crash test of issue 5, for `make bench`: SIGKILL writers many times and check what survives.

Same campaign as tests/test_crash.py (tests/_crash_harness.py), at full length: `--kills` killed writes
(add one file, add a batch, add a directory, remove, reindex), half at random delays within each write's
measured duration, the rest at the narrow windows (inside the transaction, right after COMMIT, with a
temp index file on disk, between the index's two renames), and every `--cli-every`-th one the real
`articlebot add` console script killed mid-batch. After each kill a fresh Engine opens the data dir and
every check runs; the run stops at the first problem.

    python -m scripts.crash_soak [--kills 50] [--seed N] [--cli-every 5] [--json out.json]

Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50, help="killed writes (default 50)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--cli-every", type=int, default=5, help="every Nth kill is of the real CLI (0: never)")
    p.add_argument("--targeted-every", type=int, default=2, help="every Nth kill at a named window (0: never)")
    p.add_argument("--max-articles", type=int, default=20, help="collection size kept below this")
    p.add_argument("--deadline-min", type=float, default=90.0, help="stop after this many minutes")
    p.add_argument("--work", type=Path, default=None, help="keep the data dir here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    args = p.parse_args(argv)
    if args.kills < 1:
        p.error("--kills must be at least 1")

    from index.embedder import Embedder
    from tests._crash_harness import Campaign

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    work = args.work or Path(tempfile.mkdtemp(prefix="articlebot-crash-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[crash {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    log(f"seed {seed}, {args.kills} kills, work dir {work}")
    embedder = Embedder("packaged:all-MiniLM-L6-v2")  # for the checks after each restart
    campaign = Campaign(work, embedder, seed=seed, log=log, max_articles=args.max_articles)
    report = campaign.run(
        args.kills,
        deadline_s=args.deadline_min * 60,
        targeted_every=args.targeted_every,
        cli_every=args.cli_every,
    )
    print(report.summary())
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if args.json:
        data = asdict(report)
        data["ops"], data["points"] = dict(report.ops), dict(report.points)
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
