"""Download one article from the web, safely.

The bot fetches links strangers send it, so every request is treated as hostile:
- SSRF: each hop's host is resolved once, ALL its addresses are checked (no loopback, private, link-local
  incl. cloud metadata, unique-local, CGNAT, multicast, reserved, or IPv4 hidden inside IPv6), and the
  connection goes to the vetted address (`_PinnedBackend`), so DNS rebinding between check and connect
  cannot redirect it. Redirects are followed by hand so every hop passes the same check.
- Resources: one total deadline covers DNS, connect, TLS, headers and body (a server trickling a byte at a
  time cannot hold a worker), and the body is streamed with a byte cap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from corpus.extract import (
    BYTES_PER_MB,
    SUPPORTED_SUFFIXES,
    canonical_url,
    document_from_text,
    extract_bytes,
    extract_html,
    strip_format_controls,
)
from corpus.models import Document
from engine.config import CorpusSettings
from engine.errors import UserError

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> IP address strings; the default asks the system resolver."""
Connector = Callable[[str, int, float | None], httpcore.NetworkStream]
"""(vetted ip, port, timeout) -> an open stream; the one place a socket is opened (stubbed in tests)."""

MAX_URL_CHARS = 2048
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
_BINARY_TYPES = {
    "application/pdf": ".pdf",
    "application/x-pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/download"})
