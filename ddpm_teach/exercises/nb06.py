"""Exercise checks for notebook 06 (DDIM sampling).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers are computed here from
:mod:`ddpm_teach.samplers` and :mod:`ddpm_teach.schedules`, never typed in, so they follow
the package.
"""
from __future__ import annotations

import math
import numbers

import torch

from ..samplers import DDIMSampler
from ..schedules import NoiseSchedule
from . import as_float, close, report

__all__ = ["check_sigma", "check_timesteps", "ddim_sigma", "SIGMA_EXERCISE", "TIMESTEPS_EXERCISE"]

# exercise 1: σ of the step at t=421 of DDIMSampler(linear T=1000, steps=20, eta=0.5)
SIGMA_EXERCISE = {"T": 1000, "steps": 20, "eta": 0.5, "t": 421}
# exercise 2: the timesteps of DDIMSampler(linear T=1000, steps=5, spacing="uniform")
TIMESTEPS_EXERCISE = {"T": 1000, "steps": 5, "spacing": "uniform"}
SIGMA_REL_TOL = 5e-4   # four significant digits


def ddim_sigma(schedule: NoiseSchedule, t: int, t_prev: int, eta: float) -> float:
    """σ_t(η) = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)   (DDIM eq. 16), with ᾱ_prev = 1 for t_prev = −1."""
    alpha_bar = float(schedule.alphas_cumprod[t])
    alpha_bar_prev = float(schedule.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
    return eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * math.sqrt(1 - alpha_bar / alpha_bar_prev)


def check_sigma(answer) -> bool:
    """Exercise 1: σ of the step at t = 421 of ``DDIMSampler(schedule, steps=20, eta=0.5)`` with the
    linear schedule, T = 1000, uniform spacing (four significant digits: an off-by-one index
    changes the third)."""
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float), not {type(answer).__name__}.")
    T, steps, eta, t = (SIGMA_EXERCISE[k] for k in ("T", "steps", "eta", "t"))
    schedule = NoiseSchedule.from_name("linear", T)
    sampler = DDIMSampler(schedule, steps=steps, eta=eta)
    t_prev = sampler.prev_timestep(t)
    sigma = ddim_sigma(schedule, t, t_prev, eta)
    if close(value, sigma, SIGMA_REL_TOL):
        return report(True, "", success=f"Correct! The step goes from t={t} to t={t_prev}, and σ = {sigma:.4f} "
                                         f"(σ² = {sigma**2:.4f} of fresh noise variance).")
    wrong = [
        (ddim_sigma(schedule, t, t_prev, 1.0), "that is σ for η = 1. Eq. 16 multiplies the whole expression by η = 0.5."),
        (sigma**2, "that is σ², the variance of the fresh noise. The question asks for σ itself."),
        (ddim_sigma(schedule, t, t - 1, eta), f"that is the σ of a one-step move t → t − 1 = {t - 1}. With steps={steps} "
                                              f"the sampler jumps to the next timestep of τ: sampler.prev_timestep({t})."),
        (ddim_sigma(schedule, t, t - 1, 1.0), "that is √β̃_t, DDPM's σ for a move t → t − 1 (η = 1 and all T steps). "
                                              "Use the next timestep of τ, and η = 0.5."),
        (ddim_sigma(schedule, t + 1, t_prev + 1, eta), "off by one index: timesteps are 0-based, so index t is "
                                                       f"alphas_cumprod[{t}] and the previous one alphas_cumprod[{t_prev}]."),
        (0.0, "σ = 0 is η = 0 (deterministic DDIM). Here η = 0.5."),
    ]
    position = sampler.timesteps.tolist().index(t)
    if position > 0:                                  # the timestep before t in the descending list
        t_next = int(sampler.timesteps[position - 1])
        wrong.append((ddim_sigma(schedule, t_next, t, eta), f"that is σ of the step at t={t_next} (which lands on "
                                                            f"t={t}). The step *at* t={t} goes down to t={t_prev}."))
    for wrong_value, hint in wrong:
        if close(value, wrong_value, SIGMA_REL_TOL):
            return report(False, hint)
    return report(False, f"find where the step at t={t} goes (sampler.prev_timestep({t}) or the list "
                         "sampler.timesteps), then σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) with "
                         "ᾱ = schedule.alphas_cumprod (eq. 16).")


def _as_int_list(answer) -> list[int] | None:
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    try:
        items = list(answer)
    except TypeError:
        return None
    out = []
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, numbers.Integral):
            out.append(int(item))
            continue
        value = as_float(item)
        if value is None or value != int(value):
            return None
        out.append(int(value))
    return out


def check_timesteps(answer) -> bool:
    """Exercise 2: the timesteps, in the order the sampler visits them, of
    ``DDIMSampler(schedule, steps=5, spacing="uniform")`` for the linear schedule with T = 1000."""
    values = _as_int_list(answer)
    if values is None:
        return report(False, "give a list of whole numbers, e.g. [900, 600, 300, 0].")
    T, steps, spacing = (TIMESTEPS_EXERCISE[k] for k in ("T", "steps", "spacing"))
    schedule = NoiseSchedule.from_name("linear", T)
    right = DDIMSampler(schedule, steps=steps, spacing=spacing).timesteps.tolist()
    if values == right:
        return report(True, "", success=f"Correct! {right}: evenly spaced over [0, T−1] = [0, {T - 1}], rounded to "
                                         "the nearest index, first and last included, visited from noisy to clean.")
    if len(values) != steps:
        return report(False, f"steps={steps} means {steps} timesteps, one model call each; you gave {len(values)}.")
    if values == right[::-1]:
        return report(False, "right numbers, wrong order: sampling starts at the noisiest timestep, so "
                             "sampler.timesteps is descending.")
    exact = [i * (T - 1) / (steps - 1) for i in range(steps)][::-1]
    hints = [
        ([int(v) for v in exact], "int() truncates 499.5 and 249.75 down to 499 and 249. The uniform spacing *rounds* "
                                  "linspace(0, T−1, steps) to the nearest index (torch.round: a tie goes to the even "
                                  "neighbour)."),
        ([round(i * T / (steps - 1)) for i in range(steps)][::-1],
         f"t = {T} is out of range: with 0-based timesteps the last is T − 1 = {T - 1}. Space over [0, T − 1]."),
    ]
    for other in ("leading", "trailing", "quadratic"):
        hints.append((DDIMSampler(schedule, steps=steps, spacing=other).timesteps.tolist(),
                      f"that is the {other!r} spacing. The question asks for 'uniform': evenly spaced from T − 1 "
                      "down to 0, both ends included."))
    for wrong, hint in hints:
        if values == wrong or values == wrong[::-1]:
            return report(False, hint)
    if any(v < 0 or v >= T for v in values):
        return report(False, f"every timestep is a 0-based index in [0, {T - 1}].")
    return report(False, "uniform spacing: linspace(0, T − 1, steps), rounded to whole indices, then listed from "
                         "the largest to the smallest (DDIMSampler(...).timesteps).")
