"""Exercise checks for notebook 03 (the UNet).

Each ``check_*`` prints ``Correct!`` (or a success note) and returns True, or prints a hint and
returns False.  The expected answers follow from :mod:`ddpm_teach.unet`; ``tests/test_exercises_nb03.py``
checks them against the model itself.
"""
from __future__ import annotations

from collections.abc import Sequence

from . import report

__all__ = [
    "SHAPE_EXERCISE",
    "RESBLOCK_EXERCISE",
    "check_shape_after_second_downsample",
    "check_resblock_parameters",
    "check_parameter_count_base96",
    "CONVNEXT_EXERCISE",
    "check_convnext_parameters",
]

# Exercise 1: UNetConfig(image_size=32, in_channels=3, base_channels=64, channel_mults=(1, 2, 3)), batch 8.
# The mults differ at every level, so reading the width off the wrong level gives a wrong answer.
SHAPE_EXERCISE = dict(batch=8, image_size=32, in_channels=3, base_channels=64, channel_mults=(1, 2, 3))
# Exercise 2: ResBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, groups=8)
RESBLOCK_EXERCISE = dict(in_ch=64, out_ch=128, emb_dim=256)
# Exercise 4: ConvNeXtBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, mult=2)
CONVNEXT_EXERCISE = dict(in_ch=64, out_ch=128, emb_dim=256, mult=2)


def _expected_shape() -> tuple[int, int, int, int]:
    """Output of ``downsamples.1``: the batch is kept, the side halved twice, and the channels are
    level 1's width base·mult[1] (a downsample does not change the channel count)."""
    ex = SHAPE_EXERCISE
    side = ex["image_size"] // 2 // 2
    return ex["batch"], ex["base_channels"] * ex["channel_mults"][1], side, side


def check_shape_after_second_downsample(answer: Sequence[int]) -> bool:
    """Exercise 1: the shape (B, C, H, W) after the second downsample, for a batch of 8 32×32 RGB
    images through ``UNetConfig(image_size=32, in_channels=3, base_channels=64, channel_mults=(1, 2, 3))``."""
    try:
        shape = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        return report(False, "give the shape as four integers (B, C, H, W), e.g. a tuple or a torch.Size.")
    expected = _expected_shape()
    B, C, side = expected[0], expected[1], expected[2]
    ex = SHAPE_EXERCISE
    if len(shape) != 4:
        return report(False, f"give all four dimensions (B, C, H, W); you gave {len(shape)}.")
    if shape == expected:
        return report(True, "")
    if shape[0] != B:
        return report(False, f"the network never mixes or drops images: the batch dimension stays B = {ex['batch']}.")
    if shape[2] != shape[3]:
        return report(False, "the images are square and every layer treats H and W alike: H = W.")
    if shape[2] != side:
        if shape[2] == ex["image_size"] // 2:
            return report(False, "that is the side after the *first* downsample; each stride-2 downsample "
                                 f"halves it: {ex['image_size']} → {ex['image_size'] // 2} → ?")
        if shape[2] == 7:
            return report(False, f"these images are {ex['image_size']}×{ex['image_size']}, not Fashion-MNIST's 28×28.")
        return report(False, f"each downsample halves H and W once (stride 2), starting from {ex['image_size']}.")
    if shape[1] == ex["in_channels"]:
        return report(False, "in_channels only sets conv_in's input; inside the network the width is "
                             "base_channels × mult of the level.")
    mults = ex["channel_mults"]
    if shape[1] == ex["base_channels"] * mults[2]:
        return report(False, f"{shape[1]} = base_channels × channel_mults[2] is the width of level 2, which the "
                             "tensor has not reached yet. Levels count from 0: the first downsample follows "
                             "level 0, the second follows level 1, and a downsample keeps the channel count of "
                             "the level before it.")
    if shape[1] == C * 2:
        return report(False, "a downsample keeps the channel count; the channels change in the first "
                             "ResBlock of each level, to base_channels × mult. Which level's ResBlocks "
                             "produced the tensor that the second downsample shrinks?")
    if shape[1] == ex["base_channels"]:
        return report(False, "the second downsample follows level 1, whose ResBlocks have base_channels × "
                             "channel_mults[1] channels (levels count from 0).")
    return report(False, "the channels after a downsample are those of the level before it: base_channels × "
                         "channel_mults[level]. Use trace_shapes to look.")


