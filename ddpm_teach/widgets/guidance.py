"""The classifier-free guidance explorer of notebook 07 (§6, "The guidance explorer").

Pick a class and a guidance scale s; the explorer samples a small grid of that class from one fixed
x_T with DDIM (few steps, so it answers in a second or two on a CPU), guided by

    ε̃ = ε_u + s (ε_c − ε_u)        (Ho & Salimans 2022, eq. 6, with s = w + 1)

and the shipped Fashion-MNIST classifier says how many of the samples it recognises as that class.
Results are cached per (class, s, steps), so moving a control back is instant.

* :func:`guidance_state` is a pure function (same inputs, same images: DDIM with η = 0 from a fixed
  x_T) from the control values to samples, the classifier's verdicts and the caption text;
* :func:`plot_guidance_state` draws such a state (the notebook's static figure uses it too);
* :class:`GuidanceExplorer` owns the widgets (``.controls``, ``.caption``, ``.output``, ``.widget``,
  from :class:`~ddpm_teach.widgets.base.FigureExplorer`).

CSS classes: the container ``ddpm-guidance``, the caption ``ddpm-guidance-caption``, the plot area
``ddpm-guidance-plot`` and each control ``ddpm-guidance-<name>`` (``-label``, ``-guidance_scale``,
``-steps``).
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch

from ..schedules import NoiseSchedule
from .base import FigureExplorer

__all__ = ["GUIDANCE_CSS_CLASSES", "format_guidance_caption", "guidance_state", "plot_guidance_state",
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
def _classify(classifier, images: torch.Tensor) -> torch.Tensor | None:
    """The classifier's classes [n] for ``images`` [n, C, H, W] (None without a classifier).

    The classifier runs in eval mode, on its own device, and is left in the mode it was in."""
    net = _classifier_module(classifier)
    if net is None:
        return None
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    predicted = net(images.to(device)).argmax(1).cpu()            # (n,)
    net.train(was_training)
    return predicted


@torch.no_grad()
def guidance_state(model: torch.nn.Module, schedule: NoiseSchedule, x_T: torch.Tensor, label: int,
                   guidance_scale: float, *, steps: int = 10, classifier=None,
                   class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Samples of one class at one guidance scale, and what the classifier makes of them.

    model:          a class-conditional UNet trained with label dropout (null label = num_classes).
    schedule:       its noise schedule; sampling is DDIM (η = 0) over ``steps`` uniform timesteps.
    x_T:            the starting noise [n, C, H, W]; the same for every class and scale, so only they change.
    label:          the class in [0, num_classes).
    guidance_scale: s in ε̃ = ε_u + s(ε_c − ε_u) (s = 1 conditional, s = 0 unconditional; w = s − 1).
    classifier:     a :class:`~ddpm_teach.evaluation.Classifier` (or an ``Evaluator``), or None.
    class_names:    names for the labels (default: the numbers).

    Returns a dict with ``label``, ``class_name``, ``guidance_scale``, ``w``, ``steps``, ``n``,
    ``images`` [n, C, H, W] in [-1, 1] (CPU), ``predicted`` (the classifier's classes [n], or None),
    ``correct`` and ``accuracy`` (None without a classifier), ``caption`` and ``seconds`` (the time
    the sampling took; the only entry that is not a function of the inputs).
    """
    from ..samplers import DDIMSampler, sample

    label, s, steps, n = int(label), float(guidance_scale), int(steps), x_T.shape[0]
    started = time.perf_counter()
    # sample() checks that the model is class-conditional and that the label is one of its classes
    images = sample(model, DDIMSampler(schedule, steps=steps, eta=0.0), x_T=x_T,
                    labels=torch.full((n,), label, dtype=torch.long), guidance_scale=s, progress=False).cpu()
    seconds = time.perf_counter() - started

    num_classes = model.config.num_classes
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a model with {num_classes} classes.")
    predicted = _classify(classifier, images)
    correct = None if predicted is None else int((predicted == label).sum())
    return {
        "label": label,
        "class_name": names[label],
        "guidance_scale": s,
        "w": s - 1.0,
        "steps": steps,
        "n": n,
        "images": images,
        "predicted": predicted,
        "correct": correct,
        "accuracy": None if correct is None else correct / n,
        "caption": format_guidance_caption(s, names[label], correct, n, steps),
        "seconds": seconds,
    }


