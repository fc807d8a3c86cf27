"""The KL-regularised autoencoder of latent diffusion (notebook 10), after Rombach et al. 2022
("High-Resolution Image Synthesis with Latent Diffusion Models"), §3 and Appendix G.

    x [B, C, H, W] ─ Encoder ─→ (mean, log σ²) [B, 2c, H/f, W/f] ─ z ~ N(mean, σ²) ─ Decoder ─→ x̂ [B, C, H, W]

The encoder gives a diagonal Gaussian q(z given x) per image (:class:`DiagonalGaussian`); the
loss is a reconstruction term plus a *small* KL(q(z given x) ‖ N(0, I)), which only keeps the
latent space from drifting to arbitrary scales (LDM uses a weight of 1e-6: "perceptual
compression", not a VAE that is meant to be sampled from).  The downsampling factor
f = 2^(levels − 1); with ``channel_mults=(1, 2, 2)`` a 28×28 image becomes a 7×7×c latent.

Diffusion then runs on ``scale_factor · mean`` (:func:`latent_scale_factor`: the reciprocal
of the latents' standard deviation over the training set, so that they have unit variance
like the N(0, I) the forward process ends in; Stable Diffusion's 0.18215 is this number for
its VAE).  :mod:`ddpm_teach.latent` holds that part: encoding a dataset once, training, and
decoding samples.

Training (:func:`train_autoencoder`) is a plain AdamW loop with a time budget, a progress bar
and an atomic checkpoint of kind ``"autoencoder"``; ``python -m ddpm_teach train-autoencoder``
runs it.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, save_checkpoint
from .unet import AttentionBlock, Upsample

__all__ = ["AutoencoderConfig", "Autoencoder", "DiagonalGaussian", "kl_divergence", "autoencoder_loss",
           "ClassifierPerceptualLoss", "latent_scale_factor", "AutoencoderTrainConfig", "train_autoencoder",
           "load_autoencoder", "autoencoder_payload", "autoencoder_from_payload", "state_dict_sha256",
           "encode_mean", "reconstruct", "reconstruction_scores"]

ReconLoss = Literal["l1", "l2"]


@dataclass
class AutoencoderConfig:
    """The autoencoder's shape.  ``latent_channels`` is c; the downsampling factor is
    f = 2^(len(channel_mults) − 1), so ``image_size`` must be divisible by f."""

    image_size: int = 28
    in_channels: int = 1
    latent_channels: int = 4
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    mid_attention: bool = True
    norm_groups: int = 8

    def __post_init__(self):
        for name in ("image_size", "in_channels", "latent_channels", "base_channels", "num_res_blocks", "norm_groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a positive integer, got {value!r}.")
        if not self.channel_mults or any(int(m) < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults (--channel-mults) must be positive integers, got {list(self.channel_mults)}.")
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        if self.image_size % self.factor:
            raise ValueError(f"image_size={self.image_size} is not divisible by the downsampling factor "
                             f"f={self.factor} of {len(self.channel_mults)} levels; resize the images or use fewer "
                             "channel_mults.")
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.norm_groups:
                raise ValueError(f"base_channels*mult={self.base_channels * mult} must be divisible by "
                                 f"norm_groups={self.norm_groups}.")

    @property
    def factor(self) -> int:
        """f: how much each side shrinks, 2 per level after the first."""
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.factor

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, H/f, W/f), e.g. (4, 7, 7) for 28×28 images."""
        return (self.latent_channels, self.latent_size, self.latent_size)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "AutoencoderConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown autoencoder config keys {sorted(unknown)}; this checkpoint was made by another version.")
        return cls(**data)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag σ²) ‖ N(0, I)) per item, in nats, summed over every dimension but the first:

        KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)         (Kingma & Welling 2014, App. B)

    mean, logvar: [B, ...]; returns [B]."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


