"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023), notebook 11.

The straight path between data and noise, with t ∈ [0, 1] (t = 0 data, t = 1 noise, as DDPM's
t = 0 … T−1)::

    x_t = (1 − t)·x_0 + t·ε            the conditional OT / rectified-flow path
    v   = dx_t/dt = ε − x_0            what the network learns to predict (MSE)

The network is the same UNet as DDPM's; it sees the time as ``t · FLOW_TIME_SCALE`` so that the
sinusoidal embedding spans the same range as DDPM's integer steps 0 … 999.

What this module holds, in the notebook's order:

* training: :func:`interpolate`, :func:`velocity_target`, :func:`sample_t`, :func:`network_time`,
  :func:`flow_loss` (used by ``training.train_step`` with ``objective="flow"``);
* conversions on the path: :func:`flow_x0_from_v`, :func:`flow_eps_from_v`, :func:`flow_v_from_eps`,
  :func:`flow_v_from_x0`;
* sampling, the ODE dx/dt = v(x, t) from t = 1 (noise) to t = 0 (data): :class:`FlowEulerSampler`,
  :class:`FlowHeunSampler`, under the one sampler contract of ``samplers.py`` (``samplers.sample``
  runs them, guidance included);
* the bridge to DDPM: an ε-model's x_t is a point of the straight path after a rescaling
  (:func:`ddpm_time_to_flow`, :func:`ddpm_to_flow_scale`, :class:`EpsAsVelocity`), so deterministic
  DDIM is flow Euler in other coordinates (:meth:`FlowEulerSampler.from_ddpm_timesteps`);
* straightness (Liu et al. 2023, eq. 8-9): :func:`path_straightness`, :func:`straightness`,
  :func:`trajectory_to_flow`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Literal, Sequence

import torch

from .losses import simple_loss
from .samplers import DEFAULT_DDIM_STEPS, SamplerOutput, Trajectory, _Sampler, sample
from .schedules import NoiseSchedule

__all__ = ["FLOW_TIME_SCALE", "TSampling", "T_SAMPLINGS", "interpolate", "velocity_target", "sample_t",
           "network_time", "flow_loss",
           "flow_x0_from_v", "flow_eps_from_v", "flow_v_from_eps", "flow_v_from_x0",
           "FlowSamplerKind", "FLOW_SAMPLERS", "flow_time_grid", "FlowEulerSampler", "FlowHeunSampler",
           "make_flow_sampler",
           "ddpm_time_to_flow", "ddpm_to_flow_scale", "EpsAsVelocity",
           "path_straightness", "straightness", "trajectory_to_flow"]

FLOW_TIME_SCALE = 999.0                    # t ∈ [0, 1] → the embedding's input t·999, DDPM's 0 … 999
TSampling = Literal["uniform", "logit_normal"]
T_SAMPLINGS = ("uniform", "logit_normal")
FlowSamplerKind = Literal["euler", "heun"]
FLOW_SAMPLERS = ("euler", "heun")          # the --sampler choices for a flow checkpoint


def _as_column(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t [B] → [B, 1, 1, 1] in ``like``'s dtype, to broadcast against images."""
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _time(t: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A flow time as a Python float (one t for the batch), or t [B] as a column [B, 1, 1, 1]."""
    if isinstance(t, torch.Tensor):
        return float(t) if t.ndim == 0 else _as_column(t.to(like.device), like)
    return float(t)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x_0 + t·ε for x0, noise [B, C, H, W] and t [B] in [0, 1]."""
    if t.numel() and (bool((t < 0).any()) or bool((t > 1).any())):
        raise ValueError(f"flow time t must lie in [0, 1]; got values from {float(t.min()):g} to {float(t.max()):g}.")
    tc = _as_column(t, x0)
    return (1 - tc) * x0 + tc * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = dx_t/dt = ε − x_0: the regression target of flow matching."""
    return noise - x0


def sample_t(n: int, kind: TSampling, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Training times t [n] in (0, 1): ``"uniform"`` U(0, 1), or ``"logit_normal"`` σ(u) with
    u ~ N(0, 1) (Esser et al. 2024, SD3 §3.1: more weight on the middle of the path)."""
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator, device=device))
    raise ValueError(f"t_sampling (--t-sampling) must be one of {T_SAMPLINGS}, got {kind!r}.")


