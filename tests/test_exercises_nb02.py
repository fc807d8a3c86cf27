"""ddpm_teach.exercises.nb02: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here with numpy from the definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb02


def linear_alpha_bar_T(T: int, start: float = 1e-4, end: float = 0.02) -> float:
    """ᾱ_T = Π (1 − β_t), β linear from start to end over T steps (DDPM §4), in numpy float64."""
    betas = np.linspace(start, end, T)
    return float(np.prod(1.0 - betas))


def linear_snr_T(T: int) -> float:
    alpha_bar = linear_alpha_bar_T(T)
    return alpha_bar / (1.0 - alpha_bar)


# ------------------------------------------------------------------ exercise 1: ᾱ_T at T = 100
def test_alpha_bar_T_right_answers(capsys):
    exact = linear_alpha_bar_T(100)
    assert nb02.check_alpha_bar_T(exact) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb02.check_alpha_bar_T(round(exact, 3)) is True                 # three significant digits
    assert nb02.check_alpha_bar_T(np.float64(exact)) is True
    assert nb02.check_alpha_bar_T(torch.tensor(exact, dtype=torch.float64)) is True


@pytest.mark.parametrize("wrong, words", [
    (math.sqrt(linear_alpha_bar_T(100)), "√ᾱ_T"),
    (1 - linear_alpha_bar_T(100), "1 − ᾱ_T"),
    (linear_snr_T(100), "SNR(T)"),
    (float(np.prod(1 - np.linspace(1e-4, 0.02, 100)[:-1])), "one step early"),
    (linear_alpha_bar_T(1000), "T = 1000"),
    (linear_alpha_bar_T(100, 1e-4 * 10, 0.02 * 10), "rescaled"),
    (math.exp(-np.linspace(1e-4, 0.02, 100).sum()), "approximation"),
    (0.5, "Π_t (1 − β_t)"),
])
def test_alpha_bar_T_wrong_answers_get_hints(capsys, wrong, words):
    assert nb02.check_alpha_bar_T(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_alpha_bar_T_rejects_non_numbers(capsys):
    assert nb02.check_alpha_bar_T("0.3636") is True   # a numeric string is still a number
    assert nb02.check_alpha_bar_T([0.36]) is False
    assert "one number" in capsys.readouterr().out


# ------------------------------------------------------------------ exercise 2: smallest T with SNR(T) < 1e-4
def smallest_T_numpy(target: float = 1e-4) -> int:
    T = 1
    while linear_snr_T(T) >= target:
        T += 1
    return T


def test_smallest_T_is_computed_right():
    T = smallest_T_numpy()
    assert linear_snr_T(T) < 1e-4 <= linear_snr_T(T - 1)
    assert nb02.smallest_T_below(1e-4) == T


def test_smallest_T_right_answer(capsys):
    T = smallest_T_numpy()
    assert nb02.check_smallest_T(T) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb02.check_smallest_T(np.int64(T)) is True
    assert nb02.check_smallest_T(float(T)) is True


@pytest.mark.parametrize("offset, words", [
    (-1, "not below"),          # one short: SNR(T) is still ≥ 1e-4
    (-300, "Try larger T"),
    (+1, "smaller T"),          # works, but is not the smallest
])
def test_smallest_T_near_misses(capsys, offset, words):
    assert nb02.check_smallest_T(smallest_T_numpy() + offset) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_smallest_T_typical_slips(capsys):
    # the exp(−Σβ) approximation: −log(1e-4) / mean β
    approximate = math.ceil(-math.log(1e-4) / ((1e-4 + 0.02) / 2))
    assert nb02.check_smallest_T(approximate) is False
    assert "approximation" in capsys.readouterr().out
    # the first t inside the T = 1000 schedule whose SNR is below 1e-4 (instead of changing T)
    alpha_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    first_t = int(np.argmax(alpha_bar / (1 - alpha_bar) < 1e-4))
    assert nb02.check_smallest_T(first_t) is False
    assert "inside* the T = 1000" in capsys.readouterr().out
    assert nb02.check_smallest_T(1000) is False
    assert "not the smallest" in capsys.readouterr().out
    for bad in (912.5, "many", None, True, 0):
        assert nb02.check_smallest_T(bad) is False
    assert capsys.readouterr().out.count("Not yet. Hint:") == 5


def test_smallest_T_one_short_shows_enough_digits(capsys):
    # T = 910 is one short (SNR(T) = 1.003e-04, just above 1e-4): the hint must show enough digits
    # to say so, never the contradiction "SNR(T) = 0.0001, not below 0.0001"
    assert linear_snr_T(910) >= 1e-4 > linear_snr_T(911)
    assert nb02.check_smallest_T(910) is False
    out = capsys.readouterr().out
    assert "SNR(T) = 1.003e-04, not below" in out
    assert "0.0001, not below 0.0001" not in out
