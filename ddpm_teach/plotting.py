"""Pictures: image grids, denoising trajectories, animations, schedules, loss curves, the UNet (all notebooks).

Images are float tensors [B, C, H, W] in [-1, 1] (the model's range) or uint8 [B, C, H, W] in
0..255 (the dataset's); both are shown as [0, 1].  Grayscale (C=1) is drawn with a gray colour
map and vmin=0, vmax=1, so that a dim image *looks* dim instead of being rescaled.

matplotlib is imported inside the functions, so importing this module is cheap and works
headless (the Agg backend, e.g. in CI).  :func:`make_grid` and :func:`save_image_grid` need
only torch and PIL.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # for the annotations only
    from matplotlib.animation import FuncAnimation
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .schedules import NoiseSchedule
    from .unet import UNet, UNetConfig

__all__ = [
    "to_unit_range",
    "make_grid",
    "show_images",
    "save_image_grid",
    "plot_trajectory",
    "animate_trajectory",
    "save_animation",
    "plot_schedules",
    "smooth_ema",
    "plot_loss_curve",
    "draw_unet",
    "draw_block",
    "plot_ddim_terms",
]

# axis labels for the schedule quantities that notebook 02 plots
_QUANTITY_LABELS = {
    "betas": "β_t",
    "alphas": "α_t = 1 − β_t",
    "alphas_cumprod": "ᾱ_t = Π α_s",
    "sqrt_alphas_cumprod": "√ᾱ_t (signal scale)",
    "sqrt_one_minus_alphas_cumprod": "√(1 − ᾱ_t) (noise scale)",
    "posterior_variance": "β̃_t",
    "snr": "SNR(t) = ᾱ_t / (1 − ᾱ_t)",
    "log_snr": "log SNR(t)",
}
# quantities that span many decades: drawn on a log y axis (log_snr is already a log)
_LOG_Y = {"snr", "betas", "posterior_variance"}


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1] on the CPU: uint8 → /255; float in [-1, 1] → (x + 1)/2, clamped."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [-1, 1] or uint8, got {images.dtype}.")
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _as_batch(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] as is; a single image [C, H, W] becomes [1, C, H, W]."""
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"images must have shape [B, C, H, W] (or [C, H, W]), got {tuple(images.shape)}.")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (dim 1), got shape {tuple(images.shape)}.")
    return images


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile images into one picture, ``nrow`` images per row (like torchvision's, without it).

    images: [B, C, H, W], float in [-1, 1] or uint8.
    Returns float [C, H', W'] in [0, 1], with ``ncol = min(nrow, B)`` columns,
    ``rows = ceil(B / ncol)``, H' = rows·(H + padding) + padding, W' = ncol·(W + padding) + padding;
    the gaps are filled with ``pad_value`` (1.0 = white).
    """
    images = to_unit_range(_as_batch(images))                         # (B, C, H, W) in [0, 1]
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}.")
    B, C, H, W = images.shape
    ncol = min(nrow, B)
    rows = math.ceil(B / ncol)
    grid = torch.full((C, rows * (H + padding) + padding, ncol * (W + padding) + padding), float(pad_value))
    for i in range(B):
        row, col = divmod(i, ncol)
        top, left = padding + row * (H + padding), padding + col * (W + padding)
        grid[:, top:top + H, left:left + W] = images[i]
    return grid


def _imshow(ax: "Axes", image: torch.Tensor):
    """Draw one [C, H, W] image in [0, 1] on ``ax`` (gray colour map for C=1), without ticks."""
    if image.shape[0] == 1:
        artist = ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        artist = ax.imshow(image.permute(1, 2, 0).numpy(), vmin=0.0, vmax=1.0, interpolation="nearest")  # (H, W, C)
    ax.set_xticks([])
    ax.set_yticks([])
    return artist


def _caption(label, class_names: Sequence[str] | None) -> str:
    label = label.item() if isinstance(label, torch.Tensor) else label
    if class_names is not None and isinstance(label, (int, np.integer)):
        return str(class_names[int(label)])
    return str(label)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax: "Axes | None" = None,
                labels: Sequence | torch.Tensor | None = None,
                class_names: Sequence[str] | None = None) -> "Figure":
    """Show a batch [B, C, H, W] (float in [-1, 1] or uint8) as a grid; returns the Figure.

    Without ``labels``: one axes with :func:`make_grid`'s picture (drawn on ``ax`` if given).
    With ``labels`` [B]: each image gets a caption, ``class_names[label]`` if ``class_names`` is
    given, else the label itself; a grid of B subplots, or, on a given ``ax``, text over each tile."""
    import matplotlib.pyplot as plt

    images = _as_batch(images)
    B = images.shape[0]
    ncol = min(nrow, B)
    rows = math.ceil(B / ncol)
    if labels is not None and len(labels) != B:
        raise ValueError(f"labels has {len(labels)} entries for {B} images.")

    if labels is not None and ax is None:
        fig, axes = plt.subplots(rows, ncol, figsize=(1.2 * ncol, 1.35 * rows), squeeze=False)
        unit = to_unit_range(images)
        for i, axis in enumerate(axes.flat):
            if i < B:
                _imshow(axis, unit[i])
                axis.set_title(_caption(labels[i], class_names), fontsize=8)
            else:
                axis.axis("off")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig

    padding = 2
    grid = make_grid(images, nrow=nrow, padding=padding)              # (C, H', W')
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(1.0 * ncol, 12.0), min(1.0 * rows, 12.0) + (0.4 if title else 0.0)))
    else:
        fig = ax.figure
    _imshow(ax, grid)
    if labels is not None:  # captions over the tiles of the grid on the caller's axes
        H, W = images.shape[-2:]
        for i in range(B):
            row, col = divmod(i, ncol)
            ax.text(padding + col * (W + padding) + W / 2, padding + row * (H + padding), _caption(labels[i], class_names),
                    ha="center", va="top", fontsize=7, color="white",
                    bbox=dict(facecolor="black", alpha=0.5, pad=1, linewidth=0))
    if title:
        ax.set_title(title)
    return fig


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Write :func:`make_grid` of ``images`` [B, C, H, W] as a PNG (8-bit gray or RGB) with PIL.

    The parent folder is created.  Returns the path written."""
    from PIL import Image

    from .files import atomic_write

    grid = make_grid(images, nrow=nrow, padding=padding)                     # (C, H', W') in [0, 1]
    array = (grid * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H', W', C)
    path = Path(path)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    atomic_write(path, lambda f: image.save(f, format="PNG"))          # a kill mid-write leaves no half PNG
    return path


def _frame_indices(n_frames: int, n_show: int) -> list[int]:
    """About ``n_show`` evenly spaced indices in [0, n_frames), always the first and the last."""
    n_show = max(1, min(n_show, n_frames))
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, n_show)})


