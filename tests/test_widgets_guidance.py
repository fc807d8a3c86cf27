"""ddpm_teach.widgets.GuidanceExplorer (notebook 07), driven without a browser.

A tiny class-conditional UNet and a tiny random classifier stand in for the shipped ones, so the
tests are fast and need no checkpoint.  The explorer's samples are checked against the package's
own ``sample`` loop and a plain DDIM loop written here, its accuracy against the classifier's
argmax, and its cache by counting samplings.
"""
from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402

from ddpm_teach.widgets import guidance as explorer_module  # noqa: E402
from ddpm_teach.evaluation import Classifier, ClassifierConfig  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, sample  # noqa: E402
from ddpm_teach.schedules import NoiseSchedule  # noqa: E402
from ddpm_teach.widgets import (GUIDANCE_CSS_CLASSES, GuidanceExplorer, format_guidance_caption,  # noqa: E402
                                guidance_state)

NUM_CLASSES = 3
NAMES = ["circle", "square", "star"]


@pytest.fixture
def model(tiny_unet):
    return tiny_unet(num_classes=NUM_CLASSES)


@pytest.fixture
def schedule():
    return NoiseSchedule.from_name("linear", 50)


@pytest.fixture
def classifier():
    torch.manual_seed(1)
    return Classifier(ClassifierConfig(image_size=16, num_classes=NUM_CLASSES, width=4, feature_dim=8)).eval()


@pytest.fixture
def x_T():
    return torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def explorer(area, model, schedule, classifier):
    made = GuidanceExplorer(model, schedule, classifier=classifier, class_names=NAMES, n=4, steps=5,
                            label=1, guidance_scale=2.0)
    yield made
    import matplotlib.pyplot as plt
    plt.close("all")


def ddim_by_hand(model, schedule, x_T, label, s, steps):
    """DDIM (η = 0, x̂_0 clipped) with ε̃ = ε_u + s(ε_c − ε_u), written out step by step."""
    ts = DDIMSampler(schedule, steps=steps).timesteps.tolist()
    x = x_T.clone()
    n = x.shape[0]
    labels = torch.full((n,), label)
    null = torch.full((n,), NUM_CLASSES)
    with torch.no_grad():
        for i, t in enumerate(ts):
            t_batch = torch.full((n,), t)
            eps_c, eps_u = model(x, t_batch, labels), model(x, t_batch, null)
            eps = eps_u + s * (eps_c - eps_u)
            a = schedule.alphas_cumprod[t].float()
            a_prev = schedule.alphas_cumprod[ts[i + 1]].float() if i + 1 < len(ts) else torch.tensor(1.0)
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


# ------------------------------------------------------------------ the pure state
def test_caption_format():
    assert format_guidance_caption(3.0, "Sneaker", 15, 16, 10) == (
        "s=3 (paper's w=2), class 'Sneaker': the classifier calls 15 of 16 samples 'Sneaker' "
        "(accuracy 93.8%); DDIM, 10 steps")
    assert format_guidance_caption(1.5, "Bag", None, 8, 5) == (
        "s=1.5 (paper's w=0.5), class 'Bag': no classifier, so no accuracy; DDIM, 5 steps")
    assert "paper's w=-1" in format_guidance_caption(0, "Bag", 1, 8, 5)


@pytest.mark.parametrize("s", [0.0, 1.0, 2.5])
def test_state_matches_the_sampler_and_a_loop_by_hand(model, schedule, classifier, x_T, s):
    state = guidance_state(model, schedule, x_T, 2, s, steps=4, classifier=classifier, class_names=NAMES)
    expected = sample(model, DDIMSampler(schedule, steps=4), x_T=x_T, labels=2, guidance_scale=s, progress=False)
    torch.testing.assert_close(state["images"], expected)
    torch.testing.assert_close(state["images"], ddim_by_hand(model, schedule, x_T, 2, s, 4), rtol=1e-4, atol=1e-4)
    assert state["label"] == 2 and state["class_name"] == "star" and state["n"] == 4 and state["steps"] == 4
    assert state["guidance_scale"] == s and state["w"] == s - 1


def test_state_is_deterministic(model, schedule, classifier, x_T):
    a = guidance_state(model, schedule, x_T, 0, 3.0, steps=3, classifier=classifier)
    b = guidance_state(model, schedule, x_T, 0, 3.0, steps=3, classifier=classifier)
    torch.testing.assert_close(a["images"], b["images"], rtol=0, atol=0)
    assert a["caption"] == b["caption"]


def test_scale_zero_ignores_the_class(model, schedule, x_T):
    """s = 0 is the unconditional model: every class gives the same images."""
    first = guidance_state(model, schedule, x_T, 0, 0.0, steps=3)["images"]
    for label in range(1, NUM_CLASSES):
        torch.testing.assert_close(guidance_state(model, schedule, x_T, label, 0.0, steps=3)["images"], first)
    assert not torch.allclose(guidance_state(model, schedule, x_T, 1, 1.0, steps=3)["images"], first)


