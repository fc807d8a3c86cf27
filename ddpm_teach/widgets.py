"""The interactive noise-schedule explorer of notebook 02 (ipywidgets 7.7, as on Colab, and 8).

Pick a schedule, T, the β end points and a timestep t; the explorer redraws ᾱ_t and SNR(t)
(with a marker at t) and the image x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (DDPM eq. 4), and a caption
states the numbers::

    t=250 of T=1000 (linear): ᾱ_t=0.5214, SNR=1.09, x_t = 0.722·x_0 + 0.692·ε

The logic is plain Python, testable without a browser:

* :func:`explorer_state` is a pure function from the control values to a schedule, ᾱ_t, SNR(t)
  and the caption text;
* :class:`ScheduleExplorer` owns the widgets (``.controls``, ``.caption``, ``.output``,
  ``.widget``); moving a control calls :meth:`ScheduleExplorer.update`.

For browser tests the parts carry CSS classes: the container ``ddpm-explorer``, the caption
``ddpm-explorer-caption``, the plot area ``ddpm-explorer-plot`` and each control
``ddpm-explorer-<name>`` (``ddpm-explorer-kind``, ``-T``, ``-beta_start``, ``-beta_end``, ``-t``).

Only APIs common to ipywidgets 7.7 and 8 are used: ``observe(..., names="value")``,
``add_class``, ``Layout``, and an ``Output`` filled with ``clear_output(wait=True)`` and
``display(fig)`` inside ``with output:``.
"""
from __future__ import annotations

import html
from typing import Any

import torch
from IPython.display import clear_output, display

from .forward import q_sample
from .schedules import SCHEDULE_KINDS, NoiseSchedule

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


def _coef(value: float) -> str:
    """A coefficient in [0, 1] for the caption: 3 decimals, or 2 significant digits when tiny."""
    return f"{value:.3f}" if value >= 0.01 or value == 0.0 else f"{value:.1e}"


def format_caption(kind: str, T: int, t: int, alpha_bar_t: float, snr_t: float) -> str:
    """``t=250 of T=1000 (linear): ᾱ_t=0.5214, SNR=1.09, x_t = 0.722·x_0 + 0.692·ε``.

    ``t`` is the 0-based index (0 is the paper's t=1); the two coefficients are √ᾱ_t and
    √(1 − ᾱ_t), DDPM eq. 4."""
    signal, noise = alpha_bar_t ** 0.5, (1.0 - alpha_bar_t) ** 0.5
    return (f"t={t} of T={T} ({kind}): ᾱ_t={alpha_bar_t:.4g}, SNR={snr_t:.3g}, "
            f"x_t = {_coef(signal)}·x_0 + {_coef(noise)}·ε")


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
    Raises ValueError for an impossible setting (β_start > β_end, t outside [0, T)).
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"Unknown schedule {kind!r}. Choose one of {', '.join(SCHEDULE_KINDS)}.")
    T, t = int(T), int(t)
    if kind == "cosine":
        beta_start = beta_end = None
        schedule = NoiseSchedule.from_name(kind, T)
    else:
        beta_start = 1e-4 if beta_start is None else float(beta_start)
        beta_end = 0.02 if beta_end is None else float(beta_end)
        schedule = NoiseSchedule.from_name(kind, T, beta_start=beta_start, beta_end=beta_end)
    t = int(schedule.check_t(t))
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
    from .data import to_model_range

    image = torch.as_tensor(image).detach().cpu()
    if image.ndim == 3:
        image = image.unsqueeze(0)                                   # (C, H, W) -> (1, C, H, W)
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ValueError(f"image must be one image [C, H, W] or [1, C, H, W] with C = 1 or 3, "
                         f"got shape {tuple(image.shape)}.")
    return to_model_range(image) if image.dtype == torch.uint8 else image.float()


def _default_image() -> tuple[torch.Tensor | None, str]:
    """The first Fashion-MNIST test image, or (None, why not) if the dataset is not on disk."""
    from .data import DatasetNotFoundError, load_dataset

    try:
        data = load_dataset("fashion_mnist", train=False)
    except DatasetNotFoundError:
        return None, ("No image: Fashion-MNIST is not on disk (see ddpm_teach.data.load_dataset); "
                      "pass one with ScheduleExplorer(image=x0).")
    x0, _ = data.batch([0])                                           # (1, 1, 28, 28) in [-1, 1]
    return x0, ""


