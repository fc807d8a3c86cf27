"""Latent diffusion (notebook 10, Rombach et al. 2022): the course's UNet, training loop,
samplers and guidance, run on the autoencoder's latents instead of pixels.

    train:   x ─ encoder ─→ mean of q(z given x) ─ × scale_factor ─→ z_0   (once, for the whole dataset)
             then DDPM Algorithm 1 on z_0 exactly as on images
    sample:  z_T ~ N(0, I) ─ any sampler, any guidance ─→ z_0 ─ ÷ scale_factor ─ decoder ─→ x

* :class:`LatentCodec`: the autoencoder and its scale factor; ``encode`` and ``decode``.
* :class:`LatentData`: a dataset encoded once, with :class:`~ddpm_teach.data.ImageData`'s
  interface (``batch``, ``channels``, ``image_size``, ``classes``), so that
  :class:`~ddpm_teach.trainer.Trainer` trains on it unchanged.
* A latent checkpoint embeds its autoencoder (config, weights, scale factor, SHA-256 and the
  file it came from) under ``"autoencoder"``, so that it samples on its own and a mismatched
  autoencoder cannot slip in; :func:`codec_from_checkpoint` reads it back.

The samplers never clip x̂_0 in latent space: latents are not confined to [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import torch

from .autoencoder import Autoencoder, autoencoder_from_payload, encode_mean, load_autoencoder
from .checkpoint import CheckpointError

__all__ = ["LatentCodec", "LatentData", "encode_dataset", "codec_from_checkpoint", "check_latent_model",
           "load_latent_model"]


class LatentCodec:
    """An autoencoder with its latent scale factor.  ``encode(x)`` → z = scale · mean of
    q(z given x); ``decode(z)`` → x̂ = decoder(z / scale), clamped to [-1, 1]."""

    def __init__(self, autoencoder: Autoencoder, scale_factor: float, record: dict | None = None):
        self.autoencoder, self.scale_factor = autoencoder.eval(), float(scale_factor)
        self.record = record

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.autoencoder.config.latent_shape

    @property
    def image_shape(self) -> tuple[int, int, int]:
        cfg = self.autoencoder.config
        return (cfg.in_channels, cfg.image_size, cfg.image_size)

    @classmethod
    def from_record(cls, record: dict, source: str = "checkpoint", device="cpu") -> "LatentCodec":
        """The codec of an embedded autoencoder record (config, weights, scale factor, SHA-256 checked)."""
        model, scale = autoencoder_from_payload(record, source)
        return cls(model.to(device), scale, record)

    @classmethod
    def load(cls, path: str | Path = "checkpoints/fashion_mnist_autoencoder.pt", device="cpu") -> "LatentCodec":
        if not Path(path).is_file():
            raise CheckpointError(f"--autoencoder {path} does not exist; give the path of an autoencoder checkpoint "
                                  "(the shipped one is checkpoints/fashion_mnist_autoencoder.pt), or train one with "
                                  "`python -m ddpm_teach train-autoencoder`.")
        model, scale, ckpt = load_autoencoder(path, device=device)
        record = {k: ckpt[k] for k in ("model_config", "model", "scale_factor", "sha256") if k in ckpt}
        return cls(model, scale, {**record, "kind": "autoencoder", "source": str(path)})

    def to(self, device) -> "LatentCodec":
        self.autoencoder.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Scaled latents [N, c, h, w] (float32, CPU) of images [N, C, H, W] in [-1, 1]."""
        device = next(self.autoencoder.parameters()).device
        return encode_mean(self.autoencoder, images, batch_size, device) * self.scale_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Images [N, C, H, W] in [-1, 1] (float32, on the latents' device) of scaled latents [N, c, h, w]."""
        device = next(self.autoencoder.parameters()).device
        parts = [self.autoencoder.decode(latents[i:i + batch_size].to(device).float() / self.scale_factor).clamp(-1, 1)
                 for i in range(0, len(latents), batch_size)]
        return torch.cat(parts).to(latents.device)


class LatentData:
    """A dataset as scaled latents, with ImageData's interface, for :class:`~ddpm_teach.trainer.Trainer`.

    latents: float32 [N, c, h, w]; labels: int64 [N]; classes, name: the images' own;
    autoencoder: the record that the trainer embeds in its checkpoints."""

    def __init__(self, latents: torch.Tensor, labels: torch.Tensor, classes, name: str, autoencoder: dict | None):
        if latents.ndim != 4 or latents.shape[-1] != latents.shape[-2]:
            raise ValueError(f"latents must be [N, c, h, h], got {tuple(latents.shape)}.")
        self.latents, self.labels = latents.float(), torch.as_tensor(labels).long()
        self.classes, self.name, self.autoencoder = list(classes), name, autoencoder

    @property
    def channels(self) -> int:
        return int(self.latents.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.latents.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def batch(self, indices, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_0 [B, c, h, w], labels [B])`` on ``device``: the training batch, as ImageData.batch."""
        if isinstance(indices, torch.Tensor):
            indices = indices.to(self.latents.device)
        return self.latents[indices].to(device), self.labels[indices].to(device)

    def to(self, device) -> "LatentData":
        return LatentData(self.latents.to(device), self.labels.to(device), self.classes, self.name, self.autoencoder)

    def subset(self, indices) -> "LatentData":
        if isinstance(indices, range):
            indices = slice(indices.start, indices.stop, indices.step)
        return LatentData(self.latents[indices], self.labels[indices], self.classes, self.name, self.autoencoder)

    def __repr__(self) -> str:
        c, h, w = self.latents.shape[1:]
        return f"LatentData(name={self.name!r}, N={len(self)}, latents={c}x{h}x{w}, classes={len(self.classes)})"


def encode_dataset(data, codec: LatentCodec, batch_size: int = 1000) -> LatentData:
    """Encode an :class:`~ddpm_teach.data.ImageData` once: its scaled latents, labels and classes."""
    from .data import to_model_range

    if (data.channels, data.image_size, data.image_size) != codec.image_shape:
        source = (codec.record or {}).get("source", "the autoencoder")
        raise ValueError(f"--autoencoder {source} takes images of shape {list(codec.image_shape)}, but the data "
                         f"({data.name}) has {[data.channels, data.image_size, data.image_size]}; use the dataset it was "
                         "trained on, or train one for this data with `python -m ddpm_teach train-autoencoder`.")
    latents = torch.cat([codec.encode(to_model_range(data.images[i:i + batch_size]))
                         for i in range(0, len(data), batch_size)])
    return LatentData(latents, data.labels, data.classes, data.name, codec.record)


def check_latent_model(model_config, codec: LatentCodec, source: str = "checkpoint") -> None:
    """The UNet must work on the autoencoder's latents: in_channels = c and image_size = h."""
    c, h, _ = codec.latent_shape
    if (model_config.in_channels, model_config.image_size) != (c, h):
        raise CheckpointError(f"{source}: its UNet takes {model_config.in_channels}×{model_config.image_size}² inputs, "
                              f"but its autoencoder makes {c}×{h}² latents; the two do not belong together. Sample with "
                              "the checkpoint as trained (the autoencoder is embedded in it).")


def codec_from_checkpoint(ckpt: dict, source: str = "checkpoint", device="cpu") -> LatentCodec | None:
    """The embedded autoencoder of a latent diffusion checkpoint, or None for a pixel-space one.
    A checkpoint trained with ``--autoencoder`` whose autoencoder entry is missing, or whose
    weights do not match their recorded SHA-256 or the UNet's input (``ckpt["model_config"]``),
    is an error."""
    record = ckpt.get("autoencoder")
    wanted = (ckpt.get("train_config") or {}).get("autoencoder")
    if record is None:
        if wanted:
            raise CheckpointError(f"{source} was trained on the latents of {wanted!r}, but the autoencoder is missing "
                                  "from it; re-export it from its training run with `python -m ddpm_teach export`.")
        return None
    codec = LatentCodec.from_record(record, f"{source} (its autoencoder)", device)
    if "model_config" in ckpt:
        from .unet import UNetConfig

        check_latent_model(UNetConfig.from_dict(ckpt["model_config"]), codec, source)
    return codec


def load_latent_model(path: str | Path = "checkpoints/fashion_mnist_latent.pt", device="cpu", use_ema: bool = True):
    """``(model, schedule, codec, checkpoint)`` of a latent diffusion checkpoint (weights_only)."""
    from .checkpoint import load_diffusion_model

    model, schedule, ckpt = load_diffusion_model(path, device=device, use_ema=use_ema)
    codec = codec_from_checkpoint(ckpt, str(path), device)
    if codec is None:
        raise CheckpointError(f"{path} is a pixel-space model (no autoencoder in it); load it with load_diffusion_model.")
    return model, schedule, codec, ckpt
