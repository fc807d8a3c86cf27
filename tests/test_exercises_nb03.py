"""ddpm_teach.exercises.nb03: the expected answers agree with the model itself, right answers pass,
and the typical wrong answers get a hint that names what went wrong."""
from __future__ import annotations

import pytest
import torch

from ddpm_teach.exercises import nb03
from ddpm_teach.unet import ConvNeXtBlock, ResBlock, UNet, UNetConfig, trace_shapes

from helpers_exercises import hint as _hint, passes as _passes


# ------------------------------------------------------------------ exercise 1: shape
def test_shape_answer_matches_the_trace():
    ex = nb03.SHAPE_EXERCISE
    model = UNet(UNetConfig(image_size=ex["image_size"], in_channels=ex["in_channels"],
                            base_channels=ex["base_channels"], channel_mults=ex["channel_mults"]))
    x = torch.zeros(ex["batch"], ex["in_channels"], ex["image_size"], ex["image_size"])
    shapes = dict(trace_shapes(model, x, 0))
    assert shapes["downsamples.1"] == (8, 128, 8, 8)


def test_shape_exercise_tells_the_levels_apart():
    """Reading the width off the wrong level must give a wrong answer: with mults like (1, 2, 2),
    base·mult[2] happened to equal base·mult[1], and the wrong reasoning passed."""
    ex = nb03.SHAPE_EXERCISE
    widths = [ex["base_channels"] * m for m in ex["channel_mults"]]
    right = widths[1]
    # level 0's width, level 2's width, "a downsample doubles the channels", the input's channels
    wrong = [widths[0], widths[2], 2 * right, ex["in_channels"]]
    assert len({right, *wrong}) == 1 + len(wrong)


@pytest.mark.parametrize("answer", [(8, 128, 8, 8), [8, 128, 8, 8], torch.Size([8, 128, 8, 8]),
                                    torch.tensor([8, 128, 8, 8])])
def test_shape_right_answers(capsys, answer):
    assert _passes(capsys, nb03.check_shape_after_second_downsample, answer)


@pytest.mark.parametrize("answer,words", [
    ((8, 256, 8, 8), "keeps the channel count"),
    ((8, 192, 8, 8), "channel_mults[2]"),                     # level 2's width: mult[2] read instead of mult[1]
    ((8, 128, 16, 16), "first"),
    ((8, 128, 7, 7), "28×28"),
    ((8, 3, 8, 8), "in_channels"),
    ((8, 64, 8, 8), "level 1"),
    ((1, 128, 8, 8), "B = 8"),
    ((128, 8, 8), "four dimensions"),
    ((8, 128, 8, 4), "H = W"),
    ((8, 128, 4, 4), "halves"),
    ("8x128x8x8", "four integers"),
    (None, "four integers"),
])
def test_shape_wrong_answers_get_hints(capsys, answer, words):
    assert words in _hint(capsys, nb03.check_shape_after_second_downsample, answer)


# ------------------------------------------------------------- exercise 2: ResBlock size
def test_resblock_answer_matches_the_module():
    ex = nb03.RESBLOCK_EXERCISE
    block = ResBlock(ex["in_ch"], ex["out_ch"], ex["emb_dim"], dropout=0.1, groups=8)
    actual = sum(p.numel() for p in block.parameters())
    assert actual == 263_040
    assert nb03.check_resblock_parameters(actual) is True
    # and part by part
    parts = nb03._resblock_parts(ex["in_ch"], ex["out_ch"], ex["emb_dim"])
    for name, count in parts.items():
        assert sum(p.numel() for p in getattr(block, name).parameters()) == count, name


@pytest.mark.parametrize("answer", [263_040, 263040.0, torch.tensor(263_040)])
def test_resblock_right_answers(capsys, answer):
    assert _passes(capsys, nb03.check_resblock_parameters, answer)


