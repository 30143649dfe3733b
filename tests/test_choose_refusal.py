"""The refusal rule's chooser (scripts/choose_refusal.py) on made-up signals: what it picks, and when nothing
meets its bounds."""

from __future__ import annotations

import math

from answer.composer import C_BIAS, CONFIDENCE_WEIGHTS
from engine.config import AnswerSettings
from scripts.choose_refusal import Asked, choose, refused_share


def asked(kind: str, confidence: float, passage_cosine: float, words_held: float, answerable: bool = True) -> Asked:
    """An answer whose signals give `confidence` (carried by the sentence cosine; the other signals at 0)."""
    logit = math.log(confidence / (1 - confidence))
    cosine = (logit - C_BIAS - CONFIDENCE_WEIGHTS["passage_cosine"] * passage_cosine) / CONFIDENCE_WEIGHTS["cosine"]
    signals = dict.fromkeys(("soft", "fact_missing", "negation_missing", "names_missing", "lexical"), 0.0)
    signals.update(cosine=cosine, passage_cosine=passage_cosine, words_held=words_held)
    return Asked(kind, answerable, signals)


def far_off(n: int) -> list[Asked]:  # no passage close in meaning, one word held, unsure: refused by the gate
    return [asked("off", 0.27, 0.45, 1.0) for _ in range(n)]


CLOSE_OFF = [asked("off", 0.88, 0.65, 3.0)]  # an off-collection answer no setting here refuses
NEWS = [asked("news", 0.88, 0.7, 3.0) for _ in range(8)]
NEWS += [asked("news", 0.5, 0.5, 3.0), asked("news", 0.27, 0.5, 1.0)]
SQUAD = [asked("squad", 0.73, 0.58, 1.0), asked("squad", 0.27, 0.7, 3.0), asked("squad", 0.05, 0.7, 3.0, False)]

A = (0.1, 0.6, 2.0)  # the gate refuses the far ones, and the first SQuAD answer (cosine 0.58 < 0.6)
B = (0.3, 0.0, 2.0)  # no gate; the threshold refuses the far ones, and the second SQuAD answer (0.27)
C = (0.6, 0.6, 2.0)  # refuses 2 of the 10 news answers: over the 10 % bound
D = (0.1, 0.0, 2.0)  # refuses no off-collection answer: under the 95.5 % bound
E = (0.1, 0.55, 2.0)  # like A, but the first SQuAD answer's passages are close enough


def test_nothing_is_chosen_when_no_setting_keeps_both_bounds() -> None:
    assert choose(far_off(19) + CLOSE_OFF + NEWS + SQUAD, [A, B, C, D, E]) == (None, 0)  # 19 of 20: 95 %


def test_the_chooser_keeps_the_bounds_then_refuses_the_fewest_answerable_questions() -> None:
    choice, met = choose(far_off(39) + CLOSE_OFF + NEWS + SQUAD, [A, B, C, D, E])
    assert met == 3  # A, B, E: 39 of 40 off-collection refused, 1 of 10 news
    assert choice is not None
    assert (choice.min_confidence, choice.off_topic_cosine, choice.off_topic_words) == E
    assert (choice.off_refused, choice.news_refused, choice.squad_answerable_refused) == (39 / 40, 0.1, 0.0)


def test_an_answer_with_nothing_to_quote_is_refused_by_every_setting() -> None:
    nothing = [Asked("news", True, {})]
    assert refused_share(nothing, AnswerSettings(min_confidence=0.0, off_topic_cosine=0.0)) == 1.0
