"""`aevolve init`: make a folder a state repository, adopting what is there.

Adoption only adds: missing layout folders, a commented aevolve.yaml, a
manifest when there is none. Existing files are never rewritten, and a second
run finds nothing to add and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aevolve import _config as config_mod
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

    from aevolve._state.gitsetup import configure_repo

    result.added += configure_repo(repo)
    result.commit = _commit_adoption(repo, result.added)
    return result


def _commit_adoption(repo: Repo, added: list[str]) -> str | None:
    """The first commit on main (everything), or a commit of what init added."""
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
        parents = []
        message = "aevolve: adopt agent state\n"
        if not repo.head_is_unborn:  # an existing history on another branch
            head = str(repo.resolve("HEAD").id)
            parents = [head]
            tree = repo.build_tree(repo.tree(head), {p: (root / p).read_bytes() for p in added})
            message = "aevolve: init\n"
        commit = repo.commit(tree, parents, message)
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
