"""`articlebot eval` on a tiny fixture set in all three formats, and the metric functions by hand.

The fixture articles are short and about unrelated made-up things, and each question repeats the words
of the sentence that answers it, so the right figures are known: the gold article ranks first for every
question, the first quote holds the answer, off-topic questions are refused.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from engine.errors import UserError
from evaluation import datasets, metrics, tune
from evaluation.datasets import Question
from evaluation.runner import Outcome

FIX = Path(__file__).parent / "fixtures" / "eval"
SQUAD = FIX / "squad2.json"
RTQA = FIX / "realtimeqa"
JSONL = FIX / "questions.jsonl"
# The fixture's answers score well above this and its off-topic questions far below; fixed here so that
# retuning the shipped threshold does not change what these tests expect.
THRESHOLD = ("--set", "answer.min_confidence=0.3")


@pytest.fixture
def shared_model(monkeypatch: pytest.MonkeyPatch, embedder: Any) -> None:
    """main() builds its own engines; give them the session's model instead of loading it again."""
    import engine.service

    monkeypatch.setattr(engine.service, "Embedder", lambda *a, **k: embedder)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


# ---- the command on the three formats ----------------------------------------------------------------


def test_squad2_fixture_scores_what_it_was_built_to(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    rep = run_json(capsys, "eval", SQUAD, "--cache-dir", tmp_path / "cache", *THRESHOLD)
    assert (rep["articles"], rep["questions"], rep["answerable"]) == (9, 12, 10)
    assert rep["retrieval"] == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "n": 10}
    assert rep["answer"]["support"] == 1.0
    assert rep["answer"]["answered"] == 1.0
    assert rep["abstention"]["end_to_end"] == 1.0  # both off-topic questions refused, all others answered
    assert rep["abstention"]["always_abstain"] == pytest.approx(2 / 12, abs=1e-4)
    assert rep["abstention"]["auroc"] == 1.0
    assert rep["cost"]["ingest_cached"] is False
    assert rep["cost"]["ask_ms_median"] > 0


