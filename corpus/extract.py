"""Turn files, uploads, web pages and pasted text into clean `Document`s.

Every refusal is a `UserError` naming the item (file name, URL or "pasted text") and the reason, because
the message goes straight back to the person who sent it. The text kept is the text quoted later: citations
must be exact substrings of it, so it is normalised once here (NFC, \\n line ends, no trailing spaces) and
never rewritten afterwards.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import io
import os
import re
import stat
import unicodedata
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from corpus.models import Document
from engine.errors import UserError

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".html", ".htm", ".pdf", ".docx"})
BYTES_PER_MB = 1_000_000  # max_bytes = int(settings.corpus.max_file_mb * BYTES_PER_MB)
TITLE_MAX_CHARS = 200
DOCX_MAX_MEMBERS = 10_000
DOCX_UNPACK_FACTOR = 10  # a .docx may unpack to at most this many times the file size limit

_TEXT_SUFFIXES = frozenset({".txt", ".md"})
_HTML_SUFFIXES = frozenset({".html", ".htm"})

# Refused in text a person typed or saved: C0/C1 controls except \t \n \r, and lone surrogates.
_USER_BAD_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Dropped from text a parser produced (PDF, DOCX, HTML): the same set; form and line feeds become \n.
_PAGE_BREAKS = re.compile(r"[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")

_QUOTES = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛′‹›`´", "'"),
        **dict.fromkeys("“”„‟″«»", '"'),
        **dict.fromkeys("‐‑‒–—―−﹘﹣－", "-"),
    }
)
_INVISIBLE = re.compile(
    r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]"
)
_WHITESPACE = re.compile(r"\s+")
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# ---------------------------------------------------------------- public API


def extract_file(path: Path, max_bytes: int) -> Document:
    """Read one file from disk; size is checked with stat before anything is read."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise UserError(f"{label} does not exist")
    if path.is_dir():
        raise UserError(f"{label} is a directory, not a file")
    suffix = _supported_suffix(label, path.suffix)
    try:
        info = path.stat()
    except OSError as exc:
        raise UserError(f"{label} cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{label} is not a regular file")
    _check_size(label, info.st_size, max_bytes)
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat
    except PermissionError as exc:
        raise UserError(f"{label} cannot be read: permission denied") from exc
    except OSError as exc:
        raise UserError(f"{label} cannot be read: {exc.strerror or exc}") from exc
    _check_size(label, len(data), max_bytes)
    return _extract(label, suffix, data, max_bytes, fallback_title=path.stem)


def extract_bytes(name: str, data: bytes, max_bytes: int, *, suffix: str | None = None) -> Document:
    """Extract an upload (e.g. a Telegram document). `suffix` overrides the format read from `name`,
    for data whose format is known another way (a web response's content type)."""
    label = name.strip() or "the uploaded file"
    fmt = _supported_suffix(label, suffix if suffix is not None else Path(name).suffix)
    _check_size(label, len(data), max_bytes)
    return _extract(label, fmt, data, max_bytes, fallback_title=Path(name).stem or label)


def extract_html(html: str | bytes, url: str | None, source: str) -> Document:
    """Main text and metadata of a web page; boilerplate (menus, footers, comments) is left out."""
    import trafilatura  # heavy import, only when HTML is actually extracted

    result = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    raw_text = getattr(result, "text", None) or ""  # getattr: result is None when nothing was found
    if not raw_text.strip():
        raw_text = trafilatura.html2txt(html) or ""  # short pages fall under trafilatura's size floor
    text = _normalise(_strip_format_controls(raw_text))
    if not text:
        raise UserError(f"{source} has no readable text")
    date = getattr(result, "date", None)
    return Document(
        text=text,
        title=_pick_title(getattr(result, "title", None) or _html_title(html), text, source),
        source=source,
        url=canonical_url(url) if url else None,
        outlet=_clean_field(getattr(result, "sitename", None)),
        byline=_clean_field(getattr(result, "author", None)),
        published=date[:10] if isinstance(date, str) and _ISO_DATE.match(date) else None,
    )


def document_from_text(text: str, title: str | None, source: str = "pasted text") -> Document:
    """Text a person pasted or typed: control characters are refused, not silently dropped, since they
    mean the input is not what it looks like. The first line is the title and stays in the text."""
    return _user_text_document(text, title, source, markdown=False, fallback_title=source)


