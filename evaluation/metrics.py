"""Metric functions, pure and small so that each can be checked against hand-computed values.

Support is judged on the quote (what the bot shows as evidence), exact match and F1 on the short answer
text (what the bot says), both with the same normalisation SQuAD uses.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_MARKER = re.compile(r"\[\d+\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
# Typographic variants seen in news text, folded so that “Squid Game” matches "Squid Game".
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2032": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)


def fold(text: str) -> str:
    """Casefold, unify quotes and dashes, collapse whitespace: the comparison form for support."""
    return " ".join(text.translate(_FOLD).casefold().split())


def strip_markers(text: str) -> str:
    """Remove the "[n]" citation markers from an answer text."""
    return " ".join(_MARKER.sub(" ", text).split())


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.translate(_FOLD).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer (markers stripped)."""
    pred = normalize_answer(strip_markers(prediction))
    return float(any(pred == normalize_answer(g) for g in golds)) if golds else 0.0


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 against the gold answers, as in the SQuAD evaluation script."""
    pred_tokens = normalize_answer(strip_markers(prediction)).split()
    best = 0.0
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        if not pred_tokens or not gold_tokens:
            best = max(best, float(pred_tokens == gold_tokens))
            continue
        common = Counter(pred_tokens) & Counter(gold_tokens)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred_tokens), same / len(gold_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(quote: str, golds: Iterable[str]) -> bool:
    """Does the quote hold a gold answer? Case-insensitive; an answer with a digit must stand as a whole
    number (so "36" is not found in "360", "1936" or "3.6", and "1,000" not in "1,000,000")."""
    text = fold(quote)
    for gold in golds:
        g = fold(gold).strip(" .\"'")  # quotes around a title in a quiz choice are not the answer
        if not g:
            continue
        if any(ch.isdigit() for ch in g):
            pattern = r"(?<![\w])(?<!\d[.,])" + re.escape(g) + r"(?![\w])(?![.,]\d)"
            if re.search(pattern, text):
                return True
        elif g in text:
            return True
    return False


def recall_at(ranked: Sequence[int], gold: Iterable[int], k: int) -> float:
    """1.0 when any gold item is among the first k of the ranking."""
    wanted = set(gold)
    return float(any(item in wanted for item in ranked[:k]))


def collapse(article_ids: Iterable[int]) -> list[int]:
    """Passage hits to an article ranking: each article at the rank of its best passage."""
    seen: dict[int, None] = {}
    for a in article_ids:
        seen.setdefault(a, None)
    return list(seen)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None with one class."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    # Rank-sum form: O(n log n), exact with ties through average ranks.
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
