"""What a new user meets first: the README's Python example runs as written, `python -m proximity`,
the licence and the package metadata."""

import os
import re
import subprocess
import sys
from pathlib import Path

import proximity
from conftest import S

ROOT = Path(__file__).resolve().parents[1]


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no ```python example"
    return blocks[0]


def test_the_readme_api_example_runs_as_written(backbones, target_images, tmp_path, monkeypatch, capsys, fresh_cache):
    """The quickstart leaves samples/digits and the zoo behind; here they are a small labelled folder and a
    stand-in zoo of the two tiny test backbones, so that every name, argument and attribute of the example
    is exercised exactly as written, in seconds."""
    imgs, labels = target_images
    S.write_folder(tmp_path / "samples" / "digits", imgs, labels)
    zoo = tmp_path / "data" / "zoo" / "catalog"
    zoo.mkdir(parents=True)
    for name, key, domain in (("gratings_net", "A", "natural"), ("blobs_net", "B", "medical-radiology")):
        (zoo / f"{name}.toml").write_text(f'source = "local-dir:{backbones[key]}"\n\n[pretraining]\ndomains = '
                                          f'["{domain}"]\n')
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_python(), "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "gratings_net" in out and "blobs_net" in out                  # the best pick; what --domain set aside
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_python_dash_m_proximity():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "proximity", "--version"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == f"proximity {proximity.__version__}", run.stderr
    run = subprocess.run([sys.executable, "-m", "proximity", "rank", "--help"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0 and "--format" in run.stdout and "html" in run.stdout


def test_licence_file_and_metadata():
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"] and meta["authors"]
    assert "pandas" in meta["optional-dependencies"]                    # Ranking.to_frame's extra
    assert "samples/" in (ROOT / ".gitignore").read_text().split()