class DiagonalGaussian:
    """q(z given x) = N(mean, diag exp(logvar)), what the encoder outputs.  ``logvar`` is clamped
    to [-30, 20] as in LDM, so that exp() never overflows early in training."""

    def __init__(self, moments: torch.Tensor):
        mean, logvar = moments.chunk(2, dim=1)               # each (B, c, h, w)
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + σ·ε, ε ~ N(0, I) (the reparameterisation trick)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I) per image [B] (:func:`kl_divergence`)."""
        return kl_divergence(self.mean, self.logvar)


class _ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, plus a skip: the UNet's ResBlock without a time input."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


def _mid(ch: int, cfg: AutoencoderConfig) -> nn.Sequential:
    attention = AttentionBlock(ch, 4 if ch % 4 == 0 else 1, cfg.norm_groups) if cfg.mid_attention else nn.Identity()
    return nn.Sequential(_ResBlock(ch, ch, cfg.norm_groups), attention, _ResBlock(ch, ch, cfg.norm_groups))


class Encoder(nn.Module):
    """x [B, C, H, W] → moments [B, 2c, H/f, W/f] (mean and log σ² of q(z given x))."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        base, groups = cfg.base_channels, cfg.norm_groups
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, base, 3, padding=1)]
        ch = base
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                layers.append(_ResBlock(ch, base * mult, groups))
                ch = base * mult
            if level < len(cfg.channel_mults) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))      # (B, ch, H/2, W/2)
        layers += [_mid(ch, cfg), nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(ch, 2 * cfg.latent_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """z [B, c, H/f, W/f] → x̂ [B, C, H, W] (no squashing: values near [-1, 1], clamped only when saved)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        base, groups = cfg.base_channels, cfg.norm_groups
        ch = base * cfg.channel_mults[-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch, 3, padding=1), _mid(ch, cfg)]
        for level in reversed(range(len(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(_ResBlock(ch, base * cfg.channel_mults[level], groups))
                ch = base * cfg.channel_mults[level]
            if level > 0:
                layers.append(Upsample(ch))                          # (B, ch, 2H, 2W), the UNet's
        layers += [nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class Autoencoder(nn.Module):
    """``encode(x)`` → :class:`DiagonalGaussian`; ``decode(z)`` → x̂; ``model(x)`` → (x̂, posterior),
    decoding a sample of the posterior (or its mean with ``sample_posterior=False``)."""

    def __init__(self, config: AutoencoderConfig | None = None, **overrides):
        super().__init__()
        config = config or AutoencoderConfig(**overrides)
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)

    def _check(self, x: torch.Tensor) -> None:
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"the autoencoder takes images of shape [B, {expected[0]}, {expected[1]}, {expected[2]}], "
                             f"got {tuple(x.shape)}. Build it with a matching image_size/in_channels.")

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        self._check(x)
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 4 or tuple(z.shape[1:]) != self.config.latent_shape:
            raise ValueError(f"the decoder takes latents of shape [B, {', '.join(map(str, self.config.latent_shape))}], "
                             f"got {tuple(z.shape)}.")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, sample_posterior: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ClassifierPerceptualLoss(nn.Module):
    """A perceptual distance from the shipped Fashion-MNIST classifier, in the manner of LPIPS
    (Zhang et al. 2018): the activations after each of its three conv stages, unit-normalised
    over channels, squared differences averaged over positions and summed over stages.  Returns
    [B].  The classifier is frozen and kept in eval mode (its BatchNorm uses running statistics)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        body = classifier.body
        self.stages = [body[0], body[1:3], body[3:5]]          # 28×28, 14×14, 7×7

    def train(self, mode: bool = True):
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0])
        a, b = x, x_hat
        for stage in self.stages:
            a, b = stage(a), stage(b)
            na = a / (a.norm(dim=1, keepdim=True) + 1e-8)
            nb = b / (b.norm(dim=1, keepdim=True) + 1e-8)
            total = total + (na - nb).pow(2).sum(1).mean((1, 2))            # [B]
        return total


def autoencoder_loss(model: Autoencoder, x: torch.Tensor, *, kl_weight: float = 1e-6, recon: ReconLoss = "l1",
                     perceptual: ClassifierPerceptualLoss | None = None, perceptual_weight: float = 1.0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """LDM's autoencoder loss without the GAN term, per image (summed over pixels, averaged over
    the batch, as in LDM's ``LPIPSWithDiscriminator``)::

        L = Σ_pixels (|x − x̂| + w_p · d_perceptual(x, x̂)) + w_KL · KL(q(z given x) ‖ N(0, I))

    (|·| becomes (·)² with ``recon="l2"``).  Returns ``(loss, parts)`` with the parts per pixel
    (``recon``, ``perceptual``) and per image (``kl``), detached."""
    x_hat, posterior = model(x, generator=generator)
    pixels = x[0].numel()
    error = (x - x_hat).abs() if recon == "l1" else (x - x_hat).pow(2)
    recon_per_pixel = error.flatten(1).mean(1)                                  # [B]
    per_pixel = recon_per_pixel
    parts = {"recon": recon_per_pixel.mean().detach()}
    if perceptual is not None and perceptual_weight > 0:
        distance = perceptual(x, x_hat)                                         # [B]
        per_pixel = per_pixel + perceptual_weight * distance
        parts["perceptual"] = distance.mean().detach()
    kl = posterior.kl()                                                         # [B], nats per image
    parts["kl"] = kl.mean().detach()
    loss = (pixels * per_pixel + kl_weight * kl).mean()
    return loss, parts


@torch.no_grad()
def latent_scale_factor(latents: torch.Tensor) -> float:
    """1 / std of ``latents`` (all elements, in float64): multiplying by it gives unit-variance
    latents, the scale the diffusion model's N(0, I) prior expects (Rombach et al. §4.3.2;
    Stable Diffusion's 0.18215 is this number for its VAE)."""
    std = latents.double().std().item()
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"the latents have standard deviation {std}; cannot scale them.")
    return 1.0 / std


