"""Exercise checks for notebook 04 (training).

Each ``check_*`` prints ``Correct!`` (or a success note) and returns True, or prints a hint and
returns False.  The expected answers come from :mod:`ddpm_teach.training` itself
(:func:`~ddpm_teach.training.diffusion_loss`, :func:`~ddpm_teach.training.lr_at`,
:func:`~ddpm_teach.training.ema_decay_at`); ``tests/test_exercises_nb04.py`` checks them.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from . import report

__all__ = [
    "LR_EXERCISE",
    "EMA_EXERCISE",
    "check_algorithm1_loss",
    "check_lr_multipliers",
    "check_ema",
]

# Exercise 2: TrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.1, lr=2e-4); the multiplier at these steps
LR_EXERCISE = dict(steps=1000, warmup_steps=100, min_lr_ratio=0.1, lr=2e-4, at=(0, 400, 1000))
# Exercise 3: ema_decay=0.999 with warm-up: the decay of the update after n=49 earlier ones, and the window late on
EMA_EXERCISE = dict(decay=0.999, n=49)   # n = 49: §3 of the notebook prints n = 0, 1, 9, 99, ...


# ------------------------------------------------------------------ exercise 1: the loss of Algorithm 1
def _exercise_model_and_batch():
    """A small UNet with every weight non-zero (a fresh UNet outputs exactly 0 and would hide
    mistakes in x_t), the linear T=1000 schedule, and a batch whose t includes 0 and T−1."""
    from ..schedules import NoiseSchedule
    from ..unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                            attention_resolutions=(), num_heads=1, dropout=0.0, norm_groups=4))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if torch.count_nonzero(param) == 0:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    model.eval()
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1                    # (B, C, H, W) in [-1, 1]
    t = torch.tensor([0, 3, 500, 999])
    noise = torch.randn(x0.shape, generator=gen)
    return model, schedule, x0, t, noise


def _wrong_losses(model, schedule, x0, t, noise) -> dict[str, float]:
    """The losses of the usual mistakes, each with the same model, x_0, t and ε."""
    ab = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)               # ᾱ_t, (B, 1, 1, 1)
    a = schedule.alphas[t].float().view(-1, 1, 1, 1)                        # α_t
    ab_next = schedule.alphas_cumprod[(t + 1).clamp(max=schedule.T - 1)].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    with torch.no_grad():
        wrong = {
            "no_sqrt": F.mse_loss(model(ab * x0 + (1 - ab) * noise, t), noise),
            "swapped": F.mse_loss(model((1 - ab).sqrt() * x0 + ab.sqrt() * noise, t), noise),
            "alphas": F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t), noise),
            "off_by_one": F.mse_loss(model(ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * noise, t), noise),
            "model_t_plus_1": F.mse_loss(model(x_t, t + 1), noise),
            "target_x0": F.mse_loss(model(x_t, t), x0),
            "input_x0": F.mse_loss(model(x0, t), noise),
            "no_model": F.mse_loss(x_t, noise),
        }
    return {k: float(v) for k, v in wrong.items()}


_LOSS_HINTS = {
    "no_sqrt": "x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε (eq. 4): the coefficients are square roots, so that the variance "
               "of x_t stays 1.",
    "swapped": "the signal gets √ᾱ_t and the noise √(1 − ᾱ_t): at t = 0, x_t is almost x_0.",
    "alphas": "x_t from x_0 in one jump uses the cumulative product ᾱ_t = α_1···α_t (schedule.alphas_cumprod), "
              "not α_t.",
    "off_by_one": "the coefficients are off by one step: with 0-based indices, ᾱ at index t is "
                  "schedule.alphas_cumprod[t] (index 0 is the paper's t=1).",
    "model_t_plus_1": "give the model the same 0-based t that picked ᾱ_t: model(x_t, t), not t + 1.",
    "target_x0": "the model predicts the noise ε (eq. 14), so the target of the MSE is ε, not x_0.",
    "input_x0": "the model sees the noisy x_t, not the clean x_0.",
    "no_model": "the loss compares the model's prediction ε_θ(x_t, t) with ε; call the model on x_t.",
}


def _is_size_error(error: Exception) -> bool:
    """The broadcasting slip: ᾱ_t of shape [B] times x0 of shape [B, C, H, W] ("The size of tensor a (4)
    must match the size of tensor b (8) at non-singleton dimension 3")."""
    message = str(error)
    return "must match the size" in message or (
        isinstance(error, RuntimeError) and re.search(r"\bsizes?\b|\bshapes?\b|broadcast", message) is not None)


def check_algorithm1_loss(loss_fn: Callable) -> bool:
    """Exercise 1: ``loss_fn(model, schedule, x0, t, noise)`` returns L_simple (DDPM eq. 14) for one
    batch: a scalar tensor, the mean over batch and pixels of (ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t))².
    It is compared with :func:`ddpm_teach.training.diffusion_loss` on a small model with random weights."""
    from ..training import diffusion_loss

    model, schedule, x0, t, noise = _exercise_model_and_batch()
    try:
        answer = loss_fn(model, schedule, x0.clone(), t.clone(), noise.clone())
    except Exception as error:  # the learner's code failed: say how, and where to look
        if _is_size_error(error):
            return report(False, f"your function raised {type(error).__name__}: {error}. ᾱ_t = "
                                 "schedule.alphas_cumprod[t] has shape [B]; reshape it to [B, 1, 1, 1] "
                                 "(.view(-1, 1, 1, 1)) so that it broadcasts against x0 [B, C, H, W] "
                                 "(and .float() it: the schedule's coefficients are float64).")
        return report(False, f"your function raised {type(error).__name__}: {error}. It is called as "
                             "loss_fn(model, schedule, x0, t, noise) with x0 and noise [4, 1, 8, 8] float32 and t "
                             "[4] long; the schedule's coefficients are float64 (use .float(), or "
                             "ddpm_teach.schedules.extract(schedule.alphas_cumprod, t, x0)).")
    expected = diffusion_loss(model, schedule, x0, t, noise)[0].detach()
    if not isinstance(answer, torch.Tensor):
        return report(False, "return the loss as a tensor (not a Python number, no .item()), so that "
                             "loss.backward() can train the model.")
    if answer.numel() != 1:
        return report(False, f"return one number: your loss has shape {tuple(answer.shape)}. L_simple is the mean "
                             "over the batch and every pixel (.mean()).")
    value = float(answer.detach())
    if math.isclose(value, float(expected), rel_tol=1e-4, abs_tol=1e-6):
        if not answer.requires_grad:
            return report(False, "the value is right, but the loss carries no gradient: do not compute it under "
                                 "torch.no_grad() or detach it, or the optimizer has nothing to follow.")
        return report(True, "", success=f"Correct! Your loss {value:.6f} equals diffusion_loss's.")
    for name, wrong in _wrong_losses(model, schedule, x0, t, noise).items():
        if math.isclose(value, wrong, rel_tol=1e-4, abs_tol=1e-6):
            return report(False, _LOSS_HINTS[name])
    per_pixel = x0[0].numel()
    for factor, what in ((x0.numel(), "the batch and every pixel"), (per_pixel, "every pixel")):
        if math.isclose(value, float(expected) * factor, rel_tol=1e-4):
            return report(False, f"that is a sum; L_simple here is the mean over {what} (.mean(), "
                                 "or F.mse_loss).")
    return report(False, "build x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε with ᾱ_t = schedule.alphas_cumprod[t] shaped "
                         "[B, 1, 1, 1], then return ((noise − model(x_t, t))**2).mean().")


# ------------------------------------------------------------------ exercise 2: the LR schedule
def _lr_config():
    from ..training import TrainConfig

    ex = LR_EXERCISE
    return TrainConfig(steps=ex["steps"], warmup_steps=ex["warmup_steps"], min_lr_ratio=ex["min_lr_ratio"], lr=ex["lr"])


def expected_lr_multipliers() -> list[float]:
    from ..training import lr_at

    config = _lr_config()
    return [lr_at(step, config) for step in LR_EXERCISE["at"]]


def check_lr_multipliers(answer: Sequence[float]) -> bool:
    """Exercise 2: the LR multipliers ``lr_at(step, config)`` at steps 0, 400 and 1000 for
    ``TrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.1, lr=2e-4)``."""
    ex = LR_EXERCISE
    try:
        values = [float(v) for v in answer]
    except (TypeError, ValueError):
        return report(False, f"give three numbers, the multipliers at steps {ex['at']}, e.g. a list [m0, m400, m1000].")
    if len(values) != len(ex["at"]):
        return report(False, f"give {len(ex['at'])} numbers, one per step {ex['at']}; you gave {len(values)}.")
    expected = expected_lr_multipliers()
    close = [math.isclose(v, e, rel_tol=1e-3, abs_tol=1e-4) for v, e in zip(values, expected)]
    if all(close):
        rates = ", ".join(f"{e * ex['lr']:.3g}" for e in expected)
        return report(True, "", success=f"Correct! The multipliers are {[round(e, 4) for e in expected]}, "
                                        f"so the learning rates are [{rates}].")
    if all(math.isclose(v, e * ex["lr"], rel_tol=1e-3) for v, e in zip(values, expected)):
        return report(False, "those are learning rates; the question asks for the multiplier lr_at(step), which "
                             "LambdaLR multiplies the base lr by (divide by lr = 2e-4).")
    warm, mid, end = values
    w, n, floor = ex["warmup_steps"], ex["steps"], ex["min_lr_ratio"]
    if not close[0]:
        if math.isclose(warm, 0.0, abs_tol=1e-9):
            return report(False, "step 0: the warm-up is (step + 1)/warmup_steps, so the very first step already "
                                 f"trains at 1/{w} of the lr instead of wasting a step at lr 0.")
        return report(False, f"step 0 is inside the warm-up (steps 0..{w - 1}): the multiplier is "
                             "(step + 1)/warmup_steps, growing linearly to 1.")
    if not close[1]:
        step = ex["at"][1]
        progress = (step - w) / (n - w)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        if math.isclose(mid, cosine, rel_tol=1e-3):
            return report(False, "after the warm-up the cosine decays to min_lr_ratio, not to 0: "
                                 "min_lr_ratio + (1 − min_lr_ratio)·½(1 + cos(π·progress)).")
        if math.isclose(mid, floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / n)), rel_tol=1e-3):
            return report(False, "progress counts from the end of the warm-up: (step − warmup_steps)/(steps − "
                                 "warmup_steps).")
        if math.isclose(mid, floor + (1 - floor) * (1 - progress), rel_tol=1e-3):
            return report(False, "that is a linear decay; the schedule is a half cosine: ½(1 + cos(π·progress)).")
        if math.isclose(mid, floor + (1 - floor) * 0.5 * (1 - math.cos(math.pi * progress)), rel_tol=1e-3):
            return report(False, "the cosine part starts at 1 and ends at 0: ½(1 + cos(π·progress)), with a plus.")
        return report(False, f"step {step}: progress = (step − warmup_steps)/(steps − warmup_steps), then "
                             "min_lr_ratio + (1 − min_lr_ratio)·½(1 + cos(π·progress)).")
    if math.isclose(end, 0.0, abs_tol=1e-9):
        return report(False, f"at the last step the cosine part is 0, but the multiplier keeps its floor "
                             f"min_lr_ratio = {floor}.")
    return report(False, "at step = steps the progress is 1 (and it is clamped at 1 after that): what is left "
                         "of min_lr_ratio + (1 − min_lr_ratio)·½(1 + cos(π·progress))?")


