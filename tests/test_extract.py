"""corpus.extract: every format gives the article's words verbatim, and every bad input is refused with a
message naming the item and the reason."""

from __future__ import annotations

import io
import os
import pathlib
import struct
import unicodedata
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.extract import (
    SUPPORTED_SUFFIXES,
    canonical_url,
    collect_paths,
    content_hash,
    document_from_text,
    extract_bytes,
    extract_file,
    extract_html,
    normalise_for_hash,
)
from engine.errors import UserError
from tests._corpus_samples import make_docx, make_pdf

MB = 1_000_000
LIMIT = 20 * MB
SENTENCE = "The harbour bridge reopened on Tuesday after eight months of repairs costing 12 million euros."
SAMPLE_ARTICLE = Path("/work/shared/articles/russia-us-talks-syria-airstrikes.txt")

ARTICLE_HTML = f"""<!doctype html>
<html><head>
<title>Harbour Bridge Reopens | Example Gazette</title>
<meta property="og:site_name" content="Example Gazette">
<meta property="og:title" content="Harbour Bridge Reopens After Repairs">
<meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2024-03-05T10:00:00Z">
</head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | Subscribe now</nav>
<article>
<h1>Harbour Bridge Reopens After Repairs</h1>
<p>{SENTENCE}</p>
<p>Engineers replaced the corroded cables and resurfaced the deck, the city council said on Monday.</p>
<p>Traffic is expected to return to normal levels by the end of the month, the port authority said.</p>
</article>
<footer>Copyright 2024 Example Gazette. All rights reserved.</footer>
</body></html>"""


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- formats


def test_txt_keeps_the_whole_text_and_takes_the_first_line_as_title(tmp_path: Path) -> None:
    path = write(tmp_path / "bridge.txt", f"Harbour Bridge Reopens\n\n{SENTENCE}\n")
    doc = extract_file(path, LIMIT)
    assert doc.title == "Harbour Bridge Reopens"
    assert doc.text == f"Harbour Bridge Reopens\n\n{SENTENCE}"
    assert doc.source == str(path)


def test_text_is_normalised_line_ends_spaces_blank_lines_and_nfc(tmp_path: Path) -> None:
    decomposed = "Cafe\u0301 owners protest"  # e + combining accent
    raw = f"\ufeff{decomposed}   \r\n\r\n\r\n\r\n\r\nLine two\t \r\nLine three"
    doc = extract_file(write(tmp_path / "cafe.txt", raw), LIMIT)
    assert doc.text == "Café owners protest\n\nLine two\nLine three"
    assert doc.title == "Café owners protest"
    assert unicodedata.is_normalized("NFC", doc.text)


def test_markdown_syntax_is_removed_but_the_words_stay(tmp_path: Path) -> None:
    md = (
        "# Harbour Bridge Reopens\n\n"
        f"{SENTENCE}\n\n"
        "Read the [council statement](https://example.org/statement) and **full report**.\n\n"
        "> Traffic will return to normal, the port authority said.\n"
    )
    doc = extract_file(write(tmp_path / "bridge.md", md), LIMIT)
    assert doc.title == "Harbour Bridge Reopens"
    assert SENTENCE in doc.text
    assert "Read the council statement and full report." in doc.text
    assert "Traffic will return to normal, the port authority said." in doc.text
    assert "#" not in doc.text and "https://" not in doc.text and "**" not in doc.text


def test_html_gives_main_text_and_metadata(tmp_path: Path) -> None:
    doc = extract_file(write(tmp_path / "bridge.html", ARTICLE_HTML), LIMIT)
    assert SENTENCE in doc.text
    assert "Engineers replaced the corroded cables" in doc.text
    assert "Subscribe now" not in doc.text and "All rights reserved" not in doc.text
    assert doc.title == "Harbour Bridge Reopens After Repairs"
    assert doc.outlet == "Example Gazette"
    assert doc.byline == "Jane Doe"
    assert doc.published == "2024-03-05"


def test_html_from_a_url_records_the_canonical_url() -> None:
    doc = extract_html(ARTICLE_HTML, "HTTPS://Example.org:443/news/bridge/?utm_source=tw#top", "a link")
    assert doc.url == "https://example.org/news/bridge"
    assert doc.source == "a link"
    assert SENTENCE in doc.text


