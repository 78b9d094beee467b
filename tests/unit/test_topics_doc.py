"""docs/topics.md is generated from the schemas and must not drift from them."""

from pathlib import Path

from schemas.topics_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "topics.md"


def test_committed_topic_catalogue_matches_the_schemas() -> None:
    assert DOC.read_text() == render(), "run `aion docs topics` and commit docs/topics.md"


def test_every_topic_and_record_is_documented() -> None:
    from schemas import catalog
    from schemas.topics import TOPICS

    text = render()
    for topic in TOPICS:
        assert f"## `{topic.name}`" in text
    for name in catalog.all_records():
        assert f"### `{name}`" in text
