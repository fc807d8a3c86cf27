"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023), notebook 11.

The straight path between data and noise, with t ∈ [0, 1] (t = 0 data, t = 1 noise, as DDPM's
t = 0 … T−1)::

    x_t = (1 − t)·x_0 + t·ε            the conditional OT / rectified-flow path
    v   = dx_t/dt = ε − x_0            what the network learns to predict (MSE)

The network is the same UNet as DDPM's; it sees the time as ``t · FLOW_TIME_SCALE`` so that the
sinusoidal embedding spans the same range as DDPM's integer steps 0 … 999.
"""
from __future__ import annotations

import contextlib
from typing import Literal

import torch

from .losses import simple_loss

__all__ = ["FLOW_TIME_SCALE", "TSampling", "T_SAMPLINGS", "interpolate", "velocity_target", "sample_t",
           "network_time", "flow_loss"]

FLOW_TIME_SCALE = 999.0                    # t ∈ [0, 1] → the embedding's input t·999, DDPM's 0 … 999
TSampling = Literal["uniform", "logit_normal"]
T_SAMPLINGS = ("uniform", "logit_normal")


def _as_column(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t [B] → [B, 1, 1, 1] in ``like``'s dtype, to broadcast against images."""
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


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
