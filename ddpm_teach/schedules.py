"""Noise schedules: the betas β_1..β_T and every coefficient derived from them.

Index convention (used everywhere in ``ddpm_teach``): timesteps are 0-based indices
``t`` in ``[0, T)``.  Index 0 is the paper's t=1 (the first, smallest bit of noise), and
``x_0`` is data.  So ``betas[t]`` is the paper's β_{t+1}.

All coefficients are computed in float64 (as openai/improved-diffusion does) and kept as
float64 tensors [T] on the CPU, each a declared attribute of :class:`NoiseSchedule`;
:func:`extract` hands one out at timesteps ``t`` in the dtype and on the device of the tensor
it is combined with::

    extract(schedule.sqrt_alphas_cumprod, t, x0) * x0      # √ᾱ_t x_0, shaped [B, 1, 1, 1] · [B, C, H, W]

Papers: Ho et al. 2020 (DDPM, arXiv:2006.11239); Nichol & Dhariwal 2021 (Improved DDPM,
arXiv:2102.09672), whose eq. 17 defines the cosine schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

__all__ = ["ScheduleKind", "SCHEDULE_KINDS", "make_betas", "NoiseSchedule", "extract", "batch_timesteps"]

ScheduleKind = Literal["linear", "cosine", "quadratic", "sigmoid"]
SCHEDULE_KINDS: tuple[str, ...] = get_args(ScheduleKind)


def _check_T(T: int) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"T (the number of diffusion steps) must be a positive integer, got {T!r}.")
    return T


def make_betas(
    kind: str,
    T: int,
    *,
    beta_start: float | None = None,
    beta_end: float | None = None,
    s: float = 0.008,
    max_beta: float = 0.999,
) -> torch.Tensor:
    """β_1..β_T as a float64 tensor of shape [T].

    kind:
        ``"linear"``    β rises linearly from ``beta_start`` to ``beta_end`` (DDPM §4:
                        1e-4 to 0.02 at T=1000).  Note that the defaults are *not* rescaled
                        when T changes: that is the lesson of notebook 02.
        ``"quadratic"`` √β rises linearly, so β rises quadratically (same end points).
        ``"sigmoid"``   β follows a sigmoid over [-6, 6] between the same end points.
        ``"cosine"``    ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2)
                        (Improved DDPM eq. 17), β_t = 1 − ᾱ_t/ᾱ_{t−1}, capped at
                        ``max_beta`` = 0.999 so that β_T ≠ 1 (their §3.2).
    """
    T = _check_T(T)
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"Unknown schedule {kind!r}. Choose one of {', '.join(SCHEDULE_KINDS)}.")
    start = 1e-4 if beta_start is None else float(beta_start)
    end = 0.02 if beta_end is None else float(beta_end)
    if kind != "cosine" and not (0.0 < start <= end < 1.0):
        raise ValueError(f"Need 0 < beta_start <= beta_end < 1, got beta_start={start}, beta_end={end}.")

    if kind == "linear":
        return torch.linspace(start, end, T, dtype=torch.float64)
    if kind == "quadratic":
        return torch.linspace(math.sqrt(start), math.sqrt(end), T, dtype=torch.float64) ** 2
    if kind == "sigmoid":
        if T == 1:  # one point: the rescaling below would divide 0 by 0
            return torch.full((1,), start, dtype=torch.float64)
        sig = torch.sigmoid(torch.linspace(-6.0, 6.0, T, dtype=torch.float64))
        return start + (end - start) * (sig - sig[0]) / (sig[-1] - sig[0])
    # cosine, Improved DDPM eq. 17
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(max=max_beta)


@dataclass(eq=False)
class NoiseSchedule:
    """Every coefficient of the forward process, precomputed in float64 (shape [T] each).

    Build it from betas, or by name::

        NoiseSchedule(make_betas("cosine", 1000))
        NoiseSchedule.from_name("linear", T=1000)

    ``name`` and ``kwargs`` only record how it was made, so a checkpoint can rebuild it.  The
    coefficients are declared below and derived from ``betas`` in ``__post_init__``.
    """

    betas: torch.Tensor                                        # β_t
    name: str = "custom"
    kwargs: dict = field(default_factory=dict)
    # derived from betas, float64 [T] each
    alphas: torch.Tensor = field(init=False, repr=False)                          # α_t = 1 − β_t
    alphas_cumprod: torch.Tensor = field(init=False, repr=False)                  # ᾱ_t
    alphas_cumprod_prev: torch.Tensor = field(init=False, repr=False)             # ᾱ_{t−1}, 1 at t=0
    sqrt_alphas_cumprod: torch.Tensor = field(init=False, repr=False)             # √ᾱ_t
    sqrt_one_minus_alphas_cumprod: torch.Tensor = field(init=False, repr=False)   # √(1 − ᾱ_t)
    sqrt_recip_alphas_cumprod: torch.Tensor = field(init=False, repr=False)       # 1/√ᾱ_t
    sqrt_recipm1_alphas_cumprod: torch.Tensor = field(init=False, repr=False)     # √(1/ᾱ_t − 1)
    posterior_variance: torch.Tensor = field(init=False, repr=False)              # β̃_t
    posterior_log_variance_clipped: torch.Tensor = field(init=False, repr=False)  # log β̃_t, finite at t=0
    posterior_mean_coef1: torch.Tensor = field(init=False, repr=False)            # μ̃_t's weight of x_0
    posterior_mean_coef2: torch.Tensor = field(init=False, repr=False)            # μ̃_t's weight of x_t
    snr: torch.Tensor = field(init=False, repr=False)                             # ᾱ_t / (1 − ᾱ_t)
    log_snr: torch.Tensor = field(init=False, repr=False)                         # log SNR(t)

    def __post_init__(self):
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}.")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie in (0, 1); check the schedule's end points.")
        self.betas = betas
        self.alphas = alphas = 1.0 - betas                               # α_t = 1 − β_t
        self.alphas_cumprod = alphas_cumprod = torch.cumprod(alphas, 0)  # ᾱ_t = Π_{s≤t} α_s
        self.alphas_cumprod_prev = alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64),
                                                                    alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = alphas_cumprod.rsqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / alphas_cumprod - 1.0).sqrt()
        # DDPM eq. 7: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t
        self.posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        # β̃_0 = 0, so log β̃ is clipped to β̃_1 at t=0 (as improved-diffusion does)
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]) if len(betas) > 1 else betas.clone()
        )
        # DDPM eq. 7: μ̃_t = coef1 · x_0 + coef2 · x_t
        self.posterior_mean_coef1 = betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod)
        self.snr = alphas_cumprod / (1.0 - alphas_cumprod)               # SNR(t) = ᾱ_t / (1 − ᾱ_t)
        self.log_snr = self.snr.log()

    @classmethod
    def from_name(cls, kind: str, T: int = 1000, **kwargs) -> "NoiseSchedule":
        """``NoiseSchedule.from_name("cosine", 1000)``: :func:`make_betas` then the coefficients."""
        return cls(make_betas(kind, T, **kwargs), name=kind, kwargs=dict(kwargs))

    @property
    def T(self) -> int:
        """Number of diffusion steps; valid indices are 0..T-1."""
        return int(self.betas.shape[0])

    def to_config(self) -> dict:
        """Plain data that rebuilds this schedule with :meth:`from_config` (for checkpoints)."""
        if self.name == "custom":
            return {"kind": "custom", "betas": self.betas.tolist()}
        return {"kind": self.name, "T": self.T, **self.kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "NoiseSchedule":
        config = dict(config)
        kind = config.pop("kind")
        if kind == "custom":
            return cls(torch.tensor(config["betas"], dtype=torch.float64))
        return cls.from_name(kind, **config)

    def check_t(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``t`` as a long tensor, with a clear error if any entry is not an integer in [0, T).

        With ``like`` [B, ...] (the tensor ``t`` goes with), an int is repeated to shape [B], any
        other shape than [B] is an error, and the result is on ``like``'s device.  The public
        functions call this once, at their entry; :func:`extract` itself checks nothing."""
        if like is not None:
            t = batch_timesteps(t, like.shape[0], like.device)
        t = torch.as_tensor(t)
        if t.is_floating_point():
            raise TypeError(f"timesteps must be integers in [0, {self.T}), got a {t.dtype} tensor.")
        t = t.long()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(
                f"timestep out of range: got values in [{int(t.min())}, {int(t.max())}], but this "
                f"schedule has T={self.T}, so t must be in [0, {self.T - 1}] (0-based; index 0 is the paper's t=1)."
            )
        return t

    def __repr__(self) -> str:
        return f"NoiseSchedule(name={self.name!r}, T={self.T}, beta=[{self.betas[0]:.3g}, {self.betas[-1]:.3g}])"


