"""corpus.fetch: articles come back from a loopback HTTP server; refusals (SSRF, size, time, type) are
UserErrors naming the URL.

Network safety of the tests themselves: every fetch gets a `connect` hook. `Connections` lets sockets
open only to loopback (a "fake public" address is served by the loopback server); `NoConnections` fails
the test if any connection is even attempted. So a wrong guard can never reach a real address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpcore
import pytest

from corpus.fetch import fetch_document
from engine.config import CorpusSettings
from engine.errors import UserError
from tests._corpus_samples import make_docx, make_pdf

SENTENCE = "The harbour bridge reopened on Tuesday after eight months of repairs costing 12 million euros."
FAKE_PUBLIC_IP = "93.184.216.34"  # never contacted: `Connections` serves it from the loopback server
ARTICLE_HTML = f"""<!doctype html><html><head>
<title>Harbour Bridge Reopens | Example Gazette</title>
<meta property="og:site_name" content="Example Gazette">
<meta property="og:title" content="Harbour Bridge Reopens After Repairs">
<meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2024-03-05T10:00:00Z">
</head><body><nav>Home | News | Subscribe now</nav><article>
<h1>Harbour Bridge Reopens After Repairs</h1>
<p>{SENTENCE}</p>
<p>Engineers replaced the corroded cables and resurfaced the deck, the city council said on Monday.</p>
<p>Traffic is expected to return to normal levels by the end of the month, the port authority said.</p>
</article><footer>Copyright 2024 Example Gazette.</footer></body></html>""".encode()
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# ---------------------------------------------------------------- the local web server


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        route = ROUTES.get(urlsplit(self.path).path)
        if route is None:
            self.send_error(404)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            route(self)

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def trickle(self, raw: bytes) -> None:
        """Slow loris: one byte every 0.2 s, at most 40 bytes (8 s), until the test ends."""
        self.wfile.write(raw)
        self.wfile.flush()
        for _ in range(40):
            if self.server.stop.wait(0.2):
                return
            self.wfile.write(b"a")
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()


def _huge(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.end_headers()  # no Content-Length: the body ends when the connection closes (HTTP/1.0)
    for _ in range(64):  # at most 4 MB
        h.wfile.write(b"<p>" + b"x" * 65_530 + b"</p>")


def _huge_declared(h: _Handler) -> None:
    h.wfile.write(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 50000000\r\n\r\n<p>tiny</p>"
    )


def _hop(h: _Handler) -> None:
    n = int(parse_qs(urlsplit(h.path).query)["n"][0])
    if n >= 10:
        h.reply(200, ARTICLE_HTML, "text/html")
    else:
        h.redirect(f"/hop?n={n + 1}")


ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/article": lambda h: h.reply(200, ARTICLE_HTML, "text/html; charset=utf-8"),
    "/plain": lambda h: h.reply(200, f"Bridge Notes\n\n{SENTENCE}\n".encode(), "text/plain; charset=utf-8"),
    "/download": lambda h: h.reply(
        200, make_pdf(["Harbour Bridge Reopens", SENTENCE], title="Bridge Report"), "application/pdf"
    ),
    "/files/report.pdf": lambda h: h.reply(
        200, make_pdf(["Harbour Bridge Reopens", SENTENCE]), "application/octet-stream"
    ),
    "/doc": lambda h: h.reply(200, make_docx(["Bridge Memo", SENTENCE], title="Bridge Memo"), DOCX_TYPE),
    "/image": lambda h: h.reply(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
    "/broken": lambda h: h.send_error(500),
    "/loop-a": lambda h: h.redirect("/loop-b"),
    "/loop-b": lambda h: h.redirect("/loop-a"),
    "/hop": _hop,
    "/redirect": lambda h: h.redirect(parse_qs(urlsplit(h.path).query)["to"][0]),
    "/huge": _huge,
    "/huge-declared": _huge_declared,
    "/slow-body": lambda h: h.trickle(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>"),
    "/slow-headers": lambda h: h.trickle(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nX-Pad: "),
}


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def base(server: _Server) -> str:
    server.requests.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


# ---------------------------------------------------------------- network stubs


class Connections:
    """connect hook: opens sockets to loopback only; FAKE_PUBLIC_IP is answered by the loopback server."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
        self.calls.append((ip, port))
        if ip == FAKE_PUBLIC_IP:
            ip = "127.0.0.1"
        elif not ipaddress.ip_address(ip).is_loopback:
            raise AssertionError(f"the fetch tried to connect to {ip}:{port}")
        return httpcore.SyncBackend().connect_tcp(ip, port, timeout=timeout)