def _unpack_trajectory(xs, timesteps, pred_x0):
    """Accept a :class:`ddpm_teach.samplers.Trajectory` in place of ``xs``."""
    if hasattr(xs, "x") and hasattr(xs, "timesteps"):
        trajectory = xs
        return trajectory.x, trajectory.timesteps if timesteps is None else timesteps, \
            getattr(trajectory, "pred_x0", None) if pred_x0 is None else pred_x0
    return xs, timesteps, pred_x0


def _frame_title(k: int, timesteps: Sequence[int] | None, S: int) -> str:
    """xs[k] is the input to the step at timesteps[k]; xs[S] is the final sample."""
    if k == S:
        return "x_0 (final)"
    if timesteps is None:
        return f"step {k}"
    return f"t = {int(timesteps[k])}"


def plot_trajectory(xs: torch.Tensor, timesteps: Sequence[int] | torch.Tensor | None = None, n_show: int = 8,
                    pred_x0: torch.Tensor | None = None, n_images: int = 4) -> "Figure":
    """The denoising trajectory, from noise (left) to the final sample (right).

    xs:        [S+1, B, C, H, W]: x_T first (the input to the first step), the final sample last;
               a :class:`~ddpm_teach.samplers.Trajectory` is also accepted.
    timesteps: [S], the sampler's (descending) timesteps; ``xs[k]`` is the input at ``timesteps[k]``.
    n_show:    about this many evenly spaced frames (columns), always the first and the last.
    pred_x0:   [S, B, C, H, W], the sampler's x̂_0 at each step: drawn as a second band of axes,
               under the x_t it was predicted from (the last column has no step, so it stays blank).
    n_images:  the first ``n_images`` images of the batch, stacked top to bottom in each column.
    Returns the Figure: one axes per column and band.
    """
    import matplotlib.pyplot as plt

    xs, timesteps, pred_x0 = _unpack_trajectory(xs, timesteps, pred_x0)
    xs = torch.as_tensor(xs)
    if xs.ndim != 5:
        raise ValueError(f"xs must have shape [S+1, B, C, H, W], got {tuple(xs.shape)}.")
    S = xs.shape[0] - 1
    if timesteps is not None and len(timesteps) != S:
        raise ValueError(f"xs holds {S + 1} frames, so timesteps needs S={S} entries, got {len(timesteps)}.")
    if pred_x0 is not None and tuple(pred_x0.shape) != (S, *xs.shape[1:]):
        raise ValueError(f"pred_x0 must have shape [S, B, C, H, W] = {(S, *xs.shape[1:])}, got {tuple(pred_x0.shape)}.")

    frames = _frame_indices(S + 1, n_show)
    n_images = min(n_images, xs.shape[1])
    bands = 1 if pred_x0 is None else 2
    fig, axes = plt.subplots(bands, len(frames), figsize=(1.3 * len(frames), 1.3 * n_images * bands + 0.3),
                             squeeze=False)
    for col, k in enumerate(frames):
        # one column: the first n_images images at frame k, stacked vertically
        _imshow(axes[0, col], make_grid(xs[k, :n_images], nrow=1))             # (C, n·(H+2)+2, W+4)
        axes[0, col].set_title(_frame_title(k, timesteps, S), fontsize=9)
        if pred_x0 is not None:
            if k < S:
                _imshow(axes[1, col], make_grid(pred_x0[k, :n_images], nrow=1))
            else:
                axes[1, col].axis("off")
    axes[0, 0].set_ylabel("x_t")
    if pred_x0 is not None:
        axes[1, 0].set_ylabel("x̂_0 predicted")
    fig.tight_layout()
    return fig


