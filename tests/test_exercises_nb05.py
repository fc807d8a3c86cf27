"""ddpm_teach.exercises.nb05: the expected answers agree with an independent numpy computation
(DDPM eq. 11, Improved DDPM §4), right answers pass, and the typical wrong answers get a hint
that names the slip."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb05

from helpers_exercises import hint as _hint, passes as _passes

BETAS = np.linspace(1e-4, 0.02, 1000)          # DDPM's linear schedule, 0-based
ALPHA_BAR = np.cumprod(1.0 - BETAS)


def eps_coef_numpy(t: int) -> float:
    return BETAS[t] / (math.sqrt(1 - BETAS[t]) * math.sqrt(1 - ALPHA_BAR[t]))


# ------------------------------------------------------------------ exercise 1: the ε factor of eq. 11
def test_eps_coefficient_matches_numpy():
    assert math.isclose(nb05.eps_coefficient(), eps_coef_numpy(500), rel_tol=1e-9)


@pytest.mark.parametrize("answer", [eps_coef_numpy(500), round(eps_coef_numpy(500), 5), np.float64(eps_coef_numpy(500)),
                                    torch.tensor(eps_coef_numpy(500), dtype=torch.float32)])
def test_eps_coefficient_right_answers(capsys, answer):
    assert _passes(capsys, nb05.check_eps_coefficient, answer)


@pytest.mark.parametrize("wrong, words", [
    (BETAS[500] / math.sqrt(1 - ALPHA_BAR[500]), "divides the whole bracket"),
    (BETAS[500] / (math.sqrt(ALPHA_BAR[500]) * math.sqrt(1 - ALPHA_BAR[500])), "√ᾱ_t"),
    (BETAS[500] / ((1 - BETAS[500]) * math.sqrt(1 - ALPHA_BAR[500])), "square root, √α_t"),
    (BETAS[500] / (math.sqrt(1 - BETAS[500]) * (1 - ALPHA_BAR[500])), "√(1 − ᾱ_t)"),
    (math.sqrt(1 - ALPHA_BAR[500]) / math.sqrt(ALPHA_BAR[500]), "eq. 15"),
    (1 / math.sqrt(1 - BETAS[500]), "factor of x_t"),
    (eps_coef_numpy(499), "index 499"),
    (eps_coef_numpy(501), "index 501"),
    (-eps_coef_numpy(500), "wrong sign"),
    (1 / eps_coef_numpy(500), "upside down"),                   # the factor inverted: (√α_t·√(1−ᾱ_t))/β_t
    (0.5, "read eq. 11"),
])
def test_eps_coefficient_slips(capsys, wrong, words):
    assert words in _hint(capsys, nb05.check_eps_coefficient, wrong)


@pytest.mark.parametrize("bad", ["abc", None, [0.01], True, float("nan")])
def test_eps_coefficient_rejects_non_numbers(capsys, bad):
    assert "one number" in _hint(capsys, nb05.check_eps_coefficient, bad)


# ------------------------------------------------------------------ exercise 2: respaced β'
def test_respaced_first_beta_matches_numpy():
    expected = 1 - ALPHA_BAR[999] / ALPHA_BAR[946]        # τ = 999, 946, 894, ..., 0 for steps=20
    assert math.isclose(nb05.respaced_first_beta(), expected, rel_tol=1e-9)


def test_respaced_first_beta_right_answer(capsys):
    assert _passes(capsys, nb05.check_respaced_first_beta, 1 - ALPHA_BAR[999] / ALPHA_BAR[946])
    assert _passes(capsys, nb05.check_respaced_first_beta, round(1 - ALPHA_BAR[999] / ALPHA_BAR[946], 4))


@pytest.mark.parametrize("wrong, words", [
    (BETAS[999], "original β"),
    (BETAS[946:1000].sum(), "alphas multiply"),                # 54 terms, t = 946 ... 999
    (BETAS[947:1000].sum(), "alphas multiply"),                # the 53 steps of the jump, t = 947 ... 999
    (ALPHA_BAR[999] / ALPHA_BAR[946], "β' = 1 − α'"),
    (ALPHA_BAR[946] / ALPHA_BAR[999], "upside down"),          # the ratio inverted (> 1)
    (1 - ALPHA_BAR[946] / ALPHA_BAR[999], "came out negative"),  # β' with the ratio inverted
    (1 - ALPHA_BAR[999], "all the way"),
    (1 - ALPHA_BAR[999] / ALPHA_BAR[888], "steps=10"),    # §3's S = 10 value, not this sampler's
    (0.5, "sampler.timesteps"),
])
def test_respaced_first_beta_slips(capsys, wrong, words):
    assert words in _hint(capsys, nb05.check_respaced_first_beta, wrong)


# ------------------------------------------------------------------ exercise 3: which σ is larger
@pytest.mark.parametrize("answer", ["fixed_large", " Fixed_Large ", "beta", "β"])
def test_larger_variance_right(capsys, answer):
    assert _passes(capsys, nb05.check_larger_variance, answer)


@pytest.mark.parametrize("answer, words", [
    ("fixed_small", "eq. 7"), ("β̃", "eq. 7"), ("equal", "not at t = 1"), ("learned_range", "answer 'fixed_large'"),
    (1, "a string"),
])
def test_larger_variance_wrong(capsys, answer, words):
    assert words in _hint(capsys, nb05.check_larger_variance, answer)


def test_larger_variance_premise():
    """β̃_t < β_t at every t, and β̃ = 0 at index 0, as the success message says."""
    posterior = BETAS * np.concatenate([[0.0], 1 - ALPHA_BAR[:-1]]) / (1 - ALPHA_BAR)
    assert posterior[0] == 0.0 and np.all(posterior < BETAS)
