"""Turn file bytes into (title, Markdown-ish text), keeping headings where the format has them."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from pathlib import PurePath

import charset_normalizer
from bs4 import BeautifulSoup

Parsed = tuple[str, str]  # (title, text)

# Page chrome an HTML extractor should drop: it is the same on every page and answers nothing.
_HTML_BOILERPLATE = ("script", "style", "nav", "footer", "header", "aside", "noscript", "form")
# UTF-32 first: its little-endian mark begins with UTF-16's.
_UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UnreadableFile(Exception):
    """The file is corrupt or not what its extension says."""


def _first_heading(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _decode(data: bytes) -> str:
    # UTF-16 and UTF-32 text is full of NUL bytes: its byte order mark says it is text.
    for bom, codec in _UNICODE_BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                msg = f"not valid {codec.upper()} text ({exc.reason})"
                raise UnreadableFile(msg) from exc
    if b"\x00" in data[:4096]:
        msg = "binary content in a text file"
        raise UnreadableFile(msg)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Older editors save cp1252, Shift-JIS, GB18030...: guess the charset from the bytes,
    # rather than reading them all as latin-1 mojibake.
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        msg = "not text in any encoding we recognise"
        raise UnreadableFile(msg)
    return str(best)


def parse_markdown(data: bytes) -> Parsed:
    text = _decode(data)
    return _first_heading(text), text


def parse_html(data: bytes) -> Parsed:
    soup = BeautifulSoup(_decode(data), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_HTML_BOILERPLATE):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "pre"]):
        if element.find_parent(["li", "tr", "pre"]) and element.name in ("p", "li"):
            continue  # nested text is emitted by its container
        if element.name.startswith("h"):
            level = int(element.name[1])
            lines += ["", "#" * level + " " + element.get_text(" ", strip=True), ""]
        elif element.name == "li":
            lines.append("- " + element.get_text(" ", strip=True))
        elif element.name == "tr":
            cells = [cell.get_text(" ", strip=True) for cell in element.find_all(["th", "td"])]
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines += ["", element.get_text(" ", strip=True), ""]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return title or _first_heading(text), text


def parse_pdf(data: bytes) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        msg = f"not a readable PDF ({exc})"
        raise UnreadableFile(msg) from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        msg = "the PDF has no extractable text (scanned images need OCR)"
        raise UnreadableFile(msg)
    return title or text.splitlines()[0].strip(), text


def parse_docx(data: bytes) -> Parsed:
    from zipfile import BadZipFile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (BadZipFile, KeyError, ValueError) as exc:
        msg = f"not a readable DOCX ({exc})"
        raise UnreadableFile(msg) from exc
    lines: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = style.removeprefix("Heading ").strip()
        if style == "Title":
            lines += ["", f"# {text}", ""]
        elif level.isdigit():
            lines += ["", "#" * min(int(level), 6) + " " + text, ""]
        elif "List" in style:
            lines.append(f"- {text}")
        else:
            lines += ["", text, ""]
    for table in document.tables:
        for row in table.rows:
            lines.append("| " + " | ".join(cell.text.strip() for cell in row.cells) + " |")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = document.core_properties.title or _first_heading(text)
    return title, text


PARSERS: dict[str, tuple[str, Callable[[bytes], Parsed]]] = {
    ".md": ("text/markdown", parse_markdown),
    ".markdown": ("text/markdown", parse_markdown),
    ".txt": ("text/plain", parse_markdown),
    ".html": ("text/html", parse_html),
    ".htm": ("text/html", parse_html),
    ".pdf": ("application/pdf", parse_pdf),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", parse_docx),
}


def parse_file(path: PurePath, data: bytes) -> tuple[str, str, str]:
    """Return (mime type, title, text) for a supported file, or raise UnreadableFile."""
    mime_type, parser = PARSERS[path.suffix.lower()]
    title, text = parser(data)
    if not text.strip():
        msg = "the file has no text"
        raise UnreadableFile(msg)
    return mime_type, title.strip() or path.stem.replace("-", " ").replace("_", " "), text
