"""Synthetic news articles for the crash and concurrency tests: distinct, deterministic, each with a question.

Every article reports one unique fact (a town, its mayor, a project and its cost) inside filler paragraphs,
so several passages come out of it and a question about the fact has exactly one right article.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

_TOWNS = [
    "Alderbrook",
    "Brackenfield",
    "Corrowmere",
    "Dunhollow",
    "Elmstead",
    "Farrowgate",
    "Glenmarsh",
    "Harrowdene",
    "Juniperton",
    "Kestrelby",
    "Larkspur",
    "Millhaven",
    "Northcombe",
    "Oakhurst",
    "Pellingford",
    "Quarrystone",
    "Ravensworth",
    "Saltmarsh",
    "Thornbury",
    "Upperwick",
    "Valemount",
    "Westerfold",
    "Yarrowby",
    "Ashcombe",
    "Birchley",
    "Coldharbour",
    "Dewsbridge",
    "Eastmoor",
    "Fernhill",
    "Greystowe",
    "Hollinsend",
    "Ivybridge",
    "Kingsmere",
    "Longhaven",
    "Marshfield",
    "Netherby",
    "Orchardleigh",
    "Pinewood",
    "Redcliffe",
    "Stonebridge",
    "Tidewater",
    "Underhill",
    "Wyndham",
]
_FIRST = [
    "Helena",
    "Tomas",
    "Ingrid",
    "Marek",
    "Olivia",
    "Rafael",
    "Sunita",
    "Gregor",
    "Amara",
    "Lucian",
    "Petra",
    "Dmitri",
    "Fiona",
    "Kwame",
]
_LAST = [
    "Voss",
    "Calder",
    "Lindqvist",
    "Okafor",
    "Brannigan",
    "Moreau",
    "Hartley",
    "Novak",
    "Quill",
    "Sorensen",
    "Achebe",
    "Delacroix",
]
_PROJECTS = [
    "footbridge over the river",
    "public swimming pool",
    "library extension",
    "tram line to the station",
    "solar farm on the old airfield",
    "flood barrier along the harbour",
    "covered market hall",
    "cycle path to the coast",
    "concert hall in the old mill",
    "community hospital wing",
]
_FILLER = [
    "Residents gathered at the town hall on {day} evening to hear the plans presented in detail.",
    "Several shopkeepers said they welcomed the news but worried about months of roadworks.",
    "The council said construction traffic would be kept away from the primary school.",
    "A public consultation is due to open next month and will run for six weeks.",
    "Opposition councillors questioned whether the budget had been checked by independent auditors.",
    "Local historians asked that the work respect the character of the old market square.",
    "The regional transport authority said it had been consulted at an early stage.",
    "Environmental groups asked for a survey of the nesting birds along the riverbank.",
    "Officials promised regular updates on the council website and in the weekly newsletter.",
    "Some residents said the money would be better spent on repairing existing roads.",
    "A spokesperson for the contractor declined to comment on the timetable.",
    "The plans were drawn up after two years of discussion with neighbouring parishes.",
    "Business leaders said the project could attract visitors from across the region.",
    "Critics pointed out that a similar scheme had been abandoned a decade ago.",
    "The chamber of commerce invited members to a briefing on {day} morning.",
    "Weather permitting, surveyors will begin marking out the site in the spring.",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass(frozen=True)
class SyntheticArticle:
    index: int
    title: str
    text: str  # the file's content; the first line is the title
    question: str
    answer: str  # a fragment the correct citation's quote contains

    @property
    def filename(self) -> str:
        return f"article-{self.index:03d}.txt"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.filename
        path.write_text(self.text, encoding="utf-8")
        return path


def make_article(index: int, paragraphs: int = 6) -> SyntheticArticle:
    """Article `index` (stable across runs): about 5 passages at 120 words per passage."""
    rng = random.Random(1000 + index)
    town = _TOWNS[index % len(_TOWNS)] + ("" if index < len(_TOWNS) else f" {index // len(_TOWNS) + 1}")
    mayor = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    project = _PROJECTS[index % len(_PROJECTS)]
    cost = 3 + (index * 7) % 90
    year = 2026 + index % 5
    title = f"{town} approves the {project}"
    fact = (
        f"{mayor}, the mayor of {town}, said the new {project} will cost {cost} million euros "
        f"and should open in {year}."
    )
    body: list[str] = []
    for p in range(paragraphs):
        sentences = [s.format(day=rng.choice(_DAYS)) for s in rng.sample(_FILLER, 4)]
        if p == 1:
            sentences.insert(1, fact)
        if p == 0:
            sentences.insert(0, f"The council of {town} voted on {rng.choice(_DAYS)} to go ahead with the {project}.")
        body.append(" ".join(sentences))
    text = title + "\n\n" + "\n\n".join(body) + "\n"
    question = f"How much will the new {project} in {town} cost?"
    return SyntheticArticle(index, title, text, question, f"{cost} million euros")
