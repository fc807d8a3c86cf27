"""Exercise checks for the notebooks: one module per notebook (``nb01``, ``nb02``, ...).

Each ``check_*`` function takes the learner's answer, prints ``Correct!`` and returns True,
or prints a hint that says what to look at and returns False.  They are tested in
``tests/test_exercises_nbNN.py``.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["report", "as_float", "as_whole_number", "close"]


def report(ok: bool, hint: str, success: str = "Correct!") -> bool:
    """Print the outcome of a check and return it."""
    print(success if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


def as_float(answer, *, strings: bool = False) -> float | None:
    """The learner's answer as a finite float: a Python number, a numpy scalar or a one-element
    tensor or array; None for anything else.  ``True`` is an int to Python but not an answer here,
    and numeric text ("0.36") counts only with ``strings=True``."""
    if isinstance(answer, bool) or (isinstance(answer, (str, bytes)) and not strings):
        return None
    if hasattr(answer, "numel") and answer.numel() != 1:
        return None
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def as_whole_number(answer) -> int | None:
    """The learner's answer as an int when it is a whole number (``3``, ``3.0``, a one-element tensor);
    None for anything else, ``True`` included."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, numbers.Integral):
        return int(answer)
    value = as_float(answer)
    if value is None or value != int(value):
        return None
    return int(value)


def close(a: float, b: float, rel: float) -> bool:
    """a and b agree to the relative tolerance ``rel`` (or both are within 1e-12 of zero)."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
