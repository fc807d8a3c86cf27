"""The interactive noise-schedule explorer of notebook 02 (§6, "The schedule explorer").

Pick a schedule, T, the β end points and a timestep t; the explorer redraws ᾱ_t and SNR(t)
(with a marker at t) and the image x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (DDPM eq. 4), and a caption
states the numbers::

    t=250 of T=1000 (linear): ᾱ_t=0.5214, SNR=1.09, x_t = 0.722·x_0 + 0.692·ε

The logic is plain Python, testable without a browser:

* :func:`explorer_state` is a pure function from the control values to a schedule, ᾱ_t, SNR(t)
  and the caption text;
* :class:`ScheduleExplorer` owns the widgets (``.controls``, ``.caption``, ``.output``,
  ``.widget``, from :class:`~ddpm_teach.widgets.base.FigureExplorer`); moving a control calls
  :meth:`ScheduleExplorer.update`.

For browser tests the parts carry CSS classes: the container ``ddpm-explorer``, the caption
``ddpm-explorer-caption``, the plot area ``ddpm-explorer-plot`` and each control
``ddpm-explorer-<name>`` (``ddpm-explorer-kind``, ``-T``, ``-beta_start``, ``-beta_end``, ``-t``).
"""
from __future__ import annotations

from typing import Any

import torch

from ..forward import q_sample
from ..schedules import SCHEDULE_KINDS, NoiseSchedule
from .base import FigureExplorer

__all__ = ["CSS_CLASSES", "explorer_state", "format_caption", "ScheduleExplorer", "schedule_explorer"]

# the DOM classes a browser test looks for
CSS_CLASSES = {
    "container": "ddpm-explorer",
    "caption": "ddpm-explorer-caption",
    "plot": "ddpm-explorer-plot",
}

# slider ranges: T in [2, 2000]; β_start in [1e-5, 1e-2], β_end in [1e-3, 0.5] (log sliders)
T_RANGE = (2, 2000)
BETA_START_EXPONENTS = (-5.0, -2.0)
BETA_END_EXPONENTS = (-3.0, -0.3)

# the DDPM default (linear, β from 1e-4 to 0.02, T=1000), drawn in grey behind the chosen schedule
REFERENCE_LABEL = "DDPM linear, T=1000"
REFERENCE_STYLE = {"color": "0.7", "linestyle": "--", "linewidth": 1}


def _coef(value: float) -> str:
    """A coefficient in [0, 1] for the caption: 3 decimals, or 2 significant digits when tiny."""
    return f"{value:.3f}" if value >= 0.01 or value == 0.0 else f"{value:.1e}"


def format_caption(kind: str, T: int, t: int, alpha_bar_t: float, snr_t: float) -> str:
    """``t=250 of T=1000 (linear): ᾱ_t=0.5214, SNR=1.09, x_t = 0.722·x_0 + 0.692·ε``.

    ``t`` is the 0-based index (0 is the paper's t=1); the two coefficients are √ᾱ_t and
    √(1 − ᾱ_t), DDPM eq. 4."""
    signal_scale, noise_scale = alpha_bar_t ** 0.5, (1.0 - alpha_bar_t) ** 0.5
    return (f"t={t} of T={T} ({kind}): ᾱ_t={alpha_bar_t:.4g}, SNR={snr_t:.3g}, "
            f"x_t = {_coef(signal_scale)}·x_0 + {_coef(noise_scale)}·ε")


def explorer_state(kind: str, T: int, beta_start: float | None = 1e-4, beta_end: float | None = 0.02,
                   t: int = 0) -> dict[str, Any]:
    """Everything the explorer shows, for one setting of its controls (a pure function).

    kind, T:      the schedule, as for :func:`~ddpm_teach.schedules.make_betas`.
    beta_start, beta_end: the end points of β for linear, quadratic and sigmoid; ignored
                  (recorded as None) for cosine, which has none.
    t:            0-based timestep in [0, T).

    Returns a dict with ``kind``, ``T``, ``t``, ``beta_start``, ``beta_end``, ``schedule``
    (a :class:`~ddpm_teach.schedules.NoiseSchedule`), ``beta_t``, ``alpha_bar_t``, ``snr_t``,
    ``log_snr_t``, ``signal_scale`` (√ᾱ_t), ``noise_scale`` (√(1 − ᾱ_t)), ``alpha_bar_T`` and
    ``snr_T`` (at the last step, t = T − 1) and ``caption`` (:func:`format_caption`).
    Raises ValueError for an impossible setting (an unknown kind, β_start > β_end, t outside
    [0, T)): ``make_betas`` and ``NoiseSchedule.check_t`` say what is wrong.
    """
    T = int(T)
    if kind == "cosine":
        beta_start = beta_end = None
        schedule = NoiseSchedule.from_name(kind, T)
    else:
        beta_start = 1e-4 if beta_start is None else float(beta_start)
        beta_end = 0.02 if beta_end is None else float(beta_end)
        schedule = NoiseSchedule.from_name(kind, T, beta_start=beta_start, beta_end=beta_end)
    t = int(schedule.check_t(int(t)))
    alpha_bar_t = float(schedule.alphas_cumprod[t])
    snr_t = float(schedule.snr[t])
    return {
        "kind": kind,
        "T": T,
        "t": t,
        "beta_start": beta_start,
        "beta_end": beta_end,
        "schedule": schedule,
        "beta_t": float(schedule.betas[t]),
        "alpha_bar_t": alpha_bar_t,
        "snr_t": snr_t,
        "log_snr_t": float(schedule.log_snr[t]),
        "signal_scale": float(schedule.sqrt_alphas_cumprod[t]),
        "noise_scale": float(schedule.sqrt_one_minus_alphas_cumprod[t]),
        "alpha_bar_T": float(schedule.alphas_cumprod[-1]),
        "snr_T": float(schedule.snr[-1]),
        "caption": format_caption(kind, T, t, alpha_bar_t, snr_t),
    }


