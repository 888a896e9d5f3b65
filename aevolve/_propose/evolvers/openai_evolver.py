"""The `openai` evolver: any OpenAI-compatible chat endpoint proposes the change.

It sends the task and the policy (system message) and a compact, budgeted view
of the state, the failing observations and the gate reports of earlier rejected
proposals (user message); it asks for structured JSON validated against the
`proposal` schema, with one repair round for a malformed answer. Secrets never
enter a prompt: every piece of text is redacted before it is clipped, and
aevolve.yaml is never sent (only the policy derived from it).
"""

from __future__ import annotations

import json
import re

from aevolve._errors import UsageError
from aevolve._propose import llm
from aevolve._propose.evolvers.base import EvolveContext, Proposal

# Characters a repair round may add to the conversation (the bad answer, clipped, and the errors).
REPAIR_SHARE = 6
REPAIR_MAX = 6000
MIN_USER_CHARS = 1500

# Shares of the user message, and the order sections are filled in: a section that
# needs less than its share leaves the rest to the ones after it.
_SHARES = {
    "manifest": 0.04,
    "history": 0.10,
    "observations": 0.30,
    "tools": 0.08,
    "prompts": 0.14,
    "memory": 0.10,
    "skills": 0.24,
}
_RENDER_ORDER = ("observations", "history", "manifest", "prompts", "tools", "skills", "memory")
_FOCUS_BOOST = 2.5


