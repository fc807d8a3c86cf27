"""Reverse-process samplers (notebooks 05-08): DDPM (Algorithm 2), DDIM, guidance, one loop.

The split follows diffusers: a *sampler* owns the maths of one reverse step, :func:`sample`
owns the loop, and the model knows nothing about schedules.  Every sampler has

    sampler.timesteps                      # long tensor, descending, 0-based (see schedules.py);
                                           # flow.py's samplers: float flow times t ∈ [0, 1]
    sampler.step(model_output, t, x_t, generator=None) -> SamplerOutput(prev_sample, pred_x0)

``model_output`` is what the UNet returned at (x_t, t): ε̂ [B, C, H, W], or [B, 2C, H, W]
(ε̂ and v_raw) for a learned-variance model.  Randomness enters only through ``generator``, and
no noise is added at the last step.

DDPM Algorithm 2, and where each of its lines lives:

    1: x_T ~ N(0, I)                                                         sample()
    2: for t = T, ..., 1 do                                                  sample()
    3:     z ~ N(0, I) if t > 1, else z = 0                                  DDPMSampler.step
    4:     x_{t−1} = 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε_θ(x_t, t)) + σ_t z         DDPMSampler.step (ε_θ: sample())
    5: end for
    6: return x_0                                                            sample()
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import torch
from tqdm.auto import tqdm

from .forward import predict_eps_from_x0, predict_x0_from_eps, q_posterior
from .losses import learned_log_variance
from .schedules import NoiseSchedule, extract
from .unet import check_labels

__all__ = [
    "DEFAULT_DDIM_STEPS",
    "SamplerKind",
    "Precision",
    "SamplerOutput",
    "DDPMSampler",
    "DDIMSampler",
    "VarianceType",
    "TimestepSpacing",
    "Trajectory",
    "p_mean_from_eps",
    "guided_model_output",
    "sample",
    "make_sampler",
    "randn",
]

VarianceType = Literal["fixed_small", "fixed_large", "learned_range"]
TimestepSpacing = Literal["uniform", "leading", "trailing", "quadratic"]
SamplerKind = Literal["ddpm", "ddim", "euler", "heun", "dpmpp2m"]   # make_sampler's kinds, and --sampler
Precision = Literal["fp32", "bf16", "fp16", "auto"]   # sample(precision=...) and --precision
DEFAULT_DDIM_STEPS = 50   # DDIMSampler's and the command line's default number of steps


@dataclass
class SamplerOutput:
    prev_sample: torch.Tensor  # x_{t_prev}, [B, C, H, W]
    pred_x0: torch.Tensor      # x̂_0 at this step, [B, C, H, W]


def randn(shape: Sequence[int], like: torch.Tensor | None = None, generator: torch.Generator | None = None,
          device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise drawn from ``generator`` (on the generator's own device, so a
    CPU generator gives the same numbers whatever device the result goes to)."""
    device = like.device if like is not None else (device or "cpu")
    dtype = like.dtype if like is not None else (dtype or torch.float32)
    if generator is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


