"""The README and docs/: the README stays a short user guide and every relative link resolves."""
import re

from conftest import REPO

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_links_resolve():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) >= 6
    bad = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                bad.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{page.name}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_shipped_model_has_a_card_and_no_machine_paths():
    shipped = REPO / "src" / "armani" / "pretrained" / "synthfashion"
    card = (shipped / "README.md").read_text()
    assert "## Trained on" in card and "10,000 samples" in card and "## Licence" in card
    for f in shipped.rglob("*"):
        if f.suffix in (".json", ".md"):
            text = f.read_text()
            assert not re.search(r"(^|[\s\"'])/(tmp|home|root|work|Users)/", text), f