class OpenAIEvolver:
    """Propose with a chat model. Options not given come from `evolver.openai` in
    aevolve.yaml, then OPENAI_MODEL / OPENAI_BASE_URL / the key variable, then defaults."""

    def __init__(self, *, model=None, base_url=None, api_key=None, api_key_env=None, temperature=None,
                 max_output_tokens=None, budget_chars=None, timeout=None, max_retries=None,
                 base_delay=None, max_delay=None, response_format=None, max_response_bytes=None, **unknown):
        if unknown:
            raise UsageError(
                f"unknown openai evolver option(s): {', '.join(sorted(unknown))}; known: model, base_url, api_key, "
                "api_key_env, temperature, max_output_tokens, budget_chars, timeout, max_retries, base_delay, "
                "max_delay, response_format, max_response_bytes"
            )
        self.options = {
            "model": model, "base_url": base_url, "api_key": api_key, "api_key_env": api_key_env,
            "temperature": temperature, "max_output_tokens": max_output_tokens, "timeout": timeout,
            "max_retries": max_retries, "base_delay": base_delay, "max_delay": max_delay,
            "response_format": response_format, "max_response_bytes": max_response_bytes,
        }
        self.budget_chars = budget_chars
        self.settings: llm.LLMSettings | None = None
        self.reason = ""  # why propose() returned None
        self.last_request: list[dict] | None = None  # the messages of the last proposal, for --dry-run style inspection
        # Known before any config is read, so a caller may print it early; refined in propose().
        self.name = f"openai/{self._settings({}).model}"

    # -- configuration ----------------------------------------------------------------
    def _settings(self, config: dict) -> llm.LLMSettings:
        return llm.resolve_settings(config, overrides=self.options)

    def _budget(self, config: dict) -> int:
        value = self.budget_chars
        if value is None:
            value = ((config.get("evolver") or {}).get("openai") or {}).get("budget_chars", 60000)
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"openai budget_chars must be a number of characters, not {value!r}") from None
        return value

    # -- the evolver --------------------------------------------------------------------
    def propose(self, ctx: EvolveContext) -> Proposal | None:
        settings = self._settings(ctx.config or {})
        if ctx.temperature is not None:
            settings.temperature = float(ctx.temperature)
        self.settings = settings
        self.name = f"openai/{settings.model}"
        settings.require_key()  # before anything else: a missing key sends nothing

        failing = [o for o in ctx.observations if _failed(o)]
        if not failing:
            self.reason = "no failed observations: nothing for the model to fix (no request was sent)"
            return None

        budget = self._budget(ctx.config or {})
        hide = [settings.api_key] if settings.api_key else []
        system = system_message(ctx)
        repair_budget = min(REPAIR_MAX, budget // REPAIR_SHARE)
        user_budget = budget - len(system) - repair_budget
        if user_budget < MIN_USER_CHARS:
            raise UsageError(
                f"openai budget_chars={budget} is too small: the instructions and schema alone take "
                f"{len(system)} characters; use at least {len(system) + MIN_USER_CHARS + budget // REPAIR_SHARE + 1}"
            )
        view = StateView(ctx, failing, hide)
        user = view.render(user_budget)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        self.last_request = messages

        from aevolve._state import schemas

        client = llm.make_client(settings, total=_total_timeout(ctx.config or {}))
        request_extra = {"seed": int(ctx.seed)}  # seed 0 too: an unsent seed and seed 0 must not look alike
        try:
            answer = _chat(client, settings, messages, schemas.schema("proposal"), repair_budget, request_extra,
                           view.check_writes)
        finally:
            client.openai.close()
        proposal = Proposal.from_dict(answer.data)
        proposal.evidence = _evidence(proposal.evidence, view.shown_ids, ctx.observations)
        proposal.usage = {**answer.usage.to_dict(), "model": settings.model, "answers": answer.attempts}
        return proposal


def _chat(client, settings, messages, schema, repair_budget, extra, check_writes=None):
    # a seed goes with every request of this proposal (diverse candidates stay reproducible)
    by_schema = llm.schema_validator("proposal")

    def validate(data) -> list[str]:
        # a write over a file the model saw cut would drop what it never saw: refused, and the
        # repair round tells it to use replace or append instead
        problems = by_schema(data)
        return problems if problems or check_writes is None else check_writes(data)

    return llm.chat_json(client, settings.model, messages, schema, settings=settings, schema_name="proposal",
                         validate=validate, repair_budget=repair_budget, extra=extra)


def _total_timeout(config: dict) -> float:
    """`evolver.timeout`: seconds the whole call may take, every request, retry and wait included."""
    value = (config.get("evolver") or {}).get("timeout", 600)
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        seconds = float(600 if value is None else value)
    except (TypeError, ValueError):
        raise UsageError(f"aevolve.yaml evolver.timeout must be a number of seconds, not {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise UsageError(f"aevolve.yaml evolver.timeout must be a positive number of seconds, not {value!r}")
    return seconds


def _failed(observation: dict) -> bool:
    feedback = observation.get("feedback") or {}
    return isinstance(feedback, dict) and feedback.get("success") is False


def _evidence(claimed: list[str], shown: list[str], observations: list[dict]) -> list[str]:
    """Evidence must be real: the ids the model cited that it was shown; none when it cited none.

    Never every failure it saw: a wrong one among them would be recorded as the change's
    evidence, and the loop isolates (and never retries) the evidence of a rejected change."""
    known = {o.get("id") for o in observations} & set(shown)
    return list(dict.fromkeys(e for e in claimed if e in known))


# -- the system message: task, output contract, policy --------------------------------------


def system_message(ctx: EvolveContext) -> str:
    from aevolve import _config as config_mod
    from aevolve._state import schemas

    cfg = ctx.config or {}
    protection = cfg.get("protection") or {}
    layers = ctx.state.evolvable_layers()
    protected = config_mod.protected_paths(cfg)
    schema = {k: v for k, v in schemas.schema("proposal").items() if k not in ("$schema", "$id")}
    focus = f"\nConcentrate on the `{ctx.focus}` layer this time.\n" if ctx.focus else ""
    return f"""\
You are the evolver of an LLM agent whose persistent state (prompts, skills, memory, tool registry) \
lives as files in a git repository. Study the failing observations and the state, diagnose why the \
agent failed, and propose ONE focused change to the state that fixes those failures without breaking \
what works. A regression suite you cannot see or change gates your proposal; proposals it rejected \
earlier are listed with its reasons: do not repeat them.
{focus}
Answer with one JSON object that matches the JSON Schema `proposal` below and nothing else \
(no prose, no code fence):
- title: imperative, one line, at most 100 characters (the commit subject is `evolve(<layer>): <title>`).
- diagnosis: what went wrong and why, citing observation ids.
- change: what you change, in which files.
- expected_effect: which observations it should fix, and what must stay as it is.
- evidence: the ids of the observations that support the change.
- edits: `replace` (path + old: an exact span of the file as shown to you, found exactly once + content: \
its new text), `append` (path + content: text added at the end of the file, or a new file), \
`append-jsonl` (path of a memory/*.jsonl file + records: JSON objects to append, each with a new unique "id"), \
`write` (path + the complete content: only for a new file or a file shown to you whole; a file shown cut \
[... truncated ...], a skill shown without its front matter or memory shown by its last records must be \
changed with `replace` or `append`), `delete` (path).
A skill is skills/<name>/SKILL.md: YAML front matter between `---` lines with `name` (equal to the folder \
name; lowercase letters, digits, single hyphens) and `description` (1-1024 characters), then a Markdown body.

Policy (a proposal that breaks any rule is refused as a whole):
- edit only files under these layers: {", ".join(f"{layer}/" for layer in layers)}
- never touch: {", ".join(protected)}
- relative paths only: no absolute paths, no "..", nothing under .git, no symlinks
- at most {protection.get("max_file_bytes", 262144)} bytes per file and \
{protection.get("max_proposal_bytes", 1048576)} bytes per proposal
- the resulting state must still validate (skill front matter, memory JSONL, tool registry)
- never write secrets: API keys, tokens, passwords, private keys (parts of the state shown to you \
are redacted as [REDACTED])

Schema `proposal`:
{json.dumps(schema, separators=(",", ":"))}
"""


# -- the user message: a budgeted view of the evidence and the state ------------------------------


_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z ]*PRIVATE KEY[A-Z ]*-----|\Z)", re.S
)
_REDACTED = "[REDACTED]"


