"""The layout (STYLE.md, "The layout"; issue 11): the pipeline stages exist as named and
the Anonymizer imports each; no stage imports a later one; nothing in the pipeline, io,
cli or the Anonymizer imports training/ or evaluation/."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import identitydp_fast

PKG = Path(identitydp_fast.__file__).resolve().parent
STAGES = ("decode", "detect", "align", "identity", "release", "attributes", "generate", "blend")


def _modules(package: str) -> list[str]:
    mod = __import__(f"identitydp_fast.{package}", fromlist=["_"])
    return [f"identitydp_fast.{package}.{m.name}" for m in pkgutil.iter_modules(mod.__path__)]


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every identitydp_fast module ``path`` imports (at any depth)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {n for n in out if n.startswith("identitydp_fast")}


def test_stages_exist_in_order_and_the_anonymizer_imports_each():
    for stage in STAGES:
        assert (PKG / "pipeline" / f"{stage}.py").is_file(), stage
    used = _imports(PKG / "anonymizer.py", "identitydp_fast")
    for stage in STAGES:
        assert any(n == f"identitydp_fast.pipeline.{stage}" or
                   n.startswith(f"identitydp_fast.pipeline.{stage}.") for n in used), stage


def test_no_stage_imports_a_later_one():
    for i, stage in enumerate(STAGES):
        used = _imports(PKG / "pipeline" / f"{stage}.py", "identitydp_fast.pipeline")
        later = [s for s in STAGES[i + 1:] if any(
            n == f"identitydp_fast.pipeline.{s}" or n.startswith(f"identitydp_fast.pipeline.{s}.")
            for n in used)]
        assert not later, f"pipeline/{stage}.py imports later stage(s) {later}"
        assert not any(n.startswith("identitydp_fast.anonymizer") for n in used), stage


def test_nothing_above_imports_training_or_evaluation():
    """In a fresh interpreter (other tests' imports would pollute sys.modules): import the
    Anonymizer, every cli and io module, build the whole command line; no training or
    evaluation module may have been imported."""
    mods = (["identitydp_fast.anonymizer"] + _modules("cli") + _modules("io")
            + _modules("pipeline") + _modules("privacy"))
    code = (f"import importlib, json, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            f"import identitydp_fast.cli as cli\ncli.build_parser()\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('identitydp_fast'))))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(mods) <= set(loaded)
    bad = [m for m in loaded if m.startswith(("identitydp_fast.training", "identitydp_fast.evaluation"))]
    assert not bad, f"imported by the pipeline, io, cli or the Anonymizer: {bad}"


@pytest.mark.parametrize("package", ["pipeline", "io", "cli", "privacy", "anonymizer.py"])
def test_no_static_import_of_training_or_evaluation(package):
    """The source itself, lazy imports included (the evaluate subcommand's run is the one
    allowed exception: it IS the evaluation)."""
    paths = [PKG / package] if package.endswith(".py") else sorted((PKG / package).glob("*.py"))
    for path in paths:
        if (package, path.name) == ("cli", "evaluate.py"):
            continue
        pkg = "identitydp_fast" if package.endswith(".py") else f"identitydp_fast.{package}"
        used = _imports(path, pkg)
        bad = [n for n in used if n.startswith(("identitydp_fast.training", "identitydp_fast.evaluation"))]
        assert not bad, f"{package}/{path.name} imports {bad}"
