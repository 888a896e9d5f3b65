"""Secret detection and redaction for everything aevolve writes or shows.

Two sources of secrets:

- patterns for the credentials that leak most often (cloud and API keys,
  private keys, tokens); a hit never echoes the secret, only its kind and line;
- the values of this machine's secret environment variables (the configured
  `evolver.openai.api_key_env`, and every variable whose name holds KEY, TOKEN,
  SECRET or PASSWORD): a key has no recognisable shape, but its exact value is
  known here, so any text that contains it can be caught before it is written.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# (kind, pattern); specific patterns first so a key is named by its provider.
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("Anthropic API key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?"
                                  r"[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?"
                                  r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b")),
    ("GitHub token", re.compile(r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-(?:[0-9]{6,}-){1,3}[A-Za-z0-9-]{10,}")),
    ("Slack webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("private key", re.compile(r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,}")),
    ("Stripe API key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}\b")),
    ("GitLab token", re.compile(r"\bglpat-[0-9A-Za-z_-]{20,}")),
    ("Azure storage account key", re.compile(r"(?i)\bAccountKey=[A-Za-z0-9+/]{40,}={0,2}")),
    # Hugging Face tokens are hf_ and 34+ letters of mixed case: never an identifier like hf_hub_download
    ("Hugging Face token", re.compile(r"\bhf_(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{34,}\b")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("PyPI token", re.compile(r"\bpypi-AgEI[A-Za-z0-9_-]{50,}")),
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


# -- secret values of this machine's environment -------------------------------------------

# A variable is secret when its name holds one of these words (OPENAI_API_KEY, GITHUB_TOKEN, DB_PASSWORD).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)
MIN_SECRET_LENGTH = 8  # shorter values ("test", "1") would redact ordinary words
# Values that are settings, not credentials, even under a secret-sounding name
# (TOKENIZERS_PARALLELISM=false).
_NOT_SECRET_WORDS = frozenset({
    "true", "false", "yes", "no", "on", "off", "none", "null", "enabled", "disabled", "required", "optional",
})
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _is_secret_value(value: str) -> bool:
    """False for values that cannot be credentials or whose redaction would mangle ordinary text:
    short values, yes/no words, plain numbers (timeouts, sizes) and paths that exist on
    this machine (AEVOLVE_SIGNING_KEY=~/.ssh/id_ed25519 names where a key lives; the
    path is not the key)."""
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH or value.lower() in _NOT_SECRET_WORDS or _NUMBER.fullmatch(value):
        return False
    if value.startswith(("/", "~", "./", "../")) or re.match(r"^[A-Za-z]:[\\/]", value):
        try:
            return not os.path.exists(os.path.expanduser(value))
        except (OSError, ValueError):
            return True
    return True


def secret_variables(environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> dict[str, str]:
    """{variable name: value} of the secret variables: those in `names` and every variable
    whose name holds KEY, TOKEN, SECRET or PASSWORD, keeping only values that can be secrets."""
    environ = os.environ if environ is None else environ
    wanted = [n for n in names if n]
    found = {}
    for name, value in environ.items():
        if (name in wanted or _SECRET_NAME.search(name)) and isinstance(value, str) and _is_secret_value(value):
            found[name] = value.strip()  # a stray newline from `export X=$(cat file)` is not part of the key
    return found


def secret_values(environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> list[str]:
    """The values of the secret variables (see `secret_variables`), deduplicated, longest
    first (so a value that contains another is replaced whole)."""
    values = set(secret_variables(environ, names).values())
    return sorted(values, key=lambda v: (-len(v), v))


def leaked_names(text: str, environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> list[str]:
    """Names of the secret variables whose values occur in `text`, sorted. Use it to say
    *which* variable leaked: never print the value itself."""
    if not text:
        return []
    return sorted(name for name, value in secret_variables(environ, names).items() if value in text)


# -- redaction ----------------------------------------------------------------------------------

REDACTED = "[REDACTED]"
# The whole block, not just its first line: the key material is in the lines between.
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|\Z)", re.S)


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """`text` with each of `values` replaced by [REDACTED] and each secret-pattern match by
    [REDACTED <kind>] (an assignment keeps its name: `password = [REDACTED password assignment]`).

    `values` None means `secret_values()` of this process's environment; pass `[]` to
    redact patterns only.
    """
    if not isinstance(text, str) or not text:
        return text
    for value in secret_values() if values is None else sorted(set(values), key=len, reverse=True):
        if value and len(value) >= MIN_SECRET_LENGTH:
            text = text.replace(value, REDACTED)
    text = _PRIVATE_KEY_BLOCK.sub("[REDACTED private key]", text)
    for kind, pattern in PATTERNS:
        text = pattern.sub(f"[REDACTED {kind}]", text)

    def _assignment(match: re.Match) -> str:
        value = match.group(2)
        if not looks_random(value):
            return match.group(0)
        start = match.start(2) - match.start(0)
        return match.group(0)[:start] + f"[REDACTED {match.group(1).lower()} assignment]"

    return _ASSIGNMENT.sub(_assignment, text)


def redact_obj(obj, values: Iterable[str] | None = None):
    """A deep copy of a JSON-like value with every string redacted (dict keys too).

    Values are looked up once, not once per string: a gate report holds thousands."""
    values = secret_values() if values is None else list(values)
    return _redact_walk(obj, values)


def _redact_walk(obj, values: list[str]):
    if isinstance(obj, str):
        return redact(obj, values)
    if isinstance(obj, dict):
        return {(_redact_walk(k, values) if isinstance(k, str) else k): _redact_walk(v, values) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact_walk(v, values) for v in obj]
    return obj