def _spaced_timesteps(T: int, steps: int, spacing: str) -> torch.Tensor:
    """``steps`` indices out of [0, T), returned descending."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if steps > T:
        raise ValueError(f"steps={steps} (--steps) is more than the schedule's T={T}; choose steps <= {T}.")
    if spacing not in get_args(TimestepSpacing):
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {get_args(TimestepSpacing)}.")
    if spacing == "uniform":      # evenly spaced, first and last included (improved-diffusion)
        ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long()
        if steps == 1:            # linspace would give [0]; sampling starts from x_T, so keep T-1
            ts = torch.tensor([T - 1])
    elif spacing == "leading":    # 0, k, 2k, ... (diffusers' default, DDIM paper's "linear")
        ts = torch.arange(steps) * (T // steps)
    elif spacing == "trailing":   # ..., T-1-k, T-1 (Lin et al. 2024, Table 2)
        # [:steps]: in floating point the arange can hold one element too many, e.g. T=50, steps=29
        ts = (torch.arange(T, 0, -T / steps, dtype=torch.float64)[:steps].round().long() - 1).flip(0)
    else:                         # "quadratic": denser near the data (DDIM §D.2)
        ts = (torch.linspace(0, (0.8 * T) ** 0.5, steps, dtype=torch.float64) ** 2).long()
    ts = torch.unique(ts.clamp(0, T - 1))
    if len(ts) != steps:
        raise ValueError(f"spacing {spacing!r} gives repeated timesteps for steps={steps}, T={T}; use spacing='uniform'.")
    return ts.flip(0)


class _Sampler:
    """What DDPM and DDIM share: the schedule, the descending timesteps, x̂_0 clipping."""

    schedule: NoiseSchedule
    timesteps: torch.Tensor
    clip_x0: bool
    learned_variance: bool = False

    def _index(self, t: int | torch.Tensor) -> int:
        t = int(t)
        if t not in self._position:
            raise ValueError(f"t={t} is not one of this sampler's timesteps ({len(self.timesteps)} of them, "
                             f"from {int(self.timesteps[0])} down to {int(self.timesteps[-1])}).")
        return self._position[t]

    def _set_timesteps(self, timesteps: torch.Tensor) -> None:
        self.timesteps = timesteps
        self._position = {int(t): i for i, t in enumerate(timesteps)}

    def _split(self, model_output: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ε̂ and, for learned variance, the raw channels v_raw (both [B, C, H, W])."""
        C = x_t.shape[1]
        if model_output.shape == x_t.shape:
            if self.learned_variance:
                raise ValueError("variance_type='learned_range' needs a model with learn_sigma=True (2C output channels).")
            return model_output, None
        if model_output.shape[1] == 2 * C and model_output.shape[2:] == x_t.shape[2:]:
            eps, v_raw = model_output.split(C, dim=1)
            return eps, (v_raw if self.learned_variance else None)
        raise ValueError(f"model_output has shape {tuple(model_output.shape)}; expected {tuple(x_t.shape)} "
                         f"(or 2C={2 * C} channels for learned variance).")

    def _pred_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        pred_x0 = predict_x0_from_eps(self.schedule, x_t, t, eps)  # DDPM eq. 15 / DDIM eq. 12
        return pred_x0.clamp(-1.0, 1.0) if self.clip_x0 else pred_x0

    def __len__(self) -> int:
        return len(self.timesteps)

    def model_time(self, t: int | float, batch: int, device: torch.device | str) -> torch.Tensor:
        """The network's time input at ``t``, an entry of ``timesteps``: the integer timestep as a long
        tensor [batch].  (The flow samplers of flow.py override it: their t is a float in [0, 1].)"""
        return torch.full((batch,), int(t), dtype=torch.long, device=device)

    def begin(self) -> None:
        """Start a new trajectory: ``sample()`` calls it before its loop.  DDPM and DDIM keep no
        state between steps; a multistep or two-call solver (solvers.py) resets its own here."""

    @property
    def nfe(self) -> int:
        """Network evaluations per trajectory: one per entry of ``timesteps`` (a guided evaluation
        counts once, although it runs the network on the conditional and the unconditional batch)."""
        return len(self.timesteps)