def test_accuracy_is_the_classifiers_verdict(model, schedule, classifier, x_T):
    state = guidance_state(model, schedule, x_T, 1, 2.0, steps=3, classifier=classifier, class_names=NAMES)
    with torch.no_grad():
        predicted = classifier(state["images"]).argmax(1)
    torch.testing.assert_close(state["predicted"], predicted)
    correct = int((predicted == 1).sum())
    assert state["correct"] == correct and state["accuracy"] == pytest.approx(correct / 4)
    assert state["caption"] == format_guidance_caption(2.0, "square", correct, 4, 3)


def test_state_without_a_classifier_has_no_accuracy(model, schedule, x_T):
    state = guidance_state(model, schedule, x_T, 1, 2.0, steps=2)
    assert state["predicted"] is None and state["correct"] is None and state["accuracy"] is None
    assert state["class_name"] == "1" and "no classifier" in state["caption"]


def test_an_evaluator_like_object_is_accepted(model, schedule, classifier, x_T):
    class HasClassifier:
        pass

    holder = HasClassifier()
    holder.classifier = classifier
    a = guidance_state(model, schedule, x_T, 1, 2.0, steps=2, classifier=holder)
    b = guidance_state(model, schedule, x_T, 1, 2.0, steps=2, classifier=classifier)
    assert a["correct"] == b["correct"]


def test_state_rejects_bad_inputs(model, schedule, x_T, tiny_unet):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        guidance_state(model, schedule, x_T, 3, 1.0, steps=2)    # 3 is the null label, not a class
    with pytest.raises(ValueError, match="class names"):
        guidance_state(model, schedule, x_T, 0, 1.0, steps=2, class_names=["a", "b"])
    with pytest.raises(ValueError, match="unconditional"):
        guidance_state(tiny_unet(), schedule, x_T, 0, 2.0, steps=2)


