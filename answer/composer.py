"""Turn retrieved passages into a short answer that quotes its sources verbatim, or an honest refusal.

Every sentence considered comes from a retrieved passage and is addressed by offsets into its stored
article, so a quote is a slice of the article, never a rewrite; `verify_citations` re-checks that before
anything is returned.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from answer.facts import Fact, expected_fact, find_fact
from answer.lexical import (
    all_stems,
    asks_with_negation,
    coverage,
    holds_negation,
    idf,
    names_missing,
    question_names,
    question_terms,
)
from answer.models import Answer, Citation
from answer.sentences import asking_sentence, quote_spans
from corpus.models import Article
from engine.config import AnswerSettings
from index.models import Hit

log = logging.getLogger(__name__)

# Sentence score: what ranks the candidate sentences against each other.
W_COSINE = 0.6  # cosine(question, sentence): static vectors (answer/static.py) or MiniLM
W_LEXICAL = 0.4  # IDF-weighted share of the question's content words in the sentence
W_RANK = 0.15  # retrieval rank of the passage, RANK_DECAY ** rank
W_FACT = 0.15  # the sentence holds the kind of fact asked for (a number, a date, a name)
W_SOFT = 0.55  # how much of the question the sentence covers in meaning (StaticEncoder.soft_coverage)
W_NEGATION = 0.2  # taken off a sentence without the negation the question asks with (answer.lexical)
# A question that sets the scene before it asks ("A bipartisan group of senators announced a deal on gun
# safety this week, but some reforms were left out. Which measure did lawmakers leave out?"; 60 of the 206
# RealTimeQA questions, 4 of SQuAD's 6,078) is echoed by the article's own account of the scene, which holds
# most of its words and not the answer. The words of the sentence that asks weigh 1 + W_ASKED times their IDF
# in the word overlap that ranks the sentences (not in the signals the confidence reads). Chosen on
# RealTimeQA's dev weeks (answered with a supporting quote, shipped refusal rule: 48.5 % with none, 50.5 with
# 2, 50.5 with 3, 51.5 with 5, 50.5 with 10); SQuAD's dev split was unchanged with 5 (79.6 % support). With the
# code as it is now: dev weeks 48.5 -> 51.5, test weeks 47.6 -> 49.5. `ask` costs no more (median 26.3 ms with
# it, 28.4 without; the 206 alternated).
# The kind of fact asked for and a negation are read from the sentence that asks too: the scene asks for
# nothing ("... were not included in the deal. Which measure did lawmakers leave out?" asks with no negation).
W_ASKED = 5.0
RANK_DECAY = 0.85
# Soft coverage is computed for the 12 best candidates by the other cheap signals: a news question has ~46
# (median), and scoring them all took 5.7 ms (median, 40 RealTimeQA questions); on the SQuAD dev split the
# 12 best quote as many right sentences as all of them (79.2 %; 79.1 with 10, 79.0 with 8).
SOFT_CANDIDATES = 12
# W_LEXICAL, W_RANK and W_SOFT were chosen on the SQuAD 2.0 dev split (coordinate search on the sentence it
# would quote, W_COSINE fixed): 77.1 % of its answerable questions with the weights before (0.3, 0.1, no soft
# coverage), 79.2 % with these; 78.4 % when each pair of its 8 titles was scored with weights chosen on the
# other 6 (fourfold cross-validation).
# Confidence: a logistic of the best sentence's cosine (MiniLM's, also when static vectors ranked the
# sentences) and its soft coverage of the question, lower when the fact asked for (a number, a date, a name)
# is not in it or when the question asks with a negation the sentence lacks, higher when the passages
# retrieved are close to the question in meaning (an off-collection question finds only distant ones).
# Fitted by `python -m scripts.fit_confidence` on the SQuAD 2.0 dev split only: its 2,805 questions over the
# 646 paragraphs (positive: the sentence it would quote holds a gold answer; negative: a wrong sentence or an
# unanswerable question) and its 1,278 answerable questions over the RealTimeQA news (all negative), with the
# shipped settings. Dev AUROC 0.834 (0.810 without the negation signal). SQuAD 2.0's unanswerable questions
# were often written by adding a negation to an answerable one (Rajpurkar et al. 2018 name it among their
# kinds): there the signal is strong (133 dev questions have it, 132 of them unanswerable), which the weight
# reflects; elsewhere it fires rarely (6 of the 206 RealTimeQA questions ask with a negation, and 1 of
# their quotes lacks one). Refitted, unchanged in method, after questions stopped being quoted (dev AUROC
# 0.834 either way), and again with the question's names and numbers that the quoted sentence's passage never
# mentions (answer.lexical.names_missing; SQuAD 2.0's "entity swap" kind, and a question of another
# collection; the article's title counts as mentioned): dev AUROC 0.835 -> 0.837. Kept because the refusal
# rule, rerun with it on the dev halves (scripts.choose_refusal), refuses fewer of SQuAD's dev answerable
# questions (18.9 % against 20.8 in a refit without it) at the same share of RealTimeQA's dev weeks (6.8 %);
# other signals tried with it are in docs/history.md. The refusal thresholds (min_confidence, off_topic_*)
# were chosen on the dev halves after it: docs/benchmarks.md.
C_BIAS = -6.40
CONFIDENCE_WEIGHTS = {
    "cosine": 5.24,
    "soft": 3.65,
    "fact_missing": -0.86,
    "passage_cosine": 0.44,
    "negation_missing": -7.72,
    "names_missing": -1.27,
}
# Further citations: close in score to the best, and saying the same thing (the same fact, or a sentence
# close in meaning), but not a near copy of a quote already shown.
SUPPORT_RATIO = 0.8
SUPPORT_COSINE = 0.6
DUPLICATE_COSINE = 0.95
CLOSEST = 2
NOT_FOUND = "I couldn't find that in the articles."

_MARKERS = re.compile(r" (?P<m>(?:\[\d+\])+)\.\Z")  # "36 civilians [1][2]." -> "[1][2]"


class Encoder(Protocol):
    """What the answer step needs from the embedder: L2-normalised vectors, one row per text. An encoder
    whose cosines run on another scale than MiniLM's says so with a `support_cosine` attribute."""

    def encode(self, texts: list[str]) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


