"""Which path names are unsafe in a state: the one home of the rule.

Modelled on git's `verify_path` and fsck (read-cache.c, path.c, utf8.c): a name
git or a checkout on Windows or macOS would read as `.git` or as a git control
file, `..`, `.`, empty components, absolute paths, backslashes, NUL and control
characters. On top of git: zero-width and bidi-override characters anywhere
(a name that looks like another: "Trojan source"), bytes that are not UTF-8,
names too long for a file system, and siblings that differ only in case (they
collide on a case-insensitive checkout). The policy, validate and the server
hook all ask here, so a name refused in one place is refused in every one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

GITLINK = 0o160000  # a submodule's entry in a tree: a commit of another repository

MAX_PATH_BYTES = 4096  # Linux's PATH_MAX: no checkout could hold a longer path
MAX_NAME_BYTES = 255  # NAME_MAX of ext4, APFS, NTFS

# What git's is_hfs_dotgit skips (utf8.c next_hfs_char): HFS+ ignores these in names.
_HFS_IGNORED = re.compile("[\u200c\u200d\u200e\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
# Invisible or reordering characters: zero-width, joiners, bidi embeddings, overrides,
# isolates and marks (CVE-2021-42574), the BOM, and HFS's ignored ones.
_INVISIBLE = re.compile("[\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (0x9b starts an escape too)
_SURROGATE = re.compile("[\ud800-\udfff]")  # bytes that were not UTF-8 (surrogateescape)
# Characters that could make a path unsafe (with a name starting with "." or an empty one);
# most paths have none, and one search over many joined paths says so.
_SUSPECT = re.compile("[~\\\\:\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u202a-\u202e"
                      "\u2060-\u2064\u2066-\u206f\ufeff\ud800-\udfff]")
# git's is_ntfs_dot_str: each control file and the hash prefix of its NTFS fall-back short name
_CONTROL_FILES = {"gitmodules": "gi7eba", "gitattributes": "gi7d29", "gitignore": "gi250a"}
_SHORT_NAME = re.compile(r"([^~]{0,6})~[1-9][0-9]*")


def unsafe_reason(path) -> str | None:
    """Why `path` may not be a path of the state (None: it is a clean relative path)."""
    if not isinstance(path, str) or not path:
        return "a path must be a non-empty string"
    if len(path) <= MAX_NAME_BYTES // 4 and not _suspect(path):
        return None  # the common case: nothing to look at more closely
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "absolute paths are not allowed"
    found = _char_reason(path)
    if found:
        return found
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes: no checkout could hold it"
    for name in path.split("/"):
        found = _name_reason(name)
        if found:
            return found
    return None


def unsafe_paths(paths: list[str]) -> list[tuple[str, str]]:
    """(path, why) for each unsafe path of `paths`; a state of clean paths costs one search."""
    if paths and max(map(len, paths)) <= MAX_NAME_BYTES // 4 and not _suspect("/".join(paths)):
        return []  # joined by "/" they are one path: a suspect part of any one shows in it
    return [(p, why) for p in paths if (why := unsafe_reason(p))]


def _suspect(path: str) -> bool:
    """Might `path` be unsafe? (False: it certainly is not.) Substring tests and one
    character search, all in C: a 10,000-skill state costs about a millisecond."""
    if not path or path[0] in "./" or path[-1] == "/" or "/." in path or "//" in path:
        return True
    if path.isascii():  # ASCII controls are exactly what is not printable
        return not path.isprintable() or "~" in path or "\\" in path or ":" in path
    return _SUSPECT.search(path) is not None


def _char_reason(path: str) -> str | None:
    if "\\" in path:
        return "backslashes are not allowed in paths (a folder separator on Windows)"
    if _CONTROL.search(path):
        return "NUL and control characters are not allowed in paths"
    invisible = _INVISIBLE.search(path)
    if invisible:
        what = "'.git' on macOS, whose HFS+ ignores it" if _hfs_alias(path, ".git") \
            else "a name that looks like another"
        return (f"invisible or bidi-override character U+{ord(invisible.group()):04X} in the path "
                f"(it makes {what}); rename it without zero-width or direction characters")
    if _SURROGATE.search(path):
        return "the path is not valid UTF-8; rename it with UTF-8 characters"
    return None


def _name_reason(name: str) -> str | None:
    """Why one component of a path is unsafe (None: it is not)."""
    if name in ("", "."):
        return "empty or '.' path components are not allowed"
    if name == "..":
        return "'..' may not appear in a path"
    if name.lower() == ".git":
        return "'.git' may not appear in a path (any case): it is git's own folder"
    if _ntfs_alias(name, ".git") or _ntfs_alias(name, "git~1"):
        return (f"{shown(name)} is '.git' on Windows, which drops trailing dots and spaces and reads "
                "'git~1' as '.git': it is git's own folder")
    for file, short in _CONTROL_FILES.items():
        if name.lower() != "." + file and _ntfs_control_file(name, file, short):
            return (f"{shown(name)} is .{file} on Windows (a trailing dot or space, or a short name): "
                    "a git control file, which changes how git reads the state")
    if len(name) > MAX_NAME_BYTES // 4 and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"the name {shown(name[:40])}... is longer than {MAX_NAME_BYTES} bytes, the most a file system allows"
    return None


def _only_dots_and_spaces(rest: str) -> bool:
    """What NTFS ignores after a name: trailing dots and spaces, and a ':' stream suffix."""
    return rest.partition(":")[0].strip(". ") == ""


def _ntfs_alias(name: str, stem: str) -> bool:
    """git's is_ntfs_dotgit: `stem` in any case, then only what NTFS drops."""
    return name[:len(stem)].lower() == stem and _only_dots_and_spaces(name[len(stem):])


