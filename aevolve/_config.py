"""`aevolve.yaml`: aevolve's own settings, with every default in one place."""

from __future__ import annotations

import copy

DEFAULTS: dict = {
    "version": 1,
    "main": "main",
    "gate": {
        "runner": None,
        "timeout": 60,
        "jobs": 4,
        "repeats": 1,
        "cases": "evals/**/*.yaml",
        "allow_empty": False,
        "exam_approvals": 1,
        "max_output_bytes": 1024 * 1024,
        "report_output_bytes": 4096,
        "holdout": None,
        "executor": "local",
        "ray": {
            "address": None,  # RAY_ADDRESS, else a local Ray started for the gate
            "num_cpus": 1,
        },
        "policy": {
            "no_regressions": True,
            "min_improvement": 0.0,
            "significance": 0.05,
            "max_errors": 0,
            "holdout_no_regressions": True,
            "tags": {},
        },
    },
    "evolver": {
        "default": "rules",
        "command": None,
        "timeout": 600,
        "openai": {
            "model": None,  # OPENAI_MODEL, else llm.DEFAULT_MODEL
            "base_url": None,
            "api_key_env": "OPENAI_API_KEY",
            "temperature": 0.2,
            "max_output_tokens": 4000,
            "budget_chars": 60000,
            "timeout": 120,
            "max_retries": 4,
            "max_response_bytes": 8 * 1024 * 1024,
        },
    },
    "protection": {
        "protected": [],
        "max_file_bytes": 256 * 1024,
        "max_proposal_bytes": 1024 * 1024,
        "max_edits": 1000,
    },
    "memory": {
        "shard_bytes": 256 * 1024,  # as protection.max_file_bytes, which caps it anyway
    },
    "observe": {
        "max_bytes": 64 * 1024 * 1024,
        "max_records": 100_000,
    },
    "gc": {
        "keep_trees": 32,
        "max_cache_rows": 5_000,
        "max_age_days": 30,
    },
    "hooks": {
        "rationale_sections": ["Diagnosis", "Evidence"],
        "branch_prefix": "evolve/",
    },
}

# Paths no evolver may touch, whatever aevolve.yaml says: an evolver must not be
# able to edit its own exam or the rules that judge it.
ALWAYS_PROTECTED = (
    "evals/",
    "aevolve.yaml",
    ".gitattributes",
    ".githooks/",
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    ".github/",
)

LAYERS = ("prompts", "skills", "tools", "memory")


def merge(defaults: dict, override: dict) -> dict:
    """Deep-merge `override` onto a copy of `defaults` (unknown keys are kept)."""
    out = copy.deepcopy(defaults)
    for key, value in (override or {}).items():
        if isinstance(out.get(key), dict):
            # a section of the wrong shape (`gate: 5`) keeps its defaults, so every
            # consumer can rely on the shape; validation reports the bad value
            if isinstance(value, dict):
                out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(raw: dict | None) -> dict:
    """The effective configuration: defaults overlaid with the file's values."""
    return merge(DEFAULTS, raw if isinstance(raw, dict) else {})


def protected_paths(config: dict) -> list[str]:
    extra = config.get("protection", {}).get("protected") or []
    return list(dict.fromkeys([*ALWAYS_PROTECTED, *extra]))


def is_protected(path: str, config: dict) -> bool:
    """True when `path` is a protected file or lies under a protected folder."""
    for p in protected_paths(config):
        if p.endswith("/") and (path.startswith(p) or path == p[:-1]):
            return True
        if path == p or path.startswith(p.rstrip("/") + "/"):
            return True
    return False


TEMPLATE = """\
# aevolve.yaml: aevolve's own settings. Protected: no evolver may edit this file.
# Every setting is shown at its default; see docs/configuration.md.
version: 1
main: main                      # the branch that only ever moves to a gated commit

gate:
  runner: null                  # argv of the agent runner, e.g. ["python", "agent/run_case.py"]
  timeout: 60                   # seconds per case run; a run past it is killed and is an error
  jobs: 4                       # case runs in parallel
  repeats: 1                    # runs per case, for non-deterministic agents
  cases: "evals/**/*.yaml"      # where the regression cases live
  allow_empty: false            # no matching case is an error, not an acceptance
  exam_approvals: 1             # signed approvals a maintainer change (exam, agent code) needs
  max_output_bytes: 1048576     # of each run's stdout and of its stderr, kept and judged; the rest is discarded
  report_output_bytes: 4096     # of each output the report keeps as evidence for a case that changed
  holdout: null                 # glob of held-out cases under evals/, never shown to evolvers, e.g. "evals/holdout/**"
  executor: local               # local | ray: where case runs happen (ray needs `pip install aevolve[ray]`)
  ray:
    address: null               # a Ray cluster, e.g. "ray://head:10001"; default: $RAY_ADDRESS, else a local Ray
    num_cpus: 1                 # CPUs one case run reserves on a Ray node
  policy:
    no_regressions: true        # a case that passes on main must pass on the candidate
    min_improvement: 0.0        # aggregate pass-rate gain required to promote
    significance: 0.05          # with repeats: one-sided Fisher exact test level for a regression
    max_errors: 0               # cases that may error without a passing baseline before the gate errors
    holdout_no_regressions: true # a held-out case that passes on main must pass on the candidate
    tags: {}                    # per-tag rules, e.g. {safety: {min_pass_rate: 1.0}}

evolver:
  default: rules                # rules | patch | command | openai
  command: null                 # argv of an external evolver (the `command` evolver)
  timeout: 600                  # seconds an external evolver may run; openai: the whole call, retries included
  openai:
    model: null                 # default: $OPENAI_MODEL, else gpt-4.1-mini
    base_url: null              # any OpenAI-compatible endpoint; default: OPENAI_BASE_URL or OpenAI
    api_key_env: OPENAI_API_KEY # name of the variable that holds the key (never the key itself)
    temperature: 0.2
    max_output_tokens: 4000
    budget_chars: 60000         # how much of the state is shown to the model
    timeout: 120                # seconds in all per request (connect, headers, the whole body)
    max_retries: 4
    max_response_bytes: 8388608 # most bytes read of one answer

protection:
  protected: []                 # paths no evolver may touch, besides evals/ and aevolve.yaml
  max_file_bytes: 262144        # largest file a proposal may write
  max_proposal_bytes: 1048576   # most bytes one proposal may add
  max_edits: 1000               # most edits one proposal may carry

memory:
  shard_bytes: 262144           # appends past this size start a new shard, <name>.0001.jsonl, ... (0: never)

observe:
  max_bytes: 67108864           # largest observations input one `aevolve observe` reads
  max_records: 100000           # most observations one `aevolve observe` takes

gc:
  keep_trees: 32                # materialized gate trees kept in .git/aevolve/trees (newest first)
  max_cache_rows: 5000          # gate results kept in .git/aevolve/cache.sqlite (about 700 bytes each)
  max_age_days: 30              # trees and cached results unused this long are pruned

hooks:
  rationale_sections: [Diagnosis, Evidence]   # what commit-msg requires on evolution branches
  branch_prefix: evolve/
"""
