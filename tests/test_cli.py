"""The CLI contract a user sees: output, JSON shapes, exit codes (0 ok, 1 user error, 2 usage)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from engine.service import DENSE_NAME
from tests.conftest import ROOT, SAMPLE_QUOTE

QUESTION = "How many civilians reportedly died?"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_ask_list_remove(capsys: pytest.CaptureFixture[str], data_dir: Path, sample_path: Path) -> None:
    code, out, _ = run(capsys, data_dir, "add", str(sample_path))
    assert code == 0
    assert out.startswith("added      #1  Russia, US to Hold Talks on Coordinating Airstrikes in Syria")

    code, out, _ = run(capsys, data_dir, "ask", QUESTION, "--json")
    assert code == 0
    reply = json.loads(out)
    assert set(reply) >= {"question", "answer", "abstained", "citations", "timings_ms"}
    assert reply["abstained"] is False
    assert reply["answer"].startswith("36 civilians")
    first = reply["citations"][0]
    assert set(first) >= {"n", "article_id", "title", "url", "quote", "score"}
    assert first["n"] == 1 and first["article_id"] == 1
    assert first["quote"] == SAMPLE_QUOTE
    text = sample_path.read_text(encoding="utf-8")
    assert all(c["quote"] in text for c in reply["citations"])

    code, out, _ = run(capsys, data_dir, "ask", "What is the capital of Australia?", "--json")
    reply = json.loads(out)
    assert code == 0 and reply["abstained"] is True and reply["citations"] == []

    code, out, _ = run(capsys, data_dir, "list", "--json")
    listed = json.loads(out)
    assert [a["id"] for a in listed] == [1] and listed[0]["passages"] >= 1

    code, out, _ = run(capsys, data_dir, "remove", "1")
    assert code == 0 and out.startswith("removed    #1")
    code, out, _ = run(capsys, data_dir, "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, data_dir, "ask", QUESTION, "--json")
    assert json.loads(out)["abstained"] is True


def test_text_answer_layout(capsys: pytest.CaptureFixture[str], data_dir: Path, sample_path: Path) -> None:
    run(capsys, data_dir, "add", str(sample_path))
    code, out, _ = run(capsys, data_dir, "ask", QUESTION)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("36 civilians") and "[1]" in lines[0]
    assert lines[1].startswith("[1] \u201c" + SAMPLE_QUOTE[:40])
    assert "Russia, US to Hold Talks" in out


def test_duplicates_are_reported_not_stored(
    capsys: pytest.CaptureFixture[str], data_dir: Path, sample_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.txt"
    # Same article, different spacing: the normalised content hash catches it.
    copy.write_text(sample_path.read_text(encoding="utf-8").replace(". ", ".  "), encoding="utf-8")
    code, out, _ = run(capsys, data_dir, "add", str(sample_path), str(copy))
    assert code == 0
    assert out.splitlines()[1].startswith("duplicate  #1")
    code, out, _ = run(capsys, data_dir, "add", str(sample_path))
    assert code == 0 and out.startswith("duplicate  #1")
    run(capsys, data_dir, "list", "--json")
    code, out, _ = run(capsys, data_dir, "list", "--json")
    assert len(json.loads(out)) == 1


def test_bad_items_fail_alone(
    capsys: pytest.CaptureFixture[str], data_dir: Path, sample_path: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n\n", encoding="utf-8")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02\xff" * 100)
    code, out, err = run(
        capsys, data_dir, "add", str(tmp_path / "missing.txt"), str(empty), str(binary), str(sample_path)
    )
    assert code == 1
    assert "added      #1" in out
    errors = err.strip().splitlines()
    assert len(errors) == 3
    assert "missing.txt" in errors[0] and "empty.txt" in errors[1] and "blob.txt" in errors[2]
    code, out, _ = run(capsys, data_dir, "list", "--json")
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize(
    ("question", "reason"), [("   ", "empty"), ("x" * 1001, "1001 characters")]
)
def test_bad_questions_refused(
    capsys: pytest.CaptureFixture[str], data_dir: Path, question: str, reason: str
) -> None:
    code, out, err = run(capsys, data_dir, "ask", question)
    assert code == 1 and out == ""
    assert reason in err


def test_remove_unknown_and_usage(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, _, err = run(capsys, data_dir, "remove", "42")
    assert code == 1 and "42" in err
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(data_dir), "remove", "not-a-number"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_options_after_the_command_and_pasted_text(
    capsys: pytest.CaptureFixture[str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pasted = "Harbour note\nThe caf\xe9's crane lifted 36 containers on Monday.\n".encode("cp1252")  # not UTF-8
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pasted), encoding="utf-8"))
    code = main(["add", "-", "--data-dir", str(data_dir)])
    out, _ = capsys.readouterr()
    assert code == 0 and out == "added      #1  Harbour note  (1 passage)\n", out
    code = main(["list", "--json", "--data-dir", str(data_dir)])
    out, _ = capsys.readouterr()
    assert code == 0 and [a["title"] for a in json.loads(out)] == ["Harbour note"]
    code, _, err = run(capsys, data_dir, "add", "--title", "Both", "a.txt", "b.txt")
    assert code == 1 and "--title names one article, and 2 sources were given" in err
    code, _, err = run(capsys, data_dir, "add", "-", "a.txt")
    assert code == 1 and "'-'" in err
    for k in ("0", "-3", "two"):
        with pytest.raises(SystemExit) as exc:
            main(["--data-dir", str(data_dir), "ask", "-k", k, QUESTION])
        assert exc.value.code == 2
    assert "is not a whole number of at least 1" in capsys.readouterr().err


def test_a_reader_that_stops_reading_is_not_an_error(tmp_path: Path) -> None:
    """`articlebot list | head -1`: the pipe closes before the output is written; no traceback."""
    data = tmp_path / "d"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data), "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the process has imported what it needs and printed
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_repaired_index_is_said_once(tmp_path: Path, sample_path: Path) -> None:
    """The CLI says what the engine repaired as one note, not also as a log line."""
    data = tmp_path / "d"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "--data-dir", str(data), *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
        )

    assert cli("add", str(sample_path)).returncode == 0
    (data / DENSE_NAME).unlink()
    asked = cli("ask", QUESTION)
    assert asked.returncode == 0 and asked.stdout.startswith("36 civilians"), asked.stderr
    assert asked.stderr.count("Repaired the search index") == 1, asked.stderr
    assert "WARNING" not in asked.stderr, asked.stderr


def test_console_commands_and_bad_numbers(make_engine: Any) -> None:
    from bot.console import chat

    engine = make_engine()
    typed = ["/paste Harbour note", "The crane lifted 36 containers on Monday.", ".", "/remove \u00b2", "/remove 1"]
    stdin = io.StringIO("\n".join(typed) + "\n")
    out = io.StringIO()
    assert chat(engine, stdin, out) == 0
    text = out.getvalue()
    assert "Added #1 Harbour note (1 passage)." in text
    assert "Sorry: Give the article's number after /remove, e.g. /remove 3." in text  # "²" is not a number
    assert "Removed #1 Harbour note." in text


def test_console_paste_cut_off_by_the_end_of_input_adds_nothing(make_engine: Any) -> None:
    from bot.console import chat

    engine = make_engine()
    out = io.StringIO()
    assert chat(engine, io.StringIO("/paste Harbour note\nThe crane lifted 36 containers on Monday.\n"), out) == 0
    assert "Sorry: The text ended before a line with a single '.': nothing was added." in out.getvalue()
    assert engine.count() == 0


def test_ask_batch_from_stdin(
    capsys: pytest.CaptureFixture[str], data_dir: Path, sample_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, data_dir, "add", str(sample_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{QUESTION}\nWhat is the capital of Australia?\n"))
    code, out, _ = run(capsys, data_dir, "ask", "-", "--json")
    assert code == 0
    replies = [json.loads(line) for line in out.splitlines()]
    assert [r["abstained"] for r in replies] == [False, True]
    assert replies[0]["question"] == QUESTION


def test_bad_config_names_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("index:\n  chunk_wrds: 100\nanswer:\n  top_k: -1\n", encoding="utf-8")
    code = main(["--config", str(cfg), "list"])
    err = capsys.readouterr().err
    assert code == 1
    assert "index.chunk_wrds: unknown key" in err
    assert "answer.top_k" in err
    cfg.write_text("answer:\n  off_topic_overlap: 0.5\n", encoding="utf-8")  # a key of an older release
    assert main(["--config", str(cfg), "list"]) == 1
    assert "answer.off_topic_overlap: unknown key (replaced by answer.off_topic_words" in capsys.readouterr().err


def test_console_script_end_to_end(tmp_path: Path, sample_path: Path) -> None:
    """The installed `articlebot` command, as a new user runs it, with a fresh data dir."""
    exe = Path(sys.executable).parent / "articlebot"
    if not exe.exists():
        pytest.skip("articlebot console script not installed (pip install -e .)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    data = str(tmp_path / "d")
    add = subprocess.run([exe, "--data-dir", data, "add", str(sample_path)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert add.returncode == 0, add.stderr
    ask = subprocess.run([exe, "--data-dir", data, "ask", QUESTION, "--json"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["answer"].startswith("36 civilians")
    chat = subprocess.run([exe, "--data-dir", data, "chat"], input=f"{QUESTION}\n/quit\n", capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert chat.returncode == 0 and "36 civilians" in chat.stdout and SAMPLE_QUOTE[:30] in chat.stdout


def test_asked_on_picks_the_news_of_that_day(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path: Path
) -> None:
    for day, points in (("2022-06-02", "0.5"), ("2022-06-16", "0.75")):  # one story, two weeks, the same words
        (tmp_path / f"rates-{day}.html").write_text(
            f'<html><head><title>Brannock central bank raises rates</title><meta property="article:published_time" '
            f'content="{day}T09:00:00Z"></head><body><article><p>The Brannock central bank raised its key interest '
            f"rate by {points} points on Wednesday.</p></article></body></html>",
            encoding="utf-8",
        )
        assert run(capsys, data_dir, "add", str(tmp_path / f"rates-{day}.html"))[0] == 0
    question = "By how much did the Brannock central bank raise its interest rate this week?"
    for day, points in (("2022-06-03", "0.5"), ("2022-06-17", "0.75")):
        code, out, _ = run(capsys, data_dir, "ask", question, "--asked-on", day, "--json")
        assert code == 0 and json.loads(out)["answer"].startswith(f"{points} points"), (day, out)
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(data_dir), "ask", QUESTION, "--asked-on", "yesterday"])
    assert exc.value.code == 2
    assert "'yesterday' is not a date; write it as YYYY-MM-DD" in capsys.readouterr().err
