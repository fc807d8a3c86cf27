"""Exercise checks for notebook 11 (flow matching: the straight path, Euler and Heun in t, straightness).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers come from :mod:`ddpm_teach.flow`,
never typed in, so they follow the package.

The notation is the notebook's (t ∈ [0, 1], t = 0 data, t = 1 noise)::

    x_t = (1 − t)·x_0 + t·ε,   v = ε − x_0,   x̂_0 = x_t − t·v̂,   ε̂ = x_t + (1 − t)·v̂
"""
from __future__ import annotations

import math

import torch

from ..flow import (FlowEulerSampler, FlowHeunSampler, ddpm_time_to_flow, flow_eps_from_v, flow_x0_from_v,
                    path_straightness)
from ..schedules import NoiseSchedule
from . import as_float, as_whole_number, report

__all__ = ["VELOCITY_EXERCISE", "DDPM_TIME_EXERCISE", "BUDGET_EXERCISE", "STRAIGHTNESS_EXERCISE",
           "x0_eps_answer", "flow_time_answer", "budget_steps_answer", "straightness_answer",
           "check_x0_and_eps", "check_flow_time", "check_budget_steps", "check_straightness"]

# exercise 1: what a velocity prediction says about x_0 and ε, for one pixel
VELOCITY_EXERCISE = {"t": 0.25, "x_t": 0.5, "v": -1.2}
# exercise 2: the flow time of a DDPM timestep (0-based) on the linear schedule
DDPM_TIME_EXERCISE = {"T": 1000, "t_index": 500}
FLOW_TIME_TOL = 2e-4          # absolute: 3 decimals, correctly rounded, pass
WRONG_INDEX_TOL = 6e-4        # absolute, around the flow times of indices 499 and 501 (3 decimals rounded: 0.774, 0.776);
                              # the two are ≈ 9.6e-4 from the right value, so this band stays clear of FLOW_TIME_TOL's
# exercise 3: the most flow-Euler and flow-Heun steps that fit a budget of network evaluations
BUDGET_EXERCISE = {"budget": 25}
# exercise 4: the straightness S of one pixel's 2-step path
STRAIGHTNESS_EXERCISE = {"times": (1.0, 0.8, 0.0), "x": (1.0, 0.6, 0.2)}
TOL = 1e-3                    # relative, for the numbers of exercises 1 and 4


def _number(answer) -> float | None:
    return as_float(answer)


def _near(value: float, target: float, tol: float = TOL) -> bool:
    return math.isclose(value, target, rel_tol=tol, abs_tol=tol * 1e-3 + 1e-12)


# ------------------------------------------------------------------ exercise 1: x̂_0 and ε̂ from v̂
def x0_eps_answer() -> tuple[float, float]:
    """(x̂_0, ε̂) of exercise 1, from flow.flow_x0_from_v and flow.flow_eps_from_v."""
    ex = VELOCITY_EXERCISE
    x_t, v = torch.tensor([ex["x_t"]], dtype=torch.float64), torch.tensor([ex["v"]], dtype=torch.float64)
    return float(flow_x0_from_v(x_t, ex["t"], v=v)), float(flow_eps_from_v(x_t, ex["t"], v=v))


def _x0_hint(x0: float) -> str | None:
    ex = VELOCITY_EXERCISE
    t, x_t, v = ex["t"], ex["x_t"], ex["v"]
    slips = [
        (x_t + t * v, "x̂_0: check the sign. The path moves by v per unit of t towards the noise (t = 1); "
                      "x_0 lies *back* at t = 0, so x̂_0 = x_t − t·v̂."),
        (x_t - v, "x̂_0: the way back to t = 0 is t long, not 1: x̂_0 = x_t − t·v̂."),
        (x_t - (1 - t) * v, "x̂_0: from t back to 0 is a distance t in time, not 1 − t (that is the way on to the "
                            "noise at t = 1)."),
        (x_t + (1 - t) * v, "that is ε̂ = x_t + (1 − t)·v̂, where the velocity leads at t = 1; x̂_0 lies at t = 0."),
        ((x_t - t * v) / (1 - t), "x̂_0: there is no rescaling on the straight path (DDPM's 1/√ᾱ has no counterpart "
                                  "here): x̂_0 = x_t − t·v̂."),
    ]
    return next((hint for value, hint in slips if _near(x0, value)), None)