class DDPMSampler(_Sampler):
    """Ancestral sampling, DDPM Algorithm 2, with the variance choices of DDPM §3.2 and
    Improved DDPM §3.1.

    variance_type:
        ``"fixed_small"``   σ_t² = β̃_t, the posterior variance (eq. 7)
        ``"fixed_large"``   σ_t² = β_t
        ``"learned_range"`` log σ_t² = v·log β_t + (1−v)·log β̃_t, with the paper's v = (v_raw + 1)/2
                            from the model's extra channels v_raw (Improved DDPM eq. 15)
    steps:
        ``None`` (all T) or fewer: then the process is *respaced* over a sub-sequence of
        timesteps with β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (Improved DDPM §4).
    clip_x0:
        clip x̂_0 to [-1, 1] and take the mean through it (the x̂_0 route); without clipping the
        mean is eq. 11, the same number by another route.
    """

    def __init__(self, schedule: NoiseSchedule, *, steps: int | None = None,
                 variance_type: VarianceType = "fixed_small", clip_x0: bool = True,
                 spacing: TimestepSpacing = "uniform"):
        if variance_type not in get_args(VarianceType):
            raise ValueError(f"unknown variance_type {variance_type!r}; choose one of {get_args(VarianceType)}.")
        self.schedule = schedule
        self.variance_type = variance_type
        self.learned_variance = variance_type == "learned_range"
        self.clip_x0 = clip_x0
        timesteps = _spaced_timesteps(schedule.T, schedule.T if steps is None else steps, spacing)
        self._set_timesteps(timesteps)
        # the respaced process over τ (ascending): its own β', ᾱ', β̃'
        ascending = timesteps.flip(0)
        alphas_cumprod = schedule.alphas_cumprod[ascending]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.respaced = NoiseSchedule(1.0 - alphas_cumprod / prev)

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        """Lines 3-4 of Algorithm 2 at timestep ``t`` (one of ``self.timesteps``): x_t [B, C, H, W]
        → x_{t−1} [B, C, H, W], over the respaced process when ``steps`` < T."""
        k = len(self.timesteps) - 1 - self._index(t)   # index into the respaced (ascending) schedule
        t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
        k_batch = torch.full_like(t_batch, k)
        eps, v_raw = self._split(model_output, x_t)

        # 1. x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, clipped to [-1, 1] if clip_x0                   (eq. 15)
        pred_x0 = self._pred_x0(x_t, t_batch, eps)

        # 2. μ_θ(x_t, t), the mean in Alg. 2 line 4, by one of two routes that agree unclipped:
        if self.clip_x0:  # via x̂_0: μ_θ = μ̃_t(x_t, x̂_0), the posterior mean at the clipped x̂_0  (eq. 7)
            mean, _, _ = q_posterior(self.respaced, x0=pred_x0, x_t=x_t, t=k_batch)
        else:             # eq. 11:  μ_θ = (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t
            mean = p_mean_from_eps(self.respaced, x_t=x_t, t=k_batch, eps=eps)

        # 3. σ_t² by the chosen variance type
        log_var = self._log_variance(k_batch, v_raw, x_t)

        # 4. Alg. 2 line 3: z ~ N(0, I) if t > 1, else z = 0 (no noise at the last step)
        if k == 0:
            return SamplerOutput(prev_sample=mean, pred_x0=pred_x0)
        z = randn(x_t.shape, like=x_t, generator=generator)
        # Alg. 2 line 4: x_{t−1} = μ_θ(x_t, t) + σ_t z
        return SamplerOutput(prev_sample=mean + (0.5 * log_var).exp() * z, pred_x0=pred_x0)

    def _log_variance(self, k_batch: torch.Tensor, v_raw: torch.Tensor | None, x_t: torch.Tensor) -> torch.Tensor:
        """log σ_t² of the respaced step k: [B, 1, 1, 1], or [B, C, H, W] when learned."""
        if self.variance_type == "fixed_small":   # σ_t² = β̃_t                                    (eq. 7)
            return extract(self.respaced.posterior_log_variance_clipped, k_batch, x_t)
        if self.variance_type == "fixed_large":   # σ_t² = β_t
            return extract(self.respaced.betas, k_batch, x_t).log()
        return learned_log_variance(self.respaced, v_raw, k_batch)   # Improved DDPM eq. 15

    def __repr__(self) -> str:
        return f"DDPMSampler(steps={len(self)}, variance_type={self.variance_type!r}, clip_x0={self.clip_x0})"


class DDIMSampler(_Sampler):
    """DDIM (Song et al. 2021, arXiv:2010.02502): the non-Markovian reverse process over a
    sub-sequence τ of timesteps (§4.2), with stochasticity η (eq. 16): η=0 is deterministic,
    η=1 over all T steps is DDPM with σ² = β̃."""

    def __init__(self, schedule: NoiseSchedule, *, steps: int = DEFAULT_DDIM_STEPS, eta: float = 0.0,
                 spacing: TimestepSpacing = "uniform", clip_x0: bool = True):
        if not (math.isfinite(float(eta)) and float(eta) >= 0.0):
            raise ValueError(f"eta must be a finite number >= 0 (0 is deterministic DDIM, 1 is DDPM-like), got {eta}.")
        self.schedule = schedule
        self.eta = float(eta)
        self.clip_x0 = clip_x0
        self.spacing = spacing
        self._set_timesteps(_spaced_timesteps(schedule.T, steps, spacing))

    def prev_timestep(self, t: int) -> int:
        """The next timestep in the (descending) sequence after ``t``, or -1 after the last."""
        i = self._index(t)
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        """One DDIM step (eq. 12) from timestep ``t`` to the next one in ``self.timesteps``:
        x_t [B, C, H, W] → x_{t_prev} [B, C, H, W]."""
        t, prev_t = int(t), self.prev_timestep(int(t))
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)

        # 1. ᾱ_t and ᾱ_{t_prev} (ᾱ before the first step is 1: x_{-1} is x_0 itself)
        alpha_bar = extract(self.schedule.alphas_cumprod, t_batch, x_t)                  # (B, 1, 1, 1)
        alpha_bar_prev = (extract(self.schedule.alphas_cumprod, torch.full_like(t_batch, prev_t), x_t)
                          if prev_t >= 0 else torch.ones_like(alpha_bar))

        # 2. predicted x_0, eq. 12's first term; if clipped, ε is re-derived from it
        eps, _ = self._split(model_output, x_t)
        pred_x0 = self._pred_x0(x_t, t_batch, eps)
        if self.clip_x0:
            eps = predict_eps_from_x0(self.schedule, x_t, t_batch, pred_x0)

        # 3. σ_t(η) = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})                    (eq. 16)
        sigma = self.eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()

        # 4. x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1−ᾱ_{t−1}−σ_t²) ε̂ + σ_t z                     (eq. 12)
        prev_sample = alpha_bar_prev.sqrt() * pred_x0 + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
        if prev_t >= 0 and self.eta > 0:
            prev_sample = prev_sample + sigma * randn(x_t.shape, like=x_t, generator=generator)
        return SamplerOutput(prev_sample=prev_sample, pred_x0=pred_x0)

    def __repr__(self) -> str:
        return f"DDIMSampler(steps={len(self)}, eta={self.eta}, spacing={self.spacing!r}, clip_x0={self.clip_x0})"