def plot_guidance_state(state: dict[str, Any], ax=None):
    """Draw :func:`guidance_state`'s samples as one grid on ``ax`` (a new figure if None), with a red
    frame around each sample the classifier puts in another class, and a title with s, w and the
    classifier's count.  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..plotting import show_images

    images, n = state["images"], state["n"]
    nrow = max(1, math.ceil(math.sqrt(n)))
    if ax is None:
        rows = math.ceil(n / nrow)
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
    from ..checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
    from ..evaluation import DEFAULT_CLASSIFIER, Classifier, ClassifierConfig

    try:
        ckpt = load_checkpoint(DEFAULT_CLASSIFIER, kind="classifier")
    except CheckpointError as error:
        return None, None, f"No accuracy: the classifier could not be loaded ({error})."
    net = Classifier(ClassifierConfig(**ckpt["model_config"]))
    load_state_dict_checked(net, ckpt["model"], str(DEFAULT_CLASSIFIER))
    return net.eval(), ckpt.get("classes"), ""


def _guidance_controls(class_names: list[str], label: int, guidance_scale: float, steps: int) -> dict[str, Any]:
    """The explorer's controls: a class menu, a slider for s and a menu of DDIM step counts."""
    import ipywidgets as widgets

    style = {"description_width": "initial"}
    return {
        "label": widgets.Dropdown(options=[(name, k) for k, name in enumerate(class_names)],
                                  value=int(label), description="class", style=style),
        "guidance_scale": widgets.FloatSlider(value=float(guidance_scale), min=GUIDANCE_SCALE_RANGE[0],
                                              max=GUIDANCE_SCALE_RANGE[1], step=GUIDANCE_SCALE_STEP,
                                              description="guidance scale s", readout_format=".1f",
                                              continuous_update=False, style=style),
        "steps": widgets.Dropdown(options=sorted({*GUIDANCE_STEP_CHOICES, int(steps)}), value=int(steps),
                                  description="DDIM steps", style=style),
    }


class GuidanceExplorer(FigureExplorer):
    """A class, a guidance scale and a number of DDIM steps, and a grid of samples they give.

    Attributes (besides :class:`~ddpm_teach.widgets.base.FigureExplorer`'s ``caption``,
    ``output``, ``widget``, ``figure`` and ``draw_count``):
        controls: ``{"label": Dropdown, "guidance_scale": FloatSlider (0 to 6, step 0.5),
                  "steps": Dropdown (5, 10, 20)}``.
        cache:    ``{(label, s, steps): state}`` of every :func:`guidance_state` computed so far.
        state:    the state on show; ``compute_count`` counts samplings.
        x_T:      the one starting noise [n, C, H, W] every grid starts from (seeded by ``seed``).
    The grid frames in red the samples the classifier assigns to another class.

    model, schedule: a class-conditional model and its schedule (``load_diffusion_model`` gives both).
    classifier:      a Classifier or an Evaluator; None loads the shipped one (or shows no accuracy
                     if it is missing).
    class_names:     the labels' names (default: the classifier checkpoint's, else the numbers).
    n:               samples per grid (16: a 4×4 grid).
    """

    css_classes = GUIDANCE_CSS_CLASSES

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, classifier=None, class_names=None,
                 n: int = 16, steps: int = 10, label: int = 0, guidance_scale: float = 3.0, seed: int = 0):
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
        self.x_T = torch.randn((n, config.in_channels, config.image_size, config.image_size),
                               generator=generator)                      # (n, C, H, W)
        super().__init__(_guidance_controls(self.class_names, label, guidance_scale, steps),
                         rows=[("label", "steps"), ("guidance_scale",)])
        self.cache: dict[tuple[int, float, int], dict[str, Any]] = {}
        self.state: dict[str, Any] | None = None
        self.compute_count = 0
        self._listen()

    def state_for(self, label: int, guidance_scale: float, steps: int | None = None) -> dict[str, Any]:
        """:func:`guidance_state` for these values, from the cache when it was computed before."""
        steps = int(self.controls["steps"].value if steps is None else steps)
        key = (int(label), round(float(guidance_scale), 6), steps)
        if key not in self.cache:
            self.cache[key] = guidance_state(self.model, self.schedule, self.x_T, key[0], key[1], steps=steps,
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
        self._set_caption(state["caption"], f"{state['n']} samples from the same x_T, {uses} per step, {how}",
                          self.classifier_note)
        self._redraw(state)
        return state

    def _draw(self, state: dict[str, Any]):
        """The grid of samples (:func:`plot_guidance_state`) as a figure of its own."""
        return plot_guidance_state(state)

    def __repr__(self) -> str:
        v = self.values()
        return (f"GuidanceExplorer(class={self.class_names[v['label']]!r}, guidance_scale={v['guidance_scale']:g}, "
                f"steps={v['steps']}, n={self.x_T.shape[0]})")
