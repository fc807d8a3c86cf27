"""ddpm_teach.exercises.nb09: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here from the definitions, in numpy where
they are numbers: Heun's NFE = 2·steps − 1 (Karras et al. 2022, Alg. 1: no correction on the
step to σ = 0) and DPM-Solver++(2M)'s = steps, and the first-order DPM-Solver++ step in x̃ = x_t/√ᾱ_t, σ = √((1−ᾱ)/ᾱ)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb09

ALPHA_BAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))       # DDPM's linear schedule, T = 1000


def sigma(t: int) -> float:
    return math.sqrt((1 - ALPHA_BAR[t]) / ALPHA_BAR[t])


# ------------------------------------------------------------------ exercise 1: steps within 30 NFE
def test_budget_answer_follows_the_nfe_counts():
    # DPM-Solver++(2M): 1 call per step; Heun: 2n − 1 calls for n steps (no correction on the step to σ = 0)
    heun = max(n for n in range(1, 31) if 2 * n - 1 <= 30)
    assert nb09.budget_steps_answer() == (30, heun) == (30, 15)


def test_budget_right_answers(capsys):
    for right in ((30, 15), [30, 15], (np.int64(30), torch.tensor(15)), (30.0, 15.0)):
        assert nb09.check_budget_steps(right) is True
        assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong, words", [
    ((15, 30), "swapped"),
    ((15, 15), "one network call per step"),
    ((29, 15), "exactly one network call per step"),
    ((30, 16), "31 network calls"),
    ((30, 14), "counts 2 calls for every Heun step"),
    ((30, 30), "twice per step"),
    ((30, 10), "Find the largest n"),
])
def test_budget_wrong_answers_get_hints(capsys, wrong, words):
    assert nb09.check_budget_steps(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_budget_rejects_malformed_answers(capsys):
    for bad in (15, "30, 15", None, (30,), (30, 15, 1), (30, 15.5), (True, 15), (30, float("nan"))):
        assert nb09.check_budget_steps(bad) is False
    assert capsys.readouterr().out.count("two whole numbers") == 8


# ------------------------------------------------------------------ exercise 2: one DPM-Solver++(1) step
def right_step(schedule, x_t, eps, t, t_next):
    """DPM-Solver++ first order in x̃ (Lu et al. 2022b): x̃' = (σ'/σ) x̃ − (e^{−h} − 1) D, from numpy's ᾱ."""
    s, s_next = sigma(t), sigma(t_next)
    x_tilde = x_t * math.sqrt(1 + s**2)                  # x_t/√ᾱ_t
    denoised = x_tilde - s * eps                         # D = x̂_0, unclipped
    h = math.log(s / s_next)                             # λ' − λ, λ = −log σ
    x_next = (s_next / s) * x_tilde - math.expm1(-h) * denoised
    return x_next / math.sqrt(1 + s_next**2)             # back to x_t's scaling


def right_step_float32(schedule, x_t, eps, t, t_next):
    """The same in float32 with the package's schedule tensors, the way a learner may write it."""
    ab, ab_next = schedule.alphas_cumprod[t].float(), schedule.alphas_cumprod[t_next].float()
    s, s_next = ((1 - ab) / ab).sqrt(), ((1 - ab_next) / ab_next).sqrt()
    x_tilde = x_t.float() / ab.sqrt()
    denoised = x_tilde - s * eps.float()
    return (s_next / s * x_tilde + (1 - s_next / s) * denoised) * ab_next.sqrt()


def ddim_form(schedule, x_t, eps, t, t_next):
    """DDIM eq. 12 with η = 0: the same step written as √ᾱ' x̂_0 + √(1−ᾱ') ε̂."""
    ab, ab_next = ALPHA_BAR[t], ALPHA_BAR[t_next]
    pred_x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    return math.sqrt(ab_next) * pred_x0 + math.sqrt(1 - ab_next) * eps


def test_first_order_step_accepts_right_answers(capsys):
    for fn in (right_step, right_step_float32, ddim_form):
        assert nb09.check_first_order_step(fn) is True
        assert capsys.readouterr().out.startswith("Correct!")


def returns_x_tilde(schedule, x_t, eps, t, t_next):
    return right_step(schedule, x_t, eps, t, t_next) * math.sqrt(1 + sigma(t_next) ** 2)


def no_scaling(schedule, x_t, eps, t, t_next):
    s, s_next = sigma(t), sigma(t_next)
    return (s_next / s) * x_t + (1 - s_next / s) * (x_t - s * eps)


def scales_out_only(schedule, x_t, eps, t, t_next):
    return no_scaling(schedule, x_t, eps, t, t_next) / math.sqrt(1 + sigma(t_next) ** 2)


def wrong_sign_of_h(schedule, x_t, eps, t, t_next):
    s, s_next = sigma(t), sigma(t_next)
    x_tilde = x_t * math.sqrt(1 + s**2)
    x_next = (s_next / s) * x_tilde - math.expm1(math.log(s / s_next)) * (x_tilde - s * eps)
    return x_next / math.sqrt(1 + s_next**2)


def integrates_eps(schedule, x_t, eps, t, t_next):
    s, s_next = sigma(t), sigma(t_next)
    x_tilde = x_t * math.sqrt(1 + s**2)
    return ((s_next / s) * x_tilde + (1 - s_next / s) * eps) / math.sqrt(1 + s_next**2)


def returns_pred_x0(schedule, x_t, eps, t, t_next):
    return x_t * math.sqrt(1 + sigma(t) ** 2) - sigma(t) * eps


def returns_input(schedule, x_t, eps, t, t_next):
    return x_t


def euler_in_x_t(schedule, x_t, eps, t, t_next):
    return x_t + (sigma(t_next) - sigma(t)) * eps          # Euler without the change of variable: the same slip


def something_else(schedule, x_t, eps, t, t_next):
    return 0.9 * x_t - 0.1 * eps


def raises(schedule, x_t, eps, t, t_next):
    raise KeyError("sigma")


def wrong_shape(schedule, x_t, eps, t, t_next):
    return right_step(schedule, x_t, eps, t, t_next)[0]


@pytest.mark.parametrize("fn, words", [
    (returns_x_tilde, "x̃_next, the scaled variable"),
    (scales_out_only, "x_t itself is not x̃_t"),
    (no_scaling, "works on x̃"),
    (wrong_sign_of_h, "sign of h"),
    (integrates_eps, "*data* prediction"),
    (returns_pred_x0, "x̂_0, the denoiser's guess"),
    (returns_input, "x_t unchanged"),
    (euler_in_x_t, "works on x̃"),
    (something_else, "does not match"),
    (raises, "raised KeyError"),
    (wrong_shape, "shape"),
    (lambda *args: 0.5, "return a tensor"),
])
def test_first_order_step_rejects_wrong_functions_with_a_hint(capsys, fn, words):
    assert nb09.check_first_order_step(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_first_order_step_wants_the_function(capsys):
    assert nb09.check_first_order_step(torch.zeros(3)) is False
    assert "pass your function itself" in capsys.readouterr().out


def test_checks_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    nb09.check_first_order_step(right_step)
    nb09.check_budget_steps((30, 15))
    assert torch.equal(state, torch.get_rng_state())
