"""Imports flow one way: no import cycle in the package (lazy imports inside functions
included), and generating loads no training or evaluation code."""
import ast
import subprocess
import sys

from conftest import REPO

SRC = REPO / "src"


def _modules() -> dict[str, object]:
    mods = {}
    for f in (SRC / "armani").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


def _imports(name: str, path, mods) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            names = [f"{target}.{a.name}" for a in node.names] + [target]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for t in names:
            while t and t not in mods and "." in t:
                t = t.rpartition(".")[0]
            if t in mods and t != name:
                out.add(t)
    return out


def test_no_import_cycle():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert graph["armani.inference.image_tokens"], "the walker found no imports: it is broken"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if n == "armani":  # the package's own __init__ (imported by everything)
                continue
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_generating_loads_no_training_or_evaluation_code():
    code = ("import sys, armani\n"
            "armani.generate(armani.load(), text='a red dress', n=1, seed=0)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('armani.train', 'armani.eval'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


# What each folder may not import. Losses below models, models below the file formats (a
# bundle builds its model) and the data (a model's config carries the counts it needs);
# generation (inference) below evaluation and training, which never import each other; the
# report pages below evaluation (which writes them); recipes (quickstart, experiment,
# tokenize job) and the command line sit on top, and nothing imports them.
FORBIDDEN = {
    "armani.formats": ("armani.data", "armani.losses", "armani.inference", "armani.train", "armani.eval",
                       "armani.report", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.data": ("armani.losses", "armani.inference", "armani.train", "armani.eval", "armani.recipes",
                    "armani.cli", "armani.demo"),
    "armani.models": ("armani.data", "armani.formats", "armani.inference", "armani.train", "armani.eval",
                      "armani.report", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.losses": ("armani.formats", "armani.models", "armani.inference", "armani.train", "armani.eval", "armani.recipes",
                      "armani.cli", "armani.demo"),
    "armani.inference": ("armani.train", "armani.eval", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.eval": ("armani.train", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.train": ("armani.eval", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.report": ("armani.eval", "armani.train", "armani.recipes", "armani.cli", "armani.demo"),
    "armani.recipes": ("armani.cli", "armani.demo"),
}


def test_imports_flow_one_way():
    mods = _modules()
    bad = []
    for m, p in sorted(mods.items()):
        rules = [v for k, v in FORBIDDEN.items() if m == k or m.startswith(k + ".")]
        for target in _imports(m, p, mods):
            if rules and any(target == f or target.startswith(f + ".") for f in rules[0]):
                bad.append(f"{m} -> {target}")
    assert not bad, "imports against the layering: " + "; ".join(bad)


def test_the_walker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The check above can fail: a module of models that imports training is caught."""
    fake = tmp_path / "armani" / "models" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..train.loop import Trainer\n")
    (tmp_path / "armani" / "train").mkdir()
    (tmp_path / "armani" / "train" / "loop.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    mods = _modules()
    assert _imports("armani.models.bad", fake, mods) == {"armani.train.loop"}


def test_the_judge_counts_match_the_vocabulary():
    """models/judge.py carries SynthFashion's counts as config defaults (models import no data)."""
    from armani.data.vocab import CATEGORIES, COLORS, JUDGE_PARTS, PATTERNS
    from armani.models.judge import JudgeConfig
    c = JudgeConfig()
    assert (c.num_categories, c.num_colors, c.num_patterns, c.num_parts) == (
        len(CATEGORIES), len(COLORS), len(PATTERNS), len(JUDGE_PARTS))


def test_benchmarks_and_scripts_import():
    """The scripts outside the package name modules that exist (a moved module breaks them
    silently otherwise)."""
    import importlib.util
    files = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "scripts").glob("*.py"))
    assert len(files) >= 9
    if importlib.util.find_spec("transformers") is None:  # check_clip.py compares with Hugging Face's CLIP
        files = [f for f in files if f.name != "check_clip.py"]
    for f in files:
        spec = importlib.util.spec_from_file_location(f"_script_{f.stem}", f)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)  # definitions only: each runs its work under __main__


def test_the_command_line_starts_without_torch():
    """`armani --help` and the parser load no torch (it takes seconds to import): every
    command imports what it needs when it runs."""
    code = "import sys, armani.cli\narmani.cli.build_parser()\nprint('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
