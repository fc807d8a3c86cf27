"""Training, DDPM Algorithm 1 (notebook 04)::

    repeat
        x_0 ~ q(x_0);  t ~ Uniform{0..T−1};  ε ~ N(0, I)
        take a gradient step on ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²        (eq. 14)
    until converged

and what makes it work in practice: EMA weights (torch's ``AveragedModel``), mixed precision
(bf16 or fp16 with a grad scaler on CUDA), gradient accumulation, linear LR warm-up then cosine
decay, gradient clipping, label dropout for classifier-free guidance, the hybrid loss for
learned variance, atomic checkpoints with an exact resume, and a clear stop on a non-finite
loss.  ``torchrun --nproc_per_node=N -m ddpm_teach train ...`` trains with DDP.

Exact resume: every random draw of training comes from a generator whose state is saved
(t, ε, label dropout), dropout from torch's global RNG (saved too), and the batch at step k
is a pure function of (seed, k), so a resumed run repeats an uninterrupted one step for step.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, save_checkpoint
from .devices import pick_device
from .forward import q_sample
from .losses import hybrid_loss, simple_loss
from .schedules import NoiseSchedule, ScheduleKind
from .unet import UNet, UNetConfig

__all__ = ["TrainConfig", "Trainer", "PRESETS", "preset", "preset_configs", "NonFiniteLossError", "diffusion_loss", "lr_at", "BatchOrder", "make_ema", "ema_decay_at"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class TrainConfig:
    """Everything about a training run except the UNet's shape (that is :class:`UNetConfig`)."""

    dataset: str = "fashion_mnist"            # a name (fashion_mnist, mnist, cifar10) or an image folder
    data_root: str | None = None              # where datasets live (default: $DDPM_TEACH_DATA or ~/.cache)
    download: bool = False                    # let torchvision download a missing dataset
    image_size: int | None = None             # resize images to this (default: the dataset's own)
    conditional: bool = False                 # class-conditional model, for classifier-free guidance
    label_dropout: float = 0.1                # P(label → null) while training a conditional model
    learn_sigma: bool = False                 # learned variance + hybrid loss (Improved DDPM)
    vlb_weight: float = 0.001                 # λ of the hybrid loss
    schedule: ScheduleKind = "linear"         # linear, cosine, quadratic, sigmoid
    T: int = 1000                             # diffusion steps
    steps: int = 10000                        # optimizer steps
    max_minutes: float | None = None          # wall-clock budget: stop (and save) when it is spent,
                                              # and end the cosine with it (see Trainer.train)
    batch_size: int = 128                     # per process and per micro-batch
    grad_accum: int = 1                       # micro-batches per optimizer step
    lr: float = 2e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1                 # cosine decays lr to lr·min_lr_ratio
    weight_decay: float = 0.0
    grad_clip: float = 1.0                    # max gradient norm (0 disables)
    ema_decay: float = 0.999
    ema_warmup: bool = True                   # decay_n = min(ema_decay, (1 + n)/(10 + n)) early on
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    seed: int = 0
    out_dir: str = "runs/ddpm"
    checkpoint_every: int = 1000
    log_every: int = 50
    device: str = "auto"
    threads: int | None = None                # torch CPU threads (default: torch's choice)
    compile: bool = False                     # torch.compile the model
    channels_last: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _now() -> float:
    """The clock of training's time budget (a function of its own, so that tests can replace it)."""
    return time.perf_counter()


PRESETS = {
    "cpu-fast": "a 1.1M-parameter UNet trained for 15 minutes on a laptop-class CPU (benchmarks/fast_path.py)",
    "gpu": "the course UNet (base 64) with bf16 autocast, torch.compile and batch 256 on one GPU",
}


