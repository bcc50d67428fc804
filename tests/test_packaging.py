"""The installed distribution is one import name, ``avagent``, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("service", "agent", "perception", "actions", "reflection", "training", "bench")


def test_importing_actions_pulls_no_torch_and_no_langgraph():
    code = ("import avagent.actions, avagent.perception, sys; "
            "bad = [m for m in ('torch', 'langgraph') if m in sys.modules]; "
            "sys.exit(', '.join(bad) or None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr or out.stdout


def test_layers_import_under_avagent_only():
    # Run from / so the repository folders are not on sys.path: only the installed mapping counts.
    code = ("import importlib, sys\n"
            f"for name in {LAYERS!r}:\n"
            "    mod = importlib.import_module('avagent.' + name)\n"
            "    assert mod.__file__, name\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        continue\n"
            "    sys.exit(f'top-level {name!r} is importable: we would shadow a user package')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr or out.stdout


@pytest.mark.slow
def test_wheel_holds_only_the_avagent_package(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                          str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("avagent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"avagent"}, sorted(tops)
    for layer in LAYERS:
        assert f"avagent/{layer}/__init__.py" in names, layer
    # Every sub-package of a layer folder made it in (the package list in pyproject is explicit).
    for init in REPO.glob("*/**/__init__.py"):
        rel = init.relative_to(REPO)
        if rel.parts[0] in LAYERS:
            assert "avagent/" + rel.as_posix() in names, rel
    assert "avagent/service/web/templates/index.html" in names
    assert "avagent/service/web/static/app.js" in names


CORE = {"errors", "audio", "dsp", "loudness", "hum", "dropouts", "rates"}  # avagent/ core modules


def _sources() -> list[Path]:
    return [p for p in REPO.glob("*/**/*.py")
            if p.relative_to(REPO).parts[0] in (*LAYERS, "avagent")]


def test_no_module_imports_a_private_name_of_another_package():
    import ast

    found = []
    for path in _sources():
        mine = path.relative_to(REPO).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("avagent.")):
                continue
            other = node.module.split(".")[1]
            other = "avagent" if other in CORE else other
            found += [f"{path.relative_to(REPO)}: {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and other != mine]
    assert not found, found


def test_every_module_reads_in_one_sitting():
    long = [f"{p.relative_to(REPO)} ({n} lines)" for p in _sources()
            if (n := len(p.read_text().splitlines())) > 600]
    assert not long, long
