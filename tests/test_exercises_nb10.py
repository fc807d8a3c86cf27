"""ddpm_teach.exercises.nb10: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here from the definitions: the KL of two
1-D Gaussians by Monte Carlo-free closed form in numpy (and by torch.distributions), the latent's
size from f = 2^(levels − 1), and the scale factor 1/std."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb10

from helpers_exercises import hint, passes

MU, SIGMA = 0.6, 0.5


def test_kl_answer_is_the_closed_form_and_torch_distributions():
    closed = 0.5 * (MU ** 2 + SIGMA ** 2 - 1 - np.log(SIGMA ** 2))
    oracle = torch.distributions.kl_divergence(torch.distributions.Normal(MU, SIGMA), torch.distributions.Normal(0.0, 1.0))
    assert nb10.kl_answer() == pytest.approx(closed, rel=1e-12) == pytest.approx(float(oracle), rel=1e-6)


def test_kl_right_answers(capsys):
    right = 0.5 * (MU ** 2 + SIGMA ** 2 - 1 - math.log(SIGMA ** 2))
    for answer in (right, np.float32(right), torch.tensor(right), round(right, 4)):
        assert passes(capsys, nb10.check_kl, answer) is True


@pytest.mark.parametrize("wrong, words", [
    (MU ** 2 + SIGMA ** 2 - 1 - math.log(SIGMA ** 2), "½"),
    (0.5 * (MU ** 2 + SIGMA - 1 - math.log(SIGMA)), "squared"),
    (0.5 * (MU ** 2 + SIGMA ** 2 - 1 - math.log(SIGMA)), "log is of the variance"),
    (0.5 * (SIGMA ** 2 - 1 - math.log(SIGMA ** 2)), "mean counts"),
    (0.5 * (MU ** 2 + SIGMA ** 2 - 1 - math.log10(SIGMA ** 2)), "natural logarithm"),
    (0.5, "at least 3 decimals"),
    (-0.1, "never negative"),
    (3.0, "½(μ² + σ² − 1 − log σ²)"),
    ("0.3", "one number"),
])
def test_kl_wrong_answers_get_the_hint_for_their_slip(capsys, wrong, words):
    assert words in hint(capsys, nb10.check_kl, wrong)


def test_latent_size_answer():
    # 64×64×3 with 4 levels: 3 halvings, f = 8 → 8×8×16
    assert nb10.latent_size_answer() == (8 * 8 * 16, 64 * 64 * 3 / (8 * 8 * 16))


def test_latent_size_right_and_wrong(capsys):
    assert passes(capsys, nb10.check_latent_size, 1024, 12) is True
    assert passes(capsys, nb10.check_latent_size, torch.tensor(1024), 12.0) is True
    assert "only 3 downsamplings" in hint(capsys, nb10.check_latent_size, 4 * 4 * 16, 48)
    assert "c channels" in hint(capsys, nb10.check_latent_size, 64, 192)
    assert "not the image's 3" in hint(capsys, nb10.check_latent_size, 192, 64)
    assert "square the side" in hint(capsys, nb10.check_latent_size, 128, 96)
    assert "3 colour channels" in hint(capsys, nb10.check_latent_size, 1024, 4)
    assert "(C·H·W)" in hint(capsys, nb10.check_latent_size, 1024, 7)
    assert "whole number" in hint(capsys, nb10.check_latent_size, 1024.5, 12)


def test_scale_factor_right_and_wrong(capsys):
    assert passes(capsys, nb10.check_scale_factor, lambda z: 1 / z.std()) is True
    assert passes(capsys, nb10.check_scale_factor, lambda z: float(1 / np.std(z.numpy(), ddof=1))) is True
    assert "standard deviation itself" in hint(capsys, nb10.check_scale_factor, lambda z: z.std())
    assert "1/variance" in hint(capsys, nb10.check_scale_factor, lambda z: 1 / z.var())
    assert "largest value" in hint(capsys, nb10.check_scale_factor, lambda z: 1 / z.abs().max())
    assert "raised ZeroDivisionError" in hint(capsys, nb10.check_scale_factor, lambda z: 1 / 0)
    assert "function itself" in hint(capsys, nb10.check_scale_factor, 0.33)
    assert "one number" in hint(capsys, nb10.check_scale_factor, lambda z: z)
