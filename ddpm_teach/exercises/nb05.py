"""Exercise checks for notebook 05 (DDPM sampling).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers are computed here from
:mod:`ddpm_teach.schedules` and :mod:`ddpm_teach.samplers`, never typed in, so they follow the
package.  All exercises use DDPM's linear schedule with T = 1000 and 0-based indices.
"""
from __future__ import annotations

import math

from ..samplers import DDPMSampler
from ..schedules import NoiseSchedule
from . import as_float, close, report

__all__ = [
    "EPS_COEF_T",
    "RESPACED_STEPS",
    "eps_coefficient",
    "respaced_first_beta",
    "check_eps_coefficient",
    "check_respaced_first_beta",
    "check_larger_variance",
]

EPS_COEF_T = 500       # exercise 1: 0-based index (the paper's t = 501)
RESPACED_STEPS = 20    # exercise 2: DDPMSampler(schedule, steps=20) (§3 of the notebook prints S = 10, §4's table S = 50)


def _schedule() -> NoiseSchedule:
    return NoiseSchedule.from_name("linear", 1000)


def eps_coefficient(t: int = EPS_COEF_T, schedule: NoiseSchedule | None = None) -> float:
    """The factor in front of ε_θ in DDPM eq. 11, μ_θ = (x_t − β_t/√(1−ᾱ_t) ε_θ)/√α_t:
    β_t / (√α_t √(1 − ᾱ_t)), at 0-based index ``t``."""
    schedule = schedule or _schedule()
    beta, alpha, alpha_bar = (float(getattr(schedule, name)[t]) for name in ("betas", "alphas", "alphas_cumprod"))
    return beta / (math.sqrt(alpha) * math.sqrt(1.0 - alpha_bar))


def check_eps_coefficient(answer) -> bool:
    """Exercise 1: in eq. 11, μ_θ(x_t, t) = 1/√α_t · (x_t − β_t/√(1−ᾱ_t) · ε_θ(x_t, t)), the
    number that multiplies ε_θ, for the linear schedule (T = 1000) at 0-based index t = 500.
    Four significant digits are enough."""
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float), not {answer!r}.")
    schedule, t = _schedule(), EPS_COEF_T
    right = eps_coefficient(t, schedule)
    rel = 4e-4
    if close(value, right, rel):
        return report(True, "", success=f"Correct! β_t/(√α_t·√(1−ᾱ_t)) = {right:.5f} at t = {t}: each step removes "
                                         "only about 1% of the predicted noise, which is why DDPM needs so many steps.")
    if close(value, -right, rel):
        return report(False, "right size, wrong sign. μ_θ subtracts the noise; the question asks for the magnitude "
                             "of the factor in front of ε_θ (a positive number).")
    beta, alpha, alpha_bar = (float(getattr(schedule, n)[t]) for n in ("betas", "alphas", "alphas_cumprod"))
    wrong = [
        (beta / math.sqrt(1 - alpha_bar), "that is β_t/√(1−ᾱ_t), the factor inside the bracket. Eq. 11 divides the "
                                          "whole bracket by √α_t as well."),
        (beta / (math.sqrt(alpha_bar) * math.sqrt(1 - alpha_bar)), "you divided by √ᾱ_t (the cumulative product). "
                                                                   "Eq. 11 divides by √α_t = √(1 − β_t), one step's α."),
        (beta / (alpha * math.sqrt(1 - alpha_bar)), "you divided by α_t; eq. 11 divides by its square root, √α_t."),
        (beta / (math.sqrt(alpha) * (1 - alpha_bar)), "you divided by 1 − ᾱ_t; eq. 11 has its square root, √(1 − ᾱ_t)."),
        (math.sqrt(1 - alpha_bar) / math.sqrt(alpha_bar), "that is the factor of ε in x̂_0 (eq. 15), not in μ_θ (eq. 11)."),
        (1 / math.sqrt(alpha), "that is 1/√α_t, the factor of x_t. The question asks for the factor of ε_θ."),
        (1 / right, "your ratio is upside down: that is (√α_t·√(1−ᾱ_t))/β_t. In eq. 11, β_t is on top and both "
                    "square roots are underneath, so the factor is small (each step removes only a little noise)."),
    ]
    for index, slip in ((t - 1, "t = 499"), (t + 1, "t = 501")):
        wrong.append((eps_coefficient(index, schedule),
                      f"that is the value at 0-based index {slip.split('= ')[1]}. Use index t = {t}: "
                      f"schedule.betas[{t}], schedule.alphas_cumprod[{t}] (index 0 is the paper's t = 1)."))
    for wrong_value, hint in wrong:
        if close(value, wrong_value, rel):
            return report(False, hint)
    return report(False, f"read eq. 11 as (1/√α_t)·(β_t/√(1−ᾱ_t)): take schedule.betas[{t}], schedule.alphas[{t}] "
                         f"and schedule.alphas_cumprod[{t}] of NoiseSchedule.from_name('linear', 1000).")


def respaced_first_beta(steps: int = RESPACED_STEPS, schedule: NoiseSchedule | None = None) -> float:
    """β' of the first reverse step (the largest timestep τ_S) of DDPMSampler(schedule, steps=steps):
    1 − ᾱ_{τ_S}/ᾱ_{τ_{S−1}} (Improved DDPM §4)."""
    schedule = schedule or _schedule()
    tau = DDPMSampler(schedule, steps=steps).timesteps        # descending
    return 1.0 - float(schedule.alphas_cumprod[tau[0]] / schedule.alphas_cumprod[tau[1]])


