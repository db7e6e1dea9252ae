"""JSON-lines files read row by row, with errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

EXAMPLE = '{"prompt": "...", "response": "..."}'


def json_lines(path: str | Path, example: str = EXAMPLE) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of ``path``; a line that is not one JSON object is a
    ``ValueError`` naming ``path:line`` and the expected shape (``example``)."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not valid JSON ({err.msg}, column {err.colno}); each line must "
                                 f"be one JSON object such as {example}.") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number} is a JSON {type(row).__name__}, not an object; each line must be "
                                 f"one JSON object such as {example}.")
            yield number, row