class NoConnections:
    """connect hook for refusals: reaching it at all fails the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
        self.calls.append((ip, port))
        raise AssertionError(f"the fetch tried to connect to {ip}:{port}")


class Resolver:
    """Stub DNS: a fixed answer per host name; unknown names do not exist."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


LOCAL = CorpusSettings(allow_private_addresses=True, fetch_timeout_s=5.0, max_redirects=3, max_file_mb=1.0)
PUBLIC = CorpusSettings(fetch_timeout_s=5.0, max_redirects=3, max_file_mb=1.0)  # SSRF guard on


def fetch(url: str, settings: CorpusSettings = LOCAL, **stubs: object):
    stubs.setdefault("connect", Connections())
    stubs.setdefault("resolver", Resolver({}))
    return fetch_document(url, settings, **stubs)  # type: ignore[arg-type]


def refusal(url: str, settings: CorpusSettings = LOCAL, **stubs: object) -> str:
    with pytest.raises(UserError) as info:
        fetch(url, settings, **stubs)
    return str(info.value)


# ---------------------------------------------------------------- articles


def test_html_article(base: str) -> None:
    connect = Connections()
    url = f"{base}/article?b=2&utm_source=feed&a=1#top"
    doc = fetch(url, connect=connect)
    assert SENTENCE in doc.text
    assert "Subscribe now" not in doc.text
    assert doc.title == "Harbour Bridge Reopens After Repairs"
    assert doc.outlet == "Example Gazette"
    assert doc.byline == "Jane Doe"
    assert doc.published == "2024-03-05"
    assert doc.url == f"{base}/article?a=1&b=2"
    assert doc.source == url
    assert connect.calls and all(ip == "127.0.0.1" for ip, _ in connect.calls)


def test_plain_text_page(base: str) -> None:
    doc = fetch(f"{base}/plain")
    assert doc.title == "Bridge Notes"
    assert doc.text == f"Bridge Notes\n\n{SENTENCE}"
    assert doc.url == f"{base}/plain"


def test_pdf_by_content_type(base: str) -> None:
    doc = fetch(f"{base}/download?id=7")
    assert SENTENCE in doc.text
    assert doc.title == "Bridge Report"
    assert doc.url == f"{base}/download?id=7"


def test_pdf_served_as_octet_stream_is_recognised_by_its_suffix(base: str) -> None:
    assert SENTENCE in fetch(f"{base}/files/report.pdf").text


def test_docx_by_content_type(base: str) -> None:
    doc = fetch(f"{base}/doc")
    assert doc.text == f"Bridge Memo\n\n{SENTENCE}"
    assert doc.title == "Bridge Memo"


def test_redirects_within_the_limit_are_followed(base: str, server: _Server) -> None:
    doc = fetch(f"{base}/hop?n=7")  # 7 -> 8 -> 9 -> 10: three redirects, the limit
    assert SENTENCE in doc.text
    assert doc.url == f"{base}/hop?n=10"
    assert [path for path, _ in server.requests] == ["/hop?n=7", "/hop?n=8", "/hop?n=9", "/hop?n=10"]


def test_connects_to_the_vetted_address_and_keeps_the_host_name(base: str, server: _Server) -> None:
    port = server.server_address[1]
    resolver = Resolver({"news.test": ["127.0.0.1"]})
    connect = Connections()
    doc = fetch(f"http://news.test:{port}/article", resolver=resolver, connect=connect)
    assert SENTENCE in doc.text
    assert resolver.calls == ["news.test"]
    assert connect.calls == [("127.0.0.1", port)]
    assert server.requests == [("/article", f"news.test:{port}")]


