"""ddpm_teach.exercises.nb04: the expected answers agree with ddpm_teach.training, right answers pass,
and the typical wrong answers get a hint that names what went wrong."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ddpm_teach.exercises import nb04
from ddpm_teach.schedules import extract
from ddpm_teach.training import TrainConfig, diffusion_loss, ema_decay_at, lr_at

from helpers_exercises import hint as _hint, passes as _passes


# ------------------------------------------------------------------ exercise 1: the loss of Algorithm 1
def _ab(schedule, t, name="alphas_cumprod"):
    return getattr(schedule, name)[t].float().view(-1, 1, 1, 1)          # (B, 1, 1, 1)


def right_by_hand(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    return ((noise - model(x_t, t)) ** 2).mean()


def right_with_extract(model, schedule, x0, t, noise):
    x_t = extract(schedule.sqrt_alphas_cumprod, t, x0) * x0 + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise
    return F.mse_loss(model(x_t, t), noise)


def right_with_package(model, schedule, x0, t, noise):
    return diffusion_loss(model, schedule, x0, t, noise)[0]


@pytest.mark.parametrize("loss_fn", [right_by_hand, right_with_extract, right_with_package])
def test_algorithm1_right_answers(capsys, loss_fn):
    assert _passes(capsys, nb04.check_algorithm1_loss, loss_fn)


def no_sqrt(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    return F.mse_loss(model(ab * x0 + (1 - ab) * noise, t), noise)


def swapped(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    return F.mse_loss(model((1 - ab).sqrt() * x0 + ab.sqrt() * noise, t), noise)


def alphas_not_cumprod(model, schedule, x0, t, noise):
    a = _ab(schedule, t, "alphas")
    return F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t), noise)


def off_by_one(model, schedule, x0, t, noise):
    ab = _ab(schedule, (t + 1).clamp(max=schedule.T - 1))
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), noise)


def model_t_plus_1(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t + 1), noise)


def target_x0(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), x0)


def input_x0(model, schedule, x0, t, noise):
    return F.mse_loss(model(x0, t), noise)


def summed(model, schedule, x0, t, noise):
    return right_by_hand(model, schedule, x0, t, noise) * x0.numel()


def per_example(model, schedule, x0, t, noise):
    ab = _ab(schedule, t)
    return ((noise - model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t)) ** 2).mean(dim=(1, 2, 3))


def as_float(model, schedule, x0, t, noise):
    return right_by_hand(model, schedule, x0, t, noise).item()


def detached(model, schedule, x0, t, noise):
    with torch.no_grad():
        return right_by_hand(model, schedule, x0, t, noise)


def float64_coefficients(model, schedule, x0, t, noise):
    ab = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)                     # float64: the model refuses it
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), noise)


def forgot_view(model, schedule, x0, t, noise):
    ab = schedule.alphas_cumprod[t].float()                               # shape [B]: does not broadcast
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), noise)


def forgot_view_and_float(model, schedule, x0, t, noise):
    ab = schedule.alphas_cumprod[t]                                       # [B] float64: the shape fails first
    return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), noise)


def unrelated(model, schedule, x0, t, noise):
    return torch.tensor(0.5, requires_grad=True)


@pytest.mark.parametrize("loss_fn,words", [
    (no_sqrt, "square roots"),
    (swapped, "signal gets √ᾱ_t"),
    (alphas_not_cumprod, "cumulative product"),
    (off_by_one, "off by one"),
    (model_t_plus_1, "not t + 1"),
    (target_x0, "target of the MSE is ε"),
    (input_x0, "noisy x_t"),
    (summed, "that is a sum"),
    (per_example, "one number"),
    (as_float, "as a tensor"),
    (detached, "no gradient"),
    (float64_coefficients, "float64"),
    (unrelated, "build x_t"),
])
def test_algorithm1_wrong_answers_get_hints(capsys, loss_fn, words):
    assert words in _hint(capsys, nb04.check_algorithm1_loss, loss_fn)


@pytest.mark.parametrize("loss_fn", [forgot_view, forgot_view_and_float])
def test_algorithm1_forgotten_view_gets_the_reshape_hint(capsys, loss_fn):
    out = _hint(capsys, nb04.check_algorithm1_loss, loss_fn)
    assert "must match the size" in out                                   # the error itself is quoted
    assert "shape [B]" in out and "[B, 1, 1, 1]" in out and ".view(-1, 1, 1, 1)" in out and "x0 [B, C, H, W]" in out


def test_algorithm1_dtype_error_keeps_the_dtype_hint(capsys):
    out = _hint(capsys, nb04.check_algorithm1_loss, float64_coefficients)
    assert "float64" in out and ".float()" in out and ".view(-1, 1, 1, 1)" not in out


def test_algorithm1_exercise_model_is_not_trivial():
    """A fresh UNet outputs exactly 0, which would make wrong x_t's pass: the exercise's model must not."""
    model, schedule, x0, t, noise = nb04._exercise_model_and_batch()
    assert int(t.min()) == 0 and int(t.max()) == schedule.T - 1
    with torch.no_grad():
        assert model(x0, t).abs().mean() > 0.1
    right = float(diffusion_loss(model, schedule, x0, t, noise)[0].detach())
    for name, wrong in nb04._wrong_losses(model, schedule, x0, t, noise).items():
        assert not math.isclose(right, wrong, rel_tol=1e-4), name


# ------------------------------------------------------------------ exercise 2: the LR schedule
def test_lr_expected_matches_lr_at():
    config = TrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.1, lr=2e-4)
    expected = nb04.expected_lr_multipliers()
    assert expected == [lr_at(0, config), lr_at(400, config), lr_at(1000, config)]
    assert expected == pytest.approx([0.01, 0.775, 0.1])


@pytest.mark.parametrize("answer", [[0.01, 0.775, 0.1], (0.01, 0.7750, 0.10), torch.tensor([0.01, 0.775, 0.1]),
                                    nb04.expected_lr_multipliers()])
def test_lr_right_answers(capsys, answer):
    assert _passes(capsys, nb04.check_lr_multipliers, answer)


@pytest.mark.parametrize("answer,words", [
    ([2e-6, 1.55e-4, 2e-5], "learning rates"),
    ([0.0, 0.775, 0.1], "(step + 1)/warmup_steps"),
    ([0.5, 0.775, 0.1], "inside the warm-up"),
    ([0.01, 0.75, 0.1], "not to 0"),
    ([0.01, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.4)), 0.1], "end of the warm-up"),
    ([0.01, 0.1 + 0.9 * (2 / 3), 0.1], "linear decay"),
    ([0.01, 0.1 + 0.9 * 0.25, 0.1], "with a plus"),
    ([0.01, 0.5, 0.1], "progress ="),
    ([0.01, 0.775, 0.0], "floor"),
    ([0.01, 0.775, 1.0], "progress is 1"),
    ([0.01, 0.775], "give 3 numbers"),
    ("0.775", "three numbers"),
    (None, "three numbers"),
])
def test_lr_wrong_answers_get_hints(capsys, answer, words):
    assert words in _hint(capsys, nb04.check_lr_multipliers, answer)


# ------------------------------------------------------------------ exercise 3: the EMA decay
def test_ema_expected_matches_ema_decay_at():
    d, w = nb04.expected_ema()
    assert d == ema_decay_at(49, 0.999) == pytest.approx(50 / 59)
    assert w == pytest.approx(1000.0)


@pytest.mark.parametrize("answer", [(50 / 59, 1000), (0.8475, 1000.0), (torch.tensor(0.847458), 999.99)])
def test_ema_right_answers(capsys, answer):
    assert _passes(capsys, nb04.check_ema, *answer)


@pytest.mark.parametrize("answer,words", [
    ((0.999, 1000), "still below 0.999"),
    ((1 - 50 / 59, 1000), "1 − d"),
    ((49 / 58, 1000), "off by one"),
    ((51 / 60, 1000), "off by one"),
    ((1 / (1 - 50 / 59), 1000), "the window 1/(1 − d)"),
    ((0.5, 1000), "min(decay"),
    ((50 / 59, 59 / 9), "during the warm-up"),
    ((50 / 59, 0.001), "number of steps"),
    ((50 / 59, 10), "full decay"),
    (("a", 1000), "two numbers"),
])
def test_ema_wrong_answers_get_hints(capsys, answer, words):
    assert words in _hint(capsys, nb04.check_ema, *answer)
