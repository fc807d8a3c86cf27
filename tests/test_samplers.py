"""ddpm_teach.samplers: DDPM (Algorithm 2), DDIM (eqs. 12, 16), respacing, guidance, the loop.

Each step is checked against a float64 numpy re-derivation written here from the papers, with the
noise z re-drawn from a generator seeded like the sampler's; the identities DDIM(η=0, true ε)
recovers x_0 and DDIM(η=1, all T steps) is DDPM(β̃) are checked on whole trajectories."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.forward import predict_x0_from_eps, q_posterior, q_sample
from ddpm_teach.samplers import (
    DEFAULT_DDIM_STEPS,
    DDIMSampler,
    DDPMSampler,
    SamplerOutput,
    Trajectory,
    guided_model_output,
    make_sampler,
    p_mean_from_eps,
    sample,
)
from ddpm_teach.schedules import NoiseSchedule

SPACINGS = ["uniform", "leading", "trailing", "quadratic"]


def alpha_bar_np(schedule: NoiseSchedule) -> np.ndarray:
    """ᾱ_t = Π_{s≤t} (1 − β_s), by an explicit loop from the betas."""
    out, running = [], 1.0
    for beta in schedule.betas.tolist():
        running *= 1.0 - beta
        out.append(running)
    return np.array(out)


def fake_eps(x: torch.Tensor, t) -> torch.Tensor:
    """A fixed, deterministic stand-in for ε̂(x_t, t): smooth, depends on both arguments, and large
    enough that x̂_0 leaves [-1, 1] at large t, so clipping is exercised."""
    return 1.3 * torch.sin(3.0 * x + 0.01 * float(t))


def draw(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def ddpm_step_reference(schedule, kept_ascending, t, x_t, eps, z, variance_type="fixed_small", v=None, clip=True):
    """Algorithm 2 over the respaced process τ (Improved DDPM §4), in float64 numpy:
    ᾱ'_k = ᾱ_{τ_k}, β'_k = 1 − ᾱ'_k/ᾱ'_{k−1}; x̂_0 from eq. 15; μ̃ and β̃' from eq. 7;
    σ² = β̃' | β' | exp(f log β' + (1−f) log β̃'), f = (v+1)/2 (Improved DDPM eq. 15)."""
    alpha_bar = alpha_bar_np(schedule)
    k = kept_ascending.index(t)
    ab = alpha_bar[t]
    ab_prev = alpha_bar[kept_ascending[k - 1]] if k > 0 else 1.0
    beta = 1 - ab / ab_prev
    x_t, eps = x_t.double().numpy(), eps.double().numpy()
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip:
        x0 = np.clip(x0, -1, 1)
    mean = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * x_t
    if k == 0:
        return mean, x0
    posterior_var = (1 - ab_prev) / (1 - ab) * beta
    if variance_type == "fixed_small":
        var = posterior_var
    elif variance_type == "fixed_large":
        var = beta
    else:
        frac = (v.double().numpy() + 1) / 2
        var = np.exp(frac * math.log(beta) + (1 - frac) * math.log(posterior_var))
    return mean + np.sqrt(var) * z.double().numpy(), x0


def ddim_step_reference(schedule, timesteps_desc, t, x_t, eps, z, eta, clip=True):
    """DDIM eq. 12 with σ(η) of eq. 16, in float64 numpy; ε re-derived from the clipped x̂_0."""
    alpha_bar = alpha_bar_np(schedule)
    i = timesteps_desc.index(t)
    ab = alpha_bar[t]
    ab_prev = alpha_bar[timesteps_desc[i + 1]] if i + 1 < len(timesteps_desc) else 1.0
    x_t, eps = x_t.double().numpy(), eps.double().numpy()
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip:
        x0 = np.clip(x0, -1, 1)
        eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
    prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if i + 1 < len(timesteps_desc) and eta > 0:
        prev = prev + sigma * z.double().numpy()
    return prev, x0


# ------------------------------------------------------------------------------ timesteps
@pytest.mark.parametrize("spacing,T,steps", [
    (spacing, T, steps)
    for spacing in SPACINGS
    for T, steps in [(10, 1), (10, 3), (10, 10), (50, 7), (1000, 20), (1000, 29)]
    # quadratic spacing spans only [0, 0.8·T], so 10 of T=10 cannot fit: it raises (tested below)
    if not (spacing == "quadratic" and (T, steps) == (10, 10))
])
def test_spacing_gives_descending_unique_in_range_timesteps(spacing, T, steps):
    schedule = NoiseSchedule.from_name("linear", T)
    sampler = DDIMSampler(schedule, steps=steps, spacing=spacing)
    ts = sampler.timesteps
    assert ts.dtype == torch.long and ts.shape == (steps,) and len(sampler) == steps
    assert ((ts >= 0) & (ts < T)).all()
    assert (ts[:-1] > ts[1:]).all()                        # strictly descending ⇒ unique
    assert torch.equal(DDPMSampler(schedule, steps=steps, spacing=spacing).timesteps, ts)


@pytest.mark.parametrize("spacing", ["uniform", "leading", "trailing"])
@pytest.mark.parametrize("T", [10, 50, 100])
def test_every_step_count_works_for_regular_spacings(spacing, T):
    """Every steps in 1..T gives exactly that many distinct timesteps (the trailing spacing used
    to fail for e.g. T=50, steps=29, where a float arange held one element too many)."""
    for steps in range(1, T + 1):
        ts = DDIMSampler(NoiseSchedule.from_name("linear", T), steps=steps, spacing=spacing).timesteps
        assert len(ts) == steps and len(torch.unique(ts)) == steps, steps
        assert int(ts.min()) >= 0 and int(ts.max()) <= T - 1


def test_spacing_end_points():
    schedule = NoiseSchedule.from_name("linear", 1000)
    uniform = DDIMSampler(schedule, steps=10, spacing="uniform").timesteps
    assert uniform[0] == 999 and uniform[-1] == 0
    expected = [round(i * 999 / 9) for i in range(10)][::-1]   # evenly spaced over [0, T−1]
    assert uniform.tolist() == expected
    # rounded to the nearest index, not floored: 99·i/6 = 0, 16.5, 33, 49.5, 66, 82.5, 99
    uneven = DDIMSampler(NoiseSchedule.from_name("linear", 100), steps=7, spacing="uniform").timesteps
    assert uneven.tolist() == [round(i * 99 / 6) for i in range(7)][::-1] == [99, 82, 66, 50, 33, 16, 0]
    leading = DDIMSampler(schedule, steps=10, spacing="leading").timesteps
    assert leading.tolist() == list(range(900, -1, -100))      # 0, k, 2k, ... with k = T // steps
    trailing = DDIMSampler(schedule, steps=10, spacing="trailing").timesteps
    assert trailing.tolist() == list(range(999, 0, -100))      # T−1, T−1−k, ...
    quadratic = DDIMSampler(schedule, steps=10, spacing="quadratic").timesteps.flip(0)
    gaps = quadratic[1:] - quadratic[:-1]
    assert quadratic[0] == 0 and (gaps[1:] >= gaps[:-1]).all()  # denser near the data
    assert quadratic[-1] == int(0.8 * 1000)                    # ends at 0.8·T (DDIM §D.2)


def test_a_single_uniform_step_starts_from_the_last_timestep():
    """Sampling starts from x_T ~ N(0, I), so one step must be taken at t = T−1, not t = 0
    (where the model would treat pure noise as an almost clean image)."""
    schedule = NoiseSchedule.from_name("linear", 100)
    assert DDIMSampler(schedule, steps=1).timesteps.tolist() == [99]
    assert DDPMSampler(schedule, steps=1).timesteps.tolist() == [99]
    assert DDIMSampler(schedule, steps=2).timesteps.tolist() == [99, 0]
    # and one DDPM step over the respaced process (β'_0 = 1 − ᾱ_99) returns x̂_0, noise-free
    sampler = DDPMSampler(schedule, steps=1)
    assert sampler.respaced.betas[0].item() == pytest.approx(1 - alpha_bar_np(schedule)[99], rel=1e-12)
    x = torch.randn(2, 1, 4, 4)
    out = sampler.step(fake_eps(x, 99), 99, x)
    assert torch.equal(out.prev_sample, out.pred_x0)


def test_all_T_steps_are_every_timestep():
    schedule = NoiseSchedule.from_name("linear", 20)
    assert DDPMSampler(schedule).timesteps.tolist() == list(range(19, -1, -1))
    assert DDIMSampler(schedule, steps=20).timesteps.tolist() == list(range(19, -1, -1))


def test_bad_step_counts_and_spacing_raise():
    schedule = NoiseSchedule.from_name("linear", 20)
    with pytest.raises(ValueError, match="T=20"):
        DDIMSampler(schedule, steps=21)
    with pytest.raises(ValueError, match="T=20"):
        DDPMSampler(schedule, steps=21)
    for steps in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="steps"):
            DDIMSampler(schedule, steps=steps)
    with pytest.raises(ValueError, match="uniform"):
        DDIMSampler(schedule, steps=5, spacing="log")
    with pytest.raises(ValueError, match="repeated"):   # quadratic spacing at T=1000 and 50 steps
        DDIMSampler(NoiseSchedule.from_name("linear", 1000), steps=50, spacing="quadratic")
    with pytest.raises(ValueError, match="repeated"):   # ... and all of T=10 in [0, 8]
        DDIMSampler(NoiseSchedule.from_name("linear", 10), steps=10, spacing="quadratic")
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(schedule, steps=5, eta=-0.1)
    with pytest.raises(ValueError, match="variance_type"):
        DDPMSampler(schedule, variance_type="fixed")


def test_step_at_a_foreign_timestep_raises():
    schedule = NoiseSchedule.from_name("linear", 100)
    x = torch.zeros(1, 1, 2, 2)
    for sampler in (DDPMSampler(schedule, steps=10), DDIMSampler(schedule, steps=10)):
        with pytest.raises(ValueError, match="timesteps"):
            sampler.step(x, 50, x)


# ------------------------------------------------------------------------------- respacing
@pytest.mark.parametrize("spacing,steps", [("uniform", 10), ("leading", 7), ("trailing", 25), ("uniform", 100)])
def test_respaced_betas_keep_alpha_bar_at_kept_timesteps(spacing, steps):
    schedule = NoiseSchedule.from_name("cosine", 100)
    sampler = DDPMSampler(schedule, steps=steps, spacing=spacing)
    kept = sampler.timesteps.flip(0).tolist()
    betas = sampler.respaced.betas.numpy()
    assert betas.shape == (steps,) and ((betas > 0) & (betas < 1)).all()
    # Π_{j≤k} (1 − β'_j) = ᾱ_{τ_k}: an explicit product, not the package's cumprod
    running = 1.0
    for k, t in enumerate(kept):
        running *= 1.0 - betas[k]
        assert running == pytest.approx(alpha_bar_np(schedule)[t], rel=1e-12)
    if steps == schedule.T:                                  # no respacing: the original betas
        np.testing.assert_allclose(betas, schedule.betas.numpy(), rtol=1e-10)


# ----------------------------------------------------------------------- one DDPM step
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("steps", [None, 7])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ddpm_step_matches_algorithm_2(variance_type, steps, dtype):
    schedule = NoiseSchedule.from_name("linear", 50)
    sampler = DDPMSampler(schedule, steps=steps, variance_type=variance_type)
    kept = sampler.timesteps.flip(0).tolist()
    shape = (3, 2, 4, 4)
    tol = 1e-12 if dtype == torch.float64 else 2e-5       # float32: a few ulps of O(1)-O(10) values
    for t in sampler.timesteps.tolist():
        x_t = draw(shape, seed=t, dtype=dtype) * 1.5
        eps = fake_eps(x_t, t)
        out = sampler.step(eps, t, x_t, generator=torch.Generator().manual_seed(100 + t))
        assert isinstance(out, SamplerOutput)
        assert out.prev_sample.dtype == dtype and out.prev_sample.shape == shape and out.pred_x0.shape == shape
        z = draw(shape, seed=100 + t, dtype=dtype)
        ref_prev, ref_x0 = ddpm_step_reference(schedule, kept, t, x_t, eps, z, variance_type)
        np.testing.assert_allclose(out.pred_x0.double().numpy(), ref_x0, rtol=tol, atol=tol)
        np.testing.assert_allclose(out.prev_sample.double().numpy(), ref_prev, rtol=tol, atol=tol)


@pytest.mark.parametrize("v_value", [1.0, -1.0, 0.0, 0.3])
def test_learned_range_interpolates_between_beta_and_posterior_variance(v_value):
    """Improved DDPM eq. 15: v=+1 gives σ² = β', v=−1 gives β̃' (respaced), between them the
    log-linear mix. Checked as (prev_sample − μ)/z = σ with z from the same-seeded generator."""
    schedule = NoiseSchedule.from_name("cosine", 40)
    sampler = DDPMSampler(schedule, steps=8, variance_type="learned_range")
    kept = sampler.timesteps.flip(0).tolist()
    alpha_bar = alpha_bar_np(schedule)
    shape = (2, 1, 4, 4)
    for k in range(1, len(kept)):                            # k=0 adds no noise at all
        t = kept[k]
        x_t = draw(shape, seed=k, dtype=torch.float64)
        eps = fake_eps(x_t, t)
        v = torch.full(shape, v_value, dtype=torch.float64)
        out = sampler.step(torch.cat([eps, v], dim=1), t, x_t, generator=torch.Generator().manual_seed(7))
        z = draw(shape, seed=7, dtype=torch.float64)
        no_noise, _ = ddpm_step_reference(schedule, kept, t, x_t, eps, torch.zeros(shape), "fixed_small")
        sigma = (out.prev_sample.numpy() - no_noise) / z.numpy()
        beta = 1 - alpha_bar[t] / alpha_bar[kept[k - 1]]
        posterior_var = (1 - alpha_bar[kept[k - 1]]) / (1 - alpha_bar[t]) * beta
        f = (v_value + 1) / 2
        expected_var = {1.0: beta, -1.0: posterior_var}.get(v_value, beta**f * posterior_var ** (1 - f))
        np.testing.assert_allclose(sigma, math.sqrt(expected_var), rtol=1e-8)
        ref_prev, _ = ddpm_step_reference(schedule, kept, t, x_t, eps, z, "learned_range", v=v)
        np.testing.assert_allclose(out.prev_sample.numpy(), ref_prev, rtol=1e-12, atol=1e-12)


def test_learned_range_needs_2C_channels_and_others_ignore_v():
    schedule = NoiseSchedule.from_name("linear", 10)
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="learn_sigma"):
        DDPMSampler(schedule, variance_type="learned_range").step(x, 9, x)
    # a 2C output given to a fixed-variance sampler: the v channels are ignored
    eps = fake_eps(x, 9)
    a = DDPMSampler(schedule).step(torch.cat([eps, torch.randn_like(x)], 1), 9, x, torch.Generator().manual_seed(0))
    b = DDPMSampler(schedule).step(eps, 9, x, torch.Generator().manual_seed(0))
    assert torch.equal(a.prev_sample, b.prev_sample)


@pytest.mark.parametrize("make", [
    lambda s: DDPMSampler(s),
    lambda s: DDPMSampler(s, steps=3, spacing="trailing"),
    lambda s: DDPMSampler(s, steps=4, variance_type="learned_range"),
    lambda s: DDIMSampler(s, steps=5, eta=1.0),
], ids=["ddpm", "ddpm-trailing", "ddpm-learned", "ddim-eta1"])
def test_no_noise_at_the_last_step(make):
    """Algorithm 2 line 3: z = 0 when t = 1. The last step returns the clipped x̂_0, draws nothing
    from the generator, and so does not depend on it."""
    schedule = NoiseSchedule.from_name("linear", 20)
    sampler = make(schedule)
    t = int(sampler.timesteps[-1])
    x_t = draw((2, 1, 4, 4), seed=1) * 3
    output = fake_eps(x_t, t) * 4                              # pushes x̂_0 outside [-1, 1]
    if getattr(sampler, "learned_variance", False):
        output = torch.cat([output, torch.ones_like(output)], 1)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    out_a = sampler.step(output, t, x_t, generator=generator)
    assert torch.equal(generator.get_state(), state)          # no random number was drawn
    out_b = sampler.step(output, t, x_t, generator=torch.Generator().manual_seed(6))
    out_c = sampler.step(output, t, x_t, generator=None)
    assert torch.equal(out_a.prev_sample, out_b.prev_sample) and torch.equal(out_a.prev_sample, out_c.prev_sample)
    ab = alpha_bar_np(schedule)[t]
    eps = output[:, :1].double()
    clipped = ((x_t.double() - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
    assert (clipped.abs() == 1).any()                          # the clip really did something
    torch.testing.assert_close(out_a.prev_sample.double(), clipped, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out_a.pred_x0, out_a.prev_sample, rtol=1e-6, atol=1e-6)


# ------------------------------------------------- eq. 11 against the x̂_0 route (notebook 05 §1)
def eq11_mean_np(schedule, t, x_t, eps):
    """DDPM eq. 11 in float64 numpy, from the betas alone: μ_θ = (x_t − β_t/√(1−ᾱ_t) ε)/√α_t."""
    beta = schedule.betas.tolist()[t]
    ab = alpha_bar_np(schedule)[t]
    return (x_t.double().numpy() - beta / math.sqrt(1 - ab) * eps.double().numpy()) / math.sqrt(1 - beta)


@pytest.mark.parametrize("kind,T", [("linear", 1000), ("cosine", 100)])
def test_eq11_mean_equals_the_posterior_mean_at_x0_hat(kind, T):
    """Unclipped, the two routes to μ_θ are one number: eq. 11 straight from ε̂, and μ̃_t(x_t, x̂_0)
    of eq. 7 at x̂_0 from eq. 15; and both equal an independent float64 eq. 11."""
    schedule = NoiseSchedule.from_name(kind, T)
    t = torch.tensor([0, 1, T // 3, T // 2, T - 1])
    x_t = draw((5, 2, 4, 4), seed=0, dtype=torch.float64) * 1.5
    eps = fake_eps(x_t, 7)
    eq11 = p_mean_from_eps(schedule, x_t=x_t, t=t, eps=eps)
    via_x0, _, _ = q_posterior(schedule, x0=predict_x0_from_eps(schedule, x_t, t, eps), x_t=x_t, t=t)
    torch.testing.assert_close(eq11, via_x0, rtol=1e-10, atol=1e-10)
    for i, t_i in enumerate(t.tolist()):
        np.testing.assert_allclose(eq11[i].numpy(), eq11_mean_np(schedule, t_i, x_t[i], eps[i]), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(eq11, x_t, atol=1e-3)            # not vacuous: the step moves x_t


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("steps", [None, 7])
def test_ddpm_step_eq11_route_and_x0_route_agree_when_clipping_does_nothing(variance_type, steps):
    """DDPMSampler.step takes eq. 11 when clip_x0=False and μ̃_t(x_t, clip(x̂_0)) when clip_x0=True.
    Where x̂_0 lies inside [-1, 1] the clip is a no-op, so the two samplers must agree step for step,
    with the same z (respaced or not, every variance type)."""
    schedule = NoiseSchedule.from_name("linear", 50)
    eq11 = DDPMSampler(schedule, steps=steps, variance_type=variance_type, clip_x0=False)
    via_x0 = DDPMSampler(schedule, steps=steps, variance_type=variance_type, clip_x0=True)
    alpha_bar = alpha_bar_np(schedule)
    x0 = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 1.6 - 0.8            # inside [-1, 1]
    for t in eq11.timesteps.tolist():
        noise = draw(x0.shape, seed=t, dtype=torch.float64)
        x_t = math.sqrt(alpha_bar[t]) * x0 + math.sqrt(1 - alpha_bar[t]) * noise
        output = noise if variance_type != "learned_range" else torch.cat([noise, torch.full_like(noise, 0.4)], 1)
        a = eq11.step(output, t, x_t, generator=torch.Generator().manual_seed(t))
        b = via_x0.step(output, t, x_t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a.pred_x0, b.pred_x0, rtol=0, atol=1e-12)
        torch.testing.assert_close(a.prev_sample, b.prev_sample, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unclipped_ddpm_step_matches_algorithm_2(dtype):
    """clip_x0=False (the eq. 11 route) against the float64 x̂_0-route reference, x̂_0 far outside [-1, 1]."""
    schedule = NoiseSchedule.from_name("linear", 50)
    sampler = DDPMSampler(schedule, clip_x0=False)
    kept = sampler.timesteps.flip(0).tolist()
    shape = (3, 2, 4, 4)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for t in sampler.timesteps.tolist():
        x_t = draw(shape, seed=t, dtype=dtype) * 1.5
        eps = fake_eps(x_t, t)
        out = sampler.step(eps, t, x_t, generator=torch.Generator().manual_seed(100 + t))
        z = draw(shape, seed=100 + t, dtype=dtype)
        ref_prev, ref_x0 = ddpm_step_reference(schedule, kept, t, x_t, eps, z, clip=False)
        np.testing.assert_allclose(out.pred_x0.double().numpy(), ref_x0, rtol=tol, atol=tol)
        np.testing.assert_allclose(out.prev_sample.double().numpy(), ref_prev, rtol=tol, atol=tol)


def test_p_mean_from_eps_takes_its_tensors_by_keyword_only():
    schedule = NoiseSchedule.from_name("linear", 10)
    x_t, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    with pytest.raises(TypeError):
        p_mean_from_eps(schedule, x_t, 3, eps)
    with pytest.raises(ValueError, match="same shape"):
        p_mean_from_eps(schedule, x_t=x_t, t=3, eps=eps[:1])
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        p_mean_from_eps(schedule, x_t=x_t, t=10, eps=eps)


def test_clip_x0_false_leaves_pred_x0_unclipped():
    schedule = NoiseSchedule.from_name("linear", 20)
    x_t = draw((2, 1, 4, 4), seed=1, dtype=torch.float64) * 3
    eps = fake_eps(x_t, 19) * 4
    ab = alpha_bar_np(schedule)[19]
    expected = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    assert expected.abs().max() > 1
    for sampler in (DDPMSampler(schedule, clip_x0=False), DDIMSampler(schedule, steps=4, clip_x0=False)):
        torch.testing.assert_close(sampler.step(eps, 19, x_t).pred_x0, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad_shape", [(2, 1, 4, 3), (2, 3, 4, 4), (1, 1, 4, 4)])
def test_model_output_of_wrong_shape_raises(bad_shape):
    schedule = NoiseSchedule.from_name("linear", 10)
    x = torch.zeros(2, 1, 4, 4)
    for sampler in (DDPMSampler(schedule), DDIMSampler(schedule, steps=5)):
        with pytest.raises(ValueError, match="model_output"):
            sampler.step(torch.zeros(bad_shape), 9, x)


# ----------------------------------------------------------------------- one DDIM step
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_step_matches_eq_12_and_16(eta, clip):
    schedule = NoiseSchedule.from_name("cosine", 100)
    sampler = DDIMSampler(schedule, steps=9, eta=eta, clip_x0=clip, spacing="trailing")
    desc = sampler.timesteps.tolist()
    shape = (2, 3, 4, 4)
    for t in desc:
        x_t = draw(shape, seed=t, dtype=torch.float64) * 1.5
        eps = fake_eps(x_t, t)
        out = sampler.step(eps, t, x_t, generator=torch.Generator().manual_seed(t + 1))
        ref_prev, ref_x0 = ddim_step_reference(schedule, desc, t, x_t, eps, draw(shape, t + 1, torch.float64), eta, clip)
        np.testing.assert_allclose(out.pred_x0.numpy(), ref_x0, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.prev_sample.numpy(), ref_prev, rtol=1e-11, atol=1e-11)


def test_ddim_eta0_draws_no_noise():
    schedule = NoiseSchedule.from_name("linear", 50)
    sampler = DDIMSampler(schedule, steps=10, eta=0.0)
    x = torch.randn(2, 1, 4, 4)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    for t in sampler.timesteps.tolist():
        x = sampler.step(fake_eps(x, t), t, x, generator=generator).prev_sample
    assert torch.equal(generator.get_state(), state)


# ---------------------------------------------------------------- trajectory identities
@pytest.mark.parametrize("spacing,steps", [("uniform", 100), ("uniform", 10), ("leading", 10), ("trailing", 13)])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_eta0_driven_by_true_noise_recovers_x0(spacing, steps, clip):
    """With ε̂ the true ε (computed from x_0 and x_t at every step), η=0 DDIM stays on the path
    x_τ = √ᾱ_τ x_0 + √(1−ᾱ_τ) ε of one fixed ε, and lands on x_0 exactly (float64)."""
    schedule = NoiseSchedule.from_name("cosine", 100)
    sampler = DDIMSampler(schedule, steps=steps, eta=0.0, spacing=spacing, clip_x0=clip)
    alpha_bar = alpha_bar_np(schedule)
    x0 = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1
    noise = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    t_start = int(sampler.timesteps[0])
    x = math.sqrt(alpha_bar[t_start]) * x0 + math.sqrt(1 - alpha_bar[t_start]) * noise
    timesteps = sampler.timesteps.tolist()
    for i, t in enumerate(timesteps):
        true_eps = (x - math.sqrt(alpha_bar[t]) * x0) / math.sqrt(1 - alpha_bar[t])
        out = sampler.step(true_eps, t, x)
        torch.testing.assert_close(out.pred_x0, x0, rtol=0, atol=1e-10)
        if i + 1 < len(timesteps):
            t_prev = timesteps[i + 1]
            on_path = math.sqrt(alpha_bar[t_prev]) * x0 + math.sqrt(1 - alpha_bar[t_prev]) * noise
            torch.testing.assert_close(out.prev_sample, on_path, rtol=0, atol=1e-10)
        x = out.prev_sample
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-10)


def test_ddim_eta0_true_noise_recovers_x0_in_float32():
    schedule = NoiseSchedule.from_name("linear", 1000)
    sampler = DDIMSampler(schedule, steps=50, eta=0.0)
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    x = q_sample(schedule, x0, 999, torch.randn(2, 3, 8, 8))
    alpha_bar = torch.tensor(alpha_bar_np(schedule), dtype=torch.float32)
    for t in sampler.timesteps.tolist():
        true_eps = (x - alpha_bar[t].sqrt() * x0) / (1 - alpha_bar[t]).sqrt()
        x = sampler.step(true_eps, t, x).prev_sample
    # float32 round-off over 50 steps; measured ~3e-6
    torch.testing.assert_close(x, x0, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dtype,tol,clip", [
    (torch.float64, 1e-9, True),
    (torch.float64, 1e-9, False),
    (torch.float32, 1e-4, True),
])
def test_ddim_eta1_over_all_steps_is_ddpm(dtype, tol, clip):
    """DDIM §4.1: with η=1 and τ = all T steps, σ² = β̃ and the mean is μ̃(x_t, x̂_0), so the
    sampler is DDPM with fixed_small variance; with the same seed they give the same trajectory.
    float64: agreement to round-off (measured ~1e-14 clipped, ~1e-11 unclipped, where x̂_0 reaches
    hundreds and eq. 12 cancels it against ε). float32 with clipping (O(1) values): measured ~3e-6
    per step and ~7e-6 after 50 chained steps. (Unclipped float32 is left out: there the two
    formulas' cancellation differs by ~1e-3 relative, which tests float32, not the identity.)"""
    T = 50
    schedule = NoiseSchedule.from_name("cosine", T)
    ddpm = DDPMSampler(schedule, variance_type="fixed_small", clip_x0=clip)
    ddim = DDIMSampler(schedule, steps=T, eta=1.0, spacing="uniform", clip_x0=clip)
    assert torch.equal(ddpm.timesteps, ddim.timesteps)
    gen_p, gen_i = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    x_p = x_i = draw((2, 1, 4, 4), seed=3, dtype=dtype)
    for t in ddpm.timesteps.tolist():
        # one step from the same input
        eps = fake_eps(x_p, t)
        same_p = ddpm.step(eps, t, x_p, generator=torch.Generator().manual_seed(t))
        same_i = ddim.step(eps, t, x_p, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(same_i.prev_sample, same_p.prev_sample, rtol=tol / 10, atol=tol / 10)
        torch.testing.assert_close(same_i.pred_x0, same_p.pred_x0, rtol=tol / 10, atol=tol / 10)
        # and the two whole chains
        out_p = ddpm.step(fake_eps(x_p, t), t, x_p, generator=gen_p)
        out_i = ddim.step(fake_eps(x_i, t), t, x_i, generator=gen_i)
        torch.testing.assert_close(out_i.prev_sample, out_p.prev_sample, rtol=tol, atol=tol)
        x_p, x_i = out_p.prev_sample, out_i.prev_sample
    assert torch.equal(gen_p.get_state(), gen_i.get_state())   # the same number of draws


# --------------------------------------------------------------------------------- guidance
def test_guidance_scales(tiny_unet):
    model = tiny_unet(num_classes=3, learn_sigma=True).double()
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    t = torch.tensor([1, 5, 9, 19])
    labels = torch.tensor([0, 1, 2, 1])
    cond = model(x, t, labels)
    uncond = model(x, t, model.null_labels(4))
    assert torch.equal(guided_model_output(model, x, t, labels, 1.0), cond)
    assert torch.equal(guided_model_output(model, x, t, labels, 0.0), uncond)
    for s in (2.0, 0.5, 7.5):
        guided = guided_model_output(model, x, t, labels, s)
        eps = uncond[:, :1] + s * (cond[:, :1] - uncond[:, :1])  # ε̃ = ε_u + s(ε_c − ε_u)
        torch.testing.assert_close(guided[:, :1], eps, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(guided[:, 1:], cond[:, 1:], rtol=1e-10, atol=1e-10)  # v from the conditional pass
    assert not torch.allclose(cond, uncond)                     # the test above is not vacuous


def test_guidance_in_float32_and_without_learned_sigma(tiny_unet):
    model = tiny_unet(num_classes=3)
    x, t, labels = torch.randn(2, 1, 16, 16), torch.tensor([3, 4]), torch.tensor([2, 0])
    cond, uncond = model(x, t, labels), model(x, t, model.null_labels(2))
    guided = guided_model_output(model, x, t, labels, 3.0)
    assert guided.shape == x.shape
    # batched vs separate passes round differently; values are O(1), float32 ulp ~1e-7, ×(2s+1)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- the loop
def manual_loop(model, sampler, noise, generator, labels=None, guidance_scale=1.0):
    """Independent version of sample(): x_T = noise, then model → sampler.step for each τ."""
    x = noise
    for t in sampler.timesteps.tolist():
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        with torch.no_grad():
            output = guided_model_output(model, x, t_batch, labels, guidance_scale)
        x = sampler.step(output, t, x, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("make", [
    lambda s: DDPMSampler(s),
    lambda s: DDPMSampler(s, steps=5, variance_type="fixed_large"),
    lambda s: DDIMSampler(s, steps=6, eta=0.5),
], ids=["ddpm", "ddpm-respaced", "ddim"])
def test_sample_repeats_bit_for_bit_and_equals_the_manual_loop(tiny_unet, make):
    model = tiny_unet()
    sampler = make(NoiseSchedule.from_name("linear", 12))
    torch.manual_seed(1)   # the global RNG must play no part
    a = sample(model, sampler, 3, generator=torch.Generator().manual_seed(0), progress=False)
    torch.manual_seed(2)
    b = sample(model, sampler, 3, generator=torch.Generator().manual_seed(0), progress=False)
    c = sample(model, sampler, 3, generator=torch.Generator().manual_seed(1), progress=False)
    assert a.shape == (3, 1, 16, 16)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.abs().max() < 10 and torch.isfinite(a).all()
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(3, 1, 16, 16, generator=generator)
    assert torch.equal(manual_loop(model, sampler, noise, generator), a)


def test_ddim_eta0_sample_depends_only_on_the_noise(tiny_unet):
    model = tiny_unet()
    sampler = DDIMSampler(NoiseSchedule.from_name("cosine", 30), steps=5, eta=0.0)
    noise = torch.randn(2, 1, 16, 16)
    a = sample(model, sampler, x_T=noise, generator=torch.Generator().manual_seed(0), progress=False)
    b = sample(model, sampler, x_T=noise, generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample(model, sampler, x_T=noise * 0.5, progress=False))


def test_conditional_sample_with_guidance_equals_manual_loop(tiny_unet):
    model = tiny_unet(num_classes=4)
    sampler = DDIMSampler(NoiseSchedule.from_name("linear", 10), steps=4, eta=1.0)
    kwargs = dict(generator=torch.Generator().manual_seed(3), guidance_scale=2.5, progress=False)
    out = sample(model, sampler, 2, labels=[1, 3], **kwargs)
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(2, 1, 16, 16, generator=generator)
    expected = manual_loop(model, sampler, noise, generator, torch.tensor([1, 3]), 2.5)
    assert torch.equal(out, expected)
    # one int label is broadcast
    kwargs["generator"] = torch.Generator().manual_seed(3)
    same_labels = sample(model, sampler, 2, labels=2, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(3)
    assert torch.equal(same_labels, sample(model, sampler, 2, labels=torch.tensor([2, 2]), **kwargs))


def test_return_trajectory(tiny_unet):
    model = tiny_unet(learn_sigma=True)
    sampler = DDPMSampler(NoiseSchedule.from_name("linear", 20), steps=6, variance_type="learned_range")
    noise = torch.randn(2, 1, 16, 16)
    final, trajectory = sample(model, sampler, x_T=noise, generator=torch.Generator().manual_seed(0),
                               return_trajectory=True, progress=False)
    assert isinstance(trajectory, Trajectory)
    S = len(sampler)
    assert trajectory.x.shape == (S + 1, 2, 1, 16, 16)
    assert trajectory.pred_x0.shape == (S, 2, 1, 16, 16)
    assert torch.equal(trajectory.timesteps, sampler.timesteps)
    assert torch.equal(trajectory.x[0], noise) and torch.equal(trajectory.x[-1], final)
    # every intermediate x and x̂_0, against a hand-written loop with the same generator
    generator, x = torch.Generator().manual_seed(0), noise
    for i, t in enumerate(sampler.timesteps.tolist()):
        out = sampler.step(model(x, torch.full((2,), t)), t, x, generator=generator)
        x = out.prev_sample
        assert torch.equal(trajectory.x[i + 1], x) and torch.equal(trajectory.pred_x0[i], out.pred_x0)
    assert not torch.equal(trajectory.x[1:-1], trajectory.pred_x0[:-1])  # noise was added on the way
    assert torch.equal(trajectory.pred_x0[-1], final)           # last step: no noise, x = x̂_0
    assert trajectory.pred_x0.abs().max() <= 1                  # clipped x̂_0
    assert torch.equal(final, sample(model, sampler, x_T=noise, generator=torch.Generator().manual_seed(0),
                                     progress=False))


@pytest.mark.parametrize("training", [True, False])
def test_sample_runs_in_eval_mode_and_restores_the_mode(tiny_unet, training):
    model = tiny_unet(dropout=0.5).train(training)
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    sampler = DDIMSampler(NoiseSchedule.from_name("linear", 10), steps=3)
    a = sample(model, sampler, x_T=torch.ones(1, 1, 16, 16), progress=False)
    assert modes == [False] * 3                                 # dropout off while sampling
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    b = sample(model, sampler, x_T=torch.ones(1, 1, 16, 16), progress=False)
    assert torch.equal(a, b)                                    # so dropout=0.5 does not make it random


def test_sample_restores_mode_after_an_error(tiny_unet):
    model = tiny_unet().train()

    class Broken(DDIMSampler):
        def step(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        sample(model, Broken(NoiseSchedule.from_name("linear", 10), steps=2), 1, progress=False)
    assert model.training


def test_sample_argument_errors(tiny_unet):
    unconditional = tiny_unet()
    conditional = tiny_unet(num_classes=3)
    schedule = NoiseSchedule.from_name("linear", 10)
    ddim = DDIMSampler(schedule, steps=2)
    with pytest.raises(ValueError, match="unconditional"):
        sample(unconditional, ddim, 2, guidance_scale=3.0, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        sample(unconditional, ddim, 2, labels=[0, 1], progress=False)
    with pytest.raises(ValueError, match="labels"):
        sample(conditional, ddim, 2, guidance_scale=3.0, progress=False)      # guidance towards what?
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        sample(conditional, ddim, 2, labels=[0, 3], progress=False)          # the null label is not a class
    with pytest.raises(ValueError, match=r"\[n\]"):
        sample(conditional, ddim, 2, labels=[0, 1, 2], progress=False)
    with pytest.raises(ValueError, match="learn_sigma"):
        sample(unconditional, DDPMSampler(schedule, variance_type="learned_range"), 1, progress=False)
    with pytest.raises(ValueError, match=r"\[n, 1, 16, 16\]"):
        sample(unconditional, ddim, x_T=torch.zeros(2, 1, 8, 8), progress=False)
    with pytest.raises(ValueError, match="positive number of images"):
        sample(unconditional, ddim, progress=False)
    with pytest.raises(TypeError):                       # x_T is x_T: `noise` means ε only
        sample(unconditional, ddim, noise=torch.zeros(2, 1, 16, 16), progress=False)
    with pytest.raises(ValueError, match="T=10"):
        sample(unconditional, DDIMSampler(schedule, steps=11), 1, progress=False)


def test_bf16_sampling_runs_the_network_in_bf16_and_stays_close_to_fp32(tiny_unet):
    model = tiny_unet(num_classes=3)
    sampler = DDIMSampler(NoiseSchedule.from_name("linear", 20), steps=5, eta=0.0)
    seen = []
    hook = model.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    noise = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    kwargs = dict(x_T=noise, labels=[0, 1, 2, 0], guidance_scale=2.0, progress=False)
    fp32 = sample(model, sampler, **kwargs)
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = sample(model, sampler, precision="bf16", **kwargs)
    hook.remove()
    assert set(seen) == {torch.bfloat16}              # the network ran under autocast ...
    assert bf16.dtype == torch.float32                # ... and the sampler's arithmetic did not
    assert not torch.equal(bf16, fp32)
    # bf16 keeps 8 bits of mantissa: the samples differ by a small fraction of their [-1, 1] range
    assert (bf16 - fp32).abs().max() < 0.1


def test_fp32_precision_leaves_a_float64_model_in_float64(tiny_unet):
    model = tiny_unet().double()
    noise = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    sampler = DDIMSampler(NoiseSchedule.from_name("linear", 10), steps=3)
    out = sample(model, sampler, x_T=noise, progress=False)
    assert out.dtype == torch.float64                 # precision="fp32" (the default) casts nothing:
    assert torch.equal(out, manual_loop(model, sampler, noise, torch.Generator()))   # bit for bit


def test_unknown_precision_raises(tiny_unet):
    with pytest.raises(ValueError, match="unknown precision 'int8'.*bf16"):
        sample(tiny_unet(), DDIMSampler(NoiseSchedule.from_name("linear", 10), steps=2), 1, precision="int8",
               progress=False)


def test_make_sampler():
    schedule = NoiseSchedule.from_name("linear", 100)
    assert make_sampler(schedule, "ddpm").variance_type == "fixed_small"
    assert make_sampler(schedule, "ddpm", learned_variance=True).variance_type == "learned_range"
    assert make_sampler(schedule, "ddpm", variance_type="fixed_large", learned_variance=True).variance_type == "fixed_large"
    assert len(make_sampler(schedule, "ddpm")) == 100 and len(make_sampler(schedule, "ddpm", steps=10)) == 10
    ddim = make_sampler(schedule, "ddim", eta=0.3)
    assert isinstance(ddim, DDIMSampler) and len(ddim) == 50 and ddim.eta == 0.3
    assert DEFAULT_DDIM_STEPS == 50 and len(DDIMSampler(schedule)) == DEFAULT_DDIM_STEPS   # the one default
    with pytest.raises(ValueError, match="unknown sampler 'plms'"):        # euler, heun, dpmpp2m are samplers now
        make_sampler(schedule, "plms")


@pytest.mark.parametrize("guided", [False, True])
def test_cpu_sampling_evaluates_large_batches_in_chunks_with_the_same_images(monkeypatch, guided):
    """sample() runs the network on at most CPU_NETWORK_CHUNK images at a time on a CPU (faster there),
    and the images, noise and labels are those of the whole batch: a stochastic DDPM run from one
    generator gives the images of an unchunked run."""
    import ddpm_teach.samplers as samplers
    from ddpm_teach.unet import UNet, UNetConfig

    torch.manual_seed(0)
    config = UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(4,), norm_groups=4, num_heads=2, dropout=0.0,
                        num_classes=3 if guided else None)
    model = UNet(config)
    for p in model.parameters():                 # non-zero everywhere, so that the output depends on the input
        torch.nn.init.normal_(p, std=0.05)
    seen = []
    real_forward = model.forward

    def counting(x, t, labels=None):
        seen.append(x.shape[0])
        return real_forward(x, t, labels)

    model.forward = counting
    sampler = DDPMSampler(NoiseSchedule.from_name("linear", 20))
    n = 2 * samplers.CPU_NETWORK_CHUNK + 3
    labels = torch.arange(n) % 3 if guided else None
    kwargs = dict(labels=labels, guidance_scale=2.0 if guided else 1.0, progress=False)
    chunked = sample(model, sampler, n, generator=torch.Generator().manual_seed(1), **kwargs)
    factor = 2 if guided else 1                 # guidance runs the conditional and unconditional batch together
    assert max(seen) == factor * samplers.CPU_NETWORK_CHUNK and sorted(set(seen)) == [3 * factor, samplers.CPU_NETWORK_CHUNK * factor]
    monkeypatch.setattr(samplers, "CPU_NETWORK_CHUNK", 10 ** 6)
    seen.clear()
    whole = sample(model, sampler, n, generator=torch.Generator().manual_seed(1), **kwargs)
    assert set(seen) == {factor * n}
    assert chunked.std() > 0.1
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
