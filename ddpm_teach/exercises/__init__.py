"""Exercise checks for the notebooks: one module per notebook (``nb01``, ``nb02``, ...).

Each ``check_*`` function takes the learner's answer, prints ``Correct!`` and returns True,
or prints a hint that says what to look at and returns False.  They are tested in
``tests/test_exercises_nbNN.py``.
"""
from __future__ import annotations

__all__ = ["report"]


def report(ok: bool, hint: str, success: str = "Correct!") -> bool:
    """Print the outcome of a check and return it."""
    print(success if ok else f"Not yet. Hint: {hint}")
    return bool(ok)