def animate_trajectory(xs: torch.Tensor, timesteps: Sequence[int] | torch.Tensor | None = None, nrow: int = 8,
                       interval: int = 80, max_frames: int | None = None) -> "FuncAnimation":
    """An animation of the whole batch denoising: frame k is the grid of ``xs[k]``.

    xs:         [S+1, B, C, H, W] (x_T first) or a Trajectory; there are S+1 frames.
    timesteps:  [S], for the frame titles.
    interval:   milliseconds per frame.
    max_frames: keep only about this many evenly spaced frames (for 1000-step DDPM runs).

    In a notebook: ``from IPython.display import HTML; HTML(anim.to_jshtml())``; to a file:
    :func:`save_animation`.  The figure is closed so that it is not also shown as a still.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    xs, timesteps, _ = _unpack_trajectory(xs, timesteps, None)
    xs = torch.as_tensor(xs)
    if xs.ndim != 5:
        raise ValueError(f"xs must have shape [S+1, B, C, H, W], got {tuple(xs.shape)}.")
    S = xs.shape[0] - 1
    frames = list(range(S + 1)) if max_frames is None else _frame_indices(S + 1, max_frames)
    grids = [make_grid(xs[k], nrow=nrow) for k in frames]                        # each (C, H', W')

    B = xs.shape[1]
    ncol, rows = min(nrow, B), math.ceil(B / min(nrow, B))
    fig, ax = plt.subplots(figsize=(min(0.8 * ncol, 10.0), min(0.8 * rows, 10.0) + 0.4))
    image = _imshow(ax, grids[0])
    title = ax.set_title(_frame_title(frames[0], timesteps, S))
    plt.close(fig)

    def update(i: int):
        grid = grids[i]
        image.set_data(grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy())
        title.set_text(_frame_title(frames[i], timesteps, S))
        return image, title

    return FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)


def save_animation(anim: "FuncAnimation", path: str | Path, fps: int | None = None) -> Path:
    """Write an animation as a .gif with matplotlib's PillowWriter (no ffmpeg needed)."""
    from matplotlib.animation import PillowWriter

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"save_animation writes .gif files, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fps is None:
        fps = max(1, round(1000 / getattr(anim, "_interval", 100)))
    anim.save(str(path), writer=PillowWriter(fps=fps))
    return path


