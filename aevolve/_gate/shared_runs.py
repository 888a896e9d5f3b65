"""Run results every clone shares: notes on `refs/notes/aevolve-runs`.

The SQLite cache (`results_cache.py`) lives in one clone; a fresh CI clone would
run the whole baseline again. So the gate also notes the runs it made on the
tree they ran on (the note of tree T holds T's runs), keyed like the SQLite
cache plus the exam digest: (tree, case hash, runner hash, repeat, exam). The
runs travel with the gate note (one ref transaction, `record.write_verdict`),
`aevolve sync` merges them as a union, and a gate whose SQLite cache misses
looks here before starting a runner.

A note holds *batches*: the runs one gate made on one tree, signed together
(namespace `aevolve-runs`) when a signing key is configured. Batches are never
edited, only added, so the union of two clones' notes keeps every signature
checkable. With an allowed signers list configured (`aevolve.allowedSigners`
or `gpg.ssh.allowedSignersFile`) only batches signed by a listed key are
reused: a run read here decides verdicts as much as a run made here. Without a
list, a clone that signs its verdicts (CI) reuses only batches it signed itself.

Only what the SQLite cache keeps is shared (successful runs; no timed case, no
timeout, no tampered run), and no run whose result holds a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

RUNS_REF = "refs/notes/aevolve-runs"
NAMESPACE_RUNS = "aevolve-runs"  # its own namespace: a runs signature can never pass as a verdict
MAX_NOTE_BYTES = 64 * 1024 * 1024  # a larger note is not read (a hostile push must not exhaust memory)

Key = tuple[str, str, str, int]  # (tree, case hash, runner hash, repeat): results_cache.Key


@dataclass(frozen=True)
class Shared:
    """One run worth publishing: its cache key, the exam it ran under, its result."""

    key: Key
    exam: str  # the exam digest
    result: dict  # RunResult.to_dict()


def _entry(run: Shared) -> dict:
    _tree, case, runner, rep = run.key
    return {"case": case, "runner": runner, "rep": rep, "exam": run.exam, "result": run.result}


def _run_key(run) -> tuple:
    return tuple(run.get(k) for k in ("case", "runner", "rep", "exam")) if isinstance(run, dict) else ()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def payload(tree: str, runs: list[dict]) -> bytes:
    """What a batch's signature covers: the tree and every run of the batch."""
    from aevolve._trust.signing import canonical

    return canonical({"kind": "aevolve-runs", "tree": tree, "runs": runs})


# -- the note ---------------------------------------------------------------------


def parse(data: bytes | None) -> list[dict]:
    """The batches of a runs note; anything malformed is ignored (it only costs runs)."""
    from aevolve._json import loads

    if not data or len(data) > MAX_NOTE_BYTES:
        return []
    try:
        value = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    batches = value.get("batches") if isinstance(value, dict) else None
    return [b for b in batches or [] if isinstance(b, dict) and isinstance(b.get("runs"), list)]


