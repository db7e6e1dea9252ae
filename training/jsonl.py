"""Reading the fields a command needs from a JSON-lines file, with errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path


def read_fields(path: Path, fields: tuple[str, ...], flags: str, limit: int | None = None) -> list[tuple[str, ...]]:
    """The ``fields`` of each row (as strings), up to ``limit`` rows; ``flags`` names the options that rename them."""
    from diffusion_lm.common.jsonl import json_lines

    if not path.exists():
        raise ValueError(f"{path}: no such file.")
    rows = []
    for number, row in json_lines(path):
        missing = [f for f in fields if f not in row]
        if missing:
            raise ValueError(f"{path}, line {number}: no field {missing[0]!r} (fields: {sorted(row)}); set {flags}.")
        rows.append(tuple(str(row[f]) for f in fields))
        if limit is not None and len(rows) == limit:
            break
    return rows


def report(path: Path, result: dict) -> dict:
    """Write ``result`` to ``path`` as JSON (atomically), print it, and return it."""
    from diffusion_lm.common.atomic import write_json_atomic

    write_json_atomic(path, result)
    print(json.dumps(result, indent=2))
    return result
