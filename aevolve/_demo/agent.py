"""The demo's agent: small, deterministic, pure Python.

It answers a question from its state: the memory record whose words best
match the question, else "I don't
know." The gate runs it once per case with the case input on stdin and the
evaluated state in AEVOLVE_STATE_DIR.
"""

import json
import os
import re
import sys
from pathlib import Path

STOP = {"a", "an", "the", "i", "my", "is", "are", "do", "does", "can", "how", "what", "to", "of", "for", "in", "on",
        "it", "you", "your", "after", "with"}


def words(text):
    return {w for w in re.findall(r"[a-z0-9]+", str(text).lower()) if w not in STOP}


def memory(state):
    for path in sorted((state / "memory").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                content = str(record.get("content", ""))
                fields = dict(p.split(": ", 1) for p in content.split(" | ") if ": " in p)
                if "Task" in fields and "Correct answer" in fields:
                    # a lesson learned from a failed task: keyed by that task's words
                    yield words(fields["Task"]), fields["Correct answer"]
                elif content:
                    yield words(content), content


def answer(question, state):
    asked = words(question)
    best, best_score = None, 0
    for keys, text in memory(state):
        score = len(asked & keys)
        if score and score >= best_score:  # later files win ties: lessons override the FAQ
            best, best_score = text, score
    return best if best_score >= 2 else "I don't know."


def main():
    state = Path(os.environ["AEVOLVE_STATE_DIR"])
    case = json.loads(sys.stdin.read() or "{}")
    question = case.get("question", "") if isinstance(case, dict) else str(case)
    print(json.dumps({"output": answer(question, state)}))


if __name__ == "__main__":
    main()
