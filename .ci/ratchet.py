#!/usr/bin/env python3
"""The mypy ratchet: type errors per file may only go down.

Runs mypy (configured in pyproject.toml), counts errors per file and compares
them with `.ci/mypy-ratchet.txt`. Fails when a file has more errors than
recorded, or errors in a file not listed. `--update` rewrites the file with
the current counts, and refuses while any count went up, so it only shrinks
(the first `--update`, with no file yet, records where the code stands).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATCHET = ROOT / ".ci" / "mypy-ratchet.txt"
HEADER = (
    "# mypy errors per file: may only go down (python3 .ci/ratchet.py --update after fixing some).\n"
    "# A file not listed must have none.\n"
)
_ERROR = re.compile(r"^(?P<path>[^:\s][^:]*\.pyi?):\d+(?::\d+)?: error: ")


@dataclass(frozen=True)
class Row:
    path: str
    recorded: int
    now: int

    @property
    def worse(self) -> bool:
        return self.now > self.recorded


def count_errors(mypy_output: str) -> dict[str, int]:
    """Errors per file in mypy's plain output (one `path:line: error: ...` line each)."""
    counts: dict[str, int] = {}
    for line in mypy_output.splitlines():
        match = _ERROR.match(line)
        if match:
            path = match["path"].replace("\\", "/")
            counts[path] = counts.get(path, 0) + 1
    return counts


def read_ratchet(text: str) -> dict[str, int]:
    """`path count` per line; blank lines and `#` comments ignored."""
    recorded: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            path, count = line.rsplit(None, 1)
            recorded[path] = int(count)
        except ValueError:
            raise SystemExit(f"{RATCHET.name}:{number}: expected `path count`, got {raw!r}") from None
    return recorded


def render_ratchet(counts: dict[str, int]) -> str:
    width = max((len(p) for p in counts), default=0)
    rows = "".join(f"{path:<{width}}  {count}\n" for path, count in sorted(counts.items()) if count)
    return HEADER + rows


def compare(recorded: dict[str, int], now: dict[str, int]) -> list[Row]:
    paths = sorted(set(recorded) | set(now))
    return [Row(p, recorded.get(p, 0), now.get(p, 0)) for p in paths]


def table(rows: list[Row]) -> str:
    width = max([len(r.path) for r in rows] + [4])
    lines = [f"{'file':<{width}}  recorded   now", f"{'-' * width}  --------  ----"]
    for row in rows:
        mark = "  UP" if row.worse else ("  down" if row.now < row.recorded else "")
        lines.append(f"{row.path:<{width}}  {row.recorded:>8}  {row.now:>4}{mark}")
    total_recorded = sum(r.recorded for r in rows)
    total_now = sum(r.now for r in rows)
    lines.append(f"{'total':<{width}}  {total_recorded:>8}  {total_now:>4}")
    return "\n".join(lines)


def run_mypy() -> str:
    # plain one-line-per-error output whatever the user's config says
    argv = [sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary", "--show-column-numbers"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not count_errors(proc.stdout)):
        # 2 = mypy could not check at all (syntax error, bad config): never a pass
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"ratchet: mypy failed to run (exit {proc.returncode})")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="record the current counts (only if none went up)")
    args = parser.parse_args(argv)

    recorded = read_ratchet(RATCHET.read_text()) if RATCHET.exists() else {}
    now = count_errors(run_mypy())
    rows = compare(recorded, now)
    print(table([r for r in rows if r.recorded or r.now]))
    worse = [r for r in rows if r.worse]
    if worse and not (args.update and not RATCHET.exists()):  # the first --update starts the ratchet
        for row in worse:
            print(f"ratchet: {row.path}: {row.now} mypy error(s), {row.recorded} allowed", file=sys.stderr)
        print("ratchet: fix the new type errors (run `mypy` to see them); the ratchet only goes down",
              file=sys.stderr)
        return 1
    if args.update:
        RATCHET.write_text(render_ratchet(now))
        print(f"ratchet: recorded {sum(now.values())} error(s) in {len(now)} file(s) in {RATCHET.name}")
    elif any(r.now < r.recorded for r in rows):
        print("ratchet: fewer errors than recorded: run `python3 .ci/ratchet.py --update` to lock them in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
