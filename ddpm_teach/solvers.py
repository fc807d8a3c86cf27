"""Fast samplers: ODE solvers for the probability-flow ODE (notebook 09).

Deterministic DDIM is Euler's method on the probability-flow ODE (Song et al. 2021, eq. 13-14),
written in the variable x̃ = x_t/√ᾱ_t and the noise level σ_t = √((1−ᾱ_t)/ᾱ_t) (Karras et al.
2022, §2-3; the "VE" form of the DDPM process):

    x̃ = x_0 + σ ε,        dx̃/dσ = ε̂(x_t, t) = (x̃ − D(x̃; σ)) / σ,        D = x̂_0, the denoiser

Every solver here keeps the course's contract: ``sample()`` starts from x_T ~ N(0, I) (x̃ = x_T/√ᾱ_T),
calls the network once per entry of ``sampler.timesteps`` at (x_t, t) as it was trained, and
``sampler.step(model_output, t, x_t)`` returns ``prev_sample`` (back in x_t coordinates) and
``pred_x0``.  A solver that needs two network calls per step (Heun) lists its timestep twice and
keeps its half-step between the two calls; :meth:`begin` (called by ``sample()``) resets that.
The noise levels are those of integer timesteps, so the network is always evaluated where it was
trained, and the last step goes to σ = 0 (x_0 = D).

* :class:`EulerSampler`: Karras et al. 2022, Algorithm 1 without its 2nd-order correction; equals
  DDIM with η = 0 step for step.
* :class:`HeunSampler`: Karras et al. 2022, Algorithm 1 (2nd order; 2 network calls per step
  except the last, so NFE = 2·steps − 1).
* :class:`DPMSolverPP2MSampler`: DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2: multistep,
  data prediction, first order at the first and the last step.

Spacings: those of DDIM, and ``"karras"`` (Karras et al. 2022 eq. 5, ρ = 7), rounded to the
nearest integer timestep.
"""
from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from .forward import predict_x0_from_eps
from .samplers import SamplerOutput, TimestepSpacing, _Sampler, _spaced_timesteps
from .schedules import NoiseSchedule

__all__ = ["SolverSpacing", "karras_timesteps", "EulerSampler", "HeunSampler", "DPMSolverPP2MSampler"]

SolverSpacing = Literal["uniform", "leading", "trailing", "quadratic", "karras"]


