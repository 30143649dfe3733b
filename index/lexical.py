"""Turn a user's question into an FTS5 query that can never be a syntax error.

Users type anything: quotes, `*`, `NEAR(`, `AND`, emoji. Each word is passed to FTS5 as a quoted string
(so operators lose their meaning) and the words are OR-ed, letting BM25 rank passages by how many of the
question's informative words they contain.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

MAX_TERMS = 32
T = TypeVar("T")  # a word, or its index (index/bm25.py keeps tokens in step with it)

# Words too common to say anything about which passage answers a question.
_STOPWORDS = (
    "a about above after again against all am an and any are aren't as at be because been before being "
    "below between both but by can can't could couldn't did didn't do does doesn't doing don't down during "
    "each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's "
    "hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself "
    "let's me more most mustn't my myself no nor not of off on once only or other ought our ours ourselves "
    "out over own same shan't she she'd she'll she's should shouldn't so some such than that that's the "
    "their theirs them themselves then there there's these they they'd they'll they're they've this those "
    "through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when "
    "when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll "
    "you're you've your yours yourself yourselves tell know say said says did does please s t"
)
STOPWORDS = frozenset(_STOPWORDS.split())

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def query_terms(question: str) -> list[str]:
    """The informative words of a question, lowercased, in order, without repeats."""
    seen: dict[str, None] = {}
    for m in _TOKEN.finditer(question):
        word = m.group(0).lower().replace("’", "'")
        if word in STOPWORDS:
            continue
        # FTS5's unicode61 tokenizer splits on apostrophes: "Obama's" -> obama, s. Keep the stem.
        for part in word.split("'"):
            if part and part not in STOPWORDS:
                seen.setdefault(part, None)
        if len(seen) >= MAX_TERMS:
            break
    return list(seen)[:MAX_TERMS]


def terms_query(terms: Sequence[str]) -> str:
    """FTS5 MATCH expression OR-ing the given terms, each quoted (operators lose their meaning); "" if none."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def rarest_terms(terms: Sequence[T], doc_freqs: Sequence[int], limit: int) -> list[T]:
    """The `limit` terms found in the fewest passages (0 = no limit), in question order; terms that no
    passage holds are dropped (they cannot match). A long question OR-ing common words makes FTS5 score
    most of the collection; its rare words decide BM25's first ranks anyway."""
    held = [(n, i) for i, n in enumerate(doc_freqs) if n > 0]
    keep = sorted(held)[:limit] if limit > 0 else held
    return [terms[i] for i in sorted(i for _, i in keep)]
