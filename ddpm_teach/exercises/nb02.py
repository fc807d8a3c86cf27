"""Exercise checks for notebook 02 (noise schedules).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers are computed here from
:mod:`ddpm_teach.schedules`, never typed in, so they follow the package.
"""
from __future__ import annotations

import math
import numbers

from ..schedules import NoiseSchedule
from . import as_float, close, report

__all__ = ["check_alpha_bar_T", "check_smallest_T", "smallest_T_below", "SNR_TARGET"]

SNR_TARGET = 1e-4   # exercise 2: the linear schedule must end with SNR(T) below this


def _last(kind: str, T: int, name: str, **kwargs) -> float:
    """Coefficient ``name`` at the last step (t = T − 1) of the schedule ``kind`` with T steps."""
    return float(getattr(NoiseSchedule.from_name(kind, T, **kwargs), name)[-1])


def check_alpha_bar_T(answer) -> bool:
    """Exercise 1: ᾱ_T, the signal variance left at the last step, of the DDPM linear schedule
    (β from 1e-4 to 0.02, not rescaled) with T = 100.  Three significant digits are enough."""
    value = as_float(answer, strings=True)
    if value is None:
        return report(False, f"give one number (a float), not {type(answer).__name__}.")
    T = 100
    schedule = NoiseSchedule.from_name("linear", T)
    alpha_bar_T = float(schedule.alphas_cumprod[-1])
    if close(value, alpha_bar_T, 2e-3):
        return report(True, "", success=f"Correct! ᾱ_T = {alpha_bar_T:.4f}: after 100 linear steps x_T still "
                                         f"holds √ᾱ_T = {math.sqrt(alpha_bar_T):.2f} of x_0.")
    wrong = [
        (math.sqrt(alpha_bar_T), "that is √ᾱ_T, the *scale* of x_0 in x_T. ᾱ_T is its square (the signal variance)."),
        (1.0 - alpha_bar_T, "that is 1 − ᾱ_T, the noise variance. ᾱ_T is the part of the variance that is signal."),
        (float(schedule.snr[-1]), "that is SNR(T) = ᾱ_T / (1 − ᾱ_T). The question asks for ᾱ_T itself."),
        (float(schedule.alphas_cumprod[-2]), "that is ᾱ one step early. With 0-based indices the last step is "
                                             "t = T − 1 = 99: schedule.alphas_cumprod[-1]."),
        (_last("linear", 1000, "alphas_cumprod"), "that is ᾱ_T for T = 1000. Build the schedule with T = 100."),
        (_last("linear", T, "alphas_cumprod", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T),
         "that is the *rescaled* schedule (β × 1000/T). The exercise keeps β from 1e-4 to 0.02."),
        (math.exp(-float(schedule.betas.sum())), "that is the approximation exp(−Σβ_t). Take the exact product "
                                                 "Π (1 − β_t), i.e. schedule.alphas_cumprod[-1]."),
    ]
    for wrong_value, hint in wrong:
        if close(value, wrong_value, 2e-3):
            return report(False, hint)
    return report(False, "ᾱ_T = Π_t (1 − β_t) over all T = 100 betas of make_betas('linear', 100); "
                         "NoiseSchedule.from_name('linear', 100).alphas_cumprod[-1] holds it.")


def smallest_T_below(snr_target: float = SNR_TARGET, kind: str = "linear", T_max: int = 100_000) -> int:
    """The smallest T whose schedule (end points not rescaled) ends with SNR(T) < ``snr_target``."""
    for T in range(1, T_max + 1):
        if _last(kind, T, "snr") < snr_target:
            return T
    raise ValueError(f"no T up to {T_max} brings SNR(T) of {kind!r} below {snr_target}.")


def check_smallest_T(answer) -> bool:
    """Exercise 2: the smallest T for which the linear schedule (β from 1e-4 to 0.02 whatever T,
    as ``make_betas("linear", T)`` does) ends with SNR(T) < 1e-4."""
    if isinstance(answer, bool):
        return report(False, f"T is a whole number of steps; got {answer!r}.")
    if not isinstance(answer, numbers.Integral):
        value = as_float(answer, strings=True)
        if value is None or value != int(value):
            return report(False, f"T is a whole number of steps; got {answer!r}.")
        answer = int(value)
    answer = int(answer)
    target = smallest_T_below(SNR_TARGET)
    if answer == target:
        return report(True, "", success=f"Correct! T = {target} is the first T with SNR(T) < {SNR_TARGET:g} "
                                         f"(SNR = {_last('linear', target, 'snr'):.3e}; at T = {target - 1} it is "
                                         f"{_last('linear', target - 1, 'snr'):.3e}).")
    if answer < 1:
        return report(False, "T counts diffusion steps, so it is at least 1.")
    snr = _last("linear", answer, "snr")
    reference = NoiseSchedule.from_name("linear", 1000)
    first_t_in_1000 = int((reference.snr < SNR_TARGET).nonzero()[0])
    if answer in (first_t_in_1000, first_t_in_1000 + 1):
        return report(False, f"{answer} is where SNR(t) first drops below {SNR_TARGET:g} *inside* the T = 1000 "
                             "schedule. Changing T changes every β (linspace from 1e-4 to 0.02 over T steps), "
                             "so build a new schedule for each T and look at its last SNR.")
    approximate = math.ceil(-math.log(SNR_TARGET) / ((1e-4 + 0.02) / 2))
    if answer in (approximate - 1, approximate, approximate + 1):
        return report(False, "close, but ᾱ_T ≈ exp(−Σβ_t) is an approximation (log(1 − β) < −β, so the exact "
                             "ᾱ_T is smaller). Use the exact NoiseSchedule.from_name('linear', T).snr[-1].")
    if snr >= SNR_TARGET:
        return report(False, f"at T = {answer} the last step still has SNR(T) = {snr:.3e}, not below "
                             f"{SNR_TARGET:g}. Try larger T: loop over T and test "
                             "NoiseSchedule.from_name('linear', T).snr[-1].")
    if answer == 1000:
        return report(False, "T = 1000 (DDPM's) does end below 1e-4, but it is not the smallest T that does.")
    return report(False, f"at T = {answer} SNR(T) = {snr:.3e} is below {SNR_TARGET:g}, but a smaller T "
                         "already gets there. Find the first T, and compare snr[-1] (the last index, "
                         "t = T − 1).")
