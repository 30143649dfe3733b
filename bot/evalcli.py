"""`articlebot eval`: placeholder parser until the evaluation lands (see docs/architecture.md)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.config import Settings
from engine.errors import UserError


def add_eval_parser(sub: Any) -> None:
    e = sub.add_parser("eval", help="measure retrieval, answer and abstention quality on a question set")
    e.add_argument("questions", help="a JSONL file of your questions, a SQuAD 2.0 file, or a RealTimeQA dir")


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("eval is not available yet")