def test_a_rerun_reuses_the_cached_ingest(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    first = run_json(capsys, "eval", SQUAD, "--cache-dir", tmp_path, "--mode", "bm25")
    second = run_json(capsys, "eval", SQUAD, "--cache-dir", tmp_path, "--mode", "bm25")
    assert (first["cost"]["ingest_cached"], second["cost"]["ingest_cached"]) == (False, True)
    assert second["cost"]["ingest_s"] == first["cost"]["ingest_s"]  # the time measured when it was built
    assert second["retrieval"] == first["retrieval"]
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 1


def test_split_dev_is_the_first_eight_titles(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    test = run_json(capsys, "eval", SQUAD, "--split", "test", "--no-cache")
    dev = run_json(capsys, "eval", SQUAD, "--split", "dev", "--no-cache")
    assert (test["questions"], test["answerable"]) == (2, 1)  # Pennock bridge, the 9th title
    assert (dev["questions"], dev["answerable"]) == (10, 9)
    assert test["articles"] == dev["articles"] == 9  # every paragraph is in the collection either way


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_each_mode_runs_and_is_reported(capsys: Any, shared_model: None, tmp_path: Path, mode: str) -> None:
    rep = run_json(capsys, "eval", SQUAD, "--cache-dir", tmp_path, "--mode", mode)
    assert rep["settings"]["mode"] == mode
    assert rep["retrieval"]["recall@5"] == 1.0


def test_refusing_everything_scores_as_refusals(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    rep = run_json(capsys, "eval", SQUAD, "--cache-dir", tmp_path, "--set", "answer.min_confidence=1.0")
    assert rep["settings"]["min_confidence"] == 1.0
    assert rep["abstention"]["refused"] == 1.0
    assert rep["answer"]["support"] == 0.0 and rep["answer"]["answered"] == 0.0
    assert rep["answer"]["exact_match"] == 0.0 and rep["answer"]["f1"] == 0.0
    assert rep["abstention"]["end_to_end"] == pytest.approx(2 / 12, abs=1e-4)  # only the unanswerable right
    assert rep["answer"]["support_before_abstention"] == 1.0  # it still knew which sentence it would cite
    assert rep["retrieval"]["recall@1"] == 1.0  # retrieval does not depend on the threshold


def test_table_output(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "eval", SQUAD, "--cache-dir", tmp_path, "--limit", "4")
    assert code == 0
    assert "squad2.json (squad2, split all), mode hybrid: 4 questions" in out
    assert "100.0 / 100.0 / 100.0" in out  # recall@1/5/10
    assert "ask latency median / p95 / p99" in out


def test_jsonl_against_the_current_collection(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, _, err = run(capsys, "--data-dir", data, "add", FIX / "articles")
    assert code == 0, err
    rep = run_json(capsys, "--data-dir", data, "eval", JSONL, *THRESHOLD)
    assert (rep["format"], rep["questions"], rep["answerable"], rep["articles"]) == ("jsonl", 6, 5, 4)
    assert rep["retrieval"] == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "n": 4}  # 4 name an article
    assert rep["answer"]["support"] == 1.0
    assert rep["abstention"]["end_to_end"] == 1.0
    assert rep["cost"]["ingest_s"] is None  # nothing was ingested
    today = datetime.datetime.now(datetime.UTC).date().isoformat()  # the file gives no days: asked today
    assert rep["asked"] == {"first": None, "last": None, "dated": 0, "today": today, "undated": 6}


def test_jsonl_naming_a_missing_article_is_an_error(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(capsys, "--data-dir", data, "add", FIX / "articles" / "kessel_bakery.txt")[0] == 0
    code, _, err = run(capsys, "--data-dir", data, "eval", JSONL, "--json")
    assert code == 1
    assert "'Marrowick Lighthouse'" in err and "no article" in err


def test_jsonl_on_an_empty_collection_says_what_to_do(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    code, _, err = run(capsys, "--data-dir", tmp_path / "empty", "eval", JSONL)
    assert code == 1 and "is empty" in err and "articlebot add" in err


def test_realtimeqa_fixture(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    rep = run_json(capsys, "eval", RTQA, "--cache-dir", tmp_path, *THRESHOLD)
    assert rep["format"] == "realtimeqa"
    assert (rep["articles"], rep["questions"]) == (4, 2)  # the empty article skipped; q2 has no gold article
    assert rep["retrieval"]["recall@1"] == 1.0
    assert rep["answer"]["support"] == 1.0
    assert rep["abstention"]["refused"] == 0.0
    assert "end_to_end" not in rep["abstention"]  # no unanswerable questions in this set
    assert rep["asked"] == {"first": "2022-01-06", "last": "2022-01-06", "dated": 2, "today": None, "undated": 0}


def test_off_collection_questions_are_refused(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    # The SQuAD fixture's answerable questions against the news fixture: 5 of 10 are about articles that
    # are there (lighthouse x2, volcano, chess, bakery), the other 5 about things it does not hold.
    rep = run_json(capsys, "eval", SQUAD, "--against", RTQA, "--cache-dir", tmp_path, *THRESHOLD)
    assert (rep["questions"], rep["articles"]) == (10, 4)
    assert rep["refused"] == 0.5


def test_tune_picks_on_dev_and_reports_test(capsys: Any, shared_model: None, tmp_path: Path) -> None:
    result = run_json(capsys, "eval", SQUAD, "--tune", "--cache-dir", tmp_path)
    chosen = result["chosen"]
    assert chosen["index"]["fusion"] in ("convex", "rrf") and chosen["label"]
    assert 0.0 <= chosen["min_confidence"] <= 1.0
    grid = result["fusion_grid_dev"]
    assert len(grid) == len(tune.SHARES) + len(tune.RRF_KS) * len(tune.WEIGHTS)
    assert grid[0]["index"] == chosen["index"]  # the best row on dev is the one chosen
    assert [r["recall@1"] + r["recall@5"] / 2 for r in grid] == sorted(
        (r["recall@1"] + r["recall@5"] / 2 for r in grid), reverse=True
    )
    assert result["reports"]["test"]["questions"] == 2 and result["reports"]["dev"]["questions"] == 10
    assert result["reports"]["all"]["retrieval"]["recall@1"] == 1.0


def test_usage_errors_name_the_problem(capsys: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "answers": ["x"]}\n{"question": 3}\n', encoding="utf-8")
    code, _, err = run(capsys, "eval", bad)
    assert code == 1 and f"{bad} line 2:" in err and '"question"' in err
    code, _, err = run(capsys, "eval", JSONL, "--split", "dev")
    assert code == 1 and "squad2 and realtimeqa" in err
    code, _, err = run(capsys, "eval", SQUAD, "--set", "answer.min_confidence=2")
    assert code == 1 and "min_confidence" in err
    code, _, err = run(capsys, "eval", tmp_path / "nope.json")
    assert code == 1 and "nope.json" in err


# ---- loaders -------------------------------------------------------------------------------------------


def test_realtimeqa_loader_prefers_gold_text_and_canonical_urls() -> None:
    s = datasets.load_realtimeqa(RTQA)
    docs = dict(s.documents or ())
    lighthouse = docs["https://news.example.com/2022/01/01/marrowick-lighthouse/index.html"]
    assert lighthouse.text.startswith("The Marrowick lighthouse was built in 1887")  # not the gcs ad text
    assert lighthouse.title == "Marrowick lighthouse turns 135 - Example News"  # the gcs title
    assert lighthouse.published == "2022-01-01" and lighthouse.byline == "Ann Writer"
    assert "https://news.example.com/2022/01/04/kessel-bakery/index.html" in docs  # utm_source dropped
    assert [q.answers for q in s.questions] == [("Tobias Fenwright",), ("1962",)]
    assert [q.asked for q in s.questions] == [datetime.date(2022, 1, 6)] * 2  # the quiz's "2022/01/06"


def test_questions_carry_the_day_they_are_asked(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "Who won?", "answers": ["Petro"], "asked": "2022-06-20"}\n'
        '{"question": "Where?", "answers": []}\n',
        encoding="utf-8",
    )
    dated, undated = datasets.load_jsonl(path).questions
    assert (dated.asked, undated.asked) == (datetime.date(2022, 6, 20), None)  # None: asked today
    for bad in ('"20.06.2022"', "20220620", '"2022-13-01"'):
        path.write_text(f'{{"question": "Who won?", "answers": ["x"], "asked": {bad}}}\n', encoding="utf-8")
        with pytest.raises(UserError, match=r'line 1: "asked" must be .*YYYY-MM-DD'):
            datasets.load_jsonl(path)
    # The off-collection check asks its questions on the collection's question days, in turn; a question
    # with a day of its own keeps it.
    june = [Question(f"n{d}", "?", (), (), asked=datetime.date(2022, 6, d)) for d in (16, 23)]
    squad = [q for q in datasets.load_squad2(SQUAD).questions if q.answerable][:3]
    days = [q.asked for q in datasets.asked_on_days_of([*squad, dated], [*june, undated])]
    assert days == [datetime.date(2022, 6, d) for d in (16, 23, 16, 20)]
    assert datasets.asked_on_days_of(squad, squad) == tuple(squad)  # no days to take: asked today


def test_realtimeqa_split_is_by_week_and_keeps_every_article(tmp_path: Path) -> None:
    # The fixture's one week made two: its first question stays in week one, the rest move to week two.
    for kind in ("qa", "gold", "gcs"):
        lines = (RTQA / f"20220107_{kind}.jsonl").read_text(encoding="utf-8").splitlines()
        first, rest = (lines[:1], lines[1:]) if kind != "gcs" else (lines, [])
        (tmp_path / f"20220107_{kind}.jsonl").write_text("\n".join(first) + "\n", encoding="utf-8")
        (tmp_path / f"20220114_{kind}.jsonl").write_text("\n".join(rest) + "\n", encoding="utf-8")
    every = datasets.load_realtimeqa(tmp_path)
    dev, test = datasets.load_realtimeqa(tmp_path, "dev"), datasets.load_realtimeqa(tmp_path, "test")
    assert [q.id for q in dev.questions] == ["20220107_0"] and [q.id for q in test.questions] == ["20220107_1"]
    assert [q.id for q in every.questions] == ["20220107_0", "20220107_1"]
    assert dev.documents == test.documents == every.documents  # always asked against the whole collection
    assert len(every.documents or ()) == len(datasets.load_realtimeqa(RTQA).documents or ())
    with pytest.raises(UserError, match="unknown split"):
        datasets.load_realtimeqa(tmp_path, "train")


def test_template_gold_finds_questions_whose_gold_is_a_page_template(tmp_path: Path) -> None:
    s = datasets.load_realtimeqa(RTQA)
    assert datasets.template_gold(s) == set()  # every gold article has text of its own
    # Question 1's gold page now holds the text two other pages hold too: an ad form, not an article.
    lines = (RTQA / "20220107_gold.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    ad = "1. How relevant is this ad to you? Video player was slow to load content."
    rows[1]["search_result"][0]["text"] = ad
    rows[0]["search_result"].append({"url": "https://news.example.com/ad-1", "text": ad})
    rows[0]["search_result"].append({"url": "https://news.example.com/ad-2", "text": ad})
    for kind in ("qa", "gcs"):
        (tmp_path / f"20220107_{kind}.jsonl").write_text((RTQA / f"20220107_{kind}.jsonl").read_text("utf-8"), "utf-8")
    (tmp_path / "20220107_gold.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    changed = datasets.load_realtimeqa(tmp_path)
    assert datasets.template_gold(changed) == {"20220107_1"}  # question 0 keeps its lighthouse article
    assert datasets.template_gold(changed, min_urls=4) == set()


def test_squad_loader_titles_and_limit() -> None:
    s = datasets.load_squad2(SQUAD)
    assert s.documents is not None and s.documents[0][0] == "Marrowick Lighthouse \u00b61"
    assert [q.answerable for q in s.questions].count(False) == 2
    picked = s.limited(3).questions
    assert [q.id for q in picked] == ["q1", "q5", "q9"]  # spread over the set, not the first three


# ---- metrics by hand -----------------------------------------------------------------------------------


def test_squad_normalisation_exact_match_and_f1() -> None:
    assert metrics.normalize_answer("The  Cat's   hat!") == "cats hat"
    assert metrics.exact_match("Tobias Fenwright [1].", ["tobias fenwright"]) == 1.0
    assert metrics.exact_match("Tobias [1][2]", ["Tobias Fenwright"]) == 0.0
    # pred {big, red, dog} vs gold {red, dog}: P = 2/3, R = 1, F1 = 0.8
    assert metrics.f1_score("the big red dog", ["no match", "red dog"]) == pytest.approx(0.8)
    assert metrics.f1_score("anything", []) == 0.0


@pytest.mark.parametrize(
    ("quote", "gold", "expected"),
    [
        ("This killed 36 civilians.", "36", True),
        ("This killed 360 civilians.", "36", False),
        ("It was built in 1936.", "36", False),
        ("The rate was 36.5 percent.", "36", False),
        ("Some 36, said the report.", "36", True),
        ("It cost 1,000,000 dollars.", "1,000", False),
        ("It cost 1,000.", "1,000", True),
        ("The show \u201cSquid Game\u201d returns.", '"squid game"', True),
        ("The SQUID GAME returns.", "\u201cSquid Game\u201d", True),  # quotes around a title are not the answer
        ("The squid gamer returns.", "squid game", True),  # plain text answers are substrings
        ("Netflix renewed squid game.", "Squid Game", True),
        ("Fourteen kilometres\u00a0high", "fourteen kilometres high", True),
    ],
)
def test_support_matching(quote: str, gold: str, expected: bool) -> None:
    assert metrics.contains_answer(quote, [gold]) is expected


def test_auroc_by_hand() -> None:
    # positives {0.9, 0.3}, negatives {0.8, 0.1}: pairs won 0.9>0.8, 0.9>0.1, 0.3>0.1; lost 0.3<0.8 -> 3/4
    assert metrics.auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == pytest.approx(0.75)
    assert metrics.auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)  # a tie counts half
    assert metrics.auroc([0.2, 0.4, 0.6], [False, True, True]) == pytest.approx(1.0)
    assert metrics.auroc([0.2, 0.4], [True, True]) is None


def test_ranking_helpers_and_percentiles() -> None:
    assert metrics.collapse([3, 3, 1, 3, 2]) == [3, 1, 2]
    assert metrics.recall_at([3, 1, 2], [2], 2) == 0.0 and metrics.recall_at([3, 1, 2], [2, 9], 3) == 1.0
    assert metrics.percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert metrics.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert metrics.percentile([], 50) is None


def _outcome(answerable: bool, confidence: float, supported: bool) -> Outcome:
    q = Question(id="x", text="q", answers=("gold",) if answerable else (), gold=(), answerable=answerable)
    quote = "the gold quote" if supported else "something else"
    return Outcome(q, (), (), False, confidence, "t", quote, quote, 1.0)


def test_threshold_is_picked_for_end_to_end_accuracy() -> None:
    outs = [
        _outcome(True, 0.9, True),
        _outcome(True, 0.7, True),
        _outcome(True, 0.6, False),  # answerable but the quote is wrong: better refused
        _outcome(False, 0.5, False),
        _outcome(False, 0.2, False),
    ]
    assert tune.end_to_end_at(outs, 0.0) == pytest.approx(2 / 5)
    threshold, acc = tune.pick_threshold(outs)
    # Refusing both unanswerable ones is right; the wrong answer at 0.6 is wrong refused or not: 4 of 5.
    assert acc == pytest.approx(4 / 5)
    assert threshold == pytest.approx(0.51)  # the lowest threshold that refuses the 0.5


def test_a_threshold_applied_afterwards_equals_asking_with_it(embedder: Any, tmp_path: Path) -> None:
    """The tuning scores every threshold from one run at 0; that is only honest if the answer step refuses
    exactly when the confidence is below the threshold, which this checks on real answers."""
    from engine.config import DEFAULT_CONFIG, load_settings
    from evaluation import runner

    settings = load_settings(DEFAULT_CONFIG, tmp_path / "data")
    evalset = datasets.load_squad2(SQUAD)
    prep = runner.prepare(evalset, settings, cache_root=tmp_path / "cache", embedder=embedder)
    engines = [prep.engine_for(runner.with_answer(settings, min_confidence=t)) for t in (0.0, 0.5)]
    try:
        at_zero, real = (runner.ask_all(prep, evalset.questions, engine=e, recall=False) for e in engines)
        derived = runner.apply_threshold(list(at_zero), 0.5)
        real = list(real)
        assert 0 < sum(o.abstained for o in real) < len(real)  # the threshold refuses some, not all
        assert [(o.abstained, o.quote, o.candidate) for o in derived] == [
            (o.abstained, o.quote, o.candidate) for o in real
        ]
        assert [o.confidence for o in derived] == pytest.approx([o.confidence for o in real])
    finally:
        for e in engines:
            e.store.close()
        prep.close()


def test_an_interrupted_ingest_resumes_where_it_stopped(
    capsys: Any, shared_model: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedding the news collection takes many minutes; a rerun after an interruption must not redo it."""
    import engine.service
    from evaluation import runner

    monkeypatch.setattr(runner, "INGEST_BATCH", 2)
    real_add = engine.service.Engine.add_documents
    calls: list[int] = []

    def add_then_fail(self: Any, docs: Any, *, added_by: str) -> Any:
        calls.append(len(docs))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second batch
        return real_add(self, docs, added_by=added_by)

    monkeypatch.setattr(engine.service.Engine, "add_documents", add_then_fail)
    code, _, _ = run(capsys, "eval", RTQA, "--cache-dir", tmp_path, "--json")
    assert code == 130
    monkeypatch.setattr(engine.service.Engine, "add_documents", real_add)
    code, out, err = run(capsys, "eval", RTQA, "--cache-dir", tmp_path, "--json", *THRESHOLD)
    assert code == 0, err
    assert "resuming: 2 stored" in err
    rep = json.loads(out)
    assert rep["articles"] == 4 and rep["retrieval"]["recall@1"] == 1.0