def _eps_hint(eps: float) -> str | None:
    ex = VELOCITY_EXERCISE
    t, x_t, v = ex["t"], ex["x_t"], ex["v"]
    slips = [
        (x_t - (1 - t) * v, "ε̂: check the sign. ε lies *ahead* at t = 1: ε̂ = x_t + (1 − t)·v̂."),
        (x_t + v, "ε̂: from t on to 1 is a distance 1 − t in time, not 1: ε̂ = x_t + (1 − t)·v̂."),
        (x_t + t * v, "ε̂: from t on to t = 1 is a distance 1 − t, not t."),
        (x_t - t * v, "that is x̂_0 = x_t − t·v̂, where the velocity came from at t = 0; ε̂ lies at t = 1."),
        ((x_t + (1 - t) * v) / t, "ε̂: there is no rescaling on the straight path: ε̂ = x_t + (1 − t)·v̂."),
    ]
    return next((hint for value, hint in slips if _near(eps, value)), None)


def check_x0_and_eps(answer) -> bool:
    """Exercise 1: a flow model at t = 0.25 sees a pixel x_t = 0.5 and predicts v̂ = −1.2 there.  What are
    the x̂_0 and the ε̂ it implies?  ``answer = (x0_hat, eps_hat)``."""
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__") or len(answer) != 2:
        return report(False, f"give two numbers, (x̂_0, ε̂), not {answer!r}.")
    x0, eps = (_number(value) for value in answer)
    if x0 is None or eps is None:
        return report(False, f"give two numbers, (x̂_0, ε̂), not {answer!r}.")
    right_x0, right_eps = x0_eps_answer()
    ex = VELOCITY_EXERCISE
    if _near(x0, right_x0) and _near(eps, right_eps):
        return report(True, "", success=f"Correct! x̂_0 = x_t − t·v̂ = {right_x0:g} and ε̂ = x_t + (1 − t)·v̂ = "
                                         f"{right_eps:g}; and ε̂ − x̂_0 = {right_eps - right_x0:g} = v̂, as it must be "
                                         "(flow.flow_x0_from_v, flow.flow_eps_from_v).")
    if _near(x0, right_eps) and _near(eps, right_x0):
        return report(False, "the two numbers are swapped: the first is x̂_0 (at t = 0), the second ε̂ (at t = 1).")
    if not _near(x0, right_x0):
        return report(False, _x0_hint(x0) or (
            f"x̂_0 does not match. Follow the straight line back from x_t at t = {ex['t']:g} to t = 0 with the "
            "velocity v̂: x̂_0 = x_t − t·v̂."))
    return report(False, _eps_hint(eps) or (
        f"x̂_0 is right, ε̂ is not. Follow the line on from x_t to t = 1: ε̂ = x_t + (1 − t)·v̂ (check: ε̂ − x̂_0 "
        f"must equal v̂ = {ex['v']:g})."))


# ------------------------------------------------------------------ exercise 2: flow time of a DDPM timestep
def flow_time_answer() -> float:
    """The answer of exercise 2, from flow.ddpm_time_to_flow."""
    ex = DDPM_TIME_EXERCISE
    return float(ddpm_time_to_flow(NoiseSchedule.from_name("linear", ex["T"]), ex["t_index"]))


