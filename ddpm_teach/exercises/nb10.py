"""Exercise checks for notebook 10 (latent diffusion: the KL term, the latent's size, the scale factor).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers come from
:mod:`ddpm_teach.autoencoder`, never typed in, so they follow the package.
"""
from __future__ import annotations

import math

import torch

from ..autoencoder import AutoencoderConfig, kl_divergence, latent_scale_factor
from . import as_float, as_whole_number, report

__all__ = ["KL_EXERCISE", "SIZE_EXERCISE", "kl_answer", "latent_size_answer", "check_kl", "check_latent_size",
           "check_scale_factor"]

# exercise 1: KL(N(μ, σ²) ‖ N(0, 1)) of one latent number
KL_EXERCISE = {"mu": 0.6, "sigma": 0.5}
# exercise 2: the numbers in one latent, and how many times fewer than the image has
# (64×64 RGB, f = 8, c = 16: the shape of Stable Diffusion 3's autoencoder, at a small size)
SIZE_EXERCISE = {"image_size": 64, "in_channels": 3, "channel_mults": (1, 2, 2, 4), "latent_channels": 16}
TOL = 1e-3            # relative


def _near(value: float, target: float, tol: float = TOL) -> bool:
    return math.isclose(value, target, rel_tol=tol, abs_tol=1e-9)


# ------------------------------------------------------------------ exercise 1: the KL of one number
def kl_answer() -> float:
    ex = KL_EXERCISE
    mean = torch.tensor([[ex["mu"]]], dtype=torch.float64)
    logvar = torch.tensor([[2 * math.log(ex["sigma"])]], dtype=torch.float64)
    return float(kl_divergence(mean, logvar))


def check_kl(answer) -> bool:
    """Exercise 1: KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − log σ²) for μ, σ of KL_EXERCISE."""
    value = as_float(answer)
    if value is None:
        return report(False, "give one number (a float), the KL in nats.")
    mu, sigma = KL_EXERCISE["mu"], KL_EXERCISE["sigma"]
    slips = [
        (mu ** 2 + sigma ** 2 - 1 - math.log(sigma ** 2), "you left out the ½ in front."),
        (0.5 * (mu ** 2 + sigma - 1 - math.log(sigma)), "σ appears squared: σ² = 0.25, and log σ² = 2 log σ."),
        (0.5 * (mu ** 2 + sigma ** 2 - 1 - math.log(sigma)), "the log is of the variance: log σ² = 2 log σ, not log σ."),
        (0.5 * (mu ** 2 + sigma ** 2 - 1 + math.log(sigma ** 2)), "check the sign of the log term: − log σ²."),
        (0.5 * (sigma ** 2 - 1 - math.log(sigma ** 2)), "the mean counts too: μ² is the price of being off-centre."),
        (0.5 * (mu ** 2 + sigma ** 2 - 1 - math.log10(sigma ** 2)), "KL in nats uses the natural logarithm (math.log), "
                                                                     "not log10."),
    ]
    right = kl_answer()
    if _near(value, right):
        return report(True, "")
    if value < 0:
        return report(False, "a KL divergence is never negative; check the signs in ½(μ² + σ² − 1 − log σ²).")
    if round(value, 1) == round(right, 1) and not _near(value, right):
        return report(False, "close: give at least 3 decimals.")
    hint = next((h for v, h in slips if _near(value, v)), "KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − log σ²).")
    return report(False, hint)


# ------------------------------------------------------------------ exercise 2: the latent's size
def latent_size_answer() -> tuple[int, float]:
    """(numbers in one latent, image numbers ÷ latent numbers) for SIZE_EXERCISE's autoencoder."""
    ex = SIZE_EXERCISE
    config = AutoencoderConfig(image_size=ex["image_size"], in_channels=ex["in_channels"],
                               latent_channels=ex["latent_channels"], channel_mults=ex["channel_mults"],
                               base_channels=8, norm_groups=4)
    numbers = math.prod(config.latent_shape)
    return numbers, ex["in_channels"] * ex["image_size"] ** 2 / numbers


def check_latent_size(numbers, ratio) -> bool:
    """Exercise 2: how many numbers one latent holds, and how many times fewer than the image."""
    n = as_whole_number(numbers)
    r = as_float(ratio)
    if n is None or r is None:
        return report(False, "give the count as a whole number and the ratio as a number.")
    ex = SIZE_EXERCISE
    right_n, right_r = latent_size_answer()
    levels = len(ex["channel_mults"])
    if n != right_n:
        f = 2 ** (levels - 1)
        slips = {(ex["image_size"] // 2 ** levels) ** 2 * ex["latent_channels"]:
                 f"there are {levels} levels but only {levels - 1} downsamplings between them: f = 2^{levels - 1} = {f}.",
                 (ex["image_size"] // f) ** 2: "the latent has c channels, each (H/f)×(W/f).",
                 (ex["image_size"] // f) ** 2 * ex["in_channels"]: "the latent's channels are c (latent_channels), "
                                                                     "not the image's 3.",
                 ex["image_size"] // f * ex["latent_channels"]: "each channel is a (H/f)×(W/f) square: square the side."}
        return report(False, slips.get(n, "the latent is c × (H/f) × (W/f) with f = 2^(levels − 1)."))
    if not _near(r, right_r):
        if _near(r, ex["image_size"] ** 2 / right_n):
            return report(False, "the image has 3 colour channels: count C·H·W numbers.")
        return report(False, "the ratio is (C·H·W) / (c·(H/f)·(W/f)).")
    return report(True, "")


# ------------------------------------------------------------------ exercise 3: the scale factor
def check_scale_factor(fn) -> bool:
    """Exercise 3: ``fn(latents)`` returns the number that scales latents to unit variance."""
    if not callable(fn):
        return report(False, "pass your function itself, e.g. check_scale_factor(my_scale_factor).")
    g = torch.Generator().manual_seed(10)
    latents = 3.0 * torch.randn(64, 4, 7, 7, generator=g) + 0.5
    try:
        value = as_float(fn(latents.clone()))
    except Exception as err:        # the learner's code: say what went wrong, do not crash the notebook
        return report(False, f"your function raised {type(err).__name__}: {err}")
    if value is None:
        return report(False, "return one number (a float or a one-element tensor).")
    right = latent_scale_factor(latents)
    std = latents.double().std().item()
    if _near(value, right, 1e-3):
        return report(True, "")
    if _near(value, std, 1e-2):
        return report(False, "that is the standard deviation itself; the factor that *divides* it out is 1/std.")
    if _near(value, 1 / std ** 2, 1e-2):
        return report(False, "that is 1/variance; scaling by a factor k multiplies the std by k, so k = 1/std.")
    if _near(value, 1 / latents.abs().max().item(), 1e-2):
        return report(False, "that scales the largest value to 1, not the standard deviation.")
    return report(False, "multiply the latents by k so that their standard deviation becomes 1: k = 1 / std.")
