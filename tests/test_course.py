"""ddpm_teach.course: the size knob, machine() and the section timer every notebook ends with."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ddpm_teach.course as course
from ddpm_teach.course import SectionTimer


class FakeClock:
    """A clock the test moves by hand: ``clock()`` reads it, ``advance(s)`` moves it on."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def _no_ipython(monkeypatch):
    """These tests run outside IPython; make sure of it even if something in the session started a shell."""
    import IPython
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)


# --- outside IPython: wall time from one section() call to the next --------------------------------

def test_wall_time_between_section_calls(clock):
    timer = SectionTimer(clock=clock)
    timer.section("1. First")
    clock.advance(2.5)
    timer.section("2. Second")
    clock.advance(4.0)
    timer.section("3. Third")
    clock.advance(1.0)
    assert timer.seconds == {"1. First": 2.5, "2. Second": 4.0, "3. Third": 0.0}   # the open section counts at report()
    timer.report()
    assert timer.seconds == {"1. First": 2.5, "2. Second": 4.0, "3. Third": 1.0}
    assert timer.total() == pytest.approx(7.5)


def test_time_before_the_first_section_is_not_counted(clock):
    timer = SectionTimer(clock=clock)
    clock.advance(100.0)
    timer.section("A")
    clock.advance(1.0)
    timer.report()
    assert timer.seconds == {"A": 1.0}


def test_a_section_named_twice_adds_up(clock):
    timer = SectionTimer(clock=clock)
    timer.section("A")
    clock.advance(1.0)
    timer.section("B")
    clock.advance(2.0)
    timer.section("A")                     # e.g. a learner re-runs an earlier section
    clock.advance(3.0)
    timer.report()
    assert timer.seconds == {"A": 4.0, "B": 2.0}
    assert list(timer.seconds) == ["A", "B"], "sections keep the order they were first started in"


def test_report_twice_counts_each_second_once(clock):
    timer = SectionTimer(clock=clock)
    timer.section("A")
    clock.advance(2.0)
    timer.report()
    timer.report()
    clock.advance(1.0)
    timer.report()
    assert timer.seconds == {"A": 3.0}


def test_report_table(clock, monkeypatch):
    monkeypatch.setenv("DDPM_TEACH_SIZE", "ci")
    timer = SectionTimer(clock=clock)
    timer.section("Imports")
    clock.advance(1.25)
    timer.section("10. A longer section name")
    clock.advance(12.0)
    lines = timer.report().splitlines()
    width = len("10. A longer section name")
    assert lines[0] == f"{'Imports':<{width}}  {1.25:7.1f} s"
    assert lines[1] == f"{'10. A longer section name':<{width}}  {12.0:7.1f} s"
    assert set(lines[2]) == {"-"} and len(lines[2]) == width + 11
    assert lines[3].split() == ["total", "13.2", "s"]
    assert lines[4] == f"size ci; {course.machine()}"
    assert len(lines) == 5


def test_report_with_no_sections(clock):
    lines = SectionTimer(clock=clock).report().splitlines()
    assert lines[-2].split() == ["total", "0.0", "s"]
    assert lines[-1].startswith("size ")


def test_module_level_section_and_section_times(monkeypatch, capsys, clock):
    monkeypatch.setattr(course, "_TIMER", SectionTimer(clock=clock))
    course.section("1. Only")
    clock.advance(3.0)
    course.section_times()
    out = capsys.readouterr().out
    assert "1. Only" in out and "3.0 s" in out and "total" in out
    assert "threads" in out or "GPU" in out


# --- machine() -------------------------------------------------------------------------------------

def test_machine_names_the_cpu_and_its_threads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = course.machine()
    assert isinstance(line, str) and line.startswith("CPU: ")
    assert f"{torch.get_num_threads()} torch threads" in line
    if Path("/proc/cpuinfo").is_file():     # Linux: the bf16 features that decide this course's speed
        assert re.search(r"\((AMX|AVX-512-BF16|no native bf16)", line), line


def test_machine_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Some GPU")
    assert course.machine() == "GPU: Some GPU"


# --- inside IPython: only the time cells spend running counts ----------------------------------------