def check_flow_time(answer) -> bool:
    """Exercise 2: on the linear schedule (T = 1000), which flow time t ∈ [0, 1] does the DDPM timestep
    with 0-based index 500 correspond to?  That is: c·x_500 = (1 − t)·x_0 + t·ε for some scale c."""
    value = _number(answer)
    if value is None:
        return report(False, f"give one number between 0 and 1, not {answer!r}.")
    ex = DDPM_TIME_EXERCISE
    schedule = NoiseSchedule.from_name("linear", ex["T"])
    k = ex["t_index"]
    right = flow_time_answer()
    if abs(value - right) <= FLOW_TIME_TOL:
        return report(True, "", success=f"Correct! ᾱ_{k} = {float(schedule.alphas_cumprod[k]):.4f}, and "
                                         f"t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)) = {right:.4f}: the halfway index is already three "
                                         "quarters of the way to the noise on the straight path (flow.ddpm_time_to_flow).")
    alpha_bar = float(schedule.alphas_cumprod[k])
    a, b = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    near = lambda target, tol=FLOW_TIME_TOL: abs(value - target) <= tol      # noqa: E731
    if any(near(x, 2e-3) for x in (k / ex["T"], k / (ex["T"] - 1), (k + 1) / ex["T"])):
        return report(False, "the flow time is not the fraction of the steps done. It is where x_t, scaled so that "
                             "its two weights add up to 1, lies on the straight line: with weights √ᾱ (data) and "
                             "√(1−ᾱ) (noise), t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)).")
    if near(999 * right, 1.0) or near(ex["T"] * right, 1.0):
        return report(False, "that is t·999, the UNet's time input (flow.network_time); the flow time itself lies "
                             "in [0, 1].")
    truncated = math.floor(right * 1000) / 1000
    if abs(value - truncated) < 1e-6:
        return report(False, f"{truncated:.3f} is either the right value cut off after 3 decimals instead of "
                             f"rounded (round it, or give more decimals), or the right formula at the wrong "
                             f"timestep: index {k} is 0-based, so use schedule.alphas_cumprod[{k}], not [{k - 1}].")
    if near(float(ddpm_time_to_flow(schedule, k - 1)), WRONG_INDEX_TOL) or \
            near(float(ddpm_time_to_flow(schedule, k + 1)), WRONG_INDEX_TOL):
        return report(False, f"the right formula at the wrong timestep: index {k} is 0-based, so use "
                             f"schedule.alphas_cumprod[{k}] (the paper would call it t = {k + 1}).")
    if near(b):
        return report(False, "√(1−ᾱ) is the noise weight of x_t itself, but √ᾱ + √(1−ᾱ) > 1: scale x_t by "
                             "c = 1/(√ᾱ + √(1−ᾱ)) first, so that the weights add up to 1 as (1 − t) and t do.")
    if near(a / (a + b)):
        return report(False, "that is 1 − t, the weight of the data. t is the weight of the noise: √(1−ᾱ)/(√ᾱ + √(1−ᾱ)).")
    if near(1 - alpha_bar) or near(alpha_bar):
        return report(False, "ᾱ and 1 − ᾱ are the *variances* of the two parts of x_t; the straight path mixes with "
                             "weights: the square roots √ᾱ and √(1−ᾱ), normalised to add up to 1.")
    if near(b / a, 1e-3):
        return report(False, "that is notebook 09's σ = √((1−ᾱ)/ᾱ), the noise level in x̃ = x_t/√ᾱ. The flow time "
                             "is σ/(1 + σ) = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)).")
    if 0 < value < 1 and abs(value - right) < 0.01:
        return report(False, f"close, but not to 3 decimals ({value} against the exact value): compute it from "
                             "schedule.alphas_cumprod and give at least 3 decimals.")
    return report(False, "scale x_t = √ᾱ·x_0 + √(1−ᾱ)·ε so that its two weights add up to 1; the noise weight is "
                         "then the flow time: t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)), with ᾱ = schedule.alphas_cumprod[500].")


# ------------------------------------------------------------------ exercise 3: steps within a budget of NFE
def budget_steps_answer() -> tuple[int, int]:
    """The answer of exercise 3, from the package: the largest ``steps`` whose ``sampler.nfe`` fits the
    budget, for FlowEulerSampler and for FlowHeunSampler."""
    budget = BUDGET_EXERCISE["budget"]

    def most_steps(cls) -> int:
        steps = 1
        while cls(steps=steps + 1).nfe <= budget:
            steps += 1
        return steps

    return most_steps(FlowEulerSampler), most_steps(FlowHeunSampler)



def check_budget_steps(answer) -> bool:
    """Exercise 3: with at most 25 network evaluations per image, how many steps can the flow Euler sampler
    take, and how many the flow Heun sampler (``FlowHeunSampler``)?  ``answer = (euler_steps, heun_steps)``."""
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__") or len(answer) != 2:
        return report(False, f"give two whole numbers, (Euler steps, Heun steps), not {answer!r}.")
    euler, heun = (as_whole_number(value) for value in answer)
    if euler is None or heun is None:
        return report(False, f"give two whole numbers, (Euler steps, Heun steps), not {answer!r}.")
    budget = BUDGET_EXERCISE["budget"]
    right_euler, right_heun = budget_steps_answer()
    if (euler, heun) == (right_euler, right_heun):
        return report(True, "", success=f"Correct! Euler makes one call per step: {right_euler} steps. The flow Heun "
                                         f"makes 2 calls on every step, the last one included (v is finite at t = 0), "
                                         f"so K steps cost 2K: {right_heun} steps cost {2 * right_heun}, and "
                                         f"{right_heun + 1} would cost {2 * right_heun + 2} > {budget}.")
    if (euler, heun) == (right_heun, right_euler):
        return report(False, "the two numbers are swapped: the first is Euler's steps, the second Heun's.")
    if euler != right_euler:
        return report(False, "Euler makes exactly one network call per step: how many steps does the budget buy?")
    if heun == budget:
        return report(False, "Heun evaluates the network twice per step: at the start of the step and again at the "
                             "end of its Euler trial step, to average the two slopes.")
    if 2 * heun - 1 <= budget < 2 * heun:
        return report(False, f"that counts 2K − 1 calls, as notebook 09's Heun, which skips the correction on its last "
                             f"step because the σ-ODE's slope divides by σ = 0 there. The flow ODE's v(x, 0) is finite, "
                             f"so FlowHeunSampler corrects the last step too: K steps cost 2K, and {heun} steps cost "
                             f"{2 * heun} > {budget}.")
    if 2 * heun > budget:
        return report(False, f"{heun} Heun steps cost 2·{heun} = {2 * heun} network calls, more than {budget}.")
    return report(False, "Heun makes 2 calls on every step (see FlowHeunSampler.timesteps in §4): K steps cost 2K. "
                         "Find the largest K with 2K within the budget.")