# ------------------------------------------------------------------ the widget
def test_structure_and_css_classes(explorer):
    assert isinstance(explorer.widget, widgets.Box)
    assert set(explorer.controls) == {"label", "guidance_scale", "steps"}
    assert isinstance(explorer.controls["label"], widgets.Dropdown)
    assert list(explorer.controls["label"].options) == [(name, k) for k, name in enumerate(NAMES)]
    slider = explorer.controls["guidance_scale"]
    assert isinstance(slider, widgets.FloatSlider) and (slider.min, slider.max) == (0.0, 6.0)
    assert isinstance(explorer.controls["steps"], widgets.Dropdown) and 5 in explorer.controls["steps"].options
    assert isinstance(explorer.caption, widgets.HTML) and isinstance(explorer.output, widgets.Output)
    assert GUIDANCE_CSS_CLASSES == {"container": "ddpm-guidance", "caption": "ddpm-guidance-caption",
                                    "plot": "ddpm-guidance-plot"}
    assert "ddpm-guidance-caption" in explorer.caption._dom_classes
    assert "ddpm-guidance-plot" in explorer.output._dom_classes
    assert "ddpm-guidance" in explorer.widget._dom_classes
    assert "ddpm-guidance-guidance_scale" in slider._dom_classes

    def descendants(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from descendants(child)

    parts = list(descendants(explorer.widget))
    for part in [*explorer.controls.values(), explorer.caption, explorer.output]:
        assert any(part is p for p in parts)


def test_initial_state(explorer, area, model, schedule, classifier):
    assert explorer.values() == {"label": 1, "guidance_scale": 2.0, "steps": 5}
    expected = guidance_state(model, schedule, explorer.x_T, 1, 2.0, steps=5, classifier=classifier,
                              class_names=NAMES)
    torch.testing.assert_close(explorer.state["images"], expected["images"])
    caption = explorer.caption.value
    assert expected["caption"].replace("'", "&#x27;") in caption
    assert "s=2" in caption and "w=1" in caption and "square" in caption and "accuracy" in caption
    assert explorer.compute_count == 1 and explorer.draw_count == 1
    assert len(area.outputs) == 1 and area.outputs[0] is explorer.figure
    assert repr(explorer) == "GuidanceExplorer(class='square', guidance_scale=2, steps=5, n=4)"


def test_moving_the_slider_changes_caption_and_samples(explorer):
    before, images = explorer.caption.value, explorer.state["images"]
    explorer.controls["guidance_scale"].value = 5.0
    assert explorer.caption.value != before
    assert "s=5 (paper&#x27;s w=4)" in explorer.caption.value
    assert explorer.state["guidance_scale"] == 5.0 and explorer.compute_count == 2
    assert not torch.allclose(explorer.state["images"], images)


def test_moving_back_uses_the_cache(explorer, area):
    first = explorer.state
    explorer.controls["guidance_scale"].value = 4.0
    explorer.controls["label"].value = 0
    assert explorer.compute_count == 3
    explorer.controls["label"].value = 1
    explorer.controls["guidance_scale"].value = 2.0
    assert explorer.compute_count == 3                       # both settings were cached
    assert explorer.state is first                            # the very same state object
    assert "from the cache" in explorer.caption.value
    assert set(explorer.cache) == {(1, 2.0, 5), (1, 4.0, 5), (0, 4.0, 5)}
    assert explorer.draw_count == 5 and len(area.outputs) == 1


def test_steps_are_part_of_the_cache_key(explorer):
    explorer.controls["steps"].value = 10
    assert explorer.state["steps"] == 10 and explorer.compute_count == 2
    assert "DDIM, 10 steps" in explorer.caption.value


def test_same_x_T_for_every_class_and_scale(explorer):
    x_T = explorer.x_T.clone()
    explorer.controls["label"].value = 2
    explorer.controls["guidance_scale"].value = 0.0
    torch.testing.assert_close(explorer.x_T, x_T)
    # at s = 0 (unconditional) the class does not matter
    zero = explorer.state["images"]
    explorer.controls["label"].value = 0
    torch.testing.assert_close(explorer.state["images"], zero)
    assert "1 model pass per step" in explorer.caption.value


def test_each_update_puts_one_new_figure_in_the_output_area(explorer, area):
    moves = [("guidance_scale", 1.0), ("label", 0), ("guidance_scale", 2.0), ("label", 1)]
    figures = [explorer.figure]
    for name, value in moves:
        explorer.controls[name].value = value
        assert len(area.outputs) == 1 and area.outputs[0] is explorer.figure
        assert all(explorer.figure is not old for old in figures)
        figures.append(explorer.figure)
    assert area.calls == ["clear(wait=True)", "display"] * (1 + len(moves))
    title = explorer.figure.axes[0].get_title()
    assert "square" in title and "s=2" in title and "w=1" in title


def test_misclassified_samples_are_framed(explorer):
    wrong = int((explorer.state["predicted"] != explorer.state["label"]).sum())
    assert len(explorer.figure.axes[0].patches) == wrong


def test_without_a_classifier(area, model, schedule, monkeypatch):
    monkeypatch.setattr(explorer_module, "_default_classifier", lambda: (None, None, "No accuracy: test."))
    made = GuidanceExplorer(model, schedule, n=2, steps=5)
    assert made.state["accuracy"] is None and made.class_names == ["0", "1", "2"]
    assert "no classifier" in made.caption.value and "No accuracy: test." in made.caption.value
    assert len(made.figure.axes[0].patches) == 0


def test_default_classifier_names_are_used(area, model, schedule, classifier, monkeypatch):
    monkeypatch.setattr(explorer_module, "_default_classifier", lambda: (classifier, NAMES, ""))
    made = GuidanceExplorer(model, schedule, n=2, steps=5, label=2)
    assert made.class_names == NAMES and "star" in made.caption.value and made.state["accuracy"] is not None


def test_an_unconditional_model_is_refused(area, tiny_unet, schedule, classifier):
    with pytest.raises(ValueError, match="class-conditional"):
        GuidanceExplorer(tiny_unet(), schedule, classifier=classifier)


def test_display_bundle_points_at_the_widget_and_carries_a_static_png(explorer, display_bundle):
    png = display_bundle(explorer)
    explorer.controls["guidance_scale"].value = 5.0
    assert display_bundle(explorer) != png   # the still picture follows the controls


def test_the_shipped_classifier_loads():
    from ddpm_teach.evaluation import DEFAULT_CLASSIFIER

    if not DEFAULT_CLASSIFIER.is_file():
        pytest.skip("the shipped classifier checkpoint is not here")
    net, names, note = explorer_module._default_classifier()
    assert isinstance(net, Classifier) and not net.training and note == ""
    assert len(names) == net.config.num_classes == 10


def test_plot_guidance_state_on_given_axes(model, schedule, classifier, x_T):
    import matplotlib.pyplot as plt

    from ddpm_teach.widgets import plot_guidance_state

    state = guidance_state(model, schedule, x_T, 0, 3.0, steps=2, classifier=classifier, class_names=NAMES)
    fig, axes = plt.subplots(1, 2)
    assert plot_guidance_state(state, ax=axes[1]) is fig
    wrong = int((state["predicted"] != 0).sum())
    assert len(axes[1].patches) == wrong and len(axes[0].patches) == 0
    assert axes[1].get_title() == f"circle, s=3 (w=2)\nclassifier agrees: {4 - wrong}/4"
    plt.close(fig)
    alone = plot_guidance_state(guidance_state(model, schedule, x_T, 0, 3.0, steps=2))
    assert len(alone.axes) == 1 and alone.axes[0].get_title() == "circle, s=3 (w=2)".replace("circle", "0")
    plt.close(alone)
