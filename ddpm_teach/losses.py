"""Training losses (notebooks 04 and 08).

* L_simple, DDPM eq. 14: ‖ε − ε_θ(x_t, t)‖², the loss of Algorithm 1 (line 5).
* L_vlb terms for learned variance, Improved DDPM §3.1: the KL between the true posterior
  q(x_{t−1} | x_t, x_0) and the model's p_θ(x_{t−1} | x_t) (eq. 5 of DDPM), and at t=0 the
  discretised decoder negative log-likelihood; both in bits per dimension.
* L_hybrid = L_simple + λ L_vlb (Improved DDPM eq. 16), with the gradient of L_vlb reaching
  only the variance (the mean is detached, their §3.1).

Names: a learned-variance model outputs 2C channels, ε̂ and ``v_raw`` (nominally in [-1, 1]);
``v = (v_raw + 1)/2`` is the paper's interpolation weight in [0, 1] (Improved DDPM eq. 15).
Same-shape tensor arguments are keyword-only, so that swapping two of them fails loudly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .forward import predict_x0_from_eps, q_posterior
from .schedules import NoiseSchedule, extract

__all__ = ["simple_loss", "normal_kl", "discretized_gaussian_log_likelihood", "vlb_terms", "hybrid_loss",
           "learned_log_variance"]


def simple_loss(eps_pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """L_simple (DDPM eq. 14), the loss of Algorithm 1 line 5: ‖ε − ε_θ‖² averaged over every
    dimension and the batch.  ``eps_pred`` and ``noise`` (ε) [B, C, H, W]; returns a scalar."""
    return F.mse_loss(eps_pred.float(), noise.float())


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), element-wise (broadcast), in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x) for 8-bit data in [-1, 1] under N(mean, e^{2·log_scale}) integrated over each
    pixel's bin of width 2/255, the edge bins extended to ±∞ (DDPM §3.3, eq. 13), element-wise, in
    nats.  ``x``, ``mean`` and ``log_scale`` broadcast together (e.g. [B, C, H, W] each)."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_minus = _standard_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_minus, torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))),
    )
    return log_probs


def learned_log_variance(schedule: NoiseSchedule, v_raw: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """Improved DDPM eq. 15: log σ_t² = v·log β_t + (1 − v)·log β̃_t, with the paper's weight
    v = (v_raw + 1)/2 from the network's raw extra channels ``v_raw`` [B, C, H, W]; t [B].
    Returns log σ² [B, C, H, W].  (The samplers call this too: it is the one place of eq. 15.)"""
    t = schedule.check_t(t, like=v_raw)
    v = (v_raw + 1) / 2                                                     # the paper's v in [0, 1]
    log_beta = extract(schedule.betas, t, v_raw).log()                      # (B, 1, 1, 1)
    log_beta_tilde = extract(schedule.posterior_log_variance_clipped, t, v_raw)
    return v * log_beta + (1 - v) * log_beta_tilde


def vlb_terms(schedule: NoiseSchedule, *, eps_pred: torch.Tensor, v_raw: torch.Tensor, x0: torch.Tensor,
              x_t: torch.Tensor, t: torch.Tensor, clip_x0: bool = False) -> torch.Tensor:
    """L_t per example [B] in bits/dim: KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t)) for t > 0,
    and −log p_θ(x_0 | x_1) for t = 0 (0-based indices).  ``eps_pred``, ``v_raw`` (the model's two
    halves), ``x0`` and ``x_t`` are [B, C, H, W]; t [B]."""
    true_mean, _, true_log_var = q_posterior(schedule, x0=x0, x_t=x_t, t=t)
    pred_x0 = predict_x0_from_eps(schedule, x_t, t, eps_pred)             # eq. 15
    if clip_x0:
        pred_x0 = pred_x0.clamp(-1, 1)
    model_mean, _, _ = q_posterior(schedule, x0=pred_x0, x_t=x_t, t=t)    # μ_θ = μ̃_t(x_t, x̂_0)
    model_log_var = learned_log_variance(schedule, v_raw, t)               # Improved DDPM eq. 15
    kl = normal_kl(true_mean, true_log_var, model_mean, model_log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    decoder_nll = -discretized_gaussian_log_likelihood(x0, mean=model_mean, log_scale=0.5 * model_log_var)
    return torch.where(t == 0, decoder_nll.mean(dim=(1, 2, 3)) / math.log(2.0), kl)


def hybrid_loss(schedule: NoiseSchedule, model_output: torch.Tensor, *, noise: torch.Tensor, x0: torch.Tensor,
                x_t: torch.Tensor, t: torch.Tensor, vlb_weight: float = 0.001) -> tuple[torch.Tensor, dict]:
    """L_hybrid = L_simple + λ·T·L_t (Improved DDPM eq. 16; a uniformly drawn t estimates L_vlb
    as T·L_t): Algorithm 1 line 5 for a learned-variance model.  ``model_output`` is
    [B, 2C, H, W], ε̂ then v_raw; ``noise`` (ε), ``x0`` and ``x_t`` are [B, C, H, W]; t [B].  The
    mean is detached inside the L_vlb term so it trains only the variance.  Returns the loss
    (a scalar) and its parts."""
    model_output = model_output.float()
    eps_pred, v_raw = model_output.chunk(2, dim=1)                          # (B, C, H, W) each
    mse = simple_loss(eps_pred, noise)                                       # DDPM eq. 14
    vlb = vlb_terms(schedule, eps_pred=eps_pred.detach(), v_raw=v_raw, x0=x0.float(), x_t=x_t.float(), t=t).mean()
    loss = mse + vlb_weight * schedule.T * vlb
    return loss, {"mse": mse.detach(), "vlb": vlb.detach()}
