"""Split articles into sentences and pack whole sentences into passages.

Passages never cut a sentence, so every quote the answer step takes from a passage is a whole sentence of
the article; their offsets index the article text exactly (`text[start:end] == chunk.text`), which is what
lets a citation be checked against the stored article. Rules are regex heuristics tuned for news text: no
NLP model to download, and the same text always splits the same way.
"""

from __future__ import annotations

import re
import statistics

from index.models import Chunk


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


# Titles and abbreviations that are followed by a name or a number, almost never by a new sentence.
_NEVER_ENDS = _words(
    """mr mrs ms messrs mmes dr prof sen sens rep reps gov gen lt col maj capt cmdr sgt cpl adm
    rev fr hon pres supt det insp st ste mt ft jan feb mar apr jun jul aug sep sept oct nov dec
    e.g i.e cf vs approx est dept univ assn ave blvd rd hwy"""
)
# Abbreviations that take a number after them: "No. 10", "pp. 4-7".
_BEFORE_NUMBER = _words("no nos vol vols pp p fig figs art ch sec op")
# Abbreviations that often end a sentence too ("... in the U.S. The ...", "... Acme Inc. It ..."):
# a sentence ends after them only when the next word is a typical sentence opener.
_MAY_END = _words("inc corp co ltd llc plc bros jr sr etc al")
_OPENERS = _words(
    """a an the this that these those there it its he she they we i you his her their our my your
    but and or so yet still then now however meanwhile instead also although though while when
    after before as at by for from in on of to with without under over if once since because despite
    what who why how where which some many most more all both each every no not one two three several
    officials police authorities according"""
)
_TERMINAL = re.compile(r"(?:[.!?]+|…)[\"'”’»)\]]*(?=\s)|[。！？]+[」』”’)）]*")
_CLOSERS = "\"'”’»)]"
CLOSING_MARKS = _CLOSERS + "」』）"  # what may follow a sentence's last mark, CJK ones included
_OPENING = "\"'“‘«([¿¡"
_BULLET = re.compile(r"(?:[-*•·–—]|\d{1,3}[.)])\s")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.UNICODE)


def _starts_sentence(text: str, i: int) -> bool:
    """Can a sentence begin at text[i]: uppercase, digit, opening quote/bracket, bullet, caseless script."""
    if i >= len(text):
        return False
    c = text[i]
    if c.isupper() or c.isdigit() or c in _OPENING or _BULLET.match(text, i):
        return True
    return c.isalpha() and not c.islower()  # scripts without case (CJK, Arabic, ...)


def _word_at(text: str, i: int) -> str:
    m = _WORD.match(text, i)
    return m.group(0) if m else ""


def _ends_sentence(text: str, punct_start: int, punct_end: int, next_start: int) -> bool:
    """Decide whether the terminal punctuation at text[punct_start:punct_end] closes a sentence."""
    punct = text[punct_start:punct_end].rstrip(CLOSING_MARKS)
    if punct[:1] in "。！？":
        return True  # CJK full stops need no space and no capital after them
    if not _starts_sentence(text, next_start):
        return False
    if punct != ".":  # "!", "?", "...", "…", "?!": a new capitalised sentence follows
        return True
    # The token before the period: "Dr", "U.S", "J", "2023", "e.g".
    tok_start = punct_start
    while tok_start > 0 and not text[tok_start - 1].isspace():
        tok_start -= 1
    token = text[tok_start:punct_start].lstrip(_OPENING)
    low = token.lower()
    next_word = _word_at(text, next_start).lower()
    if low in _NEVER_ENDS or token == "v":  # lowercase "v": versus ("Roe v. Wade"); "Henry V." is an initial below
        return False
    if low in _BEFORE_NUMBER and text[next_start].isdigit():
        return False
    if token.isdigit() and (tok_start == 0 or text[tok_start - 1] == "\n"):
        return False  # a numbered list item "1. First ..."
    initial = len(token) == 1 and token.isupper()
    dotted = re.fullmatch(r"(?:[^\W\d_]\.)+[^\W\d_]", token) is not None  # U.S, a.m, U.S.A
    if initial or dotted or low in _MAY_END:
        return next_word in _OPENERS or text[next_start] in _OPENING
    return True


