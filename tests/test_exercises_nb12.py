"""ddpm_teach.exercises.nb12: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here from the definitions: x = u/127.5 − 1 per
channel, a 3x3 convolution's k·k·C_in·C_out weights plus C_out biases, (r·r)² attention scores,
and epochs = steps · batch / images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb12

from helpers_exercises import hint, passes


def test_model_range_answer_is_u_over_127_5_minus_1():
    assert nb12.model_range_answer() == pytest.approx((1.0, 128 / 127.5 - 1, -1.0), abs=1e-6)   # float32


def test_model_range_right_answers(capsys):
    for right in ((1.0, 0.00392, -1.0), (1.0, 0.0039, -1.0), (1.0, 0.004, -1.0), [1, 128 / 127.5 - 1, -1], torch.tensor([1.0, 0.0039216, -1.0]),
                  np.array([1.0, 0.003922, -1.0])):
        assert passes(capsys, nb12.check_model_range, right) is True


@pytest.mark.parametrize("wrong, words", [
    ((1.0, 128 / 255, 0.0), "0..1"),
    ((2.0, 128 / 127.5, 0.0), "subtract 1"),
    ((255 / 128 - 1, 0.0, -1.0), "127.5"),
    ((-1.0, 128 / 127.5 - 1, 1.0), "reversed"),
    ((255.0, 128.0, 0.0), "raw"),
    ((1.0, 0.0, -1.0), "not 128"),
    ((0.5, 0.5, 0.5), "to_model_range"),
])
def test_model_range_wrong_answers_get_their_hint(capsys, wrong, words):
    assert words in hint(capsys, nb12.check_model_range, wrong)


@pytest.mark.parametrize("bad", ["1, 0, -1", (1.0, 0.0), None, (1.0, "x", 2.0)])
def test_model_range_rejects_what_is_not_three_numbers(capsys, bad):
    assert "three numbers" in hint(capsys, nb12.check_model_range, bad)


def test_conv_in_answer_counts_a_real_unet():
    assert nb12.conv_in_answer() == 3 * 3 * 3 * 32 + 32 == 896


def test_conv_in_checks(capsys):
    assert passes(capsys, nb12.check_conv_in_params, 896) is True
    assert passes(capsys, nb12.check_conv_in_params, 896.0) is True
    for wrong, words in ((864, "bias"), (320, "grey"), (28, "one output channel"), (128, "3x3"), (1000, "kernel height")):
        assert words in hint(capsys, nb12.check_conv_in_params, wrong)
    assert "whole number" in hint(capsys, nb12.check_conv_in_params, 896.5)


def test_attention_checks(capsys):
    assert nb12.attention_answer() == 256 ** 2 == 65536
    assert passes(capsys, nb12.check_attention_entries, 65536) is True
    for wrong, words in ((256, "number of tokens"), (512, "square"), (4096 ** 2, "full 64x64"), (4096, "positions of the full"),
                         (256 ** 2 + 64 ** 2, "8x8 level"), (7, "count the tokens")):
        assert words in hint(capsys, nb12.check_attention_entries, wrong)


def test_epochs_checks(capsys):
    assert nb12.epochs_answer() == pytest.approx(3000 * 64 / 1630)
    for right in (117.8, 117.79, 3000 * 64 / 1630):
        assert passes(capsys, nb12.check_epochs, right) is True
    for wrong, words in ((3000 / 1630, "one image per step"), (1630 / (3000 * 64), "upside down"), (118, "decimal"),
                         (133.1, "3,390 steps"), (3000 * 64 / 1906, "1,906"), (3000 / 26, "BatchOrder"), (50.0, "images seen")):
        assert words in hint(capsys, nb12.check_epochs, wrong)