def karras_timesteps(schedule: NoiseSchedule, steps: int, rho: float = 7.0) -> torch.Tensor:
    """``steps`` integer timesteps, descending, whose σ_t follow Karras et al. 2022 eq. 5:

        σ_i = (σ_max^{1/ρ} + i/(N−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,   i = 0 … N−1

    from σ_max = σ_{T−1} to σ_min = σ_0, each moved to the timestep with the nearest log σ."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must be an integer in [1, T={schedule.T}], got {steps!r}.")
    log_sigmas = _sigmas(schedule).log()                                       # [T], increasing in t
    if steps == 1:
        return torch.tensor([schedule.T - 1])
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = log_sigmas[0].exp() ** (1 / rho), log_sigmas[-1].exp() ** (1 / rho)
    targets = ((hi + ramp * (lo - hi)) ** rho).log()                          # [steps], decreasing
    ts = (targets[:, None] - log_sigmas[None, :]).abs().argmin(dim=1)         # nearest timestep
    if len(torch.unique(ts)) != steps:
        raise ValueError(f"spacing 'karras' gives repeated timesteps for steps={steps}, T={schedule.T}; "
                         "use fewer steps or spacing='uniform'.")
    return ts


def _sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    """σ_t = √((1−ᾱ_t)/ᾱ_t) for every timestep, float64 [T]."""
    return ((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod).sqrt()


class _ODESampler(_Sampler):
    """What the ODE solvers share: the solver's timesteps t_0 > … > t_{N−1}, their σ with a final
    0, the change of variable x̃ = x_t/√ᾱ_t, and the denoiser D = x̂_0 (clipped if ``clip_x0``)."""

    calls_per_step = 1

    def __init__(self, schedule: NoiseSchedule, *, steps: int, spacing: SolverSpacing = "uniform",
                 clip_x0: bool = True):
        if spacing not in get_args(SolverSpacing):
            raise ValueError(f"unknown spacing {spacing!r}; choose one of {get_args(SolverSpacing)}.")
        self.schedule, self.clip_x0, self.spacing = schedule, clip_x0, spacing
        self.step_timesteps = (karras_timesteps(schedule, steps) if spacing == "karras"
                               else _spaced_timesteps(schedule.T, steps, spacing))         # [N], descending
        self.sigmas = torch.cat([_sigmas(schedule)[self.step_timesteps], torch.zeros(1, dtype=torch.float64)])
        self._set_timesteps(self._call_timesteps())
        self.begin()

    def _call_timesteps(self) -> torch.Tensor:
        return self.step_timesteps

    def _set_timesteps(self, timesteps: torch.Tensor) -> None:
        self.timesteps = timesteps                     # repeats allowed (Heun): the position is a counter

    def begin(self) -> None:
        """Start a new trajectory (``sample()`` calls it before its loop)."""
        self._calls = 0

    @property
    def nfe(self) -> int:
        """Network evaluations of one trajectory: the length of ``timesteps``."""
        return len(self.timesteps)

    def _expect(self, t: int) -> int:
        """The step index of this call, after checking that ``t`` is the timestep it should be."""
        if self._calls >= len(self.timesteps) or int(self.timesteps[self._calls]) != int(t):
            expected = int(self.timesteps[self._calls]) if self._calls < len(self.timesteps) else "none (done)"
            raise ValueError(f"{type(self).__name__}.step was called with t={int(t)}, but call {self._calls} "
                             f"expects t={expected}; step through sampler.timesteps in order, once each, "
                             "and call sampler.begin() before a new trajectory.")
        return self._calls

    def _denoise(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        """D(x̃; σ_t) = x̂_0 from the network's ε̂ at (x_t, t) (its ε channels for learned variance)."""
        eps, _ = self._split(model_output, x_t)
        t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
        pred_x0 = predict_x0_from_eps(self.schedule, x_t, t_batch, eps)
        return pred_x0.clamp(-1.0, 1.0) if self.clip_x0 else pred_x0

    @staticmethod
    def _to_x_tilde(x_t: torch.Tensor, sigma: float) -> torch.Tensor:
        return x_t * math.sqrt(1.0 + sigma**2)          # x̃ = x_t/√ᾱ, and ᾱ = 1/(1 + σ²)

    @staticmethod
    def _to_x_t(x_tilde: torch.Tensor, sigma: float) -> torch.Tensor:
        return x_tilde / math.sqrt(1.0 + sigma**2)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(steps={len(self.step_timesteps)}, nfe={self.nfe}, spacing={self.spacing!r}, "
                f"clip_x0={self.clip_x0})")


class EulerSampler(_ODESampler):
    """Euler's method on the probability-flow ODE in σ (Karras et al. 2022, Algorithm 1 lines 3-5
    and 8, without the correction of lines 6-7): one network call per step."""

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        i = self._expect(int(t))
        sigma, sigma_next = float(self.sigmas[i]), float(self.sigmas[i + 1])
        # 1. x̃_i and the denoiser D(x̃_i; σ_i)
        x_tilde, denoised = self._to_x_tilde(x_t, sigma), self._denoise(model_output, t, x_t)
        # 2. d_i = (x̃_i − D)/σ_i = dx̃/dσ                                      (Karras Alg. 1 line 4)
        d = (x_tilde - denoised) / sigma
        # 3. x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) d_i                               (line 5)
        x_next = x_tilde + (sigma_next - sigma) * d
        self._calls += 1
        return SamplerOutput(prev_sample=self._to_x_t(x_next, sigma_next), pred_x0=denoised)


