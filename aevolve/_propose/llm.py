"""A small, shared way to ask an OpenAI-compatible endpoint for JSON.

Used by the `openai` evolver and by the gate's `llm-rubric` assertion:

    settings = llm.resolve_settings(config)          # CLI option > aevolve.yaml > env > default
    client = llm.make_client(settings)
    data, usage = llm.chat_json(client, settings.model, messages, schema, ...)

Transient failures (429, 408, 409, 5xx, timeouts, dropped connections) are
retried by the `openai` client itself (`max_retries`, exponential backoff,
honouring Retry-After); aevolve only watches its attempts, to count requests
and to name each failed one when it gives up. What the client does not do is
done here: parse the JSON answer, and re-ask once with the exact errors when it
is not JSON or breaks the schema. `openai` is imported lazily: it costs half a
second.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aevolve import _config as config_mod
from aevolve._errors import EvolverFailed, UsageError

# Standard variables of the OpenAI SDKs, read when aevolve.yaml is silent.
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_MODEL = "OPENAI_MODEL"
DEFAULT_MODEL = "gpt-4.1-mini"
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx: what the client retries


@dataclass
class LLMSettings:
    """Everything needed to talk to one endpoint. `api_key` is never printed or logged."""

    model: str
    base_url: str | None
    api_key_env: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = 0.2
    max_output_tokens: int = 4000
    timeout: float = 120.0
    max_retries: int = 4  # the client's own retries of transient failures
    # accepted so existing aevolve.yaml files and options stay valid; the client's backoff decides
    base_delay: float = 0.5
    max_delay: float = 30.0
    response_format: str = "json_schema"  # json_schema | json_object | none

    def public(self) -> dict:
        """What may be shown to a user: everything but the key."""
        out = asdict(self)
        out.pop("api_key")
        return out

    def require_key(self) -> str:
        if not self.api_key:
            raise UsageError(
                f"no API key: the environment variable {self.api_key_env} is not set "
                f"(aevolve.yaml evolver.openai.api_key_env names the variable that holds the key; "
                f"for a local server without keys, set it to any value). No request was sent."
            )
        return self.api_key


@dataclass
class Usage:
    """Token counts summed over every request that came back with a body."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0  # HTTP requests sent, failed ones included

    def add(self, usage) -> None:
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
        prompt = int(get("prompt_tokens", 0) or 0)
        completion = int(get("completion_tokens", 0) or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += int(get("total_tokens", 0) or 0) or prompt + completion

    def to_dict(self) -> dict:
        return asdict(self)


# -- settings -------------------------------------------------------------------------

_KEYS = ("model", "base_url", "api_key_env", "temperature", "max_output_tokens", "timeout", "max_retries",
         "base_delay", "max_delay", "response_format")


def resolve_settings(config: dict | None = None, *, overrides: dict | None = None,
                     env: Mapping[str, str] | None = None) -> LLMSettings:
    """The endpoint settings, by precedence: `overrides` (CLI/Python options) >
    aevolve.yaml's `evolver.openai` > OPENAI_* environment variables > defaults.

    `config` is aevolve.yaml (raw or with defaults filled in); its template leaves
    `model` and `base_url` null so that OPENAI_MODEL / OPENAI_BASE_URL apply.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    defaults = config_mod.DEFAULTS["evolver"]["openai"]
    section = ((config or {}).get("evolver") or {}).get("openai") or {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}

    def from_file(key):
        return section.get(key) if isinstance(section, dict) else None

    def pick(key, env_name=None, default=None):
        if key in overrides:
            return overrides[key]
        value = from_file(key)
        if value is not None:
            return value
        if env_name and environ.get(env_name):
            return environ[env_name]
        return defaults[key] if defaults.get(key) is not None else default

    unknown = sorted(set(overrides) - set(_KEYS) - {"api_key"})
    if unknown:
        raise UsageError(f"unknown openai option(s): {', '.join(unknown)}; known: {', '.join(_KEYS)}, api_key")
    api_key_env = str(pick("api_key_env"))
    api_key = overrides.get("api_key") or environ.get(api_key_env) or None
    settings = LLMSettings(
        model=str(pick("model", ENV_MODEL, DEFAULT_MODEL)),
        base_url=pick("base_url", ENV_BASE_URL) or None,
        api_key_env=api_key_env,
        api_key=api_key,
        temperature=pick("temperature"),
        max_output_tokens=_number(pick("max_output_tokens"), "max_output_tokens", int, 1),
        timeout=_number(pick("timeout"), "timeout", float, 0.001),
        max_retries=_number(pick("max_retries"), "max_retries", int, 0),
        base_delay=_number(pick("base_delay", default=0.5), "base_delay", float, 0.0),
        max_delay=_number(pick("max_delay", default=30.0), "max_delay", float, 0.0),
        response_format=str(pick("response_format", default="json_schema")),
    )
    if settings.temperature is not None:
        settings.temperature = _number(settings.temperature, "temperature", float, 0.0)
    if settings.response_format not in ("json_schema", "json_object", "none"):
        raise UsageError("openai response_format must be json_schema, json_object or none, "
                         f"not {settings.response_format!r}")
    if not settings.model.strip():
        raise UsageError("openai model is empty: set evolver.openai.model, OPENAI_MODEL or --model")
    return settings


def _number(value, name: str, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"openai {name} must be a number, not {value!r}") from None
    if number < minimum:
        raise UsageError(f"openai {name} must be at least {minimum}, not {value!r}")
    return number


def make_client(cfg: LLMSettings | dict) -> Client:
    """An `openai.OpenAI` client for `cfg` (settings or an aevolve.yaml dict) that
    retries transient failures itself, `max_retries` times, each request bounded by
    `timeout`; its attempts are watched through httpx's event hooks."""
    settings = cfg if isinstance(cfg, LLMSettings) else resolve_settings(cfg)
    key = settings.require_key()
    import openai

    attempts = Attempts()
    http = openai.DefaultHttpxClient(event_hooks={"request": [attempts.sent], "response": [attempts.answered]})
    return Client(openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout,
                                max_retries=settings.max_retries, http_client=http), attempts)


