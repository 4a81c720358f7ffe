"""docs/cli.md names every command and flag of the parser (its flag reference is written
from the parser by scripts/make_cli_doc.py)."""
import importlib.util
from pathlib import Path

from armani.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("make_cli_doc", ROOT / "scripts" / "make_cli_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_flag_of_every_command_is_in_docs_cli():
    doc = (ROOT / "docs" / "cli.md").read_text()
    mod = _script()
    missing = []
    for path, p in mod.leaves(build_parser()):
        section = doc.split(f"### {' '.join(path)}\n", 1)
        if len(section) < 2:
            missing.append(" ".join(path))
            continue
        body = section[1].split("\n### ", 1)[0]
        missing += [f"{' '.join(path)} {s}" for a in p._actions for s in a.option_strings
                    if s not in ("-h", "--help") and f"`{s}`" not in body]
    assert not missing, f"not in docs/cli.md (run python scripts/make_cli_doc.py): {missing}"


def test_the_flag_reference_is_the_parsers_own():
    mod = _script()
    have = mod.current_block((ROOT / "docs" / "cli.md").read_text())
    assert have == mod.render(build_parser()), "run python scripts/make_cli_doc.py"


def test_a_new_flag_shows_as_missing():
    mod = _script()
    p = build_parser()
    leaves = dict(mod.leaves(p))
    leaves[("armani", "generate")].add_argument("--not-documented", help="x")
    assert "--not-documented" in mod.render(p) and mod.render(p) != mod.render(build_parser())
