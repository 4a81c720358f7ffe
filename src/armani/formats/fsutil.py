"""Writing files and folders so that nothing is lost when a process dies half-way, nothing of
the user's is removed, and two writers never share a target.

- `atomic_write_text`: a file written beside its target and renamed over it.
- `staging_dir` + `install_dir`: a folder filled beside its target, then swapped in. On
  Linux the swap is one `renameat2(RENAME_EXCHANGE)` call, so the target is always either the
  complete old or the complete new folder, even under SIGKILL; elsewhere the old folder is
  first renamed to a trash name, which `recover` puts back if the process died before the
  new one was renamed in. Each staging folder holds a marker (`MARKER`: the process that made
  it), removed just before it is installed.
- `recover`: at the start of a write, puts back a target lost in that window and removes the
  staging and trash folders earlier runs left behind: only folders that are armani's own (the
  marker of a process that is gone, an old copy of armani output, or an empty folder), never
  a folder that merely has a look-alike name.
- `target_lock`: one writer per target. An exclusive `flock` on `<parent>/.<name>.armani-lock`,
  held while the target is written; a second writer is refused at once (`Busy`). The kernel
  drops the lock when its process dies, so a killed writer leaves no stale lock.
- `check_target` and `output_kind`: a writer replaces only its own kind of output (a dataset,
  a pipeline folder, a run...); anything else at the target is refused.
- `drop_staging`: removes one staging folder its writer gives up on.
- `remove_staging`: removes the staging folders this process made and never installed and
  releases its locks. A signal can land between a folder's creation and the cleanup block that
  owns it; the CLI calls this when it stops on SIGTERM or Ctrl-C, so nothing is left even then.
- `read_capped` and `inside`: bounded reads, and whether a path stays inside a folder (a
  symlink loop is an answer, not an exception).

Everything created here follows the umask (tempfile's own 0700/0600 do not).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

STAGING = ".staging-"   # <target>.staging-XXXX: being filled
TRASH = ".trash-"       # <target>.trash-XXXX: an old copy on its way out
MARKER = ".armani-staging"  # inside a staging folder: {"pid", "host", "target"} of its writer
LOCK = ".armani-lock"   # <parent>/.<target name>.armani-lock: held by the target's writer
_RENAME_EXCHANGE = 2
_LIVE: set[Path] = set()  # staging folders this process made and has not installed yet
_HELD: dict[Path, list] = {}  # targets this process holds the lock of: [count, fd, lock file]


class Busy(UserError):
    """Another process is writing the same target."""


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


# --- bounded reads and paths ---------------------------------------------------------------

class TooLarge(UserError):
    """A file over the size its reader accepts."""


def read_capped(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of `path`, refusing (TooLarge) a file of more than `limit` bytes without
    reading more than that."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{what} {os.fspath(path)} is over the {_size(limit)} this reader accepts")
    return data


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def inside(path: str | os.PathLike, base: str | os.PathLike) -> bool:
    """Whether `path`, its symlinks followed, stays inside `base`. Never raises: a symlink
    loop resolves to a path that then fails to open, which its reader reports as a bad file."""
    try:
        real, root = os.path.realpath(path), os.path.realpath(base)
    except (ValueError, OSError):  # a NUL byte in the name
        return False
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


# --- what a folder is ----------------------------------------------------------------------

# kind -> (the file that makes a folder one, the start of that file's "format")
_FORMAT_FILES = {"dataset": ("dataset.json", "armani-dataset"), "pipeline": ("armani.json", "armani-pipeline/"),
                 "model": ("config.json", "armani-model/"), "tokens": ("tokens.json", "armani-tokens/")}
KIND_NAMES = {"dataset": "an armani dataset", "pipeline": "an armani pipeline folder",
              "model": "an armani model bundle", "tokens": "an armani token folder",
              "run": "an armani training run", "generation": "an `armani generate` folder",
              "recipe": "an armani quickstart or experiment folder"}


def _json_file(path: Path) -> dict | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        doc = json.loads(read_capped(path, 1 << 20))
    except (OSError, ValueError, UserError):
        return None
    return doc if isinstance(doc, dict) else None


def output_kind(path: str | os.PathLike) -> str | None:
    """Which kind of armani output the folder `path` is (a key of `KIND_NAMES`), from the
    file each kind writes; None for anything else."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return None
    for kind, (name, fmt) in _FORMAT_FILES.items():
        doc = _json_file(p / name)
        if doc is not None and str(doc.get("format", "")).startswith(fmt):
            return kind
    cfg = _json_file(p / "config.json")
    if cfg is not None and isinstance(cfg.get("kind"), str) and isinstance(cfg.get("train"), dict):
        return "run"
    gen = _json_file(p / "generation.json")
    if gen is not None and "seed" in gen and "n" in gen:
        return "generation"
    summ = _json_file(p / "summary.json")
    if summ is not None and "settings" in summ and "stage_seconds" in summ:
        return "recipe"
    return None


def describe(path: str | os.PathLike) -> str:
    """What is at `path`, in words, for an error message."""
    p = Path(path)
    if p.is_symlink():
        return "a symbolic link"
    if not p.exists():
        return "nothing"
    if not p.is_dir():
        return "a file"
    kind = output_kind(p)
    return KIND_NAMES[kind] if kind else "files that armani did not write"