def preset(name: str) -> dict:
    """Flag values for ``python -m ddpm_teach train --preset NAME`` (flags given on the command
    line still win).  Keys are TrainConfig and UNetConfig field names.

    * ``cpu-fast``: the CPU fast path (README, "Performance").  A 1.1M-parameter UNet (base 32,
      one ResBlock per level, attention at 7×7, no dropout), batch 64, lr 1e-3, EMA 0.995, bf16
      autocast where the CPU has it natively (AMX / AVX-512-BF16; fp32 elsewhere), torch.compile,
      and a 15-minute budget that the cosine schedule is fitted to.  channels_last is left off: it
      measured slower with bf16 on the CPUs we tried (benchmarks/train_throughput.py prints both).
    * ``gpu``: the course's default UNet (base 64, 2 ResBlocks per level) at batch 256 with bf16
      (fp16 on GPUs without native bf16), torch.compile, fused AdamW and the data kept on the GPU
      (the last two are automatic on CUDA)."""
    from .devices import cpu_has_native_bf16

    if name == "cpu-fast":
        return {"base_channels": 32, "channel_mults": (1, 2, 2), "num_res_blocks": 1, "attention_resolutions": (7,),
                "dropout": 0.0, "batch_size": 64, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.995,
                "mixed_precision": "bf16" if cpu_has_native_bf16() else "no", "compile": True,
                "channels_last": False, "max_minutes": 15.0, "steps": 100_000, "checkpoint_every": 500,
                "out_dir": "runs/cpu_fast"}
    if name == "gpu":
        return {"batch_size": 256, "lr": 2e-4, "mixed_precision": "auto", "compile": True, "steps": 20_000,
                "out_dir": "runs/gpu"}
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")


