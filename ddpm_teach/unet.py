"""The ε-prediction UNet (notebook 03), after DDPM §4 and improved-diffusion's ``unet.py``.

    x_t [B, C, H, W] ─ conv_in ─┬─ contracting path: ResBlocks (+ attention at low resolution),
                                │   downsample ×2 between levels, every output kept as a skip
                                ├─ bottleneck: ResBlock, attention, ResBlock
                                └─ expanding path: ResBlocks on [h, skip] concatenated,
                                    upsample ×2 between levels ─ conv_out ─ ε̂ [B, C, H, W]

Two options change the blocks (notebook 03, §10):

* ``block="convnext"``: every ResBlock becomes a ConvNeXt block (Liu et al. 2022, in the form of
  lucidrains' denoising-diffusion-pytorch and the HF Annotated Diffusion post);
* ``resblock_updown=True``: the Downsample/Upsample layers between levels become residual blocks
  that resample inside (BigGAN, Brock et al. 2019; Dhariwal & Nichol 2021 §3, guided-diffusion's
  ``ResBlock(up=..., down=...)``).

The defaults are the architecture every checkpoint before these options was made with.

The timestep t (0-based, see :mod:`ddpm_teach.schedules`) enters every block through a
sinusoidal embedding (Vaswani et al. 2017, §3.5) and an MLP; a class label, when the model is
conditional, is embedded and added to it.  Label ``num_classes`` is the *null* label used
for classifier-free guidance.  With ``learn_sigma=True`` the output has 2C channels: ε̂ and
the interpolation weight v of Improved DDPM eq. 15.

The model knows nothing about noise schedules: it maps (x_t, t, label) to a tensor.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .schedules import batch_timesteps

__all__ = ["UNetConfig", "UNet", "BLOCKS", "ResBlock", "ConvNeXtBlock", "Resample", "make_block", "timestep_embedding",
           "trace_shapes", "block_trace", "check_labels"]

BlockKind = Literal["resnet", "convnext"]
BLOCKS = ("resnet", "convnext")


@dataclass
class UNetConfig:
    """Every size and option of the UNet.  ``image_size`` is the only place the resolution lives."""

    image_size: int = 28
    in_channels: int = 1
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] | None = None  # None: the lowest resolution (7 for 28×28)
    num_heads: int = 4
    dropout: float = 0.1
    num_classes: int | None = None
    learn_sigma: bool = False
    norm_groups: int = 8
    block: BlockKind = "resnet"       # resnet: GroupNorm-SiLU-conv twice; convnext: depthwise 7×7 + inverted bottleneck
    resblock_updown: bool = False     # BigGAN: resample inside a residual block instead of Downsample/Upsample
    convnext_mult: int = 2            # width of the ConvNeXt block's inverted bottleneck, × its output channels

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise ValueError(f"block (--block) must be one of {', '.join(BLOCKS)}, got {self.block!r}.")
        if not isinstance(self.resblock_updown, bool):
            raise ValueError(f"resblock_updown (--resblock-updown) must be True or False, got {self.resblock_updown!r}.")
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks", "num_heads", "norm_groups",
                     "convnext_mult"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a positive integer, got {value!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout (--dropout) must be a number in [0, 1), got {self.dropout!r}.")
        if not self.channel_mults or any(int(m) < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults (--channel-mults) must be positive integers, got {list(self.channel_mults)}.")
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        factor = 2 ** (len(self.channel_mults) - 1)
        if self.image_size <= 0 or self.image_size % factor:
            raise ValueError(
                f"image_size={self.image_size} cannot pass through {len(self.channel_mults)} levels: it must be "
                f"divisible by 2**{len(self.channel_mults) - 1}={factor}. Use fewer channel_mults or pad/resize the images."
            )
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.norm_groups:
                raise ValueError(f"base_channels*mult={self.base_channels * mult} must be divisible by norm_groups={self.norm_groups}.")
        if self.resblock_updown and len(self.channel_mults) == 1:
            raise ValueError(f"resblock_updown (--resblock-updown) replaces the resampling between levels, but "
                             f"channel_mults={list(self.channel_mults)} has one level and never resamples. Give two or "
                             f"more channel_mults, or leave resblock_updown off.")
        if self.convnext_mult != 2 and self.block != "convnext":
            raise ValueError(f"convnext_mult (--convnext-mult) sizes the ConvNeXt block, but block={self.block!r}. "
                             f"Add --block convnext, or leave convnext_mult at 2.")
        if self.attention_resolutions is None:
            self.attention_resolutions = (self.resolutions[-1],)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        unused = sorted(set(self.attention_resolutions) - set(self.resolutions))
        if unused:
            raise ValueError(f"attention_resolutions {unused} match no level of this UNet, whose feature maps are "
                             f"{self.resolutions}; pick from those sizes (or () for attention in the bottleneck only).")
        if self.num_classes is not None and self.num_classes <= 0:
            raise ValueError("num_classes must be a positive integer, or None for an unconditional model.")

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def resolutions(self) -> list[int]:
        """Feature-map side length at each level, e.g. [28, 14, 7]."""
        return [self.image_size // 2**i for i in range(len(self.channel_mults))]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channel_mults"] = list(self.channel_mults)
        data["attention_resolutions"] = list(self.attention_resolutions)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UNet config keys {sorted(unknown)}; this checkpoint was made by another version.")
        return cls(**data)


def check_labels(labels: torch.Tensor | Sequence[int] | int | None, batch_size: int, num_classes: int | None, *,
                 device: torch.device | str | None = None, allow_null: bool = False) -> torch.Tensor | None:
    """``labels`` as a long tensor [B] on ``device`` (an int is repeated), or None: the one check
    of class labels, for the UNet and for :func:`ddpm_teach.samplers.sample`.

    A model with ``num_classes=K`` knows the classes 0..K−1 and, with ``allow_null``, the null
    label K (the unconditional model of classifier-free guidance)."""
    if labels is None:
        return None
    if num_classes is None:
        raise ValueError("labels were given, but this model is unconditional (num_classes=None). Call it without "
                         "labels, or load or train a class-conditional model (num_classes=K).")
    labels = torch.as_tensor(labels, device=device).long()
    if labels.ndim == 0:
        labels = labels.expand(batch_size)
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must be an int or have shape [n]=[{batch_size}] (one per image), "
                         f"got {tuple(labels.shape)}.")
    top = num_classes if allow_null else num_classes - 1
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > top):
        null = f" (or {num_classes}, the null label)" if allow_null else ""
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]{null}, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}].")
    return labels


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t [B] → [B, dim]: [cos(t·ω_i), sin(t·ω_i)],
    ω_i = max_period^(−i/half) (Transformer §3.5; cosines first, as improved-diffusion orders them)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]                      # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Resample(nn.Module):
    """Parameter-free resampling by 2 inside a residual block: "down" is 2×2 average pooling, "up"
    nearest-neighbour doubling (guided-diffusion's Downsample/Upsample with ``use_conv=False``).
    A module, so that shape traces and hooks see it."""

    def __init__(self, mode: Literal["up", "down"]):
        super().__init__()
        if mode not in ("up", "down"):
            raise ValueError(f"resample must be 'up' or 'down' (or None for no resampling), got {mode!r}.")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "down":
            return F.avg_pool2d(x, 2)                                # (B, C, H/2, W/2)
        return F.interpolate(x, scale_factor=2, mode="nearest")      # (B, C, 2H, 2W)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _resamplers(resample: Literal["up", "down"] | None) -> tuple[Resample | None, Resample | None]:
    """The main path's and the skip path's resampling, or (None, None): a block that keeps the
    resolution has no resampling modules at all (and prints as before these options existed)."""
    return (Resample(resample), Resample(resample)) if resample is not None else (None, None)


def _apply(module: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if module is None else module(x)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, add the (time + class) embedding, GroupNorm → SiLU → dropout → conv,
    plus a skip (1×1 conv when the channel count changes).

    ``resample="down"|"up"`` makes it BigGAN's resampling block (Brock et al. 2019, Fig. 15;
    guided-diffusion's ``ResBlock(down=True)``): the main path is resampled after the first
    GroupNorm·SiLU and before conv1, the skip path is resampled before its (optional) 1×1 conv,
    so both arrive at the new size, and no parameter is added."""

    label = "ResBlock"
    activations = {"norm1": "SiLU", "norm2": "SiLU"}     # function calls after these layers (for block_trace)
    emb_added_after = "conv1"                            # where the embedding enters (for draw_block)

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int,
                 resample: Literal["up", "down"] | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resample = in_ch, out_ch, resample
        self.h_resample, self.x_resample = _resamplers(resample)
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (or as its skip path)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_apply(self.h_resample, F.silu(self.norm1(x))))   # (B, out_ch, H', W'), H' = H/2, H or 2H
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]           # (B, out_ch, 1, 1) broadcast
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(_apply(self.x_resample, x)) + h