IPYTHON_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {repo!r})
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)

    import ddpm_teach.course as course

    class FakeClock:
        now = 1000.0
        def __call__(self):
            return self.now
        def advance(self, seconds):
            self.now += seconds

    clock = FakeClock()
    timer = course.SectionTimer(clock=clock)
    shell.user_ns.update(timer=timer, clock=clock)
    results = {{}}

    def run(cell):
        assert shell.run_cell(cell).success, cell

    run("clock.advance(50)")                                    # before any section: not counted
    run("timer.section('1. One')\\nclock.advance(2)")          # the cell that makes the first call
    clock.advance(100)                                          # a learner reading: between cells
    run("clock.advance(3)")
    clock.advance(100)
    run("timer.section('2. Two')\\nclock.advance(4)")
    clock.advance(100)
    run("clock.advance(1)")
    assert not shell.run_cell("clock.advance(6)\\nraise ValueError('a failing cell still counts')").success
    results["fake"] = dict(timer.seconds)
    run("clock.advance(0.5)\\nreport = timer.report()\\nclock.advance(0.25)")
    results["report"] = shell.user_ns["report"]
    results["after_report"] = dict(timer.seconds)

    # `ipython script.py` fires no cell events: section() calls alone must split the time
    script = course.SectionTimer(clock=clock)
    script.section("1. Script")
    clock.advance(7)
    script.section("2. Script")
    clock.advance(8)
    script.report()
    results["script"] = dict(script.seconds)
    # a cell that starts a section after some work: the work before the call stays with the old section
    run("timer.section('3. Three')\\nclock.advance(1)")
    run("clock.advance(2)\\ntimer.section('4. Four')\\nclock.advance(3)")
    results["mid_cell"] = {{name: timer.seconds[name] for name in ("3. Three", "4. Four")}}

    # the module-level timer, on the real clock: sleeping between cells is not counted
    shell.user_ns["course"] = course
    run("course.section('1. Real')\\nimport time\\ntime.sleep(0.05)")
    time.sleep(0.6)                                             # between cells
    run("time.sleep(0.05)")
    time.sleep(0.6)
    run("course.section('2. Real')")
    run("course.section_times()")
    results["real"] = dict(course._TIMER.seconds)
    print("RESULTS" + json.dumps(results))
""")


@pytest.fixture(scope="module")
def ipython_results(tmp_path_factory):
    """Run cells in a real IPython shell, in a subprocess (a shell changes builtins for the whole process)."""
    pytest.importorskip("IPython")
    pytest.importorskip("traitlets")
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path_factory.mktemp("ipython"))}
    done = subprocess.run([sys.executable, "-c", IPYTHON_SCRIPT.format(repo=repo)], capture_output=True, text=True,
                          timeout=240, cwd=repo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS"))
    return json.loads(line[len("RESULTS"):]), done.stdout


def test_ipython_counts_cell_time_per_section(ipython_results):
    results, _ = ipython_results
    assert results["fake"] == {"1. One": 5.0, "2. Two": 11.0}, "time between cells (reading) must not count"


def test_ipython_report_counts_the_reporting_cell(ipython_results):
    results, _ = ipython_results
    assert results["after_report"] == {"1. One": 5.0, "2. Two": 11.75}    # 0.5 before report(), 0.25 after
    assert "total" in results["report"] and "16.5 s" in results["report"]


def test_ipython_real_clock_leaves_out_the_gaps(ipython_results):
    results, stdout = ipython_results
    real = results["real"]
    assert set(real) >= {"1. Real", "2. Real"}
    assert 0.09 <= real["1. Real"] < 0.9, f"two 0.05 s cells, 1.2 s of gaps between cells: {real}"
    assert "1. Real" in stdout and "total" in stdout


def test_ipython_without_cell_events_splits_time_at_section_calls(ipython_results):
    results, _ = ipython_results
    assert results["script"] == {"1. Script": 7.0, "2. Script": 8.0}


def test_ipython_section_call_mid_cell(ipython_results):
    results, _ = ipython_results
    assert results["mid_cell"] == {"3. Three": 3.0, "4. Four": 3.0}