def _ntfs_control_file(name: str, file: str, short: str) -> bool:
    """git's is_ntfs_dot_str: `.file` with what NTFS drops, its 8.3 short name
    (`gitmod~1` .. `~4`), or a fall-back short name (`gi7eba~1`)."""
    low = name.lower()
    if low.startswith("." + file):
        return _only_dots_and_spaces(name[len(file) + 1:])
    if low[:6] == file[:6] and low[6:7] == "~" and low[7:8] in ("1", "2", "3", "4") and len(low) >= 8:
        return _only_dots_and_spaces(name[8:])
    match = _SHORT_NAME.match(low)
    if match is None or match.end() != 8 or not short.startswith(match.group(1)):
        return False
    return _only_dots_and_spaces(name[8:])


def _hfs_alias(path: str, stem: str) -> bool:
    """git's is_hfs_dotgit: a component equal to `stem` once HFS+'s ignored characters are dropped."""
    return any(_HFS_IGNORED.sub("", name).lower() == stem for name in path.split("/"))


def shown(path: str) -> str:
    """`path` quoted, with every character a terminal would not show as itself
    (controls, zero-width, bidi, undecodable bytes) escaped as in Python."""
    out = []
    for ch in path:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def fold(name: str) -> str:
    """The name as a case-insensitive file system compares it (macOS also normalizes Unicode)."""
    return unicodedata.normalize("NFC", name).lower()


def case_collisions(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(first, second) for each two files or folders of `paths` that differ only in
    case or Unicode normalization: one checkout on macOS or Windows holds only one."""
    paths = list(paths)
    if not _may_collide(paths):
        return []
    exact: set[str] = set()  # names (files and folders) already looked at
    folded: dict[str, str] = {}
    out: dict[tuple[str, str], None] = {}
    for path in paths:
        cut = path.find("/")
        while True:
            name = path if cut < 0 else path[:cut]
            if name not in exact:  # folders repeat: fold each only once
                exact.add(name)
                first = folded.setdefault(fold(name), name)
                if first != name:
                    out[(first, name)] = None
                    break  # below a colliding folder every name collides too
            if cut < 0:
                break
            cut = path.find("/", cut + 1)
    return list(out)


def _may_collide(paths: list[str]) -> bool:
    """Could two names differ only in case? Folds every file and folder name in one
    pass over one string (the common answer, no, then costs no loop per name)."""
    names = set(paths)
    for folder in {p.rpartition("/")[0] for p in paths}:
        while folder and folder not in names:
            names.add(folder)
            folder = folder.rpartition("/")[0]
    names.discard("")
    folded = unicodedata.normalize("NFC", "\0".join(names)).lower().split("\0")
    return len(set(folded)) != len(names)


def gitlinks(state) -> frozenset[str]:
    """The submodule paths of a state: `State.gitlinks`, and entries with the gitlink
    mode among its files (a state built from a pygit2 index)."""
    return frozenset(state.gitlinks).union(p for p, f in state.files.items() if f.mode == GITLINK)
