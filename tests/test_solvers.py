"""ddpm_teach.solvers: Euler, Heun and DPM-Solver++(2M) on the probability-flow ODE (notebook 09).

The maths is checked against oracles, not hand-picked numbers:

1. diffusers' EulerDiscreteScheduler, HeunDiscreteScheduler and DPMSolverMultistepScheduler (an
   independent implementation), driven by the same ε-function on the same integer timesteps,
   give our trajectories call for call after the change of variable x̃ = x_t/√ᾱ_t = x_t √(1+σ²).
2. For Gaussian data x_0 ~ N(μ, s²I) the exact ε(x_t, t) and the exact solution of the ODE are
   known in closed form; every solver converges to it, at order 1 (Euler) or 2 (Heun, DPM++(2M)).
3. DDIM with η=0 is Euler in σ, step for step; DPM-Solver++(2M)'s first step is DDIM's.
4. The contract: Heun's repeated timesteps and NFE, begin() and the errors of every bad input.
"""
from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ddpm_teach.samplers import DDIMSampler, make_sampler, sample
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.solvers import DPMSolverPP2MSampler, EulerSampler, HeunSampler, karras_timesteps

SOLVERS = ["euler", "heun", "dpmpp2m"]
T = 1000
SCHEDULE = NoiseSchedule.from_name("linear", T)
MU, S = 0.3, 0.5          # the Gaussian data of the exact-solution tests: x_0 ~ N(μ, s²I)

# diffusers' set_timesteps calls np.array() on a torch tensor, which NumPy 2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def sigma_table(schedule: NoiseSchedule) -> np.ndarray:
    """σ_t = √((1−ᾱ_t)/ᾱ_t) for every t, in float64 numpy straight from the betas (not solvers._sigmas)."""
    alphas_cumprod = np.cumprod(1.0 - schedule.betas.numpy())
    return np.sqrt((1.0 - alphas_cumprod) / alphas_cumprod)


def gaussian_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t) -> torch.Tensor:
    """The exact ε for data N(μ, s²I): x_t ~ N(√ᾱ μ, (ᾱ s² + 1 − ᾱ) I), and
    ε* = E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ).  ``t`` an int or a [B] tensor."""
    alpha_bar = schedule.alphas_cumprod[torch.as_tensor(t).cpu().long()].to(x_t)
    alpha_bar = alpha_bar.reshape(alpha_bar.shape + (1,) * (x_t.ndim - alpha_bar.ndim))   # (B, 1, 1, 1)
    return (1 - alpha_bar).sqrt() * (x_t - alpha_bar.sqrt() * MU) / (alpha_bar * S**2 + 1 - alpha_bar)


def fake_eps(x_t: torch.Tensor, t) -> torch.Tensor:
    """A fixed smooth stand-in for a network: the Gaussian ε plus a nonlinear term, so that a 2nd-order
    correction matters and x̂_0 leaves [-1, 1] (clipping is exercised).  The extra term is scaled by
    √ᾱ_t so that x̂_0 = (x_t − √(1−ᾱ)ε)/√ᾱ stays O(1).  ``t`` may be diffusers' float timestep."""
    t = int(round(float(t)))
    alpha_bar = float(SCHEDULE.alphas_cumprod[t])
    return gaussian_eps(SCHEDULE, x_t, t) + 1.5 * math.sqrt(alpha_bar) * torch.sin(3.0 * x_t + 0.01 * t)


class GaussianEpsModel(torch.nn.Module):
    """The exact ε of N(μ, s²I) as a model that ``sample()`` can drive (it reads ``config``, and the
    device from a parameter).  With ``learn_sigma`` it returns 2C channels: ε̂ and junk v_raw."""

    def __init__(self, schedule: NoiseSchedule, image_size: int = 2, learn_sigma: bool = False):
        super().__init__()
        self.schedule = schedule
        self.config = SimpleNamespace(in_channels=1, image_size=image_size, num_classes=None, learn_sigma=learn_sigma)
        self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        eps = gaussian_eps(self.schedule, x_t, t)
        return torch.cat([eps, torch.sin(7 * x_t)], dim=1) if self.config.learn_sigma else eps   # (B, 2C | C, H, W)


