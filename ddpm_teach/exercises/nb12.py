"""Exercise checks for notebook 12 (your own images, in colour).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers come from the package
(:func:`ddpm_teach.data.to_model_range`, :class:`ddpm_teach.unet.UNet`), never typed in.
"""
from __future__ import annotations

import math

import torch

from . import as_float, as_whole_number, report

__all__ = ["PIXEL_EXERCISE", "CONV_IN_EXERCISE", "ATTENTION_EXERCISE", "EPOCHS_EXERCISE",
           "model_range_answer", "conv_in_answer", "attention_answer", "epochs_answer",
           "check_model_range", "check_conv_in_params", "check_attention_entries", "check_epochs"]

# exercise 1: an orange pixel of a PNG, as the model sees it
PIXEL_EXERCISE = {"rgb": (255, 128, 0)}
# exercise 2: the UNet's first layer for colour images
CONV_IN_EXERCISE = {"in_channels": 3, "base_channels": 32, "kernel": 3}
# exercise 3: one attention head's score matrix at the 64-px recipe's 16x16 level, for one image
ATTENTION_EXERCISE = {"image_size": 64, "resolution": 16}
# exercise 4: passes over the emoji in a run
EPOCHS_EXERCISE = {"images": 1630, "batch_size": 64, "steps": 3000}
PIXEL_TOL = 5e-4              # absolute, exercise 1: 3 or more decimals (0.004, 0.0039 for 128/127.5 − 1 = 0.00392) pass
TOL = 1e-3                    # relative, for exercise 4


def _near(value: float, target: float, tol: float = TOL) -> bool:
    return math.isclose(value, target, rel_tol=tol, abs_tol=tol * 1e-2)


def _three_numbers(answer) -> tuple[float, float, float] | None:
    if isinstance(answer, torch.Tensor):
        answer = answer.flatten().tolist()
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__") or len(answer) != 3:
        return None
    values = tuple(as_float(value) for value in answer)
    return None if any(value is None for value in values) else values


# ------------------------------------------------------------------ exercise 1: a colour pixel in [-1, 1]
def model_range_answer() -> tuple[float, float, float]:
    """(R, G, B) of exercise 1 as the model sees them, from data.to_model_range."""
    from ..data import to_model_range

    pixel = torch.tensor(PIXEL_EXERCISE["rgb"], dtype=torch.uint8)
    return tuple(float(v) for v in to_model_range(pixel))


def check_model_range(answer) -> bool:
    """Exercise 1: an orange pixel of a PNG has (R, G, B) = (255, 128, 0).  Which three numbers does the
    model see for it?  ``answer = (r, g, b)``."""
    values = _three_numbers(answer)
    if values is None:
        return report(False, f"give three numbers, (r, g, b), not {answer!r}.")
    right = model_range_answer()
    if all(abs(v - r) <= PIXEL_TOL for v, r in zip(values, right)):
        return report(True, "", success=f"Correct! x = u/127.5 − 1 channel by channel: ({right[0]:g}, {right[1]:.4f}, "
                                         f"{right[2]:g}). Each channel is scaled on its own, with the same rule as the "
                                         "grey images: colour changes the shape [B, 3, H, W], not the arithmetic.")
    rgb = PIXEL_EXERCISE["rgb"]
    slips = [
        (tuple(u / 255 for u in rgb), "that is 0..1 (u/255), the range torchvision's ToTensor gives. The forward "
                                      "process assumes [-1, 1]: x = u/127.5 − 1."),
        (tuple(u / 127.5 for u in rgb), "u/127.5 lies in [0, 2]; subtract 1 to centre it: x = u/127.5 − 1."),
        (tuple(u / 128 - 1 for u in rgb), "close: the scale is 127.5 (= 255/2), so that 255 maps to exactly 1."),
        ((1.0, 0.0, -1.0), "the middle of 0..255 is 127.5, not 128: green 128 lies just above it, at 128/127.5 − 1 "
                           "≈ 0.0039 (give at least 3 decimals)."),
        (tuple(2 * u / 255 - 1 for u in reversed(rgb)), "the channels are reversed: the answer is (r, g, b) in that order."),
        (tuple(float(u) for u in rgb), "those are the raw 0..255 values; the model sees x = u/127.5 − 1."),
    ]
    for wrong, hint in slips:
        if all(abs(v - w) <= PIXEL_TOL for v, w in zip(values, wrong)):
            return report(False, hint)
    return report(False, "scale each channel from 0..255 to [-1, 1] on its own: x = u/127.5 − 1 "
                         "(ddpm_teach.data.to_model_range).")


# ------------------------------------------------------------------ exercise 2: conv_in's parameters
def conv_in_answer() -> int:
    """The parameters of conv_in of a UNet with exercise 2's channels, counted on a real UNet."""
    from ..unet import UNet, UNetConfig

    ex = CONV_IN_EXERCISE
    model = UNet(UNetConfig(image_size=8, in_channels=ex["in_channels"], base_channels=ex["base_channels"],
                            channel_mults=(1,), num_res_blocks=1, attention_resolutions=()))
    return sum(p.numel() for p in model.conv_in.parameters())


