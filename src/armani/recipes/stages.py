"""The stage runner the quickstart and the experiment share.

A recipe is a list of named stages. Each runs once: when it ends, its seconds go into
`summary.json` (`stage_seconds`) and the file is rewritten, so a re-run skips the stages that
finished and a training stage that was interrupted resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..errors import UserError
from ..formats.fsutil import acquire_lock, atomic_write_text, check_target, release_lock


class StageRunner:
    """`summary` is the recipe's summary.json as a dict; `run(name, fn)` runs a stage once."""

    def __init__(self, out: str | Path, settings: dict, fresh: bool = False, quiet: bool = False, log=print):
        self.out = Path(out)
        acquire_lock(self.out)  # given back by `close`, or when the process ends
        try:
            check_target(self.out, "recipe")  # --fresh removes only a recipe's own folder
            if fresh and self.out.exists():
                shutil.rmtree(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            self.path = self.out / "summary.json"
            self.summary: dict = json.loads(self.path.read_text()) if self.path.is_file() else {}
            if self.summary.get("settings") not in (None, settings):
                raise UserError(f"{self.out} was made with {self.summary['settings']}; pass --fresh to start over "
                                "with new settings, or choose another --out")
            self.summary["settings"] = settings
            self.stages: dict[str, float] = self.summary.setdefault("stage_seconds", {})
            self.quiet, self.log = quiet, log
            self.save()  # from now on the folder reads as a recipe's, so a re-run may resume it
        except BaseException:
            release_lock(self.out)
            raise

    def close(self) -> None:
        """Give back the folder's lock."""
        release_lock(self.out)

    def __enter__(self) -> StageRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def save(self) -> None:
        self.summary["total_seconds"] = round(sum(self.stages.values()), 2)
        atomic_write_text(self.path, json.dumps(self.summary, indent=2) + "\n")

    def run(self, name: str, fn) -> None:
        if name in self.stages:
            self.log(f"[{name}] done already ({self.stages[name]:.1f} s), skipped")
            return
        self.log(f"[{name}] ...")
        t0 = time.perf_counter()
        fn()
        self.stages[name] = round(time.perf_counter() - t0, 2)
        self.save()
        self.log(f"[{name}] {self.stages[name]:.1f} s")

    def train(self, kind: str, source, config: str, run: Path, seed: int, *, recipe: str, **parents):
        """Train (or resume) the registry's task `kind` into `run`; returns the fit's result and
        its training config."""
        from ..train.loop import Trainer
        from ..train.registry import make_task
        task, tcfg = make_task(kind, source, config, seed=seed, **parents)
        res = Trainer(task, tcfg, run, resume=True, quiet=self.quiet, extra_config={recipe: str(self.out)}).fit()
        return res, tcfg
