"""ddpm_teach.plotting: grids, PNGs, trajectories, animations, schedules, loss curves and the UNet diagram, headless."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from ddpm_teach.plotting import (animate_trajectory, draw_unet, make_grid, plot_loss_curve,  # noqa: E402
                                 plot_schedules, plot_trajectory, save_animation, save_image_grid, show_images,
                                 smooth_ema, to_unit_range)
from ddpm_teach.schedules import NoiseSchedule  # noqa: E402
from ddpm_teach.training import preset_configs  # noqa: E402
from ddpm_teach.unet import UNet, UNetConfig  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_make_grid_layout_and_values():
    # 3 images of 1x2x3 in [-1, 1]: image i is constant (i - 1) → shown as (i - 1 + 1)/2 = i/2
    images = torch.stack([torch.full((1, 2, 3), float(i - 1)) for i in range(3)])
    padding = 2
    grid = make_grid(images, nrow=2, padding=padding, pad_value=0.25)
    rows, ncol = 2, 2                                                   # ceil(3 / 2) rows, min(2, 3) columns
    assert grid.shape == (1, rows * (2 + padding) + padding, ncol * (3 + padding) + padding)
    for i in range(3):
        row, col = divmod(i, ncol)
        top, left = padding + row * (2 + padding), padding + col * (3 + padding)
        assert torch.all(grid[:, top:top + 2, left:left + 3] == i / 2)
    tiles = torch.zeros_like(grid, dtype=torch.bool)
    for i in range(3):
        row, col = divmod(i, ncol)
        top, left = padding + row * (2 + padding), padding + col * (3 + padding)
        tiles[:, top:top + 2, left:left + 3] = True
    assert torch.all(grid[~tiles] == 0.25)                              # everything else is padding


def test_make_grid_uint8_rgb_and_single_image():
    u8 = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    grid = make_grid(u8, nrow=8, padding=0)
    assert grid.shape == (3, 4, 20)                                     # one row of 5, no padding
    assert torch.allclose(grid[:, :, 4:8], u8[1].float() / 255)
    assert make_grid(torch.zeros(1, 8, 8), padding=1).shape == (1, 10, 10)
    assert float(to_unit_range(torch.tensor([-5.0, 5.0])).min()) == 0.0   # clamped to [0, 1]
    with pytest.raises(ValueError, match="shape"):
        make_grid(torch.zeros(8, 8))


def test_save_image_grid_writes_png(tmp_path):
    images = torch.linspace(-1, 1, 6 * 3 * 5 * 5).reshape(6, 3, 5, 5)
    path = save_image_grid(images, tmp_path / "sub" / "grid.png", nrow=4)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "RGB"
        assert png.size == (4 * 7 + 2, 2 * 7 + 2)                        # (W', H'): 4 columns, 2 rows
        array = np.asarray(png)
    expected = (make_grid(images, nrow=4) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(array.astype(float) - expected).max() <= 1
    gray = save_image_grid(torch.zeros(2, 1, 3, 3), tmp_path / "gray.png")
    with Image.open(gray) as png:
        assert png.mode == "L" and png.size == (12, 7)


def test_show_images_single_axes_and_captions():
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    fig = show_images(images, nrow=3, title="six")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    shown = fig.axes[0].images[0]
    assert shown.get_cmap().name == "gray" and shown.get_clim() == (0.0, 1.0)
    assert fig.axes[0].get_title() == "six"

    fig = show_images(images, nrow=4, labels=[0, 1, 2, 0, 1, 2], class_names=["a", "b", "c"])
    assert len(fig.axes) == 8                                           # a 2x4 grid, 2 of them blank
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:6] == ["a", "b", "c", "a", "b", "c"]

    fig, ax = plt.subplots()
    assert show_images(images, labels=torch.tensor([5, 6, 7, 8, 9, 0]), ax=ax) is fig
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in [5, 6, 7, 8, 9, 0])
    with pytest.raises(ValueError, match="labels"):
        show_images(images, labels=[0, 1])


def _trajectory(S: int = 10, B: int = 3, C: int = 1, H: int = 6):
    xs = torch.randn(S + 1, B, C, H, H).clamp(-1, 1)
    timesteps = torch.arange(S - 1, -1, -1) * 100                      # descending, like a sampler's
    pred_x0 = torch.rand(S, B, C, H, H) * 2 - 1
    return xs, timesteps, pred_x0


def test_plot_trajectory_axes_and_titles():
    xs, timesteps, pred_x0 = _trajectory(S=10)
    fig = plot_trajectory(xs, timesteps, n_show=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == f"t = {int(timesteps[0])}" and titles[-1] == "x_0 (final)"

    fig = plot_trajectory(xs, timesteps, n_show=6, pred_x0=pred_x0)
    assert len(fig.axes) == 12                                          # a second band for x̂_0
    assert sum(1 for ax in fig.axes if ax.images) == 11                 # the last x̂_0 slot is blank
    assert len(plot_trajectory(xs, timesteps, n_show=100).axes) == 11   # never more frames than there are
    with pytest.raises(ValueError, match="timesteps"):
        plot_trajectory(xs, timesteps[:-1])


def test_animate_trajectory_has_one_frame_per_state(tmp_path):
    xs, timesteps, _ = _trajectory(S=4, B=2, C=3, H=4)
    anim = animate_trajectory(xs, timesteps, nrow=2, interval=50)
    assert isinstance(anim, FuncAnimation)
    assert len(list(anim.new_frame_seq())) == 4 + 1
    path = save_animation(anim, tmp_path / "traj.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4 + 1
    short = animate_trajectory(torch.randn(101, 2, 1, 4, 4), max_frames=10)
    assert len(list(short.new_frame_seq())) == 10
    save_animation(short, tmp_path / "short.gif")                      # render it (and silence the warning)


def test_plot_schedules_one_panel_per_quantity():
    schedules = {"linear": NoiseSchedule.from_name("linear", T=100),
                 "cosine": NoiseSchedule.from_name("cosine", T=100)}
    fig = plot_schedules(schedules, quantities=("alphas_cumprod", "snr", "log_snr"))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["linear", "cosine"]
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log", "linear"]
    line = fig.axes[0].get_lines()[1]
    assert np.allclose(line.get_ydata(), schedules["cosine"].alphas_cumprod.numpy())

    fig, ax = plt.subplots()
    assert plot_schedules(schedules, quantities=["betas"], ax=ax, relative_t=True) is fig
    assert ax.get_lines()[0].get_xdata().max() < 1.0
    with pytest.raises(ValueError, match="coefficient"):
        plot_schedules(schedules, quantities=["not_a_thing"])


def test_plot_schedules_styles_apply_to_their_schedule_only():
    schedules = {"reference": NoiseSchedule.from_name("linear", T=1000),
                 "short": NoiseSchedule.from_name("linear", T=50)}
    fig = plot_schedules(schedules, quantities=("alphas_cumprod", "snr"), relative_t=True,
                         styles={"reference": {"color": "0.7", "linestyle": "--"}})
    for ax in fig.axes:
        reference, short = ax.get_lines()
        assert reference.get_linestyle() == "--" and reference.get_color() == "0.7"
        assert short.get_linestyle() == "-" and short.get_color() != "0.7"
        # against t/T both schedules span [0, 1), whatever their T
        assert reference.get_xdata()[-1] == pytest.approx(999 / 1000) and short.get_xdata()[-1] == pytest.approx(49 / 50)


def test_smooth_ema_is_bias_corrected():
    assert np.allclose(smooth_ema([3.0] * 50, 0.98), 3.0)              # constant stays constant
    values = np.random.default_rng(0).normal(size=200)
    assert np.allclose(smooth_ema(values, 0.0), values)                 # no smoothing
    smoothed = smooth_ema(values, 0.9)
    assert smoothed[0] == values[0] and smoothed[1:].std() < values.std() / 2


def test_plot_loss_curve_raw_and_smoothed_lines():
    losses = list(np.exp(-np.linspace(0, 3, 300)) + 0.05 * np.random.default_rng(0).random(300))
    fig = plot_loss_curve(losses, smooth=0.9)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    raw, smoothed = fig.axes[0].get_lines()
    assert np.allclose(raw.get_ydata(), losses)
    assert raw.get_alpha() < 1 and smoothed.get_alpha() in (None, 1)   # the raw line is the faint one
    assert np.allclose(smoothed.get_ydata(), smooth_ema(losses, 0.9))
    assert fig.axes[0].get_yscale() == "log"
    fig = plot_loss_curve([1.0, -0.5, 0.2], steps=[10, 20, 30])        # a negative loss: linear axis
    assert fig.axes[0].get_yscale() == "linear"
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [10, 20, 30]


@pytest.mark.parametrize("config", [UNetConfig(), preset_configs("cpu-fast")[1]], ids=["default", "cpu-fast"])
def test_draw_unet_draws_one_box_per_block(config):
    model = UNet(config)
    fig = draw_unet(config)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    # one box per ResBlock of both paths, plus conv_in, the downsamples, the bottleneck and the head
    res_blocks = sum(len(level.blocks) for level in [*model.down_levels, *model.up_levels])
    downsamples = len(config.channel_mults) - 1
    assert len(ax.patches) == res_blocks + downsamples + 3
    assert sum(t.startswith("ResBlock") for t in texts) == res_blocks
    assert sum(t.startswith("downsample") for t in texts) == downsamples
    assert f"x_t  [B, {config.in_channels}, {config.image_size}, {config.image_size}]" in texts
    assert f"base_channels={config.base_channels}" in ax.get_title()
    assert draw_unet(model, title="mine").axes[0].get_title() == "mine"   # a built model works too


def test_draw_unet_rejects_other_things():
    with pytest.raises(TypeError, match="UNet or a UNetConfig"):
        draw_unet({"base_channels": 32})
