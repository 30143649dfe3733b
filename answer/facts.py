"""Which fact a question asks for (a number, a date, a name, a place) and where it sits in a sentence.

A reader asking "how many civilians died?" wants "36 civilians" first, not a paragraph; the span is cut
from the quoted sentence itself, so the short answer stays a verbatim, traceable part of its citation.
Regular expressions and a few word lists only: cheap, predictable, and easy to read when one misfires.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from answer.lexical import NEGATED_AUXILIARY, STOPWORDS, WORD, all_stems, question_terms, stem, word_set

NEAR_FLOOR = 0.5  # quality of a span far from every word of the question, relative to one next to them


class Kind(StrEnum):
    COUNT = "count"
    MONEY = "money"
    PERCENT = "percent"
    DATE = "date"
    DURATION = "duration"
    AGE = "age"
    MEASURE = "measure"
    PERSON = "person"
    PLACE = "place"


@dataclass(frozen=True)
class Expectation:
    """The kind of fact a question asks for; `targets` are stems of the counted noun ("civilians")."""

    kind: Kind
    targets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Fact:
    """An answer span in a sentence: `start`/`end` are offsets in that sentence."""

    start: int
    end: int
    key: str  # the value itself ("36", "October 1, 2015"): the same fact in another sentence contains it
    quality: float  # how well the span fits the question, in (0, 1]


# --- numbers -------------------------------------------------------------------------------------------

_ONES = (
    "nineteen|eighteen|seventeen|sixteen|fifteen|fourteen|thirteen|twelve|eleven|ten|nine|eight|seven|"
    "six|five|four|three|two|one|zero"
)
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_SCALES = r"(?:\s+(?:hundred|thousand|million|billion|trillion))*"
_WORDNUM = (
    rf"(?:(?:{_TENS})(?:[-\s](?:nine|eight|seven|six|five|four|three|two|one))?|{_ONES}"
    rf"|a\s+dozen|dozens|hundreds|thousands|millions|scores){_SCALES}"
)
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUM = rf"(?:(?:{_DIGITS})(?:\s*(?:hundred|thousand|million|billion|trillion|bn)\b)?|{_WORDNUM})"
_QUAL = (
    r"(?:(?:about|around|nearly|almost|approximately|roughly|some|over|under|more\s+than|less\s+than|"
    r"fewer\s+than|at\s+least|at\s+most|up\s+to|as\s+many\s+as|as\s+much\s+as|an\s+estimated|estimated|"
    r"just\s+over|just\s+under|close\s+to|only|a\s+total\s+of)\s+)?"
)
_B = r"(?<![\w$€£¥₹₽.,])"  # no number or word glued on the left
_E = r"(?![\w%]|[.,]\d)"  # nor on the right (also excludes ordinals and percentages)

_COUNT_RE = re.compile(rf"{_B}(?P<q>{_QUAL})(?P<v>{_NUM}){_E}", re.IGNORECASE)
_CURRENCY = (
    r"(?:dollars?|euros?|pounds?(?:\s+sterling)?|rubles?|roubles?|yuan|yen|rupees?|francs?|pesos?|"
    r"cents?|USD|EUR|GBP)"
)
_MONEY_RE = re.compile(
    rf"{_B}(?P<q>{_QUAL})(?P<v>(?:US|A|AU|C|CA|NZ|HK|S)?[$€£¥₹₽₩]\s?(?:{_DIGITS})"
    rf"(?:\s?(?:hundred|thousand|million|billion|trillion|bn|mn|m|k)\b)?"
    rf"|(?:USD|EUR|GBP|RUB|JPY|CNY|CHF|CAD|AUD)\s?(?:{_DIGITS})(?:\s(?:million|billion|trillion))?"
    rf"|{_NUM}\s+(?:(?:US|American|Canadian|Australian|Hong\s+Kong)\s+)?{_CURRENCY}\b)",
    re.IGNORECASE,
)
_PERCENT_RE = re.compile(
    rf"{_B}(?P<q>{_QUAL})(?P<v>(?:{_DIGITS}|{_WORDNUM})\s?(?:%|percent\b|per\s+cent\b|percentage\s+points?\b))",
    re.IGNORECASE,
)
_TIME_UNITS = r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centuries|century)"
_DURATION_RE = re.compile(
    rf"{_B}(?P<q>{_QUAL})(?P<v>(?:{_NUM}|an?|several|a\s+few|many|a\s+couple\s+of)[-\s]{_TIME_UNITS}"
    rf"(?:[-\s]long)?)\b",
    re.IGNORECASE,
)
_UNITS = (
    r"(?:km|kilomet(?:er|re)s?|miles?|met(?:er|re)s?|cm|mm|feet|foot|ft|inch(?:es)?|yards?|kg|"
    r"kilograms?|tonnes?|tons?|pounds?|lbs?|grams?|litres?|liters?|gallons?|barrels?|mph|km/h|knots|"
    r"square\s+(?:km|kilomet(?:er|re)s|miles|met(?:er|re)s|feet)|acres?|hectares?|degrees?|°[CF]?|m|g)"
)
_MEASURE_RE = re.compile(rf"{_B}(?P<q>{_QUAL})(?P<v>{_NUM}[-\s]?{_UNITS})(?![\w])", re.IGNORECASE)
_AGE_RES: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"(?<!\d)(?P<v>\d{1,3}[-\s]years?[-\s]old)\b", re.IGNORECASE), 1.0),
    (re.compile(r"\b(?P<v>aged?\s+\d{1,3})(?!\d)", re.IGNORECASE), 1.0),
    (re.compile(r"\b(?P<v>(?:at\s+)?(?:the\s+)?age\s+(?:of\s+)?\d{1,3})(?!\d)", re.IGNORECASE), 1.0),
    (re.compile(r"[A-Z]\w+,\s(?P<v>\d{1,2}),\s"), 0.6),  # "John Smith, 36, said"
)

# --- dates ---------------------------------------------------------------------------------------------

_MONTH_FULL = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTH = rf"(?:{_MONTH_FULL}|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"
_WEEKDAY = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DAYNUM = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:1[0-9]{3}|20[0-9]{2})"
_DATE_RES: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(rf"(?:(?:{_WEEKDAY}),?\s+)?{_MONTH}\s+{_DAYNUM}(?:,?\s+{_YEAR})?(?!\d)"), 1.0),
    (re.compile(rf"(?:(?:{_WEEKDAY}),?\s+)?(?<!\d){_DAYNUM}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?(?!\d)"), 1.0),
    (re.compile(rf"(?:(?:[Ee]arly|[Mm]id|[Ll]ate)[-\s])?{_MONTH},?\s+{_YEAR}(?!\d)"), 1.0),
    (re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)|(?<![\d/])\d{1,2}/\d{1,2}/\d{2,4}(?![\d/])"), 1.0),
    (re.compile(rf"(?<![\w$€£¥.,]){_YEAR}s?(?![\w%]|[.,]\d)"), 0.9),
    (
        re.compile(
            r"(?:(?:early|mid|late)[-\s])?\d{1,2}(?:st|nd|rd|th)(?:\s+and\s+\d{1,2}(?:st|nd|rd|th))?"
            r"\s+centur(?:y|ies)",
            re.IGNORECASE,
        ),
        0.9,
    ),
    (
        re.compile(
            rf"(?<=\s)(?:in|since|until|by|from|during|early|late|mid|last|next|this|of)[\s-]+"
            rf"(?P<v>{_MONTH_FULL})\b"
        ),
        0.8,
    ),
    (re.compile(rf"\b(?:{_WEEKDAY})\b"), 0.8),
    (
        re.compile(
            r"\b(?:yesterday|today|tonight|tomorrow|(?:last|next|this|earlier\s+this|later\s+this)\s+"
            r"(?:week|month|year|weekend|morning|afternoon|evening|night|spring|summer|autumn|fall|winter))\b",
            re.IGNORECASE,
        ),
        0.7,
    ),
    (re.compile(r"(?<!\d)\d{1,2}(?::\d{2})?\s?(?:a\.m\.|p\.m\.|am\b|pm\b)", re.IGNORECASE), 0.7),
)

# --- names ---------------------------------------------------------------------------------------------

_CONNECTORS = word_set("of the de del della di da du des la le van von der den bin ibn al el y")
_NOT_NAMES = frozenset([*_MONTH_FULL.lower().split("|"), *_WEEKDAY.lower().split("|"), "i"])
_SENTENCE_STARTERS = word_set(
    """according however meanwhile although despite still today yesterday earlier later also instead
    officials activists police experts analysts critics residents witnesses sources reports many several
    most both each every other another further furthermore moreover nevertheless nonetheless indeed
    finally then thus hence therefore here there yes no"""
)
_PLACE_PREPS = word_set("in at from near to into across throughout outside inside towards toward within around via")
_COUNT_CONTINUE = word_set("including among mostly mainly excluding plus")
_PHRASE_BOUNDARY = word_set(
    """is are was were be been being has have had will would could should may might must can did do does
    said says say reportedly who which that whom whose when where while after before because since although
    though but and or if as than until in on at by from to for with during into over against near per
    this these those their its his her our"""
)
_MONEY_WORDS = word_set(
    """cost costs costing pay paid pays spend spent spending worth price priced fund funds funding budget
    money raise raised earn earned salary loan loans aid sell sold buy bought invest invested investment
    fine fined charge charged revenue profit loss losses debt tax taxes bill donate donated value valued
    compensation award awarded"""
)

_FILLER = re.compile(
    r"^(?:(?:and|so|but|ok|okay|then|also|please|tell me|do you know|can you tell me|could you tell me)\W+)*"
)


# "Who is" and a name, nothing else: capitalised words ("al-Assad" too), none a possessive, with the particles
# names have between them ("Ursula von der Leyen"; not "of" or "the": "Who is King of Spain?" asks for a name).
_NAME_WORD = r"(?:[a-z]+-)?[A-Z][\w.'\u2019\-]*(?<!['\u2019]s)"
_PARTICLES = "|".join(sorted(_CONNECTORS - {"of", "the", "y"}))
_WHO_IS_NAME = re.compile(
    rf"\W*(?i:who(?:['\u2019]s|\s+(?:is|was|are|were)))\s+{_NAME_WORD}(?:\s+(?:(?:{_PARTICLES})\s+)*{_NAME_WORD})*\W*\Z"
)


def expected_fact(question: str) -> Expectation | None:
    """The kind of fact the question asks for, or None for what/why/how/yes-no questions."""
    if _WHO_IS_NAME.match(question.strip()):
        return None  # "Who is Sergey Lavrov?" asks for a description, not a name ("Who was Robert's son?" does)
    q = _FILLER.sub("", " ".join(question.lower().replace("\u2019", "'").split()))

    def has(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, q)

    if has(r"\b(?:what|which)\s+(?:percent|percentage|proportion|share|fraction)\b|\bhow\s+many\s+percent\b"):
        return Expectation(Kind.PERCENT)
    if has(r"\bhow\s+old\b|\b(?:what|which)\s+age\b"):
        return Expectation(Kind.AGE)
    if has(r"\bhow\s+long\b"):
        return Expectation(Kind.DURATION)
    if has(r"\bhow\s+(?:far|tall|high|big|large|deep|wide|heavy|fast)\b"):
        return Expectation(Kind.MEASURE)
    m = has(r"\bhow\s+much\b(?P<rest>.*)")
    if m:
        targets = _targets(m.group("rest"))
        money = _MONEY_WORDS & {w.strip("?.,!") for w in q.split()} or targets & {"money", "dollar", "euro"}
        return Expectation(Kind.MONEY if money else Kind.COUNT, targets)
    m = has(r"\bhow\s+many\b(?P<rest>.*)") or has(
        r"\b(?:number|death\s+toll|toll|total|tally|count)\s+of\b(?P<rest>.*)"
    )
    if m:
        return Expectation(Kind.COUNT, _targets(m.group("rest")))
    if has(r"\bdeath\s+toll\b"):
        return Expectation(Kind.COUNT)
    if has(
        r"^(?:since\s+|until\s+|till\s+)?when\b|\bwhen\W*$|\b(?:what|which)\s+(?:year|date|day|month|time|"
        r"century|decade|week|season)\b|\bin\s+what\s+year\b"
    ):
        return Expectation(Kind.DATE)
    m = has(
        r"^(?:from\s+)?where\b|\bwhere\W*$|\b(?:what|which)\s+(?P<noun>country|countries|city|cities|town|towns|"
        r"region|state|place|province|village|area|continent|location|capital|island|port|county|district"
        r"|neighbou?rhood|street|venue)\b"
    )
    if m:
        return Expectation(Kind.PLACE, _asked_noun(m))
    m = has(
        r"^(?:who|whom|whose)\b|\b(?:by|to|with|for|from)\s+whom\b|\bwho\W*$|\b(?:what|which)\s+(?P<noun>person|"
        r"people|man|woman|company|companies|organi[sz]ations?|group|groups|party|parties|team|agency|firm|"
        r"body|minister|official|officials|leader|president|newspaper|outlet|network|broadcaster)\b"
        r"|\bname\s+of\b"
    )
    if m:
        return Expectation(Kind.PERSON, _asked_noun(m))
    return None


def find_fact(expect: Expectation, sentence: str, question: str) -> Fact | None:
    """The span of `sentence` that best answers a question expecting `expect`, or None."""
    ctx = _Context(sentence, question, expect.targets)
    kind = expect.kind
    if kind is Kind.COUNT:
        return _best_count(ctx)
    if kind is Kind.MONEY:
        return _best_simple(ctx, _MONEY_RE) or _weaker(_best_count(ctx), 0.7)
    if kind is Kind.PERCENT:
        return _best_simple(ctx, _PERCENT_RE)
    if kind is Kind.DURATION:
        return _best_simple(ctx, _DURATION_RE) or _weaker(_best_simple(ctx, _MEASURE_RE), 0.7)
    if kind is Kind.MEASURE:
        return _best_simple(ctx, _MEASURE_RE) or _weaker(_best_count(ctx), 0.6)
    if kind is Kind.AGE:
        return _best_weighted(ctx, _AGE_RES)
    if kind is Kind.DATE:
        return _best_weighted(ctx, _DATE_RES)
    return _best_name(ctx, place=kind is Kind.PLACE)


def _asked_noun(m: re.Match[str]) -> frozenset[str]:
    """The kind of name asked for ("which street"): a name may end in it ("Elm Street") and still answer."""
    noun = m.groupdict().get("noun")
    return frozenset({stem(noun)}) if noun else frozenset()


def _targets(rest: str) -> frozenset[str]:
    """Stems of the counted noun right after "how many": up to three words, until a stop word."""
    out: list[str] = []
    for m in WORD.finditer(rest):
        low = m.group().lower()
        if low in STOPWORDS or NEGATED_AUXILIARY.search(low) or len(out) == 3:
            break  # "how many people didn't vote": people
        out.append(stem(low))
    return frozenset(out)


def _near(proximity: float) -> float:
    """Quality factor for how close a span sits to the question's words: a span far from them more often
    answers some other question the sentence also touches."""
    return NEAR_FLOOR + (1.0 - NEAR_FLOOR) * proximity


def _weaker(fact: Fact | None, factor: float) -> Fact | None:
    if fact is None:
        return None
    return Fact(fact.start, fact.end, fact.key, fact.quality * factor)


@functools.lru_cache(maxsize=256)
def _question_stems(question: str) -> tuple[frozenset[str], frozenset[str]]:
    """The question's content stems and all its stems: the same for every candidate sentence."""
    return frozenset(question_terms(question)), frozenset(all_stems(question))