def _as_image(image) -> torch.Tensor:
    """One image as float32 [1, C, H, W] in [-1, 1], from [C, H, W] or [1, C, H, W] (float or uint8)."""
    from ..data import to_model_range

    image = torch.as_tensor(image).detach().cpu()
    if image.ndim == 3:
        image = image.unsqueeze(0)                                   # (C, H, W) -> (1, C, H, W)
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ValueError(f"image must be one image [C, H, W] or [1, C, H, W] with C = 1 or 3, "
                         f"got shape {tuple(image.shape)}.")
    return to_model_range(image) if image.dtype == torch.uint8 else image.float()


def _default_image() -> tuple[torch.Tensor | None, str]:
    """The first Fashion-MNIST test image, or (None, why not) if the dataset is not on disk."""
    from ..data import DatasetNotFoundError, load_dataset

    try:
        data = load_dataset("fashion_mnist", train=False)
    except DatasetNotFoundError:
        return None, ("No image: Fashion-MNIST is not on disk (see ddpm_teach.data.load_dataset); "
                      "pass one with ScheduleExplorer(image=x0).")
    x0, _ = data.batch([0])                                           # (1, 1, 28, 28) in [-1, 1]
    return x0, ""


def _schedule_controls(kind: str, T: int, t: int, beta_start: float, beta_end: float) -> dict[str, Any]:
    """The explorer's controls: a schedule menu, sliders for T and t, log sliders for the β end points."""
    import ipywidgets as widgets

    style = {"description_width": "initial"}
    return {
        "kind": widgets.Dropdown(options=list(SCHEDULE_KINDS), value=kind, description="schedule", style=style),
        "T": widgets.IntSlider(value=T, min=T_RANGE[0], max=T_RANGE[1], step=1, description="T",
                               continuous_update=False, style=style),
        "beta_start": widgets.FloatLogSlider(value=beta_start, base=10, min=BETA_START_EXPONENTS[0],
                                             max=BETA_START_EXPONENTS[1], step=0.05, description="β_start",
                                             readout_format=".2g", continuous_update=False, style=style),
        "beta_end": widgets.FloatLogSlider(value=beta_end, base=10, min=BETA_END_EXPONENTS[0],
                                           max=BETA_END_EXPONENTS[1], step=0.05, description="β_end",
                                           readout_format=".2g", continuous_update=False, style=style),
        "t": widgets.IntSlider(value=min(t, T - 1), min=0, max=T - 1, step=1, description="t (0-based)",
                               continuous_update=False, style=style, layout=widgets.Layout(width="95%")),
    }


