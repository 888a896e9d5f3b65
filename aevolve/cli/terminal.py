"""What reaches a terminal: text whose control characters are made visible.

Titles, rationales, file contents and runner output are written by models and
agents. An escape sequence among them could recolour text, move the cursor,
retitle the terminal or hide a line ("safe\\rEVIL"); bidi overrides reorder
what a reviewer reads. Everything aevolve prints passes through `SafeStream`,
which shows such characters as `\\uXXXX`, an escape that means the same inside
a JSON string, so `--json` output keeps its meaning.

aevolve's own colours are written with a marker chosen at random per process
(see `own_escape`), which data cannot forge, and turned into real escape
sequences only after the data around them was cleaned.
"""

from __future__ import annotations

import re
import secrets
from typing import TextIO

# C0 controls but tab and newline, DEL, C1 controls, and the bidi controls of
# Unicode's "Trojan Source" list (CVE-2021-42574).
_UNSAFE = re.compile("\r(?!\n)|[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MARK = "".join(chr(0xF0000 + secrets.randbelow(0xFFFD)) for _ in range(4))  # supplementary private use


def clean(text: str) -> str:
    """`text` with every unsafe character shown as `\\uXXXX` (and CRLF as LF)."""
    if text.isascii() and text.replace("\n", "").replace("\t", "").isprintable():
        return text  # the common case, ~10x faster than the search below (no \r, no control)
    if _UNSAFE.search(text) is None:
        return text.replace("\r\n", "\n") if "\r" in text else text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text.replace("\r\n", "\n"))


def own_escape(sequence: str) -> str:
    """One of aevolve's own escape sequences (a colour), marked so `SafeStream` keeps it."""
    return sequence.replace("\x1b", _MARK)


class SafeStream:
    """A text stream that writes `clean` text to `target` (a text stream)."""

    def __init__(self, target: TextIO):
        self.target = target

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click asks whether we take bytes: we don't
            raise TypeError("SafeStream writes text")
        self.target.write(clean(text).replace(_MARK, "\x1b"))
        return len(text)

    def __getattr__(self, name: str):  # flush, isatty, encoding, fileno...
        return getattr(self.target, name)