@dataclass
class AutoencoderTrainConfig:
    """A training run of the autoencoder: ``python -m ddpm_teach train-autoencoder`` flags."""

    dataset: str = "fashion_mnist"
    data_root: str | None = None
    latent_channels: int = 4
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    recon: ReconLoss = "l1"
    kl_weight: float = 1e-6
    perceptual_weight: float = 0.0           # > 0 adds the shipped classifier's perceptual distance
    classifier: str | None = None            # for the perceptual term (default: the shipped one)
    lr: float = 1e-3
    batch_size: int = 64
    steps: int = 20_000
    max_minutes: float | None = None
    seed: int = 0
    mixed_precision: Literal["no", "bf16"] = "bf16"   # bf16 autocast (2x faster with AMX or AVX-512-BF16)
    device: str = "auto"
    out: str = "checkpoints/fashion_mnist_autoencoder.pt"

    def __post_init__(self):
        for name in ("latent_channels", "base_channels", "num_res_blocks", "batch_size", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a positive integer, got {value!r}.")
        for name in ("kl_weight", "perceptual_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a number >= 0, got {getattr(self, name)!r}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr (--lr) must be a number > 0, got {self.lr!r}.")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise ValueError(f"max_minutes (--max-minutes) must be a number > 0, got {self.max_minutes!r}.")
        if self.recon not in ("l1", "l2"):
            raise ValueError(f"recon (--recon) must be 'l1' or 'l2', got {self.recon!r}.")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        return data


def state_dict_sha256(state_dict: dict) -> str:
    """A SHA-256 over a state dict's names and tensor bytes: what a latent checkpoint records of
    its autoencoder, so that a swapped or altered autoencoder is noticed."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def autoencoder_payload(model: Autoencoder, scale_factor: float, **extra) -> dict:
    """What an autoencoder checkpoint holds (and what a latent diffusion checkpoint embeds)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"kind": "autoencoder", "model_config": model.config.to_dict(), "model": state,
            "scale_factor": float(scale_factor), "sha256": state_dict_sha256(state), **extra}


