"""The README and the pages under docs/ hold together.

Every relative Markdown link in README.md and docs/*.md points at a file that exists, and
every `#anchor` (alone, or after a path to a Markdown file) names a heading of its target,
slugged as GitHub does. The README keeps naming the two commands (`make demo`, `make test`)
that CI and newcomers rely on, and links every page under docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
# [text](target) or ![alt](target), with an optional "title"; nested brackets in text are not used here.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(_CODE_SPAN.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and spaces kept), spaces → hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub generates for the headings of a Markdown file (repeats get -1, -2, …)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The link targets in a Markdown file's prose, in order."""
    return [
        m.group(1) for line in _prose_lines(path.read_text(encoding="utf-8")) for m in _LINK.finditer(line)
    ]


def broken_links(path: Path) -> list[str]:
    """Each relative link or anchor in `path` that resolves to nothing, with the reason."""
    problems = []
    for target in links(path):
        if _SCHEME.match(target):  # http:, https:, mailto: and the like are not checked here
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: {linked} does not exist")
            continue
        if anchor and linked.suffix == ".md" and anchor.lower() not in anchors(linked):
            problems.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_names_the_two_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "make demo" in readme
    assert "make test" in readme


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README) if not _SCHEME.match(t)}
    assert DOCS.is_dir()
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked] == []


def test_slugs_follow_githubs_rule() -> None:
    assert slug("Running in production") == "running-in-production"
    assert slug("Reranking (optional)") == "reranking-optional"
    assert slug("RAG or fine-tuning, measured on your data") == "rag-or-fine-tuning-measured-on-your-data"
    assert slug("Schedules, workers and syncs you can trust") == "schedules-workers-and-syncs-you-can-trust"
    assert slug("The `archivist` command") == "the-archivist-command"


def test_the_checker_reports_a_missing_file_a_missing_anchor_and_ignores_code(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Twice\n\n## Twice\n\n"
        "[ok](other.md) [ok](other.md#a-section) [ok](#twice-1) [ok](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) [bad local](#nowhere)\n"
        "`[in code](missing-too.md)`\n\n```\n[in a fence](missing-three.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(page)
    assert [p.split(":")[0] for p in problems] == ["missing.md", "other.md#nowhere", "#nowhere"]
