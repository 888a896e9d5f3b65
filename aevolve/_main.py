"""The `aevolve` command: start what the command will wait for, then the command line.

See `_git/early.py`: a validate of the work tree gets its `git status` running
while click and the command are imported.
"""

from __future__ import annotations

import sys


def main() -> None:
    from aevolve._git import early

    early.prefetch(sys.argv[1:])
    try:
        from aevolve.cli import main as run

        run()
    finally:
        early.discard()
