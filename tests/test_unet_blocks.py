"""UNet block variants (issue 19): ``block="convnext"`` and ``resblock_updown`` (BigGAN).

Oracles: the parameter count from a closed-form sum over the layers; the BigGAN ResBlock against
diffusers' ``ResnetBlock2D(down=True/up=True)`` with the same weights; the ConvNeXt block against a
float64 functional reference written here; the shipped checkpoints (made before these options) as
the default architecture."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.data import ImageData
from ddpm_teach.trainer import Trainer
from ddpm_teach.unet import (ConvNeXtBlock, ResBlock, UNet, UNetConfig, block_trace, make_block, trace_shapes)

from helpers_training import REPO, finish, random_image_data, start_cli, tiny_model_config, tiny_train_config

VARIANTS = [("resnet", False), ("resnet", True), ("convnext", False), ("convnext", True)]
IDS = ["resnet", "resnet+biggan", "convnext", "convnext+updown"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


# ------------------------------------------------------------------ parameter count, closed form
def _conv(cin, cout, k, groups=1):
    return cin // groups * cout * k * k + cout


def _block_params(cfg: UNetConfig, cin: int, cout: int, emb: int) -> int:
    skip = _conv(cin, cout, 1) if cin != cout else 0
    if cfg.block == "resnet":
        return 2 * cin + _conv(cin, cout, 3) + emb * cout + cout + 2 * cout + _conv(cout, cout, 3) + skip
    wide = cfg.convnext_mult * cout
    return (_conv(cin, cin, 7, groups=cin) + emb * cin + cin + 2 * cin + _conv(cin, wide, 3) + 2 * wide
            + _conv(wide, cout, 3) + skip)


def expected_parameters(cfg: UNetConfig) -> int:
    """Every layer's weights and biases, summed by hand along the UNet's channel bookkeeping."""
    base, emb = cfg.base_channels, 4 * cfg.base_channels
    attn = lambda c: 2 * c + _conv(c, 3 * c, 1) + _conv(c, c, 1)                       # noqa: E731
    total = (base * emb + emb) + (emb * emb + emb) + _conv(cfg.in_channels, base, 3)   # time MLP, conv_in
    total += (cfg.num_classes + 1) * emb if cfg.num_classes else 0
    resample = (lambda c: _block_params(cfg, c, c, emb)) if cfg.resblock_updown else (lambda c: _conv(c, c, 3))
    ch, skips = base, [base]
    for level, (mult, res) in enumerate(zip(cfg.channel_mults, cfg.resolutions)):
        for _ in range(cfg.num_res_blocks):
            total += _block_params(cfg, ch, base * mult, emb) + (attn(base * mult) if res in cfg.attention_resolutions else 0)
            ch = base * mult
            skips.append(ch)
        if level < len(cfg.channel_mults) - 1:
            total += resample(ch)
            skips.append(ch)
    total += 2 * _block_params(cfg, ch, ch, emb) + attn(ch)
    for level in reversed(range(len(cfg.channel_mults))):
        mult, res = cfg.channel_mults[level], cfg.resolutions[level]
        for _ in range(cfg.num_res_blocks + 1):
            total += _block_params(cfg, ch + skips.pop(), base * mult, emb)
            ch = base * mult
            total += attn(ch) if res in cfg.attention_resolutions else 0
        if level > 0:
            total += resample(ch)
    return total + 2 * ch + _conv(ch, cfg.out_channels, 3)


@pytest.mark.parametrize("block,updown", VARIANTS, ids=IDS)
@pytest.mark.parametrize("size,attn", [(28, 7), (32, 8)])
@pytest.mark.parametrize("num_classes,learn_sigma", [(None, False), (10, True)])
def test_shapes_and_parameter_counts(block, updown, size, attn, num_classes, learn_sigma):
    cfg = UNetConfig(image_size=size, base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=2,
                     attention_resolutions=(attn,), num_classes=num_classes, learn_sigma=learn_sigma,
                     block=block, resblock_updown=updown)
    model = UNet(cfg).eval()
    assert model.num_parameters() == expected_parameters(cfg)
    x = torch.randn(2, 1, size, size)
    out = model(x, torch.tensor([0, 999]), None if num_classes is None else torch.tensor([3, 10]))
    assert out.shape == (2, 2 if learn_sigma else 1, size, size)
    trace = dict(trace_shapes(model, x, 5))
    for level in range(2):       # the resampling modules halve and double the side
        assert trace[f"downsamples.{level}"][-1] == size // 2 ** (level + 1)
        assert trace[f"upsamples.{level}"][-1] == size // 2 ** (1 - level)
    kind = ConvNeXtBlock if block == "convnext" else ResBlock
    assert isinstance(model.mid_block1, kind) and isinstance(model.down_levels[0].blocks[0], kind)
    assert isinstance(model.downsamples[0], kind) == updown


def test_the_shipped_checkpoints_are_the_default_architecture():
    """Checkpoints made before these options have no block fields: they load (strictly) as resnet
    without BigGAN resampling, and the closed-form count matches their weights."""
    ckpt = torch.load(REPO / "checkpoints" / "fashion_mnist_ddpm.pt", weights_only=True)
    assert not {"block", "resblock_updown", "convnext_mult"} & set(ckpt["model_config"])
    model, _, _ = load_diffusion_model(REPO / "checkpoints" / "fashion_mnist_ddpm.pt")
    assert model.config.block == "resnet" and model.config.resblock_updown is False
    assert model.num_parameters() == expected_parameters(model.config) == sum(v.numel() for v in ckpt["model"].values())


def test_at_equal_width_convnext_and_biggan_are_bigger():
    """At the cpu-fast preset's widths (base 32) BigGAN resampling adds about 13% and the ConvNeXt
    UNet (3×3 convs in a 2× bottleneck) is about 1.8 times the ResBlock UNet: why
    benchmarks/blocks.py narrows them to match."""
    counts = {}
    for block, updown in VARIANTS[:3]:
        cfg = UNetConfig(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(7,),
                         block=block, resblock_updown=updown)
        counts[block, updown] = UNet(cfg).num_parameters()
        assert counts[block, updown] == expected_parameters(cfg)
    assert 1.10 < counts["resnet", True] / counts["resnet", False] < 1.16
    assert 1.6 < counts["convnext", False] / counts["resnet", False] < 2.1


def test_the_benchmark_variants_are_within_five_percent():
    from benchmarks import blocks

    counts = blocks.check_parameter_counts(list(blocks.VARIANTS))
    reference = counts["resnet"]
    assert reference == 1_112_801                               # the shipped cpu-fast model's count
    assert all(abs(c / reference - 1) <= 0.05 for c in counts.values())
    assert UNet(blocks.variant_configs("resnet + BigGAN")[1]).config.resblock_updown
    assert UNet(blocks.variant_configs("convnext")[1]).config.block == "convnext"
    # the flags the training commands get are the same fields
    assert blocks.variant_flags("resnet + BigGAN") == ["--resblock-updown", "--base-channels", "30", "--norm-groups", "6"]
    assert blocks.variant_flags("convnext") == ["--block", "convnext", "--base-channels", "24"]
    assert blocks.variant_flags("resnet") == []


# ------------------------------------------------------------------ the blocks against oracles
def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (conv2 starts at zero), norm scales around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale_one = name.startswith("norm") and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if scale_one else 0.0))


@pytest.mark.parametrize("resample", ["down", "up", None])
@pytest.mark.parametrize("cin,cout", [(8, 8), (8, 16)])
def test_biggan_resblock_matches_diffusers(resample, cin, cout):
    resnet = pytest.importorskip("diffusers.models.resnet")
    ours = ResBlock(cin, cout, emb_dim=12, dropout=0.0, groups=4, resample=resample).double()
    _randomize(ours)
    peer = resnet.ResnetBlock2D(
        in_channels=cin, out_channels=cout, temb_channels=12, groups=4, groups_out=4, eps=1e-5, dropout=0.0,
        non_linearity="silu", up=resample == "up", down=resample == "down").double()
    names = {"norm1": "norm1", "conv1": "conv1", "emb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
             "skip": "conv_shortcut"}
    state = {}
    for key, value in ours.state_dict().items():
        module, param = key.rsplit(".", 1)
        state[f"{names[module]}.{param}"] = value
    peer.load_state_dict(state, strict=True)
    x, emb = torch.randn(3, cin, 8, 8, dtype=torch.float64), torch.randn(3, 12, dtype=torch.float64)
    out = ours(x, emb)
    side = {"down": 4, "up": 16, None: 8}[resample]
    assert out.shape == (3, cout, side, side)
    torch.testing.assert_close(out, peer(x, emb), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("resample", ["down", "up"])
def test_resampling_block_at_init_is_its_parameter_free_skip(resample):
    """conv2 starts at zero, so a fresh resampling block (in = out channels) is exactly 2×2 average
    pooling (down) or nearest doubling (up) of its input: the skip path, whatever the embedding."""
    x, emb = torch.randn(2, 8, 8, 8), torch.randn(2, 12)
    expected = F.avg_pool2d(x, 2) if resample == "down" else F.interpolate(x, scale_factor=2, mode="nearest")
    cfgs = [UNetConfig(base_channels=8, norm_groups=4, block=b) for b in ("resnet", "convnext")]
    for cfg in cfgs:
        block = make_block(cfg, 8, 8, 12, resample)
        out = block(x, emb)
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        trace = block_trace(block, x, emb)
        skip_shapes = [shape for name, _, shape in trace if name == "x_resample"]
        assert skip_shapes == [tuple(expected.shape)] and trace[-1][2] == tuple(expected.shape)


def convnext_reference(block: ConvNeXtBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """The ConvNeXt block written out with torch.nn.functional in float64: depthwise 7×7 conv, +
    linear(SiLU(emb)), (resample), LayerNorm over (C, H, W), 3×3 conv, GELU, LayerNorm, 3×3 conv, + skip."""
    p = {k: v.double() for k, v in block.state_dict().items()}
    x, emb = x.double(), emb.double()
    c = x.shape[1]
    h = F.conv2d(x, p["dwconv.weight"], p["dwconv.bias"], padding=3, groups=c)
    h = h + (F.silu(emb) @ p["emb_proj.weight"].T + p["emb_proj.bias"])[:, :, None, None]

    def resample(t):
        return {"down": lambda: F.avg_pool2d(t, 2), "up": lambda: F.interpolate(t, scale_factor=2), None: lambda: t}[
            block.resample]()

    def layer_norm(t, w, b):     # GroupNorm with one group = LayerNorm over C, H, W with per-channel affine
        mean = t.mean(dim=(1, 2, 3), keepdim=True)
        var = t.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (t - mean) / torch.sqrt(var + 1e-5) * w[:, None, None] + b[:, None, None]

    h = layer_norm(resample(h), p["norm1.weight"], p["norm1.bias"])
    h = F.conv2d(h, p["conv1.weight"], p["conv1.bias"], padding=1)
    h = layer_norm(0.5 * h * (1 + torch.erf(h / 2 ** 0.5)), p["norm2.weight"], p["norm2.bias"])
    h = F.conv2d(h, p["conv2.weight"], p["conv2.bias"], padding=1)
    skip = resample(x)
    if "skip.weight" in p:
        skip = F.conv2d(skip, p["skip.weight"], p["skip.bias"])
    return skip + h


@pytest.mark.parametrize("resample", ["down", "up", None])
@pytest.mark.parametrize("cin,cout,mult", [(8, 8, 2), (8, 16, 4)])
def test_convnext_block_matches_its_formula(resample, cin, cout, mult):
    block = ConvNeXtBlock(cin, cout, emb_dim=12, dropout=0.0, mult=mult, resample=resample)
    _randomize(block, seed=1)
    x, emb = torch.randn(2, cin, 8, 8), torch.randn(2, 12)
    out = block(x, emb)
    assert out.shape == (2, cout) + ((4, 4) if resample == "down" else (16, 16) if resample == "up" else (8, 8))
    torch.testing.assert_close(out.double(), convnext_reference(block, x, emb), rtol=1e-4, atol=1e-5)
    assert block.dwconv.groups == cin and block.dwconv.kernel_size == (7, 7)
    assert block.conv1.out_channels == mult * cout


def test_block_trace_lists_each_layer_in_order():
    block = ConvNeXtBlock(8, 16, emb_dim=12, dropout=0.0, resample="down")
    trace = block_trace(block, torch.randn(2, 8, 8, 8), torch.randn(2, 12))
    names = [name for name, _, _ in trace]
    assert names == ["dwconv", "emb_proj", "h_resample", "norm1", "conv1", "norm2", "dropout", "conv2",
                     "x_resample", "skip", "+ skip"]
    shapes = dict((name, shape) for name, _, shape in trace)
    assert shapes["dwconv"] == (2, 8, 8, 8) and shapes["h_resample"] == (2, 8, 4, 4)
    assert shapes["conv1"] == (2, 32, 4, 4) and shapes["+ skip"] == (2, 16, 4, 4)
    layers = dict((name, layer) for name, layer, _ in trace)
    assert layers["dwconv"].startswith("depthwise 7×7 conv") and "average pool" in layers["h_resample"]
    assert not block._forward_hooks and all(not m._forward_hooks for m in block.modules())


# ------------------------------------------------------------------ training, checkpoints, CLI
def _structured_data(n: int = 64, size: int = 8):
    """Images with structure (bright squares on a dark ground), so that a few steps can lower the loss."""
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        r, c = torch.randint(0, size // 2, (2,), generator=g).tolist()
        images[i, 0, r:r + size // 2, c:c + size // 2] = 255
    return ImageData(images, torch.zeros(n, dtype=torch.long), ["square"], "squares")


@pytest.mark.parametrize("block,updown", VARIANTS, ids=IDS)
def test_each_variant_trains_and_its_loss_falls(block, updown, tmp_path):
    config = tiny_train_config(tmp_path, steps=60, T=100, lr=3e-3, warmup_steps=5, batch_size=16)
    trainer = Trainer(config, tiny_model_config(block=block, resblock_updown=updown, dropout=0.0), _structured_data())
    losses = trainer.train(progress=False)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("block,updown", VARIANTS[1:], ids=IDS[1:])
def test_config_round_trip_through_a_checkpoint(block, updown, tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path, steps=2),
                      tiny_model_config(block=block, resblock_updown=updown, convnext_mult=3 if block == "convnext" else 2),
                      random_image_data())
    trainer.train(progress=False)
    ckpt = torch.load(trainer.checkpoint_path, weights_only=True)
    assert ckpt["model_config"]["block"] == block and ckpt["model_config"]["resblock_updown"] is updown
    model, _, _ = load_diffusion_model(trainer.checkpoint_path, use_ema=False)
    assert model.config == trainer.model.config
    x = torch.randn(2, 1, 8, 8)
    trainer.model.eval()
    torch.testing.assert_close(model(x, 3), trainer.model(x, 3), rtol=0, atol=0)
    # a resumed run rebuilds the same architecture from the checkpoint
    resumed = Trainer.resume(trainer.checkpoint_path, random_image_data(), {"steps": 3})
    assert resumed.model.config == trainer.model.config


@pytest.mark.parametrize("overrides,message", [
    (dict(block="vit"), r"block \(--block\) must be one of resnet, convnext"),
    (dict(resblock_updown="yes"), r"resblock_updown \(--resblock-updown\) must be True or False"),
    (dict(resblock_updown=True, channel_mults=(1,)), r"one level and never resamples"),
    (dict(convnext_mult=4), r"convnext_mult \(--convnext-mult\) sizes the ConvNeXt block, but block='resnet'"),
    (dict(block="convnext", convnext_mult=0), r"convnext_mult \(--convnext-mult\) must be a positive integer"),
])
def test_bad_combinations_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**{"channel_mults": (1, 2, 2), **overrides})


def test_cli_trains_samples_and_refuses_a_bad_combination(tmp_path):
    """The acceptance command, at toy size: train --block convnext --resblock-updown, then sample."""
    run = tmp_path / "run"
    done = finish(start_cli("train", "--block", "convnext", "--resblock-updown", "--dataset", "fashion_mnist",
                            "--steps", "3", "--batch-size", "8", "--base-channels", "8", "--norm-groups", "4",
                            "--num-heads", "2", "--num-res-blocks", "1", "--mixed-precision", "no", "--no-compile",
                            "--out-dir", run))
    assert done.returncode == 0, done.stderr
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["model_config"]["block"] == "convnext" and ckpt["model_config"]["resblock_updown"] is True
    out = tmp_path / "s.npz"
    done = finish(start_cli("sample", "--checkpoint", run / "checkpoint.pt", "--n", "2", "--steps", "2", "--out", out))
    assert done.returncode == 0, done.stderr
    import numpy as np
    assert np.load(out)["images"].shape == (2, 28, 28)
    # on --resume the architecture is the run's: the same value is accepted, another one refused in one line
    same = finish(start_cli("train", "--resume", run / "checkpoint.pt", "--block", "convnext", "--steps", "4"))
    assert same.returncode == 0, same.stderr
    other = finish(start_cli("train", "--resume", run / "checkpoint.pt", "--block", "resnet", "--steps", "5"))
    assert other.returncode == 2 and other.stderr.strip().count("\n") == 0
    assert "--block 'resnet' (the run has 'convnext')" in other.stderr and "Traceback" not in other.stderr
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4       # nothing overwritten
    bad = finish(start_cli("train", "--resblock-updown", "--channel-mults", "1", "--out-dir", tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "--resblock-updown" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_blocks_benchmark_at_toy_size_writes_its_table(tmp_path, capsys):
    from benchmarks import blocks

    out = tmp_path / "blocks.json"
    argv = ["--minutes", "0.01", "--n", "20", "--sample-steps", "2", "--compile", "off", "--runs-dir",
            str(tmp_path / "runs"), "--out", str(out), "--extra-train-flags", "--num-heads", "2", "--mixed-precision", "no"]
    assert blocks.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ratio resnet + BigGAN/resnet: train img/s" in printed and "ratio convnext/resnet" in printed
    saved = json.loads(out.read_text())
    assert [r["variant"] for r in saved["rows"]] == list(blocks.VARIANTS)
    assert all(r["n"] == 20 and r["fid_floor"] > 0 and r["compile"] is False for r in saved["rows"])
    assert "--block convnext --base-channels 24" in saved["rows"][2]["train_command"]
    assert out.with_suffix(".md").read_text().count("\n") == 5 and out.with_suffix(".png").stat().st_size > 1000
    assert blocks.main(["--resume"] + argv) == 0
    assert capsys.readouterr().out.count("keeping") == 3


# ------------------------------------------------------------------ pictures
@pytest.mark.parametrize("block,updown", VARIANTS, ids=IDS)
def test_draw_unet_names_the_variant_blocks(block, updown):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_teach.plotting import draw_unet

    cfg = UNetConfig(base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, block=block, resblock_updown=updown)
    model = UNet(cfg)
    fig = draw_unet(model)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    label = "ConvNeXt" if block == "convnext" else "ResBlock"
    blocks = sum(len(level.blocks) for level in [*model.down_levels, *model.up_levels])
    assert sum(t.startswith(label) for t in texts) == blocks
    assert len(ax.patches) == blocks + 2 + 3                         # + two downsamples, conv_in, bottleneck, head
    downs = [t for t in texts if t.startswith("downsample")]
    assert len(downs) == 2 and all((f"{label}↓" in t) == updown for t in downs)
    assert sum(t == f"upsample ×2: {label}↑" for t in texts) == (2 if updown else 0)
    assert any(t.startswith(f"bottleneck: {label} → attention → {label}") for t in texts)
    assert (f"block={block}" in ax.get_title()) == (block != "resnet")
    assert ("resblock_updown" in ax.get_title()) == updown
    plt.close(fig)


@pytest.mark.parametrize("resample", [None, "down", "up"])
@pytest.mark.parametrize("kind", ["resnet", "convnext"])
def test_draw_block_draws_one_box_per_traced_layer(kind, resample):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_teach.plotting import draw_block

    cfg = UNetConfig(base_channels=8, norm_groups=4, block=kind)
    block = make_block(cfg, 8, 16 if resample is None else 8, 12, resample)
    x, emb = torch.randn(2, 8, 8, 8), torch.randn(2, 12)
    trace = block_trace(block, x, emb)
    fig = draw_block(block, x, emb)
    ax = fig.axes[0]
    assert len(ax.patches) == len(trace)                        # every layer, emb_proj and the sum: one box each
    texts = " ".join(t.get_text() for t in ax.texts)
    for name, _, shape in trace[:-1]:
        assert f"{name}:" in texts and str(list(shape)) in texts
    assert str(list(block(x, emb).shape)) in texts
    assert ax.get_title().startswith(block.label) and (("BigGAN" in ax.get_title()) == (resample is not None))
    plt.close(fig)


def test_draw_block_texts_fit_their_boxes_at_the_notebooks_size():
    """Notebook 03 §10 draws three blocks side by side in an 18×6-inch figure: every label must
    lie inside its box, and every box inside its axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_teach.plotting import draw_block

    x, emb = torch.randn(2, 32, 14, 14), torch.randn(2, 128)
    blocks = [ResBlock(32, 64, 128, 0.1, 8), ResBlock(32, 32, 128, 0.1, 8, resample="down"),
              ConvNeXtBlock(32, 64, 128, 0.1, mult=2)]
    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    for ax, block in zip(axes, blocks):
        draw_block(block, x, emb, ax=ax)
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        frame = ax.get_window_extent(renderer)
        patches = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches if p.get_gid()}
        texts = {t.get_gid(): t for t in ax.texts if t.get_gid()}
        assert patches.keys() == texts.keys() and len(patches) >= 8
        for gid, box in patches.items():
            label = texts[gid].get_window_extent(renderer)
            assert box.x0 - 0.5 <= label.x0 and label.x1 <= box.x1 + 0.5, (gid, texts[gid].get_text())
            assert box.y0 - 0.5 <= label.y0 and label.y1 <= box.y1 + 0.5, (gid, texts[gid].get_text())
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, (gid, texts[gid].get_text())
    plt.close(fig)