def test_dns_rebinding_cannot_change_the_address_after_the_check(base: str, server: _Server) -> None:
    """The name resolves to a public address once, and to loopback on any later lookup: the fetch must
    use the first, checked answer and never look the name up again."""
    port = server.server_address[1]
    answers = iter([[FAKE_PUBLIC_IP]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    connect = Connections()
    doc = fetch(f"http://news.test:{port}/article", PUBLIC, resolver=rebinding, connect=connect)
    assert SENTENCE in doc.text
    assert connect.calls == [(FAKE_PUBLIC_IP, port)]
    assert next(answers, None) is None


# ---------------------------------------------------------------- HTTP failures


@pytest.mark.parametrize(
    ("path", "status"), [("/missing", "404 Not Found"), ("/broken", "500 Internal Server Error")]
)
def test_http_errors(base: str, path: str, status: str) -> None:
    assert refusal(f"{base}{path}") == f"{base}{path} returned {status}"


def test_redirect_loop(base: str, server: _Server) -> None:
    assert refusal(f"{base}/loop-a") == f"{base}/loop-a redirects in a loop"
    assert len(server.requests) == 2


def test_too_many_redirects(base: str, server: _Server) -> None:
    assert refusal(f"{base}/hop?n=0") == f"{base}/hop?n=0 redirected more than 3 times"
    assert len(server.requests) == 4  # the first request and three redirects, then it stops


def test_wrong_content_type(base: str) -> None:
    assert refusal(f"{base}/image") == f"{base}/image is not an article: content type image/png"


def test_connection_refused(base: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the fetch: nothing listens there
    assert refusal(f"http://127.0.0.1:{port}/").startswith(f"http://127.0.0.1:{port}/ could not be reached")


def test_unknown_host() -> None:
    message = refusal("https://no-such-host.test/a", PUBLIC, connect=NoConnections())
    assert message == "https://no-such-host.test/a: the host no-such-host.test was not found"


# ---------------------------------------------------------------- size and time


def test_huge_streamed_response_is_cut_at_the_cap(base: str) -> None:
    started = time.monotonic()
    assert refusal(f"{base}/huge") == f"{base}/huge is over the 1 MB limit"
    assert time.monotonic() - started < 4


def test_declared_content_length_over_the_cap_is_refused_before_reading(base: str) -> None:
    assert refusal(f"{base}/huge-declared") == f"{base}/huge-declared is 50.0 MB, over the 1 MB limit"


@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
def test_slow_loris_is_cut_at_the_total_deadline(base: str, path: str) -> None:
    settings = LOCAL.model_copy(update={"fetch_timeout_s": 1.5})
    started = time.monotonic()
    assert refusal(f"{base}{path}", settings) == f"{base}{path} timed out after 1.5 s"
    assert 1.3 < time.monotonic() - started < 2.5


def test_slow_dns_counts_towards_the_deadline() -> None:
    release = threading.Event()

    def stuck(host: str, port: int) -> list[str]:
        release.wait(5)
        return [FAKE_PUBLIC_IP]

    settings = PUBLIC.model_copy(update={"fetch_timeout_s": 0.5})
    started = time.monotonic()
    try:
        message = refusal("https://slow-dns.test/", settings, resolver=stuck, connect=NoConnections())
    finally:
        release.set()
    assert message == "https://slow-dns.test/ timed out after 0.5 s"
    assert time.monotonic() - started < 1.5


# ---------------------------------------------------------------- URL validation


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "is not a valid URL (it contains spaces or control characters)"),
        ("example.com/page", "is not a valid URL (it has no scheme: start it with https://)"),
        ("http://", "is not a valid URL (it has no host)"),
        ("http:///etc/passwd", "is not a valid URL (it has no host)"),
        ("http://example.com:99999/", "is not a valid URL (port 99999 is out of range)"),
        ("http://[::1", "is not a valid URL"),
        ("https://example.com/\x00", "is not a valid URL (it contains spaces or control characters)"),
        ("https://example.com/" + "a" * 3000, "is too long to be a link (3020 characters)"),
    ],
)
def test_malformed_urls(url: str, reason: str) -> None:
    resolver = Resolver({})
    message = refusal(url, PUBLIC, resolver=resolver, connect=NoConnections())
    assert reason in message
    assert message.startswith(url[:40].replace("\x00", "\\x00"))
    assert resolver.calls == []


def test_empty_url() -> None:
    assert refusal("   ", PUBLIC, connect=NoConnections()) == "An empty link cannot be fetched"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/article.txt",
        "gopher://example.com/1",
        "data:text/html,<p>hi</p>",
        "javascript:alert(1)",
        "mailto:editor@example.com",
    ],
)
def test_non_http_schemes(url: str) -> None:
    scheme = url.split(":")[0]
    message = refusal(url, PUBLIC, connect=NoConnections())
    assert message == f"{url} is refused: only http and https links can be fetched, not {scheme} ones"


# ---------------------------------------------------------------- SSRF guard

