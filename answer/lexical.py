"""Word overlap between a question and a sentence: light stemming, stop words, IDF over the candidates.

Dense similarity alone ranks a sentence that is merely on topic as high as the one holding the answer;
the overlap of the question's rarer words is what separates them.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Iterable, Sequence

WORD = re.compile(r"[^\W_][\w'\u2019\-]*")


def word_set(words: str) -> frozenset[str]:
    """A set of words written as one space-separated string (word lists read better that way)."""
    return frozenset(words.split())


STOPWORDS = word_set(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each either else ever few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself just
    least less let like many may me might more most much must my myself neither no nor not now of off on
    once only or other our ours ourselves out over own per quite rather same shall she should since so some
    such than that the their theirs them themselves then there these they this those though through thus to
    too under until up upon us very was we were what whatever when whenever where whereas wherever whether
    which while who whoever whom whose why will with within without would yet you your yours yourself
    yourselves
    according reportedly said say says tell told give given get got make made know known happen happened
    one ones last next first kind type sort way ways thing things lot lots really actually exactly
    take takes took taken taking
    """
)


# Irregular forms a suffix stripper cannot join; questions and news rarely use the same one ("died" and
# "death", "won" and "wins").
_FORMS = {
    "die": "died dies dying dead death deaths",
    "kill": "killing killed kills",
    "win": "won wins winning winner winners",
    "lose": "lost loses losing loss losses",
    "pay": "paid pays paying payment payments",
    "buy": "bought buys buying",
    "sell": "sold sells selling sale sales",
    "hold": "held holds holding",
    "meet": "met meets meeting meetings",
    "lead": "led leads leading leader leaders",
    "begin": "began begun begins beginning",
    "build": "built builds building",
    "find": "found finds finding",
    "give": "gave given gives giving",
    "take": "took taken takes taking",
    "leave": "left leaves leaving",
    "speak": "spoke spoken speaks speaking speech",
    "write": "wrote written writes writing",
    "rise": "rose risen rises rising",
    "fall": "fell fallen falls falling",
    "grow": "grew grown grows growing growth",
    "bear": "born birth",
    "fight": "fought fights fighting",
    "steal": "stole stolen steals stealing theft",
    "spend": "spent spends spending",
    "send": "sent sends sending",
    "teach": "taught teaches teaching",
    "think": "thought thinks thinking",
    "choose": "chose chosen chooses choosing choice",
    "flee": "fled flees fleeing",
    "shoot": "shot shoots shooting",
    "strike": "struck strikes striking",
    "injure": "injured injures injuring injury injuries",
    "marry": "married marries marrying marriage",
    "arrive": "arrived arrives arriving arrival",
    "decide": "decided decides deciding decision",
    "invade": "invaded invades invading invasion",
    "elect": "elected elects electing election elections",
}
_IRREGULAR = {form: base for base, forms in _FORMS.items() for form in forms.split()}


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light suffix stripper: enough that 'civilians' meets 'civilian' and 'launched' meets 'launch'.

    Cached: the answer step stems every word of every candidate sentence, the same few thousand words
    over and over (~2,000 calls per question on 320-word news passages; this cache and the one of the
    question's stems in answer.facts took the answer step's median from 52 to 47 ms there)."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'-")
    w = _IRREGULAR.get(w, w)
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif (len(w) > 4 and w.endswith("es") and w[-3] in "sxz") or w.endswith(("ches", "shes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


# The words that name the kind of answer ("how long", "what year") rarely appear next to the answer.
_ASKS = re.compile(
    r"\bhow\s+(?:long|old|far|tall|high|big|large|deep|wide|heavy|fast|often|soon)\b"
    r"|\b(?:what|which)\s+(?:year|date|day|month|time|century|decade|percentage|percent|proportion|share|age)\b",
    re.IGNORECASE,
)


def question_terms(question: str) -> list[str]:
    """The question's content stems, without the words that name the kind of answer asked for."""
    return content_stems(_ASKS.sub(" ", question))


# WORD keeps a clitic on its word: "didn't", "what's", "they're". A negated auxiliary carries no content
# (the negation is asks_with_negation's); otherwise the word the clitic hangs on decides ("what's" is a stop
# word, "Trump's" is Trump).
NEGATED_AUXILIARY = re.compile(r"n['\u2019]t\Z", re.IGNORECASE)
_CLITIC = re.compile(r"['\u2019](?:s|re|ve|ll|d|m)\Z", re.IGNORECASE)


def content_stems(text: str) -> list[str]:
    """Stems of the words that carry meaning (no stop words, no question words), in order, unique."""
    seen: dict[str, None] = {}
    shouting = text.isupper()
    for m in WORD.finditer(text):
        word = m.group()
        if NEGATED_AUXILIARY.search(word):
            continue
        word = _CLITIC.sub("", word)
        low = word.lower()
        acronym = len(word) > 1 and word.isupper() and not shouting  # "US", "IS": not the stop words
        if not acronym and (low in STOPWORDS or (len(low) == 1 and not low.isdigit())):
            continue
        seen.setdefault(stem(low), None)
    return list(seen)


def all_stems(text: str) -> set[str]:
    """Stems of every word of `text`, and of the parts of hyphenated words ("al-Assad", "US-led")."""
    out: set[str] = set()
    for m in WORD.finditer(text):
        word = m.group()
        out.add(stem(word))
        if "-" in word:
            out.update(stem(part) for part in word.split("-") if part)
    return out


def idf(terms: Iterable[str], documents: Sequence[set[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency of `terms` over the candidate sentences.

    A question word no candidate contains gets the highest weight, so missing it costs the most.
    """
    n = len(documents)
    out: dict[str, float] = {}
    for t in terms:
        df = sum(1 for d in documents if t in d)
        out[t] = math.log((n + 1.0) / (df + 0.5))
    return out


def coverage(terms: Sequence[str], weights: dict[str, float], sentence: set[str]) -> float:
    """IDF-weighted share of the question's content words found in the sentence, in [0, 1]."""
    total = sum(weights[t] for t in terms)
    if total <= 0:
        return 0.0
    return sum(weights[t] for t in terms if t in sentence) / total


# A question that asks about what did not happen ("Which country was not hit by the embargo?") is answered
# only by a sentence that says so; one stating what did happen, on the same subject, is the likeliest wrong
# quote. The sentence may say it with a negative verb instead ("declined to sign" for "did not sign").
# "No. 1" (a number), "no-hitter", "not-for-profit", "not only" and "whether or not" deny nothing.
_NOT = r"not(?!-)(?!\s+only\b)|never|no(?![.-]\s*\d)(?!-)|none|nor|neither|nothing|nobody|nowhere|without|cannot"
_QUESTION_NEGATION = re.compile(rf"(?<!\bor )\b(?:{_NOT})\b|n['\u2019]t\b", re.IGNORECASE)
_SENTENCE_NEGATION = re.compile(
    rf"\b(?:{_NOT}|declin\w*|refus\w*|fail\w*|reject\w*|unable|lack\w*|den(?:y|ies|ied|ial)|absen\w*)\b"
    r"|n['\u2019]t\b",
    re.IGNORECASE,
)


def asks_with_negation(question: str) -> bool:
    """The question holds "not", "never", "without", "n't" or the like."""
    return _QUESTION_NEGATION.search(question) is not None


def holds_negation(sentence: str) -> bool:
    """The sentence says something did not happen: a negation word or a negative verb ("declined")."""
    return _SENTENCE_NEGATION.search(sentence) is not None


# The names and numbers a question is about ("When did the Normans reach Italy?": Normans, Italy; "in 1066").
# SQuAD 2.0's writers made many questions unanswerable by swapping one of them for another (Rajpurkar et al.
# 2018, "entity swap"), and a question asked of the wrong collection names what the collection never mentions.
_NAME_WORD = re.compile(r"\d+(?:[.,]\d+)*[\w\-]*|[^\W_][\w\-]*")  # "2,000" is one word
_NOT_NAMES = word_set("i what which who whom whose when where why how")
# Title case capitalises every word but a few short ones (kept lower: _TITLE_LOWER), stop words too ("How Many
# Civilians Died?"), which names rarely hold ("The Islamic State", "Alexander I", "US" do).
_TITLE_LOWER = word_set("a an and at by for in of on or the to")
_TITLE_SMALL = STOPWORDS - word_set("i us the a an")
_SENTENCE_GAP = re.compile(r"[.?!:]\W*\s\W*\Z")  # between the last word of a sentence and the next one
_POSSESSIVE = re.compile(r"['\u2019]s\b")


def _name_key(word: str) -> str:
    return word.lower().replace(",", "") if word[0].isdigit() else word.lower()


def question_names(question: str) -> list[str]:
    """The question's capitalised words, but the first of each of its sentences, and its numbers, lowercased,
    unique; without a possessive "'s". A question written in capitals or in title case ("How Many Civilians
    Died?") names nothing by its capitals."""
    text = _POSSESSIVE.sub("", question)
    found = list(_NAME_WORD.finditer(text))
    opening = [
        i == 0
        or (_SENTENCE_GAP.search(text[found[i - 1].end() : m.start()]) is not None and len(found[i - 1].group()) > 2)
        for i, m in enumerate(found)
    ]  # "... this week. According to the Fed, ...": "According" opens a sentence; "Dr. Smith" does not
    words = [m.group() for m in found]
    rest = [w for w, o in zip(words, opening, strict=True) if not o and w.isalpha() and w.lower() not in _TITLE_LOWER]
    title_case = all(w[0].isupper() for w in rest) and any(w.lower() in _TITLE_SMALL for w in rest)
    capitals = not question.isupper() and not title_case
    out: dict[str, None] = {}
    for word, opens in zip(words, opening, strict=True):
        named = (
            capitals
            and not opens
            and len(word) > 1  # not "I", nor the letters of "U.S."
            and word[0].isupper()
            and (word.lower() not in _NOT_NAMES or word.isupper())  # "WHO" the organisation
        )
        if named or any(ch.isdigit() for ch in word):
            out.setdefault(_name_key(word), None)
    return list(out)


def names_missing(names: Sequence[str], text: str) -> float:
    """The share of `names` that the text does not mention, in [0, 1]: a name is mentioned when a word of the
    text begins with it ("Egypt" in "Egyptian"), with it less a plural "s" ("F-16s" in "F-16"), or, for a
    hyphenated name, with one of its parts of three letters or more ("Obama-era" in "Obama")."""
    if not names:
        return 0.0
    words = sorted({_name_key(m.group()) for m in _NAME_WORD.finditer(text)})

    def begins(prefix: str) -> bool:
        i = bisect.bisect_left(words, prefix)
        return i < len(words) and words[i].startswith(prefix)

    def mentioned(name: str) -> bool:
        forms = [name, name[:-1]] if len(name) > 3 and name.endswith("s") else [name]
        forms += [part for part in name.split("-") if len(part) > 2] if "-" in name else []
        return any(begins(form) for form in forms)

    return sum(1 for n in names if not mentioned(n)) / len(names)