def _resblock_parts(in_ch: int, out_ch: int, emb_dim: int) -> dict[str, int]:
    """Parameters of each part of :class:`ddpm_teach.unet.ResBlock`."""
    return {
        "norm1": 2 * in_ch,
        "conv1": 9 * in_ch * out_ch + out_ch,
        "emb_proj": emb_dim * out_ch + out_ch,
        "norm2": 2 * out_ch,
        "conv2": 9 * out_ch * out_ch + out_ch,
        "skip": in_ch * out_ch + out_ch if in_ch != out_ch else 0,
    }


def check_resblock_parameters(answer: int) -> bool:
    """Exercise 2: the number of parameters of ``ResBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, groups=8)``."""
    try:
        n = int(answer)
    except (TypeError, ValueError):
        return report(False, "give the number of parameters as one integer.")
    ex = RESBLOCK_EXERCISE
    parts = _resblock_parts(ex["in_ch"], ex["out_ch"], ex["emb_dim"])
    total = sum(parts.values())
    if n == total:
        return report(True, "")
    biases = 3 * ex["out_ch"] + (ex["out_ch"] if parts["skip"] else 0)   # conv1, emb_proj, conv2, skip
    norms = parts["norm1"] + parts["norm2"]
    missing_hints = {
        "skip": "in_ch ≠ out_ch, so the residual path is a 1×1 convolution (with a bias), not the identity.",
        "emb_proj": "the time embedding reaches the block through emb_proj, a Linear(emb_dim, out_ch) with a bias.",
        "norm1": "each GroupNorm has a scale and a shift per channel: 2·C parameters (norm1 has C = in_ch).",
        "norm2": "each GroupNorm has a scale and a shift per channel: 2·C parameters (norm2 has C = out_ch).",
        "conv1": "conv1 is a 3×3 convolution from in_ch to out_ch channels: 9·in_ch·out_ch + out_ch.",
        "conv2": "conv2 is a 3×3 convolution from out_ch to out_ch channels: 9·out_ch·out_ch + out_ch.",
    }
    for part, hint in missing_hints.items():
        if n == total - parts[part]:
            return report(False, f"you left out one part. {hint}")
    if n == total - biases:
        return report(False, "every convolution and Linear layer here has a bias: out_ch more parameters each.")
    if n == total - norms:
        return report(False, "GroupNorm is learnable too: a scale and a shift per channel, 2·C each.")
    if n == total - biases - norms:
        return report(False, "count the biases (one per output channel of every conv and Linear) and the "
                             "GroupNorm scales and shifts (2·C each).")
    no_taps = total - 8 * ex["in_ch"] * ex["out_ch"] - 8 * ex["out_ch"] * ex["out_ch"]
    if n == no_taps:
        return report(False, "a 3×3 kernel has 9 weights per (input, output) channel pair: 9·C_in·C_out.")
    if n == total - parts["skip"] + 9 * ex["in_ch"] * ex["out_ch"] + ex["out_ch"]:
        return report(False, "the skip convolution is 1×1, not 3×3: in_ch·out_ch + out_ch.")
    return report(False, "add up norm1 (GroupNorm), conv1 (3×3), emb_proj (Linear), norm2 (GroupNorm), "
                         "conv2 (3×3) and skip (1×1 conv, since in_ch ≠ out_ch). Print the block to see them, "
                         "or check by code with sum(p.numel() for p in block.parameters()).")


def check_parameter_count_base96(answer: int, tolerance: float = 0.01) -> bool:
    """Exercise 3: the parameter count of the default UNet with ``base_channels=96``; an estimate
    within ``tolerance`` (1%) of the exact count is accepted."""
    from ..unet import UNet, UNetConfig

    try:
        n = float(answer)
    except (TypeError, ValueError):
        return report(False, "give the number of parameters as one number.")
    default = UNet(UNetConfig()).num_parameters()
    exact = UNet(UNetConfig(base_channels=96)).num_parameters()
    if abs(n - exact) <= tolerance * exact:
        return report(True, "", success=f"Correct! The exact count is {exact:,}; (96/64)² × {default:,} = "
                                        f"{default * 1.5 ** 2:,.0f} is within {abs(default * 2.25 / exact - 1):.1%}.")
    ratio = n / default
    if abs(ratio - 1.5) < 0.05:
        return report(False, "that is linear scaling. A 3×3 conv from C_in to C_out channels has 9·C_in·C_out "
                             "weights, and both C_in and C_out grow with base_channels.")
    if abs(ratio - 1.5 ** 3) < 0.1:
        return report(False, "too fast: the weights of a conv grow with C_in·C_out, which is quadratic, not cubic, "
                             "in base_channels (the kernel size and the image size do not change).")
    if abs(ratio - 1.0) < 0.01:
        return report(False, "that is the count at base_channels=64; every width is base_channels × mult, so it grows.")
    return report(False, f"start from the default's {default:,} parameters: nearly all are conv weights "
                         "9·C_in·C_out, and every C is base_channels × mult. How does that scale from 64 to 96?")


