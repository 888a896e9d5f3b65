"""Approvals: signed statements that a maintainer accepts exactly one commit.

A maintainer change (one that changes the exam or the agent's code without an
`Aevolve-Proposal` trailer) passes the gate only with approvals. Each approval
signs the commit id, its tree and the approver's message in the
`aevolve-approval` namespace; they are stored together as the commit's note on
`refs/notes/aevolve-approvals`, which travels with the `refs/notes/aevolve*`
refspecs `aevolve init` configures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aevolve._errors import SigningError
from aevolve._git.repo import APPROVALS_REF
from aevolve._json import loads
from aevolve._trust.signing import NAMESPACE_APPROVAL, canonical, sign, signing_key, verify

if TYPE_CHECKING:
    from aevolve._git.repo import Repo


NO_KEY = (
    "no signing key configured, so nothing can be approved: use your SSH key as git does "
    "(`git config gpg.format ssh` and `git config user.signingKey ~/.ssh/id_ed25519.pub`), "
    "or set one for aevolve only (`git config aevolve.signingKey PATH`)"
)


def approval_payload(commit: str, tree: str, message: str) -> bytes:
    """The bytes an approval signs: naming the tree too means a commit id alone
    (say, after a SHA-1 collision) is never enough."""
    return canonical({"kind": "aevolve-approval", "commit": commit, "tree": tree, "message": message})


@dataclass
class Approval:
    commit: str
    tree: str
    message: str
    signer: str  # the identity the approver claims (trusted only through allowed_signers)
    key: str  # "SHA256:..." of the approver's key
    created: str  # UTC, ISO 8601
    signature: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> Approval:
        """Raises ValueError for anything that is not a complete approval."""
        if not isinstance(data, dict):
            raise ValueError("an approval must be a JSON object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            wanted = dict if f.name == "signature" else str
            if not isinstance(value, wanted):
                raise ValueError(f"approval field {f.name!r} is missing or not a {wanted.__name__}")
            values[f.name] = value
        return cls(**values)


def parse_approvals(data: bytes | None) -> list[dict]:
    """The approvals in a note: `{"approvals": [...]}`; anything malformed is dropped, never raised."""
    if not data:
        return []
    try:
        doc = loads(data)  # bounded nesting: a pushed note is anyone's input
    except ValueError:  # broken JSON, too deep, NaN, not UTF-8
        return []
    items = doc.get("approvals") if isinstance(doc, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def read_approvals(repo: Repo, commit: str, ref: str = APPROVALS_REF) -> list[dict]:
    """The approvals noted on `commit` (unchecked: count them with `count_approvals`)."""
    return parse_approvals(repo.read_note(str(commit), ref))


def approve(repo: Repo, rev: str, message: str = "") -> Approval:
    """Sign an approval of the commit `rev` names and add it to that commit's note."""
    key = signing_key(repo)
    if key is None:
        raise SigningError(NO_KEY)
    target = repo.resolve(rev)
    commit, tree = str(target.id), str(target.tree_id)
    signature = sign(key, approval_payload(commit, tree, message), NAMESPACE_APPROVAL)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    approval = Approval(commit, tree, message, key.identity, signature["key"], created, signature)
    _store(repo, approval)
    return approval


def _store(repo: Repo, approval: Approval) -> None:
    """Add `approval` to its commit's note, replacing an earlier one by the same key;
    an approval that lands meanwhile is kept (the edit reruns on a lost race)."""

    def add(current: bytes | None) -> bytes:
        kept = [item for item in parse_approvals(current) if item.get("key") != approval.key]
        doc = {"approvals": [*kept, approval.to_dict()]}
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"

    repo.update_note(approval.commit, add, APPROVALS_REF)


@dataclass
class ApprovalCount:
    signers: list[str] = field(default_factory=list)  # distinct valid approvers
    problems: list[str] = field(default_factory=list)  # why the other approvals did not count
    checked_against: str | None = None  # the allowed_signers file used; None: any valid signature counts

    def to_dict(self) -> dict:
        return asdict(self)


def count_approvals(approvals: list[dict], commit: str, tree: str, allowed_signers) -> ApprovalCount:
    """The distinct approvers of exactly `commit` with `tree`.

    An approval counts only for that commit and tree, with a signature that
    verifies in the approval namespace (by a listed key, with `allowed_signers`).
    Approvers are told apart by principal with `allowed_signers`, else by key;
    one key is always one approver, whatever names a pattern line lets it use.
    """
    result = ApprovalCount(checked_against=str(allowed_signers) if allowed_signers is not None else None)
    seen: set[str] = set()
    for item in approvals:
        try:
            approval = Approval.from_dict(item)
        except ValueError as exc:
            result.problems.append(f"malformed approval: {exc}")
            continue
        who = approval.signer or approval.key
        if approval.commit != str(commit) or approval.tree != str(tree):
            result.problems.append(f"approval by {who} is for another commit or tree "
                                   f"({approval.commit[:12]}, tree {approval.tree[:12]})")
            continue
        payload = approval_payload(approval.commit, approval.tree, approval.message)
        check = verify(payload, approval.signature, NAMESPACE_APPROVAL, allowed_signers)
        if not check.valid:
            result.problems.append(f"approval by {who} does not count: {check.reason}")
            continue
        if check.principal is not None:  # set exactly when checked against allowed_signers
            label, ids = check.principal, {f"principal:{check.principal}", f"key:{check.fingerprint}"}
        else:
            label, ids = f"{check.signer or 'unnamed'} ({check.fingerprint})", {f"key:{check.fingerprint}"}
        # one key is one approver even when a pattern line lets it sign as several principals
        if ids & seen:
            result.problems.append(f"duplicate approval by {label}")
            continue
        seen |= ids
        result.signers.append(label)
    return result
