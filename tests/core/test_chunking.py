import pytest

from core.documents import Document
from core.sync.chunking import ChunkingOptions, chunk_document, split_sections


def _doc(text: str) -> Document:
    return Document(id="a.md", source="kb", title="Guide", text=text)


def test_heading_path_travels_with_each_chunk() -> None:
    text = (
        "# Guide\n\nIntro text here.\n\n## Leave\n\nLeave intro.\n\n### Carry-over\n\n"
        "Five days roll over.\n\n## Expenses\n\nFile in 60 days."
    )
    chunks = chunk_document(_doc(text), ChunkingOptions())
    by_text = {c.text: c.heading_path for c in chunks}
    assert by_text["Five days roll over."] == ("Guide", "Leave", "Carry-over")
    assert by_text["File in 60 days."] == ("Guide", "Expenses")
    # The embedded text names where the passage sits, without repeating the title.
    carry = next(c for c in chunks if c.text == "Five days roll over.")
    assert carry.search_text().startswith("Guide > Leave > Carry-over\n\n")


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    text = "# Deploy\n\n```bash\n# not a heading\nmake deploy\n```\n\nAfter the fence."
    sections = split_sections(text)
    assert [s.headings for s in sections] == [("Deploy",)]
    assert "# not a heading" in sections[0].blocks[0]


def test_long_sections_split_within_limit_and_overlap() -> None:
    sentences = " ".join(f"Sentence number {i} talks about the travel policy." for i in range(200))
    options = ChunkingOptions(max_chars=500, overlap_chars=100)
    chunks = chunk_document(_doc(f"# Travel\n\n{sentences}"), options)
    assert len(chunks) > 5
    assert all(len(c.text) <= options.max_chars + 10 for c in chunks)
    # Each chunk after the first starts with the tail of the one before it.
    for previous, current in zip(chunks, chunks[1:], strict=False):
        head = current.text.split(" … ")[0]
        assert head and head in previous.text
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_a_single_huge_word_is_still_cut() -> None:
    chunks = chunk_document(_doc("x" * 5000), ChunkingOptions(max_chars=1000, overlap_chars=0))
    assert sum(len(c.text.replace("\n", "")) for c in chunks) == 5000
    assert all(len(c.text) <= 1000 for c in chunks)


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(_doc("   \n\n  "), ChunkingOptions()) == []


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (1000, 600), (1000, -1)])
def test_nonsense_options_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunking"):
        ChunkingOptions(max_chars=size, overlap_chars=overlap)
