"""ddpm_teach.forward: the forward process q and its inversions (DDPM eqs. 2, 4, 6, 7, 15).

References are re-derived here in float64 numpy from the betas alone; statistical tests use
tolerances of 5 standard errors computed from the sample size (the seed is fixed, so they are
deterministic, but a wrong mean or variance by more than a few per cent would fail them)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.forward import (
    predict_eps_from_x0,
    predict_x0_from_eps,
    q_mean_variance,
    q_posterior,
    q_sample,
    q_step,
)
from ddpm_teach.schedules import NoiseSchedule, make_betas

N_SIGMA = 5.0  # how many standard errors a sample statistic may stray


def alpha_bar_np(betas: torch.Tensor) -> np.ndarray:
    """ᾱ_t = Π_{s≤t} (1 − β_s), by an explicit loop."""
    out, running = [], 1.0
    for beta in betas.tolist():
        running *= 1.0 - beta
        out.append(running)
    return np.array(out)


def posterior_np(betas: torch.Tensor, x0: np.ndarray, x_t: np.ndarray, t: int):
    """DDPM eqs. 6-7 in float64: μ̃ = √ᾱ_{t−1} β_t/(1−ᾱ_t) x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t,
    β̃ = (1−ᾱ_{t−1})/(1−ᾱ_t) β_t, with ᾱ_{−1} = 1."""
    alpha_bar = alpha_bar_np(betas)
    beta = betas[t].item()
    ab_t = alpha_bar[t]
    ab_prev = alpha_bar[t - 1] if t > 0 else 1.0
    mean = math.sqrt(ab_prev) * beta / (1 - ab_t) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t) * x_t
    return mean, (1 - ab_prev) / (1 - ab_t) * beta


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, what: str):
    """Per-coordinate sample mean and variance of ``samples`` [N, ...] against the truth, and
    Gaussian skewness/kurtosis, each within N_SIGMA standard errors for a normal sample of size N."""
    n = samples.shape[0]
    m = samples.mean(0)
    v = samples.var(0)
    mean_se = (var / n).sqrt()                     # SE of a sample mean: σ/√N
    var_se = var * math.sqrt(2.0 / (n - 1))        # SE of a sample variance (normal data): σ²√(2/(N−1))
    assert ((m - mean).abs() <= N_SIGMA * mean_se).all(), f"{what}: mean {m} vs {mean} (SE {mean_se})"
    assert ((v - var).abs() <= N_SIGMA * var_se).all(), f"{what}: variance {v} vs {var} (SE {var_se})"
    z = (samples - mean) / var.sqrt()
    skew, excess_kurtosis = (z**3).mean(0), (z**4).mean(0) - 3
    assert (skew.abs() <= N_SIGMA * math.sqrt(6.0 / n)).all(), f"{what}: skewness {skew}"
    assert (excess_kurtosis.abs() <= N_SIGMA * math.sqrt(24.0 / n)).all(), f"{what}: kurtosis {excess_kurtosis}"


# ------------------------------------------------------- iterating q_step equals q_sample
@pytest.mark.parametrize("kind,T,t", [("linear", 100, 60), ("cosine", 50, 24), ("cosine", 50, 49), ("linear", 1000, 0)])
def test_iterated_q_step_equals_q_sample_in_distribution(kind, T, t):
    schedule = NoiseSchedule.from_name(kind, T)
    n = 20000
    x0 = torch.tensor([-0.9, -0.2, 0.4, 1.0], dtype=torch.float64).reshape(1, 1, 1, 4).expand(n, 1, 1, 4)
    gen = torch.Generator().manual_seed(1)

    x = x0
    for s in range(t + 1):                        # t+1 steps: x_0 → x_1 → ... → x_t (0-based t)
        x = q_step(schedule, x, s, torch.randn(x.shape, generator=gen, dtype=torch.float64))
    closed = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))

    alpha_bar = alpha_bar_np(schedule.betas)[t]
    mean = math.sqrt(alpha_bar) * x0[0]          # eq. 4: N(√ᾱ_t x_0, (1−ᾱ_t) I)
    var = torch.full_like(mean, 1 - alpha_bar)
    assert_moments(x, mean, var, "iterated q_step")
    assert_moments(closed, mean, var, "q_sample")
    # and the two samples against each other: difference of means has SE √(2σ²/N)
    assert ((x.mean(0) - closed.mean(0)).abs() <= N_SIGMA * (2 * var / n).sqrt()).all()
    # coordinates are independent (isotropic covariance): correlations have SE ≈ 1/√N
    flat = (x - mean).reshape(n, 4) / var.sqrt().reshape(1, 4)
    corr = (flat.T @ flat) / n
    off_diagonal = corr - torch.diag(torch.diagonal(corr))
    assert off_diagonal.abs().max() <= N_SIGMA / math.sqrt(n)


def test_iterated_q_step_is_exactly_linear_gaussian():
    """The exact version of the statistical test: the chain is x_t = √ᾱ_t x_0 + Σ_s c_s ε_s,
    so with zero noise it must return √ᾱ_t x_0, and the squared noise coefficients c_s
    (read off by switching one ε_s on at a time) must sum to 1 − ᾱ_t."""
    schedule = NoiseSchedule.from_name("cosine", 30)
    t = 29
    x0 = torch.tensor([[[[0.7, -0.3]]]], dtype=torch.float64)

    def chain(x, noise_at=None):
        for s in range(t + 1):
            noise = torch.ones_like(x) if s == noise_at else torch.zeros_like(x)
            x = q_step(schedule, x, s, noise)
        return x

    alpha_bar = alpha_bar_np(schedule.betas)[t]
    torch.testing.assert_close(chain(x0), math.sqrt(alpha_bar) * x0, rtol=1e-12, atol=1e-15)
    coefficients = [chain(torch.zeros_like(x0), noise_at=s)[0, 0, 0, 0].item() for s in range(t + 1)]
    assert sum(c * c for c in coefficients) == pytest.approx(1 - alpha_bar, rel=1e-12)


# ------------------------------------------------------------------ exact closed forms
def test_q_step_is_eq2():
    schedule = NoiseSchedule.from_name("linear", 100)
    x_prev = torch.rand(3, 2, 4, 4) * 2 - 1
    noise = torch.randn(3, 2, 4, 4)
    t = torch.tensor([0, 42, 99])
    out = q_step(schedule, x_prev, t, noise)
    assert out.dtype == torch.float32 and out.shape == x_prev.shape
    beta = make_betas("linear", 100).numpy()[[0, 42, 99]].reshape(3, 1, 1, 1)
    expected = np.sqrt(1 - beta) * x_prev.double().numpy() + np.sqrt(beta) * noise.double().numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_q_sample_with_given_noise_is_eq4(dtype, tol):
    schedule = NoiseSchedule.from_name("cosine", 100)
    x0 = (torch.rand(4, 3, 2, 2) * 2 - 1).to(dtype)
    noise = torch.randn(4, 3, 2, 2, dtype=dtype)
    t = torch.tensor([0, 1, 50, 99])
    out = q_sample(schedule, x0, t, noise)
    assert out.dtype == dtype
    alpha_bar = alpha_bar_np(schedule.betas)[t.numpy()].reshape(4, 1, 1, 1)
    expected = np.sqrt(alpha_bar) * x0.double().numpy() + np.sqrt(1 - alpha_bar) * noise.double().numpy()
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=tol, atol=tol)


def test_q_mean_variance_is_eq4():
    schedule = NoiseSchedule.from_name("linear", 10)
    x0 = torch.rand(2, 1, 3, 3, dtype=torch.float64)
    mean, var = q_mean_variance(schedule, x0, torch.tensor([2, 7]))
    alpha_bar = alpha_bar_np(schedule.betas)[[2, 7]].reshape(2, 1, 1, 1)
    np.testing.assert_allclose(mean.numpy(), np.sqrt(alpha_bar) * x0.numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.broadcast_to(var.numpy(), (2, 1, 1, 1)), 1 - alpha_bar, rtol=1e-12)


def test_int_t_broadcasts_like_a_full_tensor():
    schedule = NoiseSchedule.from_name("linear", 50)
    x0, noise = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    full = torch.full((5,), 17, dtype=torch.long)
    assert torch.equal(q_sample(schedule, x0, 17, noise), q_sample(schedule, x0, full, noise))
    assert torch.equal(q_step(schedule, x0, 17, noise), q_step(schedule, x0, full, noise))
    assert torch.equal(q_sample(schedule, x0, torch.tensor(17), noise), q_sample(schedule, x0, full, noise))
    for a, b in zip(q_posterior(schedule, x0=x0, x_t=noise, t=17), q_posterior(schedule, x0=x0, x_t=noise, t=full)):
        assert torch.equal(a.expand(5, 1, 2, 2), b.expand(5, 1, 2, 2))


# ---------------------------------------------------------------------------- posterior
@pytest.mark.parametrize("kind,T", [("linear", 1000), ("cosine", 100)])
def test_q_posterior_matches_eq6_7(kind, T):
    schedule = NoiseSchedule.from_name(kind, T)
    ts = [1, 2, T // 2, T - 1]
    x0 = torch.rand(len(ts), 1, 3, 3, dtype=torch.float64) * 2 - 1
    x_t = torch.randn(len(ts), 1, 3, 3, dtype=torch.float64)
    mean, var, log_var = q_posterior(schedule, x0=x0, x_t=x_t, t=torch.tensor(ts))
    assert mean.shape == x0.shape and var.shape == (len(ts), 1, 1, 1) and log_var.shape == var.shape
    for i, t in enumerate(ts):
        ref_mean, ref_var = posterior_np(schedule.betas, x0[i].numpy(), x_t[i].numpy(), t)
        np.testing.assert_allclose(mean[i].numpy(), ref_mean, rtol=1e-10, atol=1e-12)
        assert var[i].item() == pytest.approx(ref_var, rel=1e-10)
        assert log_var[i].item() == pytest.approx(math.log(ref_var), rel=1e-10)


def test_q_posterior_in_float32_keeps_dtype_and_agrees():
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0, x_t = torch.rand(2, 1, 4, 4) * 2 - 1, torch.randn(2, 1, 4, 4)
    mean, var, _ = q_posterior(schedule, x0=x0, x_t=x_t, t=torch.tensor([10, 500]))
    assert mean.dtype == torch.float32 and var.dtype == torch.float32
    mean64, var64, _ = q_posterior(schedule, x0=x0.double(), x_t=x_t.double(), t=torch.tensor([10, 500]))
    torch.testing.assert_close(mean.double(), mean64, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var.double(), var64, rtol=1e-6, atol=0.0)


def test_q_posterior_at_t0_is_x0_with_zero_variance():
    """x_{-1} is x_0 itself: the posterior is a point mass at x_0, whatever x_t is."""
    schedule = NoiseSchedule.from_name("cosine", 100)
    x0 = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    x_t = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    mean, var, log_var = q_posterior(schedule, x0=x0, x_t=x_t, t=0)
    torch.testing.assert_close(mean, x0, rtol=1e-12, atol=1e-12)
    assert (var == 0).all()
    assert torch.isfinite(log_var).all()  # clipped to β̃ at t=1


def test_q_posterior_is_the_bayes_posterior_empirically():
    """Draw x_{t−1} ~ q(x_{t−1}|x_0) then x_t ~ q(x_t|x_{t−1}); regressing x_{t−1} on x_t gives
    E[x_{t−1}|x_t, x_0] = a + b·x_t and a residual variance, which must be μ̃'s two coefficients
    (eq. 7) and β̃_t.  Tolerances: 5 standard errors of least-squares estimates at this N."""
    betas = make_betas("linear", 10, beta_start=0.05, beta_end=0.3)  # large β so the posterior is wide
    schedule = NoiseSchedule(betas)
    t, x0_value, n = 4, 0.6, 200_000
    gen = torch.Generator().manual_seed(3)
    x0 = torch.full((n, 1, 1, 1), x0_value, dtype=torch.float64)
    x_prev = q_sample(schedule, x0, t - 1, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    x_t = q_step(schedule, x_prev, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    y, x = x_prev.flatten(), x_t.flatten()

    x_mean, y_mean = x.mean(), y.mean()
    slope = ((x - x_mean) * (y - y_mean)).sum() / ((x - x_mean) ** 2).sum()
    intercept = y_mean - slope * x_mean
    residual_var = ((y - intercept - slope * x) ** 2).sum() / (n - 2)

    ref_intercept, _ = posterior_np(betas, x0_value, 0.0, t)              # coef1 · x_0
    ref_slope = posterior_np(betas, 0.0, 1.0, t)[0]                        # coef2
    _, ref_var = posterior_np(betas, x0_value, 0.0, t)
    x_var = x.var()
    slope_se = math.sqrt(ref_var / (n * x_var))
    intercept_se = math.sqrt(ref_var / n * (1 + x_mean**2 / x_var))
    assert abs(slope - ref_slope) <= N_SIGMA * slope_se
    assert abs(intercept - ref_intercept) <= N_SIGMA * intercept_se
    assert abs(residual_var - ref_var) <= N_SIGMA * ref_var * math.sqrt(2.0 / n)

    # and the package's q_posterior gives exactly those coefficients
    mean, var, _ = q_posterior(schedule, x0=torch.full((2, 1, 1, 1), x0_value, dtype=torch.float64),
                               x_t=torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1), t=t)
    assert mean[0].item() == pytest.approx(ref_intercept, rel=1e-12)
    assert (mean[1] - mean[0]).item() == pytest.approx(ref_slope, rel=1e-12)
    assert var[0].item() == pytest.approx(ref_var, rel=1e-12)


# ---------------------------------------------------------------- x_0 / ε conversions
@pytest.mark.parametrize("t", [0, 1, 500, 999])
def test_predict_x0_from_eps_inverts_q_sample(t):
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    x_t = q_sample(schedule, x0, t, eps)
    # 1/√ᾱ reaches ~160 at t=999, so the float64 round-off in x_t is amplified that much
    torch.testing.assert_close(predict_x0_from_eps(schedule, x_t, t, eps), x0, rtol=0, atol=1e-12)
    # at t=0, 1 − ᾱ = 1e-4 is formed by cancellation, so √(1−ᾱ) carries a relative error of
    # ~1e-16/1e-4 = 1e-12, and ε = (x_t − √ᾱ x_0)/√(1−ᾱ) inherits it
    torch.testing.assert_close(predict_eps_from_x0(schedule, x_t, t, x0), eps, rtol=1e-11, atol=1e-12)


def test_conversions_in_float32():
    schedule = NoiseSchedule.from_name("cosine", 100)
    x0 = torch.rand(4, 1, 4, 4) * 2 - 1
    eps = torch.randn(4, 1, 4, 4)
    t = torch.tensor([3, 30, 60, 90])
    x_t = q_sample(schedule, x0, t, eps)
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps)
    eps_hat = predict_eps_from_x0(schedule, x_t, t, x0)
    assert x0_hat.dtype == torch.float32 and eps_hat.dtype == torch.float32
    # float32 round-off (~6e-8) amplified by at most 1/√ᾱ_t resp. 1/√(1−ᾱ_t) (≤ ~50 here)
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=2e-5)
    torch.testing.assert_close(eps_hat, eps, rtol=0, atol=2e-5)


def test_eps_and_x0_conversions_are_mutual_inverses():
    """For any x_t (not only one made by q_sample), ε → x̂_0 → ε and x̂_0 → ε → x̂_0 are identities,
    and x̂_0 satisfies x_t = √ᾱ x̂_0 + √(1−ᾱ) ε, i.e. eq. 15 independently."""
    schedule = NoiseSchedule.from_name("cosine", 50)
    x_t = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    eps = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    t = torch.tensor([0, 25, 49])
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps)
    alpha_bar = torch.tensor(alpha_bar_np(schedule.betas)[t.numpy()]).reshape(3, 1, 1, 1)
    torch.testing.assert_close(x0_hat, (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(predict_eps_from_x0(schedule, x_t, t, x0_hat), eps, rtol=0, atol=1e-10)
    torch.testing.assert_close(predict_x0_from_eps(schedule, x_t, t, predict_eps_from_x0(schedule, x_t, t, x0_hat)),
                               x0_hat, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call",
    [
        lambda s, a, b: q_step(s, a, 0, b),
        lambda s, a, b: q_sample(s, a, 0, b),
        lambda s, a, b: q_posterior(s, x0=a, x_t=b, t=0),
        lambda s, a, b: predict_x0_from_eps(s, a, 0, b),
        lambda s, a, b: predict_eps_from_x0(s, a, 0, b),
    ],
    ids=["q_step", "q_sample", "q_posterior", "predict_x0_from_eps", "predict_eps_from_x0"],
)
def test_shape_mismatch_raises(call):
    schedule = NoiseSchedule.from_name("linear", 10)
    with pytest.raises(ValueError, match="same shape"):
        call(schedule, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3))


@pytest.mark.parametrize("bad_t", [torch.tensor([1, 2, 3]), torch.tensor([[1, 2]])])
def test_t_of_wrong_shape_raises(bad_t):
    schedule = NoiseSchedule.from_name("linear", 10)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[B\]"):
        q_sample(schedule, x, bad_t, x)


def test_t_out_of_range_or_float_raises():
    schedule = NoiseSchedule.from_name("linear", 10)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        q_sample(schedule, x, 10, x)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        q_step(schedule, x, -1, x)
    with pytest.raises(TypeError):
        q_sample(schedule, x, 1.0, x)


def test_q_posterior_takes_its_tensors_by_keyword_only():
    """x0 and x_t have the same shape, so a positional swap would pass silently: it is a TypeError."""
    schedule = NoiseSchedule.from_name("linear", 10)
    x0, x_t = torch.rand(2, 1, 4, 4) * 2 - 1, torch.randn(2, 1, 4, 4)
    with pytest.raises(TypeError):
        q_posterior(schedule, x0, x_t, 3)
    with pytest.raises(TypeError):
        q_posterior(schedule, x_t, x0, t=3)
    mean, _, _ = q_posterior(schedule, x_t=x_t, t=3, x0=x0)              # any order, by name
    swapped, _, _ = q_posterior(schedule, x0=x_t, x_t=x0, t=3)
    assert not torch.allclose(mean, swapped)                             # so the names matter


def test_every_public_function_checks_t_once_at_its_entry(monkeypatch):
    """Validate once, at the boundary: each public function calls NoiseSchedule.check_t exactly once,
    however many coefficients it looks up (extract() itself checks nothing)."""
    schedule = NoiseSchedule.from_name("linear", 10)
    calls = []
    real = NoiseSchedule.check_t
    monkeypatch.setattr(NoiseSchedule, "check_t", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    x = torch.randn(2, 1, 4, 4)
    for call in (lambda: q_step(schedule, x, 3, x), lambda: q_sample(schedule, x, 3, x),
                 lambda: q_mean_variance(schedule, x, 3), lambda: q_posterior(schedule, x0=x, x_t=x, t=3),
                 lambda: predict_x0_from_eps(schedule, x, 3, x), lambda: predict_eps_from_x0(schedule, x, 3, x)):
        calls.clear()
        call()
        assert len(calls) == 1
