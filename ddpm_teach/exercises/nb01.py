"""Exercise checks for notebook 01 (the forward process and its closed form).

Each check computes the right answer itself from the package (``NoiseSchedule``,
``ddpm_teach.forward``), compares the learner's answer with a tolerance, and prints
``Correct!`` or a hint that says what to look at (see :func:`ddpm_teach.exercises.report`).
The common wrong answers (the paper's 1-based t instead of the 0-based index, √ᾱ for ᾱ,
α for ᾱ, ...) get a hint of their own.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..forward import predict_x0_from_eps, q_sample
from ..schedules import NoiseSchedule
from . import as_float, close, report

__all__ = ["check_alpha_bar_t500", "check_first_t_below_half", "check_predict_x0_from_eps"]

# Exercises 1 and 2 are about the DDPM linear schedule, T = 1000 (β from 1e-4 to 0.02).
_KIND, _T = "linear", 1000
# Exercise 1 asks for ᾱ at the paper's t = 500, which is the 0-based index 499.
_PAPER_T = 500
_REL_TOL = 2e-3  # answers rounded to 3-4 significant digits pass; the neighbouring t are ~1 % away


def _schedule() -> NoiseSchedule:
    return NoiseSchedule.from_name(_KIND, _T)


def check_alpha_bar_t500(answer) -> bool:
    """Exercise 1: ᾱ at the paper's t = 500 (0-based index 499) of the linear schedule, T = 1000.

    ``answer``: a number (float, or a one-element tensor), to about 4 significant digits."""
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float or a one-element tensor), got {answer!r}.")
    schedule = _schedule()
    index = _PAPER_T - 1
    truth = schedule.alphas_cumprod[index].item()
    if close(value, truth, _REL_TOL):
        return report(True, "")
    if close(value, schedule.alphas_cumprod[index + 1].item(), _REL_TOL):
        return report(False, "that is ᾱ at index 500, the paper's t = 501. The package counts from 0: "
                             "the paper's t is the index t − 1, so use schedule.alphas_cumprod[499].")
    if close(value, schedule.alphas_cumprod[index - 1].item(), _REL_TOL):
        return report(False, "that is ᾱ at index 498, one step too early: the paper's t = 500 is index 499.")
    if close(value, schedule.sqrt_alphas_cumprod[index].item(), _REL_TOL):
        return report(False, "that is √ᾱ_t, the scale of x_0 in eq. 4. ᾱ_t itself is its square.")
    if close(value, 1.0 - truth, _REL_TOL):
        return report(False, "that is 1 − ᾱ_t, the noise variance of eq. 4. The question asks for ᾱ_t.")
    if any(close(value, schedule.alphas[i].item(), _REL_TOL) for i in (index, index + 1)):
        return report(False, "that is α_t = 1 − β_t of one step. ᾱ_t is the product of all the α_s up to t "
                             "(schedule.alphas_cumprod, or torch.cumprod(1 - betas, 0)).")
    return report(False, "ᾱ_t = Π_{s=1..t} (1 − β_s) with the paper's t = 500; in code that is "
                         "schedule.alphas_cumprod[499] for NoiseSchedule.from_name('linear', 1000). "
                         "It should be a number between 0 and 1.")


def _as_index(answer) -> int | None:
    """An integer answer (int, integral float, or one-element integer tensor); None otherwise."""
    value = as_float(answer)
    if value is None or value != int(value):
        return None
    return int(value)


def check_first_t_below_half(answer) -> bool:
    """Exercise 2: the first 0-based index t at which √ᾱ_t < 0.5 (linear schedule, T = 1000).

    From there on, the signal x_0 is scaled by less than a half in x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε."""
    index = _as_index(answer)
    if index is None:
        return report(False, f"give one whole number, a 0-based index t in [0, {_T}), got {answer!r}.")
    schedule = _schedule()
    below = schedule.sqrt_alphas_cumprod < 0.5                               # (T,) bool
    truth = int(below.nonzero()[0])
    if index == truth:
        return report(True, "")
    if index == truth + 1:
        return report(False, "that is the paper's 1-based t. The package (and this question) counts from 0: "
                             "give the index, which is the paper's t − 1.")
    if index == truth - 1:
        return report(False, "at that index √ᾱ_t is still just above 0.5; give the first index where it is below.")
    half_alpha_bar = int((schedule.alphas_cumprod < 0.5).nonzero()[0])
    if index in (half_alpha_bar, half_alpha_bar + 1):
        return report(False, "that is where ᾱ_t drops below 0.5. The question is about √ᾱ_t, "
                             "and √ᾱ_t < 0.5 means ᾱ_t < 0.25.")
    return report(False, "look at schedule.sqrt_alphas_cumprod (a tensor [T]): find the first position where "
                         "it is < 0.5, e.g. with (values < 0.5).nonzero()[0] or torch.argmax on the boolean mask.")


def check_predict_x0_from_eps(fn: Callable) -> bool:
    """Exercise 3: ``fn(schedule, x_t, t, eps)`` returns x_0 from x_t and the noise ε (eq. 4 inverted,
    the x̂_0 of eq. 15).

    It is called with a linear schedule (T = 1000), x_t float32 [B, C, H, W] and ``t`` a long tensor
    [B] of *different* timesteps, and compared with :func:`ddpm_teach.forward.predict_x0_from_eps`."""
    if not callable(fn):
        return report(False, "pass your function itself (check_predict_x0_from_eps(my_predict_x0)), "
                             "not its result.")
    schedule = _schedule()
    gen = torch.Generator().manual_seed(2020)
    B, C, H, W = 3, 1, 5, 5           # B ≠ W, so a coefficient of shape [B] does not broadcast by accident
    x0 = torch.rand(B, C, H, W, generator=gen) * 2 - 1                         # (B, C, H, W) in [-1, 1]
    eps = torch.randn(B, C, H, W, generator=gen)
    t = torch.tensor([0, 420, 998])                                           # (B,), 0-based
    x_t = q_sample(schedule, x0, t, eps)
    truth = predict_x0_from_eps(schedule, x_t, t, eps).double()

    try:
        result = fn(schedule, x_t.clone(), t.clone(), eps.clone())
    except Exception as error:  # the learner's code: say what went wrong, do not crash the notebook
        return report(False, f"your function raised {type(error).__name__}: {error}. t is a tensor [B]: "
                             "index the [T] coefficient with it, then reshape it to [B, 1, 1, 1] "
                             "(e.g. .view(-1, 1, 1, 1)) so that it broadcasts against x_t [B, C, H, W].")
    if not isinstance(result, torch.Tensor):
        return report(False, f"return a tensor shaped like x_t, got {type(result).__name__}.")
    if tuple(result.shape) != tuple(x_t.shape):
        return report(False, f"the result has shape {tuple(result.shape)}, x_t has {tuple(x_t.shape)}. "
                             "Reshape the coefficients schedule.alphas_cumprod[t] to [B, 1, 1, 1].")
    result = result.detach().double()
    if torch.allclose(result, truth, rtol=1e-4, atol=1e-4):
        return report(True, "")

    # the usual slips, each reproduced to give it its own hint
    alpha_bar = schedule.alphas_cumprod
    x_t64, eps64 = x_t.double(), eps.double()

    def invert(coef: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        a = coef[ts].view(-1, 1, 1, 1)
        return (x_t64 - (1 - a).sqrt() * eps64) / a.sqrt()

    def near(candidate: torch.Tensor) -> bool:
        return torch.allclose(result, candidate, rtol=1e-4, atol=1e-4)

    if near(invert(alpha_bar, (t + 1).clamp(max=schedule.T - 1))) or near(invert(alpha_bar, (t - 1).clamp(min=0))):
        return report(False, "off by one timestep: index the coefficients with t itself, "
                             "schedule.alphas_cumprod[t] (t is already 0-based).")
    if near(invert(schedule.alphas, t)):
        return report(False, "you used α_t = 1 − β_t; eq. 4 needs ᾱ_t, schedule.alphas_cumprod[t].")
    a = alpha_bar[t].view(-1, 1, 1, 1)
    if near(x_t64 - (1 - a).sqrt() * eps64):
        return report(False, "you removed the noise but forgot to divide by √ᾱ_t.")
    if near((x_t64 + (1 - a).sqrt() * eps64) / a.sqrt()):
        return report(False, "check the sign: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, so x_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t.")
    if near((x_t64 - (1 - a) * eps64) / a) or near((x_t64 - (1 - a) * eps64) / a.sqrt()):
        return report(False, "the coefficients of eq. 4 are square roots: √ᾱ_t and √(1 − ᾱ_t).")
    return report(False, "solve eq. 4, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, for x_0: "
                         "x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, with ᾱ_t = schedule.alphas_cumprod[t] "
                         "reshaped to [B, 1, 1, 1].")
