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

__all__ = ["notebook_size", "is_ci_size", "by_size", "repo_root", "checkpoint_path", "timed", "machine"]

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


def machine() -> str:
    """One line naming this machine, for runtime notes."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


@contextmanager
def timed(label: str = "this cell"):
    """``with timed("training"): ...`` prints how long the block took, and on what."""
    start = time.perf_counter()
    yield
    print(f"{label} took {time.perf_counter() - start:.1f} s ({machine()})")
