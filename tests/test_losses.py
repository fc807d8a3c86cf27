"""Losses (notebooks 04 and 08), each checked against an independent computation: the Gaussian KL,
the discretised decoder likelihood, the L_vlb terms, the hybrid loss and the learned variance."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from ddpm_teach.data import to_model_range
from ddpm_teach.losses import (discretized_gaussian_log_likelihood, hybrid_loss, learned_log_variance, normal_kl,
                               simple_loss, vlb_terms)
from ddpm_teach.schedules import NoiseSchedule


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _reference_coefficients(betas: torch.Tensor) -> dict:
    """The forward-process quantities, rebuilt from β alone (DDPM eqs. 4, 6, 7), in float64."""
    betas = betas.double()
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    beta_tilde = betas * (1 - abar_prev) / (1 - abar)
    return {
        "betas": betas, "alphas": alphas, "abar": abar, "abar_prev": abar_prev, "beta_tilde": beta_tilde,
        # β̃_0 = 0: its log is clipped to log β̃_1 (improved-diffusion)
        "log_beta_tilde_clipped": torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]])),
        "coef_x0": betas * abar_prev.sqrt() / (1 - abar),
        "coef_xt": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
    }


def _b(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].reshape(-1, 1, 1, 1)


# -- Gaussian KL ----------------------------------------------------------------------------------

def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean1, mean2 = torch.randn(2, 6, 7, generator=g, dtype=torch.float64)
    logvar1, logvar2 = torch.rand(2, 6, 7, generator=g, dtype=torch.float64) * 6 - 4
    ours = normal_kl(mean1, logvar1, mean2, logvar2)
    reference = kl_divergence(Normal(mean1, (0.5 * logvar1).exp()), Normal(mean2, (0.5 * logvar2).exp()))
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    assert bool((ours > 0).all())


def test_normal_kl_of_identical_gaussians_is_zero():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(normal_kl(mean, logvar, mean, logvar), torch.zeros(5, 3, dtype=torch.float64),
                               rtol=0, atol=1e-14)
    # and KL(N(0,1) ‖ N(1,1)) = 1/2 by hand
    assert normal_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0)).item() == pytest.approx(0.5)


# -- the discretised decoder ----------------------------------------------------------------------

BIN_CENTRES = torch.arange(256, dtype=torch.float64) / 127.5 - 1              # the 256 values x can take


def test_bin_centres_are_the_model_range_of_the_256_pixel_values():
    torch.testing.assert_close(to_model_range(torch.arange(256, dtype=torch.uint8)), BIN_CENTRES.float())


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-8), (torch.float32, 2e-4)])
def test_discretized_likelihood_sums_to_one_over_the_256_bins(dtype, tol):
    means = torch.tensor([-1.0, -0.7, -0.013, 0.0, 0.5, 0.998, 1.0, 1.3, -2.0], dtype=dtype)
    log_scales = torch.tensor([-6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 0.5, -5.0, 1.0], dtype=dtype)
    x = BIN_CENTRES.to(dtype)[:, None].expand(256, len(means))            # (256 bins, M)
    log_p = discretized_gaussian_log_likelihood(x, mean=means[None].expand_as(x), log_scale=log_scales[None].expand_as(x))
    assert bool((log_p <= 1e-6).all())
    total = log_p.double().exp().sum(0)
    torch.testing.assert_close(total, torch.ones(len(means), dtype=torch.float64), rtol=0, atol=tol)


def test_discretized_likelihood_matches_the_gaussian_mass_of_each_bin():
    g = torch.Generator().manual_seed(2)
    k = torch.randint(0, 256, (40,), generator=g)
    k[:3] = torch.tensor([0, 255, 128])                                     # both edge bins and a middle one
    x = BIN_CENTRES[k]
    mean = x + torch.randn(40, generator=g, dtype=torch.float64) * 0.01
    log_scale = torch.rand(40, generator=g, dtype=torch.float64) * 3 - 5                 # σ from 0.007 to 0.14
    normal = Normal(mean, log_scale.exp())
    half = 1 / 255                                                           # bins are 2/255 wide
    upper = torch.where(k == 255, torch.ones_like(x), normal.cdf(x + half))   # edge bins reach ±∞
    lower = torch.where(k == 0, torch.zeros_like(x), normal.cdf(x - half))
    reference = torch.log(upper - lower)
    assert bool((reference > math.log(1e-8)).all())      # away from the 1e-12 floor that guards log(0)
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, mean=mean, log_scale=log_scale), reference,
                               rtol=1e-9, atol=1e-9)


# -- learned variance ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_learned_log_variance_interpolates_log_beta_and_log_beta_tilde(kind):
    schedule = NoiseSchedule.from_name(kind, 40)
    ref = _reference_coefficients(schedule.betas)
    t = torch.arange(40)
    shape = (40, 1, 2, 2)
    ones = torch.ones(shape, dtype=torch.float64)
    log_beta = _b(ref["betas"].log(), t).expand(shape)
    log_beta_tilde = _b(ref["log_beta_tilde_clipped"], t).expand(shape)
    torch.testing.assert_close(learned_log_variance(schedule, ones, t), log_beta)            # v_raw = 1 (v = 1): β_t
    torch.testing.assert_close(learned_log_variance(schedule, -ones, t), log_beta_tilde)     # v_raw = −1 (v = 0): β̃_t
    torch.testing.assert_close(learned_log_variance(schedule, 0 * ones, t), (log_beta + log_beta_tilde) / 2)
    # and between: the paper's v = (v_raw + 1)/2 weighs log β_t
    for v in (0.25, 0.7):
        torch.testing.assert_close(learned_log_variance(schedule, (2 * v - 1) * ones, t),
                                   v * log_beta + (1 - v) * log_beta_tilde)
    assert bool((log_beta_tilde <= log_beta + 1e-12).all())                                 # β̃ ≤ β


# -- L_vlb terms -----------------------------------------------------------------------------------

def _vlb_setup(schedule, t, seed=3):
    g = torch.Generator().manual_seed(seed)
    B = len(t)
    x0 = to_model_range(torch.randint(0, 256, (B, 2, 4, 4), generator=g, dtype=torch.uint8)).double()
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    eps_pred = noise + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    v_raw = torch.rand(x0.shape, generator=g, dtype=torch.float64) * 2 - 1
    ref = _reference_coefficients(schedule.betas)
    x_t = _b(ref["abar"], t).sqrt() * x0 + (1 - _b(ref["abar"], t)).sqrt() * noise       # eq. 4
    return x0, noise, eps_pred, v_raw, x_t, ref


def _reference_vlb(ref, x0, x_t, t, eps_pred, v_raw):
    """L_t in bits/dim by hand: KL of the true posterior to the model's Gaussian, or at t = 0
    the negative log-likelihood of x_0 under the model's discretised Gaussian."""
    abar = _b(ref["abar"], t)
    pred_x0 = (x_t - (1 - abar).sqrt() * eps_pred) / abar.sqrt()                          # eq. 15
    model_mean = _b(ref["coef_x0"], t) * pred_x0 + _b(ref["coef_xt"], t) * x_t            # eq. 7
    true_mean = _b(ref["coef_x0"], t) * x0 + _b(ref["coef_xt"], t) * x_t
    v = (v_raw + 1) / 2                                                                   # the paper's v
    model_var = torch.exp(v * _b(ref["betas"].log(), t) + (1 - v) * _b(ref["log_beta_tilde_clipped"], t))
    true_var = _b(ref["log_beta_tilde_clipped"], t).exp().expand_as(x0)
    kl = kl_divergence(Normal(true_mean, true_var.sqrt()), Normal(model_mean, model_var.sqrt()))
    model = Normal(model_mean, model_var.sqrt())
    upper = torch.where(x0 > 0.999, torch.ones_like(x0), model.cdf(x0 + 1 / 255))
    lower = torch.where(x0 < -0.999, torch.zeros_like(x0), model.cdf(x0 - 1 / 255))
    nll = -torch.log(upper - lower)
    per_example = torch.where(t.reshape(-1, 1, 1, 1) == 0, nll, kl)
    return per_example.mean(dim=(1, 2, 3)) / math.log(2)