# ------------------------------------------------------------------ exercise 3: the EMA decay
def expected_ema() -> tuple[float, float]:
    """(decay of the update after n earlier ones, the averaging window 1/(1 − decay) once warm-up is over)."""
    from ..training import ema_decay_at

    ex = EMA_EXERCISE
    return ema_decay_at(ex["n"], ex["decay"], warmup=True), 1.0 / (1.0 - ex["decay"])


def check_ema(decay_at_n: float, window: float) -> bool:
    """Exercise 3: with ``ema_decay=0.999`` and the warm-up, (a) the decay used by the update after
    n = 49 earlier ones, and (b) the effective averaging window 1/(1 − d), in steps, late in a long run."""
    ex = EMA_EXERCISE
    try:
        d, w = float(decay_at_n), float(window)
    except (TypeError, ValueError):
        return report(False, "give two numbers: check_ema(decay_at_n, window).")
    expected_d, expected_w = expected_ema()
    n = ex["n"]
    ok_d = math.isclose(d, expected_d, rel_tol=1e-4)
    ok_w = math.isclose(w, expected_w, rel_tol=0.01)
    if ok_d and ok_w:
        return report(True, "", success=f"Correct! d = min({ex['decay']}, {1 + n}/{10 + n}) = {expected_d:.4f}, a window of "
                                        f"about {1 / (1 - expected_d):.0f} steps; late in the run the window is "
                                        f"{expected_w:.0f} steps.")
    if not ok_d:
        if math.isclose(d, ex["decay"], rel_tol=1e-6):
            return report(False, f"with warm-up the decay is min(decay, (1 + n)/(10 + n)); at n = {n} that is "
                                 "still below 0.999.")
        if math.isclose(d, 1 - expected_d, rel_tol=1e-3):
            return report(False, "that is 1 − d, the weight of the new parameters; the question asks for d.")
        if math.isclose(d, n / (9 + n), rel_tol=1e-4) or math.isclose(d, (2 + n) / (11 + n), rel_tol=1e-4):
            return report(False, f"off by one: the formula is (1 + n)/(10 + n) with n = {n} earlier updates.")
        if math.isclose(d, 1 / (1 - expected_d), rel_tol=0.01):
            return report(False, "that is the window 1/(1 − d); the first number is the decay d itself.")
        return report(False, f"d = min(decay, (1 + n)/(10 + n)) with decay = {ex['decay']} and n = {n} "
                             "(ddpm_teach.training.ema_decay_at).")
    if math.isclose(w, 1 / (1 - expected_d), rel_tol=0.01):
        return report(False, f"that is the window at n = {n}, during the warm-up; late in a long run the decay "
                             f"has reached {ex['decay']}.")
    if math.isclose(w, 1 - ex["decay"], rel_tol=0.01) or math.isclose(w, ex["decay"], rel_tol=0.01):
        return report(False, "the window is a number of steps, 1/(1 − d): the weight (1 − d)·d^k of the step k "
                             "updates back falls by a factor e after about 1/(1 − d) steps.")
    return report(False, "late in the run d is the full decay; the weight of the step k updates back is "
                         "(1 − d)·d^k, which falls by a factor e after about 1/(1 − d) steps.")
