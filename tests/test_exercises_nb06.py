"""ddpm_teach.exercises.nb06: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here with numpy from the definitions
(DDIM eq. 16; the uniform spacing rounds linspace(0, T−1, steps))."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb06


def alpha_bar(T: int = 1000) -> np.ndarray:
    """ᾱ_t of the DDPM linear schedule (β from 1e-4 to 0.02), float64, 0-based."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, T))


def sigma(t: int, t_prev: int, eta: float) -> float:
    """DDIM eq. 16: σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)."""
    ab = alpha_bar()
    return eta * math.sqrt((1 - ab[t_prev]) / (1 - ab[t])) * math.sqrt(1 - ab[t] / ab[t_prev])


# uniform, steps=20, T=1000: 999, 946, ..., 473, 421, 368, ..., 53, 0, so the step at t=421 goes to t=368
RIGHT_SIGMA = sigma(421, 368, 0.5)


# ------------------------------------------------------------------ exercise 1: σ at t = 421
def test_sigma_right_answers(capsys):
    assert nb06.check_sigma(RIGHT_SIGMA) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb06.check_sigma(round(RIGHT_SIGMA, 4)) is True
    assert nb06.check_sigma(np.float64(RIGHT_SIGMA)) is True
    assert nb06.check_sigma(torch.tensor(RIGHT_SIGMA)) is True


@pytest.mark.parametrize("wrong, words", [
    (sigma(421, 368, 1.0), "η = 1"),
    (RIGHT_SIGMA ** 2, "σ²"),
    (sigma(421, 420, 0.5), "one-step move"),
    (sigma(421, 420, 1.0), "√β̃_t"),
    (sigma(422, 369, 0.5), "off by one"),
    (sigma(473, 421, 0.5), "step at t=473"),
    (0.0, "η = 0"),
    (0.9, "prev_timestep"),
])
def test_sigma_wrong_answers_get_hints(capsys, wrong, words):
    assert nb06.check_sigma(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_sigma_rejects_non_numbers(capsys):
    for bad in ([0.3], "many", None, True, float("nan")):
        assert nb06.check_sigma(bad) is False
    assert capsys.readouterr().out.count("one number") == 5


def test_ddim_sigma_helper_matches_eq_16():
    from ddpm_teach.schedules import NoiseSchedule
    schedule = NoiseSchedule.from_name("linear", 1000)
    assert nb06.ddim_sigma(schedule, 421, 368, 0.5) == pytest.approx(RIGHT_SIGMA, rel=1e-10)
    assert nb06.ddim_sigma(schedule, 0, -1, 1.0) == 0.0          # last step: ᾱ_prev = 1, no noise


# ------------------------------------------------------------------ exercise 2: uniform timesteps, steps=5
RIGHT_TIMESTEPS = [int(v) for v in np.round(np.linspace(0, 999, 5))][::-1]


def test_right_timesteps_are_what_numpy_gives():
    assert RIGHT_TIMESTEPS == [999, 749, 500, 250, 0]         # np.round: 499.5 → 500 (ties to even)


def test_timesteps_right_answers(capsys):
    assert nb06.check_timesteps(RIGHT_TIMESTEPS) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb06.check_timesteps(tuple(RIGHT_TIMESTEPS)) is True
    assert nb06.check_timesteps(torch.tensor(RIGHT_TIMESTEPS)) is True
    assert nb06.check_timesteps(np.array(RIGHT_TIMESTEPS)) is True
    assert nb06.check_timesteps([float(v) for v in RIGHT_TIMESTEPS]) is True


@pytest.mark.parametrize("wrong, words", [
    (RIGHT_TIMESTEPS[::-1], "wrong order"),
    ([999, 749, 499, 249, 0], "truncates"),
    ([1000, 750, 500, 250, 0], "out of range"),
    ([800, 600, 400, 200, 0], "'leading'"),
    ([999, 799, 599, 399, 199], "'trailing'"),
    ([800, 450, 200, 50, 0], "'quadratic'"),
    ([999, 500, 0], "5 timesteps"),
    ([999, 750, 500, 250, 0], "linspace"),
    ([999, 749, 500, 250, -1], "0-based index"),
])
def test_timesteps_wrong_answers_get_hints(capsys, wrong, words):
    assert nb06.check_timesteps(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_timesteps_rejects_non_lists(capsys):
    for bad in (5, None, [999.5, 749, 500, 250, 0], [True, 1, 2, 3, 4]):
        assert nb06.check_timesteps(bad) is False
    assert capsys.readouterr().out.count("list of whole numbers") == 4
