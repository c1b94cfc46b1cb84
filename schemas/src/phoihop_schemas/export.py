"""Generate JSON Schema for every event and an AsyncAPI 3 document from the models.

`python -m phoihop_schemas.export schemas/generated` (or `make schemas`) rewrites the
checked-in files; a test fails when they are stale, another parses the AsyncAPI document
with the official parser (`tests/contracts/node`).

The AsyncAPI document describes an agency's system as a client of the bus: it *sends* to
the inbound topics and *receives* from the canonical topics and the dead-letter topic. The
bus's internal topics (routing timers, duplicate buckets, routing commands, notify retries)
are its own plumbing, not a contract: they are left out and listed in `info.description`.
Every example is a real model instance put through `codec.encode`, so example headers and
payloads are exactly what the bus sends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from phoihop_schemas.codec import submission_id
from phoihop_schemas.export_asyncapi import asyncapi
from phoihop_schemas.export_headers import header_schemas
from phoihop_schemas.export_messages import json_schemas
from phoihop_schemas.export_rules import (
    DEAD_LETTER_REASONS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    REPORTER_REQUIRED_KINDS,
    SAMPLE_LOCALITIES,
    SCHEMA_BASE,
)

# The parts live in export_rules, export_messages, export_headers, export_examples and
# export_asyncapi; these names stay importable from here.
__all__ = [
    "DEAD_LETTER_REASONS",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "REPORTER_REQUIRED_KINDS",
    "SAMPLE_LOCALITIES",
    "SCHEMA_BASE",
    "asyncapi",
    "header_schemas",
    "json_schemas",
    "render",
    "submission_id",
    "write",
]


def render() -> dict[str, str]:
    """File name → content of every generated file."""
    schemas = {**json_schemas(), **header_schemas()}
    files = {
        f"jsonschema/{stem}.json": json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for stem, schema in schemas.items()
    }
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return files


def write(target: Path) -> list[Path]:
    """Write every generated file under `target`."""
    written = []
    for rel, content in render().items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/generated")
    for p in write(out):
        print(p)