# -- requests --------------------------------------------------------------------------


class Attempts:
    """How each HTTP request the client sent ended, its own retries included.

    The client hides its retries; a usage count and an error that lists every
    failed attempt need them, so the hooks only record, they never decide."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def sent(self, request) -> None:
        self.outcomes.append("no answer (timed out or the connection failed)")

    def answered(self, response) -> None:
        if response.status_code < 400:
            self.outcomes[-1] = "answered"
            return
        response.read()  # the body says what went wrong; the client later reads it from memory
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.outcomes[-1] = f"HTTP {response.status_code}: {_detail(body, response.reason_phrase)}"


@dataclass
class Client:
    """An `openai.OpenAI` client and the record of its attempts."""

    openai: Any
    attempts: Attempts


def create(client: Client | Any, request: dict, settings: LLMSettings, usage: Usage):
    """`chat.completions.create(**request)`: the client retries transient failures;
    what it finally raises becomes an EvolverFailed naming every attempt."""
    import openai

    api, attempts = (client.openai, client.attempts) if isinstance(client, Client) else (client, Attempts())
    first = len(attempts.outcomes)
    try:
        response = api.chat.completions.create(**request)
    except openai.OpenAIError as exc:
        raise EvolverFailed(_failure(exc, attempts.outcomes[first:], settings.max_retries)) from None
    finally:
        usage.requests += max(len(attempts.outcomes) - first, 1)
    usage.add(getattr(response, "usage", None))
    return response


def _failure(exc, outcomes: list[str], max_retries: int) -> str:
    """The message of a request the client gave up on (or was refused)."""
    import openai

    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    if isinstance(exc, openai.APITimeoutError):
        last = "the request timed out"
    elif isinstance(exc, openai.APIConnectionError):
        last = f"connection failed ({exc.__cause__ or exc})"
    elif status is not None:
        last = f"HTTP {status}: {_detail(getattr(exc, 'body', None), getattr(exc, 'message', exc))}"
    else:
        last = f"{type(exc).__name__}: {exc}"
    retried = status in RETRY_STATUSES or (status or 0) >= 500 or isinstance(exc, openai.APIConnectionError)
    if not retried:  # the client did not retry it (401, 404, a malformed response): the endpoint refused
        return _refusal_message(last, exc)
    tried = [*outcomes[:-1], last]  # the exception says best how the last attempt ended
    return (f"the model endpoint failed {len(tried)} time(s) in a row, giving up (max_retries={max_retries}): "
            + "; ".join(f"attempt {i}: {what}" for i, what in enumerate(tried, 1)))


def _detail(body, fallback) -> str:
    """The server's own message from an error body, else `fallback`."""
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("message") or (error.get("message") if isinstance(error, dict) else None)
        if message:
            return str(message)[:300]
    return str(body if isinstance(body, str) and body.strip() else fallback)[:300]


def _refusal_message(what: str, exc) -> str:
    import openai

    hint = ""
    if isinstance(exc, openai.AuthenticationError):
        hint = " (the endpoint refused the API key; check the variable named by evolver.openai.api_key_env)"
    elif isinstance(exc, openai.NotFoundError):
        hint = " (unknown model or wrong base URL; an OpenAI-compatible base URL usually ends in /v1)"
    elif isinstance(exc, openai.BadRequestError):
        hint = " (if the server does not support structured output, set evolver.openai.response_format: json_object)"
    return f"the model endpoint refused the request: {what}{hint}"