def batch_timesteps(t: torch.Tensor | int, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``t`` as a tensor [B] on ``device``: an int (or a 0-d tensor) is repeated for the batch,
    and any other shape than [B] is an error (the one check of t's shape, for forward and the UNet)."""
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(batch_size)
    if t.shape != (batch_size,):
        raise ValueError(f"t must be an int or a tensor of shape [B]={batch_size}, got shape {tuple(t.shape)}.")
    return t


def extract(coefficient: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """``coefficient[t]``, shaped to broadcast against ``like`` and in its dtype and device
    (improved-diffusion's ``_extract_into_tensor``).

    coefficient: a [T] tensor of the schedule, e.g. ``schedule.sqrt_alphas_cumprod``.
    t:           0-based timesteps [B] (or an int), already checked (:meth:`NoiseSchedule.check_t`).
    like:        the tensor it multiplies, e.g. x_0 [B, C, H, W].
    Returns [B, 1, 1, 1] (one trailing 1 per dimension of ``like`` after the first).
    """
    t = torch.as_tensor(t).long()
    values = coefficient[t.to(coefficient.device)]
    values = values.reshape(values.shape + (1,) * (like.ndim - values.ndim))  # (B, 1, 1, 1)
    return values.to(device=like.device, dtype=like.dtype)
