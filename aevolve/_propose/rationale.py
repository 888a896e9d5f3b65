"""The commit message of an evolution: a subject, three sections and trailers.

    evolve(<layer>): <title>

    Diagnosis:
    ...
    Change:
    ...
    Expected effect:
    ...

    Aevolve-Proposal: p-...
    Aevolve-Evidence: obs-1, obs-2
    Aevolve-Evolver: rules
    Aevolve-Base: <sha>

The trailers parse with `git interpret-trailers --parse`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SECTIONS = ("Diagnosis", "Change", "Expected effect")
TRAILER_PREFIX = "Aevolve-"
_SUBJECT = re.compile(r"^evolve\((?P<layer>[^)]+)\):\s*(?P<title>.+)$")
_TRAILER = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9-]*):\s?(?P<value>.*)$")
# Escape sequences (CSI, OSC, other ESC sequences, the 8-bit CSI), then any other control
# character but newline and tab, and the bidi controls that reorder what a reader sees:
# an evolver's words end up in commits and on terminals.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -~]?")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain_text(text: str) -> str:
    """`text` without escape sequences and control characters (newline and tab stay)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))


@dataclass
class Rationale:
    title: str
    layer: str
    diagnosis: str
    change: str
    expected_effect: str
    evidence: list[str] = field(default_factory=list)
    proposal_id: str = ""
    evolver: str = ""
    base: str = ""
    extra_trailers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:  # whichever evolver wrote them, the words are plain text
        self.title = " ".join(plain_text(self.title).split())
        self.diagnosis, self.change, self.expected_effect = (
            plain_text(t) for t in (self.diagnosis, self.change, self.expected_effect))
        self.evidence = [plain_text(e) for e in self.evidence]

    @property
    def subject(self) -> str:
        return f"evolve({self.layer}): {self.title}"

    def message(self) -> str:
        body = [self.subject, ""]
        for name, text in zip(SECTIONS, (self.diagnosis, self.change, self.expected_effect), strict=True):
            body += [f"{name}:", _no_trailer_lookalikes(text.strip()), ""]
        trailers = {
            "Aevolve-Proposal": self.proposal_id,
            "Aevolve-Evidence": ", ".join(self.evidence) or "none",
            "Aevolve-Evolver": self.evolver,
            "Aevolve-Base": self.base,
            **self.extra_trailers,
        }
        body += [f"{k}: {_one_line(v)}" for k, v in trailers.items() if v]
        return "\n".join(body) + "\n"


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


def _no_trailer_lookalikes(text: str) -> str:
    # A section line such as "Aevolve-Base: x" would be read as a trailer; indent it.
    return "\n".join(
        (" " + line) if _TRAILER.match(line) and line.startswith(TRAILER_PREFIX) else line
        for line in text.splitlines()
    )


def parse_trailers(message: str) -> dict[str, str]:
    """The trailers of the message's last paragraph (what git would parse)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line)
        if not match:
            return {}
        out[match["key"]] = match["value"].strip()
    return out


_HEADER_ONLY = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]*:\s*$")
_SECTION = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9 _-]*?)\s*:(?P<value>.*)$")


def sections(message: str, names: Iterable[str] = (*SECTIONS, "Evidence")) -> dict[str, str]:
    """The named sections of a message body, keyed by the names asked for.

    The one parser of rationale sections (the commit-msg hook asks it too): a
    section is "Name:" on its own line followed by its text, or "Name: text";
    names match whatever their case. A section ends at the next header line, at
    an `Aevolve-` trailer, or at the end; the subject is never a section.
    """
    wanted = {n.lower(): n for n in names}
    out: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in message.splitlines()[1:]:
        match = _SECTION.match(line.strip())
        is_trailer = line.startswith(TRAILER_PREFIX) and _TRAILER.match(line) is not None
        name = wanted.get(match["key"].lower()) if match and not is_trailer else None
        if name or is_trailer or _HEADER_ONLY.match(line.strip()):
            if current and current not in out:  # the first section of a name wins
                out[current] = "\n".join(body).strip()
            current = name
            body = [match["value"].strip()] if name and match else []
        elif current is not None:
            body.append(line)
    if current and current not in out:
        out[current] = "\n".join(body).strip()
    return out


def parse(message: str) -> Rationale | None:
    """The Rationale of an aevolve commit message, or None for other commits."""
    trailers = parse_trailers(message)
    if "Aevolve-Proposal" not in trailers:
        return None
    subject = message.splitlines()[0] if message else ""
    match = _SUBJECT.match(subject)
    found = sections(message)
    evidence = [e.strip() for e in trailers.get("Aevolve-Evidence", "").split(",") if e.strip() and e.strip() != "none"]
    return Rationale(
        title=match["title"] if match else subject,
        layer=match["layer"] if match else "",
        diagnosis=found.get("Diagnosis", ""),
        change=found.get("Change", ""),
        expected_effect=found.get("Expected effect", ""),
        evidence=evidence,
        proposal_id=trailers.get("Aevolve-Proposal", ""),
        evolver=trailers.get("Aevolve-Evolver", ""),
        base=trailers.get("Aevolve-Base", ""),
        extra_trailers={k: v for k, v in trailers.items() if k.startswith(TRAILER_PREFIX)
                        and k not in ("Aevolve-Proposal", "Aevolve-Evidence", "Aevolve-Evolver", "Aevolve-Base")},
    )