def test_vlb_terms_are_the_decoder_nll_at_t0_and_the_kl_in_bits_after():
    schedule = NoiseSchedule.from_name("linear", 30)
    t = torch.tensor([0, 1, 0, 7, 29, 15])
    x0, noise, eps_pred, v_raw, x_t, ref = _vlb_setup(schedule, t)
    ours = vlb_terms(schedule, eps_pred=eps_pred, v_raw=v_raw, x0=x0, x_t=x_t, t=t)
    assert ours.shape == (len(t),)
    torch.testing.assert_close(ours, _reference_vlb(ref, x0, x_t, t, eps_pred, v_raw), rtol=1e-7, atol=1e-9)
    assert bool((ours[t > 0] >= 0).all()) and bool((ours[t == 0] > 0).all())


def test_vlb_kl_vanishes_for_the_true_noise_and_the_true_variance():
    """Predicting the true ε gives the true posterior mean; with v = −1 (σ² = β̃) the KL is 0."""
    schedule = NoiseSchedule.from_name("cosine", 30)
    t = torch.tensor([1, 5, 12, 29])
    x0, noise, _, _, x_t, _ = _vlb_setup(schedule, t)
    kl = vlb_terms(schedule, eps_pred=noise, v_raw=-torch.ones_like(x0), x0=x0, x_t=x_t, t=t)
    torch.testing.assert_close(kl, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-9)