class _Context:
    """The sentence's words with offsets, and where the question's words sit among them."""

    def __init__(self, sentence: str, question: str, targets: frozenset[str]):
        self.sentence = sentence
        self.q_low = " ".join(question.lower().split())
        self.targets = targets
        self.words = list(WORD.finditer(sentence))
        self.starts = [w.start() for w in self.words]
        self.stems = [stem(w.group()) for w in self.words]
        q_content, self.q_all = _question_stems(question)
        self.anchors = [i for i, w in enumerate(self.words) if all_stems(w.group()) & q_content]

    def asked(self, i: int) -> bool:
        """Whether word i (or a part of it: "al-Assad") is in the question."""
        return bool(all_stems(self.words[i].group()) & self.q_all)

    def word_index(self, offset: int) -> int:
        """Index of the word at or just after a character offset."""
        return bisect.bisect_left(self.starts, offset)

    def proximity(self, first: int, last: int) -> float:
        """Closeness of words first..last to the question's words in the sentence, in [0, 1]."""
        dists = [first - a if a < first else a - last for a in self.anchors if not first <= a <= last]
        return 1.0 / (1 + min(dists)) if dists else 0.0

    def in_question(self, value: str) -> bool:
        v = " ".join(value.lower().split())
        return bool(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", self.q_low))


def _span_words(ctx: _Context, start: int, end: int) -> tuple[int, int]:
    first = ctx.word_index(start)
    last = max(first, ctx.word_index(end) - 1)
    return first, last


def _best_simple(ctx: _Context, pattern: re.Pattern[str]) -> Fact | None:
    return _best_weighted(ctx, ((pattern, 1.0),))


def _best_weighted(ctx: _Context, patterns: tuple[tuple[re.Pattern[str], float], ...]) -> Fact | None:
    """Longest, most specific match not already in the question, nearest the question's words."""
    found: list[tuple[int, int, int, int, float]] = []  # phrase start/end, value start/end, weight
    for pattern, weight in patterns:
        for m in pattern.finditer(ctx.sentence):
            vs, ve = m.span("v") if "v" in pattern.groupindex else m.span()
            found.append((m.start(), m.end(), vs, ve, weight))
    # Keep the longest, most specific matches: "2015" inside "October 1, 2015" goes.
    found.sort(key=lambda f: (f[0] - f[1], -f[4]))
    kept: list[tuple[int, int, int, int, float]] = []
    for f in found:
        if not any(g[0] <= f[0] and f[1] <= g[1] for g in kept):
            kept.append(f)
    best: tuple[float, Fact] | None = None
    for start, end, vs, ve, weight in sorted(kept):
        value = ctx.sentence[vs:ve]
        first, last = _span_words(ctx, start, end)
        near = ctx.proximity(first, last)
        score = weight + 0.5 * near - (2.0 if ctx.in_question(value) else 0.0)
        if best is None or score > best[0]:
            best = (score, Fact(start, end, value, weight * _near(near)))
    if best is None or best[0] <= 0:
        return None
    return best[1]


def _best_count(ctx: _Context) -> Fact | None:
    """A number, preferring one followed by the counted noun ("36 civilians"), then a short noun phrase."""
    dates = [m.span() for p, _ in _DATE_RES for m in p.finditer(ctx.sentence)]
    best: tuple[float, Fact] | None = None
    for m in _COUNT_RE.finditer(ctx.sentence):
        value = m.group("v")
        low = value.lower()
        vs, ve = m.span("v")
        first, last = _span_words(ctx, vs, ve)
        after = [i for i in range(last + 1, min(last + 5, len(ctx.words))) if ctx.stems[i] in ctx.targets]
        before = [i for i in range(max(0, first - 4), first) if ctx.stems[i] in ctx.targets]
        score = 1.0 + 0.5 * ctx.proximity(first, last)
        if after:
            score += 2.0
        elif before:
            score += 1.0
        elif low in ("one", "a dozen"):
            score -= 1.0
        if not after and (re.fullmatch(_YEAR, value) or any(s <= vs and ve <= e for s, e in dates)):
            score -= 1.5
        if ctx.in_question(value):
            score -= 2.0
        if score <= 0:
            continue
        end = _extend_count(ctx, ve, last, after[0] if after else None)
        quality = 1.0 if after else _near(ctx.proximity(first, last)) * (0.6 if ctx.targets else 1.0)
        fact = Fact(m.start(), end, value, quality)
        if best is None or score > best[0]:
            best = (score, fact)
    return best[1] if best else None


def _extend_count(ctx: _Context, end: int, last: int, target: int | None) -> int:
    """End of the phrase "number + noun": through the counted noun (then "including ..."), or one word."""
    taken = 0
    i = last + 1
    past_target = False
    while i < len(ctx.words) and taken < 7:
        w = ctx.words[i]
        gap = ctx.sentence[end : w.start()]
        low = w.group().lower()
        if gap.strip() not in ("", "-") or low in _PHRASE_BOUNDARY:
            break
        if target is None:
            # No counted noun: keep one following word if it looks like a unit or noun ("36 missions").
            if taken == 0 and w.group().isalpha() and low not in STOPWORDS:
                end = w.end()
            break
        if past_target and i == target + 1 and low not in _COUNT_CONTINUE:
            break
        end = w.end()
        taken += 1
        if i == target:
            past_target = True
        i += 1
    return end


_POSSESSIVE = re.compile(r"(?:['\u2019]s?)?\Z")
_NEXT_WORD = re.compile(r"\s+(\w[\w\-]*)")


def _best_name(ctx: _Context, place: bool) -> Fact | None:
    """A capitalised span not taken from the question; for places, preferably after in/at/from."""
    if _title_case(ctx):
        return None  # a headline: every word is capitalised, so capitals say nothing about names
    best: tuple[float, Fact] | None = None
    words = ctx.words
    for first, last in _name_spans(ctx):
        prev = words[first - 1].group().lower() if first > 0 else ""
        after_prep = prev in _PLACE_PREPS
        score = 1.0 + 0.5 * ctx.proximity(first, last) + (0.3 if last > first else -0.3 if first == 0 else 0.0)
        quality = 1.0
        if place:
            score += 1.0 if after_prep else 0.0
            quality = 1.0 if after_prep else 0.6
        else:
            score += (0.3 if prev == "by" else 0.0) - (0.4 if after_prep else 0.0)
        if first == last and _demonym(words[first].group()):
            score -= 0.7  # "Russian" in "Russian defence officials" is neither a person nor a place
            quality *= 0.5
        start, end = words[first].start(), words[last].end()
        if ctx.sentence[end : end + 1] == ":" and all(_common_start(words[j].group()) for j in range(first)):
            score -= 1.0  # a label ("Honorable Mention: The Marlins ...", "Also Read: ..."): nearly any name wins
        name = ctx.sentence[start:end]
        owned = _NEXT_WORD.match(ctx.sentence, end)
        if owned and owned.group(1).lower() not in _PHRASE_BOUNDARY:
            name = _POSSESSIVE.sub("", name)  # "the Marlins' only team" -> "Marlins"; "at McDonald's." stays
        fact = Fact(start, start + len(name), name, quality * _near(ctx.proximity(first, last)))
        if best is None or score > best[0]:
            best = (score, fact)
    return best[1] if best else None


def _title_case(ctx: _Context) -> bool:
    long_words = [w.group() for w in ctx.words if len(w.group()) > 3]
    return len(long_words) >= 3 and sum(w[0].isupper() for w in long_words) >= 0.7 * len(long_words)


def _demonym(word: str) -> bool:
    return len(word) > 5 and word.lower().endswith(("ian", "ean", "ese", "ish"))


def _name_spans(ctx: _Context) -> list[tuple[int, int]]:
    """Word index ranges of capitalised spans ("US State Secretary John Kerry", "Zafaraneh, Rastan and
    Talbiseh"), without sentence-initial common words and without the names the question already has."""
    words = ctx.words
    out: list[tuple[int, int]] = []
    for group in _lists(ctx, _name_runs(ctx)):
        kept: list[tuple[int, int] | None] = []
        for first, last in group:
            if (first == 0 or _after_label(ctx, first)) and _common_start(words[first].group()):
                first += 1  # "According", also after a label: "Editor's Note: According to police, ..."
            # A title the question has ("Russian Foreign Minister" Sergey Lavrov) goes; a name that ends
            # in a word of the question is the question's own subject, not its answer.
            while first <= last and (ctx.asked(first) or _dangling(words[first].group())):
                first += 1
            ok = first <= last and (not ctx.asked(last) or ctx.stems[last] in ctx.targets)
            kept.append(
                (first, last) if ok and any(_is_name(words[j].group()) for j in range(first, last + 1)) else None
            )
        # Consecutive surviving members of a list stay together; a dropped member splits it.
        segment: list[tuple[int, int]] = []
        for member in [*kept, None]:
            if member is not None:
                segment.append(member)
            elif segment:
                out.append((segment[0][0], segment[-1][1]))
                segment = []
    return out


def _name_runs(ctx: _Context) -> list[tuple[int, int]]:
    """Runs of capitalised words, joined by "of", "the", "de", "&" or an initial ("John F. Kennedy")."""
    words, s = ctx.words, ctx.sentence

    def gap(a: int, b: int) -> str:
        return s[words[a].end() : words[b].start()].strip()

    runs: list[tuple[int, int]] = []
    for i, w in enumerate(words):
        if not _is_name(w.group()):
            continue
        if runs:
            first, prev = runs[-1]
            between = range(prev + 1, i)
            joined = len(between) <= 2 and all(words[j].group() in _CONNECTORS for j in between)
            plain = all(gap(j - 1, j) in ("", "&") for j in range(prev + 1, i + 1))
            initial = not between and gap(prev, i) == "." and len(words[prev].group()) == 1
            if (joined and plain) or initial:
                runs[-1] = (first, i)
                continue
        runs.append((i, i))
    return runs


def _lists(ctx: _Context, runs: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Group runs that form a list: "A and (the) B", "A, B and C" (the last joined by and/or)."""
    words, s = ctx.words, ctx.sentence

    def link(a: int, b: int) -> str | None:
        """How run end a is joined to run start b: ",", "and", or None."""
        between = [words[k].group() for k in range(a + 1, b)]
        text = s[words[a].end() : words[a + 1].start() if between else words[b].start()].strip()
        if not between:
            return "," if text == "," else None
        if between[0] in ("and", "or") and between[1:] in ([], ["the"]) and text in ("", ","):
            return (
                "and"
                if all(s[words[k - 1].end() : words[k].start()].strip() == "" for k in range(a + 2, b + 1))
                else None
            )
        return None

    groups: list[list[tuple[int, int]]] = []
    i = 0
    while i < len(runs):
        j = i
        while j + 1 < len(runs):
            kind = link(runs[j][1], runs[j + 1][0])
            if kind == ",":
                j += 1
                continue
            if kind == "and":
                j += 1
                break
            break
        if j > i and link(runs[j - 1][1], runs[j][0]) != "and":
            j = i  # commas without a closing and/or: not a list
        groups.append(runs[i : j + 1])
        i = j + 1
    return groups


def _after_label(ctx: _Context, i: int) -> bool:
    """Word i follows a colon: the start of what a label ("Photos:", "Editor's Note:") introduces."""
    return i > 0 and ctx.sentence[ctx.words[i - 1].end() : ctx.words[i].start()].strip() == ":"


def _common_start(word: str) -> bool:
    """A capitalised first word that is just the start of a sentence ("According", "However")."""
    low = word.lower()
    return low in STOPWORDS or low in _SENTENCE_STARTERS or (low.endswith(("ing", "ly")) and not word.isupper())


def _is_name(word: str) -> bool:
    if word[0].isupper():
        return word.lower() not in _NOT_NAMES or (len(word) > 1 and word.isupper())
    tail = word.rsplit("-", 1)[-1]
    return "-" in word and tail[:1].isupper()  # "al-Assad"


def _dangling(word: str) -> bool:
    return word.lower() in _CONNECTORS or word in ("and", "or")
