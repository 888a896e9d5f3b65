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

Every request is bounded in time and size by the transport under the client
(`_Guard`): `timeout` is a total wall-clock deadline per attempt (connect,
headers and a body that drips forever alike), an optional `total` bounds the
whole call with its retries, and at most `max_response_bytes` of a response are
read. A watchdog shuts the attempt's socket down at its deadline, so a blocked
read ends at once and no thread is left waiting.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aevolve import _config as config_mod
from aevolve._errors import EvolverFailed, UsageError
from aevolve._json import loads

# Standard variables of the OpenAI SDKs, read when aevolve.yaml is silent.
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_MODEL = "OPENAI_MODEL"
DEFAULT_MODEL = "gpt-4.1-mini"
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx: what the client retries
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # an answer of max_output_tokens is a few hundred KB at most
# The openai client's backoff (its _constants): the longest it may wait before retry n is
# min(INITIAL * 2**n, MAX), or a Retry-After of at most RETRY_AFTER_MAX seconds.
_BACKOFF_INITIAL, _BACKOFF_MAX, _RETRY_AFTER_MAX = 0.5, 8.0, 120.0


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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # of one HTTP response; more is refused

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
        prompt = _count(_field(usage, "prompt_tokens"))
        completion = _count(_field(usage, "completion_tokens"))
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += _count(_field(usage, "total_tokens")) or prompt + completion

    def to_dict(self) -> dict:
        return asdict(self)


def _field(value, name: str):
    """`value[name]` or `value.name`: the client does not validate a response's shape."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


def _count(value) -> int:
    """A token count as the endpoint reported it; anything but a plain count is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# -- settings -------------------------------------------------------------------------

_KEYS = ("model", "base_url", "api_key_env", "temperature", "max_output_tokens", "timeout", "max_retries",
         "base_delay", "max_delay", "response_format", "max_response_bytes")


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
        max_response_bytes=_number(pick("max_response_bytes", default=DEFAULT_MAX_RESPONSE_BYTES),
                                   "max_response_bytes", int, 1024),
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
        if isinstance(value, bool):
            raise TypeError(value)
        number = kind(value)
        if number != number or number in (float("inf"), float("-inf")):  # NaN never compares
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"openai {name} must be a finite number, not {value!r}") from None
    if number < minimum:
        raise UsageError(f"openai {name} must be at least {minimum}, not {value!r}")
    return number


def make_client(cfg: LLMSettings | dict, *, total: float | None = None) -> Client:
    """An `openai.OpenAI` client for `cfg` (settings or an aevolve.yaml dict) that
    retries transient failures itself, `max_retries` times. Each attempt is bounded by
    `timeout` seconds in all and `max_response_bytes`; `total` seconds from now, when
    given, bound every request made through this client, retries and waits included."""
    settings = cfg if isinstance(cfg, LLMSettings) else resolve_settings(cfg)
    key = settings.require_key()
    import httpx2 as httpx  # the openai client's own HTTP library
    import openai

    attempts = Attempts()
    deadline = None if total is None else time.monotonic() + total
    # a fresh connection per attempt: a watchdog never shuts a pooled one
    guard: Any = _Guard(httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)),
                        settings, attempts, deadline, total)
    http = openai.DefaultHttpxClient(transport=guard,
                                     event_hooks={"request": [attempts.sent], "response": [attempts.answered]})
    client = openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout,
                           max_retries=settings.max_retries, http_client=http)
    return Client(client, attempts)


# -- bounded attempts --------------------------------------------------------------------


@functools.cache
def _stop_error() -> type[Exception]:
    """The exception that ends a call at once: an `openai.OpenAIError`, which the client
    passes through without retrying (its retries would outlive the deadline)."""
    import openai

    class Stop(openai.OpenAIError):
        pass

    return Stop


