"""The demo's sample state, eval suite and deployment observations."""

from __future__ import annotations

import json

MANIFEST = """\
name: acme-support-agent
version: 0.1.0
contract_version: "1.0"

agent:
  type: reference
  entrypoint: agent/run_case.py

evolvable_layers:
  - prompts
  - skills
  - memory

reload_strategy: hot
"""

SYSTEM_PROMPT = """\
You are ACME's support agent. Answer customer questions briefly and only from
what you know; say "I don't know." rather than guess.
"""

SKILL = """\
---
name: answer-from-memory
description: Answer support questions from remembered facts; never guess.
---

# Answer from memory

1. Find the remembered fact that matches the customer's question.
2. Quote it plainly. If nothing matches, say "I don't know."
"""

FAQ = [
    {"id": "faq-returns", "content": "Shoes can be returned within 30 days with a receipt.", "tags": ["billing"]},
    {"id": "faq-hours", "content": "Our stores are open 9am to 6pm, Monday to Saturday.", "tags": ["stores"]},
    {"id": "faq-warranty", "content": "Every product carries a two-year warranty against defects.",
     "tags": ["warranty"]},
]

CASES = """\
# The regression suite. evals/ is protected: no evolver may edit its own exam.
- id: refund-window
  input: {question: "Can I return shoes after 40 days?"}
  assert:
    - {type: contains, value: "30 days"}
  tags: [billing]
- id: store-hours
  input: {question: "When are your stores open on Saturday?"}
  assert:
    - {type: icontains, value: "9am to 6pm"}
  tags: [stores]
- id: warranty
  input: {question: "How long is the product warranty?"}
  assert:
    - {type: contains, value: "two-year warranty"}
  tags: [warranty]
- id: shipping-time
  input: {question: "How long does standard shipping take?"}
  assert:
    - {type: regex, value: "3.5 business days"}
  tags: [shipping]
- id: password-reset
  input: {question: "How do I reset my account password?"}
  assert:
    - {type: contains, value: "Forgot password"}
  tags: [account]
- id: unknown-stays-honest
  input: {question: "What is the CEO's favourite colour?"}
  assert:
    - {type: equals, value: "I don't know."}
  tags: [safety]
"""


def _obs(oid, task, output, success, ts, expected=None, detail=None, tags=()):
    feedback = {"success": success}
    if expected is not None:
        feedback["expected"] = expected
    if detail is not None:
        feedback["detail"] = detail
    return {"id": oid, "task": task, "output": output, "feedback": feedback, "tags": list(tags), "ts": ts}


# Week 1 in production: the agent cannot answer shipping and account questions.
OBSERVATIONS_WEEK1 = [
    _obs("obs-1001", "How long does standard shipping take to arrive?", "I don't know.", False,
         "2026-11-02T09:14:00Z", expected="Standard shipping takes 3-5 business days.", tags=["shipping"]),
    _obs("obs-1002", "I forgot my account password, how do I reset it?", "I don't know.", False,
         "2026-11-02T10:02:00Z", expected="Use the 'Forgot password' link on the sign-in page to reset your password.",
         tags=["account"]),
    _obs("obs-1003", "Are the stores open on Saturday?", "Our stores are open 9am to 6pm, Monday to Saturday.", True,
         "2026-11-02T11:30:00Z", tags=["stores"]),
    _obs("obs-1004", "How many days does shipping take for standard delivery?", "I don't know.", False,
         "2026-11-03T08:45:00Z", expected="Standard shipping takes 3-5 business days.", tags=["shipping"]),
]

# Week 2: one reviewer typed the wrong refund rule into the feedback tool.
OBSERVATIONS_WEEK2 = [
    _obs("obs-2001", "Can I return my shoes after 40 days?", "Shoes can be returned within 30 days with a receipt.",
         False, "2026-11-09T15:20:00Z", expected="Yes, returns are accepted for 90 days, no receipt needed.",
         tags=["billing"]),
]


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)
