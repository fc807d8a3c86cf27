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


RUNTIME_PLACEHOLDER = re.compile(r"\bRUNTIME_(FULL|CI)\w*")     # also RUNTIME_CI_05 and the like


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


# ---------------------------------------------------------------------------------------------------
# The course conventions (issue 18): navigation, the section timer, hidden solutions, the runtime note.
# Every check below says what to change in the notebook when it fails.

GLOSSARY = NOTEBOOK_DIR / "glossary.md"
README = NOTEBOOK_DIR.parent / "README.md"
CONTENTS_LINK = "../README.md#the-course"
GLOSSARY_LINK = "glossary.md"
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
NUMBERED = re.compile(r"^(\d+)\.\s")
SECTION_CALL = "ddpm_teach.course.section("
SECTION_TIMES_CALL = "ddpm_teach.course.section_times()"
# a call that checks an answer with a real argument: not commented out, not `(...)` or `()`
CHECK_CALL = re.compile(r"^[^#\n]*\b(?:ddpm_teach\.exercises\.)?nb\d\d\.check_\w+\((?!\s*(?:\.\.\.)?\s*\))", re.M)


def _number(path: Path) -> int:
    return int(path.name[:2])


def _neighbours(path: Path) -> tuple[Path | None, Path | None]:
    """The previous and next numbered notebooks that exist (numbers may have gaps, e.g. 09 → 11)."""
    before = [p for p in NOTEBOOKS if _number(p) < _number(path)]
    after = [p for p in NOTEBOOKS if _number(p) > _number(path)]
    return (before[-1] if before else None), (after[0] if after else None)


def _short_title(path: Path) -> str:
    """The title up to any colon or bracket: 08 · Learned variance, from "# 08 · Learned variance (Improved DDPM)"."""
    twin = path.with_suffix(".py")
    source = twin.read_text() if twin.exists() else ""
    title = next((line[4:] for line in source.splitlines() if line.startswith("# # ")), f"{path.name[:2]} · Title")
    return re.split(r":| \(", title)[0].strip()


def _nav_example(path: Path) -> str:
    previous, following = _neighbours(path)
    parts = ([f"← [{_short_title(previous)}]({previous.name})"] if previous else []) + [
        f"[Contents]({CONTENTS_LINK})", f"[Glossary]({GLOSSARY_LINK})"] + (
        [f"[{_short_title(following)} →]({following.name})"] if following else [])
    return " · ".join(parts)


def _check_nav_line(line: str, path: Path, where: str) -> None:
    """The nav line links, in order, to the previous notebook (with ←), the contents, the glossary and
    the next notebook (with →), each only where such a notebook exists."""
    previous, following = _neighbours(path)
    expected = ([previous.name] if previous else []) + [CONTENTS_LINK, GLOSSARY_LINK] + (
        [following.name] if following else [])
    targets = [target for _, target in LINK.findall(line)]
    hint = f"{path.name}, {where}: the nav line should read like\n  {_nav_example(path)}\ngot\n  {line}"
    assert targets == expected, f"{hint}\n(link targets {targets}, expected {expected})"
    assert line.lstrip().startswith("← [") == bool(previous), f"{hint}\n(start with '← [' exactly when there is a previous notebook)"
    assert line.rstrip().endswith(f"→]({following.name})" if following else ")") and (("→" in line) == bool(following)), (
        f"{hint}\n(end with '→](next.ipynb)' exactly when there is a next notebook)")