def preset_configs(name: str, **overrides) -> tuple[TrainConfig, UNetConfig]:
    """A preset (with ``overrides`` on top) as the ``(TrainConfig, UNetConfig)`` pair that
    ``Trainer`` takes, e.g. ``Trainer(*preset_configs("cpu-fast", max_minutes=5))``."""
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
    """The loss of Algorithm 1 for one batch: x_t = q_sample(x_0, t, ε), then ‖ε − ε_θ(x_t, t)‖²
    (or the hybrid loss).  Returns ``(loss, parts)``."""
    x_t = q_sample(schedule, x0, t, noise)                      # eq. 4
    with autocast or contextlib.nullcontext():
        output = model(x_t, t, labels)
    if learn_sigma:
        return hybrid_loss(schedule, output, noise, x0, x_t, t, vlb_weight)
    loss = simple_loss(output, noise)                          # eq. 14
    return loss, {"mse": loss.detach()}


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


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment, or (0, 0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Trainer:
    """Owns the model, its EMA, the optimizer and the loop.  In a notebook::

        trainer = Trainer(TrainConfig(steps=500), UNetConfig(base_channels=32), data=data)
        history = trainer.train()
        trainer.save()                      # → {out_dir}/checkpoint.pt
        trainer = Trainer.resume("runs/ddpm/checkpoint.pt", steps=1000)
    """

    def __init__(self, config: TrainConfig, model_config: UNetConfig | None = None, data=None):
        self.config = config
        self.rank, self.local_rank, self.world_size = _distributed()
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and config.device in ("auto", "cuda") else "gloo"
            dist.init_process_group(backend)
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.grad_accum < 1 or config.batch_size < 1 or config.steps < 0:
            raise ValueError("batch_size and grad_accum must be >= 1 and steps >= 0.")

        if data is None:
            from .data import load_dataset
            data = load_dataset(config.dataset, config.data_root, train=True, download=config.download,
                                image_size=config.image_size)
        if self.device.type == "cuda":
            data = data.to(self.device)  # no host-to-device copy per batch
        self.data = data
        model_config = model_config or UNetConfig()
        self.model_config = UNetConfig(**{
            **model_config.to_dict(),
            "image_size": data.image_size, "in_channels": data.channels,
            "num_classes": len(data.classes) if config.conditional else None,
            "learn_sigma": config.learn_sigma,
        })
        self.schedule = NoiseSchedule.from_name(config.schedule, config.T)

        torch.manual_seed(config.seed)  # the initial weights: the same on every rank
        self.model = UNet(self.model_config).to(self.device)
        torch.manual_seed(config.seed + 7919 * self.rank)  # dropout masks: different on every rank
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           **({"fused": True} if fused else {}))
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_at(s, config))
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * self.rank)
        self.order = BatchOrder(len(data), config.batch_size, config.seed, self.rank, self.world_size)
        self.step = 0
        self.loss_history: list[float] = []

        self.train_model = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

    # -- helpers --------------------------------------------------------------------------
    def _amp_dtype(self) -> torch.dtype | None:
        choice = self.config.mixed_precision
        if choice == "no":
            return None
        if choice == "auto":
            if self.device.type != "cuda":
                return None
            # native bf16 only (Ampere and later); a T4 would emulate it slowly, so it gets fp16 + GradScaler
            return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        if choice == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 mixed precision needs CUDA; on CPU use --mixed-precision bf16 or no.")
        return torch.bfloat16 if choice == "bf16" else torch.float16

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.config.out_dir) / "checkpoint.pt"

    # -- one optimizer step ---------------------------------------------------------------
    def train_step(self) -> float:
        """Algorithm 1 on ``grad_accum`` micro-batches, then one optimizer step.  Returns the loss."""
        cfg, model = self.config, self.train_model
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.grad_accum):
            x0, labels = self.data.batch(self.order.indices(self.step * cfg.grad_accum + micro), self.device)
            B = x0.shape[0]
            if self.config.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            t = torch.randint(0, self.schedule.T, (B,), generator=self.generator, device=self.device)
            noise = torch.randn(x0.shape, generator=self.generator, device=self.device)
            if cfg.conditional:  # label dropout: train the unconditional model too (null label)
                drop = torch.rand(B, generator=self.generator, device=self.device) < cfg.label_dropout
                labels = torch.where(drop, torch.full_like(labels, self.model_config.num_classes), labels)
            else:
                labels = None
            sync = (contextlib.nullcontext() if micro == cfg.grad_accum - 1 or self.world_size == 1
                    else model.no_sync())
            with sync:
                loss, _ = diffusion_loss(model, self.schedule, x0, t, noise, labels, learn_sigma=cfg.learn_sigma,
                                         vlb_weight=cfg.vlb_weight, autocast=self._autocast())
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"the loss became {loss.item()} at step {self.step}. Nothing was saved over the last good "
                        f"checkpoint ({self.checkpoint_path}). Try a lower --lr, a smaller --grad-clip, or "
                        "--mixed-precision no, then --resume."
                    )
                self.scaler.scale(loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        self.loss_history.append(total)
        return total

    # a --max-minutes run times these steps (after torch.compile's first ones) to fit the cosine
    CALIBRATION_STEPS = (10, 40)

    def train(self, steps: int | None = None, *, progress: bool = True,
              callback: Callable[["Trainer", float], None] | None = None) -> list[float]:
        """Train until ``self.step == steps`` (default ``config.steps``), saving every
        ``checkpoint_every`` steps and at the end.  Returns the loss history.

        With ``config.max_minutes`` the run also stops when that much wall-clock time has passed
        since this call, and ``steps`` becomes an upper bound: after timing steps 10-40 of the
        call it sets ``config.steps`` to the step the budget will end at, so that the cosine decay
        finishes with the budget rather than being cut off half-way.  The shortened ``steps`` is
        saved with the checkpoint; a resumed run gets a fresh budget."""
        end = self.config.steps if steps is None else steps
        budget = None if self.config.max_minutes is None else 60.0 * self.config.max_minutes
        bar = tqdm(total=end, initial=self.step, desc="train", disable=not (progress and self.is_main),
                   dynamic_ncols=True)
        started, first = _now(), self.step
        calibration_start = None
        try:
            while self.step < end:
                if budget is not None:
                    elapsed = _now() - started
                    if self._all_ranks_max(float(elapsed >= budget)):  # every rank stops at the same step
                        if self.is_main:
                            print(f"\nthe {self.config.max_minutes:g}-minute budget is spent: stopping at step {self.step}")
                        break
                    done = self.step - first
                    if done == self.CALIBRATION_STEPS[0]:
                        calibration_start = _now()
                    elif done == self.CALIBRATION_STEPS[1] and calibration_start is not None:
                        rate = (done - self.CALIBRATION_STEPS[0]) / (_now() - calibration_start)
                        planned = int(-self._all_ranks_max(-float(self.step + int((budget - elapsed) * rate))))
                        if planned < end:
                            end = planned
                            if steps is None or self.config.steps > planned:
                                self.config.steps = planned  # the cosine (lr_at) now ends with the budget
                            bar.total = end
                            bar.refresh()
                loss = self.train_step()
                bar.update(1)
                if self.step % max(1, self.config.log_every) == 0 or self.step == end:
                    recent = self.loss_history[-self.config.log_every:]
                    rate = (self.step - first) * self.config.batch_size * self.config.grad_accum * self.world_size / (
                        _now() - started)
                    bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{self.lr_scheduler.get_last_lr()[0]:.2e}",
                                    img_s=f"{rate:.0f}")
                if callback is not None:
                    callback(self, loss)
                if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM from the command line) keeps the work done so far; with several
            # processes the others may already be gone, so only a single process saves here
            if self.world_size == 1:
                print(f"\ninterrupted at step {self.step}: saving {self.checkpoint_path}; continue with --resume")
                self.save()
            raise
        finally:
            bar.close()
        self.save()
        return self.loss_history

    def _all_ranks_max(self, value: float) -> float:
        """The largest ``value`` over all processes (just ``value`` without DDP), so that ranks agree."""
        if self.world_size == 1:
            return value
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.item()

    # -- checkpoints ----------------------------------------------------------------------
    def _rng_state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def _rng_states_of_all_ranks(self) -> list[dict]:
        """Every process's RNG states (a collective: all ranks must call it), rank order."""
        rng = self._rng_state()
        if self.world_size == 1:
            return [rng]
        states: list = [None] * self.world_size
        dist.all_gather_object(states, {k: v.cpu() for k, v in rng.items()})
        return states

    def state_dict(self, rng_per_rank: list[dict] | None = None) -> dict:
        rng_per_rank = rng_per_rank or [self._rng_state()]
        return {
            "kind": "diffusion",
            "model_config": self.model_config.to_dict(),
            "schedule": self.schedule.to_config(),
            "train_config": self.config.to_dict(),
            "dataset": {"name": getattr(self.data, "name", str(self.config.dataset)), "classes": list(self.data.classes)},
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict(),
            "ema_n_averaged": self.ema.n_averaged.cpu(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_per_rank[0],
            "rng_per_rank": rng_per_rank,
            "step": self.step,
            "loss_history": list(self.loss_history),
        }

    def save(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the full training state atomically.  Every process must call it (their RNG
        states are gathered so that each rank resumes its own stream); only rank 0 writes."""
        rng_per_rank = self._rng_states_of_all_ranks()
        if not self.is_main:
            return None
        return save_checkpoint(self.state_dict(rng_per_rank), path or self.checkpoint_path)

    def load_state_dict(self, ckpt: dict, source: str = "checkpoint") -> None:
        load_state_dict_checked(self.model, ckpt["model"], source)
        load_state_dict_checked(self.ema.module, ckpt["ema"], source + " (EMA)")
        self.ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if len(per_rank) != self.world_size:
            raise CheckpointError(f"{source} was saved by {len(per_rank)} processes but is resumed by {self.world_size}; "
                                  "resume with the same --nproc_per_node for an exact continuation.")
        rng = per_rank[self.rank]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = int(ckpt["step"])
        self.loss_history = list(ckpt["loss_history"])

    @classmethod
    def resume(cls, path: str | os.PathLike, data=None, **overrides) -> "Trainer":
        """Rebuild a run from its checkpoint and continue exactly where it stopped.
        ``overrides`` may change e.g. ``steps`` (to train longer) or ``device``."""
        ckpt = load_checkpoint(path, kind="diffusion")
        if "optimizer" not in ckpt or ckpt.get("ema") is None:
            raise CheckpointError(f"{str(path)!r} is an inference-only checkpoint (no optimizer state); "
                                  "it can be sampled from but not resumed.")
        config = TrainConfig.from_dict({**ckpt["train_config"], **overrides})
        trainer = cls(config, UNetConfig.from_dict(ckpt["model_config"]), data=data)
        trainer.load_state_dict(ckpt, str(path))
        return trainer
