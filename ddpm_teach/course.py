"""Helpers the notebooks share: the size knob, shipped checkpoints, honest runtime notes.

Every notebook has one size knob, the environment variable ``DDPM_TEACH_SIZE``:

* ``full`` (the default): what learners get;
* ``ci``: what ``pytest --nbval`` runs on a 2-core CPU with no internet, in minutes.

``pytest`` sets ``ci`` for you (see the repository's ``conftest.py``).
"""
from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["notebook_size", "is_ci_size", "by_size", "repo_root", "checkpoint_path", "timed", "machine",
           "SectionTimer", "section", "section_times"]

SIZES = ("full", "ci")


def notebook_size() -> str:
    """``"full"`` or ``"ci"``, from ``DDPM_TEACH_SIZE`` (default ``"full"``)."""
    size = os.environ.get("DDPM_TEACH_SIZE", "full").strip().lower()
    if size not in SIZES:
        raise ValueError(f"DDPM_TEACH_SIZE must be one of {SIZES}, got {size!r}.")
    return size


def is_ci_size() -> bool:
    return notebook_size() == "ci"


def by_size(full, ci):
    """``full`` at full size, ``ci`` at CI size: ``steps = by_size(full=2000, ci=20)``."""
    return ci if is_ci_size() else full


def repo_root() -> Path:
    """The repository folder (the parent of the ``ddpm_teach`` package)."""
    return Path(__file__).resolve().parent.parent


def checkpoint_path(name: str) -> Path:
    """Path of a shipped checkpoint, e.g. ``checkpoint_path("fashion_mnist_ddpm.pt")``, with a
    clear error if it is missing."""
    path = repo_root() / "checkpoints" / name
    if not path.is_file():
        raise FileNotFoundError(f"shipped checkpoint {path} is missing. Run from a full clone of ddpm-teach "
                                "(the checkpoints/ folder), or retrain it with the command in checkpoints/README.md.")
    return path


def _cpu_model() -> str:
    """The CPU's model name and the flags that decide this course's speed (bf16 and AMX), from
    /proc/cpuinfo on Linux; the platform's own string elsewhere."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines() if line.startswith("flags")), set())
    features = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512-BF16")) if flag in flags]
    return f"{name} ({', '.join(features) if features else 'no native bf16'})"


def machine() -> str:
    """One line naming this machine, for runtime notes: the GPU, or the CPU model with its bf16
    features and torch's thread count."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {_cpu_model()}, {torch.get_num_threads()} torch threads"


@contextmanager
def timed(label: str = "this cell"):
    """``with timed("training"): ...`` prints how long the block took, and on what."""
    start = time.perf_counter()
    yield
    print(f"{label} took {time.perf_counter() - start:.1f} s ({machine()})")


class SectionTimer:
    """Execution time per notebook section, for the closing cell of every notebook.

    ``timer.section("2. Training")`` at the top of a section's first code cell starts that
    section.  In Jupyter the timer adds up only the time cells spend *running* (IPython's
    ``pre_run_cell`` / ``post_run_cell`` events), so reading time between cells does not count;
    outside IPython it counts wall time from one ``section`` call to the next.  ``report()`` gives
    the table the last cell prints.
    """

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.current: str | None = None
        self._cell_start: float | None = None
        self._mark: float | None = None
        self._ipython = None

    def section(self, name: str) -> None:
        """Start section ``name``: later cell time is counted under it."""
        self._hook_ipython()
        if self._ipython is None and self.current is not None and self._mark is not None:
            self._add(self.clock() - self._mark)
        elif self._ipython is not None and self._cell_start is not None:
            # mid-cell (or a script run by `ipython file.py`, which fires no cell events): the time
            # so far belongs to the section that is ending
            now = self.clock()
            self._add(now - self._cell_start)
            self._cell_start = now
        self.current = name
        self.seconds.setdefault(name, 0.0)
        self._mark = self.clock()

    def _add(self, seconds: float) -> None:
        if self.current is not None:
            self.seconds[self.current] = self.seconds.get(self.current, 0.0) + seconds

    def _hook_ipython(self) -> None:
        if self._ipython is not None:
            return
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
        self._ipython = shell
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)
        self._cell_start = self.clock()          # the cell that made the first section() call is running now

    def _pre_run_cell(self, *_) -> None:
        self._cell_start = self.clock()

    def _post_run_cell(self, *_) -> None:
        if self._cell_start is not None:
            self._add(self.clock() - self._cell_start)
            self._cell_start = None

    def total(self) -> float:
        return sum(self.seconds.values())

    def report(self) -> str:
        """A table of seconds per section, their total, and the machine."""
        if self._ipython is None and self.current is not None and self._mark is not None:
            self._add(self.clock() - self._mark)
            self._mark = self.clock()
        if self._ipython is not None and self._cell_start is not None:   # count the reporting cell so far
            self._add(self.clock() - self._cell_start)
            self._cell_start = self.clock()
        width = max([len(name) for name in self.seconds] + [len("total")])
        lines = [f"{name:<{width}}  {seconds:7.1f} s" for name, seconds in self.seconds.items()]
        lines += ["-" * (width + 11), f"{'total':<{width}}  {self.total():7.1f} s",
                  f"size {notebook_size()}; {machine()}"]
        return "\n".join(lines)


_TIMER = SectionTimer()


def section(name: str) -> None:
    """Start timing notebook section ``name`` (the course-wide :class:`SectionTimer`)."""
    _TIMER.section(name)


def section_times() -> None:
    """Print this notebook's run time per section, on this machine (its last cell calls it)."""
    print(_TIMER.report())