def test_short_html_without_metadata_uses_the_title_tag(tmp_path: Path) -> None:
    page = "<html><head><title>Short note</title></head><body><p>Only one line here.</p></body></html>"
    doc = extract_file(write(tmp_path / "note.htm", page), LIMIT)
    assert doc.title == "Short note"
    assert "Only one line here." in doc.text
    assert doc.outlet is None and doc.published is None


def test_html_control_characters_from_the_page_are_dropped_not_refused() -> None:
    page = b"<html><body><p>Alpha\x07 beta\x0c gamma delta epsilon.</p></body></html>"
    doc = extract_html(page, None, "page.html")
    assert "Alpha beta" in doc.text
    assert not any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in doc.text)


def test_html_with_no_text_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.html", "<html><head></head><body><div>   </div></body></html>")
    assert refusal(extract_file, path, LIMIT) == f"{path} has no readable text"


def test_pdf_text_is_extracted_with_the_metadata_title(tmp_path: Path) -> None:
    pdf = make_pdf(["Harbour Bridge Reopens", SENTENCE], title="Bridge Report 2024")
    doc = extract_file(write(tmp_path / "report.pdf", pdf), LIMIT)
    assert SENTENCE in doc.text
    assert doc.title == "Bridge Report 2024"


def test_pdf_without_title_metadata_uses_the_first_line(tmp_path: Path) -> None:
    doc = extract_file(write(tmp_path / "report.pdf", make_pdf(["Harbour Bridge Reopens", SENTENCE])), LIMIT)
    assert doc.title == "Harbour Bridge Reopens"


def test_pdf_without_text_layer_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "scan.pdf", make_pdf([], text_layer=False))
    assert refusal(extract_file, path, LIMIT) == f"{path} has no text layer (scanned PDF?)"


@pytest.mark.parametrize("data", [b"%PDF-1.4\n1 0 obj\n<< /Type /Cat", b"this is not a pdf at all", b""])
def test_malformed_pdf_is_refused(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "broken.pdf", data)
    assert refusal(extract_file, path, LIMIT).startswith(f"{path} is not a valid PDF")


def test_docx_paragraphs_are_joined_by_blank_lines(tmp_path: Path) -> None:
    data = make_docx(["Harbour Bridge Reopens", SENTENCE, "Engineers replaced the cables."], title="Bridge")
    doc = extract_file(write(tmp_path / "bridge.docx", data), LIMIT)
    assert doc.text == f"Harbour Bridge Reopens\n\n{SENTENCE}\n\nEngineers replaced the cables."
    assert doc.title == "Bridge"


def test_docx_tables_are_kept_and_title_falls_back_to_the_first_line(tmp_path: Path) -> None:
    data = make_docx(["Harbour Bridge Reopens", SENTENCE], table=[["Cost", "12 million euros"]])
    doc = extract_file(write(tmp_path / "bridge.docx", data), LIMIT)
    assert doc.title == "Harbour Bridge Reopens"
    assert "Cost | 12 million euros" in doc.text


def test_malformed_docx_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.docx", b"PK\x03\x04 definitely not a zip archive")
    assert refusal(extract_file, path, LIMIT) == f"{path} is not a valid .docx file (not a zip archive)"


def test_zip_that_is_not_a_word_document_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    path = write(tmp_path / "other.docx", buffer.getvalue())
    assert "is not a valid .docx file" in refusal(extract_file, path, LIMIT)