def network_time(t: torch.Tensor) -> torch.Tensor:
    """The time the UNet's embedding sees for flow time t ∈ [0, 1]: t·999, a float."""
    return t.float() * FLOW_TIME_SCALE


def flow_loss(model: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              labels: torch.Tensor | None = None, *, autocast: contextlib.AbstractContextManager | None = None):
    """‖(ε − x_0) − v_θ(x_t, t)‖² for one batch, with x_t on the straight path.  Returns ``(loss, parts)``."""
    x_t = interpolate(x0, noise, t)                           # (1 − t)·x_0 + t·ε
    with autocast or contextlib.nullcontext():
        v_pred = model(x_t, network_time(t), labels)           # v_θ(x_t, t), [B, C, H, W]
    loss = simple_loss(v_pred, velocity_target(x0, noise))     # ‖v − v_θ‖²
    return loss, {"mse": loss.detach()}


# -- conversions on the straight path -----------------------------------------------------------------
# x_t = (1 − t)x_0 + tε and v = ε − x_0 are two linear equations in (x_0, ε): any two of
# (x_t, x_0, ε, v) give the others.  t is a float or a tensor [B]; the tensors are [B, C, H, W].

def flow_x0_from_v(x_t: torch.Tensor, t: float | torch.Tensor, *, v: torch.Tensor) -> torch.Tensor:
    """x̂_0 = x_t − t·v̂  (follow the velocity back to t = 0)."""
    return x_t - _time(t, x_t) * v


def flow_eps_from_v(x_t: torch.Tensor, t: float | torch.Tensor, *, v: torch.Tensor) -> torch.Tensor:
    """ε̂ = x_t + (1 − t)·v̂  (follow the velocity on to t = 1)."""
    return x_t + (1 - _time(t, x_t)) * v


def flow_v_from_eps(x_t: torch.Tensor, t: float | torch.Tensor, *, eps: torch.Tensor) -> torch.Tensor:
    """v̂ = (ε̂ − x_t)/(1 − t), for t < 1: the velocity of an ε-prediction, as :class:`EpsAsVelocity` uses it."""
    return (eps - x_t) / (1 - _time(t, x_t))


def flow_v_from_x0(x_t: torch.Tensor, t: float | torch.Tensor, *, x0: torch.Tensor) -> torch.Tensor:
    """v̂ = (x_t − x̂_0)/t, for t > 0."""
    return (x_t - x0) / _time(t, x_t)


# -- samplers: the ODE dx/dt = v(x, t) from t = 1 to t = 0 ---------------------------------------------

