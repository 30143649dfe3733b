"""Telegram's HTML parse mode, as the Bot API applies it to sendMessage/editMessageText.

The parser follows the rules of https://core.telegram.org/bots/api#html-style and the error texts of
the real server ("Unsupported start tag ...", "Can't find end tag ..."), and is deliberately STRICTER
than Telegram where Telegram is lenient: a bare `&` or `>`, a tag nested where Telegram would drop the
entity (a link in a link, a tag inside code), or a link to a non-web URL are errors here, so a formatter
that passes this parser is safe on the real server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# tag -> entity type; span needs class="tg-spoiler"
TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
URL_SCHEMES = ("http://", "https://", "tg://", "mailto:")

_TAG_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR = re.compile(r"\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*(?:=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")


class HtmlError(ValueError):
    """The text is not valid Telegram HTML; the message is what the Bot API would say."""


@dataclass
class _Open:
    name: str
    start: int  # UTF-16 offset in the parsed text
    attrs: dict[str, str] = field(default_factory=dict)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _byte_offset(html: str, index: int) -> int:
    return len(html[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(match: re.Match[str]) -> str | None:
    body = match.group(1)
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return NAMED_ENTITIES.get(body)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _unescape_attr(value: str, html: str, at: int) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "&":
            m = _ENTITY.match(value, i)
            decoded = _decode_entity(m) if m else None
            if decoded is None:
                raise HtmlError(
                    f"Character '&' is reserved and must be escaped at byte offset {_byte_offset(html, at)}"
                )
            out.append(decoded)
            i = m.end() if m else i + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_html(html: str) -> tuple[str, list[dict[str, object]]]:
    """Return (plain text, entities with UTF-16 offsets) or raise HtmlError like the Bot API."""
    try:
        html.encode("utf-8")
    except UnicodeEncodeError:
        raise HtmlError("strings must be encoded in UTF-8") from None
    text: list[str] = []
    pos16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, object]] = []
    i, n = 0, len(html)
    while i < n:
        ch = html[i]
        if ch == "&":
            m = _ENTITY.match(html, i)
            decoded = _decode_entity(m) if m else None
            if m is None or decoded is None:
                raise HtmlError(f"Character '&' is reserved and must be escaped at byte offset {_byte_offset(html, i)}")
            text.append(decoded)
            pos16 += utf16_len(decoded)
            i = m.end()
        elif ch == ">":
            raise HtmlError(f"Character '>' is reserved and must be escaped at byte offset {_byte_offset(html, i)}")
        elif ch == "<":
            end = html.find(">", i)
            if end < 0:
                raise HtmlError(f"Unclosed start tag at byte offset {_byte_offset(html, i)}")
            if html.startswith("</", i):
                name = html[i + 2 : end].strip().lower()
                if not stack:
                    raise HtmlError(f"Unexpected end tag at byte offset {_byte_offset(html, i)}")
                top = stack.pop()
                if name != top.name:
                    raise HtmlError(
                        f"Unmatched end tag at byte offset {_byte_offset(html, i)}, "
                        f'expected "</{top.name}>", found "</{name}>"'
                    )
                _close(top, pos16, entities, stack)
            else:
                stack.append(_open_tag(html, i, end, pos16, stack))
            i = end + 1
        else:
            text.append(ch)
            pos16 += 2 if ord(ch) > 0xFFFF else 1
            i += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -int(e["length"])))  # type: ignore[call-overload]
    return "".join(text), entities


def _open_tag(html: str, i: int, end: int, pos16: int, stack: list[_Open]) -> _Open:
    inner = html[i + 1 : end]
    m = _TAG_NAME.match(inner)
    if not m:
        raise HtmlError(f"Empty tag name at byte offset {_byte_offset(html, i)}")
    name = m.group(0).lower()
    if name not in TAGS:
        raise HtmlError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(html, i)}')
    attrs: dict[str, str] = {}
    rest = inner[m.end() :]
    j = 0
    while j < len(rest):
        if rest[j:].strip() in ("", "/"):
            break
        am = _ATTR.match(rest, j)
        if not am or am.end() == j:
            raise HtmlError(
                f'Expected equal sign in declaration of an attribute of the tag "{name}" at byte offset '
                f"{_byte_offset(html, i)}"
            )
        value = am.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs[am.group(1).lower()] = _unescape_attr(value, html, i)
        j = am.end()
    names = [o.name for o in stack]
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlError('Tag "span" must have class "tg-spoiler"')
    if name == "a":
        href = attrs.get("href", "")
        if not href.startswith(URL_SCHEMES) or any(c.isspace() for c in href):
            raise HtmlError(f"Wrong URL in a text link at byte offset {_byte_offset(html, i)}")
        if "a" in names:
            raise HtmlError("Nested links are not allowed")
    if name == "blockquote" and "blockquote" in names:
        raise HtmlError("Blockquote can't be nested")
    if names and names[-1] == "pre" and name != "code":
        raise HtmlError(f'Tag "{name}" can\'t be used inside "pre"')
    if "code" in names:
        raise HtmlError(f'Tag "{name}" can\'t be used inside "code"')
    if "pre" in names and name != "code":
        raise HtmlError(f'Tag "{name}" can\'t be used inside "pre"')
    return _Open(name, pos16, attrs)


def _close(top: _Open, pos16: int, entities: list[dict[str, object]], stack: list[_Open]) -> None:
    length = pos16 - top.start
    if length <= 0:
        return
    kind = TAGS[top.name]
    entity: dict[str, object] = {"type": kind, "offset": top.start, "length": length}
    if kind == "text_link":
        entity["url"] = top.attrs["href"]
    if kind == "blockquote" and "expandable" in top.attrs:
        entity["type"] = "expandable_blockquote"
    if kind == "code" and stack and stack[-1].name == "pre":
        return  # <pre><code class="language-x"> is one pre entity with a language
    entities.append(entity)