class ConvNeXtBlock(nn.Module):
    """A ConvNeXt block (Liu et al. 2022, §2.3-2.6 and Fig. 4) as diffusion UNets used it (lucidrains'
    denoising-diffusion-pytorch, the HF Annotated Diffusion post, both in 2022): a depthwise 7×7 conv
    (one filter per channel: a large receptive field for 49·C weights + C biases), the (time + class) embedding added as
    in the ResBlock, then an inverted bottleneck: GroupNorm(1) (normalises over C, H, W) → 3×3 conv
    to ``mult``·out channels → GELU → GroupNorm(1) → dropout → 3×3 conv back to out; plus a skip.
    (Liu et al.'s own block uses one per-position LayerNorm and 1×1 convs in the bottleneck; the diffusion
    versions use 3×3 convs, which see the neighbours as well.)

    ``resample="down"|"up"`` resamples after the depthwise conv and on the skip path, as in the
    BigGAN ResBlock: the block then also changes the resolution, with no extra parameter."""

    label = "ConvNeXt"
    activations = {"conv1": "GELU"}
    emb_added_after = "dwconv"

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, mult: int = 2,
                 resample: Literal["up", "down"] | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resample = in_ch, out_ch, resample
        self.dwconv = nn.Conv2d(in_ch, in_ch, 7, padding=3, groups=in_ch)
        self.emb_proj = nn.Linear(emb_dim, in_ch)
        self.h_resample, self.x_resample = _resamplers(resample)
        self.norm1 = nn.GroupNorm(1, in_ch)
        self.conv1 = nn.Conv2d(in_ch, mult * out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(1, mult * out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(mult * out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # starts as its skip path, like the ResBlock
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x) + self.emb_proj(F.silu(emb))[:, :, None, None]   # (B, in_ch, H, W)
        h = self.conv1(self.norm1(_apply(self.h_resample, h)))              # (B, mult·out_ch, H', W')
        h = self.conv2(self.dropout(self.norm2(F.gelu(h))))                 # (B, out_ch, H', W')
        return self.skip(_apply(self.x_resample, x)) + h


def make_block(config: "UNetConfig", in_ch: int, out_ch: int, emb_dim: int,
               resample: Literal["up", "down"] | None = None) -> ResBlock | ConvNeXtBlock:
    """The block ``config.block`` names, from in_ch to out_ch channels (resampling by 2 if asked)."""
    if config.block == "convnext":
        return ConvNeXtBlock(in_ch, out_ch, emb_dim, config.dropout, config.convnext_mult, resample)
    return ResBlock(in_ch, out_ch, emb_dim, config.dropout, config.norm_groups, resample)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels={channels} must be divisible by num_heads={num_heads}.")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x))                                        # (B, 3C, H, W)
        qkv = qkv.reshape(B, 3, self.num_heads, C // self.num_heads, H * W)  # (B, 3, nh, hs, HW)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).unbind(0)                       # each (B, nh, HW, hs)
        h = F.scaled_dot_product_attention(q, k, v)                          # (B, nh, HW, hs)
        h = h.transpose(2, 3).reshape(B, C, H, W)                            # (B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """A stride-2 3×3 conv.  ``emb`` is ignored: the signature is the resampling blocks'."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Nearest-neighbour doubling, then a 3×3 conv.  ``emb`` is ignored, as in :class:`Downsample`."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))  # (B, C, 2H, 2W)


class Level(nn.Module):
    """The blocks (each optionally followed by attention) of one resolution level."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)


class UNet(nn.Module):
    """``model(x_t, t)`` or ``model(x_t, t, labels)`` → ε̂ with the shape of x_t (2C channels
    when ``learn_sigma``).  ``t`` is a long tensor [B] or an int; ``labels`` a long tensor [B]
    with values in [0, num_classes], where ``num_classes`` is the null (unconditional) label."""

    def __init__(self, config: UNetConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = UNetConfig(**overrides)
        elif overrides:
            config = UNetConfig(**{**config.to_dict(), **overrides})
        self.config = cfg = config
        base, groups = cfg.base_channels, cfg.norm_groups
        emb_dim = 4 * base

        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # one extra row: the null label (index num_classes) for classifier-free guidance
        self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        def attn_or_id(ch: int, res: int) -> nn.Module:
            return AttentionBlock(ch, cfg.num_heads, groups) if res in cfg.attention_resolutions else nn.Identity()

        # contracting path
        self.down_levels = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_channels, ch = [base], base
        for level, (mult, res) in enumerate(zip(cfg.channel_mults, cfg.resolutions)):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(make_block(cfg, ch, base * mult, emb_dim))
                ch = base * mult
                attns.append(attn_or_id(ch, res))
                skip_channels.append(ch)
            self.down_levels.append(Level(blocks, attns))
            is_last = level == len(cfg.channel_mults) - 1
            self.downsamples.append(nn.Identity() if is_last else make_block(cfg, ch, ch, emb_dim, "down")
                                    if cfg.resblock_updown else Downsample(ch))
            if not is_last:
                skip_channels.append(ch)

        # bottleneck
        self.mid_block1 = make_block(cfg, ch, ch, emb_dim)
        self.mid_attn = AttentionBlock(ch, cfg.num_heads, groups)
        self.mid_block2 = make_block(cfg, ch, ch, emb_dim)

        # expanding path: one more block per level than on the way down, to use every skip
        self.up_levels = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mults))):
            mult, res = cfg.channel_mults[level], cfg.resolutions[level]
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(make_block(cfg, ch + skip_channels.pop(), base * mult, emb_dim))
                ch = base * mult
                attns.append(attn_or_id(ch, res))
            self.up_levels.append(Level(blocks, attns))
            self.upsamples.append(nn.Identity() if level == 0 else make_block(cfg, ch, ch, emb_dim, "up")
                                  if cfg.resblock_updown else Upsample(ch))

        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    # -- checks -------------------------------------------------------------------------
    def _check_inputs(self, x, t, labels):
        """The model's own entry checks: x [B, C, H, W] of the configured size, t [B] (or an int),
        labels [B] (or an int) in [0, num_classes], where num_classes is the null label."""
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"UNet expects images of shape [B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}], got "
                f"{tuple(x.shape)}. Resize or pad the images, or build the UNet with a matching image_size/in_channels."
            )
        t = batch_timesteps(t, x.shape[0], x.device)
        return t, check_labels(labels, x.shape[0], cfg.num_classes, device=x.device, allow_null=True)

    def null_labels(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The null label (index ``num_classes``) for every item: the unconditional model."""
        if self.config.num_classes is None:
            raise ValueError("this model is unconditional; it has no null label.")
        return torch.full((batch_size,), self.config.num_classes, dtype=torch.long, device=device)

    # -- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None = None) -> torch.Tensor:
        t, labels = self._check_inputs(x, t, labels)
        # the sinusoid is computed in float32; cast it so a .double() or .half() model also works
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))  # (B, 4·base)
        if self.label_emb is not None:
            if labels is None:
                labels = self.null_labels(x.shape[0], x.device)
            emb = emb + self.label_emb(labels)

        h = self.conv_in(x)
        skips = [h]
        for level, down in zip(self.down_levels, self.downsamples):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(h, emb))
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h, emb)          # Downsample ignores emb; a BigGAN block uses it
                skips.append(h)

        h = self.mid_block2(self.mid_attn(self.mid_block1(h, emb)), emb)

        for level, up in zip(self.up_levels, self.upsamples):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))  # (B, ch + skip_ch, H, W) in
            if not isinstance(up, nn.Identity):
                h = up(h, emb)

        return self.conv_out(F.silu(self.norm_out(h)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _record_outputs(run, tagged: list[tuple[tuple, nn.Module]]) -> tuple[list[tuple], torch.Tensor]:
    """Call ``run()`` without gradients, with a forward hook on each module that appends
    ``(*tag, output shape)`` in the order the modules ran; return the records and run's output.
    The hooks are removed whatever happens."""
    records: list[tuple] = []
    hooks = [module.register_forward_hook(lambda mod, inp, out, tag=tag: records.append((*tag, tuple(out.shape))))
             for tag, module in tagged]
    try:
        with torch.no_grad():
            out = run()
    finally:
        for hook in hooks:
            hook.remove()
    return records, out


def trace_shapes(model: UNet, x: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model`` once and return (module name, output shape) for the conv_in, every
    block (ResBlock or ConvNeXt), attention, down/upsample and conv_out, in the order they ran
    (notebook 03)."""
    wanted = (ResBlock, ConvNeXtBlock, AttentionBlock, Downsample, Upsample)
    tagged = [((name,), module) for name, module in model.named_modules()
              if isinstance(module, wanted) or name in ("conv_in", "conv_out")]
    return _record_outputs(lambda: model(x, t, labels), tagged)[0]


def block_trace(block: ResBlock | ConvNeXtBlock, x: torch.Tensor, emb: torch.Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """Run one block and return (name, layer, output shape) for each of its layers in the order
    they ran, with ``"+ skip"`` last (the block's output): the shape trace of notebook 03, §10.
    The skip path's layers are ``x_resample`` and ``skip``.  The activations are function calls,
    not layers: the layer they follow says so ("→ SiLU"); the shape is the layer's output."""
    tagged = []
    for name, module in block.named_children():
        if isinstance(module, nn.Identity):
            continue
        layer = type(module).__name__
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            kind = "depthwise " if module.groups > 1 else ""
            stride = f", stride {module.stride[0]}" if module.stride[0] > 1 else ""
            layer = f"{kind}{kh}×{kw} conv {module.in_channels}→{module.out_channels}{stride}"
        elif isinstance(module, nn.GroupNorm):
            layer = "GroupNorm(1): over C, H, W" if module.num_groups == 1 else f"GroupNorm ({module.num_groups} groups)"
        elif isinstance(module, nn.Linear):
            layer = f"linear {module.in_features}→{module.out_features} (of SiLU(emb))"
        elif isinstance(module, Resample):
            layer = "2×2 average pool" if module.mode == "down" else "nearest ×2"
        elif isinstance(module, nn.Dropout):
            layer = f"dropout p={module.p:g}"
        if name in block.activations:
            layer += f" → {block.activations[name]}"
        tagged.append(((name, layer), module))
    records, out = _record_outputs(lambda: block(x, emb), tagged)
    return records + [("+ skip", "main path + skip path", tuple(out.shape))]