def dump(batches: list[dict]) -> bytes:
    """The note's bytes: batches deduplicated and in canonical order, so every clone
    merging the same batches writes the same note."""
    unique = {_canonical(b): b for b in batches}
    return (json.dumps({"version": 1, "batches": [unique[k] for k in sorted(unique)]},
                       sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


def union(local: bytes | None, remote: bytes | None) -> bytes:
    return dump(parse(local) + parse(remote))


# -- publishing ---------------------------------------------------------------------


def batches(repo, runs: list[Shared], baseline: str | None) -> dict[str, dict]:
    """Tree -> the batch to add to its note (signed when a key is configured); runs
    whose result holds a secret are left out, so a reused run is the run as made."""
    from aevolve._trust.record import secret_names
    from aevolve._trust.secrets import redact_obj, secret_values
    from aevolve._trust.signing import fingerprint, sign, signing_key

    secrets = secret_values(names=secret_names(repo, baseline))
    key = signing_key(repo) if runs else None
    mine = fingerprint(key.path) if key is not None else None
    tip = repo.ref_target(RUNS_REF)
    noted: dict[str, set] = {}  # tree -> the keys its note already holds (a --no-cache re-gate adds nothing)
    by_tree: dict[str, list[dict]] = {}
    for run in runs:
        tree = run.key[0]
        if tree not in noted:  # with a key, only its own batches count: signed runs replace unsigned ones
            noted[tree] = {_run_key(r) for b in parse(repo.note_at(tip, tree) if tip else None)
                           if mine is None or _signed_by(b, mine) for r in b["runs"]}
        if _run_key(_entry(run)) in noted[tree] or (secrets and redact_obj(run.result, secrets) != run.result):
            continue
        by_tree.setdefault(tree, []).append(_entry(run))
    out = {}
    for tree, entries in by_tree.items():
        entries.sort(key=_canonical)
        batch: dict = {"runs": entries, "made": made_now()}  # outside the signature: see made_at
        if key is not None:
            batch["signature"] = sign(key, payload(tree, entries), NAMESPACE_RUNS)
        out[tree] = batch
    return out


MADE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC, like the `at` of a verdict's `who`


def made_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime(MADE_FORMAT)


def made_at(batch: dict, now: float) -> float | None:
    """When a batch was made (Unix seconds), or None: written before batches carried
    `made`, malformed, or more than a day in the future. `made` is not signed: it only
    decides when `aevolve gc` may drop a note, never whether a run is reused."""
    from datetime import UTC, datetime

    made = batch.get("made")
    if not isinstance(made, str):
        return None
    try:
        when = datetime.strptime(made, MADE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return when if when <= now + 86400 else None


def _signed_by(batch: dict, fp: str) -> bool:
    signature = batch.get("signature")
    return isinstance(signature, dict) and signature.get("key") == fp


def note_changes(repo, runs: list[Shared], baseline: str | None) -> list[tuple[str, str, object]]:
    """(ref, tree, change) for `record.store_report`: each tree's note with its new batch added."""
    def adder(batch: dict):
        return lambda old: dump([*parse(old), batch])

    return [(RUNS_REF, tree, adder(batch)) for tree, batch in batches(repo, runs, baseline).items()]


# -- reading ------------------------------------------------------------------------


def lookup(repo, wanted: dict[Key, str]) -> dict[Key, dict]:
    """The shared result of each wanted key (key -> exam digest) found in the runs notes;
    only batches signed by an allowed signer count when a list is configured."""
    from aevolve._trust.signing import allowed_signers_file

    tip = repo.ref_target(RUNS_REF)
    if tip is None or not wanted:
        return {}
    allowed = allowed_signers_file(repo)
    mine = _own_fingerprint(repo) if allowed is None else None
    found: dict[Key, dict] = {}
    for tree in sorted({k[0] for k in wanted}):
        for batch in parse(repo.note_at(tip, tree)):
            hits = _hits(tree, batch, wanted, found)
            if hits and _trusted(tree, batch, allowed, mine):
                found.update(hits)
    return found


def _own_fingerprint(repo) -> str | None:
    """The fingerprint of the key this clone signs verdicts with, if any."""
    from aevolve._trust.signing import fingerprint, signing_key

    key = signing_key(repo)
    return fingerprint(key.path) if key is not None else None


def _hits(tree: str, batch: dict, wanted: dict[Key, str], found: dict) -> dict[Key, dict]:
    hits = {}
    for run in batch["runs"]:
        if not isinstance(run, dict) or not isinstance(run.get("result"), dict):
            continue
        key = (tree, run.get("case"), run.get("runner"), run.get("rep"))
        if key in wanted and key not in found and wanted[key] == run.get("exam") and _usable(run["result"]):
            hits[key] = run["result"]
    return hits


def _usable(result: dict) -> bool:
    """A successful run whose fields have the types a local run's have (notes come from outside)."""
    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return (result.get("status") == "ok" and isinstance(result.get("output", ""), str)
            and isinstance(result.get("stderr", ""), str) and number(result.get("latency_ms", 0))
            and (result.get("cost") is None or number(result["cost"]))
            and (result.get("steps") is None or isinstance(result["steps"], list))
            and isinstance(result.get("truncated", []), list)
            and all(isinstance(s, str) for s in result.get("truncated", []))
            and isinstance(result.get("latency_source", "measured"), str))


def _trusted(tree: str, batch: dict, allowed, mine: str | None) -> bool:
    """May this batch decide a verdict here? With an allowed signers list: signed by a listed
    key. Without one, a clone that signs its verdicts (CI) trusts only its own signed runs:
    its signature must never vouch for runs anyone with push access could have written.
    A clone that signs nothing trusts the notes as much as the rest of the repository."""
    from aevolve._trust.signing import verify

    if allowed is None and mine is None:
        return True
    checked = verify(payload(tree, batch["runs"]), batch.get("signature"), NAMESPACE_RUNS, allowed)
    return checked.valid and (allowed is not None or checked.fingerprint == mine)


def durations(repo, tree: str, runner: str) -> dict[str, float]:
    """Case hash -> mean milliseconds per run recorded on `tree` with `runner` (shard planning)."""
    tip = repo.ref_target(RUNS_REF)
    total: dict[str, list[float]] = {}
    for batch in parse(repo.note_at(tip, tree) if tip else None):
        for run in batch["runs"]:
            if not isinstance(run, dict) or run.get("runner") != runner or not isinstance(run.get("case"), str):
                continue
            ms = (run.get("result") or {}).get("latency_ms") if isinstance(run.get("result"), dict) else None
            if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
                total.setdefault(run["case"], []).append(float(ms))
    return {case: sum(v) / len(v) for case, v in total.items()}