class HeunSampler(_ODESampler):
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1): an Euler step to σ_{i+1}, then a
    second network call there and the average of the two slopes.  ``timesteps`` lists t_{i+1}
    twice (the correction of step i, then step i+1); the last step, to σ = 0, is plain Euler."""

    calls_per_step = 2

    def _call_timesteps(self) -> torch.Tensor:
        t = self.step_timesteps
        return torch.cat([t[:1], t[1:].repeat_interleave(2)])          # t_0, t_1, t_1, t_2, t_2, …

    def begin(self) -> None:
        super().begin()
        self._step, self._pending = 0, None         # the Euler half-step awaiting its correction

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        self._expect(int(t))
        i = self._step
        sigma, sigma_next = float(self.sigmas[i]), float(self.sigmas[i + 1])
        denoised = self._denoise(model_output, t, x_t)
        self._calls += 1
        if self._pending is None:
            # the predictor: d_i = (x̃_i − D(x̃_i; σ_i))/σ_i, x̃' = x̃_i + (σ_{i+1} − σ_i) d_i    (Alg. 1 lines 4-5)
            x_tilde = self._to_x_tilde(x_t, sigma)
            d = (x_tilde - denoised) / sigma
            x_pred = x_tilde + (sigma_next - sigma) * d
            if sigma_next == 0.0:                   # the last step: Euler only                  (line 6)
                self._step += 1
                return SamplerOutput(prev_sample=x_pred, pred_x0=denoised)
            self._pending = (x_tilde, d)
            return SamplerOutput(prev_sample=self._to_x_t(x_pred, sigma_next), pred_x0=denoised)
        # the corrector, at x̃' and σ_{i+1}: d' = (x̃' − D(x̃'; σ_{i+1}))/σ_{i+1}               (line 7)
        x_tilde, d = self._pending
        d_prime = (self._to_x_tilde(x_t, sigma_next) - denoised) / sigma_next
        # x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i)(d_i + d')/2                                        (line 8)
        x_next = x_tilde + (sigma_next - sigma) * 0.5 * (d + d_prime)
        self._step, self._pending = self._step + 1, None
        return SamplerOutput(prev_sample=self._to_x_t(x_next, sigma_next), pred_x0=denoised)


class DPMSolverPP2MSampler(_ODESampler):
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): the exponential integrator in
    λ = −log σ with the data prediction D, made second order by reusing the previous step's D:

        x̃_{i+1} = (σ_{i+1}/σ_i) x̃_i − (e^{−h_i} − 1) D̂_i,    h_i = λ_{i+1} − λ_i
        D̂_i = (1 + 1/(2r_i)) D_i − 1/(2r_i) D_{i−1},         r_i = h_{i−1}/h_i

    First order (D̂ = D, which is exactly DDIM) at the first step and at the last one, to σ = 0."""

    def begin(self) -> None:
        super().begin()
        self._previous = None                       # D_{i−1} and h_{i−1}

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        i = self._expect(int(t))
        sigma, sigma_next = float(self.sigmas[i]), float(self.sigmas[i + 1])
        denoised = self._denoise(model_output, t, x_t)
        self._calls += 1
        if sigma_next == 0.0:                       # the last step: x̃ = D (the first-order limit h → ∞)
            return SamplerOutput(prev_sample=denoised, pred_x0=denoised)
        h = math.log(sigma) - math.log(sigma_next)                     # λ_{i+1} − λ_i > 0
        corrected = denoised
        if self._previous is not None:              # 2nd order: D̂ from D_i and D_{i−1}
            previous, h_last = self._previous
            r = h_last / h
            corrected = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x_next = (sigma_next / sigma) * self._to_x_tilde(x_t, sigma) - math.expm1(-h) * corrected
        self._previous = (denoised, h)
        return SamplerOutput(prev_sample=self._to_x_t(x_next, sigma_next), pred_x0=denoised)
