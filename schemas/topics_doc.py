"""Renders `docs/topics.md` from the topic catalogue and the Avro schemas.

`aion docs topics` writes it; a test fails when the committed file differs from the render.
"""

from __future__ import annotations

from typing import Any

from schemas import catalog
from schemas.topics import TOPICS


def _type(kind: Any) -> str:
    if isinstance(kind, list):
        return " | ".join(_type(k) for k in kind)
    if isinstance(kind, dict):
        t = kind["type"]
        if t == "map":
            return f"map<{_type(kind['values'])}>"
        if t == "array":
            return f"array<{_type(kind['items'])}>"
        if t == "record":
            return str(kind["name"])
        return str(kind.get("logicalType") or t)
    return str(kind)


def _retention(ms: int) -> str:
    return "forever" if ms < 0 else f"{ms // 86_400_000} days"


def render() -> str:
    lines = [
        "# Topic catalogue",
        "",
        "Generated from `schemas/topics.py` and `schemas/avro/` by `aion docs topics`; do not "
        "edit by hand.",
        "",
        "Every value is Avro in the Confluent wire format (magic byte, 4-byte schema id, body).",
        "Subjects follow the TopicRecordNameStrategy: `<topic>-<record full name>`, each with "
        "BACKWARD_TRANSITIVE compatibility. Messages carry an `aion-type` header naming the "
        "record. Order is guaranteed per key (one partition per key).",
        "",
        "To read a topic with confluent-kafka, give its `AvroDeserializer` the registry URL and "
        '`conf={"subject.name.strategy": topic_record_subject_name_strategy}`, and the '
        'registry client a `"timeout"`: without the strategy, confluent-kafka 2.16 asks the '
        "registry for topic associations (a Confluent-only API that Apicurio answers 404). "
        "Apicurio 3.3.3 drops about one in a few hundred of those 404 answers on a kept-alive "
        "connection; the embedded registry closes idle connections after 5 s "
        "(`quarkus.http.idle-timeout`), so a consumer with the default settings stalls at most "
        "that long, and the settings above avoid the request altogether.",
        "",
        "| topic | key | records | retention | cleanup |",
        "|---|---|---|---|---|",
    ]
    for t in TOPICS:
        records = ", ".join(f"`{r}`" for r in t.records) or "the failed message's bytes"
        lines.append(
            f"| `{t.name}` | {t.key} | {records} | {_retention(t.retention_ms)} "
            f"| {t.cleanup_policy} |"
        )
    lines.append("")
    for t in TOPICS:
        lines += [f"## `{t.name}`", "", t.doc, ""]
    lines += ["## Records", ""]
    for name, record in catalog.all_records().items():
        lines += [f"### `{name}`", "", "| field | type |", "|---|---|"]
        for field in record.schema["fields"]:
            lines.append(f"| `{field['name']}` | `{_type(field['type'])}` |")
        lines.append("")
    return "\n".join(lines)
