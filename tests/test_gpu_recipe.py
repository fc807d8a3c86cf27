"""The shipped training recipes (configs/*.toml) and the memory and FLOP table behind the 64x64 one
(benchmarks/image_sizes.py, issue item 5).

Every train config parses through the command line into a valid TrainConfig and UNetConfig, and
trains one real step through ``python -m ddpm_teach train --config FILE`` on a small synthetic
colour folder at the config's own image size and with the config's own UNet (a batch of 2, fp32 and
eager on the CPU); the checkpoint holds the file's values.  The saved-tensor count is checked
against a closed form, the FLOP count for linearity in the batch, and the benchmark runs at --quick."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from benchmarks.image_sizes import SavedTensors, at_size, count_pass, course_models, max_batch
from benchmarks.image_sizes import main as image_sizes_main
from ddpm_teach.checkpoint import load_checkpoint
from ddpm_teach.cli import main, parse_args
from ddpm_teach.commands import DERIVED_MODEL_FIELDS
from ddpm_teach.config import read_config_file
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.training import TrainConfig
from ddpm_teach.unet import UNet, UNetConfig

from helpers_training import REPO

CONFIGS = REPO / "configs"
TRAIN_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.toml") if "checkpoint" not in read_config_file(p))  # not `sample`
MODEL_FIELDS = {f.name for f in dataclasses.fields(UNetConfig)} - DERIVED_MODEL_FIELDS
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _file_values(name: str) -> dict:
    return {k.replace("-", "_"): v for k, v in read_config_file(CONFIGS / name).items() if k != "preset"}


def _image_size(args) -> int:
    return args.image_size or 28                 # fashion_mnist_small.toml: the data's own 28x28


def test_the_recipes_are_shipped():
    assert {"photos64_gpu.toml", "colour32_cpu.toml", "fashion_mnist_small.toml"} <= set(TRAIN_CONFIGS)


@pytest.mark.parametrize("name", TRAIN_CONFIGS)
def test_train_config_parses_into_valid_configs(name):
    args = parse_args(["train", "--config", str(CONFIGS / name)])
    for key, value in _file_values(name).items():                      # every value of the file arrived
        assert _plain(getattr(args, key)) == value, key
    config = TrainConfig(**{f: getattr(args, f) for f in TRAIN_FIELDS})                         # checks its numbers
    model = UNetConfig(**{f: getattr(args, f) for f in MODEL_FIELDS}, image_size=_image_size(args), in_channels=3)
    assert model.resolutions[-1] >= 4 and set(model.attention_resolutions) <= set(model.resolutions)
    assert config.steps >= 1 and config.batch_size * config.grad_accum >= 1


def test_photos64_recipe_choices():
    """What the 64x64 recipe promises in its comments: 64 px, four levels down to 8x8, attention at 16
    and 8, fp16/bf16 by "auto", an effective batch of 128, mirrored photos."""
    args = parse_args(["train", "--config", str(CONFIGS / "photos64_gpu.toml")])
    assert args.image_size == 64 and list(args.channel_mults) == [1, 2, 2, 4] and list(args.attention_resolutions) == [16, 8]
    assert args.mixed_precision == "auto" and args.batch_size * args.grad_accum == 128 and args.hflip is True
    model = UNetConfig(**{f: getattr(args, f) for f in MODEL_FIELDS}, image_size=64, in_channels=3)
    assert model.resolutions == [64, 32, 16, 8]
    assert 15e6 < UNet(model).num_parameters() < 25e6           # "18.5M parameters"


def test_colour32_recipe_is_the_emoji_command_line():
    """configs/colour32_cpu.toml resolves to the same options as the command line it documents."""
    from_file = parse_args(["train", "--config", str(CONFIGS / "colour32_cpu.toml")])
    from_flags = parse_args(["train", "--preset", "cpu-fast", "--dataset", "data/emoji", "--conditional",
                             "--channel-mults", "1", "2", "2", "2", "--attention-resolutions", "8", "4", "--no-compile",
                             "--max-minutes", "30", "--out-dir", "runs/emoji", "--image-size", "32"])
    for name in TRAIN_FIELDS | MODEL_FIELDS:
        assert _plain(getattr(from_file, name)) == _plain(getattr(from_flags, name)), name


def _synthetic_folder(root, size: int, classes: int = 2, per_class: int = 3):
    """``classes`` sub-folders of ``per_class`` random RGB PNGs, size x size."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8).numpy()
            Image.fromarray(pixels, mode="RGB").save(root / f"class{k}" / f"{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN_CONFIGS)
def test_train_config_trains_one_step_through_the_command_line(name, tmp_path):
    """One optimizer step of the config's own model at its own image size, through `train --config`,
    with only the data, the length, the place and the CPU-side options (batch 2, fp32, eager)
    overridden; then one more with --resume, as after a Colab disconnect."""
    args = parse_args(["train", "--config", str(CONFIGS / name)])
    size = _image_size(args)
    folder = _synthetic_folder(tmp_path / "photos", size)
    out = tmp_path / "run"
    overrides = {"dataset": str(folder), "steps": 1, "out_dir": str(out), "checkpoint_every": 0, "device": "cpu",
                 "batch_size": 2, "mixed_precision": "no", "compile": False}
    argv = ["train", "--config", str(CONFIGS / name), "--dataset", str(folder), "--steps", "1", "--out-dir", str(out),
            "--checkpoint-every", "0", "--device", "cpu", "--batch-size", "2", "--mixed-precision", "no", "--no-compile"]
    assert main(argv) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt", kind="diffusion")
    assert ckpt["step"] == 1
    model, train = ckpt["model_config"], ckpt["train_config"]
    for key in MODEL_FIELDS:                                            # the file's (or its preset's) UNet
        assert _plain(model[key]) == _plain(getattr(args, key)), key
    assert model["image_size"] == size and model["in_channels"] == 3
    assert model["num_classes"] == (2 if args.conditional else None)
    for key, value in _file_values(name).items():                       # and every value of the file
        expected = overrides.get(key, value)
        assert _plain(model[key] if key in MODEL_FIELDS else train[key]) == expected, key
    assert train["grad_accum"] == args.grad_accum and train["batch_size"] == 2
    # after a disconnect: the same command with --resume continues the run
    assert main([*argv[:argv.index("--steps")], "--steps", "2", *argv[argv.index("--steps") + 2:], "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt", kind="diffusion")["step"] == 2


# ----------------------------------------------------------------------------------------------
# benchmarks/image_sizes.py: the counting, against closed forms
# ----------------------------------------------------------------------------------------------

def test_saved_tensors_of_a_linear_layer_are_its_input():
    """y = x Wᵀ + b keeps x (B·in·4 bytes) for ∂L/∂W; W itself is a parameter, counted as fixed memory."""
    layer = nn.Linear(16, 8)
    for requires_grad in (False, True):
        x = torch.randn(5, 16, requires_grad=requires_grad)
        with SavedTensors(exclude=layer.parameters()) as saved:
            layer(x).sum()
        assert saved.bytes == 5 * 16 * 4
    with SavedTensors() as saved:                   # parameters included: + W (8·16·4), kept for ∂L/∂x
        layer(torch.randn(5, 16, requires_grad=True))
    assert saved.bytes == 5 * 16 * 4 + 8 * 16 * 4


def test_saved_tensors_count_each_storage_once():
    """Two views of one tensor saved by two operations are one storage; a copy is another."""
    w1, w2 = torch.randn(3, 16, requires_grad=True), torch.randn(3, 8, requires_grad=True)
    x = torch.randn(3, 16)
    with SavedTensors() as saved:
        x * w1, x[:, :8] * w2                                           # each mul saves (a view of) x
    assert saved.bytes == x.numel() * 4
    with SavedTensors() as saved:
        x * w1, x[:, :8].clone() * w2
    assert saved.bytes == x.numel() * 4 + 3 * 8 * 4


def test_flops_and_saved_bytes_are_linear_in_the_batch():
    """What the table divides by the batch: the FLOPs of batch 2 are twice those of batch 1, and the
    saved bytes are a per-step part plus a per-image part (batch 2 and 3 predict batch 4 exactly).
    Batch 1 is above that line in fp32: a reshape in attention that copies q at B > 1 is, at B = 1,
    a view that keeps the whole q-k-v tensor alive; so the table counts bytes at batch 2 and 3."""
    model = UNet(UNetConfig(image_size=16, in_channels=3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                            attention_resolutions=(8,), num_heads=2, dropout=0.1, norm_groups=4))
    schedule = NoiseSchedule.from_name("linear", 100)
    for amp_dtype in (None, torch.bfloat16):
        one, two, three, four = (count_pass(model, schedule, b, amp_dtype=amp_dtype, backward=True) for b in (1, 2, 3, 4))
        assert two["forward_flops"] == 2 * one["forward_flops"] and four["forward_flops"] == 4 * one["forward_flops"]
        assert two["backward_flops"] == 2 * one["backward_flops"] > one["forward_flops"]
        per_image = three["saved_bytes"] - two["saved_bytes"]
        assert four["saved_bytes"] == two["saved_bytes"] + 2 * per_image
        assert one["saved_bytes"] >= two["saved_bytes"] - per_image
        if amp_dtype is None:
            fp32_per_image = per_image
    assert per_image < fp32_per_image                                   # 16-bit activations are smaller


def test_size_rule_and_max_batch():
    models = course_models()
    assert at_size(models["cpu-fast"], 64).channel_mults == (1, 1, 2, 2)
    assert at_size(models["photos64"], 128).channel_mults == (1, 1, 2, 2, 4)
    assert at_size(models["photos64"], 32).channel_mults == (1, 2, 2)
    for size in (32, 64, 128):
        config = at_size(models["course default"], size)
        assert config.resolutions[-1] == 8 and config.attention_resolutions == (16, 8) and config.in_channels == 3
    with pytest.raises(ValueError, match="8·2\\^k"):
        at_size(models["cpu-fast"], 48)
    assert max_batch(per_image=10.0, fixed=30.0, usable=100.0) == 7 and max_batch(10.0, 200.0, 100.0) == 0


@pytest.mark.slow
def test_image_sizes_benchmark_quick(tmp_path, capsys):
    assert image_sizes_main(["--quick", "--threads", "1", "--out-dir", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    result = json.loads((tmp_path / "image_sizes.json").read_text())
    rows = result["rows"]
    assert [(r["model"], r["image_size"]) for r in rows] == [("cpu-fast", 32), ("course default", 32), ("photos64", 32)]
    for row in rows:
        assert row["flops_linear_in_batch"] and row["train_gflop_per_image"] > 2 * row["forward_gflop_per_image"]
        assert 0 < row["saved_mb_per_image_bf16"] < row["saved_mb_per_image_fp32"]
        assert row["max_batch_bf16"] >= row["max_batch_fp32"] > 0
        assert math.isclose(row["fixed_mb"], row["params"] * 20 / 1e6)
        if not torch.cuda.is_available():
            assert row["gpu_peak_mb"] == "not measured (no GPU)"
    assert rows[0]["params"] == UNet(at_size(course_models()["cpu-fast"], 32)).num_parameters()
    markdown = (tmp_path / "image_sizes.md").read_text()
    assert "| model | px |" in markdown and "not a measurement of the GPU allocator" in markdown
    assert "not a measurement of the CUDA allocator" in output and "saved MB/img 16-bit" in output