def check_conv_in_params(answer) -> bool:
    """Exercise 2: the UNet's first layer, ``conv_in``, is a 3x3 convolution from the image's C channels to
    ``base_channels`` = 32, with a bias.  How many parameters does it have for colour images (C = 3)?"""
    n = as_whole_number(answer)
    if n is None:
        return report(False, f"give a whole number, not {answer!r}.")
    ex = CONV_IN_EXERCISE
    c, base, k = ex["in_channels"], ex["base_channels"], ex["kernel"]
    right = conv_in_answer()
    if n == right:
        return report(True, "", success=f"Correct! {k}·{k}·{c}·{base} weights + {base} biases = {right}; for grey "
                                         f"images (C = 1) it is {k * k * base + base}. Only conv_in and conv_out see "
                                         "C: the rest of the UNet is the same for colour.")
    slips = {k * k * c * base: f"that counts the weights only; each of the {base} output channels has a bias too.",
             k * k * base + base: "that is the grey model's conv_in (C = 1); colour images have C = 3 input channels.",
             k * k * c + 1: f"that is one output channel's filter; conv_in has {base} of them.",
             c * base + base: f"a 3x3 convolution has {k}·{k} weights per (input, output) channel pair, not 1."}
    return report(False, slips.get(n, f"weights: kernel height · width · input channels · output channels; plus one "
                                      f"bias per output channel (count it on a UNet: sum(p.numel() for p in "
                                      "model.conv_in.parameters()))."))


# ------------------------------------------------------------------ exercise 3: attention at 16x16
def attention_answer() -> int:
    """Entries of one head's attention-score matrix for one image at exercise 3's level: (r·r)²."""
    r = ATTENTION_EXERCISE["resolution"]
    return (r * r) ** 2


def check_attention_entries(answer) -> bool:
    """Exercise 3: the 64-px photo recipe attends at the 16x16 level.  Self-attention there treats each
    position as a token.  How many entries has one head's attention-score matrix, for one image?"""
    n = as_whole_number(answer)
    if n is None:
        return report(False, f"give a whole number, not {answer!r}.")
    ex = ATTENTION_EXERCISE
    r, size = ex["resolution"], ex["image_size"]
    right = attention_answer()
    if n == right:
        return report(True, "", success=f"Correct! {r}·{r} = {r * r} tokens, each scored against every token: "
                                         f"{r * r}² = {right:,} entries. At the 32x32 level it would be "
                                         f"{(32 * 32) ** 2:,}, 16x more: why the recipe stops attention at 16 px.")
    slips = {r * r: f"{r * r} is the number of tokens; the score matrix pairs every token with every token.",
             r ** 2 * 2: "the matrix is tokens x tokens: square the number of tokens.",
             (size * size) ** 2: f"that is attention at the full {size}x{size} resolution; the recipe attends at {r}x{r}.",
             (size * size): f"{size * size} is the number of positions of the full {size}x{size} image; the recipe "
                            f"attends at {r}x{r}, and the matrix pairs every token with every token.",
             (r * r) ** 2 + (r * r // 4) ** 2: f"that adds the {r // 2}x{r // 2} level's matrix; the question asks for "
                                               f"one head at the {r}x{r} level only."}
    return report(False, slips.get(n, "count the tokens first (one per position of the 16x16 feature map), then "
                                      "the score matrix has one entry per pair of tokens."))


# ------------------------------------------------------------------ exercise 4: epochs
def epochs_answer() -> float:
    ex = EPOCHS_EXERCISE
    return ex["steps"] * ex["batch_size"] / ex["images"]


def check_epochs(answer) -> bool:
    """Exercise 4: a run of 3,000 steps at batch 64 on the 1,630 training emoji: how many passes over the
    data set (epochs) is that?  Give at least one decimal."""
    value = as_float(answer)
    if value is None:
        return report(False, f"give a number, not {answer!r}.")
    ex = EPOCHS_EXERCISE
    right = epochs_answer()
    if abs(value - right) <= 0.05 + 1e-9:
        return report(True, "", success=f"Correct! {ex['steps']:,}·{ex['batch_size']} = {ex['steps'] * ex['batch_size']:,} "
                                         f"images seen, {right:.1f} times each. Fashion-MNIST's 3,510 steps were 3.7 "
                                         "epochs: a small data set is seen so often that memorising it is a real risk "
                                         "(§7).")
    if _near(value, 3390 * ex["batch_size"] / ex["images"], 1e-2):
        return report(False, "that is the shipped model's run (3,390 steps, §3); this exercise has 3,000 steps.")
    if _near(value, ex["steps"] * ex["batch_size"] / 1906, 1e-3):
        return report(False, "1,906 counts the held-out emoji too; training sees only the 1,630 in train/.")
    if _near(value, ex["steps"] / math.ceil(ex["images"] / ex["batch_size"]), 1e-3):
        return report(False, "the batches do not restart at each epoch's end (BatchOrder runs through one permutation "
                             "after another), so count images seen, steps · batch, not whole batches per epoch.")
    if _near(value, ex["steps"] / ex["images"], 1e-2):
        return report(False, "that counts one image per step; each step uses a batch of 64.")
    if _near(value, ex["images"] / (ex["steps"] * ex["batch_size"]), 1e-2):
        return report(False, "upside down: epochs = images seen / images in the data set.")
    if _near(value, ex["steps"] / (ex["images"] / ex["batch_size"]), 1e-2) and not _near(value, right, 1e-3):
        return report(False, "close: give at least one decimal.")
    return report(False, "images seen = steps · batch size; an epoch is one pass over all the images.")