class ScheduleExplorer(FigureExplorer):
    """Controls for a noise schedule and a timestep, and what they imply, redrawn on every change.

    Attributes (besides :class:`~ddpm_teach.widgets.base.FigureExplorer`'s ``caption``,
    ``output``, ``widget``, ``figure`` and ``draw_count``):
        controls: ``{"kind": Dropdown, "T": IntSlider, "beta_start": FloatLogSlider,
                  "beta_end": FloatLogSlider, "t": IntSlider}``; ``t``'s maximum follows T − 1,
                  and the β sliders are disabled for cosine (which has no end points to set).
        state:    the latest :func:`explorer_state` (None while the setting is impossible).
        x0:       the image [1, C, H, W] in [-1, 1] (None without one).
        noise:    the one ε [1, C, H, W] used for every x_t (None without an image).
        x_t:      the latest noised image [1, C, H, W] (None without an image).

    image: one image [C, H, W] or [1, C, H, W] in [-1, 1] (or uint8); None loads the first
           Fashion-MNIST test image, or shows only the curves if the dataset is not on disk.
    seed:  seeds the one ε used for every x_t, so moving t shows the same noise growing.
    """

    css_classes = CSS_CLASSES

    def __init__(self, image=None, *, kind: str = "linear", T: int = 1000, t: int = 250,
                 beta_start: float = 1e-4, beta_end: float = 0.02, seed: int = 0):
        if image is None:
            self.x0, self.image_note = _default_image()
        else:
            self.x0, self.image_note = _as_image(image), ""
        generator = torch.Generator().manual_seed(seed)
        self.noise = None if self.x0 is None else torch.randn(self.x0.shape, generator=generator)  # ε, (1, C, H, W)
        super().__init__(_schedule_controls(kind, T, t, beta_start, beta_end),
                         rows=[("kind", "T"), ("beta_start", "beta_end"), ("t",)])
        self.state: dict[str, Any] | None = None
        self.x_t: torch.Tensor | None = None
        self._syncing = False   # True while one control is adjusted to follow another
        self._sync_beta_controls()
        self._listen()

    # ------------------------------------------------------------------ control logic
    def _sync_beta_controls(self) -> None:
        """Cosine has no β end points: grey their sliders out."""
        disabled = self.controls["kind"].value == "cosine"
        self.controls["beta_start"].disabled = disabled
        self.controls["beta_end"].disabled = disabled

    def _sync_t_range(self) -> None:
        """t lives in [0, T): its maximum follows T (the slider clamps a t that is now too large)."""
        self.controls["t"].max = self.controls["T"].value - 1

    def _on_change(self, change: dict) -> None:
        if self._syncing:          # a follow-up change made below; one redraw covers both
            return
        self._syncing = True
        try:
            if change["owner"] is self.controls["T"]:
                self._sync_t_range()
            elif change["owner"] is self.controls["kind"]:
                self._sync_beta_controls()
        finally:
            self._syncing = False
        self.update()

    def update(self) -> dict[str, Any] | None:
        """Recompute the state from the controls, rewrite the caption and redraw the figure.

        An impossible setting (β_start > β_end) shows the error in the caption and keeps the
        last figure.  Returns the new state, or None."""
        values = self.values()
        try:
            state = explorer_state(values["kind"], values["T"], values["beta_start"], values["beta_end"], values["t"])
        except ValueError as error:
            self.state = None
            self._set_error(error)
            return None
        self.state = state
        if self.x0 is not None:
            # DDPM eq. 4: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with the explorer's one fixed ε
            self.x_t = q_sample(state["schedule"], self.x0, state["t"], self.noise)
        end = (f"the last step, t={state['T'] - 1}, keeps √ᾱ_T={_coef(state['alpha_bar_T'] ** 0.5)} of x_0 "
               f"(SNR={state['snr_T']:.2g})")
        self._set_caption(state["caption"], end, self.image_note)
        self._redraw(state)
        return state

    # ------------------------------------------------------------------ drawing
    def _draw(self, state: dict[str, Any]):
        """One figure: ᾱ_t and SNR(t) against t/T with a marker at t, and x_0 | x_t | ε."""
        import matplotlib.pyplot as plt

        from ..plotting import plot_schedules, show_images

        schedule, t, T = state["schedule"], state["t"], state["T"]
        if self.x0 is None:
            fig, axes = plt.subplots(1, 2, figsize=(7.8, 3.1))
        else:   # two plots, then x_0 | x_t | ε as three small images
            fig, axes = plt.subplots(1, 5, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1, 1, 0.55, 0.55, 0.55]})
        quantities = ("alphas_cumprod", "snr")
        # against t/T, so that the grey DDPM default lines up with a schedule of any T
        plot_schedules({REFERENCE_LABEL: NoiseSchedule.from_name("linear", 1000), state["kind"]: schedule},
                       quantities, ax=axes[:2], relative_t=True, styles={REFERENCE_LABEL: REFERENCE_STYLE})
        for ax, quantity in zip(axes, quantities):
            ax.plot([t / T], [float(getattr(schedule, quantity)[t])], "o", color="C3", markersize=7, label=f"t={t}")
        axes[0].set_ylim(-0.03, 1.03)
        axes[0].legend(fontsize=7, loc="lower left")     # one legend, with the marker, serves both
        axes[1].get_legend().remove()
        if self.x0 is not None:
            for ax, image, title in zip(axes[2:], (self.x0, self.x_t, self.noise), ("x_0", f"x_t, t={t}", "ε")):
                show_images(image, nrow=1, ax=ax, title=title)
            axes[3].set_xlabel(f"= {_coef(state['signal_scale'])}·x_0\n+ {_coef(state['noise_scale'])}·ε", fontsize=9)
        return fig

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        v = self.values()
        betas = "" if v["kind"] == "cosine" else f", beta_start={v['beta_start']:.3g}, beta_end={v['beta_end']:.3g}"
        return f"ScheduleExplorer(kind={v['kind']!r}, T={v['T']}, t={v['t']}{betas})"


def schedule_explorer(image=None, **kwargs):
    """The explorer's widget, ready to display: ``schedule_explorer(x0)``.

    ``image`` and ``kwargs`` (kind, T, t, beta_start, beta_end, seed) go to :class:`ScheduleExplorer`.
    """
    return ScheduleExplorer(image, **kwargs).widget