def _headings(nb) -> list[tuple[int, int, str]]:
    """(cell index, level, text) of every markdown heading, in order (a cell may hold several)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            in_fence = False
            for line in cell.source.splitlines():
                if line.lstrip().startswith("```"):
                    in_fence = not in_fence
                match = None if in_fence else HEADING.match(line)
                if match:
                    found.append((i, len(match[1]), match[2]))
    return found


def _first_statement(source: str) -> str:
    """The first line of a code cell that is not blank, not an nbval marker and not `import ddpm_teach.course`
    (which the opening imports cell needs before its section() call)."""
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or re.match(r"#\s*NBVAL_\w+$", stripped) or stripped == "import ddpm_teach.course":
            continue
        return stripped
    return ""


def test_nav_line_at_top_and_bottom(notebook):
    nb = jupytext.read(notebook)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    lines = [line for line in first_md.source.splitlines() if line.strip()]
    badge = next((i for i, line in enumerate(lines) if "colab-badge.svg" in line), None)
    assert badge is not None, f"{notebook.name}: the first markdown cell has no Colab badge line"
    assert badge + 1 < len(lines) and GLOSSARY_LINK in lines[badge + 1], (
        f"{notebook.name}: put the nav line right under the Colab badge line of the first markdown cell:\n"
        f"  {_nav_example(notebook)}")
    _check_nav_line(lines[badge + 1], notebook, "first markdown cell")
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.strip().count("\n") == 0, (
        f"{notebook.name}: the last cell must be a markdown cell holding only the nav line:\n  {_nav_example(notebook)}")
    _check_nav_line(last.source.strip(), notebook, "last cell")
    assert last.source.strip() == lines[badge + 1].strip(), f"{notebook.name}: the top and bottom nav lines differ"


def test_nav_targets_exist():
    assert GLOSSARY.is_file(), "notebooks/glossary.md is missing (every nav line links to it)"
    assert re.search(r"^## The course\s*$", README.read_text(), re.M), (
        "README.md has no '## The course' heading (every nav line links to ../README.md#the-course)")


def test_section_timer_calls(notebook):
    """Every numbered section (and the opening imports section) starts its first code cell with
    ddpm_teach.course.section("N. Short title"); the last code cell prints section_times()."""
    nb = jupytext.read(notebook)
    headings = _headings(nb)
    level2 = [(i, text) for i, level, text in headings if level <= 2]
    for k, (i, text) in enumerate(level2):
        number = NUMBERED.match(text)
        if not (number or text.lower().startswith(("imports", "setup"))):
            continue
        if k + 1 < len(level2) and level2[k + 1][0] == i:       # the next heading is in the same cell:
            continue                                            # a section without code (nothing to time)
        end = level2[k + 1][0] if k + 1 < len(level2) else len(nb.cells)
        code = [c for c in nb.cells[i + 1:end] if c.cell_type == "code" and c.source.strip()]
        if not code:
            continue
        first = _first_statement(code[0].source)
        example = f'ddpm_teach.course.section("{number[1] + ". Short title" if number else "Imports"}")'
        assert first.startswith(SECTION_CALL), (
            f"{notebook.name}: the first code cell of section '## {text}' must start with the line\n  {example}\n"
            f"(only nbval markers and `import ddpm_teach.course` may come before it); it starts with\n  {first}")
        if number:
            assert re.match(rf"""ddpm_teach\.course\.section\(["']{number[1]}\.\s""", first), (
                f"{notebook.name}: section '## {text}' is timed as {first}: name it after its number, e.g. {example}")
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and SECTION_TIMES_CALL in code[-1].source, (
        f"{notebook.name}: the last code cell must be\n  # NBVAL_IGNORE_OUTPUT\n  {SECTION_TIMES_CALL}")
    assert "NBVAL_IGNORE_OUTPUT" in code[-1].source, (
        f"{notebook.name}: mark the {SECTION_TIMES_CALL} cell `# NBVAL_IGNORE_OUTPUT` (its times differ every run)")
    assert any(level == 2 and text == "Run time on your machine" for _, level, text in headings), (
        f"{notebook.name}: add a markdown cell '## Run time on your machine' before the {SECTION_TIMES_CALL} cell")
    assert sum(SECTION_CALL in c.source for c in code) >= 2, f"{notebook.name}: no sections are timed"


def test_solutions_are_hidden_at_the_end(notebook):
    """Cells that run an exercise check with a real answer are solutions: after '## Solutions',
    hidden (Colab form view, JupyterLab source_hidden), titled `# @title Solution ...`."""
    nb = jupytext.read(notebook)
    solutions_at = next((i for i, level, text in _headings(nb) if level == 2 and text == "Solutions"), None)
    solution_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert solution_cells, f"{notebook.name}: no cell runs an exercise check with an answer"
    assert solutions_at is not None, (
        f"{notebook.name}: move the solution cells into a '## Solutions' section after the Summary")
    for i, cell in solution_cells:
        call = CHECK_CALL.search(cell.source)[0].strip()
        assert i > solutions_at, f"{notebook.name}: the cell running `{call}` comes before '## Solutions': move it there"
        assert cell.source.lstrip().startswith("# @title Solution"), (
            f"{notebook.name}: the solution cell running `{call}` must start with the line\n"
            "  # @title Solution to exercise K (double-click to show the code)")
        meta = cell.metadata
        assert meta.get("cellView") == "form" and meta.get("jupyter", {}).get("source_hidden") is True, (
            f"{notebook.name}: the solution cell running `{call}` must have the metadata "
            '{"cellView": "form", "jupyter": {"source_hidden": true}} (in the .py twin: '
            '# %% cellView="form" jupyter={"source_hidden": true})')


def test_runtime_note_names_two_cpu_kinds(notebook):
    nb = jupytext.read(notebook)
    first_heading = next(i for i, level, _ in _headings(nb) if level == 2)
    top = "\n".join(c.source for c in nb.cells[:first_heading + 1] if c.cell_type == "markdown")
    note = top[top.find("**Runtime**"):] if "**Runtime**" in top else ""
    assert note, f"{notebook.name}: the runtime note (**Runtime** ...) is missing from the top of the notebook"
    assert re.search(r"(?<!no )AMX", note) and "no AMX" in note, (
        f"{notebook.name}: the runtime note must give one line per CPU kind: the Xeon with AMX and the AMD "
        "EPYC with no AMX (write 'not measured' where a kind was not measured)")
    assert "GPU" in note and re.search(r"CI size", note), f"{notebook.name}: the runtime note needs its GPU and CI-size lines"


def _glossary_links() -> list[str]:
    return [target for _, target in LINK.findall(GLOSSARY.read_text()) if not re.match(r"[a-z]+:", target)]


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    slugs = set()
    for line in markdown.splitlines():
        match = HEADING.match(line)
        if match:
            slugs.add(re.sub(r"[^\w\- ]", "", match[2].lower()).replace(" ", "-"))
    return slugs


def test_glossary_links_exist():
    assert GLOSSARY.is_file(), "notebooks/glossary.md is missing"
    links = _glossary_links()
    assert any(re.match(r"\d\d_\w+\.ipynb", t) for t in links), "the glossary links to no notebook"
    for target in links:
        file, _, anchor = target.partition("#")
        path = (GLOSSARY.parent / file).resolve() if file else GLOSSARY
        assert path.exists(), f"glossary.md links to {target}, but {path} does not exist"
        if re.match(r"\d\d_", file):
            assert file.endswith(".ipynb"), f"glossary.md: link notebooks as .ipynb (Colab opens those), not {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text()), f"glossary.md links to {target}: {file or 'glossary.md'} has no such heading"