def autoencoder_from_payload(payload: dict, source: str = "checkpoint") -> tuple[Autoencoder, float]:
    """``(autoencoder in eval mode, scale_factor)`` from a payload, its weights checked against
    the SHA-256 recorded with them."""
    try:
        config = AutoencoderConfig.from_dict(payload["model_config"])
        state, scale = payload["model"], float(payload["scale_factor"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: the autoencoder entry is unusable ({err}). Re-export it with "
                              "`python -m ddpm_teach train-autoencoder`.") from None
    recorded = payload.get("sha256")
    if recorded is not None and recorded != state_dict_sha256(state):
        raise CheckpointError(f"{source}: the autoencoder weights do not match the SHA-256 recorded with them; "
                              "the file was altered or mixed from two runs. Use the autoencoder it was trained with.")
    model = Autoencoder(config)
    load_state_dict_checked(model, state, source)
    return model.eval(), scale


def load_autoencoder(path: str | Path = "checkpoints/fashion_mnist_autoencoder.pt", *,
                     device: torch.device | str = "cpu") -> tuple[Autoencoder, float, dict]:
    """``(autoencoder, scale_factor, checkpoint)`` from an autoencoder checkpoint (weights_only)."""
    ckpt = load_checkpoint(path, kind="autoencoder")
    model, scale = autoencoder_from_payload(ckpt, str(path))
    return model.to(device), scale, ckpt


@torch.no_grad()
def encode_mean(model: Autoencoder, images: torch.Tensor, batch_size: int = 1000,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """The posterior means [N, c, h, w] (float32, CPU) of ``images`` [N, C, H, W] in [-1, 1]."""
    model.eval()
    out = [model.encode(images[i:i + batch_size].to(device)).mean.float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor, batch_size: int = 1000,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """decode(mean of q(z given x)) for ``images`` [N, C, H, W] in [-1, 1], clamped to [-1, 1]."""
    model.eval()
    out = [model.decode(model.encode(images[i:i + batch_size].to(device)).mean).clamp(-1, 1).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def reconstruction_scores(model: Autoencoder, evaluator, test_images: torch.Tensor, n: int = 1000,
                          seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """How well the autoencoder reconstructs ``n`` test images (float in [-1, 1]): per-pixel MSE
    and MAE, classifier-FID of the reconstructions against the test set with the real-vs-real
    floor at the same n, and the FID of the *same* n test images unreconstructed (what a perfect
    autoencoder would score; it is below the floor because those images are in the test set)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test_images), generator=g)[:n]
    x = test_images[idx]
    x_hat = reconstruct(model, x, device=device)
    return {"n": n, "mse": (x - x_hat).pow(2).mean().item(), "mae": (x - x_hat).abs().mean().item(),
            "fid": evaluator.fid(x_hat), "fid_originals": evaluator.fid(x), "fid_floor": evaluator.fid_floor(n)}


def _perceptual_for(config: AutoencoderTrainConfig, device) -> ClassifierPerceptualLoss | None:
    if config.perceptual_weight <= 0:
        return None
    from .evaluation import DEFAULT_CLASSIFIER, Classifier, ClassifierConfig

    path = config.classifier or DEFAULT_CLASSIFIER
    ckpt = load_checkpoint(path, kind="classifier")
    classifier = Classifier(ClassifierConfig(**ckpt["model_config"]))
    load_state_dict_checked(classifier, ckpt["model"], str(path))
    return ClassifierPerceptualLoss(classifier.to(device))


def _lr_factor(step: int, steps: int, spent: float, warmup: int = 100, floor: float = 0.1) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from 1 to ``floor`` over the run, whose
    progress is the larger of step/steps and the share ``spent`` of the time budget (so that
    a ``--max-minutes`` run ends its cosine with its budget)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, steps - warmup), spent))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train_autoencoder(config: AutoencoderTrainConfig, train_data=None, *, progress: bool = True,
                      save: bool = True) -> tuple[Autoencoder, float, dict]:
    """Train the autoencoder on ``train_data`` (an :class:`~ddpm_teach.data.ImageData`; default
    the config's dataset), then compute the latent scale factor over the training set.  Stops
    at ``steps`` or when ``max_minutes`` is spent; the learning rate warms up, then follows a
    cosine to 0.1·lr that ends with whichever comes first (so a timed run is not bit-for-bit
    repeatable: its schedule depends on the clock).  With ``save`` the checkpoint is written
    atomically to ``config.out``.  Returns ``(model, scale_factor, payload)``."""
    from .data import load_dataset, to_model_range
    from .devices import pick_device
    from .files import check_output_file
    from .training import BatchOrder

    if save:
        check_output_file(config.out, "--out")
    device = pick_device(config.device)
    data = train_data if train_data is not None else load_dataset(config.dataset, config.data_root, train=True)
    model_config = AutoencoderConfig(image_size=data.image_size, in_channels=data.channels,
                                     latent_channels=config.latent_channels, base_channels=config.base_channels,
                                     channel_mults=config.channel_mults, num_res_blocks=config.num_res_blocks)
    torch.manual_seed(config.seed)
    model = Autoencoder(model_config).to(device)
    perceptual = _perceptual_for(config, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    order = BatchOrder(len(data), config.batch_size, config.seed)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if config.mixed_precision == "bf16"
                else contextlib.nullcontext())
    history: list[dict] = []
    started = time.perf_counter()
    bar = tqdm(range(config.steps), desc="autoencoder", disable=not progress, dynamic_ncols=True)
    step = 0
    for step in bar:
        if config.max_minutes is not None and time.perf_counter() - started >= 60 * config.max_minutes:
            break
        spent = (time.perf_counter() - started) / (60 * config.max_minutes) if config.max_minutes else 0.0
        for group in optimizer.param_groups:         # warm-up, then a cosine to 0.1·lr over steps or minutes
            group["lr"] = config.lr * _lr_factor(step, config.steps, spent)
        x, _ = data.batch(order.indices(step), device)
        model.train()
        with autocast:
            loss, parts = autoencoder_loss(model, x, kl_weight=config.kl_weight, recon=config.recon,
                                           perceptual=perceptual, perceptual_weight=config.perceptual_weight,
                                           generator=generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the autoencoder loss became {loss.item()} at step {step}; try a lower --lr.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append({k: float(v) for k, v in parts.items()})
        if step % 50 == 0:
            bar.set_postfix(recon=f"{parts['recon'].item():.4f}", kl=f"{parts['kl'].item():.0f}")
    else:
        step = config.steps
    bar.close()
    seconds = time.perf_counter() - started
    model.eval()
    means = encode_mean(model, to_model_range(data.images), device=device)                     # [N, c, h, w]
    scale = latent_scale_factor(means)
    payload = autoencoder_payload(model, scale, train_config=config.to_dict(), steps=int(step),
                                  train_seconds=round(seconds, 1), dataset={"name": data.name, "classes": list(data.classes)},
                                  history={k: [h[k] for h in history] for k in (history[0] if history else {})})
    if save:
        save_checkpoint(payload, config.out)
    return model, scale, payload
