"""The compatibility gate: every current schema must read what every released one wrote.

Two independent checks, both must pass:
- fastavro schema resolution: data written with each released version (one datum per union
  branch, every field filled) is read back with the current schema as the reader;
- the schema registry's own compatibility endpoint, for every subject it already holds
  (subjects are BACKWARD_TRANSITIVE, so the registry checks against all its versions).

Released versions live in ``schemas/released/<version>/`` as expanded schemas; `aion schemas
release NAME` snapshots the current ones there.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from schemas import catalog

RELEASED_DIR = Path(__file__).parent / "released"
VARIANTS = 3  # data per released schema: union branch i % len(union) in datum i


@dataclass(frozen=True)
class Incompatibility:
    record: str
    against: str  # "released <version>" or "registry <subject>"
    problem: str

    def __str__(self) -> str:
        return f"{self.record} vs {self.against}: {self.problem}"


def released_versions(root: Path = RELEASED_DIR) -> dict[str, dict[str, dict[str, Any]]]:
    """version -> record name -> expanded schema."""
    versions: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        versions[folder.name] = {
            p.name.removesuffix(".avsc"): json.loads(p.read_text())
            for p in sorted(folder.glob("*.avsc"))
        }
    return versions


def sample(kind: Any, variant: int, named: dict[str, Any] | None = None) -> Any:
    """A datum of an Avro type with every field filled; ``variant`` picks union branches."""
    named = {} if named is None else named
    if isinstance(kind, list):
        return sample(kind[variant % len(kind)], variant, named)
    if isinstance(kind, str):
        primitive = {
            "null": None,
            "boolean": variant % 2 == 1,
            "int": variant + 1,
            "long": 1_700_000_000_000 + variant,
            "float": 0.5 + variant,
            "double": 0.25 + variant,
            "bytes": b"bytes",
            "string": f"text-{variant}",
        }
        if kind in primitive:
            return primitive[kind]
        return sample(named[kind], variant, named)
    t = kind["type"]
    if t in ("record", "enum", "fixed"):
        named[kind["name"]] = kind
    if t == "record":
        return {f["name"]: sample(f["type"], variant, named) for f in kind["fields"]}
    if t == "enum":
        return kind["symbols"][variant % len(kind["symbols"])]
    if t == "fixed":
        return b"\0" * kind["size"]
    if t == "array":
        return [sample(kind["items"], variant, named)]
    if t == "map":
        return {"key": sample(kind["values"], variant, named)}
    return sample(t, variant, named)


def resolution_problems(writer: dict[str, Any], reader: dict[str, Any]) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty when it can)."""
    parsed_writer = fastavro.parse_schema(writer)
    parsed_reader = fastavro.parse_schema(reader)
    problems = []
    for variant in range(VARIANTS):
        datum = sample(writer, variant)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, datum)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # any resolution failure is the finding itself
            problems.append(f"{type(exc).__name__}: {exc}")
    return sorted(set(problems))


def check_released(
    current: dict[str, dict[str, Any]] | None = None, root: Path = RELEASED_DIR
) -> list[Incompatibility]:
    """Every current record against every released version of it (fastavro resolution)."""
    if current is None:
        current = {name: r.schema for name, r in catalog.all_records().items()}
    found = []
    for version, records in released_versions(root).items():
        for name, old in records.items():
            if name not in current:
                found.append(Incompatibility(name, f"released {version}", "record was removed"))
                continue
            for problem in resolution_problems(old, current[name]):
                found.append(Incompatibility(name, f"released {version}", problem))
    return found


def check_registry(registry_url: str) -> list[Incompatibility]:
    """Every current record against the registry's subjects for it (those that exist)."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from schemas.codec import subject
    from schemas.topics import TOPICS

    client = SchemaRegistryClient({"url": registry_url})
    existing = set(client.get_subjects())
    found = []
    for spec in TOPICS:
        for name in spec.records:
            subj = subject(spec.name, name)
            if subj not in existing:
                continue
            schema = Schema(catalog.record(name).text, "AVRO")
            if not client.test_compatibility(subj, schema):
                found.append(Incompatibility(name, f"registry {subj}", "the registry refuses it"))
    return found


def snapshot(version: str, root: Path = RELEASED_DIR) -> Path:
    """Record the current schemas as released ``version`` (refuses to overwrite one)."""
    folder = root / version
    if folder.exists():
        raise FileExistsError(f"released version {version} exists already: {folder}")
    folder.mkdir(parents=True)
    for name, record in catalog.all_records().items():
        text = json.dumps(record.schema, indent=2, sort_keys=True) + "\n"
        (folder / f"{name}.avsc").write_text(text)
    return folder