def collect_paths(path: Path) -> list[Path]:
    """A directory becomes its supported files (recursively, sorted, hidden ones skipped); a file itself."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    for root, dirs, files in os.walk(path):  # does not follow directory symlinks: no cycles
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            Path(root) / f
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in SUPPORTED_SUFFIXES
        )
    return sorted(found)


def normalise_for_hash(text: str) -> str:
    """A form of the text that is equal for the same article pasted twice with different spacing,
    quotes, dashes or letter case."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).translate(_QUOTES).casefold()
    return _WHITESPACE.sub(" ", text).strip()


def content_hash(text: str) -> str:
    """sha256 (hex) of `normalise_for_hash(text)`: the duplicate-detection key of an article."""
    return hashlib.sha256(normalise_for_hash(text).encode("utf-8")).hexdigest()


def canonical_url(url: str) -> str:
    """One spelling per page, so the same link shared twice is recognised; also drops credentials."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if not scheme or not host:
        return url
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS
    )
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def strip_format_controls(text: str) -> str:
    """Control characters a file format left in extracted text (page breaks, stray bytes) are not the
    author's words: page and line separators become line breaks, the rest is dropped."""
    return _strip_format_controls(text)


# ---------------------------------------------------------------- formats


def _extract(label: str, suffix: str, data: bytes, max_bytes: int, fallback_title: str) -> Document:
    if suffix in _TEXT_SUFFIXES:
        return _user_text_document(
            decode_text(label, data), None, label, markdown=suffix == ".md", fallback_title=fallback_title
        )
    if suffix in _HTML_SUFFIXES:
        return extract_html(data, None, label)
    if suffix == ".pdf":
        text, title = _pdf_text(label, data)
    else:
        text, title = _docx_text(label, data, max_bytes)
    return Document(text=text, title=_pick_title(title, text, fallback_title), source=label)


def _pdf_text(label: str, data: bytes) -> tuple[str, str | None]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UserError(f"{label} is a password-protected PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except UserError:
        raise
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise UserError(f"{label} is not a valid PDF ({_short(exc)})") from exc
    text = _normalise(_strip_format_controls("\n\n".join(pages)))
    if not text:
        raise UserError(f"{label} has no text layer (scanned PDF?)")
    if isinstance(title, str) and re.search(r"\.(docx?|pdf|odt|rtf)$|^untitled$", title.strip(), re.I):
        title = None  # a file name left in the metadata by the writing program is not a title
    return text, title if isinstance(title, str) else None


def _docx_text(label: str, data: bytes, max_bytes: int) -> tuple[str, str | None]:
    import docx
    from docx.table import Table

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            names = {m.filename for m in members}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"{label} is not a valid .docx file (not a zip archive)") from exc
    if len(members) > DOCX_MAX_MEMBERS:
        raise UserError(f"{label} has {len(members)} parts, more than a document can have (zip bomb?)")
    unpacked, cap = sum(m.file_size for m in members), DOCX_UNPACK_FACTOR * max_bytes
    if unpacked > cap:
        raise UserError(
            f"{label} unpacks to {_size(unpacked)}, over the {_size(cap, limit=True)} limit (zip bomb?)"
        )
    if "word/document.xml" not in names:
        raise UserError(f"{label} is not a valid .docx file (no word/document.xml)")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                    if cells:
                        blocks.append(" | ".join(cells))
            elif item.text.strip():
                blocks.append(item.text)
        title = document.core_properties.title
    except Exception as exc:  # python-docx and lxml raise many exception types on damaged files
        raise UserError(f"{label} is not a valid .docx file ({_short(exc)})") from exc
    text = _normalise(_strip_format_controls("\n\n".join(blocks)))
    if not text:
        raise UserError(f"{label} has no text")
    return text, title or None


# A byte sequence that is valid UTF-8 for a character beyond ASCII ("é" is C3 A9): a file holding one is UTF-8
# with a damaged byte, not Windows-1252 text, which spells such pairs ("Ã©") almost never.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xef][\x80-\xbf]{2}"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
)


