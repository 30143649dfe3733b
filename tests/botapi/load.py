"""Simulated users asking a running bot questions through the emulator: throughput, latency, and a check
that every question got exactly one reply in its own chat."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.botapi.server import BotApiEmulator

QUESTIONS = (
    "How many civilians reportedly died?",
    "Who did Sergey Lavrov meet?",
    "When will Russia and the US hold talks?",
    "What did NATO say about coordination?",
    "How many missions did the Russian aircraft conduct?",
    "What is the capital of Australia?",
    "Which towns did the airstrikes hit?",
)


@dataclass
class LoadReport:
    users: int
    questions_per_user: int
    sent: int = 0
    replies: int = 0
    lost: int = 0
    duplicated: int = 0
    timeouts: int = 0
    wall_s: float = 0.0
    replies_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.timeouts == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        lat = self.latency_ms
        return (
            f"{self.users} users x {self.questions_per_user} questions: {self.replies}/{self.sent} replies in "
            f"{self.wall_s:.1f} s = {self.replies_per_s:.1f} replies/s; latency p50 {lat.get('p50', 0):.0f} ms, "
            f"p95 {lat.get('p95', 0):.0f} ms, p99 {lat.get('p99', 0):.0f} ms, max {lat.get('max', 0):.0f} ms; "
            f"lost {self.lost}, duplicated {self.duplicated}, timed out {self.timeouts}"
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run_load(
    api: BotApiEmulator,
    *,
    users: int,
    questions: int,
    first_user_id: int = 10_000_000,
    reply_timeout: float = 300.0,
    quiet_s: float = 1.5,
    texts: tuple[str, ...] = QUESTIONS,
) -> LoadReport:
    """Each user (own private chat) sends `questions` of `texts` one after another, waiting for each reply."""
    report = LoadReport(users, questions)
    latencies: list[float] = []
    lock = threading.Lock()
    baseline = {first_user_id + i: api.mark(first_user_id + i) for i in range(users)}

    def user(i: int) -> None:
        uid = first_user_id + i
        for k in range(questions):
            question = texts[(i + k) % len(texts)]
            sent_at = time.monotonic()
            api.send_text(uid, uid, question)
            try:
                got = api.wait_messages(uid, k + 1, after=baseline[uid], timeout=reply_timeout)
            except TimeoutError:
                with lock:
                    report.timeouts += 1
                return
            with lock:
                latencies.append((got[k].at - sent_at) * 1000)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=users) as pool:
        list(pool.map(user, range(users)))
    last_reply = max((m.at for uid in baseline for m in api.messages(uid)[baseline[uid] :]), default=start)
    report.wall_s = max(last_reply - start, 1e-9)
    time.sleep(quiet_s)  # late duplicates would show up here
    report.sent = len(latencies) + report.timeouts
    for uid, mark in baseline.items():
        got = len(api.messages(uid)) - mark
        report.replies += got
        report.lost += max(0, questions - got)
        report.duplicated += max(0, got - questions)
    report.replies_per_s = report.replies / report.wall_s
    report.latency_ms = {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=0.0),
        "mean": statistics.fmean(latencies) if latencies else 0.0,
    }
    return report
