"""ddpm_teach.exercises.nb11: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here from the definitions, in numpy: the straight
path x_t = (1 − t)x_0 + tε with v = ε − x_0, the flow time t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)) of a DDPM
timestep on the linear schedule, the flow Heun's 2 calls on every step, and the straightness S
(Liu et al. 2023) as a time-weighted mean of (D − v_i)²."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb11

from helpers_exercises import hint, passes

ALPHA_BAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))       # DDPM's linear schedule, T = 1000


# ------------------------------------------------------------------ exercise 1: x̂_0 and ε̂ from v̂
def test_x0_eps_answer_follows_the_straight_path():
    t, x_t, v = 0.25, 0.5, -1.2
    x0, eps = x_t - t * v, x_t + (1 - t) * v
    assert (1 - t) * x0 + t * eps == pytest.approx(x_t) and eps - x0 == pytest.approx(v)
    assert nb11.x0_eps_answer() == pytest.approx((x0, eps))
    assert (x0, eps) == pytest.approx((0.8, -0.4))


def test_x0_eps_right_answers(capsys):
    for right in ((0.8, -0.4), [0.8, -0.4], (torch.tensor(0.8), np.float64(-0.4)), (0.5 + 0.25 * 1.2, 0.5 - 0.75 * 1.2)):
        assert passes(capsys, nb11.check_x0_and_eps, right) is True


@pytest.mark.parametrize("wrong, words", [
    ((-0.4, 0.8), "swapped"),
    ((0.2, -0.4), "check the sign"),                   # x_t + t·v
    ((1.7, -0.4), "t long, not 1"),                    # x_t − v
    ((1.4, -0.4), "not 1 − t"),                        # x_t − (1 − t)·v
    ((0.8 / 0.75, -0.4), "no rescaling"),              # (x_t − t·v)/(1 − t)
    ((0.8, 1.4), "ε̂: check the sign"),                 # x_t − (1 − t)·v
    ((0.8, -0.7), "not 1: ε̂"),                         # x_t + v
    ((0.8, 0.2), "1 − t, not t"),                      # x_t + t·v
    ((0.8, -1.6), "no rescaling"),                     # (x_t + (1 − t)·v)/t
    ((0.3, -0.4), "x̂_0 does not match"),
    ((0.8, 0.1), "must equal v̂"),
])
def test_x0_eps_wrong_answers_get_hints(capsys, wrong, words):
    assert words in hint(capsys, nb11.check_x0_and_eps, wrong)


def test_x0_eps_rejects_malformed_answers(capsys):
    for bad in (0.8, "0.8, -0.4", None, (0.8,), (0.8, -0.4, 1), (True, -0.4), (0.8, float("nan"))):
        assert nb11.check_x0_and_eps(bad) is False
    assert capsys.readouterr().out.count("give two numbers") == 7


# ------------------------------------------------------------------ exercise 2: the flow time of DDPM's t = 500
def flow_time(k: int) -> float:
    a, b = math.sqrt(ALPHA_BAR[k]), math.sqrt(1 - ALPHA_BAR[k])
    return b / (a + b)


def test_flow_time_answer_is_the_normalised_noise_weight():
    assert nb11.flow_time_answer() == pytest.approx(flow_time(500), rel=1e-9)
    sigma = math.sqrt((1 - ALPHA_BAR[500]) / ALPHA_BAR[500])
    assert nb11.flow_time_answer() == pytest.approx(sigma / (1 + sigma), rel=1e-9)   # 09's σ, as σ/(1 + σ)


def test_flow_time_right_answers(capsys):
    right = flow_time(500)
    for answer in (right, round(right, 3), round(right, 4), np.float32(right), torch.tensor(right)):
        assert passes(capsys, nb11.check_flow_time, answer) is True


@pytest.mark.parametrize("wrong, words", [
    (0.5, "fraction of the steps"),
    (500 / 999, "fraction of the steps"),
    (round(flow_time(499), 4), "0-based"),
    (round(flow_time(501), 4), "0-based"),
    (round(flow_time(501), 3), "0-based"),             # 0.776
    (0.774, "cut off"),                                 # index 499 rounded, or the right value truncated
    (0.774, "0-based"),
    (999 * flow_time(500), "t·999"),                   # the UNet's time input
    (774, "t·999"),
    (1000 * flow_time(500), "t·999"),
    (math.sqrt(1 - ALPHA_BAR[500]), "scale x_t by"),
    (1 - flow_time(500), "weight of the data"),
    (1 - ALPHA_BAR[500], "*variances*"),
    (ALPHA_BAR[500], "*variances*"),
    (math.sqrt((1 - ALPHA_BAR[500]) / ALPHA_BAR[500]), "σ/(1 + σ)"),
    (0.77, "at least 3 decimals"),
    (0.3, "weights add up to 1"),
])
def test_flow_time_wrong_answers_get_hints(capsys, wrong, words):
    assert words in hint(capsys, nb11.check_flow_time, wrong)


def test_flow_time_wrong_index_band_stays_clear_of_the_right_answers(capsys):
    right = flow_time(500)
    assert round(flow_time(501), 3) == 0.776 and round(flow_time(499), 3) == 0.774 and round(right, 3) == 0.775
    gap = min(abs(flow_time(501) - right), abs(right - flow_time(499)))
    assert gap - nb11.WRONG_INDEX_TOL > nb11.FLOW_TIME_TOL                # the two bands do not touch
    for answer in (right - 0.99 * nb11.FLOW_TIME_TOL, right + 0.99 * nb11.FLOW_TIME_TOL):
        assert passes(capsys, nb11.check_flow_time, answer) is True


def test_flow_time_rejects_malformed_answers(capsys):
    for bad in ("0.775", None, (0.775,), True, torch.tensor([0.7, 0.8])):
        assert nb11.check_flow_time(bad) is False
    assert capsys.readouterr().out.count("give one number") == 5


# ------------------------------------------------------------------ exercise 3: steps within 25 NFE
def test_budget_answer_follows_the_nfe_counts():
    # flow Euler: 1 call per step; flow Heun: 2 calls on every step, the last one included
    assert nb11.budget_steps_answer() == (25, max(k for k in range(1, 26) if 2 * k <= 25)) == (25, 12)


def test_budget_right_answers(capsys):
    for right in ((25, 12), [25, 12], (np.int64(25), torch.tensor(12)), (25.0, 12.0)):
        assert passes(capsys, nb11.check_budget_steps, right) is True


@pytest.mark.parametrize("wrong, words", [
    ((12, 25), "swapped"),
    ((24, 12), "exactly one network call per step"),
    ((12, 12), "exactly one network call per step"),
    ((25, 13), "2K − 1"),                       # notebook 09's Heun count
    ((25, 25), "twice per step"),
    ((25, 14), "28 network calls"),
    ((25, 10), "Find the largest K"),
])
def test_budget_wrong_answers_get_hints(capsys, wrong, words):
    assert words in hint(capsys, nb11.check_budget_steps, wrong)


def test_budget_rejects_malformed_answers(capsys):
    for bad in (25, "25, 12", None, (25,), (25, 12, 1), (25, 12.5), (True, 12), (25, float("nan"))):
        assert nb11.check_budget_steps(bad) is False
    assert capsys.readouterr().out.count("two whole numbers") == 8


# ------------------------------------------------------------------ exercise 4: straightness by hand
def straightness(times, xs) -> float:
    """Σ_i |Δt_i|/|t_K − t_0| · (D − v_i)², with v_i = Δx_i/Δt_i and D = (x_K − x_0)/(t_K − t_0)."""
    times, xs = np.asarray(times, float), np.asarray(xs, float)
    v = np.diff(xs) / np.diff(times)
    line = (xs[-1] - xs[0]) / (times[-1] - times[0])
    weights = np.abs(np.diff(times)) / abs(times[-1] - times[0])
    return float(np.sum(weights * (line - v) ** 2))


def test_straightness_answer_is_the_weighted_mean_of_squared_deviations():
    ex = nb11.STRAIGHTNESS_EXERCISE
    assert nb11.straightness_answer() == pytest.approx(straightness(ex["times"], ex["x"]), rel=1e-12)
    assert nb11.straightness_answer() == pytest.approx(0.2 * (0.8 - 2.0) ** 2 + 0.8 * (0.8 - 0.5) ** 2)   # 0.36
    assert straightness((1.0, 0.5, 0.0), (2.0, 1.0, 0.0)) == 0.0            # a straight line at constant speed


def test_straightness_right_answers(capsys):
    for right in (0.36, np.float64(0.36), torch.tensor(0.36), 0.2 * 1.44 + 0.8 * 0.09):
        assert passes(capsys, nb11.check_straightness, right) is True


@pytest.mark.parametrize("wrong, words", [
    ((1.44 + 0.09) / 2, "not equally"),              # an unweighted mean
    (1.44 + 0.09, "not a plain sum"),
    (0.16, "displacements, not velocities"),         # Δx instead of Δx/Δt
    (0.2 * 2.8**2 + 0.8 * 1.3**2, "same sign convention"),
    (0.6, "do not take the square root"),
    (0.2 * 1.2 + 0.8 * 0.3, "not the distance |D − v_i|"),
    (0.8 * 1.44 + 0.2 * 0.09, "weights are swapped"),  # 1.17: |Δt| of the other step
    (1.17, "weights are swapped"),
    (1.0, "compute each step's velocity"),
])
def test_straightness_wrong_answers_get_hints(capsys, wrong, words):
    assert words in hint(capsys, nb11.check_straightness, wrong)


def test_straightness_rejects_malformed_answers(capsys):
    for bad in ("0.36", None, [0.36, 0.1], False):
        assert nb11.check_straightness(bad) is False
    assert capsys.readouterr().out.count("give one number") == 4


def test_checks_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    nb11.check_x0_and_eps((0.8, -0.4))
    nb11.check_flow_time(0.775)
    nb11.check_budget_steps((25, 12))
    nb11.check_straightness(0.36)
    assert torch.equal(state, torch.get_rng_state())