@pytest.mark.parametrize("answer,words", [
    (263_040 - (64 * 128 + 128), "1×1 convolution"),          # skip left out
    (263_040 - (256 * 128 + 128), "emb_proj"),                # embedding projection left out
    (263_040 - 128, "norm1"),
    (263_040 - 256, "norm2"),
    (263_040 - 512, "bias"),                                  # no biases
    (263_040 - 384, "GroupNorm"),                             # norms not counted
    (263_040 - 512 - 384, "biases"),
    (263_040 - 8 * 64 * 128 - 8 * 128 * 128, "9 weights"),    # 3×3 kernels counted as 1 weight
    (263_040 + 8 * 64 * 128, "1×1, not 3×3"),                 # skip counted as a 3×3 conv
    (1_000, "add up"),
    ("many", "one integer"),
])
def test_resblock_wrong_answers_get_hints(capsys, answer, words):
    assert words in _hint(capsys, nb03.check_resblock_parameters, answer)


# -------------------------------------------------------------- exercise 3: scaling
def test_parameter_count_accepts_exact_and_quadratic_estimate(capsys):
    default = UNet(UNetConfig()).num_parameters()
    exact = UNet(UNetConfig(base_channels=96)).num_parameters()
    assert _passes(capsys, nb03.check_parameter_count_base96, exact)
    assert _passes(capsys, nb03.check_parameter_count_base96, round(default * (96 / 64) ** 2))


@pytest.mark.parametrize("factor,words", [(1.5, "linear"), (1.5 ** 3, "cubic"), (1.0, "base_channels=64"),
                                          (2.0, "start from")])
def test_parameter_count_wrong_answers_get_hints(capsys, factor, words):
    default = UNet(UNetConfig()).num_parameters()
    assert words in _hint(capsys, nb03.check_parameter_count_base96, round(default * factor))


def test_parameter_count_rejects_non_numbers(capsys):
    assert "one number" in _hint(capsys, nb03.check_parameter_count_base96, "lots")


# ------------------------------------------------------------------ exercise 4: a ConvNeXt block's parameters
def _convnext_block() -> ConvNeXtBlock:
    ex = nb03.CONVNEXT_EXERCISE
    return ConvNeXtBlock(ex["in_ch"], ex["out_ch"], ex["emb_dim"], dropout=0.1, mult=ex["mult"])


def test_convnext_answer_matches_the_module(capsys):
    block = _convnext_block()
    count = sum(p.numel() for p in block.parameters())
    assert count == sum(nb03._convnext_parts(**nb03.CONVNEXT_EXERCISE).values())
    for name, child in block.named_children():
        own = sum(p.numel() for p in child.parameters())
        assert own == nb03._convnext_parts(**nb03.CONVNEXT_EXERCISE).get(name, 0), name
    assert _passes(capsys, nb03.check_convnext_parameters, count)
    assert _passes(capsys, nb03.check_convnext_parameters, str(count))


@pytest.mark.parametrize("mistake,words", [
    ("full_dwconv", "depthwise"), ("no_dw_bias", "bias too"), ("emb_out", "Linear(emb_dim, in_ch)"), ("narrow", "inverted"),
    ("no_skip", "1×1 conv"), ("no_norm2", "norm2 sits on the wide tensor"), ("far", "add up dwconv"),
])
def test_convnext_wrong_answers_get_hints(capsys, mistake, words):
    ex = nb03.CONVNEXT_EXERCISE
    parts = nb03._convnext_parts(**ex)
    total = sum(parts.values())
    answer = {"full_dwconv": total - parts["dwconv"] + 49 * 64 * 64 + 64,
              "no_dw_bias": total - 64, "emb_out": total - parts["emb_proj"] + 256 * 128 + 128,
              "narrow": sum(nb03._convnext_parts(64, 128, 256, 1).values()),
              "no_skip": total - parts["skip"], "no_norm2": total - parts["norm2"], "far": 12345}[mistake]
    assert words in _hint(capsys, nb03.check_convnext_parameters, answer)
    assert "one integer" in _hint(capsys, nb03.check_convnext_parameters, "many")
