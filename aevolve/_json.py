"""JSON from outside (files, notes, runners, endpoints): one bounded reader.

NaN and Infinity are not JSON (RFC 8259) and break other tools, and a value
nested 100k deep makes every later walk of it (validation, hashing, signing)
recurse without end. `loads` refuses both with a position, as a JSONDecodeError,
so every caller's existing `except json.JSONDecodeError` reports it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 200  # levels of nesting of one JSON value (or YAML document); deeper is refused
_CONSTANTS = ("NaN", "Infinity", "-Infinity")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}]|-?Infinity|NaN')


def loads(text: str | bytes, *, allow_nan: bool = False) -> Any:
    """`json.loads` for data from outside: raises JSONDecodeError (with a position) for
    NaN and Infinity, which are not JSON (unless `allow_nan`: old gate notes may hold a
    runner's NaN cost), and for nesting deeper than MAX_DEPTH."""
    if isinstance(text, bytes):
        text = text.decode("utf-8").removeprefix("\ufeff")  # UnicodeDecodeError: the caller's to report
    try:
        value = json.loads(text, parse_constant=None if allow_nan else _refuse_constant)
    except _Constant as exc:
        raise json.JSONDecodeError(f"{exc.name} is not JSON (RFC 8259): write null or a string",
                                   text, _position(text, "constant")) from None
    except RecursionError:  # the C parser stops at the interpreter's recursion limit
        value = None
    else:
        # a value holds at most as many containers as the text has brackets: almost every
        # line is settled by these two counts, at C speed
        if text.count("[") + text.count("{") <= MAX_DEPTH or not _deeper_than(value, MAX_DEPTH):
            return value
    raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, _position(text, "depth"))


class _Constant(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _refuse_constant(name: str):
    raise _Constant(name)


def _deeper_than(value: object, limit: int) -> bool:
    """Is `value` nested more than `limit` containers deep? Iterative: no recursion to exhaust."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _position(text: str, what: str) -> int:
    """Where in `text` the first NaN/Infinity, or the first bracket past MAX_DEPTH, is.
    Only called on a failure; the text before that point parsed, so the scan is linear."""
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in _CONSTANTS:
            if what == "constant":
                return match.start()
            continue
        depth += 1 if token in "[{" else -1
        if what == "depth" and depth > MAX_DEPTH:
            return match.start()
    return 0