def _endpoint(url) -> str:
    """Where a request went, without credentials or query (an httpx URL)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _shut(sock) -> None:
    try:  # on the descriptor itself (an SSL socket included): a blocked recv returns at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watch:
    """One attempt's deadline. At `at` the attempt's socket is shut down, which ends a
    read blocked in another thread (a drip, a silent server) at once; the timer thread
    ends when the attempt does."""

    def __init__(self, at: float, trace=None) -> None:
        self.at = at
        self.expired = False
        self._done = False
        self._sock = None
        self._chained = trace
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, at - time.monotonic()), self.expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, name: str, info: dict) -> None:
        """httpcore's `trace` extension: every new (or TLS-wrapped) connection passes here."""
        if self._chained is not None:
            self._chained(name, info)
        stream = info.get("return_value") if name.endswith(".complete") else None
        get = getattr(stream, "get_extra_info", None)
        sock = get("socket") if callable(get) else None
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def past(self) -> bool:
        return self.expired or time.monotonic() >= self.at

    def stop(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class _Guard:
    """The transport under the openai client: each attempt gets a total deadline and a
    size bound, and the call as a whole the `total` deadline."""

    def __init__(self, inner, settings: LLMSettings, attempts: Attempts, deadline: float | None,
                 total: float | None) -> None:
        self.inner, self.settings, self.attempts = inner, settings, attempts
        self.deadline, self.total = deadline, total

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.inner.__exit__(*exc)

    def close(self) -> None:
        self.inner.close()

    def handle_request(self, request):
        import httpx2 as httpx

        now = time.monotonic()
        where = _endpoint(request.url)
        if self.deadline is not None and now >= self.deadline:
            raise self._out_of_time(where)
        at = now + self.settings.timeout
        if self.deadline is not None:
            at = min(at, self.deadline)
        left = at - now
        timeouts = request.extensions.get("timeout") or {}
        request.extensions = {**request.extensions,
                              "timeout": {k: min(v, left) if v is not None else left
                                          for k, v in {"connect": None, "read": None, "write": None, "pool": None,
                                                       **timeouts}.items()}}
        request.headers["Accept-Encoding"] = "identity"  # so that the size bound is the size read
        watch = _Watch(at, request.extensions.get("trace"))
        request.extensions["trace"] = watch.trace
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError:
            watch.stop()
            if watch.expired:
                raise self._expired(request, watch, where) from None
            raise
        except BaseException:
            watch.stop()
            raise
        try:
            self._check_head(response, where)
        except BaseException:
            watch.stop()
            response.close()
            raise
        response.stream = self._body(response.stream, watch, request, where)
        if (response.status_code >= 400 and _retries_left(request, self.settings)
                and not self._room_for_retry(request, response.headers, time.monotonic())):
            response.headers["x-should-retry"] = "false"  # the client obeys it: no wait, no retry
            self.attempts.gave_up = self._no_room(response.headers)
        return response

    def _check_head(self, response, where: str) -> None:
        limit = self.settings.max_response_bytes
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _stop_error()(f"the model endpoint {where} answered with Content-Encoding: {encoding[:40]} "
                                "although aevolve asked for none (Accept-Encoding: identity); refused, "
                                "so that max_response_bytes bounds what is read")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise self._too_large(where, f"it announced {int(length)} bytes")

    def _body(self, inner, watch: _Watch, request, where: str):
        import httpx2 as httpx

        guard = self

        class Body(httpx.SyncByteStream):
            def __iter__(self):
                read = 0
                try:
                    for chunk in inner:
                        read += len(chunk)
                        if read > guard.settings.max_response_bytes:
                            raise guard._too_large(where, f"stopped after {read} bytes")
                        if watch.past():
                            watch.expire()
                            raise guard._expired(request, watch, where)
                        yield chunk
                except httpx.TransportError:
                    if watch.expired:
                        raise guard._expired(request, watch, where) from None
                    raise
                finally:
                    watch.stop()

            def close(self) -> None:
                watch.stop()
                inner.close()

        return Body()

    # -- how an attempt ends -----------------------------------------------------------
    def _expired(self, request, watch: _Watch, where: str) -> Exception:
        """The attempt ran out of time: a timeout the client may retry, or the end of the
        call when it was the call's own deadline, or that deadline leaves no room for a retry."""
        import httpx2 as httpx

        timeout = self.settings.timeout
        by_total = self.deadline is not None and watch.at >= self.deadline
        self.attempts.note(f"timed out: no complete answer within {'evolver.timeout' if by_total else 'timeout'}="
                           f"{self.total if by_total else timeout:g}s")
        if by_total or (_retries_left(request, self.settings)
                        and not self._room_for_retry(request, None, time.monotonic())):
            return self._out_of_time(where)
        return httpx.ReadTimeout(f"no complete answer from {where} within {timeout:g}s", request=request)

    def _out_of_time(self, where: str) -> Exception:
        return _stop_error()(f"no answer from the model endpoint {where} within evolver.timeout={self.total:g}s "
                             "(every attempt, retry and wait included); raise evolver.timeout in aevolve.yaml, "
                             "or lower evolver.openai.timeout or max_retries")

    def _too_large(self, where: str, what: str) -> Exception:
        limit = self.settings.max_response_bytes
        self.attempts.note(f"response larger than max_response_bytes={limit}")
        return _stop_error()(f"the response of the model endpoint {where} is larger than "
                             f"max_response_bytes={limit} ({what}); refused without reading the rest "
                             "(raise evolver.openai.max_response_bytes for an endpoint you trust)")

    def _room_for_retry(self, request, headers, now: float) -> bool:
        """Would the client's wait and one more attempt still end before the call's deadline?"""
        if self.deadline is None:
            return True
        return now + _next_wait(request, headers) < self.deadline

    def _no_room(self, headers) -> str:
        return (f"not retried: evolver.timeout={self.total:g}s leaves no room for the client's wait "
                f"({_retry_after(headers) or 'its backoff'}) and another attempt")


def _retries_left(request, settings: LLMSettings) -> bool:
    try:
        taken = int(request.headers.get("x-stainless-retry-count", "0"))
    except ValueError:
        taken = 0
    return taken < settings.max_retries


def _retry_after(headers) -> str | None:
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name) if headers is not None else None
        if value is not None:
            return f"{name}: {value[:40]}"
    return None


