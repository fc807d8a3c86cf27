"""Exercise checks for notebook 08 (learned variance, Improved DDPM).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers are computed here from
:mod:`ddpm_teach.schedules` and :mod:`ddpm_teach.samplers`, never typed in, so they follow the
package.
"""
from __future__ import annotations

import math

from ..samplers import DDPMSampler
from ..schedules import NoiseSchedule
from . import as_float, close, report

__all__ = ["VARIANCE_EXERCISE", "RESPACING_EXERCISE", "check_learned_variance", "check_respaced_ratio",
           "learned_variance_answer", "respaced_ratio_answer"]

# exercise 1: σ² of the linear T=1000 schedule at 0-based t=1 for the paper's v = 0.3 (eq. 15)
VARIANCE_EXERCISE = {"T": 1000, "t": 1, "v": 0.3}
# exercise 2: β'_1 / β̃'_1 of DDPMSampler(linear T=1000, steps=25) at the respaced step i=1 (τ_1 → τ_0)
RESPACING_EXERCISE = {"T": 1000, "steps": 25, "i": 1}
REL_TOL = 2e-3   # three significant digits are enough


def _sigma2(schedule: NoiseSchedule, t: int, v: float) -> float:
    """exp(v·log β_t + (1 − v)·log β̃_t), Improved DDPM eq. 15 (β̃ clipped at t=0 as the package does)."""
    log_beta = math.log(float(schedule.betas[t]))
    log_beta_tilde = float(schedule.posterior_log_variance_clipped[t])
    return math.exp(v * log_beta + (1 - v) * log_beta_tilde)


def learned_variance_answer() -> float:
    """The answer of exercise 1."""
    ex = VARIANCE_EXERCISE
    return _sigma2(NoiseSchedule.from_name("linear", ex["T"]), ex["t"], ex["v"])


def check_learned_variance(answer) -> bool:
    """Exercise 1: σ² = exp(v log β_t + (1 − v) log β̃_t) for the linear schedule with T = 1000,
    at the 0-based timestep t = 1 (the paper's t = 2), with the paper's interpolation weight v = 0.3."""
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float), not {answer!r}.")
    ex = VARIANCE_EXERCISE
    schedule = NoiseSchedule.from_name("linear", ex["T"])
    t, v = ex["t"], ex["v"]
    right = _sigma2(schedule, t, v)
    beta, beta_tilde = float(schedule.betas[t]), float(schedule.posterior_variance[t])
    if close(value, right, REL_TOL):
        return report(True, "", success=f"Correct! σ² = β^{v}·β̃^{1 - v:.1f} = {right:.4e}, between β̃_t = {beta_tilde:.4e} "
                                         f"and β_t = {beta:.4e} (geometric, not arithmetic, interpolation).")
    v_if_raw = (v + 1) / 2          # the slip: 0.3 converted as if it were the raw channel v_raw
    wrong = [
        (math.log(right), "that is log σ². Eq. 15 gives the log-variance; exponentiate it to get σ²."),
        (math.sqrt(right), "that is σ, the standard deviation. The question asks for the variance σ²."),
        (v * beta + (1 - v) * beta_tilde, "that interpolates the variances themselves. Eq. 15 interpolates their "
                                          "*logarithms*: log σ² = v log β_t + (1 − v) log β̃_t."),
        (_sigma2(schedule, t, 1 - v), "the weights are swapped: v multiplies log β_t (the larger end), 1 − v "
                                      "multiplies log β̃_t."),
        (_sigma2(schedule, t, v_if_raw), "0.3 is already the paper's v in [0, 1]. The conversion v = (v_raw + 1)/2 "
                                         "is for the network's raw output channel v_raw, which lies in [−1, 1]."),
        (beta, "that is β_t, the end point v = 1. With v = 0.3 σ² lies between β̃_t and β_t, nearer β̃_t."),
        (beta_tilde, "that is β̃_t, the end point v = 0. With v = 0.3 σ² lies between β̃_t and β_t."),
        (_sigma2(schedule, t - 1, v), "that is one step early (t = 0). Timesteps are 0-based: use betas[1] and "
                                      "posterior_variance[1]."),
        (_sigma2(schedule, t + 1, v), "that is one step late (t = 2). Timesteps are 0-based: index 1 is the "
                                      "paper's t = 2."),
    ]
    for wrong_value, hint in wrong:
        if close(value, wrong_value, REL_TOL):
            return report(False, hint)
    return report(False, "take log β_t from schedule.betas[1] and log β̃_t from schedule.posterior_variance[1] "
                         "(linear schedule, T = 1000), mix them with weights 0.3 and 0.7, and exponentiate.")


def _respaced(steps: int, T: int = 1000, spacing: str = "uniform") -> NoiseSchedule:
    return DDPMSampler(NoiseSchedule.from_name("linear", T), steps=steps, spacing=spacing).respaced


