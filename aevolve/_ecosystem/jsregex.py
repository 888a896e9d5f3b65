"""JavaScript regular expressions (as promptfoo runs them: `new RegExp(value)`) in Python.

Only what has a faithful translation is translated; anything else raises
`Untranslatable` with the reason. What differs, and what is done about it:

- `\\d`, `\\w`, `\\b` are ASCII in JavaScript and Unicode in Python: written out as ASCII classes.
- `\\s` is JavaScript's own whitespace list (it has U+FEFF, Python's has U+001C-U+001F): written out.
- `.` stops at `\\n`, `\\r`, U+2028 and U+2029 in JavaScript, only at `\\n` in Python: written out.
- `$` is the end of the input in JavaScript; Python's `$` also matches before a final newline: `\\Z`.
- `(?<name>...)` is `(?P<name>...)`; `\\A`, `\\Z`, `\\p`... are plain letters in JavaScript (identity
  escapes), so they are written as the letters.
- `{,5}`, `{` without a quantifier after it: literal braces in JavaScript, a quantifier in Python.
- Refused: inline flags and other `(?...)` groups JavaScript does not have, backreferences
  (a group that did not take part matches empty in JavaScript and fails in Python), a
  quantifier on a quantifier (possessive in Python, an error in JavaScript), negated class
  escapes inside a class, the `u`, `v` and `y` flags, characters outside the BMP (JavaScript
  without `u` sees two UTF-16 units).
"""

from __future__ import annotations

import re

JS_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
LINE_END = "\\n\\r\\u2028\\u2029"
WORD = "A-Za-z0-9_"
_CLASS_ESCAPES = {"d": "0-9", "w": WORD, "s": JS_SPACE}
_SIMPLE_ESCAPES = {"n": "\\n", "r": "\\r", "t": "\\t", "f": "\\f", "v": "\\v"}
_JS_SYNTAX = set("^$\\.*+?()[]{}|/")
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")


class Untranslatable(ValueError):
    """This JavaScript regex has no faithful Python translation; the message says why."""


def translate(pattern: str, flags: str = "") -> str:
    """The Python pattern that matches what `new RegExp(pattern, flags)` matches."""
    unknown = sorted(set(flags) - set("gimsd"))
    if unknown:
        raise Untranslatable(f"the flag(s) {''.join(unknown)} have no faithful Python translation")
    if any(ord(c) > 0xFFFF for c in pattern):
        raise Untranslatable("a character outside the BMP is two UTF-16 units to JavaScript without the u flag")
    body = _Translator(pattern, multiline="m" in flags, dotall="s" in flags).run()
    result = ("(?i)" if "i" in flags else "") + body
    try:
        re.compile(result)
    except re.error as exc:
        raise Untranslatable(f"Python cannot compile its translation {result!r}: {exc}") from None
    return result


