"""Secret detection for content an evolver wants to commit.

Patterns for the credentials that leak most often (cloud and API keys, private
keys, tokens). A hit never echoes the secret: only its kind and line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

# (kind, pattern); specific patterns first so a key is named by its provider.
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("Anthropic API key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b")),
    ("GitHub token", re.compile(r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-(?:[0-9]{6,}-){1,3}[A-Za-z0-9-]{10,}")),
    ("Slack webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("private key", re.compile(r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,}")),
]

# `password = "..."`, `token: ...`: reported only when the value looks random.
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?token|client[_-]?secret)"
    r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-+/=.!@#$%^&*~]{16,})"
)


@dataclass(frozen=True)
class SecretHit:
    kind: str
    line: int  # 1-based line in the scanned text

    def __str__(self) -> str:
        return f"{self.kind} on line {self.line}"


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_random(value: str) -> bool:
    """Long, mixed character classes, high entropy: not a word or a placeholder."""
    classes = sum(bool(re.search(rx, value)) for rx in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return len(value) >= 16 and classes >= 3 and _entropy(value) >= 3.5


def find_secrets(text: str) -> list[SecretHit]:
    """Every secret-looking string in `text`, one hit per (kind, line)."""
    hits: dict[tuple[str, int], SecretHit] = {}
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in PATTERNS:
            if pattern.search(line):
                hits.setdefault((kind, number), SecretHit(kind, number))
        for match in _ASSIGNMENT.finditer(line):
            if looks_random(match.group(2)):
                kind = f"{match.group(1).lower()} assignment"
                hits.setdefault((kind, number), SecretHit(kind, number))
    return list(hits.values())