def decode_text(label: str, data: bytes) -> str:
    """The text of a plain-text file or paste: UTF-8 (or UTF-16 with its mark), else Windows-1252, the code
    page of text saved by Windows programs ("caf\xe9"); UTF-8 with a damaged byte is refused, not misread."""
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise UserError(f"{label} is not valid UTF-16 text") from exc
    if b"\x00" in data:
        raise UserError(f"{label} is not valid UTF-8: it contains NUL bytes (a binary file?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{data[exc.start]:02X} at position {exc.start}"
        if _UTF8_MULTIBYTE.search(data):
            raise UserError(f"{label} is UTF-8 with a damaged byte ({bad})") from exc
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as other:
            raise UserError(
                f"{label} is neither UTF-8 nor Windows-1252 text (byte 0x{data[other.start]:02X} at position "
                f"{other.start} is in neither)"
            ) from exc


def _user_text_document(
    text: str, title: str | None, label: str, *, markdown: bool, fallback_title: str
) -> Document:
    bad = _USER_BAD_CHAR.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        kind = "an unpaired surrogate" if "\ud800" <= bad.group() <= "\udfff" else "control character"
        raise UserError(f"{label} contains {kind} U+{ord(bad.group()):04X} (line {line})")
    if markdown:
        text, front_title = _strip_markdown(text)
        title = title or front_title
    text = _normalise(text)
    if not text:
        raise UserError(f"{label} is empty")
    return Document(text=text, title=_pick_title(title, text, fallback_title), source=label)


# ---------------------------------------------------------------- markdown

_MD_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^[ \t]*(```|~~~).*$", re.M), ""),  # code fences (the code stays)
    (re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]+\S+.*$", re.M), ""),  # reference link definitions
    (re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M), r"\1"),  # ATX headings
    (re.compile(r"^ {0,3}#{1,6}[ \t]*$", re.M), ""),
    (re.compile(r"^ {0,3}(=+|-{3,}|\*{3,}|_{3,})[ \t]*$", re.M), ""),  # setext underlines, rules
    (re.compile(r"^ {0,3}>[ \t]?", re.M), ""),  # block quotes
    (re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)"), r"\1"),  # images: keep the alt text
    (re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)"), r"\1"),  # links: keep the link text
    (re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]"), r"\1"),  # reference links
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"\1"),  # strong
    (re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"), r"\1"),
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
]
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def _strip_markdown(text: str) -> tuple[str, str | None]:
    """Markdown syntax is not part of the article's words; quotes must read naturally."""
    text = text.replace("\r\n", "\n")
    title = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        title = found.group(1).strip("'\"") if found else None
        text = text[front.end() :]
    for pattern, repl in _MD_RULES:
        text = pattern.sub(repl, text)
    return text, title


# ---------------------------------------------------------------- helpers


def _supported_suffix(label: str, suffix: str) -> str:
    suffix = suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    what = f"'{suffix}' files are" if suffix else "files without an extension are"
    raise UserError(f"{label}: {what} not supported (supported: {supported})")


def _check_size(label: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise UserError(f"{label} is {_size(size)}, over the {_size(max_bytes, limit=True)} limit")


def _size(n: int, *, limit: bool = False) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            value = f"{n / scale:.1f}"
            if limit and value.endswith(".0"):
                value = value[:-2]
            return f"{value} {unit}"
    return f"{n} bytes"


def _strip_format_controls(text: str) -> str:
    return _USER_BAD_CHAR.sub("", _PAGE_BREAKS.sub("\n", text))


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def _pick_title(candidate: str | None, text: str, fallback: str) -> str:
    for option in (candidate, next((line for line in text.split("\n") if line.strip()), None), fallback):
        cleaned = _clean_field(option)
        if cleaned:
            return cleaned if len(cleaned) <= TITLE_MAX_CHARS else cleaned[:TITLE_MAX_CHARS].rstrip()
    return fallback


def _clean_field(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = _WHITESPACE.sub(" ", _strip_format_controls(unicodedata.normalize("NFC", value))).strip()
    return value or None


def _html_title(html: str | bytes) -> str | None:
    raw = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
    found = re.search(r"<title[^>]*>(.*?)</title\s*>", raw[:200_000], re.I | re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None


def _short(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message[:120]