class _Translator:
    def __init__(self, pattern: str, *, multiline: bool, dotall: bool):
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.multiline = multiline
        self.dotall = dotall
        self.after_quantifier = False

    def fail(self, why: str) -> Untranslatable:
        return Untranslatable(f"{why} (at offset {self.pos} of /{self.src}/)")

    def run(self) -> str:
        while self.pos < len(self.src):
            char = self.src[self.pos]
            quantified = self.after_quantifier
            self.after_quantifier = False
            if char in "*+?" or (char == "{" and _QUANTIFIER.match(self.src, self.pos)):
                if quantified:
                    raise self.fail("a quantifier on a quantifier is possessive in Python and an error in JavaScript")
                self._quantifier()
                continue
            self.pos += 1
            self.out.append(self._atom(char))
        return "".join(self.out)

    def _quantifier(self) -> None:
        char = self.src[self.pos]
        if char == "{":
            match = _QUANTIFIER.match(self.src, self.pos)
            assert match is not None
            text, self.pos = match.group(0), match.end()
        else:
            text, self.pos = char, self.pos + 1
        if self.src.startswith("?", self.pos):  # lazy: the same in both
            text, self.pos = text + "?", self.pos + 1
        self.out.append(text)
        self.after_quantifier = True

    def _atom(self, char: str) -> str:
        if char == "\\":
            return self._escape()
        if char == "[":
            return self._char_class()
        if char == "(":
            return self._group()
        if char == ".":
            return "(?s:.)" if self.dotall else f"[^{LINE_END}]"
        if char == "^":
            return f"(?:\\A|(?<=[{LINE_END}]))" if self.multiline else "\\A"
        if char == "$":
            return f"(?=[{LINE_END}]|\\Z)" if self.multiline else "\\Z"
        if char in "{}":
            return "\\" + char  # not a quantifier here: a literal brace in JavaScript
        if char in ")|":
            return char
        return re.escape(char)

    def _group(self) -> str:
        rest = self.src[self.pos:]
        if not rest.startswith("?"):
            return "("
        for head in ("?:", "?=", "?!", "?<=", "?<!"):
            if rest.startswith(head):
                self.pos += len(head)
                return "(" + head
        named = re.match(r"\?<([^>]*)>", rest)
        if named:
            name = named.group(1)
            if not name.isidentifier() or not name.isascii():
                raise self.fail(f"the group name {name!r} is not a Python group name")
            self.pos += named.end()
            return f"(?P<{name}>"
        raise self.fail(f"'({rest[:3]}' is not JavaScript regex syntax (inline flags and such are Python's)")

    def _escape(self) -> str:
        if self.pos >= len(self.src):
            raise self.fail("the pattern ends with a backslash")
        char = self.src[self.pos]
        self.pos += 1
        if char in _CLASS_ESCAPES:
            return f"[{_CLASS_ESCAPES[char]}]"
        if char.lower() in _CLASS_ESCAPES:
            return f"[^{_CLASS_ESCAPES[char.lower()]}]"
        if char == "b":
            return f"(?:(?<=[{WORD}])(?![{WORD}])|(?<![{WORD}])(?=[{WORD}]))"
        if char == "B":
            return f"(?:(?<=[{WORD}])(?=[{WORD}])|(?<![{WORD}])(?![{WORD}]))"
        if (char.isdigit() and char != "0") or (char == "k" and "(?<" in self.src):
            raise self.fail("backreferences are refused: a group that did not take part matches empty in "
                            "JavaScript and fails in Python")
        return self._common_escape(char)

    def _common_escape(self, char: str) -> str:
        """An escape that means the same inside and outside a class."""
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char == "0":
            if self.src[self.pos:self.pos + 1].isdigit():
                raise self.fail("an octal escape")
            return "\\x00"
        if char == "c":
            letter = self.src[self.pos:self.pos + 1]
            if not (letter.isascii() and letter.isalpha()):
                raise self.fail("\\c without a control letter")
            self.pos += 1
            return f"\\x{ord(letter) % 32:02x}"
        for lead, size in (("x", 2), ("u", 4)):
            if char == lead:
                digits = self.src[self.pos:self.pos + size]
                if len(digits) == size and all(c in "0123456789abcdefABCDEF" for c in digits):
                    self.pos += size
                    return f"\\{lead}{digits}"
                if lead == "u":
                    raise self.fail("\\u without four hex digits")
                return "x"  # `\x` without two hex digits is the letter x
        return "\\" + char if char in _JS_SYNTAX else re.escape(char)  # an identity escape: the character

    def _char_class(self) -> str:
        negated = self.src.startswith("^", self.pos)
        self.pos += negated
        if self.src.startswith("]", self.pos):  # `[]` matches nothing, `[^]` anything
            self.pos += 1
            return "(?s:.)" if negated else "(?!)"
        parts: list[str] = []
        while True:
            if self.pos >= len(self.src):
                raise self.fail("an unclosed character class")
            char = self.src[self.pos]
            self.pos += 1
            if char == "]":
                break
            if char == "-" and parts and parts[-1] in _CLASS_ESCAPES.values():
                parts.append("\\-")  # `[\w-z]`: a literal hyphen in JavaScript, a range in the expansion
            elif char == "\\":
                parts.append(self._class_escape())
            elif char == "-" and self.src.startswith("-", self.pos):
                raise self.fail("'--' inside a class is a set operation in newer regex syntaxes")
            elif char in "[&~|":
                parts.append("\\" + char)  # Python warns about nested sets and set operations
            else:
                parts.append(char)
        return "[" + ("^" if negated else "") + "".join(parts) + "]"

    def _class_escape(self) -> str:
        if self.pos >= len(self.src):
            raise self.fail("the pattern ends with a backslash")
        char = self.src[self.pos]
        self.pos += 1
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char.lower() in _CLASS_ESCAPES:
            raise self.fail(f"\\{char} inside a class has no faithful Python translation")
        if char == "b":
            return "\\x08"
        if char.isdigit() and char != "0":
            raise self.fail("an octal escape inside a class")
        return self._common_escape(char)