def _figure_png(fig) -> str:
    """A figure as base64 PNG text, the form Jupyter's ``image/png`` output takes."""
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class _FigureInOutput:
    """What both explorers share: one figure at a time in an ``ipywidgets.Output`` (``self.output``),
    and how they display."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        """Displaying the explorer shows its widget where a kernel runs it (JupyterLab, Notebook,
        VS Code, Colab).  The bundle also carries the current figure as a PNG, the static
        fallback that GitHub, nbviewer and other viewers without a kernel show in its place; the
        text is a short, stable summary."""
        bundle = {
            "text/plain": repr(self),
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id,
            },
        }
        if getattr(self, "figure", None) is not None:
            bundle["image/png"] = _figure_png(self.figure)
        return bundle

    def _show(self, fig) -> None:
        """Replace the output area's figure (works in JupyterLab, Notebook 7, VS Code and Colab)."""
        with self.output:
            clear_output(wait=True)
            display(fig)
        self.figure = fig
        self.draw_count += 1


class ScheduleExplorer(_FigureInOutput):
    """Controls for a noise schedule and a timestep, and what they imply, redrawn on every change.

    Attributes:
        controls: ``{"kind": Dropdown, "T": IntSlider, "beta_start": FloatLogSlider,
                  "beta_end": FloatLogSlider, "t": IntSlider}``; ``t``'s maximum follows T − 1,
                  and the β sliders are disabled for cosine (which has no end points to set).
        caption:  an ``HTML`` widget with :func:`format_caption`'s text (class ``ddpm-explorer-caption``).
        output:   an ``Output`` widget holding one figure: ᾱ_t, SNR(t), and x_0 | x_t | ε
                  (class ``ddpm-explorer-plot``).
        widget:   the container to display (class ``ddpm-explorer``); displaying the explorer
                  itself shows it too.
        state:    the latest :func:`explorer_state` (None while the setting is impossible).
        x_t:      the latest noised image [1, C, H, W] (None without an image).
        figure:   the latest figure drawn; ``draw_count`` counts them.

    image: one image [C, H, W] or [1, C, H, W] in [-1, 1] (or uint8); None loads the first
           Fashion-MNIST test image, or shows only the curves if the dataset is not on disk.
    seed:  seeds the one ε used for every x_t, so moving t shows the same noise growing.
    """

    def __init__(self, image=None, *, kind: str = "linear", T: int = 1000, t: int = 250,
                 beta_start: float = 1e-4, beta_end: float = 0.02, seed: int = 0):
        import ipywidgets as widgets

        if image is None:
            self.x0, self.image_note = _default_image()
        else:
            self.x0, self.image_note = _as_image(image), ""
        generator = torch.Generator().manual_seed(seed)
        self.noise = None if self.x0 is None else torch.randn(self.x0.shape, generator=generator)  # ε, (1, C, H, W)

        style = {"description_width": "initial"}
        self.controls = {
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
                                   continuous_update=False, style=style,
                                   layout=widgets.Layout(width="95%")),
        }
        for name, control in self.controls.items():
            control.add_class(f"{CSS_CLASSES['container']}-{name}")

        self.caption = widgets.HTML(value="")
        self.caption.add_class(CSS_CLASSES["caption"])
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.output.add_class(CSS_CLASSES["plot"])
        self.widget = widgets.VBox([
            widgets.HBox([self.controls["kind"], self.controls["T"]]),
            widgets.HBox([self.controls["beta_start"], self.controls["beta_end"]]),
            self.controls["t"],
            self.caption,
            self.output,
        ])
        self.widget.add_class(CSS_CLASSES["container"])

        self.state: dict[str, Any] | None = None
        self.x_t: torch.Tensor | None = None
        self.figure = None
        self.draw_count = 0
        self._syncing = False   # True while one control is adjusted to follow another
        self._sync_beta_controls()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # ------------------------------------------------------------------ control logic
    def values(self) -> dict[str, Any]:
        """The controls' current values: kind, T, beta_start, beta_end, t."""
        return {name: control.value for name, control in self.controls.items()}

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
            self.caption.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
            return None
        self.state = state
        if self.x0 is not None:
            # DDPM eq. 4: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with the explorer's one fixed ε
            self.x_t = q_sample(state["schedule"], self.x0, state["t"], self.noise)
        end = (f"the last step, t={state['T'] - 1}, keeps √ᾱ_T={_coef(state['alpha_bar_T'] ** 0.5)} of x_0 "
               f"(SNR={state['snr_T']:.2g})")
        note = f"<br><i>{html.escape(self.image_note)}</i>" if self.image_note else ""
        self.caption.value = f"<b>{html.escape(state['caption'])}</b><br>{html.escape(end)}{note}"
        self._show(self._draw(state))
        return state

    # ------------------------------------------------------------------ drawing
    def _draw(self, state: dict[str, Any]):
        """One figure: ᾱ_t and SNR(t) with a marker at t, and x_0 | x_t | ε."""
        import matplotlib.pyplot as plt

        from .plotting import show_images

        schedule, t, T = state["schedule"], state["t"], state["T"]
        # the DDPM default (linear, 1e-4..0.02, T=1000) as a grey reference, at the same t/T
        reference = NoiseSchedule.from_name("linear", 1000)
        ref_t = torch.linspace(0, T - 1, 1000, dtype=torch.float64)     # its t/T mapped onto this T

        if self.x0 is None:
            fig, axes = plt.subplots(1, 2, figsize=(7.8, 3.1))
        else:   # two plots, then x_0 | x_t | ε as three small images
            fig, axes = plt.subplots(1, 5, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1, 1, 0.55, 0.55, 0.55]})
        steps = torch.arange(T).numpy()
        for ax, name, label in ((axes[0], "alphas_cumprod", "ᾱ_t"), (axes[1], "snr", "SNR(t) = ᾱ_t / (1 − ᾱ_t)")):
            values = getattr(schedule, name)
            ax.plot(ref_t.numpy(), getattr(reference, name).numpy(), color="0.7", linestyle="--", linewidth=1,
                    label="DDPM linear, T=1000\n(at the same t/T)")
            ax.plot(steps, values.numpy(), color="C0", label=state["kind"])
            ax.plot([t], [float(values[t])], "o", color="C3", markersize=7, label=f"t={t}")
            ax.set_xlabel("t (0-based)")
            ax.set_title(label, fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[0].set_ylim(-0.03, 1.03)
        axes[1].set_yscale("log")
        axes[0].legend(fontsize=7, loc="lower left")
        if self.x0 is not None:
            for ax, image, title in zip(axes[2:], (self.x0, self.x_t, self.noise), ("x_0", f"x_t, t={t}", "ε")):
                show_images(image, nrow=1, ax=ax, title=title)
            axes[3].set_xlabel(f"= {_coef(state['signal_scale'])}·x_0\n+ {_coef(state['noise_scale'])}·ε", fontsize=9)
        fig.tight_layout()
        plt.close(fig)   # shown once, in the output area, not again by the inline backend
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


# ====================================================================================================
# The guidance explorer of notebook 07 (classifier-free guidance)
# ====================================================================================================
# Pick a class and a guidance scale s; the explorer samples a small grid of that class from one fixed
# noise with DDIM (few steps, so it answers in a second or two on a CPU), guided by
#
#     ε̃ = ε_u + s (ε_c − ε_u)        (Ho & Salimans 2022, eq. 6, with s = w + 1)
#
# and the shipped Fashion-MNIST classifier says how many of the samples it recognises as that class.
# Results are cached per (class, s, steps), so moving a control back is instant.  As above:
#
# * :func:`guidance_state` is a pure function (same inputs, same images: DDIM with η = 0 from fixed
#   noise) from the control values to samples, the classifier's verdicts and the caption text;
# * :func:`plot_guidance_state` draws such a state (the notebook's static figure uses it too);
# * :class:`GuidanceExplorer` owns the widgets (``.controls``, ``.caption``, ``.output``, ``.widget``).
#
# CSS classes: the container ``ddpm-guidance``, the caption ``ddpm-guidance-caption``, the plot area
# ``ddpm-guidance-plot`` and each control ``ddpm-guidance-<name>`` (``-label``, ``-guidance_scale``,
# ``-steps``).  Only ipywidgets APIs common to 7.7 and 8 are used, as in ScheduleExplorer.
import math as _math  # noqa: E402
import time as _time  # noqa: E402

__all__ += ["GUIDANCE_CSS_CLASSES", "format_guidance_caption", "guidance_state", "plot_guidance_state",
            "GuidanceExplorer"]

GUIDANCE_CSS_CLASSES = {
    "container": "ddpm-guidance",
    "caption": "ddpm-guidance-caption",
    "plot": "ddpm-guidance-plot",
}
GUIDANCE_SCALE_RANGE = (0.0, 6.0)     # the slider's s range; s = 1 is the plain conditional model
GUIDANCE_SCALE_STEP = 0.5
GUIDANCE_STEP_CHOICES = (5, 10, 20)   # DDIM steps on offer: few, so the explorer answers quickly


def format_guidance_caption(guidance_scale: float, class_name: str, correct: int | None, n: int,
                            steps: int) -> str:
    """``s=3 (paper's w=2), class 'Sneaker': the classifier calls 15 of 16 samples 'Sneaker' (accuracy
    93.8%); DDIM, 10 steps``.  ``correct`` None: no classifier, so no accuracy."""
    s = float(guidance_scale)
    head = f"s={s:g} (paper's w={s - 1:g}), class {class_name!r}"
    if correct is None:
        verdict = "no classifier, so no accuracy"
    else:
        verdict = f"the classifier calls {correct} of {n} samples {class_name!r} (accuracy {100 * correct / n:.1f}%)"
    return f"{head}: {verdict}; DDIM, {steps} steps"


def _classifier_module(classifier):
    """A Classifier from a Classifier, an Evaluator (its ``.classifier``) or None."""
    if classifier is None:
        return None
    return getattr(classifier, "classifier", classifier)


@torch.no_grad()
def guidance_state(model: torch.nn.Module, schedule: NoiseSchedule, noise: torch.Tensor, label: int,
                   guidance_scale: float, *, steps: int = 10, classifier=None,
                   class_names=None) -> dict[str, Any]:
    """Samples of one class at one guidance scale, and what the classifier makes of them.

    model:          a class-conditional UNet trained with label dropout (null label = num_classes).
    schedule:       its noise schedule; sampling is DDIM (η = 0) over ``steps`` uniform timesteps.
    noise:          x_T [n, C, H, W]; the same noise for every class and scale, so only they change.
    label:          the class in [0, num_classes).
    guidance_scale: s in ε̃ = ε_u + s(ε_c − ε_u) (s = 1 conditional, s = 0 unconditional; w = s − 1).
    classifier:     a :class:`~ddpm_teach.evaluation.Classifier` (or an ``Evaluator``), or None.
    class_names:    names for the labels (default: the numbers).

    Returns a dict with ``label``, ``class_name``, ``guidance_scale``, ``w``, ``steps``, ``n``,
    ``images`` [n, C, H, W] in [-1, 1] (CPU), ``predicted`` (the classifier's classes [n], or None),
    ``correct`` and ``accuracy`` (None without a classifier), ``caption`` and ``seconds`` (the time
    the sampling took; the only entry that is not a function of the inputs).
    """
    from .samplers import DDIMSampler, sample

    num_classes = getattr(model.config, "num_classes", None)
    if num_classes is None:
        raise ValueError("guidance needs a class-conditional model trained with label dropout; this model is "
                         "unconditional (num_classes=None). Load checkpoints/fashion_mnist_cfg.pt.")
    label = int(label)
    if not 0 <= label < num_classes:
        raise ValueError(f"label must lie in [0, {num_classes - 1}], got {label}.")
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a model with {num_classes} classes.")
    s = float(guidance_scale)
    n = noise.shape[0]

    started = _time.perf_counter()
    images = sample(model, DDIMSampler(schedule, steps=int(steps), eta=0.0), noise=noise,
                    labels=torch.full((n,), label, dtype=torch.long), guidance_scale=s, progress=False).cpu()
    seconds = _time.perf_counter() - started

    predicted = correct = accuracy = None
    net = _classifier_module(classifier)
    if net is not None:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        predicted = net(images.to(device)).argmax(1).cpu()            # (n,)
        net.train(was_training)
        correct = int((predicted == label).sum())
        accuracy = correct / n
    return {
        "label": label,
        "class_name": names[label],
        "guidance_scale": s,
        "w": s - 1.0,
        "steps": int(steps),
        "n": n,
        "images": images,
        "predicted": predicted,
        "correct": correct,
        "accuracy": accuracy,
        "caption": format_guidance_caption(s, names[label], correct, n, int(steps)),
        "seconds": seconds,
    }


def plot_guidance_state(state: dict[str, Any], ax=None):
    """Draw :func:`guidance_state`'s samples as one grid on ``ax`` (a new figure if None), with a red
    frame around each sample the classifier puts in another class, and a title with s, w and the
    classifier's count.  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .plotting import show_images

    images, n = state["images"], state["n"]
    nrow = max(1, _math.ceil(_math.sqrt(n)))
    if ax is None:
        rows = _math.ceil(n / nrow)
        fig, ax = plt.subplots(figsize=(0.75 * nrow + 0.6, 0.75 * rows + 0.7))
    else:
        fig = ax.figure
    show_images(images, nrow=nrow, ax=ax)
    if state["predicted"] is not None:
        H, W = images.shape[-2:]
        padding = 2                                   # show_images' (make_grid's) gap
        for i in torch.nonzero(state["predicted"] != state["label"]).flatten().tolist():
            row, col = divmod(i, nrow)
            ax.add_patch(Rectangle((padding + col * (W + padding) - 1.5, padding + row * (H + padding) - 1.5),
                                   W + 2, H + 2, fill=False, edgecolor="#d62728", linewidth=1.5))
    s = state["guidance_scale"]
    title = f"{state['class_name']}, s={s:g} (w={s - 1:g})"
    if state["accuracy"] is not None:
        title += f"\nclassifier agrees: {state['correct']}/{n}"
    ax.set_title(title, fontsize=9)
    return fig


def _default_classifier():
    """The shipped evaluation classifier and its class names, or (None, None, why not)."""
    from .checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
    from .evaluation import DEFAULT_CLASSIFIER, Classifier, ClassifierConfig

    try:
        ckpt = load_checkpoint(DEFAULT_CLASSIFIER, kind="classifier")
    except CheckpointError as error:
        return None, None, f"No accuracy: the classifier could not be loaded ({error})."
    net = Classifier(ClassifierConfig(**ckpt["model_config"]))
    load_state_dict_checked(net, ckpt["model"], str(DEFAULT_CLASSIFIER))
    return net.eval(), ckpt.get("classes"), ""


class GuidanceExplorer(_FigureInOutput):
    """A class, a guidance scale and a number of DDIM steps, and a grid of samples they give.

    Attributes:
        controls: ``{"label": Dropdown, "guidance_scale": FloatSlider (0 to 6, step 0.5),
                  "steps": Dropdown (5, 10, 20)}``.
        caption:  an ``HTML`` widget with :func:`format_guidance_caption`'s text (class
                  ``ddpm-guidance-caption``).
        output:   an ``Output`` widget holding the grid; samples the classifier assigns to another
                  class get a red frame (class ``ddpm-guidance-plot``).
        widget:   the container to display (class ``ddpm-guidance``); displaying the explorer shows it.
        cache:    ``{(label, s, steps): state}`` of every :func:`guidance_state` computed so far.
        state:    the state on show; ``compute_count`` counts samplings, ``draw_count`` figures.
        noise:    the one x_T [n, C, H, W] every grid starts from (seeded by ``seed``).

    model, schedule: a class-conditional model and its schedule (``load_diffusion_model`` gives both).
    classifier:      a Classifier or an Evaluator; None loads the shipped one (or shows no accuracy
                     if it is missing).
    class_names:     the labels' names (default: the classifier checkpoint's, else the numbers).
    n:               samples per grid (16: a 4×4 grid).
    """

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, classifier=None, class_names=None,
                 n: int = 16, steps: int = 10, label: int = 0, guidance_scale: float = 3.0, seed: int = 0):
        import ipywidgets as widgets

        config = model.config
        if getattr(config, "num_classes", None) is None:
            raise ValueError("GuidanceExplorer needs a class-conditional model (num_classes set, trained with "
                             "label dropout), e.g. checkpoints/fashion_mnist_cfg.pt.")
        self.model, self.schedule = model, schedule
        self.classifier_note = ""
        default_names = None
        if classifier is None:
            classifier, default_names, self.classifier_note = _default_classifier()
        self.classifier = _classifier_module(classifier)
        names = class_names if class_names is not None else default_names
        if names is None or len(names) != config.num_classes:
            names = [str(k) for k in range(config.num_classes)]
        self.class_names = list(names)
        generator = torch.Generator().manual_seed(seed)
        self.noise = torch.randn((n, config.in_channels, config.image_size, config.image_size),
                                 generator=generator)                    # x_T, (n, C, H, W)

        steps_options = sorted({*GUIDANCE_STEP_CHOICES, int(steps)})
        style = {"description_width": "initial"}
        self.controls = {
            "label": widgets.Dropdown(options=[(name, k) for k, name in enumerate(self.class_names)],
                                      value=int(label), description="class", style=style),
            "guidance_scale": widgets.FloatSlider(value=float(guidance_scale), min=GUIDANCE_SCALE_RANGE[0],
                                                  max=GUIDANCE_SCALE_RANGE[1], step=GUIDANCE_SCALE_STEP,
                                                  description="guidance scale s", readout_format=".1f",
                                                  continuous_update=False, style=style),
            "steps": widgets.Dropdown(options=steps_options, value=int(steps), description="DDIM steps",
                                      style=style),
        }
        for name, control in self.controls.items():
            control.add_class(f"{GUIDANCE_CSS_CLASSES['container']}-{name}")

        self.caption = widgets.HTML(value="")
        self.caption.add_class(GUIDANCE_CSS_CLASSES["caption"])
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.output.add_class(GUIDANCE_CSS_CLASSES["plot"])
        self.widget = widgets.VBox([
            widgets.HBox([self.controls["label"], self.controls["steps"]]),
            self.controls["guidance_scale"],
            self.caption,
            self.output,
        ])
        self.widget.add_class(GUIDANCE_CSS_CLASSES["container"])

        self.cache: dict[tuple[int, float, int], dict[str, Any]] = {}
        self.state: dict[str, Any] | None = None
        self.figure = None
        self.compute_count = 0
        self.draw_count = 0
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # ------------------------------------------------------------------ control logic
    def values(self) -> dict[str, Any]:
        """The controls' current values: label, guidance_scale, steps."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, change: dict) -> None:
        self.update()

    def state_for(self, label: int, guidance_scale: float, steps: int | None = None) -> dict[str, Any]:
        """:func:`guidance_state` for these values, from the cache when it was computed before."""
        steps = int(self.controls["steps"].value if steps is None else steps)
        key = (int(label), round(float(guidance_scale), 6), steps)
        if key not in self.cache:
            self.cache[key] = guidance_state(self.model, self.schedule, self.noise, key[0], key[1], steps=steps,
                                             classifier=self.classifier, class_names=self.class_names)
            self.compute_count += 1
        return self.cache[key]

    def update(self) -> dict[str, Any]:
        """Look up (or compute) the state for the controls, rewrite the caption, redraw the grid."""
        values = self.values()
        computed_before = self.compute_count
        state = self.state_for(values["label"], values["guidance_scale"], values["steps"])
        self.state = state
        how = (f"sampled in {state['seconds']:.1f} s" if self.compute_count > computed_before
               else "from the cache (computed before)")
        uses = ("1 model pass" if state["guidance_scale"] in (0.0, 1.0)
                else "2 model passes (conditional and unconditional)")
        detail = f"{state['n']} samples from the same noise, {uses} per step, {how}"
        note = f"<br><i>{html.escape(self.classifier_note)}</i>" if self.classifier_note else ""
        self.caption.value = f"<b>{html.escape(state['caption'])}</b><br>{html.escape(detail)}{note}"
        self._show(self._draw(state))
        return state

    # ------------------------------------------------------------------ drawing
    def _draw(self, state: dict[str, Any]):
        """The grid of samples (:func:`plot_guidance_state`) as a figure of its own."""
        import matplotlib.pyplot as plt

        fig = plot_guidance_state(state)
        fig.tight_layout()
        plt.close(fig)   # shown once, in the output area, not again by the inline backend
        return fig


    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        v = self.values()
        return (f"GuidanceExplorer(class={self.class_names[v['label']]!r}, guidance_scale={v['guidance_scale']:g}, "
                f"steps={v['steps']}, n={self.noise.shape[0]})")