def plot_schedules(schedules: "Mapping[str, NoiseSchedule]", quantities: Sequence[str] = ("alphas_cumprod", "snr"),
                   ax: "Axes | Sequence[Axes] | None" = None, relative_t: bool = False,
                   styles: "Mapping[str, Mapping[str, Any]] | None" = None) -> "Figure":
    """Compare noise schedules: one panel per quantity, one line per schedule.

    schedules:  {"linear": NoiseSchedule.from_name("linear"), "cosine": ...}; the keys are the legend.
    quantities: attributes of :class:`~ddpm_teach.schedules.NoiseSchedule` ([T] each), e.g.
                "betas", "alphas_cumprod", "snr", "log_snr".  SNR and β are drawn on a log
                y axis; log_snr is already a log, so its axis stays linear.
    ax:         one axes per quantity (a single axes if there is one quantity), or None.
    relative_t: plot against t/T instead of t, to compare schedules with different T.
    styles:     matplotlib line options for some of the schedules, by key, e.g. a grey dashed
                reference: ``{"DDPM": {"color": "0.7", "linestyle": "--"}}``.
    """
    import matplotlib.pyplot as plt

    quantities = [quantities] if isinstance(quantities, str) else list(quantities)
    if not schedules:
        raise ValueError("give at least one schedule, e.g. {'linear': NoiseSchedule.from_name('linear')}.")
    if ax is None:
        fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 3.3), squeeze=False)
        axes = list(axes.flat)
    else:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != len(quantities):
            raise ValueError(f"got {len(axes)} axes for {len(quantities)} quantities.")
        fig = axes[0].figure

    for quantity, axis in zip(quantities, axes):
        for name, schedule in schedules.items():
            values = getattr(schedule, quantity, None)
            if not isinstance(values, torch.Tensor) or values.ndim != 1:
                raise ValueError(f"{quantity!r} is not a [T] coefficient of NoiseSchedule; try one of "
                                 f"{', '.join(_QUANTITY_LABELS)}.")
            t = torch.arange(schedule.T, dtype=torch.float64)
            axis.plot((t / schedule.T if relative_t else t).numpy(), values.numpy(), label=name,
                      **(styles or {}).get(name, {}))
        if quantity in _LOG_Y:
            axis.set_yscale("log")
        axis.set_xlabel("t / T" if relative_t else "t (0-based index)")
        axis.set_ylabel(_QUANTITY_LABELS.get(quantity, quantity))
        axis.set_title(_QUANTITY_LABELS.get(quantity, quantity).split(" =")[0])
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def smooth_ema(values: Sequence[float], smooth: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing):

    m_i = smooth · m_{i−1} + (1 − smooth) · v_i,  m_{−1} = 0;   returned: m_i / (1 − smooth^{i+1}).
    The correction removes the pull towards 0 at the start, so a constant series stays constant."""
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}.")
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    m = 0.0
    for i, v in enumerate(values):
        m = smooth * m + (1.0 - smooth) * v
        out[i] = m / (1.0 - smooth ** (i + 1))
    return out


def plot_loss_curve(losses: Sequence[float], steps: Sequence[int] | None = None, smooth: float = 0.98,
                    ax: "Axes | None" = None) -> "Figure":
    """Training loss against step: the raw values (faint) and their EMA (:func:`smooth_ema`).

    Log y axis (when every loss is positive): the ε-MSE falls fast, then slowly for a long time."""
    import matplotlib.pyplot as plt

    losses = np.asarray([float(v) for v in losses], dtype=np.float64)
    if losses.size == 0:
        raise ValueError("no losses to plot.")
    steps = np.arange(len(losses)) if steps is None else np.asarray(steps)
    if len(steps) != len(losses):
        raise ValueError(f"{len(steps)} steps for {len(losses)} losses.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    raw_line, = ax.plot(steps, losses, alpha=0.3, linewidth=0.8, label="loss")
    ax.plot(steps, smooth_ema(losses, smooth), color=raw_line.get_color(), linewidth=1.8,
            label=f"EMA (smooth={smooth})")
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_ddim_terms(*, x_t: torch.Tensor, pred_x0: torch.Tensor, x0_term: torch.Tensor, direction: torch.Tensor,
                    noise_term: torch.Tensor, x_prev: torch.Tensor, t: int, t_prev: int, eta: float) -> "Figure":
    """One DDIM step term by term (DDIM eq. 12, notebook 06 §2): a column per term, a row per image,

        x_prev = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ + σ·z,

    with x_t and x̂_0 (eq. 9) in front of the three terms.  Every tensor is [B, C, H, W] in the model's
    range; values outside [−1, 1] are shown clipped.  The arguments are keyword-only, so that two
    same-shape terms cannot be swapped silently.  The figure uses constrained layout, which keeps
    the suptitle clear of the column titles (checked in tests/test_figure_layout.py)."""
    import matplotlib.pyplot as plt

    panels = [(f"x_t (t = {t})", x_t), ("x̂_0 (eq. 9)", pred_x0), ("√ᾱ_prev·x̂_0", x0_term),
              ("√(1−ᾱ_prev−σ²)·ε̂", direction), ("σ·z", noise_term), (f"x_prev (t = {t_prev})", x_prev)]
    shapes = {tuple(_as_batch(images).shape) for _, images in panels}
    if len(shapes) != 1:
        raise ValueError(f"the terms of eq. 12 must all have one shape [B, C, H, W]; got {sorted(shapes)}.")
    rows = _as_batch(x_t).shape[0]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 1.3 * rows + 0.8), layout="constrained")
    for ax, (title, images) in zip(axes, panels):
        show_images(images, nrow=1, ax=ax)                     # one column: image i of the batch in row i
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"DDIM eq. 12, term by term (η = {eta:g}): x_prev = √ᾱ_prev·x̂_0 + direction + noise", fontsize=10)
    return fig



# box colours of the UNet diagram, by kind of block
_UNET_COLOURS = {"conv": "#d9d9d9", "res": "#9ecae1", "attn": "#fdae6b", "down": "#a1d99b", "mid": "#bcbddc"}


def _unet_legend(model: "UNet") -> dict[str, str]:
    label = model.mid_block1.label
    down = (f"downsample ({label} with 2×2 average pooling inside, BigGAN)" if model.config.resblock_updown
            else "downsample (stride-2 conv)")
    return {"conv": "convolution", "res": label, "attn": f"{label} + self-attention", "down": down, "mid": "bottleneck"}


def _unet_layout(model: "UNet") -> tuple[list[dict], list[dict]]:
    """The boxes of :func:`draw_unet`, read off the model's modules: the contracting path (one box
    per skip it stores) and the expanding path (one box per block, on the row of the skip it
    concatenates).  Each box has a label, a level, a kind (a key of ``_UNET_COLOURS``) and the
    feature-map side ``res``."""
    from torch import nn

    from .unet import AttentionBlock, Downsample

    cfg = model.config
    down = [dict(label=f"conv_in  {cfg.in_channels}→{cfg.base_channels}", level=0, kind="conv")]
    for level, (blocks, downsample) in enumerate(zip(model.down_levels, model.downsamples)):
        for block, attn in zip(blocks.blocks, blocks.attns):
            kind = "attn" if isinstance(attn, AttentionBlock) else "res"
            down.append(dict(label=f"{block.label}  {block.in_channels}→{block.out_channels}", level=level, kind=kind))
        if isinstance(downsample, Downsample):
            ch = downsample.conv.out_channels
            down.append(dict(label=f"downsample  {ch}→{ch}", level=level + 1, kind="down"))
        elif not isinstance(downsample, nn.Identity):      # a BigGAN resampling block
            down.append(dict(label=f"downsample: {downsample.label}↓  {downsample.in_channels}→{downsample.out_channels}",
                             level=level + 1, kind="down"))
    skip_rows = list(range(len(down)))          # a stack: the expanding path pops from the end
    up: list[dict] = []
    for k, (blocks, upsample) in enumerate(zip(model.up_levels, model.upsamples)):
        level = len(cfg.channel_mults) - 1 - k
        for block, attn in zip(blocks.blocks, blocks.attns):
            in_ch, out_ch = block.in_channels, block.out_channels
            skip_ch = in_ch - (up[-1]["out"] if up else model.mid_block2.out_channels)
            up.append(dict(label=f"{block.label}  {in_ch - skip_ch}+{skip_ch}→{out_ch}", level=level,
                           kind="attn" if isinstance(attn, AttentionBlock) else "res", row=skip_rows.pop(),
                           out=out_ch, upsample_after=not isinstance(upsample, nn.Identity)
                           and block is blocks.blocks[-1]))
    for box in down + up:
        box["res"] = cfg.resolutions[box["level"]]
    return down, up


def draw_unet(model: "UNet | UNetConfig", title: str | None = None) -> "Figure":
    """Draw a UNet as a U (notebook 03, §2): the contracting path down the left, the bottleneck at
    the bottom, the expanding path up the right, and the skip connections (dashed) across.

    model: a :class:`~ddpm_teach.unet.UNet`, or a :class:`~ddpm_teach.unet.UNetConfig` (the model
           is then built, untrained, to read its modules).  Every box is read off the modules:
           ``in→out`` channels on the left, ``h + skip → out`` on the right, and the side of the
           feature map; orange boxes are followed by self-attention.
    title: the figure's title; by default the configuration's sizes.
    Returns the figure (``plt.show()`` displays it in a notebook)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    from .unet import UNet, UNetConfig

    if isinstance(model, UNetConfig):
        model = UNet(model)
    if not isinstance(model, UNet):
        raise TypeError(f"draw_unet takes a UNet or a UNetConfig, got {type(model).__name__}.")
    cfg = model.config
    if title is None:
        attention = ", ".join(f"{r}×{r}" for r in cfg.attention_resolutions) or "the bottleneck only"
        variant = ("" if cfg.block == "resnet" else f"block={cfg.block}, ") + (
            "resblock_updown, " if cfg.resblock_updown else "")
        title = (f"UNet: {variant}base_channels={cfg.base_channels}, num_res_blocks={cfg.num_res_blocks}, "
                 f"channel_mults={cfg.channel_mults}, attention at {attention}")
    down, up = _unet_layout(model)
    n_rows, n_levels = len(down), len(cfg.channel_mults)
    box_w, box_h, indent, gap = 3.0, 0.62, 0.9, 1.6
    right_x0 = box_w + 2 * (n_levels - 1) * indent + gap      # left edge of the right column at level 0
    width = right_x0 + box_w
    fig, ax = plt.subplots(figsize=(11, 0.62 * (n_rows + 4)))

    def box(x, y, text, kind, w=box_w):
        ax.add_patch(FancyBboxPatch((x, y - box_h / 2), w, box_h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    facecolor=_UNET_COLOURS[kind], edgecolor="black", linewidth=0.8))
        ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=8.5)

    def arrow(xy_from, xy_to, **style):
        ax.annotate("", xy=xy_to, xytext=xy_from, arrowprops={
            **dict(arrowstyle="-|>", color="black", linewidth=1.0, shrinkA=0, shrinkB=0), **style})

    # the contracting path: row r holds skip r, at y = -r; then the input above it
    left_x = [d["level"] * indent for d in down]
    for r, d in enumerate(down):
        box(left_x[r], -r, f"{d['label']}\n{d['res']}×{d['res']}", d["kind"])
        if r:
            arrow((left_x[r - 1] + box_w / 2, -(r - 1) - box_h / 2), (left_x[r] + box_w / 2, -r + box_h / 2))
    side = down[0]["res"]
    ax.text(box_w / 2, 1.1, f"x_t  [B, {cfg.in_channels}, {side}, {side}]", ha="center", va="center",
            fontsize=9, fontweight="bold")
    arrow((box_w / 2, 0.9), (box_w / 2, box_h / 2))

    # the bottleneck
    mid_y, mid_w = -n_rows - 0.3, 2 * box_w
    mid_x, ch, mid_res = width / 2 - mid_w / 2, model.mid_block1.out_channels, cfg.resolutions[-1]
    label = model.mid_block1.label
    box(mid_x, mid_y, f"bottleneck: {label} → attention → {label}  {ch}→{ch}\n{mid_res}×{mid_res}", "mid",
        w=mid_w)
    arrow((left_x[-1] + box_w / 2, -(n_rows - 1) - box_h / 2), (mid_x + box_w * 0.4, mid_y + box_h / 2))

    # the expanding path, each block on the row of the skip it consumes
    up_text = f"upsample ×2: {label}↑" if cfg.resblock_updown else "upsample ×2"
    prev, prev_upsample = (mid_x + mid_w - box_w * 0.4, mid_y + box_h / 2), False
    for u in up:
        x, y = right_x0 - u["level"] * indent, -u["row"]
        box(x, y, f"{u['label']}\n{u['res']}×{u['res']}", u["kind"])
        arrow(prev, (x + box_w / 2, y - box_h / 2))
        if prev_upsample:
            ax.text((prev[0] + x + box_w / 2) / 2 + 0.2, (prev[1] + y - box_h / 2) / 2, up_text,
                    fontsize=8.5, color="#31a354", ha="left", va="center", fontweight="bold")
        arrow((left_x[u["row"]] + box_w, y), (x, y), linestyle="--", color="#777777", linewidth=0.9)   # the skip
        prev, prev_upsample = (x + box_w / 2, y + box_h / 2), u["upsample_after"]

    # the output head
    box(right_x0, 1.1, f"GroupNorm·SiLU·conv_out  {cfg.base_channels}→{cfg.out_channels}", "conv")
    arrow(prev, (right_x0 + box_w / 2, 1.1 - box_h / 2))
    ax.text(right_x0 + box_w / 2, 2.0, f"ε̂  [B, {cfg.out_channels}, {side}, {side}]", ha="center", va="center",
            fontsize=9, fontweight="bold")
    arrow((right_x0 + box_w / 2, 1.1 + box_h / 2), (right_x0 + box_w / 2, 1.8))

    ax.text(width / 2, -0.45, "skip connections (concatenated)", ha="center", fontsize=8, color="#777777")
    legend = _unet_legend(model)
    ax.legend([plt.Rectangle((0, 0), 1, 1, facecolor=_UNET_COLOURS[k], edgecolor="black") for k in legend],
              list(legend.values()), loc="lower left", fontsize=8, frameon=False)
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(mid_y - 0.8, 2.4)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    return fig