def p_mean_from_eps(schedule: NoiseSchedule, *, x_t: torch.Tensor, t: torch.Tensor | int,
                    eps: torch.Tensor) -> torch.Tensor:
    """The reverse-process mean straight from ε̂, DDPM eq. 11 (Algorithm 2 line 4 without σ_t z):

        μ_θ(x_t, t) = (x_t − β_t/√(1−ᾱ_t) ε̂) / √α_t

    ``x_t`` and ``eps`` [B, C, H, W] (keyword-only), t [B] or an int.  It equals the posterior
    mean μ̃_t(x_t, x̂_0) of eq. 7 at the x̂_0 of eq. 15 (notebook 05 §1 does the algebra)."""
    if x_t.shape != eps.shape:
        raise ValueError(f"x_t and eps must have the same shape, got {tuple(x_t.shape)} and {tuple(eps.shape)}.")
    t = schedule.check_t(t, like=x_t)
    eps_coef = extract(schedule.betas / schedule.sqrt_one_minus_alphas_cumprod, t, x_t)   # β_t/√(1−ᾱ_t), (B, 1, 1, 1)
    return extract(schedule.alphas.rsqrt(), t, x_t) * (x_t - eps_coef * eps)              # 1/√α_t · (...)


def make_sampler(schedule: NoiseSchedule, kind: SamplerKind, *, steps: int | None = None,
                 eta: float = 0.0, variance_type: VarianceType | None = None, clip_x0: bool = True,
                 learned_variance: bool = False, spacing: str | None = None) -> _Sampler:
    """A sampler by name, as the command line builds it.  ``steps`` are solver steps (DDPM: all T
    by default; the others: DEFAULT_DDIM_STEPS).  A learned-variance model gets
    ``variance_type="learned_range"`` with DDPM unless another is asked for; the ODE solvers use
    its ε channels."""
    if kind == "ddpm":
        variance_type = variance_type or ("learned_range" if learned_variance else "fixed_small")
        return DDPMSampler(schedule, steps=steps, variance_type=variance_type, clip_x0=clip_x0,
                           spacing=spacing or "uniform")
    steps = DEFAULT_DDIM_STEPS if steps is None else steps
    if kind == "ddim":
        return DDIMSampler(schedule, steps=steps, eta=eta, clip_x0=clip_x0, spacing=spacing or "uniform")
    if kind in ("euler", "heun", "dpmpp2m"):
        from . import solvers       # solvers builds on this module, so it is imported here, not at the top

        if eta != 0.0:
            raise ValueError(f"--eta {eta}: the {kind} solver is deterministic (the probability-flow ODE); "
                             "use --sampler ddim or ddpm for stochastic sampling.")
        solver = {"euler": solvers.EulerSampler, "heun": solvers.HeunSampler, "dpmpp2m": solvers.DPMSolverPP2MSampler}[kind]
        return solver(schedule, steps=steps, spacing=spacing or "uniform", clip_x0=clip_x0)
    raise ValueError(f"unknown sampler {kind!r}; choose one of {get_args(SamplerKind)}.")


