"""Cycle records: one JSON file per cycle on `refs/aevolve/cycles`, a commit chain.

Like refs/aevolve/observations: the blob, tree and commit are written first,
then the ref moves by compare-and-swap, so a killed loop leaves the old record
or the new one. A cycle's file is rewritten as it advances (proposing -> gated
-> done); the chain keeps every step, the tip tree holds the latest of each.
"""

from __future__ import annotations

import json
import random
import time

from aevolve._errors import FileError, RefMoved
from aevolve._git.repo import Repo
from aevolve._state.model import decode

CYCLES_REF = "refs/aevolve/cycles"
CYCLE_DIR = "cycles"
ATTEMPTS = 50


def cycle_path(number: int) -> str:
    return f"{CYCLE_DIR}/{number:06d}.json"


def load_records(repo: Repo) -> list[dict]:
    """Every cycle record at the tip of refs/aevolve/cycles, by cycle number."""
    tip = repo.ref_target(CYCLES_REF)
    if tip is None:
        return []
    tree = repo.tree(tip)
    if CYCLE_DIR not in tree:
        return []
    out = []
    for entry in repo.walk(repo.tree(tree[CYCLE_DIR].id)):
        where = f"{CYCLES_REF}:{CYCLE_DIR}/{entry.path}"  # a fetched ref is anyone's input: skip what is not ours
        try:
            record = json.loads(decode(repo.blob(entry.oid), where))
        except (ValueError, FileError):  # a broken record must not stop the loop
            continue
        if isinstance(record, dict) and isinstance(record.get("cycle"), int):
            out.append(record)
    return sorted(out, key=lambda r: r["cycle"])


def write_record(repo: Repo, record: dict) -> str:
    """Store `record` as its cycle's file: objects first, then a CAS move of the ref. The new tip."""
    body = (json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    path = cycle_path(record["cycle"])
    message = (f"aevolve: cycle {record['cycle']} {record.get('status', '')}\n\n"
               f"Aevolve-Cycle: {record['cycle']}\n")
    for attempt in range(ATTEMPTS):
        old = repo.ref_target(CYCLES_REF)
        tree = repo.build_tree(repo.tree(old) if old else None, {path: body})
        new = repo.commit(tree, [old] if old else [], message)
        try:
            repo.update_ref(CYCLES_REF, new, old)
        except RefMoved:  # a fetch moved it: write on top of the new tip
            time.sleep(random.uniform(0, min(0.2, 0.01 * (attempt + 1))))
            continue
        return str(new)
    raise RefMoved(f"{CYCLES_REF} kept moving; cycle {record['cycle']} was not recorded, retry")