def check_target(target: str | os.PathLike, kinds: str | tuple[str, ...], replace: bool = True,
                 flag: str | None = None, error: type[UserError] = UserError) -> None:
    """Refuse (`error`) to write the folder `target` unless it is new, an empty folder, or
    armani output of one of `kinds`, which is replaced only with `replace` (else the message
    names `flag`)."""
    p = Path(target)
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if not p.exists() and not p.is_symlink():
        return
    if p.is_symlink() or not p.is_dir():
        raise error(f"{p} is {describe(p)}; armani writes a folder there and replaces only its own output: "
                        "choose a new or empty folder")
    kind = output_kind(p)
    if kind in kinds:
        if not replace:
            raise error(f"{p} already exists ({KIND_NAMES[kind]}); pass {flag or '--overwrite'} to replace it")
        return
    if not any(p.iterdir()):
        return
    raise error(f"{p} holds {describe(p)}, not {KIND_NAMES[kinds[0]]}; armani replaces only its own output: "
                    "choose a new or empty folder")


# --- one writer per target -------------------------------------------------------------------

def _key(target: str | os.PathLike) -> Path:
    t = Path(os.path.abspath(target))
    return Path(os.path.realpath(t.parent)) / t.name


def _holder(lock: Path) -> str:
    try:
        return read_capped(lock, 4096).decode("utf-8", "replace").strip() or "unknown"
    except (OSError, UserError):
        return "unknown"


def acquire_lock(target: str | os.PathLike) -> None:
    """Take the lock of `target` for this process (re-entrant); `Busy` when another process
    holds it. Where the system has no `flock`, writers are not serialised."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return
    key = _key(target)
    if key in _HELD:
        _HELD[key][0] += 1
        return
    key.parent.mkdir(parents=True, exist_ok=True)
    lock = key.parent / f".{key.name}{LOCK}"
    for _ in range(10):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"{key} is being written by another armani process ({_holder(lock)}); wait for it to end "
                       "or choose another output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its last holder unlinked while we waited for it
            break
        os.close(fd)
    else:
        raise Busy(f"{key}: could not take its lock ({lock})")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv[:4])}".encode())
    _HELD[key] = [1, fd, lock]


def release_lock(target: str | os.PathLike) -> None:
    """Give back one hold of `target`'s lock; the last one removes the lock file."""
    key = _key(target)
    held = _HELD.get(key)
    if held is None:
        return
    held[0] -= 1
    if held[0] > 0:
        return
    del _HELD[key]
    _, fd, lock = held
    try:
        if os.fstat(fd).st_ino == os.stat(lock).st_ino:
            lock.unlink()
    except OSError:
        pass
    os.close(fd)


@contextmanager
def target_lock(target: str | os.PathLike) -> Iterator[None]:
    """`target`'s lock for the block (see `acquire_lock`)."""
    acquire_lock(target)
    try:
        yield
    finally:
        release_lock(target)


# --- staging, installing, recovering -------------------------------------------------------

def _siblings(target: Path, tag: str) -> list[Path]:
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.glob(f"{glob_escape(target.name)}{tag}*")
                  if p.name.startswith(target.name + tag))


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _ours(p: Path) -> bool:
    """Whether the leftover `p` may be removed: armani made it and no live process uses it."""
    if p.is_symlink() or not p.is_dir():
        return False
    owner = _json_file(p / MARKER)
    if owner is not None:
        pid = owner.get("pid")
        if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False  # another machine's (a shared disk): it may be alive
        return p not in _LIVE if pid == os.getpid() else not _alive(pid)
    if output_kind(p) is not None:  # an old copy an exchange or a rename left behind
        return True
    try:
        return not any(p.iterdir())  # empty: nothing to lose
    except OSError:
        return False


def recover(target: str | os.PathLike) -> None:
    """Undo what a killed writer of `target` left: a target missing while an old copy waits
    in the trash is put back; leftover staging and trash folders armani made are removed.
    Call it holding the target's lock."""
    target = Path(target)
    trash = [p for p in _siblings(target, TRASH) if _ours(p)]
    if not target.exists() and not target.is_symlink() and trash:
        newest = max(trash, key=lambda p: p.stat().st_mtime)
        os.replace(newest, target)
        trash.remove(newest)
    legacy = [p for p in _siblings(target, ".partial-") + [target.with_name(f".{target.name}.old"),
                                                          target.with_name(f"{target.name}.old")]
              + sorted(target.parent.glob(f".{glob_escape(target.name)}.????????"))
              if p.is_dir()] if target.parent.is_dir() else []  # what earlier versions of armani left
    for p in trash + [p for p in _siblings(target, STAGING) + legacy if _ours(p)]:
        shutil.rmtree(p, ignore_errors=True)


def staging_dir(target: str | os.PathLike) -> Path:
    """A new folder beside `target` to build it in (after `recover`), holding only its marker."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.with_name(f"{target.name}{STAGING}{uuid.uuid4().hex[:8]}")
    _LIVE.add(tmp)  # named before it exists, so no moment has it on disk and unknown
    tmp.mkdir()
    _chmod(tmp, 0o777)
    (tmp / MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "target": str(target)}) + "\n")
    return tmp


def drop_staging(tmp: str | os.PathLike) -> None:
    """Remove the staging folder `tmp`, which will not be installed (its writer failed)."""
    tmp = Path(tmp)
    _LIVE.discard(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def remove_staging() -> None:
    """Remove every staging folder this process made and has not installed, and give back
    every lock it holds."""
    while _LIVE:
        drop_staging(next(iter(_LIVE)))
    for key in list(_HELD):
        _HELD[key][0] = 1
        release_lock(key)


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
    (staged / MARKER).unlink(missing_ok=True)
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