def test_zip_bomb_docx_is_refused_before_unpacking(tmp_path: Path) -> None:
    """A real bomb: 30 MB of zeros compress to a few kB; the limit is 1 MB, so unpacking may reach 10 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"0" * (30 * MB))
    assert len(buffer.getvalue()) < MB
    path = write(tmp_path / "bomb.docx", buffer.getvalue())
    message = refusal(extract_file, path, MB)
    assert message == f"{path} unpacks to 30.0 MB, over the 10 MB limit (zip bomb?)"


def test_docx_declaring_a_huge_member_is_refused(tmp_path: Path) -> None:
    """The member is tiny but its central directory entry declares about 4 GB."""
    data = bytearray(make_docx(["Harbour Bridge Reopens", SENTENCE]))
    entry = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, entry + 24, 0xFFFFFFF0)  # uncompressed size field
    path = write(tmp_path / "liar.docx", bytes(data))
    assert "GB, over the 200 MB limit (zip bomb?)" in refusal(extract_file, path, LIMIT)


def test_extract_bytes_handles_uploads_by_name(tmp_path: Path) -> None:
    doc = extract_bytes("Bridge notes.docx", make_docx(["Harbour Bridge Reopens", SENTENCE]), LIMIT)
    assert SENTENCE in doc.text
    assert doc.source == "Bridge notes.docx"
    pdf = extract_bytes("upload", make_pdf(["Harbour Bridge Reopens", SENTENCE]), LIMIT, suffix=".pdf")
    assert SENTENCE in pdf.text


@pytest.mark.skipif(not SAMPLE_ARTICLE.exists(), reason="shared sample article not present")
def test_the_shared_sample_article() -> None:
    doc = extract_file(SAMPLE_ARTICLE, LIMIT)
    assert doc.title == "Russia, US to Hold Talks on Coordinating Airstrikes in Syria"
    assert "According to them, this has resulted in the death of 36 civilians including children." in doc.text


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    assert refusal(extract_file, path, LIMIT) == f"{path} does not exist"


def test_directory_passed_as_a_file(tmp_path: Path) -> None:
    assert refusal(extract_file, tmp_path, LIMIT) == f"{tmp_path} is a directory, not a file"


@pytest.fixture
def unreadable_txt(tmp_path: Path) -> Path:
    """A .txt path that cannot be opened. chmod 000 stops ordinary users; root ignores it, so as root the
    path is a link to a write-only kernel file, which refuses reads even to root."""
    path = write(tmp_path / "secret.txt", "Private words.")
    path.chmod(0)
    if not os.access(path, os.R_OK):
        return path
    path.unlink()
    target = Path("/proc/sys/vm/drop_caches")
    try:
        target.open("rb").close()
    except PermissionError:
        path.symlink_to(target)
        return path
    except OSError:
        pass
    pytest.skip("no way to make an unreadable file here")


def test_unreadable_file(unreadable_txt: Path) -> None:
    assert (
        refusal(extract_file, unreadable_txt, LIMIT) == f"{unreadable_txt} cannot be read: permission denied"
    )


@pytest.mark.parametrize("name", ["photo.png", "archive.tar.gz", "README"])
def test_unsupported_suffix_lists_the_supported_ones(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "some words")
    message = refusal(extract_file, path, LIMIT)
    assert message.startswith(f"{path}: ")
    assert "not supported (supported: .docx, .htm, .html, .md, .pdf, .txt)" in message
    assert "extension" in message if name == "README" else f"'{Path(name).suffix}'" in message


def test_binary_content_in_a_text_file(tmp_path: Path) -> None:
    path = write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert refusal(extract_file, path, LIMIT).startswith(f"{path} is not valid UTF-8: it contains NUL bytes")


def test_a_windows_1252_text_file_is_read_as_such(tmp_path: Path) -> None:
    text = "Caf\xe9 au lait \u2013 \u201cn\xe9e\u201d\n\nIt costs 3\u20ac."
    path = write(tmp_path / "latin1.md", text.encode("cp1252"))
    doc = extract_file(path, LIMIT)
    assert doc.title == "Caf\xe9 au lait \u2013 \u201cn\xe9e\u201d" and "3\u20ac" in doc.text


def test_text_file_in_neither_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.md", b"Caf\xe9 au \x81 lait")  # 0x81 is unused in cp1252
    assert refusal(extract_file, path, LIMIT) == (
        f"{path} is neither UTF-8 nor Windows-1252 text (byte 0x81 at position 8 is in neither)"
    )


def test_utf8_with_a_damaged_byte_is_refused_not_misread(tmp_path: Path) -> None:
    data = "Z\u00fcrich caf\u00e9 \u2014 na\u00efve".encode() + b" \xe9 end"  # one Latin-1 byte in UTF-8 text
    path = write(tmp_path / "damaged.txt", data)
    assert refusal(extract_file, path, LIMIT) == f"{path} is UTF-8 with a damaged byte (byte 0xE9 at position 25)"


def test_control_character_in_a_text_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bell.txt", "Title\nA line with a bell\x07 in it.")
    assert refusal(extract_file, path, LIMIT) == f"{path} contains control character U+0007 (line 2)"


@pytest.mark.parametrize("content", ["", "   \n\n\t  \r\n "])
def test_empty_or_blank_file(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "empty.md", content)
    assert refusal(extract_file, path, LIMIT) == f"{path} is empty"


def test_oversized_file_is_refused_from_stat_without_reading(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as fh:
        fh.truncate(25_300_000)  # sparse: no data written

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(pathlib.Path, "open", no_reading)
    assert refusal(extract_file, path, LIMIT) == f"{path} is 25.3 MB, over the 20 MB limit"


def test_oversized_upload_is_refused_by_length() -> None:
    message = refusal(extract_bytes, "notes.txt", b"word " * 500, 1000)
    assert message == "notes.txt is 2.5 kB, over the 1 kB limit"


# ---------------------------------------------------------------- pasted text


def test_pasted_text_first_line_is_the_title_and_stays_in_the_text() -> None:
    doc = document_from_text(f"  Harbour Bridge Reopens  \n{SENTENCE}", None)
    assert doc.title == "Harbour Bridge Reopens"
    assert doc.text == f"Harbour Bridge Reopens\n{SENTENCE}"
    assert doc.source == "pasted text"


def test_pasted_text_with_a_given_title_and_a_long_first_line() -> None:
    assert document_from_text(SENTENCE, "Bridge").title == "Bridge"
    long_line = "word " * 100
    assert len(document_from_text(long_line, None).title) <= 200


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        (" \n \t\n", "is empty"),
        ("Title\x00body", "contains control character U+0000 (line 1)"),
        ("Title\n\nbody\x1b[31m red", "contains control character U+001B (line 3)"),
        ("Title\x85", "contains control character U+0085 (line 1)"),
        ("Title\ud800", "contains an unpaired surrogate U+D800 (line 1)"),
    ],
)
def test_bad_pasted_text(text: str, reason: str) -> None:
    assert refusal(document_from_text, text, None) == f"pasted text {reason}"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\r\t ")))
def test_clean_text_is_a_fixed_point(text: str) -> None:
    """Whatever is accepted comes out NFC, with \\n line ends, and unchanged when fed back in."""
    try:
        doc = document_from_text(text, None)
    except UserError as exc:
        assert str(exc) == "pasted text is empty"
        return
    assert "\r" not in doc.text
    assert unicodedata.is_normalized("NFC", doc.text)
    assert document_from_text(doc.text, None).text == doc.text


# ---------------------------------------------------------------- paths, hashes, URLs


def test_collect_paths_walks_a_directory(tmp_path: Path) -> None:
    for rel in [
        "b.txt",
        "a.md",
        "sub/deep/c.pdf",
        "sub/d.docx",
        "sub/e.HTML",
        "notes.csv",
        ".hidden.txt",
        ".git/f.txt",
        "sub/.cache/g.html",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in collect_paths(tmp_path)]
    assert found == ["a.md", "b.txt", "sub/d.docx", "sub/deep/c.pdf", "sub/e.HTML"]
    assert {Path(p).suffix.lower() for p in found} <= SUPPORTED_SUFFIXES


def test_collect_paths_of_a_file_and_of_nothing(tmp_path: Path) -> None:
    file = write(tmp_path / "one.txt", "x")
    assert collect_paths(file) == [file]
    assert refusal(collect_paths, tmp_path / "missing") == f"{tmp_path / 'missing'} does not exist"


def test_same_article_with_different_spacing_quotes_and_case_hashes_the_same() -> None:
    first = "Harbour Bridge Reopens\n\nThe mayor said: “It’s done” — finally.\n"
    second = '  harbour   bridge reopens The mayor said: "It\'s done" - FINALLY.\u200b  '
    assert normalise_for_hash(first) == normalise_for_hash(second)
    assert content_hash(first) == content_hash(second)
    assert len(content_hash(first)) == 64
    assert content_hash(first) != content_hash("Harbour Bridge Closes\n\nThe mayor said: “It’s done”.")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/News/", "https://example.com/News"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/a/", "https://example.com:8443/a"),
        ("https://example.com/a?utm_source=x&b=2&utm_medium=y&a=1#comments", "https://example.com/a?a=1&b=2"),
        ("https://example.com/?fbclid=abc&gclid=def", "https://example.com/"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("http://[::1]:8080/x/", "http://[::1]:8080/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected
