"""Progress bars for the CLI (tqdm on stderr), silent when asked or when not a terminal
under CI."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = "it", quiet: bool = False) -> tqdm:
    disable = quiet or (os.environ.get("CI") == "true" and not sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=disable, leave=False)
