"""A loopback Bot API server: the bot talks to it as to api.telegram.org, the test acts as the users.

It speaks the Bot API's JSON shapes ({"ok": true, "result": ...} / {"ok": false, "error_code": ...,
"description": ...}) and returns the real server's error texts for the mistakes a bot can make: bad HTML,
a message over 4,096 characters, editing a message into itself, answering a callback query twice, a
reply to a message that does not exist, callback data over 64 bytes. Unknown methods get 404 and are
logged in `unknown_methods`, so a test can assert the bot calls only what is emulated.

Updates are delivered by real long polling (getUpdates with offset/limit/timeout) or, after setWebhook,
POSTed to the bot's webhook with its secret token. Every message the bot sends or edits is recorded
(`Sent`) and the test side waits for them with bounded timeouts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.botapi.telegram_html import HtmlError, parse_html, utf16_len

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CALLBACK_ANSWER = 200
MAX_DOWNLOAD = 20 * 1024 * 1024  # bots may download files up to 20 MB
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_COMMAND = re.compile(r"(?<![\w/@])/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?")
_MENTION = re.compile(r"(?<![\w@/])@[a-zA-Z0-9_]{5,32}")
_BOT_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")

JSON = dict[str, Any]


class ApiError(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Sent:
    """A message the bot sent, in its current state (edits applied) and with its history."""

    chat_id: int
    message_id: int
    text: str  # as Telegram shows it: entities parsed out
    html: str  # as the bot sent it
    entities: list[JSON]
    reply_to: int | None
    reply_markup: JSON | None
    at: float  # time.monotonic() when sent
    edits: list[tuple[float, str]] = field(default_factory=list)  # (when, new html)
    topic: int | None = None  # the forum topic it was sent to (message_thread_id); None: the chat's general one

    def entity_texts(self, kind: str) -> list[str]:
        """Text covered by each entity of a type ('blockquote', 'text_link', 'bold', ...)."""
        units = self.text.encode("utf-16-le")
        return [
            units[2 * int(e["offset"]) : 2 * (int(e["offset"]) + int(e["length"]))].decode("utf-16-le")
            for e in self.entities
            if e["type"] == kind
        ]

    def links(self) -> list[str]:
        return [str(e["url"]) for e in self.entities if e["type"] == "text_link"]

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


@dataclass(frozen=True)
class BotEvent:
    """Something the bot did, as passed to listeners: a message sent or edited, or a callback answered."""

    kind: str  # "sent" | "edited" | "answered"
    at: float  # time.monotonic()
    sent: Sent | None = None  # for "sent" and "edited"
    query_id: str | None = None  # for "answered"
    answer: JSON | None = None  # for "answered": text, show_alert, at


Listener = Callable[[BotEvent], None]


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    next_message_id: int = 1
    messages: dict[int, JSON] = field(default_factory=dict)
    forum: bool = False  # a supergroup with topics

    def as_json(self) -> JSON:
        out: JSON = {"id": self.id, "type": self.type}
        if self.forum:
            out["is_forum"] = True
        if self.title:
            out["title"] = self.title
        else:
            out["first_name"] = f"User{self.id}"
        return out


def _entities_for(text: str) -> list[JSON]:
    """The entities Telegram's clients attach to a typed message: commands and @mentions."""
    found: list[JSON] = []
    spans: list[tuple[int, int]] = []
    for kind, rx in (("bot_command", _COMMAND), ("mention", _MENTION)):
        for m in rx.finditer(text):
            if any(s <= m.start() < e for s, e in spans):
                continue
            spans.append((m.start(), m.end()))
            found.append({"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))})
    found.sort(key=lambda e: e["offset"])
    return found


ANONYMOUS_ADMIN = 1087968824  # the user id Telegram gives every message sent as a group (GroupAnonymousBot)


def user_json(user_id: int, first_name: str | None = None, username: str | None = None) -> JSON:
    out: JSON = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
    if username:
        out["username"] = username
    return out


class BotApiEmulator:
    """Start with `with BotApiEmulator() as api:`; point the bot at `api.env()`."""

    def __init__(self, token: str = "123:TEST", username: str = "articlebot_test_bot", host: str = "127.0.0.1"):
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.host = host
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._chats: dict[int, _Chat] = {}
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1000)
        self._query_ids = itertools.count(5000)
        self._queries: set[str] = set()
        self._faults: list[tuple[str, str | None, int, str]] = []
        self._file_ids = itertools.count(1)
        self._files: dict[str, tuple[str, bytes, int]] = {}  # file_id -> (file_path, data, file_size)
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._webhook_thread: threading.Thread | None = None
        # what the bot did, for the tests to read
        self.sent: list[Sent] = []
        self._sent_by_chat: dict[int, list[Sent]] = {}  # the same messages, per chat (fast lookups under load)
        self._sent_by_id: dict[tuple[int, int], Sent] = {}
        self._listeners: list[Listener] = []
        self.callback_answers: dict[str, JSON] = {}
        self.chat_actions: list[tuple[float, int, str]] = []
        self.commands: dict[str, list[JSON]] = {}
        self.calls: list[str] = []
        self.unknown_methods: list[str] = []
        self.errors: list[tuple[str, str]] = []  # (method, description) of every error answered
        self.error_params: list[JSON] = []  # the parameters of those calls, in the same order
        self.downloads: list[str] = []
        self.download_delay = 0.0  # seconds each file download takes
        self.webhook: JSON = {}
        self.polling_since: float | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> BotApiEmulator:
        emulator = self

        class Handler(_Handler):
            api = emulator

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="botapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._webhook_thread:
            self._webhook_thread.join(timeout=5)

    def __enter__(self) -> BotApiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def env(self) -> dict[str, str]:
        """Environment variables that point a bot process at this server."""
        return {
            "TELEGRAM_BOT_TOKEN": self.token,
            "TELEGRAM_BASE_URL": self.base_url,
            "TELEGRAM_BASE_FILE_URL": self.base_file_url,
        }

    # ---- acting as users ---------------------------------------------------------------------------

    def _chat(self, chat_id: int, title: str | None = None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            kind = "private" if chat_id > 0 else ("supergroup" if str(chat_id).startswith("-100") else "group")
            chat = self._chats[chat_id] = _Chat(chat_id, kind, title or (None if chat_id > 0 else f"Group {chat_id}"))
        return chat

    def _new_message(self, chat: _Chat, sender: JSON, **fields: Any) -> JSON:
        msg: JSON = {
            "message_id": chat.next_message_id,
            "from": sender,
            "chat": chat.as_json(),
            "date": int(time.time()),
            **fields,
        }
        chat.next_message_id += 1
        chat.messages[msg["message_id"]] = msg
        return msg

    def _push(self, update: JSON) -> None:
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        self._cond.notify_all()

    def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        first_name: str | None = None,
        date: int | None = None,
        deleted: bool = False,
        as_chat: bool = False,
        topic: int | None = None,
    ) -> int:
        """A user types `text` in a chat (private: chat_id == user_id; groups: negative ids), now or at
        `date` (Unix time: a message that waited in the queue). `deleted`: the message is deleted before the
        bot can reply to it. `as_chat`: sent as the group itself, as an anonymous admin's messages are (from
        GroupAnonymousBot, with `sender_chat`). `topic`: sent in that forum topic of a supergroup."""
        with self._cond:
            chat = self._chat(chat_id)
            fields: JSON = {"text": text}
            if topic is not None:
                chat.forum = True
                fields.update(message_thread_id=topic, is_topic_message=True)
            if as_chat:
                fields["sender_chat"] = chat.as_json()
            if date is not None:
                fields["date"] = date
            ents = _entities_for(text)
            if ents:
                fields["entities"] = ents
            if reply_to is not None:
                fields["reply_to_message"] = chat.messages[reply_to]
            sender = (
                {"id": ANONYMOUS_ADMIN, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
                if as_chat
                else user_json(user_id, first_name)
            )
            msg = self._new_message(chat, sender, **fields)
            if deleted:
                del chat.messages[msg["message_id"]]
            self._push({"message": msg})
            return int(msg["message_id"])

    def send_photo(self, chat_id: int, user_id: int, caption: str | None = None) -> int:
        """A user sends a picture (a 1x1 one: the bot never downloads it)."""
        with self._cond:
            chat = self._chat(chat_id)
            n = next(self._file_ids)
            fields: JSON = {"photo": [{"file_id": f"PHO{n:06d}", "file_unique_id": f"UP{n}", "width": 1, "height": 1}]}
            if caption is not None:
                fields["caption"] = caption
            msg = self._new_message(chat, user_json(user_id), **fields)
            self._push({"message": msg})
            return int(msg["message_id"])

    def send_document(
        self,
        chat_id: int,
        user_id: int,
        filename: str | None,
        data: bytes,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        file_size: int | None = None,
    ) -> int:
        """A user sends a file (`filename` None: one without a name); `file_size` may claim a size other than
        len(data) (a big upload, cheaply)."""
        with self._cond:
            chat = self._chat(chat_id)
            n = next(self._file_ids)
            file_id = f"DOC{n:06d}"
            suffix = filename.rsplit(".", 1)[-1] if filename and "." in filename else "bin"
            size = len(data) if file_size is None else file_size
            self._files[file_id] = (f"documents/file_{n}.{suffix}", data, size)
            doc: JSON = {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": size}
            if filename is not None:
                doc["file_name"] = filename
            if mime_type:
                doc["mime_type"] = mime_type
            fields: JSON = {"document": doc}
            if caption is not None:
                fields["caption"] = caption
                ents = _entities_for(caption)
                if ents:
                    fields["caption_entities"] = ents
            msg = self._new_message(chat, user_json(user_id), **fields)
            self._push({"message": msg})
            return int(msg["message_id"])

    def press(self, chat_id: int, user_id: int, message_id: int, data: str) -> str:
        """A user presses an inline button (or any data: forged presses are allowed here on purpose)."""
        with self._cond:
            chat = self._chat(chat_id)
            message = chat.messages.get(message_id)
            if message is None:  # an old message the server no longer serves: inaccessible
                message = {"chat": chat.as_json(), "message_id": message_id, "date": 0}
            query_id = str(next(self._query_ids))
            self._queries.add(query_id)
            self._push(
                {
                    "callback_query": {
                        "id": query_id,
                        "from": user_json(user_id),
                        "message": message,
                        "chat_instance": f"ci{chat_id}",
                        "data": data,
                    }
                }
            )
            return query_id

    def open_chat(self, chat_id: int, title: str | None = None) -> None:
        """Make a chat known to the server without a message in it (e.g. an admins' group)."""
        with self._lock:
            self._chat(chat_id, title)

    def fail_next(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        code: int = 500,
        description: str = "Internal Server Error: injected fault",
    ) -> None:
        """The next call of `method` (for that chat, if given) fails as Telegram does on a bad day."""
        with self._lock:
            self._faults.append((method.lower(), None if chat_id is None else str(chat_id), code, description))

    # ---- watching the bot --------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` for every message the bot sends or edits and every callback answer, as it
        happens (on the server's request thread, under its lock: return quickly, do not call back in).
        The soak run uses it to time each reply without polling."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: BotEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not turn into a Bot API error for the bot
                log.exception("emulator listener failed")

    def _record(self, sent: Sent) -> None:
        self.sent.append(sent)
        self._sent_by_chat.setdefault(sent.chat_id, []).append(sent)
        self._sent_by_id[(sent.chat_id, sent.message_id)] = sent

    def messages(self, chat_id: int) -> list[Sent]:
        with self._lock:
            return list(self._sent_by_chat.get(chat_id, ()))

    def mark(self, chat_id: int) -> int:
        """How many messages the bot has sent to the chat so far: pass as `after` to wait_messages."""
        with self._lock:
            return len(self._sent_by_chat.get(chat_id, ()))

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def wait_messages(self, chat_id: int, count: int = 1, *, after: int = 0, timeout: float = 30.0) -> list[Sent]:
        """The bot's messages to a chat from index `after` on, once there are at least `count` of them."""

        def ready() -> list[Sent] | None:
            got = self.messages(chat_id)[after:]
            return got if len(got) >= count else None

        result: list[Sent] = self.wait_until(ready, timeout, f"{count} message(s) to chat {chat_id}")
        return result

    def wait_answer(self, query_id: str, timeout: float = 30.0) -> JSON:
        """The bot's answerCallbackQuery for a press."""
        result: JSON = self.wait_until(
            lambda: self.callback_answers.get(query_id), timeout, f"the answer to callback query {query_id}"
        )
        return result

    def find(self, chat_id: int, message_id: int) -> Sent:
        with self._lock:
            found = self._sent_by_id.get((chat_id, message_id))
            if found is None:
                raise KeyError(f"no message {message_id} from the bot in chat {chat_id}")
            return found

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def actions(self, chat_id: int) -> list[str]:
        with self._lock:
            return [a for _, c, a in self.chat_actions if c == chat_id]

    # ---- the Bot API -------------------------------------------------------------------------------

    def handle(self, method: str, params: JSON) -> Any:
        """Run one Bot API method; raise ApiError for the answers Telegram gives as errors."""
        fn = getattr(self, f"_api_{method.lower()}", None)
        with self._cond:
            self.calls.append(method)
            for fault in self._faults:
                if fault[0] == method.lower() and fault[1] in (None, str(params.get("chat_id"))):
                    self._faults.remove(fault)
                    raise ApiError(fault[2], fault[3])
        if fn is None:
            with self._cond:
                self.unknown_methods.append(method)
            log.warning("bot called a method the emulator does not know: %s", method)
            raise ApiError(404, "Not Found")
        return fn(params)

    def _api_getme(self, p: JSON) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Articlebot",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _bot_user(self) -> JSON:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Articlebot", "username": self.username}

    def _api_logout(self, p: JSON) -> bool:
        return True

    def _api_close(self, p: JSON) -> bool:
        return True

    def _api_getupdates(self, p: JSON) -> list[JSON]:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(p, "offset", 0)
        limit = max(1, min(100, _int(p, "limit", 100)))
        timeout = max(0, min(50, _float(p, "timeout", 0)))
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.polling_since is None:
                self.polling_since = time.monotonic()
            while True:
                if offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                elif offset < 0:
                    self._updates = self._updates[offset:]
                if self._updates or self._stopping:
                    return [dict(u) for u in self._updates[:limit]]
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)

    def _api_deletewebhook(self, p: JSON) -> bool:
        with self._cond:
            self.webhook = {}
            if _bool(p, "drop_pending_updates"):
                self._updates.clear()
            self._cond.notify_all()
        return True

    def _api_setwebhook(self, p: JSON) -> bool:
        url = str(p.get("url", ""))
        if url and not url.startswith(("https://", "http://127.", "http://localhost")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        with self._cond:
            if _bool(p, "drop_pending_updates"):
                self._updates.clear()
            self.webhook = {"url": url, "secret_token": p.get("secret_token")} if url else {}
            if url and (self._webhook_thread is None or not self._webhook_thread.is_alive()):
                self._webhook_thread = threading.Thread(target=self._deliver_webhooks, daemon=True)
                self._webhook_thread.start()
            self._cond.notify_all()
        return True

    def _api_getwebhookinfo(self, p: JSON) -> JSON:
        with self._lock:
            return {
                "url": self.webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }

    def _deliver_webhooks(self) -> None:
        """POST each pending update to the webhook, in order, retrying failures as Telegram does."""
        while True:
            with self._cond:
                while not self._stopping and self.webhook.get("url") and not self._updates:
                    self._cond.wait(0.5)
                if self._stopping or not self.webhook.get("url"):
                    return
                update, hook = self._updates[0], dict(self.webhook)
            req = urllib.request.Request(
                str(hook["url"]),
                data=json.dumps(update).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            if hook.get("secret_token"):
                req.add_header("X-Telegram-Bot-Api-Secret-Token", str(hook["secret_token"]))
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only: tests set the URL
                    ok = 200 <= resp.status < 300
            except (urllib.error.URLError, OSError):
                ok = False
            with self._cond:
                if ok and self._updates and self._updates[0] is update:
                    self._updates.pop(0)
            if not ok:
                time.sleep(0.2)

    def _api_setmycommands(self, p: JSON) -> bool:
        commands = _json(p, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be a list of at most 100 BotCommand")
        for c in commands:
            if not _BOT_COMMAND_NAME.match(str(c.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(p)
        with self._lock:
            self.commands[key] = commands
        return True

    def _api_getmycommands(self, p: JSON) -> list[JSON]:
        with self._lock:
            return list(self.commands.get(self._scope_key(p), []))

    def _api_deletemycommands(self, p: JSON) -> bool:
        with self._lock:
            self.commands.pop(self._scope_key(p), None)
        return True

    def _scope_key(self, p: JSON) -> str:
        scope = _json(p, "scope") or {"type": "default"}
        if scope.get("type") in ("chat", "chat_administrators", "chat_member"):
            with self._lock:
                if int(scope.get("chat_id", 0)) not in self._chats:
                    raise ApiError(400, "Bad Request: chat not found")
        return json.dumps(scope, sort_keys=True)

    def _known_chat(self, p: JSON) -> _Chat:
        try:
            chat_id = int(p.get("chat_id", ""))
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _render(self, p: JSON) -> tuple[str, list[JSON]]:
        raw = p.get("text")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: message text is empty")
        raw = str(raw)
        if str(p.get("parse_mode", "")).upper() == "HTML":
            try:
                text, entities = parse_html(raw)
            except HtmlError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        else:
            text, entities = raw, list(_json(p, "entities") or [])
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return text, entities

    def _markup(self, p: JSON) -> JSON | None:
        markup = _json(p, "reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not str(button.get("text", "")).strip():
                    raise ApiError(400, "Bad Request: BUTTON_TEXT_EMPTY")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return dict(markup)

    def _api_sendmessage(self, p: JSON) -> JSON:
        with self._cond:
            chat = self._known_chat(p)
            text, entities = self._render(p)
            markup = self._markup(p)
            fields: JSON = {"text": text}
            if entities:
                fields["entities"] = entities
            if markup:
                fields["reply_markup"] = markup
            reply_to = None
            params = _json(p, "reply_parameters") or {}
            if "reply_to_message_id" in p:
                params = {
                    "message_id": _int(p, "reply_to_message_id", 0),
                    "allow_sending_without_reply": _bool(p, "allow_sending_without_reply"),
                }
            topic = _int(p, "message_thread_id", 0) or None
            if topic is not None and not chat.forum:
                raise ApiError(400, "Bad Request: message thread not found")
            if params.get("message_id"):
                target = chat.messages.get(int(params["message_id"]))
                if target is None:
                    if not params.get("allow_sending_without_reply"):
                        raise ApiError(400, "Bad Request: message to be replied not found")
                else:
                    reply_to = int(params["message_id"])
                    fields["reply_to_message"] = target
                    topic = topic or target.get("message_thread_id")  # a reply lands in its message's topic
            if topic is not None:
                fields.update(message_thread_id=topic, is_topic_message=True)
            msg = self._new_message(chat, self._bot_user(), **fields)
            sent = Sent(
                chat.id,
                int(msg["message_id"]),
                text,
                str(p["text"]),
                entities,
                reply_to,
                markup,
                time.monotonic(),
                topic=topic,
            )
            self._record(sent)
            self._cond.notify_all()
            self._emit(BotEvent("sent", sent.at, sent=sent))
            return msg

    def _api_editmessagetext(self, p: JSON) -> JSON:
        with self._cond:
            chat = self._known_chat(p)
            msg = chat.messages.get(_int(p, "message_id", 0))
            if msg is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            if msg["from"].get("id") != self.bot_id:
                raise ApiError(400, "Bad Request: message can't be edited")
            text, entities = self._render(p)
            markup = self._markup(p)  # omitted: the inline keyboard is removed, as on Telegram
            if text == msg.get("text") and entities == msg.get("entities", []) and markup == msg.get("reply_markup"):
                raise ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            msg.update(text=text, edit_date=int(time.time()))
            msg.pop("entities", None)
            msg.pop("reply_markup", None)
            if entities:
                msg["entities"] = entities
            if markup:
                msg["reply_markup"] = markup
            sent = self._sent_by_id[(chat.id, int(msg["message_id"]))]
            sent.text, sent.html, sent.entities, sent.reply_markup = text, str(p["text"]), entities, markup
            now = time.monotonic()
            sent.edits.append((now, str(p["text"])))
            self._cond.notify_all()
            self._emit(BotEvent("edited", now, sent=sent))
            return msg

    def _api_sendchataction(self, p: JSON) -> bool:
        with self._cond:
            chat = self._known_chat(p)
            action = str(p.get("action", ""))
            if action not in CHAT_ACTIONS:
                raise ApiError(400, "Bad Request: wrong parameter action in request")
            self.chat_actions.append((time.monotonic(), chat.id, action))
            self._cond.notify_all()
        return True

    def _api_answercallbackquery(self, p: JSON) -> bool:
        query_id = str(p.get("callback_query_id", ""))
        with self._cond:
            if query_id not in self._queries or query_id in self.callback_answers:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            text = str(p.get("text", ""))
            if len(text) > MAX_CALLBACK_ANSWER:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            answer: JSON = {"text": text, "show_alert": _bool(p, "show_alert"), "at": time.monotonic()}
            self.callback_answers[query_id] = answer
            self._cond.notify_all()
            self._emit(BotEvent("answered", float(answer["at"]), query_id=query_id, answer=answer))
        return True

    def _api_getfile(self, p: JSON) -> JSON:
        file_id = str(p.get("file_id", ""))
        with self._lock:
            entry = self._files.get(file_id)
        if entry is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, _, size = entry
        if size > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": size, "file_path": path}

    def download(self, path: str) -> bytes | None:
        with self._lock:
            found = next((data for file_path, data, _ in self._files.values() if file_path == path), None)
            if found is not None:
                self.downloads.append(path)
            delay = self.download_delay
        if found is not None and delay:
            time.sleep(delay)  # a slow network: the bot is mid-download for that long
        return found


class _Handler(BaseHTTPRequestHandler):
    api: BotApiEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the default writes every request to stderr
        log.debug("botapi: " + format, *args)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, description: str) -> None:
        self._reply(code, json.dumps({"ok": False, "error_code": code, "description": description}).encode())

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client gave up mid-request (a cancelled call): nothing to answer
            self.close_connection = True
            return
        file_prefix = f"/file/bot{self.api.token}/"
        path = urllib.parse.unquote(url.path)
        if path.startswith("/file/bot"):
            data = self.api.download(path[len(file_prefix) :]) if path.startswith(file_prefix) else None
            if data is None:
                self._error(404, "Not Found")
            else:
                self._reply(200, data, "application/octet-stream")
            return
        parts = url.path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot"):
            self._error(404, "Not Found")
            return
        if parts[1][3:] != self.api.token:
            self._error(401, "Unauthorized")
            return
        method = parts[2]
        try:
            params = _params(url.query, body, self.headers.get("Content-Type", ""))
            result = self.api.handle(method, params)
        except ApiError as exc:
            if exc.code != 404:
                with self.api._lock:
                    self.api.errors.append((method, exc.description))
                    self.api.error_params.append(params)
                log.info("botapi %s -> %d %s", method, exc.code, exc.description)
            self._error(exc.code, exc.description)
            return
        except Exception as exc:  # a bug in the emulator must show, not hang the bot
            log.exception("emulator failed on %s", method)
            self._error(500, f"Internal Server Error: {exc}")
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._reply(200, json.dumps({"ok": True, "result": result}).encode())


def _params(query: str, body: bytes, content_type: str) -> JSON:
    params: JSON = dict(urllib.parse.parse_qsl(query))
    if body:
        if "application/json" in content_type:
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                params.update(loaded)
        elif "multipart/form-data" in content_type:
            raise ApiError(400, "Bad Request: the emulator does not accept file uploads")
        else:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8", "surrogatepass"), keep_blank_values=True))
    return params


def _int(p: JSON, key: str, default: int) -> int:
    try:
        return int(p.get(key, default))
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: wrong parameter {key}") from None


def _float(p: JSON, key: str, default: float) -> float:
    try:
        return float(p.get(key, default))
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: wrong parameter {key}") from None


def _bool(p: JSON, key: str) -> bool:
    value = p.get(key, False)
    return value is True or str(value).lower() in ("true", "1")


def _json(p: JSON, key: str) -> Any:
    value = p.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
    return value
