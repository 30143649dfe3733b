"""Sentence spans inside a passage, as character offsets, so a quote can be traced back to its article.

The sentence rules are the chunker's (`index.chunking.split_sentences`): one splitter for the whole
project, so a passage never cuts a sentence the answer step would quote. What is added here is a length
cap, since a "sentence" of a text without punctuation can be a whole passage, too long to quote.
"""

from __future__ import annotations

import re

from index.chunking import CLOSING_MARKS, split_sentences

MAX_QUOTE_CHARS = 600
_TRAILING = CLOSING_MARKS + "* \t\r\n"  # after a sentence's last mark: closing quotes, brackets, emphasis
_ASKING = re.compile(r"[?\uff1f\u061f][?!\uff01\uff1f]*\Z")  # "?", full-width "？", Arabic "؟"; also "?!"


def is_question(sentence: str) -> bool:
    """The sentence asks rather than tells: it ends with a question mark (before closing quotes)."""
    return _ASKING.search(sentence.rstrip(_TRAILING)) is not None


def asking_sentence(question: str) -> str | None:
    """The sentence that asks, when the question first sets the scene in others ("Gas prices hit a record
    this week. How much does a gallon cost?"): its last sentence with a question mark, else its last one.
    None for a question of one sentence."""
    spans = split_sentences(question)
    if len(spans) < 2:
        return None
    sentences = [question[a:b] for a, b in spans]
    return next((s for s in reversed(sentences) if is_question(s)), sentences[-1])


def quote_spans(text: str, max_chars: int = MAX_QUOTE_CHARS, *, questions: bool = True) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`, those over `max_chars` split at a space; without
    `questions`, the sentences that ask (`is_question`, judged on the whole sentence, not its pieces) are left
    out."""
    out: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        if not questions and is_question(text[start:end]):
            continue
        while end - start > max_chars:
            cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
            if cut <= start:
                cut = start + max_chars
            piece = _strip(text, start, cut)
            if piece is not None:
                out.append(piece)
            start = cut
        piece = _strip(text, start, end)
        if piece is not None:
            out.append(piece)
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
