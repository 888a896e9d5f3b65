"""Reading another tool's file: whole, but never past a size bound."""

from __future__ import annotations

from pathlib import Path

from aevolve._errors import InvalidInput


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of `path`; InvalidInput when it is missing or larger than `max_bytes`
    (read up to one byte past the bound, so a huge file costs no memory)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{path}: larger than {max_bytes:,} bytes; not read")
    return data
