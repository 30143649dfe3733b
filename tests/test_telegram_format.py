"""The bot's replies are valid Telegram HTML, never over 4,096 units, and show input as text, never markup.

The validator is the loopback Bot API's (tests/botapi/telegram_html.py), stricter than Telegram.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from answer.models import Answer, Citation
from bot.telegram import callbacks
from bot.telegram import format as fmt
from corpus.models import Article
from engine.service import AddResult
from index.models import Chunk
from tests.botapi.telegram_html import HtmlError, parse_html, utf16_len

# Unicode that breaks naive code: RTL, zero-width, emoji (2 UTF-16 units), lone surrogates, controls, markup.
TRICKY = [
    "<b>",
    "</i>",
    "&amp;",
    "&",
    "<",
    ">",
    '"',
    "'",
    "\u202e",
    "\u200b",
    "😀",
    "\ud800",
    "\x00",
    "\n",
    " ",
]
texts = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(TRICKY)), max_size=30).map("".join)
long_texts = st.lists(st.one_of(st.text(min_size=1, max_size=400), st.sampled_from(TRICKY)), max_size=40).map(" ".join)
urls = st.one_of(
    st.none(),
    st.sampled_from(["https://example.com/a?b=1&c=<2>", 'http://x.org/"q"', "javascript:alert(1)", "ftp://x"]),
    st.text(max_size=30).map(lambda s: "https://example.com/" + s),
)


def citation(n: int, quote: str, title: str, url: str | None, outlet: str | None) -> Citation:
    return Citation(
        n=n,
        article_id=n,
        chunk_id=100 + n,
        quote=quote,
        start=0,
        end=len(quote),
        score=0.9,
        title=title,
        url=url,
        outlet=outlet,
        published="2015-09-30",
    )


citations = st.builds(citation, st.integers(1, 9), long_texts, texts, urls, st.one_of(st.none(), texts))


def plain(parts: list[str]) -> str:
    """The text a user reads, whitespace removed (cuts drop whitespace and nothing else)."""
    return re.sub(r"\s+", "", "".join(parse_html(p)[0] for p in parts))


def assert_sendable(parts: list[str]) -> None:
    assert parts, "at least one message"
    for part in parts:
        text, _ = parse_html(part)  # raises HtmlError on anything Telegram would refuse
        assert text.strip()
        assert utf16_len(part) <= fmt.MAX_MESSAGE
        assert utf16_len(text) <= fmt.MAX_MESSAGE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=long_texts, cites=st.lists(citations, min_size=1, max_size=3))
def test_answers_are_valid_html_within_the_limit_and_lose_nothing(text: str, cites: list[Citation]) -> None:
    answer = Answer(question="q", text=text or "x", abstained=False, confidence=0.9, citations=tuple(cites))
    parts = fmt.answer_messages(answer)
    assert_sendable(parts)
    shown = plain(parts)
    for c in cites:
        assert re.sub(r"\s+", "", fmt.clean(c.quote)) in shown  # every quote verbatim (as text, not markup)


@settings(max_examples=100, deadline=None)
@given(closest=st.lists(citations, max_size=3))
def test_refusal_is_plain_and_shows_no_sources_as_support(closest: list[Citation]) -> None:
    answer = Answer(
        question="q",
        text="whatever the composer says",
        abstained=True,
        confidence=0.1,
        closest=tuple(closest),
    )
    parts = fmt.answer_messages(answer)
    assert_sendable(parts)
    text, _ = parse_html(parts[0])
    assert text.startswith("I couldn't find that in the articles.")
    assert not any(e["type"] == "blockquote" for p in parts for e in parse_html(p)[1])
    assert not re.search(r"^\[\d\]", "\n".join(parse_html(p)[0] for p in parts), re.M)  # no numbered sources
    if closest:
        assert "could not tell that they answer the question" in text
    assert fmt.answer_keyboard(answer) is None


def test_markup_in_articles_is_shown_as_text() -> None:
    c = citation(1, 'He said <b>"no"</b> & left.', "<script>alert(1)</script>", "https://e.com/?a=1&b=<x>", "A&B")
    answer = Answer(question="q", text="It was <i>no</i> [1].", abstained=False, confidence=0.9, citations=(c,))
    [part] = fmt.answer_messages(answer)
    text, entities = parse_html(part)
    assert 'He said <b>"no"</b> & left.' in text
    assert "<script>alert(1)</script>" in text
    assert "It was <i>no</i> [1]." in text
    assert [e["url"] for e in entities if e["type"] == "text_link"] == ["https://e.com/?a=1&b=<x>"]
    assert [e["type"] for e in entities].count("blockquote") == 1


def test_only_web_urls_become_links() -> None:
    for url in ("javascript:alert(1)", "ftp://host/x", "https://a b", None, "https://x/" + "a" * 3000):
        c = citation(1, "Quote.", "Title", url, None)
        [part] = fmt.answer_messages(Answer("q", "A [1].", False, 0.9, citations=(c,)))
        assert not [e for e in parse_html(part)[1] if e["type"] == "text_link"]


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(st.sampled_from(["", "b", "i", "blockquote", "code", "a"]), long_texts, urls),
        min_size=1,
        max_size=12,
    ),
    limit=st.integers(250, 700),  # above what open tags with a link need
)
def test_split_keeps_tags_balanced_and_text_whole(blocks: list[tuple[str, str, str | None]], limit: int) -> None:
    html_blocks = []
    for tag, text, url in blocks:
        body = fmt.esc(text)
        if tag == "a":
            html_blocks.append(fmt.link(text, url))
        elif tag == "blockquote":
            html_blocks.append(f"<blockquote>{body} <b>{fmt.esc(text[:5])}</b> {fmt.link(text[:9], url)}</blockquote>")
        elif tag:
            html_blocks.append(f"<{tag}>{body}</{tag}>")
        else:
            html_blocks.append(body)
    whole = "\n\n".join(html_blocks)
    if not parse_html(whole)[0].strip():
        return
    parts = fmt.split_html(whole, limit)
    for part in parts:
        text, _ = parse_html(part)
        assert utf16_len(part) <= limit
        assert text.strip()
    assert plain(parts) == re.sub(r"\s+", "", parse_html(whole)[0])


def test_long_reply_splits_between_citations_not_inside_them() -> None:
    cites = tuple(citation(n, f"Sentence {n} " + "word " * 300, f"Title {n}", None, None) for n in (1, 2, 3))
    parts = fmt.answer_messages(Answer("q", "Answer [1][2][3].", False, 0.9, citations=cites))
    assert len(parts) >= 2
    assert_sendable(parts)
    for part in parts:  # each part holds whole citation blocks: a quote and its source line together
        text, entities = parse_html(part)
        assert len(re.findall(r"^\[\d\] Title", text, re.M)) == len([e for e in entities if e["type"] == "blockquote"])


def test_one_huge_quote_is_cut_at_words_with_the_quote_reopened() -> None:
    quote = " ".join(f"w{i}" for i in range(3000))  # ~17,000 characters in one blockquote
    parts = fmt.answer_messages(Answer("q", "A [1].", False, 0.9, citations=(citation(1, quote, "T", None, None),)))
    assert len(parts) >= 4
    assert_sendable(parts)
    words = " ".join(parse_html(p)[0] for p in parts).split()
    assert [w for w in words if w.startswith("w")] == quote.split()  # no word cut in half, none lost
    assert all(any(e["type"] == "blockquote" for e in parse_html(p)[1]) for p in parts[1:])


def test_emoji_count_as_two_units() -> None:
    parts = fmt.split_html(fmt.esc("😀" * 3000))
    assert len(parts) == 2 and all(utf16_len(p) <= fmt.MAX_MESSAGE for p in parts)


@given(title=texts, outlet=st.one_of(st.none(), texts), url=urls, passages=st.integers(0, 999))
@settings(max_examples=60, deadline=None)
def test_article_messages_are_valid(title: str, outlet: str | None, url: str | None, passages: int) -> None:
    a = Article(
        id=7,
        title=title,
        text="t",
        source="s",
        content_hash="h",
        added_by="u",
        added_at="2024-05-01T10:00",
        url=url,
        outlet=outlet,
        passages=passages,
    )
    assert_sendable(
        [
            fmt.added_message(
                [
                    AddResult("s", article=a),
                    AddResult("s", duplicate=a),
                    AddResult("s", error=f"{title}: 404 <x>"),
                ]
            )
        ]
    )
    assert_sendable([fmt.list_message([a] * 10, 3, 10, 95)])
    assert_sendable(fmt.passage_messages(a, Chunk(7, 0, 0, 5, title + " passage <&>", id=3)))
    assert_sendable([fmt.removed_message(a)])


def test_list_keyboard_pages_and_carries_the_owner() -> None:
    assert fmt.list_keyboard(0, 5, 10, 42) is None
    first = fmt.list_keyboard(0, 25, 10, 42)
    middle = fmt.list_keyboard(1, 25, 10, 42)
    assert first is not None and middle is not None
    assert [b.text for b in first.inline_keyboard[0]] == ["Next ›"]
    assert [(b.text, b.callback_data) for b in middle.inline_keyboard[0]] == [
        ("‹ Prev", "l:0:42"),
        ("Next ›", "l:2:42"),
    ]
    assert callbacks.parse_page("l:2:42") == (2, 42)


@pytest.mark.parametrize("data", ["", "l:", "l:-1:5", "l:1", "l:1:2:3", "p:abc", "p:1e3", "x" * 64, "l:99999999:1"])
def test_forged_callback_data_is_recognised(data: str) -> None:
    assert callbacks.parse_page(data) is None
    assert callbacks.parse_passage(data) is None


@pytest.mark.parametrize(
    "bad",
    [
        "<b>unclosed",
        "<b>x</i>",
        "<script>x</script>",
        "a & b",
        "1 > 0",
        '<a href="javascript:x">y</a>',
        "<blockquote><blockquote>x</blockquote></blockquote>",
        "<code><b>x</b></code>",
        "x</b>",
        "\ud800",
    ],
)
def test_the_emulator_refuses_what_telegram_would(bad: str) -> None:
    with pytest.raises(HtmlError):
        parse_html(bad)


def test_the_emulator_parses_entities_in_utf16_units() -> None:
    text, entities = parse_html('😀 <b>bold</b> &lt;3 <a href="https://e.com/?a=1&amp;b=2">link</a>')
    assert text == "😀 bold <3 link"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "text_link", "offset": 11, "length": 4, "url": "https://e.com/?a=1&b=2"},
    ]