class CitationError(RuntimeError):
    """An answer quotes text that is not in its article, or cites a passage that was not retrieved."""


@dataclass(frozen=True)
class _Sentence:
    hit: Hit
    rank: int  # position of its passage among the hits
    article: Article
    start: int  # offsets in the article
    end: int

    @property
    def text(self) -> str:
        return self.article.text[self.start : self.end]


def compose(
    question: str,
    hits: Sequence[Hit],
    articles: Mapping[int, Article],
    embedder: Encoder,
    settings: AnswerSettings,
    *,
    query_vector: np.ndarray | None = None,
    top_k: int | None = None,
    sentence_encoder: Encoder | None = None,
    soft_coverage: Callable[[str, list[str]], np.ndarray] | None = None,
) -> Answer:
    """Answer `question` from the best sentences of the first `top_k` hits (default `settings.top_k`),
    citing them; abstain when unsure.

    `embedder` (with `query_vector`, the question's vector from it, if known) scores the sentences; given
    a cheaper `sentence_encoder` (answer/static.py), that one ranks them and `embedder` embeds only the
    best `settings.rerank_sentences` (re-ranked by the mean of both cosines): the confidence needs the best
    one's cosine on the scale it was fitted on. `soft_coverage` (StaticEncoder.soft_coverage) scores how
    much of the question each sentence covers in meaning, for the ranking and the confidence; without it,
    the confidence reads the word overlap in its place.
    """
    t0 = time.perf_counter()
    used = list(hits[: top_k or settings.top_k])
    cands = _candidates(used, articles)
    if not cands or not question.strip():
        return _finish(_refusal(question, 0.0, ()), articles, used, t0)

    terms = question_terms(question)
    stems = [all_stems(c.text) for c in cands]
    weights = idf(terms, stems)
    lexical = np.array([coverage(terms, weights, s) for s in stems])
    asking = asking_sentence(question)
    asked_part = asking or question  # the scene before it asks for no kind of fact, with no negation
    if asking is not None and W_ASKED:
        asked = set(question_terms(asking))
        stressed = {t: w * (1 + W_ASKED) if t in asked else w for t, w in weights.items()}
        ranking_lexical = np.array([coverage(terms, stressed, s) for s in stems])
    else:
        ranking_lexical = lexical
    expect = expected_fact(asked_part)
    facts = [find_fact(expect, c.text, question) if expect else None for c in cands]
    fact_quality = np.array([f.quality if f else 0.0 for f in facts])
    rank = np.array([RANK_DECAY**c.rank for c in cands])
    asks_negation = asks_with_negation(asked_part)  # checked once; each sentence only for its own negation
    negation = np.array([asks_negation and not holds_negation(c.text) for c in cands], dtype=float)
    cheap = W_LEXICAL * ranking_lexical + W_RANK * rank + W_FACT * fact_quality - W_NEGATION * negation
    soft = lexical  # what the confidence reads without soft coverage

    def narrow(n: int) -> None:  # keep the n best candidates by the cheap signals, in their order
        nonlocal cands, lexical, cheap, soft, facts, negation
        if n and len(cands) > n:
            keep = sorted(int(i) for i in np.argsort(-cheap, kind="stable")[:n])
            cands, lexical, cheap, soft = [cands[i] for i in keep], lexical[keep], cheap[keep], soft[keep]
            negation = negation[keep]
            facts = [facts[i] for i in keep]

    # Embedding the sentences is the answer step's whole cost: only the most promising ones by the cheap
    # signals are embedded and can be quoted (answer.embed_sentences; 0 embeds them all).
    limit = settings.embed_sentences
    if soft_coverage is not None:
        narrow(limit and max(limit, SOFT_CANDIDATES))
        soft = soft_coverage(question, [c.text for c in cands])
        cheap = cheap + W_SOFT * soft
    narrow(limit)

    ranker = sentence_encoder or embedder
    qvec = np.asarray(query_vector if query_vector is not None else embedder.encode_query(question))
    rank_qvec = ranker.encode_query(question) if sentence_encoder is not None else qvec
    vecs = np.asarray(ranker.encode([c.text for c in cands]), dtype=np.float32)
    cosine = vecs @ rank_qvec.astype(np.float32)
    score = W_COSINE * cosine + cheap
    order = [int(i) for i in np.argsort(-score, kind="stable")]

    model_cosine: dict[int, float] = {}
    if sentence_encoder is not None:
        # MiniLM embeds the best (the confidence needs its cosine on MiniLM's scale), or the best few: the
        # two cosines averaged put the right sentence first more often than either alone (SQuAD dev split:
        # 78.2 % with the two best re-ranked, 77.1 % static alone, 76.6 % MiniLM alone on all five), at
        # 6 to 11 ms more per question on the news (docs/benchmarks.md), which the 40 ms median target has no room for.
        top = order[: settings.rerank_sentences]
        found = embedder.encode([cands[i].text for i in top]) @ qvec.astype(np.float32)
        model_cosine = {i: float(c) for i, c in zip(top, found, strict=True)}
        mixed = {i: W_COSINE * (model_cosine[i] + cosine[i]) / 2 + cheap[i] for i in top}
        order = sorted(top, key=lambda i: -mixed[i]) + order[len(top) :]
    best = order[0]
    best_cosine = model_cosine.get(best, float(cosine[best]))
    passage_cosines = [h.dense_score for h in used if h.dense_score is not None]
    signals = {
        "cosine": best_cosine,
        "lexical": float(lexical[best]),
        "fact_missing": float(expect is not None and facts[best] is None),
        # bm25 mode scores no passage by meaning: the best sentence's cosine stands in
        "passage_cosine": float(max(passage_cosines, default=best_cosine)),
        "soft": float(soft[best]),
        "negation_missing": float(negation[best]),
        # how many of the question's content words the sentence holds, each weighted by its IDF over the
        # question's mean: the share alone called one word of a one-word question "all of it"
        "words_held": float(lexical[best]) * len(terms),
        # the question's names and numbers that neither the passage nor its article's title mentions ("When
        # did the Sydney bridge open?" of an article about another bridge): SQuAD 2.0's "entity swap", and a
        # question of another collection; the title names the subject a later passage calls "the bridge"
        "names_missing": names_missing(
            question_names(question), f"{cands[best].article.title}\n{cands[best].hit.chunk.text}"
        ),
    }
    confidence = _confidence(signals)
    if refuses(signals, settings):
        closest = tuple(_cite(cands[i], n, float(score[i])) for n, i in enumerate(order[:CLOSEST], 1))
        return _finish(_refusal(question, confidence, closest, signals), articles, used, t0)

    chosen = [best]
    support_cosine = float(getattr(ranker, "support_cosine", SUPPORT_COSINE))  # static vectors run higher
    for i in order[1:]:
        if len(chosen) >= settings.max_citations or score[i] < SUPPORT_RATIO * score[best] or score[best] <= 0:
            break
        if _supports(i, best, chosen, cands, vecs, facts[best], support_cosine):
            chosen.append(i)
    citations = tuple(_cite(cands[i], n, float(score[i])) for n, i in enumerate(chosen, 1))
    markers = "".join(f"[{c.n}]" for c in citations)
    fact = facts[best]
    core = cands[best].text[fact.start : fact.end] if fact else cands[best].text
    text = f"{core.rstrip(' .')} {markers}."
    answer = Answer(question, text, False, confidence, citations, signals=signals)
    return _finish(answer, articles, used, t0)


