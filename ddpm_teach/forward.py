"""The forward (noising) process q and the conversions between x_0, x_t and ε.

Notebook 01.  Shapes: images ``x`` are [B, C, H, W] in [-1, 1]; timesteps ``t`` are long
tensors [B] (or one int for the whole batch) with 0-based values in [0, T).

Equations are numbered as in Ho et al. 2020 (DDPM, arXiv:2006.11239).
"""
from __future__ import annotations

import torch

from .schedules import NoiseSchedule, extract

__all__ = [
    "q_step",
    "q_sample",
    "q_mean_variance",
    "q_posterior",
    "predict_x0_from_eps",
    "predict_eps_from_x0",
]


def _check_pair(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def q_step(schedule: NoiseSchedule, x_prev: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
    """One forward step, DDPM eq. 2: q(x_t | x_{t−1}) = N(√(1−β_t) x_{t−1}, β_t I).

    ``x_prev`` is x_{t−1} [B, C, H, W] (x_0 is data when t=0), ``noise`` is ε like it.  Returns x_t.
    """
    _check_pair(x_prev, noise, "x_prev", "noise")
    t = schedule.check_t(t, like=x_prev)
    beta = extract(schedule.betas, t, x_prev)                                       # (B, 1, 1, 1)
    # x_t = √(1 − β_t) x_{t−1} + √β_t ε
    return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
    """Closed form, DDPM eq. 4: q(x_t | x_0) = N(√ᾱ_t x_0, (1−ᾱ_t) I).

    ``x0`` and ``noise`` (ε) [B, C, H, W].  Returns x_t [B, C, H, W]."""
    _check_pair(x0, noise, "x0", "noise")
    t = schedule.check_t(t, like=x0)
    # x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε
    return extract(schedule.sqrt_alphas_cumprod, t, x0) * x0 + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise


def q_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [B, C, H, W] and variance [B, 1, 1, 1] of q(x_t | x_0) (eq. 4)."""
    t = schedule.check_t(t, like=x0)
    return extract(schedule.sqrt_alphas_cumprod, t, x0) * x0, 1.0 - extract(schedule.alphas_cumprod, t, x0)


def q_posterior(
    schedule: NoiseSchedule, *, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward-process posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I), DDPM eqs. 6-7.

    ``x0`` and ``x_t`` [B, C, H, W] are keyword-only, so that swapping them fails loudly.
    Returns ``(mean, variance, log_variance_clipped)``: mean [B, C, H, W]; variance and log
    variance [B, 1, 1, 1].  At t=0 the variance is 0 (x_{-1} means x_0 itself); the log
    variance is clipped there to β̃ at t=1 so that it stays finite.
    """
    _check_pair(x0, x_t, "x0", "x_t")
    t = schedule.check_t(t, like=x_t)
    # μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t     (eq. 7)
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t                                            (eq. 7)
    variance = extract(schedule.posterior_variance, t, x_t)
    log_variance = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, variance, log_variance


def predict_x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for x_0: x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t  (DDPM eq. 15).  All [B, C, H, W]."""
    _check_pair(x_t, eps, "x_t", "eps")
    t = schedule.check_t(t, like=x_t)
    # x̂_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε: eq. 15 rearranged, as improved-diffusion computes it
    return extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t - extract(schedule.sqrt_recipm1_alphas_cumprod, t, x_t) * eps


def predict_eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for ε: ε = (x_t − √ᾱ_t x_0) / √(1−ᾱ_t).  All [B, C, H, W]."""
    _check_pair(x_t, x0, "x_t", "x0")
    t = schedule.check_t(t, like=x_t)
    return (x_t - extract(schedule.sqrt_alphas_cumprod, t, x_t) * x0) / extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
