"""`armani quickstart` and `armani experiment`: whole pipelines."""
from __future__ import annotations

from pathlib import Path

from .common import positive


def add_quickstart(sub) -> None:
    """`armani quickstart`: the main job on the embedded SynthFashion data."""
    q = sub.add_parser("quickstart", help="run the main job on the embedded SynthFashion data")
    q.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    q.add_argument("--n", type=positive, default=None, help="SynthFashion samples (default: the profile's, 4000 "
                   "on the CPU, 8000 on a GPU)")
    q.add_argument("--size", type=positive, default=None, help="image size in pixels (default: the profile's, 64 "
                   "on the CPU, 128 on a GPU)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    q.add_argument("--profile", choices=("auto", "default", "gpu", "tiny"), default="auto",
                   help="stage budgets: auto (default: gpu when PyTorch sees a CUDA device, else default), "
                   "default (about 12 min on a 2-core CPU), gpu (128 px, 16 x 16 tokens, larger models; one GPU) "
                   "or tiny (a smoke test)")
    q.set_defaults(func=cmd_quickstart)


def add_experiment(sub) -> None:
    """`armani experiment paper`: the paper's tables on SynthFashion."""
    xp = sub.add_parser("experiment", help="reproduce the paper's tables on SynthFashion")
    xps = xp.add_subparsers(dest="experiment", required=True, metavar="WHICH")
    x = xps.add_parser("paper", help="part-level control: ARMANI, a DALL-E-style baseline and ablations, "
                                     "3 stage-2 seeds each, paired statistics; and the paper's Table 1")
    x.add_argument("--preset", choices=("cpu", "gpu", "micro"), default="cpu",
                   help="cpu (128 px, under 2 hours on 2 cores), gpu (one lent GPU), micro (a smoke test)")
    x.add_argument("--out", type=Path, default=Path("runs/experiment"))
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--prompts", type=positive, default=None,
                   help="prompts per generation mode of the paper's table (default: the preset's)")
    x.add_argument("--inception", default=None, help="TorchScript Inception-v3 file (or ARMANI_INCEPTION)")
    x.add_argument("--clip", default=None, help="Hugging Face CLIP folder (or ARMANI_CLIP)")
    x.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    x.set_defaults(func=cmd_experiment)


def cmd_quickstart(args) -> int:
    from ..recipes.quickstart import QuickstartConfig, run_quickstart
    summary = run_quickstart(QuickstartConfig(args.out, args.n, args.size, args.seed, args.fresh, args.quiet,
                                              args.profile))
    print(f"quickstart finished in {summary['total_seconds']:.1f} s: report {args.out / 'report.html'}, "
          f"summary {args.out / 'summary.json'}, model {args.out / 'model'} "
          f"(try: armani generate --model {args.out / 'model'} --text \"a red T-shirt with a white logo\")")
    if summary.get("colours"):
        print(f"colours: the asked colour in {summary['colours']['accuracy']:.0%} of text-only samples")
    for kind, why in (summary.get("capped") or {}).items():
        print(f"warning: {kind} {why}")
    return 0


def cmd_experiment(args) -> int:
    from ..recipes.experiment import ExperimentConfig, run_experiment
    summary = run_experiment(ExperimentConfig(args.out, args.preset, args.seed, args.fresh, args.quiet,
                                              args.inception, args.clip, args.prompts))
    print((args.out / "table.md").read_text())
    print(f"experiment finished: {summary['total_seconds']:.0f} s of stages; {args.out / 'table.md'}, "
          f"{args.out / 'summary.json'}, sample pages in {args.out / 'samples'}")
    return 0