def flow_time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """The step grid t_0 = 1 > t_1 > … > t_K = 0 (float64 [K+1]) of ``steps`` = K steps: uniform in
    u = 1 − i/K, then shifted, t = s·u/(1 + (s − 1)·u) (Esser et al. 2024, SD3 §5.3.2): s = 1 is the
    uniform grid, s > 1 spends more steps near the noise end."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps (--steps) must be a positive integer, got {steps!r}.")
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift <= 0:
        raise ValueError(f"shift (--flow-shift) must be a finite number > 0 (1 is the uniform grid), got {shift!r}.")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift * u / (1 + (shift - 1) * u)


def _check_grid(times) -> torch.Tensor:
    times = torch.as_tensor(times, dtype=torch.float64).detach().cpu()
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"times must be a 1-D grid t_0 > … > t_K of at least 2 flow times, got shape {tuple(times.shape)}.")
    if not bool(torch.isfinite(times).all()) or float(times.min()) < 0 or float(times.max()) > 1:
        raise ValueError(f"flow times must lie in [0, 1], got values from {float(times.min()):g} to {float(times.max()):g}.")
    if not bool((times[1:] < times[:-1]).all()):
        raise ValueError("times must be strictly decreasing: the flow samplers go from noise (t = 1) towards data (t = 0).")
    return times


class _FlowSampler(_Sampler):
    """What the flow samplers share: the step grid ``times`` t_0 > … > t_K (float64), the network's
    float time t·999 (:meth:`model_time`), the velocity check, and a call counter that
    :meth:`begin` resets (Heun evaluates some times twice).  x̂_0 = x_t − t·v̂ is reported as
    ``pred_x0`` and never clipped: the samplers integrate the ODE as it is."""

    clip_x0 = False
    calls_per_step = 1

    def __init__(self, *, steps: int | None = None, shift: float = 1.0, times: Sequence[float] | torch.Tensor | None = None):
        if times is not None and steps is not None:
            raise ValueError("give steps (with shift) or times, not both.")
        self.shift = None if times is not None else shift
        self.times = _check_grid(times) if times is not None else flow_time_grid(
            DEFAULT_DDIM_STEPS if steps is None else steps, shift)            # [K+1], descending
        self.timesteps = self._call_times()                                     # when the network is called
        self.begin()

    @classmethod
    def from_times(cls, times: Sequence[float] | torch.Tensor):
        """A sampler on a given grid t_0 > … > t_K in [0, 1] (K steps, from t_0 to t_K).  When t_0 < 1
        the caller passes ``x_T`` to ``sample()``: the noise N(0, I) is the state at t = 1 only."""
        return cls(times=times)

    @classmethod
    def from_ddpm_timesteps(cls, schedule: NoiseSchedule, timesteps: Sequence[int] | torch.Tensor):
        """The grid of a DDIM sampler in flow time: t_flow(τ_0) > … > t_flow(τ_{K−1}) > 0, where the last
        step goes to x_0 as DDIM's does.  Start it from x = c·x_T (:func:`ddpm_to_flow_scale` at τ_0)."""
        flow_times = ddpm_time_to_flow(schedule, torch.as_tensor(timesteps))
        return cls(times=torch.cat([flow_times, torch.zeros(1, dtype=torch.float64)]))

    def _call_times(self) -> torch.Tensor:
        return self.times[:-1]

    def model_time(self, t, batch: int, device) -> torch.Tensor:
        """The network's time input at flow time ``t``: t·999 as a float tensor [batch] (:func:`network_time`)."""
        return network_time(torch.full((batch,), float(t), device=device))

    def begin(self) -> None:
        """Start a new trajectory (``sample()`` calls it before its loop)."""
        self._calls = 0

    def _expect(self, t: float | torch.Tensor) -> int:
        """This call's index, after checking that ``t`` is the time it should be."""
        expected = float(self.timesteps[self._calls]) if self._calls < len(self.timesteps) else None
        if expected is None or abs(float(t) - expected) > 1e-7:
            raise ValueError(f"{type(self).__name__}.step was called with t={float(t):g}, but call {self._calls} "
                             f"expects t={'none (done)' if expected is None else f'{expected:g}'}; step through "
                             "sampler.timesteps in order, once each, and call sampler.begin() before a new trajectory.")
        return self._calls

    @staticmethod
    def _velocity(model_output: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        if model_output.shape != x_t.shape:
            raise ValueError(f"a flow sampler needs the velocity v̂ [B, C, H, W] = {tuple(x_t.shape)} from the model, "
                             f"got {tuple(model_output.shape)} (an ε-model with learned variance is no velocity field: "
                             "wrap an ε-model in EpsAsVelocity).")
        return model_output

    def __repr__(self) -> str:
        grid = (f"shift={self.shift:g}" if self.shift is not None
                else f"times from {float(self.times[0]):.4g} to {float(self.times[-1]):.4g}")
        return f"{type(self).__name__}(steps={len(self.times) - 1}, nfe={self.nfe}, {grid})"


class FlowEulerSampler(_FlowSampler):
    """Euler's method on dx/dt = v(x, t), one network call per step (``nfe`` = steps):

        x_{t_{i+1}} = x_{t_i} + (t_{i+1} − t_i)·v̂(x_{t_i}, t_i)          (t_{i+1} < t_i: a step towards data)

    ``timesteps`` = t_0 … t_{K−1} (flow times, float64); the last step lands on t_K (0 by default)."""

    def step(self, model_output: torch.Tensor, t: float | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        """One Euler step from ``t`` (the next of ``self.timesteps``): x_t [B, C, H, W] → x_{t_next}."""
        i = self._expect(t)
        t_now, t_next = float(self.times[i]), float(self.times[i + 1])
        v = self._velocity(model_output, x_t)
        # 1. x̂_0 = x_t − t·v̂, what the velocity says the end point is
        pred_x0 = flow_x0_from_v(x_t, t_now, v=v)
        # 2. x_{t_next} = x_t + (t_next − t)·v̂
        prev_sample = x_t + (t_next - t_now) * v
        self._calls += 1
        return SamplerOutput(prev_sample=prev_sample, pred_x0=pred_x0)


class FlowHeunSampler(_FlowSampler):
    """Heun's 2nd-order method (the explicit trapezoidal rule) on dx/dt = v(x, t): an Euler predictor
    to t_{i+1}, a second call there, and the average of the two slopes::

        x' = x_i + (t_{i+1} − t_i)·v̂(x_i, t_i)
        x_{i+1} = x_i + (t_{i+1} − t_i)·(v̂(x_i, t_i) + v̂(x', t_{i+1}))/2

    Two calls per step, the last one included: ``timesteps`` is t_0, t_1, t_1, t_2, t_2, …, t_{K−1}, t_K
    and ``nfe`` = 2·steps.  (Karras et al.'s Heun for the σ-ODE makes its last step plain Euler because
    dx̃/dσ divides by σ = 0 there; v(x, 0) is finite, so here the last step is corrected too.)"""

    calls_per_step = 2

    def _call_times(self) -> torch.Tensor:
        return torch.stack([self.times[:-1], self.times[1:]], dim=1).reshape(-1)     # t_0, t_1, t_1, t_2, …, t_K

    def begin(self) -> None:
        super().begin()
        self._pending = None                    # (x_i, v̂_i) of the predictor awaiting its correction

    def step(self, model_output: torch.Tensor, t: float | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        """The predictor (even calls, at t_i) or the corrector (odd calls, at t_{i+1} and x')."""
        k = self._expect(t)
        i = k // 2
        t_now, t_next = float(self.times[i]), float(self.times[i + 1])
        v = self._velocity(model_output, x_t)
        self._calls += 1
        if self._pending is None:
            # the predictor: x' = x_i + (t_{i+1} − t_i)·v̂_i
            self._pending = (x_t, v)
            return SamplerOutput(prev_sample=x_t + (t_next - t_now) * v, pred_x0=flow_x0_from_v(x_t, t_now, v=v))
        # the corrector at (x', t_{i+1}): x_{i+1} = x_i + (t_{i+1} − t_i)·(v̂_i + v̂')/2
        x_i, v_i = self._pending
        self._pending = None
        prev_sample = x_i + (t_next - t_now) * 0.5 * (v_i + v)
        return SamplerOutput(prev_sample=prev_sample, pred_x0=flow_x0_from_v(x_t, t_next, v=v))


def make_flow_sampler(kind: FlowSamplerKind, *, steps: int | None = None, shift: float = 1.0) -> _FlowSampler:
    """A flow sampler by name, as the command line builds it (``steps`` default: DEFAULT_DDIM_STEPS)."""
    if kind not in FLOW_SAMPLERS:
        raise ValueError(f"--sampler {kind}: a flow-matching model samples with one of {FLOW_SAMPLERS} "
                         "(the ODE dx/dt = v); ddpm, ddim and dpmpp2m are for ε-prediction models.")
    return {"euler": FlowEulerSampler, "heun": FlowHeunSampler}[kind](steps=steps, shift=shift)


# -- the bridge: an ε-model on the DDPM schedule, in flow coordinates -----------------------------------
# x_t = √ᾱ x_0 + √(1−ᾱ) ε.  Multiply by c = 1/(√ᾱ + √(1−ᾱ)): the two weights add up to 1, so
# c·x_t = (1 − t)x_0 + tε with t = c·√(1−ᾱ), a point of the straight path.  (t/(1 − t) = √((1−ᾱ)/ᾱ)
# is the σ of solvers.py: the flow time is σ/(1 + σ).)

def ddpm_time_to_flow(schedule: NoiseSchedule, t_index: int | torch.Tensor) -> torch.Tensor:
    """The flow time of DDPM timestep(s) ``t_index`` (0-based): t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)), float64."""
    t_index = schedule.check_t(t_index)
    alpha_bar = schedule.alphas_cumprod.cpu()[t_index.cpu()]
    return (1 - alpha_bar).sqrt() / (alpha_bar.sqrt() + (1 - alpha_bar).sqrt())


def ddpm_to_flow_scale(schedule: NoiseSchedule, t_index: int | torch.Tensor) -> torch.Tensor:
    """c = 1/(√ᾱ + √(1−ᾱ)) at DDPM timestep(s) ``t_index``: x_flow = c·x_t (float64)."""
    t_index = schedule.check_t(t_index)
    alpha_bar = schedule.alphas_cumprod.cpu()[t_index.cpu()]
    return 1 / (alpha_bar.sqrt() + (1 - alpha_bar).sqrt())


class EpsAsVelocity(torch.nn.Module):
    """An ε-prediction model (trained on ``schedule``) as a velocity field in flow coordinates, to run
    with the flow samplers::

        v̂(x, t) = (ε̂ − x)/(1 − t),   ε̂ = ε_θ(x/c, τ)   with c = √((1−t)² + t²) and τ the DDPM
                                                          timestep whose flow time is t

    It takes the flow network time t·999 that the flow samplers pass.  At the flow time of an
    integer timestep (as on :meth:`FlowEulerSampler.from_ddpm_timesteps`' grid) the ε-model is called
    exactly there; between them τ is interpolated linearly in log σ (k-diffusion's ``sigma_to_t``),
    below t_flow(0) τ = 0, and above t_flow(T−1) it is an error (ᾱ → 0 has no ε-model).  Guidance
    works through it: v is affine in ε̂, so guiding v is guiding ε̂."""

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.model, self.schedule = model, schedule
        self._flow_times = ddpm_time_to_flow(schedule, torch.arange(schedule.T))          # [T] float64, increasing
        self._network_times = network_time(self._flow_times)                              # [T] float32, as the samplers make them
        self._log_sigmas = (self._flow_times / (1 - self._flow_times)).log()               # σ = t/(1 − t)

    @property
    def config(self):
        return self.model.config

    def null_labels(self, batch_size: int, device=None) -> torch.Tensor:
        return self.model.null_labels(batch_size, device)

    def _ddpm_time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow network times [B] → (flow time t, DDPM timestep τ as a float), both float64 on the CPU."""
        t = t.detach().float().cpu()
        if t.ndim == 0:
            t = t.reshape(1)
        k = torch.searchsorted(self._network_times, t).clamp(max=self.schedule.T - 1)
        exact = self._network_times[k] == t                                    # a timestep's own flow time
        t_flow = torch.where(exact, self._flow_times[k], t.double() / FLOW_TIME_SCALE)
        top = float(self._flow_times[-1])
        if bool((t_flow > top).any()):
            raise ValueError(f"EpsAsVelocity: flow time {float(t_flow.max()):.6g} is past t_flow(T−1) = {top:.6g}, where "
                             "ᾱ of the schedule ends; start the flow sampler there (FlowEulerSampler.from_ddpm_timesteps, "
                             "or from_times with t_0 <= ddpm_time_to_flow(schedule, T − 1)) from x_T·ddpm_to_flow_scale.")
        log_sigma = (t_flow / (1 - t_flow)).log()
        upper = torch.searchsorted(self._log_sigmas, log_sigma).clamp(1, self.schedule.T - 1)
        low, high = self._log_sigmas[upper - 1], self._log_sigmas[upper]
        tau = ((upper - 1) + (log_sigma - low) / (high - low)).clamp(0, self.schedule.T - 1)
        return t_flow, torch.where(exact, k.double(), tau)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """v̂ [B, C, H, W] at x [B, C, H, W] and flow network time t [B] (= t_flow·999)."""
        if not torch.is_floating_point(torch.as_tensor(t)):
            raise TypeError("EpsAsVelocity takes the flow network time t·999 (a float tensor, as the flow samplers "
                            "pass it); for integer DDPM timesteps call the ε-model itself.")
        t_flow, tau = self._ddpm_time(torch.as_tensor(t))
        scale = ((1 - t_flow) ** 2 + t_flow ** 2).sqrt()                 # 1/c: x_t = x_flow/c
        if len(t_flow) == 1 and x.shape[0] != 1:
            t_flow, tau, scale = (v.expand(x.shape[0]) for v in (t_flow, tau, scale))
        x_ddpm = x / _as_column(scale.to(x.device), x)                   # [B, C, H, W]
        eps = self.model(x_ddpm, tau.to(x.device), labels)[:, :x.shape[1]]   # ε̂ (the ε channels of learned variance)
        return flow_v_from_eps(x, t_flow.to(x.device), eps=eps)


# -- straightness (Liu et al. 2023, eq. 8-9) -------------------------------------------------------------

def path_straightness(times: torch.Tensor, xs: torch.Tensor) -> float:
    """S of one sampled path (a batch of them), Liu et al. 2023 eq. 8-9 on the solver's grid::

        S = Σ_i |t_{i+1} − t_i|·mean ‖D − v_i‖² / |t_K − t_0|,
        v_i = (x_{i+1} − x_i)/(t_{i+1} − t_i),   D = (x_K − x_0)/(t_K − t_0)

    ``times`` [K+1] (t_0 > … > t_K) and ``xs`` [K+1, B, C, H, W] the states there.  v_i is the velocity
    each step moved with (for Euler: the network's v̂(x_i, t_i)); D is the velocity of the straight
    line from the start to the end, (noise − data) when t_0 = 1 and t_K = 0, so S is the t-weighted
    mean of ‖D − v‖² over the grid's steps: its left Riemann sum of ∫ E‖(x_1 − x_0) − v(x_t, t)‖² dt.
    ``mean`` is over images and pixels (not the sum over pixels of the paper's ‖·‖²).  S = 0 exactly
    when every step moved along one line at one speed; it does not depend on the solver's accuracy."""
    times = torch.as_tensor(times, dtype=torch.float64).cpu()
    xs = xs.detach().double().cpu()
    if xs.shape[0] != len(times) or len(times) < 2:
        raise ValueError(f"xs must hold one state per time: {len(times)} times, got {xs.shape[0]} states.")
    dt = (times[1:] - times[:-1]).reshape(-1, *([1] * (xs.ndim - 1)))           # [K, 1, 1, 1, 1], negative
    velocities = (xs[1:] - xs[:-1]) / dt                                        # v_i, [K, B, C, H, W]
    line = (xs[-1] - xs[0]) / (times[-1] - times[0])                            # D, [B, C, H, W]
    per_step = ((line - velocities) ** 2).flatten(1).mean(1)                    # mean ‖D − v_i‖², [K]
    weights = (times[:-1] - times[1:]) / (times[0] - times[-1])                 # |Δt_i| / |t_K − t_0|, sum 1
    return float((weights * per_step).sum())


def straightness(model: torch.nn.Module, sampler: FlowEulerSampler, n: int | None = None, *,
                 x_T: torch.Tensor | None = None, labels=None, guidance_scale: float = 1.0,
                 generator: torch.Generator | None = None, device=None, precision: str = "fp32") -> float:
    """Sample with the flow Euler ``sampler`` (``model``: a flow model, or an ε-model wrapped in
    :class:`EpsAsVelocity`) and return :func:`path_straightness` of the paths, on ``sampler.times``.
    The other arguments are ``samplers.sample``'s."""
    if not isinstance(sampler, FlowEulerSampler):
        raise ValueError(f"straightness needs a FlowEulerSampler (each step moves with one velocity v̂(x_i, t_i)), "
                         f"got {sampler!r}.")
    _, trajectory = sample(model, sampler, n, x_T=x_T, labels=labels, guidance_scale=guidance_scale,
                           generator=generator, device=device, progress=False, return_trajectory=True,
                           precision=precision)
    return path_straightness(sampler.times, trajectory.x)


def trajectory_to_flow(schedule: NoiseSchedule, trajectory: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
    """A DDIM (or Euler, DPM-Solver++) trajectory of an ε-model in flow coordinates: (times [K+1],
    xs [K+1, B, C, H, W]) with t_flow(τ_i) and c_i·x_i, the last state (x_0) at t = 0.  Feed it to
    :func:`path_straightness`."""
    timesteps = torch.as_tensor(trajectory.timesteps).long().cpu()
    if len(torch.unique(timesteps)) != len(timesteps) or len(trajectory.x) != len(timesteps) + 1:
        raise ValueError("trajectory_to_flow needs one state per distinct timestep plus the final sample "
                         "(a DDIM, Euler or DPM-Solver++ trajectory; Heun lists timesteps twice).")
    times = torch.cat([ddpm_time_to_flow(schedule, timesteps), torch.zeros(1, dtype=torch.float64)])
    scales = torch.cat([ddpm_to_flow_scale(schedule, timesteps), torch.ones(1, dtype=torch.float64)])
    xs = trajectory.x.double() * scales.reshape(-1, *([1] * (trajectory.x.ndim - 1)))
    return times, xs
