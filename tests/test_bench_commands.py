"""The README's benchmark commands run as written, and `make test` shows pytest's summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["bench/bench_tokenize.py", "bench/bench_app.py"])
def test_readme_bench_commands_run_as_written(script: str) -> None:
    """`python bench/<name>.py` (the README's form) imports the project from any cwd."""
    assert f"python {script}" in (REPO / "README.md").read_text()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / script), "--help"], cwd=REPO / "bench", env=env,
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_make_test_prints_the_pytest_summary() -> None:
    """pyproject's addopts has one -q; the Makefile adds none (-qq hides the summary line)."""
    addopts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"][
        "addopts"
    ]
    line = next(ln for ln in (REPO / "Makefile").read_text().splitlines() if "pytest" in ln)
    flags = re.findall(r"(?<!\S)-q+\b", f"{addopts} {line}")
    assert sum(f.count("q") for f in flags) <= 1, (addopts, line)


def _documented_modules() -> set[str]:
    """Every `python -m NAME` (also `torchrun ... -m NAME`) in the README and docs/*.md."""
    texts = [(REPO / "README.md").read_text()]
    texts += [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
    return {m for t in texts for m in re.findall(r"-m ([A-Za-z_][\w.]*)", t)}


def test_every_documented_entry_point_exists() -> None:
    """`python -m X` as the README and the docs write it: X (or X.__main__ for a package) is a
    module of this project or an installed tool, so a renamed module fails here."""
    import importlib.util

    mods = _documented_modules()
    assert {"codec.training", "codec.tokenizer", "analysis", "app", "bench.gates"} <= mods
    missing = []
    for name in sorted(mods):
        spec = importlib.util.find_spec(name)
        if spec is None:
            missing.append(name)
        elif (  # a package needs a __main__
            spec.submodule_search_locations is not None
            and importlib.util.find_spec(f"{name}.__main__") is None
        ):
            missing.append(f"{name} (no __main__)")
    assert not missing, missing