def check_respaced_first_beta(answer) -> bool:
    """Exercise 2: ``DDPMSampler(schedule, steps=20)`` samples over the timesteps
    τ = 999, 946, 894, ..., 0.  What is β' of its first step, from t = 999 to t = 946?"""
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float), not {answer!r}.")
    schedule = _schedule()
    sampler = DDPMSampler(schedule, steps=RESPACED_STEPS)
    tau = [int(t) for t in sampler.timesteps]
    right = respaced_first_beta(RESPACED_STEPS, schedule)
    if close(value, right, 1e-3):
        return report(True, "", success=f"Correct! β' = 1 − ᾱ_{tau[0]}/ᾱ_{tau[1]} = {right:.4f}, far larger than "
                                         f"β_{tau[0]} = {float(schedule.betas[tau[0]]):.2f}: one respaced step does the "
                                         f"work of {tau[0] - tau[1]} original ones.")
    ab = schedule.alphas_cumprod
    sum_hint = ("that is the sum of the original betas over the jump. The alphas multiply: "
                f"1 − β' = Π(1 − β_t) over t = {tau[1] + 1}, ..., {tau[0]}, which is ᾱ_{tau[0]}/ᾱ_{tau[1]}.")
    wrong = [
        (float(schedule.betas[tau[0]]), f"that is the original β at t = {tau[0]}. The respaced process jumps from "
                                        f"t = {tau[0]} to t = {tau[1]}, so its β' is 1 − ᾱ_{tau[0]}/ᾱ_{tau[1]}."),
        (float(schedule.betas[tau[1] + 1:tau[0] + 1].sum()), sum_hint),   # the steps of the jump, t = 947 ... 999
        (float(schedule.betas[tau[1]:tau[0] + 1].sum()), sum_hint),       # one more: t = 946 ... 999
        (float(ab[tau[0]] / ab[tau[1]]), f"that is α' = ᾱ_{tau[0]}/ᾱ_{tau[1]}, the signal kept over the jump; β' = 1 − α'."),
        (float(ab[tau[1]] / ab[tau[0]]), f"your ratio is upside down: ᾱ_{tau[1]}/ᾱ_{tau[0]} is larger than 1, since ᾱ "
                                         f"falls as t grows. The signal kept over the jump is α' = ᾱ_{tau[0]}/ᾱ_{tau[1]} "
                                         "(the later, smaller ᾱ on top), and β' = 1 − α'."),
        (1.0 - float(ab[tau[1]] / ab[tau[0]]), f"your ratio is upside down, so β' came out negative; a β' lies between 0 "
                                               f"and 1. Put the later, smaller ᾱ on top: β' = 1 − ᾱ_{tau[0]}/ᾱ_{tau[1]}."),
        (1.0 - float(ab[tau[0]]), f"that is 1 − ᾱ_{tau[0]}: the jump from data all the way to t = {tau[0]}. "
                                  f"Divide by ᾱ_{tau[1]}."),
    ]
    ten = respaced_first_beta(10, schedule)
    wrong.append((ten, f"that is β' of the first step with steps=10 (§3 prints it). With steps={RESPACED_STEPS} the "
                       f"first jump is shorter, from t = {tau[0]} to t = {tau[1]}."))
    for wrong_value, hint in wrong:
        if close(value, wrong_value, 1e-3):
            return report(False, hint)
    return report(False, f"β' of a respaced step τ_i → τ_(i−1) is 1 − ᾱ_(τ_i)/ᾱ_(τ_(i−1)); here τ_i = {tau[0]} and "
                         f"τ_(i−1) = {tau[1]} (check sampler.timesteps, and sampler.respaced.betas[-1]).")


_LARGE = {"fixed_large", "large", "beta", "β", "β_t", "beta_t", "sigma^2=beta", "σ²=β"}
_SMALL = {"fixed_small", "small", "beta_tilde", "β̃", "β̃_t", "posterior", "posterior_variance", "sigma^2=beta_tilde",
          "σ²=β̃"}


def check_larger_variance(answer) -> bool:
    """Exercise 3: which variance choice, ``"fixed_large"`` (σ_t² = β_t) or ``"fixed_small"``
    (σ_t² = β̃_t), gives the larger σ_t at the paper's t = 1 (index 0)?  (And is it the larger
    at every t?)"""
    if not isinstance(answer, str):
        return report(False, "answer with a string: 'fixed_large' or 'fixed_small'.")
    key = answer.strip().lower().replace(" ", "")
    if key in _LARGE or answer.strip() in _LARGE:
        return report(True, "", success="Correct! β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t < β_t at every t, and at t = 1 "
                                         "β̃_1 = 0 (ᾱ_0 = 1): given x_1 the last step is deterministic under q, while "
                                         "σ² = β keeps σ_1 = 0.01. (Algorithm 2 adds no noise at t = 1 either way.)")
    if key in _SMALL or answer.strip() in _SMALL:
        return report(False, "look at eq. 7: β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t, and 1 − ᾱ_{t−1} < 1 − ᾱ_t. "
                             "What is β̃ at t = 1, where ᾱ_0 = 1?")
    if key in {"equal", "same", "both", "neither"}:
        return report(False, "they agree for large t (the ratio → 1), but not at t = 1: compute "
                             "schedule.posterior_variance[0] and schedule.betas[0].")
    return report(False, "answer 'fixed_large' (σ² = β) or 'fixed_small' (σ² = β̃).")
