"""`articlebot`: the command line. Exit codes: 0 success, 1 user error, 2 usage."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot import render
from corpus.extract import decode_text
from corpus.models import iso_day
from engine.config import Settings, load_settings
from engine.errors import UserError

if TYPE_CHECKING:
    from engine.service import Engine

log = logging.getLogger("articlebot")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _day(value: str) -> datetime.date:
    day = iso_day(value)
    if day is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; write it as YYYY-MM-DD")
    return day


def _positive(value: str) -> int:
    number = render.positive_number(value)
    if number is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name (`articlebot --data-dir D list` and
    `articlebot list --data-dir D`); after it they override, so their default there is 'not given'."""
    p = argparse.ArgumentParser(add_help=False)
    unset: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument(
        "--config", help="settings file (default: config.yaml beside the code, or ARTICLEBOT_CONFIG)", **unset
    )
    p.add_argument("--data-dir", help="where the database and index live (or ARTICLEBOT_DATA_DIR)", **unset)
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens", **unset)
    return p


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="articlebot",
        description="Answers questions about your articles, with citations.",
        parents=[_common(defaults=True)],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(defaults=False)]

    a = sub.add_parser(
        "add",
        help="add articles: URLs, files (.txt .md .html .pdf .docx), directories, or '-' for pasted text",
        parents=common,
    )
    a.add_argument("sources", nargs="+", metavar="URL|PATH|-")
    a.add_argument("--title", help="title to use (for a single article; pasted text: else its first line)")
    a.add_argument("--by", default="cli", help="who added it (recorded with the article)")
    a.add_argument("--if-empty", action="store_true", help="add only when the collection is empty")

    q = sub.add_parser(
        "ask", help="ask a question ('-' reads one question per line from standard input)", parents=common
    )
    q.add_argument("question")
    q.add_argument("--json", action="store_true", help="print one JSON object per question")
    q.add_argument("-k", type=_positive, default=None, help="passages to retrieve")
    q.add_argument("--mode", choices=["hybrid", "bm25", "dense"], help="retrieval mode (default: config)")
    q.add_argument(
        "--asked-on",
        type=_day,
        metavar="YYYY-MM-DD",
        help="the day the question is asked (default: today): articles published just before it come first",
    )

    ls = sub.add_parser("list", help="list the articles", parents=common)
    ls.add_argument("--json", action="store_true")

    rm = sub.add_parser("remove", help="remove an article by its number", parents=common)
    rm.add_argument("id", type=int)

    sub.add_parser(
        "reindex", help="re-chunk and re-embed every article (after a model or chunking change)", parents=common
    )
    sub.add_parser("check", help="check that the index agrees with the store and the settings", parents=common)
    sub.add_parser("chat", help="console chat on the same engine as the bot", parents=common)

    s = sub.add_parser("serve", help="run the Telegram bot (token from TELEGRAM_BOT_TOKEN)", parents=common)
    s.add_argument("--webhook", metavar="URL", help="use a webhook at this public URL instead of long polling")
    s.add_argument("--listen", default="127.0.0.1", help="webhook listen address")
    s.add_argument("--port", type=int, default=8443, help="webhook listen port")

    from bot.evalcli import add_eval_parser

    add_eval_parser(sub, common)
    return p


def _engine(settings: Settings, progress: bool = False) -> Engine:
    from engine.service import Engine

    engine = Engine(settings, progress=progress)
    _notes(engine)
    return engine


_shown: set[str] = set()


def _notes(engine: Engine) -> None:
    """What the engine noticed and did (a repaired index, a cache it could not save), told once each."""
    for notice in engine.notices:
        if notice not in _shown:
            _shown.add(notice)
            print(f"note: {notice}", file=sys.stderr)


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    pasted = "-" in args.sources
    if pasted and len(args.sources) > 1:
        raise UserError("'-' (pasted text from standard input) is added alone: give it no other source.")
    if args.title and len(args.sources) > 1:
        raise UserError(f"--title names one article, and {len(args.sources)} sources were given: add them one by one.")
    engine = _engine(settings, progress=sys.stderr.isatty())
    if args.if_empty and engine.count():
        return 0
    failed = False
    if pasted:  # read as a file is: the terminal's encoding is no guide to where the text came from
        text = decode_text("pasted text", sys.stdin.buffer.read())
        results = [engine.add_text(text, title=args.title, added_by=args.by)]
    else:
        results = engine.add(args.sources, title=args.title, added_by=args.by)
    for r in results:
        if r.article:
            print(f"added      #{r.article.id}  {r.article.title}  ({render.plural(r.article.passages, 'passage')})")
        elif r.duplicate:
            print(f"duplicate  #{r.duplicate.id}  {r.duplicate.title}  ({r.source} is already in the collection)")
        else:
            failed = True
            print(f"error      {r.error}", file=sys.stderr)
    _notes(engine)
    return 1 if failed else 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    questions = sys.stdin if args.question == "-" else [args.question]
    engine = None
    failed = False
    for line in questions:
        question = line.rstrip("\n")
        if args.question == "-" and not question.strip():
            continue
        try:
            engine = engine or _engine(settings)
            answer = engine.ask(question, k=args.k, mode=args.mode, asked_on=args.asked_on)
        except UserError as exc:
            if args.question != "-":
                raise
            failed = True
            if args.json:
                print(json.dumps({"question": question, "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(render.answer_json(answer), ensure_ascii=False), flush=True)
        else:
            print(render.answer_text(answer), flush=True)
            if args.question == "-":
                print(flush=True)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from corpus.store import Store
    from engine.service import DB_NAME

    store = Store(settings.data_dir / DB_NAME) if (settings.data_dir / DB_NAME).exists() else None
    articles = store.list_articles() if store else []
    if args.json:
        print(json.dumps([render.article_json(a) for a in articles], ensure_ascii=False, indent=1))
    elif not articles:
        print("No articles yet. Add some with: articlebot add URL|PATH")
    else:
        for a in articles:
            print(render.article_line(a))
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings)
    article = engine.remove(args.id)
    print(f"removed    #{article.id}  {article.title}")
    _notes(engine)
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    report = _engine(settings, progress=sys.stderr.isatty()).reindex()
    print(f"reindexed  {report.articles} articles, {report.passages} passages in {report.seconds:.1f} s")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings)
    problems = engine.check()
    for p in problems:
        print(f"problem: {p}")
    if not problems:
        st = engine.stats()
        print(f"ok: {st.articles} articles, {st.passages} passages, {st.index_vectors} vectors in the index")
    return 1 if problems else 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import chat

    return chat(_engine(settings))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if not os.environ.get("TELEGRAM_BOT_TOKEN"):
        raise UserError("Set TELEGRAM_BOT_TOKEN to run the Telegram bot (or use `articlebot chat`).")
    from bot.telegram.app import serve

    serve(settings, _engine(settings), webhook_url=args.webhook, listen=args.listen, port=args.port)
    return 0


COMMANDS = {
    "add": cmd_add,
    "ask": cmd_ask,
    "list": cmd_list,
    "remove": cmd_remove,
    "reindex": cmd_reindex,
    "check": cmd_check,
    "chat": cmd_chat,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose or args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.verbose:  # what the extractors grumble about a file they read anyway ("invalid pdf header")
        for name in ("pypdf", "trafilatura", "htmldate", "courlan"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        settings = load_settings(args.config, args.data_dir)
        return _run(args, settings)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output stopped reading (`| head`): not an error to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit would fail again
        return 141  # as a shell reports a command ended by SIGPIPE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "eval":
        from bot.evalcli import cmd_eval

        return cmd_eval(args, settings)
    return COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