def _next_wait(request, headers) -> float:
    """The longest the openai client may sleep before its next attempt (an upper bound:
    its jitter only shortens it)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            wait = float(value) / divisor
        except ValueError:
            return _RETRY_AFTER_MAX  # an HTTP date: assume the longest wait the client honours
        if 0 < wait <= _RETRY_AFTER_MAX:
            return wait
        break
    try:
        retries = int(request.headers.get("x-stainless-retry-count", "0"))
    except ValueError:
        retries = 0
    return min(_BACKOFF_INITIAL * 2.0 ** min(retries, 32), _BACKOFF_MAX)


# -- requests --------------------------------------------------------------------------


class Attempts:
    """How each HTTP request the client sent ended, its own retries included.

    The client hides its retries; a usage count and an error that lists every
    failed attempt need them, so the hooks only record, they never decide."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.gave_up: str | None = None  # why aevolve stopped the client's retries early

    def sent(self, request) -> None:
        self.outcomes.append("no answer (timed out or the connection failed)")

    def note(self, outcome: str) -> None:
        """How the current attempt ended, when the transport knows better than the hooks."""
        if self.outcomes:
            self.outcomes[-1] = outcome

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
    what it finally raises becomes an EvolverFailed naming the endpoint and every attempt."""
    import openai

    api, attempts = (client.openai, client.attempts) if isinstance(client, Client) else (client, Attempts())
    first = len(attempts.outcomes)
    attempts.gave_up = None
    where = _endpoint_of(api)
    try:
        response = api.chat.completions.create(**request)
    except _stop_error() as exc:
        raise EvolverFailed(_listing(str(exc), attempts.outcomes[first:-1])) from None
    except openai.OpenAIError as exc:
        raise EvolverFailed(_failure(exc, attempts.outcomes[first:], settings.max_retries, where,
                                     attempts.gave_up)) from None
    except RecursionError:
        raise EvolverFailed(f"the model endpoint {where} answered JSON nested too deeply to read; "
                            "refused") from None
    except json.JSONDecodeError as exc:
        raise EvolverFailed(f"the model endpoint {where} answered with a body that is not JSON ({exc.msg} at "
                            f"line {exc.lineno} column {exc.colno}); is base_url an OpenAI-compatible API? "
                            "(it usually ends in /v1)") from None
    finally:
        usage.requests += max(len(attempts.outcomes) - first, 1)
    usage.add(getattr(response, "usage", None))
    return response


def _endpoint_of(api) -> str:
    url = getattr(api, "base_url", None)
    try:
        return _endpoint(url) if url is not None else "(unknown)"
    except AttributeError:
        return str(url)


def _listing(message: str, earlier: list[str]) -> str:
    return message + "; before that: " + _attempts(earlier) if earlier else message


def _attempts(outcomes: list[str]) -> str:
    """'attempt 1: X; attempts 2-40: Y': a storm of identical failures is one entry."""
    groups: list[list] = []
    for number, what in enumerate(outcomes, 1):
        if groups and groups[-1][2] == what:
            groups[-1][1] = number
        else:
            groups.append([number, number, what])
    return "; ".join(f"attempt {a}: {what}" if a == b else f"attempts {a}-{b}: {what}" for a, b, what in groups)


def _failure(exc, outcomes: list[str], max_retries: int, where: str = "", gave_up: str | None = None) -> str:
    """The message of a request the client gave up on (or was refused)."""
    import openai

    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    if isinstance(exc, openai.APITimeoutError):
        noted = outcomes[-1] if outcomes and outcomes[-1].startswith("timed out:") else None
        last = noted or "the request timed out"
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
    endpoint = f" {where}" if where else ""
    return (f"the model endpoint{endpoint} failed {len(tried)} time(s) in a row, giving up "
            f"(max_retries={max_retries}{'; ' + gave_up if gave_up else ''}): " + _attempts(tried))


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
        return loads(body)
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
        content, shape = _answer_text(response)
        problems = [shape] if shape else _check(content, validate)
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


def _answer_text(response) -> tuple[str | None, str | None]:
    """(the content of the first choice, None) or (None, what is wrong with the response's shape)."""
    choices = _field(response, "choices")
    if not isinstance(choices, list):
        what = "no choices" if choices is None else f"choices that are a {type(choices).__name__}, not a list"
        return None, f"the response has {what}"
    if not choices:
        return None, "the response has an empty list of choices"
    message = _field(choices[0], "message")
    if message is None or isinstance(message, (str, int, float, list)):
        return None, "the response's first choice has no message object"
    content = _field(message, "content")
    if content is None:
        content = _field(message, "refusal")
    if content is None:
        return None, "the answer was empty (the message content is null)"
    if not isinstance(content, str):
        return None, f"the message content is a {type(content).__name__}, not a string"
    return content, None


def _finish_reason(response) -> str | None:
    choices = _field(response, "choices")
    reason = _field(choices[0], "finish_reason") if isinstance(choices, list) and choices else None
    return reason if isinstance(reason, str) else None


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
