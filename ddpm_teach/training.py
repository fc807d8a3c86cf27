"""Training, DDPM Algorithm 1 (notebook 04), as pure functions::

    1: repeat
    2:     x_0 ~ q(x_0)
    3:     t ~ Uniform({1, ..., T})                      (here 0-based: t in [0, T))
    4:     ε ~ N(0, I)
    5:     take a gradient descent step on ∇_θ ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²     (eq. 14)
    6: until converged

:func:`train_step` is lines 2-5 for one optimizer step, tagged line by line; it owns no device,
file, clock or process group.  What makes it work in practice is here too: EMA weights
(:func:`make_ema`), the learning-rate function (:func:`lr_at`), label dropout for
classifier-free guidance (:func:`drop_labels`), the hybrid loss for learned variance (an option
of :func:`diffusion_loss`), the order of the batches (:class:`BatchOrder`) and the flip
augmentation (:func:`random_hflip`).  The loop around it, line 1 and line 6, with checkpoints,
exact resume, the time budget, interrupts and DDP, is :class:`ddpm_teach.trainer.Trainer`.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Literal, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from .flow import T_SAMPLINGS, TSampling, flow_loss, sample_t
from .forward import q_sample
from .image_folder import CROPS, Crop
from .losses import hybrid_loss, simple_loss
from .schedules import NoiseSchedule, ScheduleKind
from .unet import UNetConfig

__all__ = ["TrainConfig", "PRESETS", "preset", "preset_configs", "NonFiniteLossError", "lr_at", "diffusion_loss",
           "drop_labels", "random_hflip", "train_step", "OBJECTIVES", "unwrap_model", "make_ema", "ema_decay_at", "BatchOrder", "MixedPrecision"]

MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
Objective = Literal["eps", "flow"]
OBJECTIVES = ("eps", "flow")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class TrainConfig:
    """Everything about a training run except the UNet's shape (that is :class:`UNetConfig`).
    The command line's ``train`` flags and the keys of a ``--config`` file are these fields."""

    dataset: str = "fashion_mnist"            # a name (fashion_mnist, mnist, cifar10) or an image folder
    data_root: str | None = None              # where datasets live (default: $DDPM_TEACH_DATA or ~/.cache)
    download: bool = False                    # let torchvision download a missing dataset
    image_size: int | None = None             # resize images to this (default: the dataset's own)
    crop: Crop = "center"                     # image folders to squares: center (the centred one) or resize (squash)
    hflip: bool = False                       # mirror each training image with p = 0.5 (see random_hflip)
    autoencoder: str | None = None            # latent diffusion (nb 10): train on this autoencoder's latents
    conditional: bool = False                 # class-conditional model, for classifier-free guidance
    label_dropout: float = 0.1                # P(label → null) while training a conditional model
    objective: Objective = "eps"              # eps: DDPM's ε-prediction; flow: flow matching's velocity (nb 11)
    t_sampling: TSampling = "uniform"         # flow only: uniform or logit_normal training times (SD3 §3.1)
    learn_sigma: bool = False                 # learned variance + hybrid loss (Improved DDPM)
    vlb_weight: float = 0.001                 # λ of the hybrid loss
    schedule: ScheduleKind = "linear"         # linear, cosine, quadratic, sigmoid
    T: int = 1000                             # diffusion steps
    steps: int = 10000                        # optimizer steps
    max_minutes: float | None = None          # wall-clock budget: stop (and save) when it is spent,
                                              # and end the cosine with it (see trainer.TimeBudget)
    batch_size: int = 128                     # per process and per micro-batch
    grad_accum: int = 1                       # micro-batches per optimizer step
    lr: float = 2e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1                 # cosine decays lr to lr·min_lr_ratio
    weight_decay: float = 0.0
    grad_clip: float = 1.0                    # max gradient norm (0 disables)
    ema_decay: float = 0.999
    ema_warmup: bool = True                   # decay_n = min(ema_decay, (1 + n)/(10 + n)) early on
    mixed_precision: MixedPrecision = "auto"
    seed: int = 0
    out_dir: str = "runs/ddpm"
    checkpoint_every: int = 1000
    log_every: int = 50
    device: str = "auto"
    threads: int | None = None                # torch CPU threads (default: torch's choice)
    compile: bool = False                     # torch.compile the model
    channels_last: bool = False
    probe_setup: bool = False                 # time mixed_precision / channels_last / compile at start-up and
                                              # train with the fastest (ddpm_teach.setup_probe); flags given win

    def __post_init__(self):
        """Check every number once, here, for the API and the command line alike."""
        for name, low, high, none_ok in _TRAIN_CONFIG_RANGES:
            value = getattr(self, name)
            if value is None and none_ok:
                continue
            bad = (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                   or value < low[0] or (low[1] and value == low[0]) or value > high[0] or (high[1] and value == high[0]))
            if bad:
                span = f"{'(' if low[1] else '['}{low[0]:g}, {high[0]:g}{')' if high[1] else ']'}"
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a number in {span}, got {value!r}.")
        if self.crop not in CROPS:
            raise ValueError(f"crop (--crop) must be one of {CROPS}, got {self.crop!r}.")
        if self.hflip and self.autoencoder:
            raise ValueError("hflip (--hflip) mirrors images, but with --autoencoder the model trains on latents, and "
                             "the latent of a mirrored image is not the mirrored latent. Drop one of the two.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective (--objective) must be one of {OBJECTIVES}, got {self.objective!r}.")
        if self.t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling (--t-sampling) must be one of {T_SAMPLINGS}, got {self.t_sampling!r}.")
        if self.objective == "eps" and self.t_sampling != "uniform":
            raise ValueError("t_sampling (--t-sampling) is a flow-matching option; add --objective flow, or drop it.")
        if self.objective == "flow" and self.learn_sigma:
            raise ValueError("learn_sigma (--learn-sigma) is for the ε objective; a flow model has no variance to learn. "
                             "Drop --learn-sigma or use --objective eps.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


INF = math.inf
# (field, (low, low excluded), (high, high excluded), None allowed): the ranges __post_init__ checks
_TRAIN_CONFIG_RANGES = (
    ("batch_size", (1, False), (INF, True), False), ("grad_accum", (1, False), (INF, True), False),
    ("steps", (1, False), (INF, True), False), ("T", (1, False), (INF, True), False),
    ("image_size", (1, False), (INF, True), True), ("threads", (1, False), (INF, True), True),
    ("max_minutes", (0, True), (INF, True), True), ("lr", (0, True), (INF, True), False),
    ("warmup_steps", (0, False), (INF, True), False), ("min_lr_ratio", (0, False), (1, False), False),
    ("weight_decay", (0, False), (INF, True), False), ("grad_clip", (0, False), (INF, True), False),
    ("label_dropout", (0, False), (1, False), False), ("vlb_weight", (0, False), (INF, True), False),
    ("ema_decay", (0, False), (1, True), False), ("checkpoint_every", (0, False), (INF, True), False),
    ("log_every", (0, False), (INF, True), False),
)

PRESETS = {
    "cpu-fast": "a 1.1M-parameter UNet trained for 15 minutes on a laptop-class CPU (benchmarks/fast_path.py)",
    "gpu": "the course UNet (base 64) with bf16 autocast, torch.compile and batch 256 on one GPU",
}


def preset(name: str) -> dict:
    """Flag values for ``python -m ddpm_teach train --preset NAME`` (flags given on the command
    line still win).  Keys are TrainConfig and UNetConfig field names.

    * ``cpu-fast``: the CPU fast path (README, "Performance").  A 1.1M-parameter UNet (base 32,
      one ResBlock per level, attention at 7×7, no dropout), batch 64, lr 1e-3, EMA 0.995, and a
      15-minute budget that the cosine schedule is fitted to.  How it computes is decided on the
      machine by ``probe_setup`` (:mod:`ddpm_teach.setup_probe`): fp32 or bf16 autocast (where the
      CPU has it natively: AMX / AVX-512-BF16), channels_last or not, torch.compile or not, each
      timed for a few steps at start-up, paid out of the budget.  torch.compile won on a Xeon with
      AMX and lost on an AMD EPYC without it, so no fixed choice fits both; give
      ``--compile`` / ``--no-compile`` (or the other two flags) to decide one yourself.
    * ``gpu``: the course's default UNet (base 64, 2 ResBlocks per level) at batch 256 with bf16
      (fp16 on GPUs without native bf16), torch.compile, fused AdamW and the data kept on the GPU
      (the last two are automatic on CUDA)."""
    from .devices import native_precision

    if name == "cpu-fast":
        return {"base_channels": 32, "channel_mults": (1, 2, 2), "num_res_blocks": 1, "attention_resolutions": (7,),
                "dropout": 0.0, "batch_size": 64, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.995,
                "mixed_precision": "bf16" if native_precision() == "bf16" else "no", "compile": False,
                "channels_last": False, "probe_setup": True, "max_minutes": 15.0, "steps": 100_000, "checkpoint_every": 500,
                "out_dir": "runs/cpu_fast"}
    if name == "gpu":
        return {"batch_size": 256, "lr": 2e-4, "mixed_precision": "auto", "compile": True, "steps": 20_000,
                "out_dir": "runs/gpu"}
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")


def preset_configs(name: str, **overrides) -> tuple[TrainConfig, UNetConfig]:
    """A preset (with ``overrides`` on top) as the ``(TrainConfig, UNetConfig)`` pair that
    ``Trainer`` takes, e.g. ``Trainer(*preset_configs("cpu-fast", max_minutes=5), data=data)``."""
    values = {**preset(name), **overrides}
    model_fields = {f.name for f in fields(UNetConfig)}
    return (TrainConfig(**{k: v for k, v in values.items() if k not in model_fields}),
            UNetConfig(**{k: v for k, v in values.items() if k in model_fields}))


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at optimizer step ``step``: linear warm-up, then cosine decay."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine


def diffusion_loss(model: torch.nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor,
                   noise: torch.Tensor, labels: torch.Tensor | None = None, *, learn_sigma: bool = False,
                   vlb_weight: float = 0.001, autocast: contextlib.AbstractContextManager | None = None):
    """The loss of Algorithm 1 line 5 for one batch: x_t = q_sample(x_0, t, ε), then
    ‖ε − ε_θ(x_t, t)‖² (or, with ``learn_sigma``, the hybrid loss).  x0 and noise are [B, C, H, W],
    t is [B].  Returns ``(loss, parts)``."""
    x_t = q_sample(schedule, x0, t, noise)                     # √ᾱ_t x_0 + √(1−ᾱ_t) ε   (eq. 4)
    with autocast or contextlib.nullcontext():
        output = model(x_t, t, labels)                         # ε_θ(x_t, t), [B, C or 2C, H, W]
    if learn_sigma:
        return hybrid_loss(schedule, output, noise=noise, x0=x0, x_t=x_t, t=t, vlb_weight=vlb_weight)
    loss = simple_loss(output, noise)                          # ‖ε − ε_θ‖²   (eq. 14)
    return loss, {"mse": loss.detach()}


def drop_labels(labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator) -> torch.Tensor:
    """Label dropout for classifier-free guidance: each label becomes the null label (index
    ``null_label`` = num_classes) with probability ``p``, so one network learns ε(x_t, t, c) and ε(x_t, t)."""
    drop = torch.rand(labels.shape[0], generator=generator, device=labels.device) < p     # [B]
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def random_hflip(x0: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Horizontal-flip augmentation (``--hflip``): each image of x0 [B, C, H, W] is mirrored
    left-right with probability ``p``, the coins drawn from ``generator`` (the trainer's, so that a
    resumed run flips the same images).  The model then learns q(x_0) and its mirror image, which
    is right for photos, faces and clothes, and wrong for digits and text.  Rotation augmentation is
    deliberately not offered: it leaks into the samples (rotated digits and faces come out)."""
    flip = torch.rand(x0.shape[0], generator=generator, device=x0.device) < p           # [B]
    return torch.where(flip[:, None, None, None], x0.flip(-1), x0)                       # (B, C, H, W)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside ``torch.compile`` and ``DistributedDataParallel`` wrappers."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


def _gradient_sync(model: torch.nn.Module, last: bool):
    """DDP all-reduces gradients only on the last micro-batch of a step (``no_sync`` before it)."""
    return contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()


def train_step(model: torch.nn.Module, schedule: NoiseSchedule, micro_batches: Sequence[tuple], optimizer,
               ema: AveragedModel, generator: torch.Generator, *, num_classes: int | None = None,
               label_dropout: float = 0.0, learn_sigma: bool = False, vlb_weight: float = 0.001,
               grad_clip: float = 0.0, amp_dtype: torch.dtype | None = None, scaler=None,
               objective: Objective = "eps", t_sampling: TSampling = "uniform") -> float:
    """One optimizer step of DDPM Algorithm 1 (lines 2-5) over ``micro_batches``, a list of
    ``(x0 [B, C, H, W], labels [B])``: their averaged loss gives the gradient of one batch of
    len·B (gradient accumulation).  Every random draw comes from ``generator``.  ``num_classes``
    (a conditional model) turns on label dropout with ``label_dropout``; ``learn_sigma`` the hybrid
    loss.  Returns the loss; raises :class:`NonFiniteLossError` before any weight changes."""
    scaler = scaler or torch.amp.GradScaler(enabled=False)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for k, (x0, labels) in enumerate(micro_batches):                                   # Alg. 1 line 2: x_0 ~ q(x_0)
        if objective == "flow":                                                       # flow: t ~ U(0, 1) or logit-normal
            t = sample_t(x0.shape[0], t_sampling, generator, x0.device)
        else:
            t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)  # Alg. 1 line 3: t ~ U
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)                    # Alg. 1 line 4: ε ~ N(0, I)
        labels = None if num_classes is None else drop_labels(labels, label_dropout, num_classes, generator)
        autocast = None if amp_dtype is None else torch.autocast(x0.device.type, dtype=amp_dtype)
        with _gradient_sync(model, last=k == len(micro_batches) - 1):
            if objective == "flow":                                                   # ‖(ε − x_0) − v_θ‖²
                loss, _ = flow_loss(model, x0, t, noise, labels, autocast=autocast)
            else:
                loss, _ = diffusion_loss(model, schedule, x0, t, noise, labels, learn_sigma=learn_sigma,  # Alg. 1 line 5: ‖ε − ε_θ‖²
                                         vlb_weight=vlb_weight, autocast=autocast)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"the loss became {loss.item()}")
            scaler.scale(loss / len(micro_batches)).backward()                           # Alg. 1 line 5: ∇_θ
        total += loss.item() / len(micro_batches)
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)                                                              # Alg. 1 line 5: the descent step
    scaler.update()
    ema.update_parameters(unwrap_model(model))
    return total


def ema_decay_at(num_averaged: int, decay: float, warmup: bool = True) -> float:
    """EMA decay for the update after ``num_averaged`` earlier ones: min(decay, (1 + n)/(10 + n))
    with warm-up (as TensorFlow's ExponentialMovingAverage with num_updates), so that the
    average does not drag the initial weights (random, with the last layers at zero) along for thousands of steps."""
    return min(decay, (1 + num_averaged) / (10 + num_averaged)) if warmup else decay


def make_ema(model: torch.nn.Module, decay: float, warmup: bool = True) -> AveragedModel:
    """An EMA copy of ``model`` with torch's ``AveragedModel``: θ_ema ← d·θ_ema + (1 − d)·θ."""

    @torch.no_grad()
    def ema_update(ema_params, current_params, num_averaged):
        d = ema_decay_at(int(num_averaged), decay, warmup)
        torch._foreach_lerp_(ema_params, current_params, 1 - d)

    return AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)


class BatchOrder:
    """Which examples form micro-batch ``k``: a fresh permutation each epoch, seeded by
    (seed, epoch), so the batch at any step is known without replaying the ones before."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world_size
        per_round = batch_size * world_size
        if n < per_round:
            raise ValueError(f"the dataset has {n} images, fewer than batch_size×processes={per_round}; lower --batch-size.")
        self.per_epoch = n // per_round * per_round
        self._cache: tuple[int, torch.Tensor] | None = None

    def _perm(self, epoch: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cache = (epoch, torch.randperm(self.n, generator=g))
        return self._cache[1]

    def indices(self, k: int) -> torch.Tensor:
        start = k * self.batch_size * self.world + self.rank * self.batch_size
        epoch, offset = divmod(start, self.per_epoch)
        return self._perm(epoch)[offset:offset + self.batch_size]
