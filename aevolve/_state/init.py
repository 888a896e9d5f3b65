"""`aevolve init`: make a folder a state repository, adopting what is there.

Adoption only adds: missing layout folders, a commented aevolve.yaml, a
manifest when there is none. Existing files are never rewritten, and a second
run finds nothing to add and changes nothing.

A repository whose `main` already holds an `aevolve.yaml` (a clone of a state
repository) is only configured (drivers, refspecs): a commit there would be an
ungated change of `main` that every hook then refuses. Adoption commits only
on `main` checked out (or an unborn branch, which becomes `main`); history on
another branch is refused with what to do, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aevolve import _config as config_mod
from aevolve._errors import UsageError
from aevolve._git.repo import MAIN, Repo, run_git
from aevolve._state.model import CONFIG_FILE, MANIFEST_FILE

LAYOUT = ("prompts", "skills", "tools", "memory", "evals")
KEEP = ".gitkeep"


@dataclass
class InitResult:
    path: Path
    created_repo: bool = False
    added: list[str] = field(default_factory=list)
    commit: str | None = None
    configured: list[str] = field(default_factory=list)  # "key = value" lines written to .git/config
    existing: bool = False  # main already held a state: only configured, nothing committed

    @property
    def changed(self) -> bool:
        return self.created_repo or bool(self.added) or self.commit is not None


def _manifest_for(folder: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in folder.name.lower()).strip("-") or "agent"
    return (
        f"name: {name}\n"
        "version: 0.1.0\n"
        'contract_version: "1.0"\n'
        "\n"
        "evolvable_layers:\n"
        "  - prompts\n"
        "  - skills\n"
        "  - tools\n"
        "  - memory\n"
    )


def init_repo(path: str | Path = ".") -> InitResult:
    """Make `path` a state repository with a first commit on `main`."""
    root = Path(path).resolve()
    root.mkdir(parents=True, exist_ok=True)
    result = InitResult(path=root)
    if not (root / ".git").exists():
        run_git(["init", "-q", "--initial-branch=main", str(root)])
        result.created_repo = True
    repo = Repo.open(root)
    if _holds_state(repo):
        from aevolve._state.gitsetup import setup

        result.existing = True
        result.configured = setup(repo, attributes=False).config
        return result
    _refuse_other_branch(repo, root)

    wanted = {CONFIG_FILE: config_mod.TEMPLATE, MANIFEST_FILE: _manifest_for(root)}
    for layer in LAYOUT:
        folder = root / layer
        if not folder.exists() or not any(folder.iterdir()):
            wanted[f"{layer}/{KEEP}"] = ""
    for rel, text in wanted.items():
        target = root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            result.added.append(rel)

    from aevolve._state.gitsetup import setup

    report = setup(repo)
    result.added += report.files
    result.configured = report.config
    result.commit = _commit_adoption(repo, result.added)
    return result


def _holds_state(repo: Repo) -> bool:
    """Does `main` already hold a state repository's configuration?"""
    main = repo.ref_target(MAIN)
    return main is not None and CONFIG_FILE in repo.tree(main)


def _refuse_other_branch(repo: Repo, root: Path) -> None:
    """Adoption commits on `main`, checked out here: a commit made beside another checked-out
    branch would leave this checkout behind with files it never committed."""
    if repo.head_is_unborn:
        return  # nothing committed yet: HEAD becomes main
    branch = repo.head_branch()
    if branch == MAIN:
        return
    where = f"branch '{branch.removeprefix('refs/heads/')}'" if branch else "a detached HEAD"
    if repo.ref_target(MAIN) is None:
        todo = (f"rename it (`git branch -m {branch.removeprefix('refs/heads/')} main`)" if branch
                else "create and check out main (`git switch -c main`)")
        raise UsageError(f"{root}: the history is on {where} and there is no main; aevolve keeps the agent's "
                         f"state on main: {todo}, then run `aevolve init` again. Nothing was changed.")
    raise UsageError(f"{root}: {where} is checked out, not main; `aevolve init` commits on main: check it out "
                     "(`git switch main`), then run `aevolve init` again. Nothing was changed.")


def _commit_adoption(repo: Repo, added: list[str]) -> str | None:
    """The first commit on main (everything), or a commit of what init added on the
    checked-out main (`_refuse_other_branch` ruled out any other branch)."""
    root = repo.workdir
    assert root is not None  # init adopts a folder: never a bare repository
    index = repo.index()
    main = repo.ref_target(MAIN)
    if main is None:
        if repo.head_is_unborn:  # also turns an unborn `master` into `main`
            repo.set_head(MAIN)
        index.add_all()
        index.write()
        tree = index.write_tree()
        commit = repo.commit(tree, [], "aevolve: adopt agent state\n")
        repo.create_ref(MAIN, commit)
        return str(commit)
    if not added:
        return None
    tree = repo.build_tree(repo.tree(main), {p: (root / p).read_bytes() for p in added})
    commit = repo.commit(tree, [main], "aevolve: init\n")
    repo.update_ref(MAIN, commit, main)
    if repo.head_branch() == MAIN and not repo.head_is_unborn:
        index.read()
        for p in added:
            index.add(p)
        index.write()
    return str(commit)
