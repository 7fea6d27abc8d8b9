"""JSON Schemas of the contract, for producers outside this code base and for review.

`render_schemas` gives the files (one per event type's data, the envelope, an index);
`export_schemas` writes them to a folder. docs/schemas/ holds the checked-in copy, kept
in sync by a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hopcast_shared.contract.envelope import CONTENT_TYPE, SPEC_VERSION, Envelope
from hopcast_shared.contract.registry import EVENT_TYPES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
INDEX_FILE = "index.json"
ENVELOPE_FILE = "envelope.json"


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _schema(title: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": title, **extra}


def render_schemas() -> dict[str, str]:
    """Every schema file by name, as text: deterministic, so it can be compared."""
    files = {ENVELOPE_FILE: _dump(_schema("CloudEvents envelope", Envelope.model_json_schema()))}
    index_types = []
    for spec in EVENT_TYPES.values():
        name = f"{spec.name}.json"
        files[name] = _dump(
            _schema(spec.name, spec.model.model_json_schema(), **{"x-hopcast-topics": list(spec.topics)})
        )
        index_types.append({"type": spec.name, "topics": list(spec.topics), "schema": name})
    files[INDEX_FILE] = _dump(
        {
            "specversion": SPEC_VERSION,
            "contenttype": CONTENT_TYPE,
            "envelope": ENVELOPE_FILE,
            "types": index_types,
        }
    )
    return files


def export_schemas(directory: Path) -> list[Path]:
    """Write the schemas into `directory` (created if needed); returns the paths written.

    Files a previous export listed in its index that no longer exist in the contract are
    removed; nothing else in the folder is touched.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = render_schemas()
    for stale in _previously_exported(directory) - files.keys():
        (directory / stale).unlink(missing_ok=True)
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _previously_exported(directory: Path) -> set[str]:
    try:
        index = json.loads((directory / INDEX_FILE).read_text(encoding="utf-8"))
        names = {t["schema"] for t in index["types"]} | {index["envelope"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    # Only plain file names in the folder itself: an index is data, not a list of paths to trust.
    return {n for n in names if isinstance(n, str) and n.endswith(".json") and Path(n).name == n}
