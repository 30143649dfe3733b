"""The soak run of issue 5, kept short for `make test`: 20 users for 40 s against a real `articlebot serve`.

Each user waits for its reply, then thinks 3-8 s (busier than the full run, so 40 s see ~100 actions);
the first action of each user is fixed so that every kind is exercised (questions, off-topic questions,
/add of text and files, /list paging, Show passage, /help, group chatter that must be ignored) and the
admin's /reindex lands in the middle. The full length (200 users, 10 minutes) is `scripts/soak_bot.py`,
run by `make bench`. One run for the module; each test checks one promise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.botapi.soak import GROUP_MIX, PRIVATE_MIX, SoakConfig, SoakReport, run_soak

pytestmark = pytest.mark.slow

# 40 s cannot tell warm-up from a trend as well as 10 minutes: the quarters are 10 s long and the reindex
# step (see SoakConfig) lands in the third. The bounds here catch a gross leak (hundreds of MB in 40 s);
# the full run applies the tight ones.
SHORT = SoakConfig(
    users=20,
    seconds=40,
    think_s=(3.0, 8.0),
    browse_s=(0.5, 2.0),
    groups=2,
    group_members=4,
    fillers=8,
    filler_words=150,
    reply_timeout_s=60.0,
    setup_timeout_s=240.0,
    # Q2->Q4 spans the reindex. Until the engine gave onnxruntime's arena back after a job, the reindex kept
    # ~200 MB (48 % of the int8 bot's ~430 MB); the 10-minute soak after that change measured 3.5 %. The
    # bound stays loose until a short run has measured it too. The leak check is Q3->Q4, after the reindex.
    rss_growth_limit_pct=60.0,
    rss_trend_limit_pct=15.0,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakReport]:
    work = tmp_path_factory.mktemp("soak")
    result = run_soak(SHORT, work)
    yield result
    if not result.ok:  # the whole picture once, beside whichever test failed
        print(result.summary())
        print((work / "bot.log").read_text(encoding="utf-8", errors="replace")[-5000:])


def test_every_kind_of_action_was_exercised_and_answered(report: SoakReport) -> None:
    kinds = set(report.latency_ms)
    private = set(PRIVATE_MIX) - {"add_dup"}  # a re-sent note needs an earlier note: not guaranteed
    group = {f"group_{k}" for k in GROUP_MIX} - {"group_chatter", "group_other_bot"}  # these get no reply
    assert private | group | {"page", "passage", "reindex", "stats"} <= kinds, report.summary()
    assert report.actions >= 60, report.summary()
    assert report.replies == report.expected_replies, report.summary()


def test_every_message_got_exactly_one_reply(report: SoakReport) -> None:
    assert (report.lost, report.duplicated, report.timeouts) == (0, 0, 0), report.summary()


def test_no_reply_went_to_the_wrong_chat_or_to_ignored_chatter(report: SoakReport) -> None:
    assert report.wrong_chat == 0, report.summary()
    assert report.unexpected == 0, report.summary()  # includes replies to chatter and to /cmd@otherbot
    assert report.bad_content == 0, report.summary()  # e.g. a list with another user's buttons


def test_the_reindex_finished_and_edited_its_progress_message(report: SoakReport) -> None:
    assert report.reindex.get("done"), report.summary()
    assert report.reindex["edits"] >= 1
    assert report.reindex["articles"] >= report.articles_seeded


def test_every_confirmed_article_is_in_the_collection(report: SoakReport) -> None:
    assert report.articles_added > 0, report.summary()
    assert report.articles_final == report.articles_seeded + report.articles_added, report.summary()


def test_memory_did_not_keep_growing(report: SoakReport) -> None:
    assert report.rss_growth_pct is not None and report.rss_trend_pct is not None, report.summary()
    assert report.rss_growth_pct <= SHORT.rss_growth_limit_pct, report.summary()
    assert report.rss_trend_pct <= SHORT.rss_trend_limit_pct, report.summary()
    peak, start = report.rss_mb["peak"], report.rss_mb["start"]
    assert peak is not None and start is not None and peak >= start


def test_nothing_crashed(report: SoakReport) -> None:
    assert report.log_problems == [], "\n\n".join(report.log_problems[:3])
    assert report.api_errors == [], report.api_errors[:5]
    assert report.bot_exit_code == 0


def test_the_report_gives_the_figures_for_the_benchmarks_page(report: SoakReport, tmp_path: Path) -> None:
    section = report.markdown("python scripts/soak_bot.py --users 20 --seconds 40")
    assert section.startswith("## Bot soak run")
    assert "**Result: passed.**" in section, report.summary()
    for figure in ("replies/s", "bot RSS start / middle / end / peak", "| ask |", "| all |", "load average"):
        assert figure in section
    assert report.replies_per_s > 0 and report.latency_ms["all"].p99 >= report.latency_ms["all"].p50
    assert report.ok, report.summary()
