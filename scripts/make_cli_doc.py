"""Write the flag reference of docs/cli.md from the `armani` parser itself.

    python scripts/make_cli_doc.py          # rewrite the block in docs/cli.md
    python scripts/make_cli_doc.py --check  # exit 1 when the block is out of date

The block lies between the two marker lines below; everything else in docs/cli.md is
written by hand. tests/test_cli_doc.py runs the check, so a flag added to the parser and not
to the page fails the tests.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

BEGIN = "<!-- flags: written by scripts/make_cli_doc.py from the parser; do not edit by hand -->"
END = "<!-- end of flags -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _subcommands(p: argparse.ArgumentParser):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    return {}


def leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ("armani",)):
    """(command path, parser) of every command that runs something, in the parser's order."""
    subs = _subcommands(p)
    if not subs:
        yield path, p
        return
    seen = set()
    for name, sp in subs.items():
        if id(sp) in seen:  # an alias (e.g. an older name) of a command already listed
            continue
        seen.add(id(sp))
        yield from leaves(sp, path + (name,))


def _flag(a: argparse.Action) -> str:
    if not a.option_strings:  # a positional argument
        return f"`{a.metavar or a.dest.upper()}`"
    names = ", ".join(f"`{s}`" for s in a.option_strings)
    if a.nargs == 0:
        return names
    if a.choices:
        arg = "{" + ",".join(str(c) for c in a.choices) + "}"
    else:
        arg = a.metavar or a.dest.upper()
    return f"{names} {arg}"


def _default(a: argparse.Action) -> str:
    if a.required or not a.option_strings:
        return "required"
    if a.nargs == 0 or a.default is None or a.default is False or a.default == argparse.SUPPRESS:
        return ""
    return f"`{a.default}`"


def render(parser: argparse.ArgumentParser) -> str:
    out = [BEGIN, "", "Before the command: `armani [-q] COMMAND ...` (`-q`: no progress bars), "
           "`armani --version`.", ""]
    for path, p in leaves(parser):
        out += [f"### {' '.join(path)}", ""]
        if p.description:
            out += [" ".join(p.description.split()), ""]
        rows = [a for a in p._actions if not isinstance(a, argparse._HelpAction)]
        if not rows:
            out += ["No options.", ""]
            continue
        out += ["| flag | default | what it does |", "| --- | --- | --- |"]
        for a in rows:
            text = " ".join((a.help or "").split()).replace("|", "\\|")
            if "%(" in text:
                text = text % {"default": a.default, "prog": p.prog}
            out.append(f"| {_flag(a).replace('|', chr(92) + '|')} | {_default(a)} | {text} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def current_block(text: str) -> str | None:
    if BEGIN not in text or END not in text:
        return None
    return text[text.index(BEGIN):text.index(END) + len(END)]


def main() -> int:
    sys.path.insert(0, str(DOC.parents[1] / "src"))
    from armani.cli import build_parser
    want = render(build_parser())
    text = DOC.read_text()
    have = current_block(text)
    if "--check" in sys.argv[1:]:
        if have != want:
            print("docs/cli.md's flag reference is out of date: run python scripts/make_cli_doc.py")
            return 1
        return 0
    text = text.replace(have, want) if have is not None else text.rstrip("\n") + "\n\n## Every flag\n\n" + want + "\n"
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
