"""A loopback Telegram Bot API for end-to-end tests and the load test (see server.py)."""

from tests.botapi.server import ApiError, BotApiEmulator, Sent, user_json
from tests.botapi.telegram_html import HtmlError, parse_html, utf16_len

__all__ = ["ApiError", "BotApiEmulator", "HtmlError", "Sent", "parse_html", "user_json", "utf16_len"]