# -- JSON answers ----------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```\s*$", re.S)


def parse_json_content(text: str | None):
    """The JSON value in a model's answer; tolerates a ```json fence around it.
    Raises ValueError with a precise message (line and column) otherwise."""
    if text is None or not text.strip():
        raise ValueError("the answer was empty")
    body = text.strip()
    match = _FENCE.match(body)
    if match:
        body = match.group(1)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def response_format(settings_or_kind, schema: dict, name: str) -> dict | None:
    kind = settings_or_kind.response_format if isinstance(settings_or_kind, LLMSettings) else settings_or_kind
    if kind == "none":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    # `$schema`/`$id` are noise to the endpoint; strict mode would forbid our if/then.
    clean = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": clean, "strict": False}}


@dataclass
class JSONAnswer:
    data: object
    usage: Usage
    attempts: int  # answers asked for (1, or 2 after a repair)
    raw: str


def chat_json(client, model: str, messages: list[dict], schema: dict | None = None, *,
              settings: LLMSettings | None = None, schema_name: str = "answer", validate=None,
              repair: bool = True, repair_budget: int = 6000, usage: Usage | None = None,
              extra: dict | None = None) -> JSONAnswer:
    """Ask for a JSON answer and get it parsed and valid, or EvolverFailed.

    `validate(data) -> [error strings]` checks the parsed answer (e.g. against a JSON
    Schema). An answer that is not JSON or does not validate gets one repair round:
    the exact errors are fed back and the model answers again. `repair_budget`
    bounds the characters that repair round adds to the conversation. `extra`
    request fields (a `seed`) go with every request.
    """
    settings = settings or LLMSettings(model=model, base_url=None, api_key_env="OPENAI_API_KEY")
    usage = usage if usage is not None else Usage()
    request: dict = {"model": model, "messages": list(messages), "max_tokens": settings.max_output_tokens,
                     **(extra or {})}
    if settings.temperature is not None:
        request["temperature"] = settings.temperature
    fmt = response_format(settings, schema, schema_name) if schema is not None else None
    if fmt is not None:
        request["response_format"] = fmt
    problems: list[str] = []
    rounds = 2 if repair else 1
    content: str | None = None
    for round_no in range(1, rounds + 1):
        response = create(client, request, settings, usage)
        content = _content(response)
        problems = _check(content, validate)
        if problems and _finish_reason(response) == "length":
            problems.append(f"the answer was cut off at max_output_tokens={settings.max_output_tokens} "
                            "(raise evolver.openai.max_output_tokens, or ask for a smaller change)")
        if not problems:
            return JSONAnswer(parse_json_content(content), usage, round_no, content or "")
        if round_no < rounds:
            request["messages"] = list(messages) + repair_messages(content, problems, repair_budget)
    what = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
    retried = "one repair retry" if repair else "no repair"
    raise EvolverFailed(f"the model's answer was unusable after {rounds} attempt(s) ({retried}): {what}")


def _content(response) -> str | None:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return None
    message = choices[0].message
    return getattr(message, "content", None) or getattr(message, "refusal", None)


def _finish_reason(response) -> str | None:
    choices = getattr(response, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None


def _check(content, validate) -> list[str]:
    try:
        data = parse_json_content(content)
    except ValueError as exc:
        return [str(exc)]
    return list(validate(data)) if validate else []


def repair_messages(bad_answer: str | None, problems: list[str], budget: int) -> list[dict]:
    """The two messages of a repair round, within `budget` characters."""
    errors = "\n".join(f"- {p}" for p in problems)
    instruction = (
        "Your previous answer could not be used:\n{errors}\n"
        "Answer again with only the corrected JSON object (no prose, no code fence), "
        "following the schema exactly."
    )
    errors = _clip(errors, max(200, budget // 2))
    user = instruction.format(errors=errors)
    room = max(0, budget - len(user))
    return [{"role": "assistant", "content": _clip(bad_answer or "", room)}, {"role": "user", "content": user}]


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit < 60:
        return text[:limit]
    marker = f"\n[... truncated: {len(text) - limit} more characters]"
    keep = max(0, limit - len(marker) - 10)  # a little slack: the marker's number may grow
    return text[:keep] + f"\n[... truncated: {len(text) - keep} more characters]"


def schema_validator(name: str):
    """`validate` for chat_json: an aevolve schema's errors as 'pointer: message' strings."""
    from aevolve._state import schemas

    def validate(data) -> list[str]:
        return [f"{issue.pointer or '/'}: {issue.message}" for issue in schemas.errors(name, data)]

    return validate
