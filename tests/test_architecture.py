"""The package's structure holds: layers and acyclicity (import-linter), no private names across
modules, no SQL outside the store, no unpickling, ruff's security rules, a thin facade."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "taskscout"


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_import_contracts_hold():
    """Layers point one way, evaluation stands alone, no sibling import cycles (pyproject)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    out = subprocess.run(
        [exe, str(ROOT / "pyproject.toml")],
        cwd=ROOT / "src",
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_no_module_imports_a_private_name_of_another():
    offences = []
    for path in _modules():
        here = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if not node.module.startswith("taskscout") or node.module == here:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offences.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert offences == []


def test_sql_lives_in_the_store():
    offences = []
    for path in _modules():
        if "store" in path.relative_to(SRC).parts[:1]:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (".conn.", ".execute(", "import sqlite3", "SELECT ", "INSERT "):
            if needle in text:
                offences.append(f"{path.relative_to(ROOT)}: {needle.strip()}")
    assert offences == []


def test_nothing_unpickles():
    offences = []
    for folder in ("src", "benchmarks", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                    if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill") for n in names):
                        offences.append(str(path.relative_to(ROOT)))
                unsafe = isinstance(node, ast.keyword) and node.arg == "allow_pickle"
                if unsafe and not (
                    isinstance(node.value, ast.Constant) and node.value.value is False
                ):
                    offences.append(f"{path.relative_to(ROOT)}: allow_pickle")
    assert offences == []


def test_ruff_with_security_rules_passes():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if "No module named ruff" in out.stderr:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    assert out.returncode == 0, out.stdout[-3000:]


def test_imports_sit_at_module_top_except_optional_dependencies():
    optional = {  # heavy or optional: imported where used, so `taskscout --help` stays quick
        "ray",
        "datasets",
        "matplotlib",
        "umap",
        "plotly",
        "peft",
        "transformers",
        "pyarrow",
    }
    offences = []
    for path in _modules():
        if path == SRC / "__init__.py":  # the lazy top-level facade: `import taskscout` is cheap
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("taskscout"):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                    top = {n.split(".")[0] for n in names if n}
                    if not top & optional and not top <= {""}:
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(top)}")
    assert offences == []


def test_api_is_a_thin_facade():
    text = (SRC / "api.py").read_text(encoding="utf-8")
    # four documented calls that open (and close) the store; the concepts live below
    assert len(text.splitlines()) <= 225