_ACCEPT = (
    "text/html,application/xhtml+xml,text/plain;q=0.9,application/pdf;q=0.8,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document;q=0.8"
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_BAD_URL_CHAR = re.compile(r"[\x00-\x20\x7f]")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def fetch_document(
    url: str,
    settings: CorpusSettings,
    *,
    resolver: Resolver | None = None,
    connect: Connector | None = None,
) -> Document:
    """Fetch `url` and extract the article; any refusal is a `UserError` naming the URL and the reason."""
    url = url.strip()
    label = _label(url)
    deadline = time.monotonic() + settings.fetch_timeout_s
    max_bytes = int(settings.max_file_mb * BYTES_PER_MB)
    backend = _PinnedBackend(deadline, connect or _system_connect)
    current = _parse(url, label)
    seen = {str(current)}
    try:
        with httpx.Client(
            transport=_PinnedTransport(backend),
            follow_redirects=False,
            trust_env=False,  # an environment proxy would bypass the address pinning
            timeout=settings.fetch_timeout_s,
            headers={"User-Agent": settings.user_agent, "Accept": _ACCEPT, "Accept-Encoding": "identity"},
        ) as client:
            for hop in range(settings.max_redirects + 1):
                via = _label(str(current)) if hop else None
                backend.pins[_origin(current)] = _vet(current, label, via, settings, resolver, deadline)
                where = f"{label} (redirected to {via})" if via else label
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = _next_hop(response, current, label, seen)
                        continue
                    if response.status_code >= 400:
                        status = f"{response.status_code} {response.reason_phrase}".strip()
                        raise UserError(f"{where} returned {status}")
                    if response.status_code >= 300:
                        raise UserError(f"{where} returned {response.status_code} without a page to follow")
                    suffix = _kind(response, current, where)
                    data = _read_capped(response, where, max_bytes, deadline, settings.fetch_timeout_s)
                    charset = response.charset_encoding
                    break
            else:
                raise UserError(f"{label} redirected more than {settings.max_redirects} times")
    except httpx.TimeoutException as exc:
        raise UserError(f"{label} timed out after {settings.fetch_timeout_s:g} s") from exc
    except httpx.ConnectError as exc:
        raise UserError(f"{label} could not be reached ({_reason(exc)})") from exc
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise UserError(f"{label} could not be downloaded ({_reason(exc)})") from exc
    return _to_document(url, canonical_url(str(current)), suffix, data, charset, max_bytes)


# ---------------------------------------------------------------- URL and address checks


def _parse(url: str, label: str, via: str | None = None) -> httpx.URL:
    """Refuse anything that is not a plain http(s) URL with a host and a valid port."""
    where = f"{label} redirects to {via}, which" if via else label
    if not url:
        raise UserError("An empty link cannot be fetched")
    if len(url) > MAX_URL_CHARS:
        raise UserError(f"{where} is too long to be a link ({len(url)} characters)")
    if _BAD_URL_CHAR.search(url):
        raise UserError(f"{where} is not a valid URL (it contains spaces or control characters)")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UserError(f"{where} is not a valid URL ({_reason(exc)})") from exc
    if not parsed.scheme:
        raise UserError(f"{where} is not a valid URL (it has no scheme: start it with https://)")
    if parsed.scheme not in ("http", "https"):
        raise UserError(f"{where} is refused: only http and https links can be fetched, not {parsed.scheme} ones")
    if not parsed.raw_host:
        raise UserError(f"{where} is not a valid URL (it has no host)")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UserError(f"{where} is not a valid URL (port {parsed.port} is out of range)")
    return parsed


def _origin(url: httpx.URL) -> tuple[str, int]:
    """The key httpcore will ask the backend to connect to."""
    return url.raw_host.decode("ascii").lower(), url.port or (443 if url.scheme == "https" else 80)


def _vet(
    url: httpx.URL,
    label: str,
    via: str | None,
    settings: CorpusSettings,
    resolver: Resolver | None,
    deadline: float,
) -> list[str]:
    """Resolve the host once and check every address; return the addresses that may be connected to."""
    host, port = _origin(url)
    refused = f"{label} redirects to {via}, which is refused" if via else f"{label} is refused"
    literal = _ip(host)
    if literal is not None:
        answers = [(host, literal)]
    else:
        try:
            found = _resolve_before(resolver or _system_resolve, host, port, deadline)
        except socket.gaierror as exc:
            raise UserError(f"{label}: the host {host} was not found") from exc
        except OSError as exc:
            raise UserError(f"{label}: the host {host} could not be resolved ({_reason(exc)})") from exc
        if not found:
            raise UserError(f"{label}: the host {host} was not found")
        answers = []
        for text in found:
            address = _ip(text)
            if address is None:
                raise UserError(f"{refused}: {host} resolved to {text!r}, which is not an IP address")
            answers.append((text, address))
    if not settings.allow_private_addresses:
        for text, address in answers:
            kind = _address_class(address)
            if kind:
                what = f"{host} is {kind}" if literal else f"{host} resolves to {text}, {kind}"
                raise UserError(f"{refused}: {what}; links into private networks are not fetched")
    return list(dict.fromkeys(str(address) for _, address in answers))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _address_class(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address must not be fetched from, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _address_class(embedded)
            if inner:
                return f"an IPv6 address wrapping {embedded}, {inner}"
    if address in _METADATA:
        return "a link-local address (cloud metadata service)"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "a carrier-grade NAT address"),
        (isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL, "a unique-local address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _system_resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _resolve_before(resolver: Resolver, host: str, port: int, deadline: float) -> list[str]:
    """getaddrinfo has no timeout of its own: run it in a thread and stop waiting at the deadline."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["ok"] = list(resolver(host, port))
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise httpx.ConnectTimeout(f"resolving {host} took too long")
    if "error" in outcome:
        raise outcome["error"]
    return list(outcome["ok"])


# ---------------------------------------------------------------- response handling


def _next_hop(response: httpx.Response, current: httpx.URL, label: str, seen: set[str]) -> httpx.URL:
    location = response.headers.get("location", "").strip()
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UserError(f"{label} redirects to an invalid URL ({_reason(exc)})") from exc
    shown = location if urlsplit(location).scheme else str(target)  # as the server wrote it, if absolute
    checked = _parse(str(target), label, via=_label(shown))
    if str(checked) in seen:
        raise UserError(f"{label} redirects in a loop")
    seen.add(str(checked))
    return checked


def suffix_for_type(mime: str) -> str | None:
    """The format to extract for a content type ("application/pdf" -> ".pdf"), None for one not read."""
    if mime in _HTML_TYPES:
        return ".html"
    if mime in _TEXT_TYPES:
        return ".txt"
    return _BINARY_TYPES.get(mime)


def _kind(response: httpx.Response, url: httpx.URL, label: str) -> str:
    """The format to extract, from the content type (or the URL's suffix when the server does not say)."""
    declared = response.headers.get("content-type", "")
    mime = declared.split(";")[0].strip().lower()
    kind = suffix_for_type(mime)
    if kind is not None:
        return kind
    suffix = PurePosixPath(url.path).suffix.lower()
    if mime in _UNTYPED and suffix in SUPPORTED_SUFFIXES:
        return ".html" if suffix == ".htm" else suffix
    raise UserError(f"{label} is not an article: content type {mime or 'not given'}")


def _read_capped(
    response: httpx.Response, label: str, max_bytes: int, deadline: float, timeout_s: float
) -> bytes:
    """Stream the body, refusing as soon as it passes the cap or the deadline."""
    limit = f"{max_bytes / BYTES_PER_MB:g} MB"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UserError(f"{label} is {int(declared) / BYTES_PER_MB:.1f} MB, over the {limit} limit")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise UserError(f"{label} is over the {limit} limit")
        if time.monotonic() > deadline:
            raise UserError(f"{label} timed out after {timeout_s:g} s")
    return bytes(body)


def _to_document(
    source: str, url: str, suffix: str, data: bytes, charset: str | None, max_bytes: int
) -> Document:
    if suffix == ".html":
        page: str | bytes = data
        if charset:
            try:
                page = data.decode(charset, errors="replace")
            except LookupError:
                page = data  # unknown charset name: let the extractor detect it
        return extract_html(page, url, source)
    if suffix in (".txt", ".md"):
        try:
            text = data.decode(charset or "utf-8-sig")
        except (LookupError, UnicodeDecodeError) as exc:
            raise UserError(f"{_label(source)} is not valid {charset or 'UTF-8'} text") from exc
        return dataclasses.replace(document_from_text(strip_format_controls(text), None, source), url=url)
    return dataclasses.replace(extract_bytes(source, data, max_bytes, suffix=suffix), url=url)


def _label(url: str) -> str:
    """The URL as shown in messages: shortened, control characters made visible."""
    url = _CONTROL_CHAR.sub(lambda m: f"\\x{ord(m.group()):02x}", url)
    return url if len(url) <= 120 else url[:117] + "..."


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


# ---------------------------------------------------------------- transport: connect only to vetted IPs


def _system_connect(ip: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
    return httpcore.SyncBackend().connect_tcp(ip, port, timeout=timeout)


class _DeadlineStream(httpcore.NetworkStream):
    """Caps every socket wait at what is left of the fetch's total time."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _budget(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the total time for this download ran out")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = self._budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """httpcore asks to connect to a host name; this connects to the addresses vetted for it instead.
    TLS still uses the host name for SNI and certificate checks, and the Host header is unchanged."""

    def __init__(self, deadline: float, connect: Connector) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}
        self._deadline = deadline
        self._connect = connect

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not vetted")  # never connect to unchecked hosts
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for ip in addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the total time for this download ran out")
            try:
                stream = self._connect(ip, port, left if timeout is None else min(timeout, left))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for fetching")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _ssl_context() -> ssl.SSLContext:
    """certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set (an intranet with its own CA)."""
    return httpx.create_ssl_context(trust_env=True)


_ERROR_MAP: list[tuple[type[Exception], type[httpx.TransportError]]] = [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.TimeoutException, httpx.TimeoutException),
]


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones callers of an httpx transport expect."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERROR_MAP:
            if isinstance(exc, core):
                raise mapped(str(exc) or type(exc).__name__) from exc
        raise


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _PinnedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose network backend is `_PinnedBackend`."""

    def __init__(self, backend: _PinnedBackend) -> None:
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=backend, retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(response.stream),  # type: ignore[arg-type]  # a sync pool gives sync streams
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