def run_steps(sampler, eps_fn, x_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our loop (as sample() runs it): every prev_sample and pred_x0, each stacked to [calls, B, C, H, W]."""
    sampler.begin()
    x, xs, pred_x0s = x_T, [], []
    for t in sampler.timesteps.tolist():
        out = sampler.step(eps_fn(x, t), t, x)
        x = out.prev_sample
        xs.append(x)
        pred_x0s.append(out.pred_x0)
    return torch.stack(xs), torch.stack(pred_x0s)


def noise(shape=(2, 1, 3, 3), seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# 1. Oracle: diffusers
# ---------------------------------------------------------------------------------------------

def diffusers_scheduler(kind: str, clip_x0: bool):
    """diffusers' scheduler for our ``kind``, on our betas.  Its x̂_0 clipping: Heun's clip_sample;
    DPM-Solver's thresholding with sample_max_value=1, where the dynamic threshold s is clamped to
    [1, 1], i.e. plain clipping to [-1, 1].  diffusers' Euler has no clipping."""
    diffusers = pytest.importorskip("diffusers")
    common = dict(num_train_timesteps=T, trained_betas=SCHEDULE.betas.numpy())
    if kind == "euler":
        return diffusers.EulerDiscreteScheduler(**common)
    if kind == "heun":
        return diffusers.HeunDiscreteScheduler(**common, clip_sample=clip_x0, clip_sample_range=1.0)
    return diffusers.DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                                 final_sigmas_type="zero", lower_order_final=True,
                                                 thresholding=clip_x0, sample_max_value=1.0)