def redact(text: str, hide: tuple[str, ...] | list[str] = ()) -> str:
    """`text` with every secret-looking string replaced by [REDACTED] (the patterns of
    aevolve._trust.secrets, whole private-key blocks, and the literal values in `hide`)."""
    from aevolve._trust import secrets

    for value in hide:
        if value and len(value) >= 4:
            text = text.replace(value, _REDACTED)
    text = _PRIVATE_KEY_BLOCK.sub(_REDACTED, text)
    for _kind, pattern in secrets.PATTERNS:
        text = pattern.sub(_REDACTED, text)
    assignment = getattr(secrets, "_ASSIGNMENT", None)
    if assignment is not None:
        def _value(match):
            value = match.group(2)
            return match.group(0).replace(value, _REDACTED) if secrets.looks_random(value) else match.group(0)

        text = assignment.sub(_value, text)
    return text


def clip(text: str, limit: int, what: str = "characters") -> str:
    """`text` cut to at most `limit` characters, with an explicit truncation mark."""
    if len(text) <= limit:
        return text
    if limit < 48:
        return text[: max(0, limit)]
    keep = limit - 48
    return text[:keep] + f" [... truncated: {len(text) - keep} more {what}]"[: limit - keep]


class _Writer:
    """Collects lines up to a character limit, keeping room for one closing note."""

    NOTE_ROOM = 90

    def __init__(self, limit: int):
        self.limit = max(0, limit)
        self.parts: list[str] = []
        self.used = 0

    @property
    def room(self) -> int:
        return self.limit - self.NOTE_ROOM - self.used

    def add(self, text: str) -> bool:
        if len(text) + 1 > self.room:
            return False
        self.parts.append(text)
        self.used += len(text) + 1
        return True

    def add_clipped(self, text: str, cap: int | None = None) -> bool:
        room = self.room - 1
        if room < 60:
            return False
        return self.add(clip(text, min(room, cap) if cap else room))

    def note(self, text: str) -> None:
        text = clip(text, self.limit - self.used - 1)
        if text:
            self.parts.append(text)
            self.used += len(text) + 1

    def text(self) -> str:
        return "\n".join(self.parts)