def respaced_ratio_answer() -> float:
    """The answer of exercise 2."""
    ex = RESPACING_EXERCISE
    respaced = _respaced(ex["steps"], ex["T"])
    i = ex["i"]
    return float(respaced.betas[i] / respaced.posterior_variance[i])


def _is_non_finite_number(answer) -> bool:
    """A single number (Python, numpy or one-element tensor) that is inf or NaN."""
    if isinstance(answer, (bool, str, bytes)) or (hasattr(answer, "numel") and answer.numel() != 1):
        return False
    try:
        return not math.isfinite(float(answer))
    except (TypeError, ValueError):
        return False


def check_respaced_ratio(answer) -> bool:
    """Exercise 2: for the linear schedule (T = 1000) respaced to 25 uniform steps, the ratio
    β'_i / β̃'_i at the respaced step i = 1 (the step from τ_1 down to τ_0 = 0)."""
    ex = RESPACING_EXERCISE
    T, steps, i = ex["T"], ex["steps"], ex["i"]
    if _is_non_finite_number(answer):          # β'_0 / β̃'_0 = β_0 / 0: the first entry of the respaced arrays
        return report(False, "an infinite (or NaN) ratio is the step i = 0, from τ_0 = 0 down to the data (the "
                             "last sampling step), where β̃'_0 = 0 (ᾱ before τ_0 is 1, so the factor 1 − ᾱ_prev "
                             f"of β̃' is 0). The exercise asks for i = {i}, the step from τ_{i} down to τ_0 = 0: "
                             f"index {i} of the respaced betas and posterior_variance, not index 0.")
    value = as_float(answer)
    if value is None:
        return report(False, f"give one number (a float), not {answer!r}.")
    full = NoiseSchedule.from_name("linear", T)
    respaced = _respaced(steps, T)
    tau = DDPMSampler(full, steps=steps).timesteps.flip(0)      # ascending τ_0 = 0 < τ_1 < ...
    tau_exact = i * (T - 1) / (steps - 1)                        # linspace(0, T − 1, steps)[i] before rounding
    tau_truncated = math.floor(tau_exact)
    right = float(respaced.betas[i] / respaced.posterior_variance[i])
    if close(value, right, REL_TOL):
        t = int(tau[i])
        return report(True, "", success=f"Correct! β'/β̃' = {right:.2f} at the respaced step τ_{i} = {t} → τ_{i - 1} = "
                                         f"{int(tau[i - 1])}, against β_t/β̃_t = "
                                         f"{float(full.betas[t] / full.posterior_variance[t]):.3f} at t = {t} of the "
                                         f"full process: the two fixed choices are far apart after respacing.")
    leading = _respaced(steps, T, "leading")
    wrong = [
        (1.0 / right, "that is β̃'/β', the inverse. The larger variance β' goes on top."),
        (math.log(right), "that is log(β'/β̃'). The exercise asks for the ratio itself."),
        (float(full.betas[int(tau[i])] / full.posterior_variance[int(tau[i])]),
         "that is β_t/β̃_t of the full T = 1000 process at t = τ_1. Respace first: β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}, "
         "β̃'_i = (1 − ᾱ_{τ_{i−1}})/(1 − ᾱ_{τ_i})·β'_i (DDPMSampler(schedule, steps=25).respaced holds them)."),
        (float(respaced.betas[i + 1] / respaced.posterior_variance[i + 1]),
         "that is the next respaced step, i = 2. Count from τ_0 = 0: i = 1 is the step from τ_1 down to τ_0."),
        (float(leading.betas[i] / leading.posterior_variance[i]),
         "that uses the 'leading' spacing (0, 40, 80, ...). DDPMSampler's default, used here, is 'uniform': "
         "linspace(0, T − 1, steps) rounded."),
    ]
    if tau_truncated != int(tau[i]):                             # τ_1 = 41 instead of 42
        alpha_bar = full.alphas_cumprod
        wrong.append((float((1 - alpha_bar[tau_truncated]) / (1 - alpha_bar[int(tau[i - 1])])),
                      f"that uses τ_{i} = {tau_truncated}. τ is rounded, not truncated: linspace(0, {T - 1}, {steps}) "
                      f"gives {tau_exact:g} for τ_{i}, which rounds to {int(tau[i])}."))
    for wrong_value, hint in wrong:
        if close(value, wrong_value, REL_TOL):
            return report(False, hint)
    return report(False, "take DDPMSampler(NoiseSchedule.from_name('linear', 1000), steps=25).respaced and "
                         "divide its betas[1] by its posterior_variance[1]; or by hand, β'/β̃' = "
                         "(1 − ᾱ_{τ_1})/(1 − ᾱ_{τ_0}).")
