"""`aevolve status`: where the state repository stands, in a few facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from aevolve._git.repo import MAIN, Repo
from aevolve._state.model import State


@dataclass
class Status:
    repo: str
    main: str | None
    main_subject: str | None
    branches: list[dict] = field(default_factory=list)  # open evolution branches
    worktree_changes: list[str] | None = None  # None for a bare repository
    valid: bool | None = None
    errors: int = 0
    warnings: int = 0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def status(repo: Repo) -> Status:
    from aevolve._state.validate import validate_state

    main = repo.ref_target(MAIN)
    info = Status(repo=str(repo.workdir or repo.git_dir), main=main,
                  main_subject=repo.subject(main, 1000) if main else None)
    main_tree = repo.resolve(main).tree if main else None
    prefix = "refs/heads/evolve/"
    for name, target in sorted(repo.refs(prefix).items()):
        merged = main is not None and repo.is_ancestor(target, main)
        if not merged:
            info.branches.append({"branch": name[len("refs/heads/"):], "commit": target,
                                  "subject": repo.subject(target, 1000)})
    state = State.from_folder(repo.workdir, repo) if repo.workdir else (State.from_tree(repo, main) if main else None)
    if repo.workdir is not None and state is not None:
        old = {f.path: f.oid for f in repo.list_files(main_tree)} if main_tree is not None else {}
        new = {p: f.oid for p, f in state.files.items()}
        info.worktree_changes = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    if state is not None:
        report = validate_state(state, repo)
        info.valid, info.errors, info.warnings = report.ok, len(report.errors), len(report.warnings)
    return info