def guided_model_output(model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
                        labels: torch.Tensor | None, guidance_scale: float = 1.0) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6 written with s = w + 1):

        ε̃ = ε_u + s (ε_c − ε_u)

    s=1 is the plain conditional model, s=0 the unconditional one (null label).  The
    learned-variance channels, if any, are taken from the conditional pass.  x_t [B, C, H, W],
    t [B], labels [B] (or None); returns the model's output shape, [B, C, H, W] or [B, 2C, H, W]."""
    if guidance_scale == 1.0 or labels is None:
        return model(x_t, t, labels)
    null = model.null_labels(x_t.shape[0], x_t.device)
    if guidance_scale == 0.0:
        return model(x_t, t, null)
    out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null]))  # (2B, C', H, W)
    cond, uncond = out.chunk(2)
    C = x_t.shape[1]
    guided = uncond[:, :C] + guidance_scale * (cond[:, :C] - uncond[:, :C])
    return torch.cat([guided, cond[:, C:]], dim=1)


@dataclass
class Trajectory:
    """What :func:`sample` saw along the way (kept on the CPU).

    ``timesteps`` [S]; ``x`` [S+1, B, C, H, W] (x_T first, the final sample last);
    ``pred_x0`` [S, B, C, H, W], the sampler's x̂_0 at each step; ``nfe``, the network
    evaluations the loop made (a guided one counts once)."""

    timesteps: torch.Tensor
    x: torch.Tensor
    pred_x0: torch.Tensor
    nfe: int = 0


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "auto": None}
_warned_emulated_bf16 = False