class StateView:
    """The compact, redacted view of the evidence and the state for one request."""

    def __init__(self, ctx: EvolveContext, failing: list[dict], hide: list[str]):
        self.ctx, self.state, self.failing, self.hide = ctx, ctx.state, failing, hide
        self.shown_ids: list[str] = []
        self.whole: set[str] = set()  # files shown complete and unredacted: a `write` may replace them
        self.cut: set[str] = set()  # files shown in part (clipped, redacted, a skill's body, memory's tail)
        self._words = _words(" ".join(
            _plain([o.get("task"), o.get("output"), o.get("feedback"), o.get("tags")]) for o in failing
        ))

    def _r(self, text) -> str:
        return redact(text if isinstance(text, str) else _plain(text), self.hide)

    def _show(self, w: _Writer, path: str, block: str, cap: int | None = None, whole: bool = True) -> bool:
        """Add a file's block; remember whether the model saw that file whole."""
        if not w.add_clipped(block, cap):
            return False
        (self.whole if whole and w.parts[-1] == block else self.cut).add(path)
        return True

    def check_writes(self, data) -> list[str]:
        """Why the answer's `write` edits may not be used: each replaces an existing file the
        model was not shown whole (it would silently drop what it could not see)."""
        edits = data.get("edits") if isinstance(data, dict) else None
        out = []
        for index, edit in enumerate(edits if isinstance(edits, list) else []):
            path = edit.get("path") if isinstance(edit, dict) else None
            if edit.get("op") != "write" or not isinstance(path, str) or path not in self.state.files \
                    or path in self.whole or not self._evolvable(path):
                continue  # what the policy refuses anyway, it names itself
            seen = "shown to you cut or in part" if path in self.cut else "not shown to you"
            out.append(f"/edits/{index}: a write would replace all of {path}, which was {seen}; change it with "
                       "`replace` (an exact span you were shown) or `append` instead")
        return out

    def render(self, budget: int) -> str:
        header = f"Base commit: {self.ctx.base}\nEvolvable layers: {', '.join(self.state.evolvable_layers())}\n"
        shares = dict(_SHARES)
        if self.ctx.focus in shares:
            shares[self.ctx.focus] *= _FOCUS_BOOST
        separators = 2 * len(shares)
        remaining = budget - len(header) - separators
        left = sum(shares.values())
        built: dict[str, str] = {}
        for key, share in shares.items():
            allowance = int(remaining * share / left)
            text = getattr(self, f"_{key}")(allowance)
            text = clip(text, allowance)  # each builder keeps within it; this makes sure
            built[key] = text
            remaining -= len(text)
            left -= share
        body = "\n\n".join(built[k] for k in _RENDER_ORDER if built[k])
        out = header + "\n" + body
        # belt and braces: a final redaction pass and the hard limit
        out = redact(out, self.hide)
        return clip(out, budget)

    # -- sections -------------------------------------------------------------------------
    def _observations(self, limit: int) -> str:
        w = _Writer(limit)
        newest_first = list(reversed(self.failing))
        total = len(newest_first)
        if not w.add(f"# Failing observations ({total}, newest first)"):
            return ""
        per = max(400, min(4000, (limit - 80) // max(1, total)))
        for shown, obs in enumerate(newest_first):
            block = self._observation(obs, per)
            if not w.add(block):
                w.note(f"[... {total - shown} more failing observations not shown: budget]")
                break
            self.shown_ids.append(str(obs.get("id")))
        return w.text()

    def _observation(self, obs: dict, limit: int) -> str:
        feedback = obs.get("feedback") or {}
        field_cap = max(80, (limit - 120) // 4)
        tags = f"  tags: {', '.join(map(str, obs.get('tags') or []))}" if obs.get("tags") else ""
        lines = [f"## {obs.get('id')}" + tags]
        lines.append("task: " + clip(self._r(obs.get("task")), field_cap))
        lines.append("output: " + clip(self._r(obs.get("output")), field_cap))
        verdict = f"feedback: success={str(feedback.get('success')).lower()}"
        if "score" in feedback:
            verdict += f" score={feedback.get('score')}"
        lines.append(verdict)
        if feedback.get("detail"):
            lines.append("detail: " + clip(self._r(feedback["detail"]), field_cap))
        if "expected" in feedback:
            lines.append("expected: " + clip(self._r(feedback["expected"]), field_cap))
        if obs.get("steps"):
            lines.append(f"steps: {len(obs['steps'])} (not shown)")
        return clip("\n".join(lines), limit)

    def _history(self, limit: int) -> str:
        reports = [r for r in (self.ctx.history or []) if isinstance(r, dict)]
        if not reports:
            return ""
        w = _Writer(limit)
        if not w.add(f"# Gate reports of earlier proposals that were rejected or gained nothing "
                     f"({len(reports)}, newest first)"):
            return ""
        per = max(300, min(2000, (limit - 80) // len(reports)))
        for shown, report in enumerate(reports):  # propose passes them newest first
            if not w.add(clip(self._report(report), per)):
                w.note(f"[... {len(reports) - shown} more rejected proposals not shown: budget]")
                break
        return w.text()

    def _report(self, report: dict) -> str:
        proposal: dict = report["proposal"] if isinstance(report.get("proposal"), dict) else {}
        title = report.get("title") or report.get("subject") or proposal.get("title")
        candidate = str(report.get("candidate") or "")[:12]
        lines = [f"## {candidate or 'proposal'}: {self._r(title) if title else '(untitled)'}"
                 f" -> {report.get('decision', 'reject')}"]
        for reason in (report.get("reasons") or [])[:8]:
            lines.append("reason: " + clip(self._r(reason), 300))
        regressions = report.get("regressions") or []
        if regressions:
            lines.append("regressed cases: " + clip(", ".join(map(str, regressions)), 400))
        for case in report.get("cases") or []:
            if isinstance(case, dict) and case.get("verdict") in ("regression", "error", "new-fail"):
                failures = (case.get("candidate") or {}).get("failures") or []
                detail = "; ".join(self._r(f) for f in failures[:3])
                lines.append(f"case {case.get('id')}: {case.get('verdict')}"
                             + (f" ({clip(detail, 300)})" if detail else ""))
        return "\n".join(lines)

    def _manifest(self, limit: int) -> str:
        return self._file_section("# Manifest", ["manifest.yaml"], limit)

    def _prompts(self, limit: int) -> str:
        paths = self.state.paths("prompts/")
        paths.sort(key=lambda p: (p != "prompts/system.md", p))
        return self._file_section(f"# Prompts ({len(paths)} files)", paths, limit)

    def _tools(self, limit: int) -> str:
        paths = self.state.paths("tools/")
        first = [p for p in paths if p == "tools/registry.yaml"]
        others = [p for p in paths if p not in first]
        w = _Writer(limit)
        if not paths or not w.add(f"# Tools ({len(paths)} files)"):
            return ""
        for path in first:
            self._show(w, path, f"## {path}\n{self._text(path)}", whole=self._unredacted(path))
        if others:
            w.add_clipped("other files: " + ", ".join(others))
        return w.text()

    def _file_section(self, title: str, paths: list[str], limit: int) -> str:
        paths = [p for p in paths if p in self.state]
        w = _Writer(limit)
        if not paths or not w.add(title):
            return ""
        per = max(300, (limit - len(title) - 100) // len(paths))
        for shown, path in enumerate(paths):
            if not self._show(w, path, f"## {path}\n{self._text(path)}", per, whole=self._unredacted(path)):
                w.note(f"[... {len(paths) - shown} more files not shown: budget]")
                break
        return w.text()

    def _skills(self, limit: int) -> str:
        described = self._ranked_skills()
        if not described:
            return ""
        w = _Writer(limit)
        if not w.add(f"# Skills ({len(described)}, most relevant to the failures first)"):
            return ""
        # the index of names and descriptions takes at most half; bodies get the rest
        index_limit = w.used + (limit - w.used) // 2
        listed = 0
        for _score, name, _path, description, _body in described:
            line = clip(f"- {name}: {self._r(description)}", 240)
            if w.used + len(line) + 1 > index_limit or not w.add(line):
                break
            listed += 1
        if listed < len(described):
            w.add(f"[... {len(described) - listed} more skills not listed: budget]")
        with_body = [(path, body) for _s, _n, path, _d, body in described if path and body.strip()]
        shown = 0
        for path, body in with_body:  # never whole: the front matter beyond the description is not shown
            if not self._show(w, path, f"## {path} (body)\n{self._r(body.strip())}", 1500, whole=False):
                break
            shown += 1
        if shown < len(with_body):
            w.note(f"[... {len(with_body) - shown} more skill bodies not shown: budget]")
        return w.text()

    def _ranked_skills(self) -> list[tuple[float, str, str, str, str]]:
        """(relevance, name, path, description, body) of every skill, most relevant first:
        evidence words a skill shares, rare words weighing more (words every skill has say nothing)."""
        described = []
        for name, path in self.state.skills().items():
            description, body = "", ""
            if path:
                try:
                    doc = self.state.skill(name)
                    description, body = str(doc.meta.get("description", "")), doc.body
                except Exception:  # a broken skill is shown as such, never fatal here
                    description = "(unreadable SKILL.md)"
            described.append((self._words & _words(f"{name} {description}"), name, path, description, body))
        df: dict[str, int] = {}
        for words, *_ in described:
            for word in words:
                df[word] = df.get(word, 0) + 1
        ranked = [(sum(1.0 / df[w] for w in words), name, path, description, body)
                  for words, name, path, description, body in described]
        return sorted(ranked, key=lambda s: (-s[0], s[1]))

    def _memory(self, limit: int) -> str:
        files = self.state.memory_files()
        if not files:
            return ""
        w = _Writer(limit)
        if not w.add(f"# Memory ({len(files)} files, newest records last)"):
            return ""
        per = max(300, (limit - 100) // len(files))
        for shown, path in enumerate(files):
            lines = [line for line in self._text(path).splitlines() if line.strip()]
            tail, size = [], len(path) + 40
            for line in reversed(lines):
                entry = clip(line, 300)
                if size + len(entry) + 1 > per:
                    break
                tail.append(entry)
                size += len(entry) + 1
            tail.reverse()
            head = f"## {path} (last {len(tail)} of {len(lines)} records)"
            whole = tail == lines and self._unredacted(path)  # every record, none clipped
            if not self._show(w, path, "\n".join([head, *tail]), per, whole=whole):
                w.note(f"[... {len(files) - shown} more memory files not shown: budget]")
                break
        return w.text()

    def _text(self, path: str) -> str:
        try:
            return self._r(self.state.text(path)).rstrip()
        except Exception:
            return "(not readable as text)"

    def _evolvable(self, path: str) -> bool:
        from aevolve import _config as config_mod

        layer = path.split("/", 1)[0]
        return layer in self.state.evolvable_layers() and not config_mod.is_protected(path, self.ctx.config or {})

    def _unredacted(self, path: str) -> bool:
        try:
            text = self.state.text(path)
        except Exception:
            return False
        return self._r(text) == text  # a redacted file written whole would lose its real values


def _plain(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}|[0-9]+", text.lower()))


EVOLVER = OpenAIEvolver
