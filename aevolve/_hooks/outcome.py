"""What a hook check answers, and which branch is main: shared by the client checks
and the server's pre-receive (kept apart from installing and running them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HookOutcome:
    code: int = 0
    messages: list[str] = field(default_factory=list)  # for stderr, one line each

    @property
    def ok(self) -> bool:
        return self.code == 0


def main_branch_ref(cfg: dict) -> str:
    """The full ref of the configured main branch (aevolve.yaml `main`)."""
    name = cfg.get("main") or "main"
    return name if name.startswith("refs/") else f"refs/heads/{name}"