def _convnext_parts(in_ch: int, out_ch: int, emb_dim: int, mult: int) -> dict[str, int]:
    """Parameters of each part of :class:`ddpm_teach.unet.ConvNeXtBlock`."""
    wide = mult * out_ch
    return {
        "dwconv": 49 * in_ch + in_ch,            # one 7×7 filter per channel
        "emb_proj": emb_dim * in_ch + in_ch,     # added after dwconv, so in_ch wide
        "norm1": 2 * in_ch,
        "conv1": 9 * in_ch * wide + wide,
        "norm2": 2 * wide,
        "conv2": 9 * wide * out_ch + out_ch,
        "skip": in_ch * out_ch + out_ch if in_ch != out_ch else 0,
    }


def check_convnext_parameters(answer: int) -> bool:
    """Exercise 4: the number of parameters of
    ``ConvNeXtBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, mult=2)``."""
    try:
        n = int(answer)
    except (TypeError, ValueError):
        return report(False, "give the number of parameters as one integer.")
    ex = CONVNEXT_EXERCISE
    parts = _convnext_parts(**ex)
    total = sum(parts.values())
    if n == total:
        return report(True, "", success=f"Correct! {total:,} parameters; the depthwise 7×7 conv is only "
                                        f"{parts['dwconv']:,} of them, the two 3×3 convs of the bottleneck "
                                        f"{parts['conv1'] + parts['conv2']:,}.")
    in_ch, out_ch, wide = ex["in_ch"], ex["out_ch"], ex["mult"] * ex["out_ch"]
    if n == total - parts["dwconv"] + 49 * in_ch * in_ch + in_ch:
        return report(False, "the 7×7 conv is depthwise (groups = in_ch): each channel has its own single 7×7 "
                             "filter, 49·in_ch weights plus in_ch biases, not 49·in_ch·in_ch.")
    if n == total - in_ch:
        return report(False, "close: the depthwise conv has a bias too, one per channel (in_ch of them).")
    if n == total - parts["emb_proj"] + ex["emb_dim"] * out_ch + out_ch:
        return report(False, "in the ConvNeXt block the embedding is added right after the depthwise conv, "
                             "where the tensor still has in_ch channels: emb_proj is Linear(emb_dim, in_ch).")
    narrow = _convnext_parts(in_ch, out_ch, ex["emb_dim"], 1)
    if n == sum(narrow.values()):
        return report(False, f"the bottleneck is *inverted*: conv1 widens to mult·out_ch = {wide} channels "
                             "and conv2 narrows back to out_ch.")
    for part, hint in {"skip": "in_ch ≠ out_ch, so the skip path is a 1×1 conv with a bias.",
                       "norm1": "each GroupNorm(1, C) still has a scale and a shift per channel: 2·C.",
                       "norm2": "norm2 sits on the wide tensor: 2·mult·out_ch parameters.",
                       "emb_proj": "the embedding enters through emb_proj, a Linear(emb_dim, in_ch) with a bias."}.items():
        if n == total - parts[part]:
            return report(False, f"you left out one part. {hint}")
    return report(False, "add up dwconv (depthwise 7×7: 49·in_ch + in_ch), emb_proj (Linear(emb_dim, in_ch)), "
                         "norm1 (2·in_ch), conv1 (3×3, in_ch → mult·out_ch), norm2 (2·mult·out_ch), conv2 "
                         "(3×3, mult·out_ch → out_ch) and skip (1×1, since in_ch ≠ out_ch). Print the block to see them.")