def verify_citations(answer: Answer, articles: Mapping[int, Article], hits: Sequence[Hit]) -> None:
    """Raise CitationError unless every quote is its article's text at its offsets, inside a retrieved
    passage, and the short answer is itself part of the first quote."""
    by_chunk: dict[int, list[Hit]] = {}
    for h in hits:
        by_chunk.setdefault(h.chunk.id, []).append(h)
    if answer.abstained and answer.citations:
        raise CitationError("an abstention carries citations")
    for c in (*answer.citations, *answer.closest):
        article = articles.get(c.article_id)
        if article is None:
            raise CitationError(f"citation [{c.n}] names article {c.article_id}, which is not loaded")
        if not (0 <= c.start < c.end <= len(article.text)) or article.text[c.start : c.end] != c.quote:
            raise CitationError(f"citation [{c.n}] is not article {c.article_id}'s text at {c.start}:{c.end}")
        if not any(
            h.chunk.article_id == c.article_id and h.chunk.start <= c.start and c.end <= h.chunk.end
            for h in by_chunk.get(c.chunk_id, ())
        ):
            raise CitationError(f"citation [{c.n}] cites passage {c.chunk_id}, which was not retrieved there")
    numbers = [c.n for c in answer.citations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise CitationError(f"citations are numbered {numbers}, not 1..{len(numbers)}")
    if answer.citations:
        tail = _MARKERS.search(answer.text)
        cited = [int(n) for n in re.findall(r"\d+", tail.group("m"))] if tail else []
        core = answer.text[: tail.start()] if tail else ""
        if cited != numbers:
            raise CitationError(f"the answer text cites {cited}, the citations are {numbers}")
        if not core or core not in answer.citations[0].quote:
            raise CitationError("the short answer is not part of the quote it cites")


def _candidates(hits: Sequence[Hit], articles: Mapping[int, Article]) -> list[_Sentence]:
    """The sentences of the hits' passages, each once (overlapping passages repeat sentences), but not
    their questions: a question asserts nothing, and a page that asks the user's question (a quiz, an
    FAQ's heading) would otherwise be quoted as its own answer."""
    out: list[_Sentence] = []
    seen: set[tuple[int, int, int]] = set()
    for rank, hit in enumerate(hits):
        chunk = hit.chunk
        article = articles.get(chunk.article_id)
        if article is None:
            log.warning("passage %d: article %d is not loaded; skipped", chunk.id, chunk.article_id)
            continue
        if article.text[chunk.start : chunk.end] != chunk.text:
            log.warning("passage %d no longer matches article %d; skipped", chunk.id, chunk.article_id)
            continue
        for s, e in quote_spans(chunk.text, questions=False):
            key = (article.id, chunk.start + s, chunk.start + e)
            if key in seen or not any(ch.isalnum() for ch in chunk.text[s:e]):
                continue
            seen.add(key)
            out.append(_Sentence(hit, rank, article, key[1], key[2]))
    return out


def refuses(signals: Mapping[str, float], settings: AnswerSettings) -> bool:
    """Whether the answer step refuses, from its best sentence's signals (also scripts.choose_refusal's rule).

    Two questions to refuse: is the collection about this at all (no passage close in meaning, and the best
    sentence holds fewer than `off_topic_words` of the question's words, IDF-weighted), and does the best
    sentence answer it (the confidence)? The first catches questions asked of the wrong collection without
    refusing the news questions whose answers the confidence, fitted on SQuAD, doubts (docs/benchmarks.md)."""
    off_topic = (
        settings.off_topic_cosine > 0  # 0 turns the rule off (a cosine can be negative)
        and signals["passage_cosine"] < settings.off_topic_cosine
        and signals["words_held"] < settings.off_topic_words
    )
    return off_topic or _confidence(signals) < settings.min_confidence


def _confidence(signals: Mapping[str, float]) -> float:
    """How likely the best sentence answers the question, in [0, 1] (a logistic, roughly calibrated)."""
    z = C_BIAS + sum(CONFIDENCE_WEIGHTS[name] * signals[name] for name in CONFIDENCE_WEIGHTS)
    return 1.0 / (1.0 + math.exp(-z))


def _supports(
    i: int,
    best: int,
    chosen: list[int],
    cands: list[_Sentence],
    vecs: np.ndarray,
    fact: Fact | None,
    support_cosine: float = SUPPORT_COSINE,
) -> bool:
    """Whether sentence i backs the answer from another passage without repeating a chosen quote."""
    cand = cands[i]
    if any(cands[j].hit.chunk.id == cand.hit.chunk.id for j in chosen):
        return False
    norm = " ".join(cand.text.lower().split())
    for j in chosen:
        if " ".join(cands[j].text.lower().split()) == norm or float(vecs[i] @ vecs[j]) >= DUPLICATE_COSINE:
            return False
    if fact is not None:
        return re.search(rf"(?<!\w){re.escape(fact.key)}(?!\w)", cand.text) is not None
    return float(vecs[i] @ vecs[best]) >= support_cosine


def _cite(s: _Sentence, n: int, score: float) -> Citation:
    a = s.article
    return Citation(
        n=n,
        article_id=a.id,
        chunk_id=s.hit.chunk.id,
        quote=s.text,
        start=s.start,
        end=s.end,
        score=score,
        title=a.title,
        url=a.url,
        outlet=a.outlet,
        published=a.published,
        added_at=a.added_at,
    )


def _refusal(
    question: str, confidence: float, closest: tuple[Citation, ...], signals: dict[str, float] | None = None
) -> Answer:
    return Answer(question, NOT_FOUND, True, confidence, (), closest, signals=signals or {})


def _finish(answer: Answer, articles: Mapping[int, Article], hits: Sequence[Hit], t0: float) -> Answer:
    """Check the citations (a failure here is a bug, never output) and record the time spent."""
    verify_citations(answer, articles, hits)
    answer.timings_ms["answer"] = round((time.perf_counter() - t0) * 1000.0, 2)
    return answer