# -- the hybrid loss -------------------------------------------------------------------------------

def test_hybrid_loss_value_is_mse_plus_weighted_vlb():
    schedule = NoiseSchedule.from_name("linear", 30)
    t = torch.tensor([0, 3, 10, 29])
    x0, noise, eps_pred, v_raw, x_t, _ = _vlb_setup(schedule, t)
    output = torch.cat([eps_pred, v_raw], dim=1).float()
    loss, parts = hybrid_loss(schedule, output, noise=noise.float(), x0=x0.float(), x_t=x_t.float(), t=t, vlb_weight=0.01)
    mse = ((output[:, :2] - noise.float()) ** 2).mean()
    vlb = vlb_terms(schedule, eps_pred=eps_pred.float(), v_raw=v_raw.float(), x0=x0.float(), x_t=x_t.float(), t=t).mean()
    torch.testing.assert_close(parts["mse"], mse)
    torch.testing.assert_close(parts["vlb"], vlb)
    torch.testing.assert_close(loss, mse + 0.01 * schedule.T * vlb)     # Improved DDPM eq. 16, L_vlb ≈ T·L_t


def test_hybrid_loss_vlb_gradient_reaches_only_the_variance_channels():
    schedule = NoiseSchedule.from_name("linear", 30)
    t = torch.tensor([0, 2, 9, 20, 29])
    x0, noise, eps_pred, v_raw, x_t, _ = _vlb_setup(schedule, t)
    C = x0.shape[1]
    output = torch.cat([eps_pred, v_raw], dim=1).float().requires_grad_(True)
    loss, _ = hybrid_loss(schedule, output, noise=noise.float(), x0=x0.float(), x_t=x_t.float(), t=t, vlb_weight=1000.0)
    (grad,) = torch.autograd.grad(loss, output)
    (grad_mse,) = torch.autograd.grad(simple_loss(output[:, :C], noise.float()), output)
    # the ε channels see only the MSE, however large λ is ...
    torch.testing.assert_close(grad[:, :C], grad_mse[:, :C], rtol=1e-6, atol=1e-9)
    # ... while the v channels are trained by L_vlb
    assert grad[:, C:].abs().sum() > 0
    (grad_small,) = torch.autograd.grad(
        hybrid_loss(schedule, output, noise=noise.float(), x0=x0.float(), x_t=x_t.float(), t=t, vlb_weight=1.0)[0], output)
    torch.testing.assert_close(grad[:, C:], 1000.0 * grad_small[:, C:], rtol=1e-4, atol=1e-7)


def test_simple_loss_is_the_mean_squared_error():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 3, 1, 4, 4, generator=g)
    assert simple_loss(a, b).item() == pytest.approx(((a - b) ** 2).sum().item() / a.numel(), rel=1e-6)


# -- keyword-only tensors --------------------------------------------------------------------------

def test_same_shape_tensors_are_keyword_only():
    """noise, x0, x_t (and eps_pred, v_raw) all have one shape: a positional call, where a swap
    would pass silently, is a TypeError."""
    schedule = NoiseSchedule.from_name("linear", 30)
    t = torch.tensor([0, 3, 10, 29])
    x0, noise, eps_pred, v_raw, x_t, _ = _vlb_setup(schedule, t)
    output = torch.cat([eps_pred, v_raw], dim=1)
    with pytest.raises(TypeError):
        hybrid_loss(schedule, output, noise, x0, x_t, t)
    with pytest.raises(TypeError):
        vlb_terms(schedule, eps_pred, v_raw, x0, x_t, t)
    with pytest.raises(TypeError):
        discretized_gaussian_log_likelihood(x0, x_t, torch.zeros_like(x0))
    by_name = hybrid_loss(schedule, output, t=t, x_t=x_t, x0=x0, noise=noise)[0]     # any order
    swapped = hybrid_loss(schedule, output, noise=noise, x0=x_t, x_t=x0, t=t)[0]
    assert not torch.allclose(by_name, swapped)                                      # the names matter
