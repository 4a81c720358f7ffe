"""The `armani` command line. Each subcommand is a thin call into the library; one module per
command group (data, train, evaluate, generate, recipes)."""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys

from .. import __version__
from ..errors import UserError
from ..formats.fsutil import remove_staging
from . import data, evaluate, generate, recipes, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="armani", description="ARMANI: part-level garment-text alignment "
                                "for cross-modal fashion design.")
    p.add_argument("--version", action="version", version=f"armani {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    recipes.add_quickstart(sub)
    data.add_commands(sub)
    train.add_train(sub)
    evaluate.add_commands(sub)
    recipes.add_experiment(sub)
    train.add_tokenize(sub)
    generate.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ..train.loop import TrainingDiverged
    previous = _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except TrainingDiverged as e:
        print(f"armani: training stopped: {e}", file=sys.stderr)
        return 3
    except UserError as e:  # bad input; anything else is a bug in armani and keeps its traceback
        print(f"armani: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None and e.errno not in _PLACE_ERRNOS:
            raise
        # A place that cannot be read or written (read-only, /proc, a full disk, no permission):
        # the user's environment, not a bug.
        remove_staging()
        where = f": {e.filename}" if e.filename is not None else ""
        print(f"armani: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except Terminated:
        remove_staging()
        print("armani: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        remove_staging()
        print("armani: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_PLACE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
                 errno.ENAMETOOLONG, errno.ELOOP, errno.EXDEV, errno.EEXIST, errno.ENOENT}


class Terminated(BaseException):
    """SIGTERM, raised where the process was, so every cleanup runs as for an exception."""


def _terminate_as_interrupt():
    """Turn SIGTERM into `Terminated` while a command runs (main thread only); returns the
    handler to put back."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum, frame):
        raise Terminated()
    return signal.signal(signal.SIGTERM, on_term)