# ------------------------------------------------------------------ exercise 4: straightness by hand
def _straightness_path() -> tuple[torch.Tensor, torch.Tensor]:
    ex = STRAIGHTNESS_EXERCISE
    times = torch.tensor(ex["times"], dtype=torch.float64)
    xs = torch.tensor(ex["x"], dtype=torch.float64).reshape(-1, 1, 1, 1, 1)         # [K+1, B=1, C=1, H=1, W=1]
    return times, xs


def straightness_answer() -> float:
    """The answer of exercise 4, from flow.path_straightness."""
    return path_straightness(*_straightness_path())


def check_straightness(answer) -> bool:
    """Exercise 4: one pixel of a 2-step Euler path is x = 1.0 at t = 1, 0.6 at t = 0.8 and 0.2 at t = 0.
    What is its straightness S (the definition of §6, as ``flow.path_straightness`` computes it)?"""
    value = _number(answer)
    if value is None:
        return report(False, f"give one number, not {answer!r}.")
    right = straightness_answer()
    if _near(value, right):
        return report(True, "", success=f"Correct! v_0 = (0.6 − 1.0)/(0.8 − 1) = 2, v_1 = (0.2 − 0.6)/(0 − 0.8) = 0.5, "
                                         f"the line's D = (x(t_K) − x(t_0))/(t_K − t_0) = (0.2 − 1.0)/(0 − 1) = 0.8 "
                                         f"(= x_1 − x_0 in §6's notation, x_1 the noise, x_0 the sample), and S = 0.2·(0.8 − 2)² + "
                                         f"0.8·(0.8 − 0.5)² = {right:g}.")
    ex = STRAIGHTNESS_EXERCISE
    t, x = ex["times"], ex["x"]
    dt = [t[1] - t[0], t[2] - t[1]]
    v = [(x[1] - x[0]) / dt[0], (x[2] - x[1]) / dt[1]]
    line = (x[2] - x[0]) / (t[2] - t[0])
    weights = [abs(d) / abs(t[2] - t[0]) for d in dt]
    sq = [(line - vi) ** 2 for vi in v]
    moves, line_move = [x[1] - x[0], x[2] - x[1]], x[2] - x[0]
    slips = [
        (sum(w * s for w, s in zip(reversed(weights), sq)),
         "the weights are swapped: each step's (D − v_i)² gets its *own* step's share of the time. The first step, "
         "t = 1 → 0.8 (v_0 = 2), lasts |Δt_0| = 0.2, so its weight is 0.2; the second, t = 0.8 → 0 (v_1 = 0.5), "
         "lasts 0.8."),
        (sum(sq) / 2, "weight each step's ‖D − v_i‖² by its share of the time, |Δt_i|/|t_K − t_0| (0.2 and 0.8 "
                      "here), not equally: S is an integral over t."),
        (sum(sq), "S is a weighted *mean* over the steps, each weighted by |Δt_i|/|t_K − t_0| (0.2 and 0.8 here), "
                  "not a plain sum."),
        (sum(w * (line_move - m) ** 2 for w, m in zip(weights, moves)),
         "those are displacements, not velocities: divide each step's change of x by its Δt (and D by t_K − t_0)."),
        (sum((line_move - m) ** 2 for m in moves) / 2,
         "those are displacements, not velocities: divide each step's change of x by its Δt (and D by t_K − t_0)."),
        (sum(w * (-line - vi) ** 2 for w, vi in zip(weights, v)),
         "D and the v_i must use the same sign convention: D = (x(t_K) − x(t_0))/(t_K − t_0) and v_i = "
         "(x(t_{i+1}) − x(t_i))/(t_{i+1} − t_i), both with the negative Δt of a path that runs from t = 1 to t = 0."),
        (math.sqrt(right), "S uses the squared distance ‖D − v_i‖², not the distance: do not take the square root."),
        (sum(w * abs(line - vi) for w, vi in zip(weights, v)),
         "S uses the squared distance ‖D − v_i‖², not the distance |D − v_i|."),
    ]
    for target, hint in slips:
        if _near(value, target):
            return report(False, hint)
    return report(False, "compute each step's velocity v_i = (x(t_{i+1}) − x(t_i))/(t_{i+1} − t_i), the straight "
                         "line's D = (x(t_K) − x(t_0))/(t_K − t_0) (= x_1 − x_0 in §6's notation: x_1 the noise, x_0 "
                         "the sample), and S = Σ_i |Δt_i|/|t_K − t_0| · (D − v_i)².")
