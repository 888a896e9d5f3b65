"""Every gate note at once: the notes tree is listed once and its blobs read in one
`git cat-file --batch`, rather than one lookup per commit (a report reads them all)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aevolve._git.notes import parse_report
from aevolve._git.reader import GitReader
from aevolve._git.repo import NOTES_REF, Repo

_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Notes:
    reports: dict[str, dict] = field(default_factory=dict)  # annotated commit -> gate report
    ignored: int = 0  # notes that are not gate reports, or name another candidate


def read_notes(repo: Repo, ref: str = NOTES_REF) -> Notes:
    notes_commit = repo.ref_target(ref)
    out = Notes()
    if notes_commit is None:
        return out
    with GitReader(repo) as reader:
        listing = [(path.replace("/", ""), blob) for path, blob in reader.files(notes_commit).items()]
        listing = [(commit, blob) for commit, blob in listing if _HEX40.match(commit)]  # fan-out or flat
        for (commit, _), data in zip(listing, reader.cat([blob for _, blob in listing]), strict=True):
            report = parse_report(data)
            if report is None or report.get("candidate", commit) != commit:  # a copied note judges another commit
                out.ignored += 1
                continue
            out.reports[commit] = report
    return out
