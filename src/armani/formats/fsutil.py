"""Writing files and folders so that nothing is lost when a process dies half-way.

- `atomic_write_text`: a file written beside its target and renamed over it.
- `staging_dir` + `install_dir`: a folder filled beside its target, then swapped in. On
  Linux the swap is one `renameat2(RENAME_EXCHANGE)` call, so the target is always either the
  complete old or the complete new folder, even under SIGKILL; elsewhere the old folder is
  first renamed to a trash name, which `recover` puts back if the process died before the
  new one was renamed in.
- `recover`: at the start of a write, puts back a target lost in that window and removes the
  staging and trash folders earlier runs left behind.
- `drop_staging`: removes one staging folder its writer gives up on.
- `remove_staging`: removes the staging folders this process made and never installed. A
  signal can land between a folder's creation and the cleanup block that owns it; the CLI
  calls this when it stops on SIGTERM or Ctrl-C, so nothing is left even then.

Everything created here follows the umask (tempfile's own 0700/0600 do not).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
import uuid
from pathlib import Path

STAGING = ".staging-"   # <target>.staging-XXXX: being filled
TRASH = ".trash-"       # <target>.trash-XXXX: an old copy on its way out
_RENAME_EXCHANGE = 2
_LIVE: set[Path] = set()  # staging folders this process made and has not installed yet


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode & ~_umask())
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file through a temporary sibling and a rename: readers see the old or the new
    text, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _chmod(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _siblings(target: Path, tag: str) -> list[Path]:
    return sorted(target.parent.glob(f"{target.name}{tag}*")) if target.parent.is_dir() else []


def recover(target: str | os.PathLike) -> None:
    """Undo what a killed writer of `target` left: a target missing while an old copy waits
    in the trash is put back; leftover staging and trash folders are removed."""
    target = Path(target)
    trash = _siblings(target, TRASH)
    if not target.exists() and trash:
        newest = max(trash, key=lambda p: p.stat().st_mtime)
        os.replace(newest, target)
        trash.remove(newest)
    legacy = [p for p in _siblings(target, ".partial-") + [target.with_name(f".{target.name}.old"),
                                                          target.with_name(f"{target.name}.old")]
              + sorted(target.parent.glob(f".{target.name}.????????")) if p.is_dir()] \
        if target.parent.is_dir() else []  # what earlier versions of armani left
    for p in trash + _siblings(target, STAGING) + legacy:
        shutil.rmtree(p, ignore_errors=True)


def staging_dir(target: str | os.PathLike) -> Path:
    """A new empty folder beside `target` to build it in (after `recover`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.with_name(f"{target.name}{STAGING}{uuid.uuid4().hex[:8]}")
    _LIVE.add(tmp)  # named before it exists, so no moment has it on disk and unknown
    tmp.mkdir()
    _chmod(tmp, 0o777)
    return tmp


def drop_staging(tmp: str | os.PathLike) -> None:
    """Remove the staging folder `tmp`, which will not be installed (its writer failed)."""
    tmp = Path(tmp)
    _LIVE.discard(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def remove_staging() -> None:
    """Remove every staging folder this process made and has not installed."""
    while _LIVE:
        drop_staging(next(iter(_LIVE)))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    name = ctypes.util.find_library("c")
    if not name or not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def install_dir(staged: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the finished folder `staged` at `target`, replacing what is there; the old copy is
    deleted only after the new one is in place."""
    staged, target = Path(staged), Path(target)
    _LIVE.discard(staged)
    if not target.exists():
        os.replace(staged, target)
        return target
    if _exchange(staged, target):  # staged now holds the old copy
        shutil.rmtree(staged, ignore_errors=True)
        return target
    trash = target.with_name(f"{target.name}{TRASH}{uuid.uuid4().hex[:8]}")
    os.replace(target, trash)
    os.replace(staged, target)
    shutil.rmtree(trash, ignore_errors=True)
    return target