ADDRESS_CLASSES = [
    ("127.0.0.1", "a loopback address"),
    ("127.45.6.7", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.5.4", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "a link-local address (cloud metadata service)"),
    ("169.254.10.20", "a link-local address"),
    ("::1", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("fc00::1", "a unique-local address"),
    ("fd12:3456::1", "a unique-local address"),
    ("::ffff:127.0.0.1", "an IPv6 address wrapping 127.0.0.1, a loopback address"),
    ("::ffff:10.0.0.1", "an IPv6 address wrapping 10.0.0.1, a private address"),
    ("2002:a9fe:a9fe::", "wrapping 169.254.169.254, a link-local address (cloud metadata service)"),  # 6to4
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a private address"),
]


@pytest.mark.parametrize(("ip", "kind"), ADDRESS_CLASSES)
def test_host_resolving_to_a_non_public_address_is_refused(ip: str, kind: str) -> None:
    resolver, connect = Resolver({"victim.test": [ip]}), NoConnections()
    message = refusal("http://victim.test/admin", PUBLIC, resolver=resolver, connect=connect)
    assert message.startswith(f"http://victim.test/admin is refused: victim.test resolves to {ip}, ")
    assert kind in message
    assert resolver.calls == ["victim.test"]
    assert connect.calls == []


@pytest.mark.parametrize(("ip", "kind"), ADDRESS_CLASSES)
def test_ip_literal_in_the_url_is_refused(ip: str, kind: str) -> None:
    host = f"[{ip}]" if ":" in ip else ip
    resolver, connect = Resolver({}), NoConnections()
    message = refusal(f"http://{host}:8080/", PUBLIC, resolver=resolver, connect=connect)
    assert kind in message
    assert connect.calls == [] and resolver.calls == []


def test_every_resolved_address_is_checked() -> None:
    resolver, connect = Resolver({"mixed.test": [FAKE_PUBLIC_IP, "10.0.0.7"]}), NoConnections()
    message = refusal("https://mixed.test/", PUBLIC, resolver=resolver, connect=connect)
    assert "mixed.test resolves to 10.0.0.7, a private address" in message
    assert connect.calls == []


def test_default_settings_refuse_the_local_server_without_a_request(base: str, server: _Server) -> None:
    """Real resolver and real connect: the refusal must come before any socket is opened."""
    port = server.server_address[1]
    with pytest.raises(UserError, match=r"127\.0\.0\.1 is a loopback address"):
        fetch_document(f"http://127.0.0.1:{port}/article", CorpusSettings())
    with pytest.raises(UserError, match=r"localhost resolves to \S+, a loopback address"):
        fetch_document(f"http://localhost:{port}/article", CorpusSettings())
    assert server.requests == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address (cloud metadata service)"),
        (
            "http://[::ffff:127.0.0.1]:{port}/article",
            "an IPv6 address wrapping 127.0.0.1, a loopback address",
        ),
        ("http://localhost:{port}/article", "localhost resolves to 127.0.0.1, a loopback address"),
        ("file:///etc/passwd", "only http and https links can be fetched, not file ones"),
    ],
)
def test_redirect_to_a_private_address_is_refused(server: _Server, target: str, reason: str) -> None:
    """The first hop is a (fake) public site, so the guard is on; its redirect must be checked too."""
    server.requests.clear()
    port = server.server_address[1]
    target = target.format(port=port)
    resolver = Resolver({"news.test": [FAKE_PUBLIC_IP], "localhost": ["127.0.0.1"]})
    connect = Connections()
    url = f"http://news.test:{port}/redirect?to={target}"
    message = refusal(url, PUBLIC, resolver=resolver, connect=connect)
    assert message.startswith(f"{url} redirects to {target}, which is refused")
    assert reason in message
    assert connect.calls == [(FAKE_PUBLIC_IP, port)]  # served by loopback; nothing else was tried
    assert len(server.requests) == 1


# ---------------------------------------------------------------- HTTPS through the pinned connection


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, Path, list[str]]]:
    """A loopback HTTPS server whose self-signed certificate is for news.test only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=news.test",
         "-addext", "subjectAltName=DNS:news.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server_names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name or "")  # type: ignore[func-returns-value]
    srv = _Server()
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv, cert, server_names
    srv.stop.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_https_uses_the_host_name_for_sni_and_the_certificate(
    tls_server: tuple[_Server, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, cert, server_names = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port = srv.server_address[1]
    resolver, connect = Resolver({"news.test": ["127.0.0.1"]}), Connections()
    doc = fetch(f"https://news.test:{port}/article", resolver=resolver, connect=connect)
    assert SENTENCE in doc.text
    assert doc.url == f"https://news.test:{port}/article"
    assert connect.calls == [("127.0.0.1", port)]
    assert server_names[-1] == "news.test"


def test_https_certificate_for_another_name_is_refused(
    tls_server: tuple[_Server, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting to a vetted IP must not weaken TLS: the certificate is still checked against the name."""
    srv, cert, _ = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port = srv.server_address[1]
    message = refusal(f"https://other.test:{port}/article", resolver=Resolver({"other.test": ["127.0.0.1"]}))
    assert message.startswith(f"https://other.test:{port}/article could not be reached")
    assert "certificate" in message.lower()


def test_error_after_a_redirect_names_both_addresses(base: str) -> None:
    url = f"{base}/redirect?to=/missing"
    assert refusal(url) == f"{url} (redirected to {base}/missing) returned 404 Not Found"
