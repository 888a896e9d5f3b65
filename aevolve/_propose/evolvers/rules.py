"""The `rules` evolver: offline and deterministic, the default.

- A failed observation whose feedback carries the right answer (`expected`) or
  guidance (`detail`) becomes a lesson in `memory/lessons.jsonl`, with the
  stable id `lesson-<hash of the observation>`; lessons already in any memory
  file are never added again. Past `memory.shard_bytes` they go to the tail of
  the family (`memory/lessons.0001.jsonl`, ...), and the Change names that file.
- When at least `min_failures` failures share a failure signature (a tag, or an
  error class such as `KeyError` named in the detail), it drafts a skill
  `skills/<signature>-guidance/SKILL.md` stating their shared guidance, unless
  that skill exists.
The Diagnosis counts and cites the evidence. Same evidence twice: no proposal.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from aevolve._propose.evolvers.base import Edit, EvolveContext, Proposal
from aevolve._state.jsonl import dump_jsonl_record, iter_jsonl
from aevolve._state.model import FileError, render_skill

LESSONS_FILE = "memory/lessons.jsonl"
_ERROR_CLASS = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout))\b")
MAX_SKILLS = 3


def _compact(value, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _skill_slug(text: str) -> str:
    # KeyError -> key-error; "Date Format" -> date-format
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:40].strip("-")


def lesson_id(obs: dict) -> str:
    fb = obs.get("feedback", {})
    basis = json.dumps({"id": obs.get("id"), "task": obs.get("task"), "expected": fb.get("expected"),
                        "detail": fb.get("detail")}, sort_keys=True, ensure_ascii=False)
    return "lesson-" + hashlib.sha256(basis.encode()).hexdigest()[:12]


def _guidance(obs: dict) -> tuple[object, str | None]:
    fb = obs.get("feedback", {})
    detail = fb.get("detail")
    return fb.get("expected"), detail.strip() if isinstance(detail, str) and detail.strip() else None


def _has_guidance(obs: dict) -> bool:
    expected, detail = _guidance(obs)
    return expected is not None or detail is not None


def lesson_for(obs: dict) -> dict:
    expected, detail = _guidance(obs)
    parts = [f"Task: {_compact(obs.get('task'))}"]
    if expected is not None:
        parts.append(f"Correct answer: {_compact(expected)}")
    if detail:
        parts.append(f"Guidance: {_compact(detail, 400)}")
    record = {"id": lesson_id(obs), "content": " | ".join(parts),
              "source": {"observation": obs["id"], "evolver": "rules"}}
    if obs.get("tags"):
        record["tags"] = list(obs["tags"])
    return record


def signatures(obs: dict) -> list[str]:
    """The failure signatures of one observation: its tags and error classes."""
    sigs = [f"tag:{t}" for t in obs.get("tags") or [] if _skill_slug(t)]
    _, detail = _guidance(obs)
    for cls in _ERROR_CLASS.findall(detail or "") + _ERROR_CLASS.findall(_compact(obs.get("output"), 2000)):
        sigs.append(f"error:{cls}")
    return list(dict.fromkeys(sigs))


def _known_memory_ids(ctx: EvolveContext, wanted: set[str]) -> set[str]:
    """Which of the ids in `wanted` a memory record already carries. A file is parsed
    only when one of them, or a `\\u` escape that could spell one, appears in its text:
    memory grows by a lesson per cycle, and parsing all of it each time made every
    proposal slower than the last."""
    ids: set[str] = set()
    if not wanted:
        return ids
    for path in ctx.state.memory_files():
        try:
            text = ctx.state.text(path)
        except FileError:
            continue
        if "\\u" not in text and not any(w in text for w in wanted):
            continue
        for _, value in iter_jsonl(text):
            if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"] in wanted:
                ids.add(value["id"])
    return ids


class RulesEvolver:
    name = "rules"

    def __init__(self, min_failures: int = 3, max_skills: int = MAX_SKILLS):
        self.min_failures = int(min_failures)
        self.max_skills = int(max_skills)
        self.reason: str | None = None

    def propose(self, ctx: EvolveContext) -> Proposal | None:
        self.reason = None
        layers = set(ctx.state.evolvable_layers())
        want_memory = "memory" in layers and ctx.focus in (None, "memory")
        want_skills = "skills" in layers and ctx.focus in (None, "skills")
        if not (want_memory or want_skills):
            return self._nothing(f"the rules evolver writes memory and skills; focus {ctx.focus!r} "
                                 f"or the evolvable layers ({', '.join(sorted(layers))}) leave it nothing")
        total = len(ctx.observations)
        failed = [o for o in ctx.observations if o.get("feedback", {}).get("success") is False]
        if not failed:
            return self._nothing(f"none of the {total} observation(s) failed")
        guided = [o for o in failed if _has_guidance(o)]

        lessons = []
        if want_memory:
            records = [(obs, lesson_for(obs)) for obs in guided]
            known = _known_memory_ids(ctx, {r["id"] for _, r in records})
            for obs, record in records:
                if record["id"] not in known:
                    known.add(record["id"])
                    lessons.append((obs, record))

        skills = self._skills(ctx, failed) if want_skills else []
        if not lessons and not skills:
            return self._nothing(
                f"{len(failed)} of {total} observation(s) failed; {len(guided)} carry an answer or guidance "
                f"and all of them are already lessons in memory; no new failure signature is shared by "
                f"{self.min_failures} or more failures without a skill"
            )
        return self._proposal(total, failed, guided, lessons, skills, _lesson_edits(ctx, [r for _, r in lessons]))

    def _nothing(self, reason: str) -> Proposal | None:
        """No proposal, and why (shown to the user)."""
        self.reason = reason
        return None

    def _skills(self, ctx: EvolveContext, failed: list[dict]) -> list[tuple[str, str, list[dict]]]:
        groups: dict[str, list[dict]] = {}
        for obs in failed:
            for sig in signatures(obs):
                groups.setdefault(sig, []).append(obs)
        rng = random.Random(ctx.seed)
        order = sorted(groups)
        rng.shuffle(order)  # the seed only breaks ties between equally large groups
        order.sort(key=lambda s: -len(groups[s]))
        existing = set(ctx.state.skills())
        chosen, covered = [], []
        for sig in order:
            members = groups[sig]
            ids = {o["id"] for o in members}
            if len(members) < self.min_failures or ids in covered:
                continue
            if not any(_has_guidance(o) for o in members):
                continue
            name = f"{_skill_slug(sig.split(':', 1)[1])}-guidance"
            if name in existing or name.startswith("-"):
                continue
            covered.append(ids)
            existing.add(name)
            chosen.append((sig, name, members))
            if len(chosen) >= self.max_skills:
                break
        return chosen

    def _skill_text(self, sig: str, name: str, members: list[dict], failed_total: int) -> str:
        kind, value = sig.split(":", 1)
        what = f"tagged `{value}`" if kind == "tag" else f"failing with `{value}`"
        details = list(dict.fromkeys(d for _, d in map(_guidance, members) if d))
        if details:
            advice = " ".join(d if d.endswith((".", "!", "?")) else d + "." for d in details)
        else:
            advice = "use the corrections recorded from earlier failures"
        meta = {
            "name": name,
            "description": _compact(
                f"Guidance learned from {len(members)} failed tasks {what.replace('`', '')}: " + advice, 1000),
            "metadata": {"source": "aevolve rules evolver", "signature": sig},
        }
        lines = [f"# {value} guidance", "",
                 f"{len(members)} of {failed_total} failed tasks were {what}. "
                 "Apply this before answering such tasks.", ""]
        if details:
            lines += ["## Guidance", ""] + [f"- {_compact(d, 400)}" for d in details] + [""]
        corrections = [o for o in members if _guidance(o)[0] is not None]
        if corrections:
            lines += ["## Corrections from past failures", ""]
            for obs in corrections:
                lines.append(f"- {_compact(obs.get('task'), 160)} → "
                             f"expected {_compact(_guidance(obs)[0], 160)} ({obs['id']})")
            lines.append("")
        return render_skill(meta, "\n" + "\n".join(lines))

    def _proposal(self, total, failed, guided, lessons, skills, lesson_edits: list[Edit]) -> Proposal:
        edits, diagnosis, change, evidence = [], [], [], []
        if lessons:
            edits += lesson_edits
            ids = [o["id"] for o, _ in lessons]
            evidence += ids
            diagnosis.append(
                f"{len(failed)} of {total} observed tasks failed; {len(guided)} of them carry the correct answer "
                f"or guidance in their feedback, {len(lessons)} not yet in memory: {_cite(ids)}."
            )
            change.append(f"Appends {_plural(len(lessons), 'lesson')} to {' and '.join(e.path for e in lesson_edits)}: "
                          + ", ".join(r["id"] for _, r in lessons[:8]) + ("…" if len(lessons) > 8 else "") + ".")
        for sig, name, members in skills:
            ids = [o["id"] for o in members]
            evidence += ids
            kind, value = sig.split(":", 1)
            shared = f"share the tag `{value}`" if kind == "tag" else f"fail with `{value}`"
            diagnosis.append(f"{len(members)} of {len(failed)} failed tasks {shared}: {_cite(ids)}.")
            edits.append(Edit("write", f"skills/{name}/SKILL.md",
                              content=self._skill_text(sig, name, members, len(failed))))
            change.append(f"Adds skills/{name}/SKILL.md stating the shared guidance "
                          "and the corrections of those tasks.")
        evidence = list(dict.fromkeys(evidence))
        if skills and lessons:
            title = f"add {', '.join(n for _, n, _ in skills)} and {_plural(len(lessons), 'lesson')}"
        elif skills:
            title = f"add {', '.join(n for _, n, _ in skills)} skill{'s' if len(skills) > 1 else ''}"
        else:
            title = f"learn {_plural(len(lessons), 'lesson')} from failed tasks"
        return Proposal(
            title=_compact(title, 100),
            diagnosis="\n".join(diagnosis),
            change="\n".join(change),
            expected_effect=(f"Tasks like {_cite(evidence, 5)} should now get the recorded corrections; "
                             "nothing is removed or rewritten, so other behaviour should not change."),
            edits=edits,
            evidence=evidence,
            layer=None if (lessons and skills) else ("memory" if lessons else "skills"),
        )


def _lesson_edits(ctx: EvolveContext, records: list[dict]) -> list[Edit]:
    """One append per file the lessons really go to: the tail of the lessons family, and
    new shards past `memory.shard_bytes` (the policy's own placement, so the Change is true)."""
    from aevolve._propose.policy import memory_runs

    if not records:
        return []
    sizes = [len((dump_jsonl_record(r) + "\n").encode("utf-8", "surrogatepass")) for r in records]
    edits, start = [], 0
    for run in memory_runs(ctx.state, LESSONS_FILE, sizes, ctx.config or None):
        edits.append(Edit("append-jsonl", run.path, records=records[start:start + run.count]))
        start += run.count
    return edits


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _cite(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


EVOLVER = RulesEvolver
