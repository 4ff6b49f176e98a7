"""The package's import graph: no module takes names from the package ``__init__`` (it would
import upward and make the package heavy), and the light modules load neither torch nor
scikit-learn."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "proximity"
MODULES = sorted(PKG.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a module belongs to (``proximity.signals`` for ``signals/probe.py`` and for
    ``signals/__init__.py``)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def _is_submodule(package: str, name: str) -> bool:
    folder = ROOT.joinpath(*package.split("."))
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def _imports_from_init(path: Path, source: str | None = None) -> list[str]:
    """``from <package> import <name>`` where ``<package>`` is the module's own package or one above
    it and ``<name>`` is not a submodule of it (so a name defined in, or re-exported by, that
    package's ``__init__``: an upward import); also any ``import proximity`` inside the package.
    ``source`` stands in for the file's text."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    here = _package_of(path)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name == "proximity"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (here == target or here.startswith(target + ".")):
                continue                  # only the module's own package and the packages above it
            bad += [f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}"
                    for a in node.names if not _is_submodule(target, a.name)]
    return bad


def test_the_checker_sees_an_upward_import():
    """The check below can fail: the import forms it must catch are caught, the allowed ones are not."""
    source = ("from .. import __version__\nfrom .. import errors\nfrom ..errors import ProximityError\n"
              "import proximity\nfrom proximity import rank\nfrom proximity import cli\nfrom . import probe\n")
    assert _imports_from_init(PKG / "signals" / "new_signal.py", source) == [
        "line 1: from .. import __version__", "line 4: import proximity", "line 5: from proximity import rank"]
    assert _imports_from_init(PKG / "new_module.py", "from . import __version__\nfrom . import api\n") == [
        "line 1: from . import __version__"]
    source = "from . import resolve_spec\nfrom .builder import resolve_spec\nfrom .. import backbones\n"
    assert _imports_from_init(PKG / "backbones" / "source_new.py", source) == ["line 1: from . import resolve_spec"]
    assert _imports_from_init(PKG / "evidence.py",
                              "from .backbones import open_backbone\n") == []  # a public API, from outside


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_the_package_init(path):
    assert _imports_from_init(path) == [], f"{path.name} takes names from a package __init__: import their module"


LIGHT = ["proximity", "proximity.errors", "proximity._version", "proximity.types", "proximity.catalog",
         "proximity.filters", "proximity.report", "proximity.report_table", "proximity.report_html", "proximity.risk",
         "proximity.cli"]


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_load_neither_torch_nor_sklearn(module):
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(m for m in ('torch', 'sklearn', 'scipy', 'timm', 'transformers') if m in "
            "sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [], f"importing {module} loads {run.stdout.strip()}"


def test_version_comes_from_the_package_metadata():
    import importlib.metadata

    import proximity
    from proximity._version import UNKNOWN, __version__

    try:
        expected = importlib.metadata.version("proximity")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled source tree
        expected = UNKNOWN
    assert proximity.__version__ == __version__ == expected


def test_version_is_answered_without_the_cli_libraries():
    """``proximity --version`` imports neither typer nor rich (nor torch): it answers at once."""
    code = ("import sys; sys.argv = ['proximity', '--version']; from proximity.__main__ import main; main(); "
            "print(sorted(m for m in ('typer', 'rich', 'torch', 'pydantic') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    version, loaded = run.stdout.strip().splitlines()
    assert version.startswith("proximity ") and loaded == "[]"
