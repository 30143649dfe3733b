"""The console chat: the bot's conversation in a terminal, on the same engine, for use without a token."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from bot import render
from engine.errors import UserError
from engine.service import AddResult, Engine

HELP = """Ask a question about the articles, or:
  /add URL|PATH...   add articles (links, files, folders)
  /paste TITLE       add pasted text: type it, then a line with a single '.'
  /list              list the articles
  /remove ID         remove an article
  /help              this help
  /quit              leave (or Ctrl-D)"""


def chat(engine: Engine, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    def say(text: str = "") -> None:
        print(text, file=stdout, flush=True)

    n = engine.count()
    say(f"articlebot: {n} article{'s' if n != 1 else ''} in the collection. Ask a question; /help for more.")
    interactive = stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        line = line.strip()
        if not line:
            continue
        try:
            if not _handle(engine, line, stdin, say):
                return 0
        except UserError as exc:
            say(f"Sorry: {exc}")
        say()


def _handle(engine: Engine, line: str, stdin: TextIO, say: Callable[[str], None]) -> bool:
    command, _, rest = line.partition(" ")
    if command in ("/quit", "/exit"):
        return False
    if command in ("/help", "/start"):
        say(HELP)
    elif command == "/list":
        articles = engine.list_articles()
        say("\n".join(render.article_line(a) for a in articles) or "No articles yet.")
    elif command == "/add":
        if not rest.strip():
            raise UserError("Give a link or a file path after /add.")
        for r in engine.add(rest.split(), added_by="console"):
            say(_added(r))
    elif command == "/paste":
        if stdin.isatty():
            say("Paste the text, then a line with a single '.' to add it (Ctrl-D cancels).")
        lines = []
        for raw in iter(stdin.readline, ""):
            if raw.strip() == ".":
                break
            lines.append(raw.rstrip("\n"))
        else:  # the input ended first: a cut-off paste (or Ctrl-D) is not an article
            raise UserError("The text ended before a line with a single '.': nothing was added.")
        say(_added(engine.add_text("\n".join(lines), title=rest.strip() or None, added_by="console")))
    elif command == "/remove":
        number = render.positive_number(rest)
        if number is None:
            raise UserError("Give the article's number after /remove, e.g. /remove 3.")
        article = engine.remove(number)
        say(f"Removed #{article.id} {article.title}.")
    elif command.startswith("/"):
        say(f"Unknown command {command}. /help lists what I understand.")
    else:
        say(render.answer_text(engine.ask(line)))
    return True


def _added(r: AddResult) -> str:
    if r.article:
        return f"Added #{r.article.id} {r.article.title} ({render.plural(r.article.passages, 'passage')})."
    if r.duplicate:
        return f"Already have it: #{r.duplicate.id} {r.duplicate.title}."
    return f"Could not add it: {r.error}"
