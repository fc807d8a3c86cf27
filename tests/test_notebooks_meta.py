"""Promises every notebook keeps (CONTRIBUTING.md): jupytext pairs in sync, committed executed
top to bottom without errors, and the course's required parts present."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SETUP_LINE = 'if "google.colab" in sys.modules:'


def _sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request) -> Path:
    return request.param


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


def test_py_percent_twin_is_in_sync(notebook):
    twin = notebook.with_suffix(".py")
    assert twin.exists(), f"{twin.name} is missing: run `jupytext --sync {notebook.name}`"
    assert "format_name: percent" in twin.read_text(), f"{twin.name} is not in py:percent format"
    assert _sources(jupytext.read(notebook)) == _sources(jupytext.read(twin)), (
        f"{notebook.name} and {twin.name} differ: run `jupytext --sync notebooks/{notebook.name}`")


def test_committed_executed_in_order_without_errors(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, f"{notebook.name}: some code cells were never executed"
    assert counts == list(range(counts[0], counts[0] + len(counts))), f"{notebook.name}: execution out of order"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{notebook.name}: committed with error outputs"


RUNTIME_PLACEHOLDER = re.compile(r"\bRUNTIME_(FULL|CI)\b")


def test_required_parts(notebook):
    nb = jupytext.read(notebook)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "colab.research.google.com/assets/colab-badge.svg" in markdown, "Colab badge missing"
    assert re.search(r"learning goals", markdown, re.I), "learning goals missing"
    assert re.search(r"summary", markdown, re.I), "summary missing"
    assert re.search(r"runtime", markdown, re.I) and "CPU" in markdown and "GPU" in markdown, "runtime note (CPU and GPU) missing"
    assert any(SETUP_LINE in src for src in code), "Colab setup cell missing"
    assert not any(re.search(r"^\s+%pip", src, re.M) for src in code), "%pip inside an indented block breaks outside Colab"
    assert any("ddpm_teach.exercises" in src for src in code), "the exercise checks (ddpm_teach.exercises) are not imported"
    assert any(re.search(r"\bcheck_\w+\(", src) for src in code), "no exercise checked with one call"
    assert any("import ddpm_teach" in src or "from ddpm_teach" in src for src in code), "the notebook must use ddpm_teach"
    # every check that a reference answer runs has a commented-out attempt cell before it
    for i, src in enumerate(code):
        for check in re.findall(r"^(?!#)[^\n]*\b(check_\w+)\(", src, re.M):
            earlier = "\n".join(code[:i])
            assert re.search(rf"^#\s*\S*\b{check}\(", earlier, re.M), (
                f"{check} is run by an answer cell with no attempt cell (the call, commented out) before it")
    assert not any(RUNTIME_PLACEHOLDER.search(c.source) for c in nb.cells), "an unfilled RUNTIME_... placeholder"
    checked = [s for s in code if s.strip() and "NBVAL_IGNORE_OUTPUT" not in s and "NBVAL_SKIP" not in s]
    assert len(checked) > len([s for s in code if s.strip()]) / 2, "most cells must keep checked outputs"
