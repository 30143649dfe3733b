"""Sentences and passages: quotes are always whole sentences and exact slices of the article."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.chunking import chunk_text, split_sentences
from index.models import Chunk


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith met Dr. Jones on Jan. 5 in St. Louis. They spoke for an hour.",
            ["Mr. Smith met Dr. Jones on Jan. 5 in St. Louis.", "They spoke for an hour."],
        ),
        (
            "The U.S. economy grew 3.5% last year. Growth in the U.K. was slower.",
            ["The U.S. economy grew 3.5% last year.", "Growth in the U.K. was slower."],
        ),
        (
            "Sales fell in the U.S. The company blamed the weather.",
            ["Sales fell in the U.S.", "The company blamed the weather."],
        ),
        ("Rates rose to 4.25 percent. Markets fell.", ["Rates rose to 4.25 percent.", "Markets fell."]),
        (
            "J. K. Rowling wrote a new book. It sold well.",
            ["J. K. Rowling wrote a new book.", "It sold well."],
        ),
        (
            "Some goods, e.g. rice, got cheaper. Others, i.e. fuel, did not. He lives at No. 10 now.",
            ["Some goods, e.g. rice, got cheaper.", "Others, i.e. fuel, did not.", "He lives at No. 10 now."],
        ),
        (
            "He paused... Then he left. She waited… and waited.",
            ["He paused...", "Then he left.", "She waited… and waited."],
        ),
        (
            'He said, "We will win." Then he left. She replied: “No.” It was over.',
            ['He said, "We will win."', "Then he left.", "She replied: “No.”", "It was over."],
        ),
        ("Is it true? Yes! Really?! OK.", ["Is it true?", "Yes!", "Really?!", "OK."]),
        (
            "The meeting ended at 5 p.m. The vote is Monday.",
            ["The meeting ended at 5 p.m.", "The vote is Monday."],
        ),
        (
            "Acme Corp. said profits rose. They fell later.",
            ["Acme Corp. said profits rose.", "They fell later."],
        ),
        (
            "The court overturned Roe v. Wade in June. It was the play of Henry V. The crowd left.",
            ["The court overturned Roe v. Wade in June.", "It was the play of Henry V.", "The crowd left."],
        ),
    ],
)
def test_sentence_rules_for_news_text(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_blank_line_always_ends_a_sentence() -> None:
    text = "A paragraph that trails off without a full stop\n\nThe next paragraph starts here."
    assert sentences(text) == [
        "A paragraph that trails off without a full stop",
        "The next paragraph starts here.",
    ]


def test_heading_line_ends_at_newline() -> None:
    text = "Economy grows faster than expected\nThe economy grew 3% in the third quarter. Prices fell."
    assert sentences(text) == [
        "Economy grows faster than expected",
        "The economy grew 3% in the third quarter.",
        "Prices fell.",
    ]


def test_hard_wrapped_lines_do_not_end_sentences() -> None:
    text = (
        "The president met with senior\n"
        "officials on Tuesday to discuss the\n"
        "budget. He said the plan was\n"
        "ready for a vote in the Senate.\n"
    )
    assert sentences(text) == [
        "The president met with senior\nofficials on Tuesday to discuss the\nbudget.",
        "He said the plan was\nready for a vote in the Senate.",
    ]


def test_list_items_are_separate() -> None:
    text = "The plan has three parts:\n- lower taxes\n- new roads\n1. First phase\n2. Second phase"
    assert sentences(text) == [
        "The plan has three parts:",
        "- lower taxes",
        "- new roads",
        "1. First phase",
        "2. Second phase",
    ]


def test_spans_exclude_whitespace_and_cover_all_text() -> None:
    text = "  \n Hello there.   General Kenobi!  \n\n  "
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["Hello there.", "General Kenobi!"]
    assert split_sentences("") == [] and split_sentences(" \n\n ") == []


ARTICLE = (
    "Officials confirmed the bridge will close on Monday. Repairs are expected to take six weeks. "
    "Drivers should use the northern bypass instead. Buses will run on a temporary timetable.\n\n"
    "The city council approved the budget last month. It covers steel, labour and inspections. "
    "Engineers found corrosion in two of the main supports during a routine check in March. "
    "The mayor said safety comes first. Local shops fear losing customers during the closure."
)


def _check_invariants(text: str, chunks: list[Chunk], chunk_words: int) -> None:
    spans = split_sentences(text)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start : c.end] == c.text
        # Never cut a sentence: a chunk starts at a sentence start and ends at a sentence end.
        assert c.start in {a for a, _ in spans} and c.end in {b for _, b in spans}
        inside = [(a, b) for a, b in spans if c.start <= a and b <= c.end]
        if len(inside) > 1:
            assert len(c.text.split()) <= chunk_words
    for a, b in spans:  # every sentence is in some passage
        assert any(c.start <= a and b <= c.end for c in chunks)


@pytest.mark.parametrize(("words", "overlap"), [(20, 0), (20, 1), (30, 2), (1000, 1)])
def test_chunk_invariants(words: int, overlap: int) -> None:
    chunks = chunk_text(7, ARTICLE, words, overlap)
    _check_invariants(ARTICLE, chunks, words)
    assert all(c.article_id == 7 for c in chunks)


def test_consecutive_chunks_share_the_overlap_sentences() -> None:
    chunks = chunk_text(1, ARTICLE, 25, 1)
    assert len(chunks) >= 3
    for prev, nxt in itertools.pairwise(chunks):
        last = sentences(prev.text)[-1]
        assert nxt.text.startswith(last), (prev.text, nxt.text)
    no_overlap = chunk_text(1, ARTICLE, 25, 0)
    for prev, nxt in itertools.pairwise(no_overlap):
        assert nxt.start > prev.end


def test_long_sentence_is_its_own_chunk_never_cut() -> None:
    long = "This sentence " + "goes on and on " * 30 + "until it ends."
    text = f"Short one. {long} Another short one."
    chunks = chunk_text(1, text, 20, 1)
    assert long in [c.text for c in chunks]
    _check_invariants(text, chunks, 20)


def test_half_full_chunk_closes_at_paragraph_break() -> None:
    first_para = ARTICLE.split("\n\n")[0]  # 29 words
    assert chunk_text(1, ARTICLE, 50, 0)[0].text == first_para  # over half full: closed at the break
    assert chunk_text(1, ARTICLE, 70, 0)[0].text != first_para  # under half full: packing goes on


def test_whole_short_article_is_one_chunk() -> None:
    assert [c.text for c in chunk_text(1, ARTICLE, 1000, 1)] == [ARTICLE]
    assert chunk_text(1, "", 100, 1) == []


_WORDS = st.sampled_from(
    ["the", "Mr.", "U.S.", "3.5", "said", "Dr.", "He", "«Non»", '"Yes."', "end.", "What?", "...", "…",
     "J.", "K.", "No.", "10", "e.g.", "Paris", "économie", "東京。", "!", "(see", "below)"]
)  # fmt: skip
_SEPS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  ", "\t", " \n "])


@st.composite
def news_like(draw: st.DrawFn) -> str:
    n = draw(st.integers(min_value=0, max_value=60))
    parts = []
    for _ in range(n):
        parts.append(draw(_WORDS))
        parts.append(draw(_SEPS))
    return draw(_SEPS) + "".join(parts)


@settings(max_examples=150, deadline=None)
@given(
    text=st.one_of(news_like(), st.text(max_size=300)), words=st.integers(1, 40), overlap=st.integers(0, 3)
)
def test_chunks_are_exact_slices_and_cover_everything(text: str, words: int, overlap: int) -> None:
    spans = split_sentences(text)
    # Sentences are ordered, disjoint, trimmed, and together hold every non-space character.
    covered: set[int] = set()
    prev_end = 0
    for a, b in spans:
        assert prev_end <= a < b
        assert not text[a].isspace() and not text[b - 1].isspace()
        covered.update(range(a, b))
        prev_end = b
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    chunks = chunk_text(3, text, words, overlap)
    _check_invariants(text, chunks, words)
