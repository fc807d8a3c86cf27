"""Exercise checks for notebook 09 (fast samplers: the probability-flow ODE, Heun, DPM-Solver++).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers come from :mod:`ddpm_teach.solvers`
and :mod:`ddpm_teach.samplers`, never typed in, so they follow the package.

The notation is the notebook's (Karras et al. 2022 §2-3, in the course's ᾱ):

    σ_t = √((1 − ᾱ_t)/ᾱ_t),   x̃ = x_t/√ᾱ_t = x_t·√(1 + σ_t²),   D = x̂_0 = x̃ − σ_t ε̂,   λ = −log σ
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..samplers import DDIMSampler
from ..schedules import NoiseSchedule
from ..solvers import DPMSolverPP2MSampler, HeunSampler
from . import as_float, as_whole_number, report

__all__ = ["BUDGET_EXERCISE", "STEP_EXERCISE", "budget_steps_answer", "check_budget_steps", "check_first_order_step"]

# exercise 1: the most DPM-Solver++(2M) and Heun steps that fit a budget of network evaluations
BUDGET_EXERCISE = {"T": 1000, "budget": 30}
# exercise 2: one first-order DPM-Solver++ step, checked on the jumps of a 10-step uniform DDIM sampler
STEP_EXERCISE = {"T": 1000, "steps": 10, "pairs": ((999, 888), (555, 444), (111, 0))}
STEP_TOL = 1e-5      # relative to the size of x_{t_next}: float32 arithmetic in the learner's code passes


def _schedule(T: int) -> NoiseSchedule:
    return NoiseSchedule.from_name("linear", T)


def budget_steps_answer() -> tuple[int, int]:
    """The answer of exercise 1, from the package: the largest ``steps`` whose ``sampler.nfe`` fits the budget,
    for DPMSolverPP2MSampler and for HeunSampler."""
    ex = BUDGET_EXERCISE
    schedule = _schedule(ex["T"])

    def most_steps(cls) -> int:
        steps = 1
        while cls(schedule, steps=steps + 1).nfe <= ex["budget"]:
            steps += 1
        return steps

    return most_steps(DPMSolverPP2MSampler), most_steps(HeunSampler)



def check_budget_steps(answer) -> bool:
    """Exercise 1: with at most 30 network evaluations per batch (linear schedule, T = 1000, no guidance),
    how many steps can DPM-Solver++(2M) take, and how many Heun's method? ``answer = (dpm_steps, heun_steps)``."""
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__") or len(answer) != 2:
        return report(False, f"give two whole numbers, (DPM-Solver++(2M) steps, Heun steps), not {answer!r}.")
    dpm, heun = (as_whole_number(value) for value in answer)
    if dpm is None or heun is None:
        return report(False, f"give two whole numbers, (DPM-Solver++(2M) steps, Heun steps), not {answer!r}.")
    budget = BUDGET_EXERCISE["budget"]
    right_dpm, right_heun = budget_steps_answer()
    if (dpm, heun) == (right_dpm, right_heun):
        return report(True, "", success=f"Correct! DPM-Solver++(2M) makes one call per step (it reuses the previous "
                                         f"step's D): {right_dpm} steps. Heun makes 2 calls per step but only 1 on the "
                                         f"last step (to σ = 0), so n steps cost 2n − 1: {right_heun} steps cost "
                                         f"{2 * right_heun - 1}, and {right_heun + 1} would cost {2 * right_heun + 1} > {budget}.")
    if (dpm, heun) == (right_heun, right_dpm):
        return report(False, "the two numbers are swapped: the first is DPM-Solver++(2M)'s steps, the second Heun's.")
    if dpm != right_dpm:
        if dpm == budget // 2:
            return report(False, "DPM-Solver++(2M) is a multistep method: it makes one network call per step and "
                                 "reuses the previous step's D for its second order.")
        return report(False, "DPM-Solver++(2M) makes exactly one network call per step (the first and last steps "
                             "included): how many steps does the budget buy?")
    if heun == budget:
        return report(False, "Heun evaluates the network twice per step: at the start of the step and again at its "
                             "Euler trial point (only the last step, to σ = 0, makes one call).")
    if heun == budget // 2 + 1 or 2 * heun - 1 > budget:
        return report(False, f"{heun} Heun steps cost 2·{heun} − 1 = {2 * heun - 1} network calls, more than {budget}.")
    if heun == (budget - 1) // 2 or heun == budget // 2 - 1:
        return report(False, f"that counts 2 calls for every Heun step. The last step goes to σ = 0 and makes no "
                             f"correction (it would need the slope at σ = 0), so it costs 1 call: n steps cost "
                             f"2n − 1. {heun + 1} steps still fit.")
    return report(False, "Heun makes 2 calls per step except the last (to σ = 0), which makes 1: n steps cost "
                         "2n − 1. Find the largest n with 2n − 1 within the budget.")


def _sigma(schedule: NoiseSchedule, t: int) -> float:
    alpha_bar = float(schedule.alphas_cumprod[t])
    return math.sqrt((1 - alpha_bar) / alpha_bar)


