"""Shared by the tests of the exercise checks (ddpm_teach.exercises.nbNN): a right answer prints
``Correct!`` and returns True; a wrong one prints ``Not yet. Hint: ...`` and returns False."""
from __future__ import annotations


def passes(capsys, check, *answer) -> bool:
    """Run ``check(*answer)``; assert it printed the message that matches its verdict; return it."""
    ok = check(*answer)
    out = capsys.readouterr().out
    assert isinstance(ok, bool)
    assert out.startswith("Correct!") if ok else out.startswith("Not yet. Hint:")
    return ok


def hint(capsys, check, *answer) -> str:
    """Assert that ``check(*answer)`` rejects the answer with a hint; return what it printed."""
    assert check(*answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:")
    return out