def _autocast_dtype(precision: str, device: torch.device | None = None) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``.  "auto" is bf16 where it is native (a
    GPU with bf16, a CPU with AMX or AVX-512-BF16) and fp32 elsewhere.  bf16 asked for on a CPU
    without it is emulated, many times slower than fp32 (README, "Sampling"): warned once."""
    global _warned_emulated_bf16
    from .devices import cpu_has_native_bf16, native_precision

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)} "
                         "(bf16 needs a GPU or a CPU with AMX / AVX-512-BF16 to be fast).")
    device = device or torch.device("cpu")
    if precision == "auto":
        return PRECISIONS[native_precision(device)]
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16() and not _warned_emulated_bf16:
        import warnings

        _warned_emulated_bf16 = True
        warnings.warn("precision='bf16' on a CPU without AMX or AVX-512-BF16: bf16 is emulated here and is much "
                      "slower than fp32; use precision='auto' (--precision auto) or 'fp32'.", stacklevel=3)
    return PRECISIONS[precision]


def _check_sample_args(model: torch.nn.Module, sampler: _Sampler, x_T: torch.Tensor, labels, guidance_scale: float,
                       device: torch.device) -> torch.Tensor | None:
    """The checks of :func:`sample`, one per fact; returns the labels as a long tensor [n] (or None)."""
    config = model.config
    shape = (config.in_channels, config.image_size, config.image_size)
    if x_T.ndim != 4 or tuple(x_T.shape[1:]) != shape:
        raise ValueError(f"x_T must have shape [n, {shape[0]}, {shape[1]}, {shape[2]}] for this model, "
                         f"got {tuple(x_T.shape)}.")
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale}.")
    if not bool(torch.isfinite(x_T).all()):
        raise ValueError("x_T contains NaN or infinite values; start from finite noise.")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise ValueError("the model's weights contain NaN or infinite values (a diverged or corrupt checkpoint); "
                         "sample from an earlier checkpoint of the run.")
    num_classes = getattr(config, "num_classes", None)
    labels = check_labels(labels, x_T.shape[0], num_classes, device=device)   # the null label is no class here
    if guidance_scale != 1.0:
        if num_classes is None:
            raise ValueError(f"guidance_scale={guidance_scale} (--guidance-scale) needs a class-conditional model "
                             "trained with label dropout; this model is unconditional. Use guidance_scale=1.")
        if labels is None:
            raise ValueError("guidance_scale != 1 needs labels: say which class to guide towards.")
    if getattr(config, "learn_sigma", False) is False and getattr(sampler, "learned_variance", False):
        raise ValueError("this sampler uses learned variance, but the model was built without learn_sigma.")
    return labels


# On a CPU the network runs fastest on batches of about 64: DDIM-50 of 256 images took 14.4 s at batch
# 64 against 19.4 s at 256 on the EPYC-512, and 11.9 s both ways on the Xeon (README, "Sampling").  So
# sample() evaluates a larger batch in chunks of this size; the sampler's noise and arithmetic still
# see the whole batch, so the images are those of one batch (to kernel round-off).
CPU_NETWORK_CHUNK = 64


def _model_output(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                  guidance_scale: float, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """ε_θ(x_t, t) (guided), with the network under autocast when a reduced precision is asked for;
    on a CPU in chunks of at most CPU_NETWORK_CHUNK images."""
    if x.device.type == "cpu" and x.shape[0] > CPU_NETWORK_CHUNK:
        chunks = zip(x.split(CPU_NETWORK_CHUNK), t.split(CPU_NETWORK_CHUNK),
                     labels.split(CPU_NETWORK_CHUNK) if labels is not None else [None] * math.ceil(len(x) / CPU_NETWORK_CHUNK))
        return torch.cat([_model_output(model, xs, ts, ls, guidance_scale, autocast_dtype) for xs, ts, ls in chunks])
    if autocast_dtype is None:
        return guided_model_output(model, x, t, labels, guidance_scale)
    with torch.autocast(x.device.type, dtype=autocast_dtype):   # the sampler's arithmetic stays in x's dtype
        return guided_model_output(model, x, t, labels, guidance_scale).to(x.dtype)


@torch.no_grad()
def sample(model: torch.nn.Module, sampler: _Sampler, n: int | None = None, *,
           labels: torch.Tensor | Sequence[int] | int | None = None, guidance_scale: float = 1.0,
           x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
           device: torch.device | str | None = None, progress: bool = True,
           return_trajectory: bool = False, precision: str = "fp32") -> torch.Tensor | tuple[torch.Tensor, Trajectory]:
    """Run ``sampler`` from pure noise to images: the one loop for DDPM, DDIM and guidance
    (Algorithm 2's lines 1, 2 and 6; ``sampler.step`` does lines 3-4).

    n:               number of images (or give ``x_T`` [n, C, H, W] to start from).
    labels:          class labels [n] (or one int) for a conditional model.
    guidance_scale:  s in ε̃ = ε_u + s(ε_c − ε_u); s=1 conditional, s=0 unconditional.
    x_T:             the starting noise [n, C, H, W]; if None it is drawn from ``generator``.
    generator:       the only source of randomness (x_T and every step's z).
    precision:       "fp32", or "bf16" / "fp16" to run the network under ``torch.autocast`` (the
                     sampler's arithmetic stays fp32); bf16 is fast on GPUs and on CPUs with AMX or
                     AVX-512-BF16 and emulated, many times slower, elsewhere; "auto" picks bf16
                     where it is native and fp32 elsewhere (README, "Performance").
    Returns images [n, C, H, W] in [-1, 1] and, if ``return_trajectory``, a :class:`Trajectory` (with
    ``nfe``, the network evaluations counted in the loop; ``sampler.nfe`` says it in advance).
    The model is put in eval mode for the loop and given back in the mode it was in.
    """
    config = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if x_T is None:
        if n is None or n <= 0:
            raise ValueError("give n (a positive number of images) or an x_T tensor to start from.")
        # Alg. 2 line 1: x_T ~ N(0, I)
        x_T = randn((n, config.in_channels, config.image_size, config.image_size), generator=generator, device=device)
    labels = _check_sample_args(model, sampler, x_T, labels, guidance_scale, device)
    autocast_dtype = _autocast_dtype(precision, device)

    was_training = model.training
    model.eval()
    sampler.begin()
    try:
        x = x_T.to(device)
        xs, pred_x0s = [x.cpu()], []
        # Alg. 2 line 2: for t = T, ..., 1 (here the sampler's 0-based timesteps, descending)
        for t in tqdm(sampler.timesteps.tolist(), desc=type(sampler).__name__, disable=not progress, leave=False):
            t_batch = sampler.model_time(t, x.shape[0], device)               # [n]: t (flow samplers: t·999)
            model_output = _model_output(model, x, t_batch, labels, guidance_scale, autocast_dtype)  # ε_θ(x_t, t)
            out = sampler.step(model_output, t, x, generator=generator)      # Alg. 2 lines 3-4 (DDIM: eq. 12)
            x = out.prev_sample
            if return_trajectory:
                xs.append(x.cpu())
                pred_x0s.append(out.pred_x0.cpu())
    finally:
        model.train(was_training)
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"sampling gave non-finite values although every input was finite: the network's "
                                 f"output overflowed (precision={precision!r}; try precision='fp32').")
    # Alg. 2 line 6: return x_0
    if return_trajectory:
        return x, Trajectory(sampler.timesteps.clone(), torch.stack(xs), torch.stack(pred_x0s), nfe=len(pred_x0s))
    return x