def _slips(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int, t_next: int) -> list[tuple[torch.Tensor, str]]:
    """The usual slips in a first-order DPM-Solver++ step, each with its own hint."""
    sigma, sigma_next = _sigma(schedule, t), _sigma(schedule, t_next)
    to_tilde, from_tilde = math.sqrt(1 + sigma**2), 1 / math.sqrt(1 + sigma_next**2)
    x_tilde = x_t * to_tilde
    denoised = x_tilde - sigma * eps                                 # D = x̂_0
    h = math.log(sigma / sigma_next)                                 # λ_next − λ > 0
    ratio = sigma_next / sigma                                       # e^{−h}
    right_tilde = ratio * x_tilde - math.expm1(-h) * denoised
    return [
        (right_tilde, "you returned x̃_next, the scaled variable. Convert back to the network's variable: "
                      "x_next = x̃_next/√(1 + σ_next²) (which is √ᾱ_next · x̃_next)."),
        ((ratio * x_t - math.expm1(-h) * (x_t - sigma * eps)) * from_tilde,
         "x_t itself is not x̃_t: first scale it, x̃_t = x_t·√(1 + σ_t²) (= x_t/√ᾱ_t), then D = x̃_t − σ_t ε̂."),
        (ratio * x_t - math.expm1(-h) * (x_t - sigma * eps),
         "the step works on x̃ = x_t/√ᾱ_t, not on x_t: scale x_t up to x̃_t before the step and x̃_next down "
         "to x_next after it."),
        ((ratio * x_tilde - math.expm1(h) * denoised) * from_tilde,
         "check the sign of h: h = λ_next − λ_t = log(σ_t/σ_next) > 0, and the weight of D is 1 − e^{−h} "
         "= 1 − σ_next/σ_t, between 0 and 1."),
        ((ratio * x_tilde + (1 - ratio) * eps) * from_tilde,
         "DPM-Solver++ integrates the *data* prediction D = x̂_0 = x̃_t − σ_t ε̂, not ε̂: "
         "x̃_next = (σ_next/σ_t) x̃_t + (1 − σ_next/σ_t) D."),
        (denoised * from_tilde, "that is x̂_0 scaled to t_next, with no noise kept. The step keeps a share "
                                "σ_next/σ_t of x̃_t: x̃_next = (σ_next/σ_t) x̃_t + (1 − σ_next/σ_t) D."),
        (denoised, "that is D = x̂_0, the denoiser's guess, not the step. x̃_next = (σ_next/σ_t) x̃_t "
                   "+ (1 − σ_next/σ_t) D, then x_next = x̃_next/√(1 + σ_next²)."),
        (x_t, "that is x_t unchanged: the step must move x_t towards the data."),
    ]


def check_first_order_step(fn: Callable) -> bool:
    """Exercise 2: ``fn(schedule, x_t, eps, t, t_next)`` makes one first-order DPM-Solver++ step from
    timestep ``t`` to the smaller ``t_next`` (both 0-based ints, t_next ≥ 0) with the network's ε̂
    ``eps`` and *unclipped* x̂_0, and returns x_{t_next} [B, C, H, W] (in x_t's scaling, like every
    sampler's ``prev_sample``).

    It is called with the linear schedule (T = 1000) on a few jumps of a 10-step sampler and
    compared with ``DDIMSampler(schedule, steps=10, eta=0, clip_x0=False).step``: the two must agree."""
    if not callable(fn):
        return report(False, "pass your function itself (check_first_order_step(my_step)), not its result.")
    ex = STEP_EXERCISE
    schedule = _schedule(ex["T"])
    ddim = DDIMSampler(schedule, steps=ex["steps"], eta=0.0, clip_x0=False)
    gen = torch.Generator().manual_seed(909)
    for t, t_next in ex["pairs"]:
        assert ddim.prev_timestep(t) == t_next                      # the pairs are jumps of this sampler
        x_t = torch.randn(3, 1, 4, 5, generator=gen, dtype=torch.float64)          # (B, C, H, W), B ≠ W
        eps = torch.randn(3, 1, 4, 5, generator=gen, dtype=torch.float64)
        truth = ddim.step(eps, t, x_t).prev_sample                  # DDIM eq. 12 with η = 0
        try:
            result = fn(schedule, x_t.clone(), eps.clone(), t, t_next)
        except Exception as error:  # the learner's code: say what went wrong, do not crash the notebook
            return report(False, f"your function raised {type(error).__name__}: {error}. It is called as "
                                 "fn(schedule, x_t, eps, t, t_next) with tensors [B, C, H, W] and two ints.")
        if not isinstance(result, torch.Tensor):
            return report(False, f"return a tensor shaped like x_t, got {type(result).__name__}.")
        if tuple(result.shape) != tuple(x_t.shape):
            return report(False, f"the result has shape {tuple(result.shape)}, x_t has {tuple(x_t.shape)}.")
        result = result.detach().double()
        scale = float(truth.abs().max())

        def near(candidate: torch.Tensor) -> bool:
            return float((result - candidate).abs().max()) <= STEP_TOL * max(scale, float(candidate.abs().max()))

        if not near(truth):
            for candidate, hint in _slips(schedule, x_t, eps, t, t_next):
                if near(candidate):
                    return report(False, f"(step t={t} → {t_next}) " + hint)
            return report(False, f"the step t={t} → {t_next} does not match. With σ = √((1 − ᾱ)/ᾱ) at t and "
                                 "t_next, λ = −log σ and h = λ_next − λ_t: x̃_t = x_t·√(1 + σ_t²), "
                                 "D = x̃_t − σ_t ε̂, x̃_next = (σ_next/σ_t) x̃_t − (e^{−h} − 1) D, "
                                 "x_next = x̃_next/√(1 + σ_next²).")
    return report(True, "", success="Correct! Your first-order DPM-Solver++ step equals the DDIM step (η = 0) on "
                                    "every jump tried: x̃_next = (σ_next/σ_t) x̃_t + (1 − σ_next/σ_t) D "
                                    "= D + σ_next ε̂, which is also Euler's x̃_t + (σ_next − σ_t) ε̂.")