_BLOCK_COLOURS = {"conv": "#9ecae1", "norm": "#bcbddc", "emb": "#fdae6b", "resample": "#a1d99b", "other": "#eeeeee"}


def _block_kind(layer: str) -> str:
    if "conv" in layer:
        return "conv"
    if "Norm" in layer:
        return "norm"
    if layer.startswith("linear"):
        return "emb"
    if "pool" in layer or "nearest" in layer:
        return "resample"
    return "other"


def draw_block(block, x: "torch.Tensor", emb: "torch.Tensor", ax=None, title: str | None = None) -> "Figure":
    """Draw one UNet block (notebook 03, §10) as its layers in the order they run, each with the
    shape it outputs, read off :func:`ddpm_teach.unet.block_trace`: the main path down the
    middle, the embedding's projection beside the layer it is added after, the skip path (its
    resampling and 1×1 conv, where the block has them) on the right, and the sum at the bottom.

    block: a :class:`~ddpm_teach.unet.ResBlock` or :class:`~ddpm_teach.unet.ConvNeXtBlock`.
    x, emb: an input [B, C, H, W] and an embedding [B, emb_dim] to trace with.
    ax: draw into this axes (default: a new figure).  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    from .unet import block_trace

    trace = block_trace(block, x, emb)
    skip_names = ("x_resample", "skip")
    main = [r for r in trace[:-1] if r[0] not in skip_names and r[0] != "emb_proj"]
    side = [r for r in trace if r[0] in skip_names]
    emb_row = next((r for r in trace if r[0] == "emb_proj"), None)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.62 * (len(main) + 3)))
    else:
        fig = ax.figure
    box_w, box_h, side_w, emb_w = 4.2, 0.66, 3.1, 3.1
    in_shape = tuple(x.shape)

    def box(cx, y, text, kind, w=box_w):     # a patch and its text share a gid (the layout test pairs them)
        gid = f"block-box-{len(ax.patches)}"
        ax.add_patch(FancyBboxPatch((cx - w / 2, y - box_h / 2), w, box_h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    facecolor=_BLOCK_COLOURS[kind], edgecolor="black", linewidth=0.8, gid=gid))
        ax.text(cx, y, text, ha="center", va="center", fontsize=7, gid=gid)

    def arrow(a, b, **style):
        ax.annotate("", xy=b, xytext=a, arrowprops={**dict(arrowstyle="-|>", color="black", linewidth=0.9,
                                                           shrinkA=0, shrinkB=0), **style})

    ax.text(0, 1, f"x  {list(in_shape)}", ha="center", va="center", fontsize=8.5, fontweight="bold")
    previous = (0, 1 - 0.2)
    for k, (name, layer, shape) in enumerate(main):
        y = -k
        box(0, y, f"{name}: {layer}\n→ {list(shape)}", _block_kind(layer))
        arrow(previous, (0, y + box_h / 2))
        previous = (0, y - box_h / 2)
        if emb_row is not None and name == block.emb_added_after:
            ex = -box_w / 2 - 0.3 - emb_w / 2
            box(ex, y - 0.5, f"emb_proj: {emb_row[1].split(' (')[0]}\n→ {list(emb_row[2])}, added", "emb", w=emb_w)
            arrow((ex + emb_w / 2, y - 0.5), (-0.08, y - 0.5), color="#e6550d")
    bottom = -len(main)
    skip_x = box_w / 2 + 0.3 + side_w / 2
    prev_skip = (skip_x, 1 - 0.2)
    ax.annotate("", xy=prev_skip, xytext=(0.9, 1.0), arrowprops=dict(arrowstyle="-", color="#777777",
                                                                       linewidth=0.9, linestyle="--"))
    for k, (name, layer, shape) in enumerate(side):
        y = -1 - 1.4 * k
        box(skip_x, y, f"{name}: {layer}\n→ {list(shape)}", _block_kind(layer), w=side_w)
        arrow(prev_skip, (skip_x, y + box_h / 2), color="#777777")
        prev_skip = (skip_x, y - box_h / 2)
    box(0, bottom, f"main + skip  →  {list(trace[-1][2])}", "other", w=3.4)
    arrow(previous, (0, bottom + box_h / 2))
    arrow(prev_skip, (1.7, bottom), color="#777777", connectionstyle="angle,angleA=-90,angleB=0")
    ax.text(skip_x, 0.55, "skip path" if side else "skip path: identity", ha="center", fontsize=8, color="#555555")
    ax.set_xlim(-box_w / 2 - 0.4 - emb_w, skip_x + side_w / 2 + 0.1)
    ax.set_ylim(bottom - 0.7, 1.4)
    ax.axis("off")
    resample = {"down": ", downsampling (BigGAN)", "up": ", upsampling (BigGAN)", None: ""}[block.resample]
    ax.set_title(title or f"{block.label} {block.in_channels}→{block.out_channels}{resample}", fontsize=10)
    return fig