def _line_breaks(text: str, start: int, end: int) -> list[int]:
    """Single newlines inside a paragraph that end a sentence (after a heading-like line)."""
    lines: list[tuple[int, int]] = []  # (start, end) of each line in text[start:end]
    pos = start
    for m in re.finditer("\n", text[start:end]):
        lines.append((pos, start + m.start()))
        pos = start + m.end()
    lines.append((pos, end))
    if len(lines) < 2:
        return []
    # Hard-wrapped text (fixed-width lines) continues sentences across newlines: many lines then go on
    # in lowercase. Text from web extraction puts one paragraph per line instead.
    joins = [i for i in range(len(lines) - 1) if text[lines[i + 1][0] : lines[i + 1][1]].strip()]
    lower_next = sum(1 for i in joins if text[lines[i + 1][0] : lines[i + 1][1]].lstrip()[:1].islower())
    wrapped = lower_next >= max(1, 0.2 * len(joins))
    width = statistics.median([b - a for a, b in lines]) if wrapped else 0
    cuts: list[int] = []
    for i in joins:
        a, b = lines[i]
        prev = text[a:b].rstrip()
        if not prev.strip():
            continue
        nxt_start = lines[i + 1][0]
        while nxt_start < len(text) and text[nxt_start] in " \t":
            nxt_start += 1
        if _BULLET.match(text, nxt_start):
            cuts.append(b)
            continue
        if prev.rstrip(_CLOSERS)[-1:] in (".", "!", "?", "…"):
            continue  # ordinary punctuation: handled by the sentence rules
        if prev[-1] in ",;-–—(" or not _starts_sentence(text, nxt_start):
            continue  # the sentence goes on in the next line
        if wrapped and len(prev) >= 0.6 * width:
            continue  # a full-width wrapped line, not a heading
        cuts.append(b)
    return cuts


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, in order, without surrounding whitespace.

    Every non-space character belongs to exactly one span. A blank line always ends a sentence; a single
    newline ends one after a heading-like line (no final punctuation) or before a list item.
    """
    cuts: list[int] = []
    blocks: list[tuple[int, int]] = []
    pos = 0
    for m in _BLANK_LINE.finditer(text):
        blocks.append((pos, m.start()))
        pos = m.end()
    blocks.append((pos, len(text)))
    for b_start, b_end in blocks:
        block = text[b_start:b_end]
        for m in _TERMINAL.finditer(block):
            nxt = m.end()
            while nxt < len(block) and block[nxt].isspace():
                nxt += 1
            if nxt < len(block) and _ends_sentence(
                text, b_start + m.start(), b_start + m.end(), b_start + nxt
            ):
                cuts.append(b_start + m.end())
        cuts.extend(_line_breaks(text, b_start, b_end))
        cuts.append(b_end)
    spans: list[tuple[int, int]] = []
    prev = 0
    for cut in sorted(set(cuts)):
        a, b = prev, cut
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
        prev = max(prev, cut)
    # Text after the last block boundary is already covered by the final cut (len(text)).
    return spans


def _word_count(text: str) -> int:
    return len(text.split())


def chunk_text(article_id: int, text: str, chunk_words: int, overlap_sentences: int) -> list[Chunk]:
    """Pack whole sentences into passages of about `chunk_words` words.

    A sentence longer than `chunk_words` is a passage of its own (never cut). Consecutive passages share
    `overlap_sentences` sentences so an answer that spans a boundary is still found whole in one of them.
    A passage that is already half full is closed at a paragraph break rather than mixing topics.
    """
    if chunk_words < 1:
        raise ValueError("chunk_words must be at least 1")
    spans = split_sentences(text)
    words = [_word_count(text[a:b]) for a, b in spans]
    para_before = [i > 0 and "\n" in text[spans[i - 1][1] : spans[i][0]] for i in range(len(spans))]
    chunks: list[Chunk] = []
    current: list[int] = []  # sentence indices of the passage being built (starts with the overlap)

    def emit() -> None:
        a, b = spans[current[0]][0], spans[current[-1]][1]
        chunks.append(Chunk(article_id=article_id, seq=len(chunks), start=a, end=b, text=text[a:b]))

    for i, n in enumerate(words):
        size = sum(words[j] for j in current)
        full = size + n > chunk_words or (para_before[i] and size * 2 >= chunk_words)
        if current and full:
            emit()
            keep = current[len(current) - overlap_sentences :] if overlap_sentences > 0 else []
            # The overlap must leave room for the new sentence; drop overlap from the front if not.
            while keep and sum(words[j] for j in keep) + n > chunk_words:
                keep = keep[1:]
            current = keep
        current.append(i)
    if current:  # always holds at least one sentence not emitted yet
        emit()
    return chunks