def diffusers_trajectory(scheduler, x_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drive a diffusers scheduler with ``fake_eps`` as its pipelines do; return every output in x_t
    coordinates and every x̂_0, like :func:`run_steps`.

    Euler and Heun work in x̃ (the "VE" variable): the model sees scale_model_input(x̃) = x̃/√(σ²+1),
    which is x_t.  Their pipelines start from x̃ = init_noise_sigma·z = σ_max z; ours from
    x_T = z, i.e. x̃ = √(1+σ_max²) z (DDPM's x_T ~ N(0, I)).  The two differ by a relative
    1/(2σ_max²) ≈ 2e-5, so here both start from the same x_T.  DPM-Solver works in x_t itself."""
    in_x_tilde = not hasattr(scheduler, "model_outputs")          # Euler, Heun
    sigmas = scheduler.sigmas
    x = x_T * math.sqrt(1 + float(sigmas[0]) ** 2) if in_x_tilde else x_T
    xs, pred_x0s = [], []
    for k, t in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(x, t)
        out = scheduler.step(fake_eps(model_input, t), t, x)
        x = out.prev_sample
        if in_x_tilde:       # call k of Euler and of Heun (layout σ_0, σ_1, σ_1, …) ends at sigmas[k + 1]
            xs.append(x / math.sqrt(1 + float(sigmas[k + 1]) ** 2))
            pred_x0s.append(out.pred_original_sample)
        else:
            xs.append(x)
            pred_x0s.append(scheduler.model_outputs[-1])          # DPM-Solver++ keeps its x̂_0 there
    return torch.stack(xs), torch.stack(pred_x0s)


ORACLE_CASES = [("euler", False), ("heun", False), ("heun", True), ("dpmpp2m", False), ("dpmpp2m", True)]


@pytest.mark.parametrize("spacing, steps", [("uniform", 12), ("karras", 20), ("uniform", 2)])
@pytest.mark.parametrize("kind, clip_x0", ORACLE_CASES)
def test_solvers_match_diffusers_call_for_call(kind, clip_x0, spacing, steps):
    ours = make_sampler(SCHEDULE, kind, steps=steps, spacing=spacing, clip_x0=clip_x0)
    theirs = diffusers_scheduler(kind, clip_x0)
    # The same integer timesteps, given as diffusers' custom timesteps.  (diffusers' own
    # use_karras_sigmas would evaluate the network at fractional t, interpolating σ; ours never does:
    # test_karras_timesteps_... below checks that our timesteps are its Karras timesteps rounded.)
    theirs.set_timesteps(timesteps=ours.step_timesteps.tolist())
    assert theirs.timesteps.long().tolist() == ours.timesteps.tolist()   # Heun: t_0, t_1, t_1, …, both
    # σ at each call and a final σ = 0 ("final_sigmas_type='zero'", the same last step as ours).
    # diffusers builds σ from a float32 cumprod of ᾱ, whose 1 − ᾱ near t = 0 loses digits (~1e-4
    # relative); we hand it the same σ in float64 so that the comparison tests the solver, not float32.
    sigmas = torch.from_numpy(np.append(sigma_table(SCHEDULE)[theirs.timesteps.long().numpy()], 0.0))
    torch.testing.assert_close(theirs.sigmas.double(), sigmas, rtol=2e-4, atol=0)
    theirs.sigmas = sigmas
    if kind != "dpmpp2m":
        assert float(theirs.init_noise_sigma) == pytest.approx(float(sigmas[0]))   # σ_max, see diffusers_trajectory

    x_T = noise()
    our_x, our_x0 = run_steps(ours, fake_eps, x_T)
    their_x, their_x0 = diffusers_trajectory(theirs, x_T)

    if kind == "heun":       # float64 throughout on both sides
        tolerance = dict(rtol=1e-10, atol=1e-10)
    else:                    # diffusers' Euler and DPM-Solver round the sample to float32 at the start of each
        # step ("upcast"): a relative 2^-24 ≈ 6e-8 of x̃, which reaches σ_max|x_T| ≈ 500, so x̂_0 = x̃ − σε
        # can differ by ~3e-5 at the first step (x_t = x̃/√(1+σ²) by far less).
        tolerance = dict(rtol=0, atol=5e-5)
    torch.testing.assert_close(our_x, their_x, **tolerance)
    torch.testing.assert_close(our_x0, their_x0, **tolerance)
    if clip_x0:
        assert bool((our_x0.abs() == 1).any())          # clipping was exercised


@pytest.mark.parametrize("steps", [2, 10, 25, 78])
def test_karras_timesteps_are_diffusers_karras_timesteps_rounded(steps):
    """Karras et al. eq. 5 (ρ = 7) from σ_max = σ_{T−1} to σ_min = σ_0, as diffusers computes it
    with use_karras_sigmas.  diffusers then evaluates the network at a fractional t, interpolating
    log σ linearly between timesteps; rounding that t is choosing the timestep with the nearest
    log σ, which is our rule (the network is only ever called at an integer t it was trained on)."""
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.EulerDiscreteScheduler(num_train_timesteps=T, trained_betas=SCHEDULE.betas.numpy(),
                                              use_karras_sigmas=True)
    theirs.alphas_cumprod = SCHEDULE.alphas_cumprod.clone()   # float64 ᾱ, as in the oracle test above
    theirs.set_timesteps(steps)
    rounded = np.round(theirs.timesteps.numpy().astype(np.float64)).astype(np.int64)
    assert karras_timesteps(SCHEDULE, steps).tolist() == rounded.tolist()


# ---------------------------------------------------------------------------------------------
# 2. The exact solution for Gaussian data
# ---------------------------------------------------------------------------------------------

# T − 1 = 1024 = 2^10: the uniform grids with 32, 64 and 128 intervals (33, 65, 129 steps) are
# t = 32k, 16k, 8k exactly, each nested in the next, so halving the step is exact and no integer
# rounding enters the measured order.  (Karras grids rounded to integer t are not nested.)
# The ODE is linear in x̃, so the measured order is a deterministic number, not a noisy estimate; the
# bounds leave room only for the pre-asymptotic remainder at 64 → 128 intervals, and are tight
# enough that a 2nd-order solver slipping to 1st order (e.g. DPM-Solver++ with r_i inverted, or a
# Heun corrector with an O(h²) slip) falls outside them.
CONVERGENCE_SCHEDULE = NoiseSchedule.from_name("linear", 1025)
CONVERGENCE_STEPS = [33, 65, 129]
ORDER_BOUNDS = {"euler": (0.9, 1.1), "heun": (1.8, 2.2), "dpmpp2m": (1.8, 2.2)}


def exact_flow(x_tilde_start: torch.Tensor, sigma_start: float, sigma: float) -> torch.Tensor:
    """The probability-flow ODE dx̃/dσ = (x̃ − D)/σ with D = E[x_0 | x̃] = μ + s²/(s²+σ²)(x̃ − μ),
    solved in closed form: x̃(σ) = μ + (x̃(σ_start) − μ)·√(s²+σ²)/√(s²+σ_start²)."""
    return MU + (x_tilde_start - MU) * math.sqrt(S**2 + sigma**2) / math.sqrt(S**2 + sigma_start**2)


def gaussian_run(kind: str, steps: int):
    """Sample with the exact ε (clip_x0=False); returns the errors at σ_min and at x_0, the states there,
    and σ_min.  The ODE is linear in x̃, so the error is a fixed multiple of x̃_T − μ and the
    measured order does not depend on the noise drawn."""
    sampler = make_sampler(CONVERGENCE_SCHEDULE, kind, steps=steps, spacing="uniform", clip_x0=False)
    x_T = noise((4, 1, 2, 2), seed=2)
    x_0, trajectory = sample(GaussianEpsModel(CONVERGENCE_SCHEDULE), sampler, x_T=x_T, progress=False,
                             return_trajectory=True)
    sigma_max, sigma_min = float(sampler.sigmas[0]), float(sampler.sigmas[-2])
    x_tilde_T = x_T * math.sqrt(1 + sigma_max**2)
    x_tilde_min = trajectory.x[-2] * math.sqrt(1 + sigma_min**2)          # after the last call but one
    error_min = float((x_tilde_min - exact_flow(x_tilde_T, sigma_max, sigma_min)).abs().max())
    error_0 = float((x_0 - exact_flow(x_tilde_T, sigma_max, 0.0)).abs().max())
    return error_min, error_0, x_tilde_min, x_0, sigma_min


@pytest.mark.parametrize("kind", SOLVERS)
def test_solvers_converge_to_the_exact_ode_solution_at_their_order(kind):
    """The error is measured at σ_min = σ(t=0), the last nonzero σ, which is on every grid: the last
    step, σ_min → 0, is the same first-order step (x̃ = D) for every N, so it adds an error that does
    not shrink with N and would flatten the measured order (see the next test).  The order is
    measured from the finer halving (64 → 128 intervals): with 32 intervals DPM-Solver++ is not yet
    in its asymptotic regime, since uniform steps in t are long in λ = −log σ near t = 0."""
    errors = [gaussian_run(kind, steps)[0] for steps in CONVERGENCE_STEPS]
    assert errors[0] > errors[1] > errors[2]
    order = math.log2(errors[1] / errors[2])
    low, high = ORDER_BOUNDS[kind]
    assert low <= order <= high, f"{kind}: measured order {order:.2f}, errors {errors}"


@pytest.mark.parametrize("kind", SOLVERS)
def test_last_step_is_the_denoiser_and_x0_converges_up_to_its_fixed_error(kind):
    """Every solver ends with x_0 = D(x̃; σ_min) = μ + s²/(s²+σ_min²)(x̃ − μ) (first order).  So the
    error at x_0 is at most s²/(s²+σ_min²) × (the error at σ_min) plus that step's own error on the
    exact path, |exact x_0 − D(exact x̃(σ_min))|, which is O(σ_min²/s²) and the same for every N."""
    errors_0 = []
    for steps in CONVERGENCE_STEPS:
        error_min, error_0, x_tilde_min, x_0, sigma_min = gaussian_run(kind, steps)
        shrink = S**2 / (S**2 + sigma_min**2)
        torch.testing.assert_close(x_0, MU + shrink * (x_tilde_min - MU), rtol=1e-12, atol=1e-12)
        sigma_max = float(CONVERGENCE_SCHEDULE.sqrt_recipm1_alphas_cumprod[-1])
        x_tilde_T = noise((4, 1, 2, 2), seed=2) * math.sqrt(1 + sigma_max**2)
        exact_min = exact_flow(x_tilde_T, sigma_max, sigma_min)
        last_step_error = float((exact_flow(x_tilde_T, sigma_max, 0.0) - (MU + shrink * (exact_min - MU))).abs().max())
        assert error_0 <= shrink * error_min + last_step_error + 1e-12
        errors_0.append(error_0)
    assert errors_0[0] > errors_0[1] > errors_0[2]


# ---------------------------------------------------------------------------------------------
# 3. DDIM (η = 0) is Euler in σ; DPM-Solver++(2M) starts as DDIM
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip_x0", [False, True])
@pytest.mark.parametrize("spacing", ["uniform", "leading", "trailing", "quadratic"])
def test_ddim_eta0_is_euler_step_for_step(spacing, clip_x0):
    """DDIM eq. 12 with η=0: x_{t'} = √ᾱ' x̂_0 + √(1−ᾱ') ε̂, and Euler in σ: x̃' = x̂_0 + σ' (x̃ − x̂_0)/σ,
    are the same map once x̃ = x_t/√ᾱ and σ√ᾱ = √(1−ᾱ) (with ε̂ re-derived from the clipped x̂_0)."""
    ddim = DDIMSampler(SCHEDULE, steps=10, eta=0.0, spacing=spacing, clip_x0=clip_x0)
    euler = EulerSampler(SCHEDULE, steps=10, spacing=spacing, clip_x0=clip_x0)
    assert euler.timesteps.tolist() == ddim.timesteps.tolist()
    x_T = noise()
    ddim_x, ddim_x0 = run_steps(ddim, fake_eps, x_T)
    euler_x, euler_x0 = run_steps(euler, fake_eps, x_T)
    torch.testing.assert_close(euler_x, ddim_x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(euler_x0, ddim_x0, rtol=1e-10, atol=1e-12)
    assert bool((ddim_x0.abs() == 1).any()) == clip_x0      # clipping happened exactly when asked


def test_dpmpp2m_first_step_is_ddim_and_its_second_is_not():
    """DPM-Solver++(2M) has no previous x̂_0 at the first step, so it is first order: DDIM.
    From the second step on it uses D̂ = (1 + 1/2r) D_i − (1/2r) D_{i−1}."""
    ddim = DDIMSampler(SCHEDULE, steps=10, eta=0.0, clip_x0=False)
    dpm = DPMSolverPP2MSampler(SCHEDULE, steps=10, clip_x0=False)
    x_T = noise()
    ddim_x, _ = run_steps(ddim, fake_eps, x_T)
    dpm_x, _ = run_steps(dpm, fake_eps, x_T)
    torch.testing.assert_close(dpm_x[0], ddim_x[0], rtol=1e-12, atol=1e-12)
    assert float((dpm_x[1] - ddim_x[1]).abs().max()) > 1e-3


def test_heun_lists_each_timestep_after_the_first_twice():
    heun = HeunSampler(SCHEDULE, steps=6)
    t = heun.step_timesteps.tolist()
    assert heun.timesteps.tolist() == [t[0]] + [s for s in t[1:] for _ in range(2)]
    assert heun.nfe == len(heun.timesteps) == 2 * 6 - 1
    assert EulerSampler(SCHEDULE, steps=6).nfe == DPMSolverPP2MSampler(SCHEDULE, steps=6).nfe == 6


def test_heun_first_call_is_the_euler_step_and_second_corrects_it():
    """Karras Alg. 1: the predictor (line 5) is Euler's step; the corrector (line 8) replaces it."""
    heun, euler = HeunSampler(SCHEDULE, steps=6, clip_x0=False), EulerSampler(SCHEDULE, steps=6, clip_x0=False)
    x_T = noise()
    heun_x, _ = run_steps(heun, fake_eps, x_T)
    euler_x, _ = run_steps(euler, fake_eps, x_T)
    torch.testing.assert_close(heun_x[0], euler_x[0], rtol=1e-12, atol=1e-12)
    assert float((heun_x[1] - euler_x[0]).abs().max()) > 1e-3


# ---------------------------------------------------------------------------------------------
# 4. The contract: bad input, begin(), learned variance, guidance
# ---------------------------------------------------------------------------------------------

def test_unknown_sampler_is_an_error():
    with pytest.raises(ValueError, match="unknown sampler 'rk4'"):
        make_sampler(SCHEDULE, "rk4", steps=10)


@pytest.mark.parametrize("spacing", ["uniform", "karras"])
@pytest.mark.parametrize("kind", SOLVERS)
@pytest.mark.parametrize("steps", [0, -3, T + 1])
def test_steps_outside_1_to_T_is_an_error(kind, spacing, steps):
    with pytest.raises(ValueError, match="steps"):
        make_sampler(SCHEDULE, kind, steps=steps, spacing=spacing)


@pytest.mark.parametrize("kind", SOLVERS)
def test_unknown_spacing_is_an_error(kind):
    with pytest.raises(ValueError, match="unknown spacing 'cosine'"):
        make_sampler(SCHEDULE, kind, steps=10, spacing="cosine")


def test_karras_with_more_steps_than_distinct_timesteps_is_an_error():
    with pytest.raises(ValueError, match="repeated timesteps"):
        make_sampler(SCHEDULE, "dpmpp2m", steps=200, spacing="karras")


@pytest.mark.parametrize("kind", SOLVERS)
def test_stochastic_eta_for_an_ode_solver_is_an_error(kind):
    with pytest.raises(ValueError, match="deterministic"):
        make_sampler(SCHEDULE, kind, steps=10, eta=0.5)


@pytest.mark.parametrize("kind", SOLVERS)
def test_step_out_of_order_says_to_call_begin(kind):
    sampler = make_sampler(SCHEDULE, kind, steps=4)
    x = noise()
    t_wrong = int(sampler.timesteps[1])                     # the first call expects timesteps[0]
    with pytest.raises(ValueError, match=r"begin\(\)"):
        sampler.step(fake_eps(x, t_wrong), t_wrong, x)


@pytest.mark.parametrize("kind", SOLVERS)
def test_a_finished_trajectory_needs_begin_before_the_next(kind):
    sampler = make_sampler(SCHEDULE, kind, steps=4, clip_x0=False)
    first, _ = run_steps(sampler, fake_eps, noise())            # run_steps calls begin()
    t = int(sampler.timesteps[0])
    with pytest.raises(ValueError, match=r"begin\(\)"):
        sampler.step(fake_eps(noise(), t), t, noise())
    again, _ = run_steps(sampler, fake_eps, noise())
    assert torch.equal(first, again)


@pytest.mark.parametrize("kind", SOLVERS)
def test_sample_twice_with_one_sampler_repeats_exactly(kind):
    model, sampler = GaussianEpsModel(SCHEDULE), make_sampler(SCHEDULE, kind, steps=5)
    x_T = noise((3, 1, 2, 2))
    first = sample(model, sampler, x_T=x_T, progress=False)
    second = sample(model, sampler, x_T=x_T, progress=False)
    assert torch.equal(first, second)


@pytest.mark.parametrize("kind", SOLVERS)
def test_learned_variance_model_samples_from_its_eps_channels(kind, tiny_unet):
    """A learn_sigma model returns [ε̂, v_raw] (2C channels); the ODE solvers use ε̂ only, so the
    result is bit for bit that of the same network cut to its ε half."""
    unet = tiny_unet(learn_sigma=True)

    class EpsHalf(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet, self.config = unet, dataclasses.replace(unet.config, learn_sigma=False)

        def forward(self, x, t, labels=None):
            return self.unet(x, t, labels)[:, :1]                   # (B, C, H, W): ε̂ only

    sampler = make_sampler(SCHEDULE, kind, steps=4, learned_variance=True)
    x_T = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    both = sample(unet, sampler, x_T=x_T, progress=False)
    eps_only = sample(EpsHalf(), sampler, x_T=x_T, progress=False)
    assert torch.equal(both, eps_only)


@pytest.mark.parametrize("kind", ["heun", "dpmpp2m"])
def test_guided_sampling_runs_with_the_solvers_one_call_per_nfe(kind, tiny_unet):
    """Guidance at s=2 with a class-conditional UNet: finite samples of the right shape, different
    from the unguided ones, and one (batched cond + uncond) network call per counted NFE."""
    unet = tiny_unet(num_classes=3)
    calls = []
    unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    sampler = make_sampler(SCHEDULE, kind, steps=4)
    x_T = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    guided = sample(unet, sampler, x_T=x_T, labels=[0, 2], guidance_scale=2.0, progress=False)
    assert guided.shape == x_T.shape and bool(torch.isfinite(guided).all())
    assert calls == [4] * sampler.nfe                                   # each call: 2B = cond + uncond
    unguided = sample(unet, sampler, x_T=x_T, labels=[0, 2], guidance_scale=1.0, progress=False)
    assert not torch.equal(guided, unguided)


def test_sample_counts_the_network_evaluations(tiny_unet):
    """The trajectory's nfe is counted in the loop: one per network evaluation, as sampler.nfe says."""
    from ddpm_teach.samplers import DDIMSampler, sample
    from ddpm_teach.solvers import DPMSolverPP2MSampler, HeunSampler

    model = tiny_unet()
    schedule = NoiseSchedule.from_name("linear", 50)
    calls = []
    real_forward = model.forward
    model.forward = lambda *a, **k: calls.append(1) or real_forward(*a, **k)
    for sampler, expected in ((DDIMSampler(schedule, steps=6), 6), (HeunSampler(schedule, steps=6), 11),
                              (DPMSolverPP2MSampler(schedule, steps=6), 6)):
        calls.clear()
        _, trajectory = sample(model, sampler, 2, progress=False, return_trajectory=True)
        assert trajectory.nfe == sampler.nfe == len(calls) == expected
