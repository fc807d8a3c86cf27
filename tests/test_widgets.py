"""ddpm_teach.widgets: the schedule explorer of notebook 02, driven without a browser.

Controls are moved by setting their ``.value`` (what a slider drag sends from the browser), and
the caption, state, image and figures are checked against numbers recomputed here from
``make_betas`` with an explicit cumulative product.
"""
from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402

from ddpm_teach.widgets import schedule as explorer_module  # noqa: E402
from ddpm_teach.schedules import SCHEDULE_KINDS, make_betas  # noqa: E402
from ddpm_teach.widgets import CSS_CLASSES, ScheduleExplorer, explorer_state, schedule_explorer  # noqa: E402


def reference(kind: str, T: int, t: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> dict:
    """ᾱ_t, SNR(t) and the eq. 4 coefficients from make_betas by a plain running product."""
    betas = make_betas(kind, T) if kind == "cosine" else make_betas(kind, T, beta_start=beta_start, beta_end=beta_end)
    alpha_bar = 1.0
    for s in range(t + 1):
        alpha_bar *= 1.0 - float(betas[s])          # ᾱ_t = Π_{s≤t} (1 − β_s)
    return {"alpha_bar": alpha_bar, "snr": alpha_bar / (1.0 - alpha_bar),
            "signal": math.sqrt(alpha_bar), "noise": math.sqrt(1.0 - alpha_bar)}


def expected_caption(kind: str, T: int, t: int, **betas) -> str:
    ref = reference(kind, T, t, **betas)

    def coef(v):
        return f"{v:.3f}" if v >= 0.01 else f"{v:.1e}"

    return (f"t={t} of T={T} ({kind}): ᾱ_t={ref['alpha_bar']:.4g}, SNR={ref['snr']:.3g}, "
            f"x_t = {coef(ref['signal'])}·x_0 + {coef(ref['noise'])}·ε")


@pytest.fixture
def image():
    """A 1×8×8 test pattern in [-1, 1] (the explorer takes any image; no dataset needed)."""
    return torch.linspace(-1, 1, 64).reshape(1, 8, 8)


@pytest.fixture
def explorer(area, image):
    made = ScheduleExplorer(image)
    yield made
    import matplotlib.pyplot as plt
    plt.close("all")


def caption_text(explorer: ScheduleExplorer) -> str:
    return explorer.caption.value


# ------------------------------------------------------------------ the pure state
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
@pytest.mark.parametrize("T, t", [(1000, 0), (1000, 250), (1000, 999), (50, 49), (7, 3)])
def test_explorer_state_matches_make_betas(kind, T, t):
    state = explorer_state(kind, T, 1e-4, 0.02, t)
    ref = reference(kind, T, t)
    assert state["alpha_bar_t"] == pytest.approx(ref["alpha_bar"], rel=1e-10)
    assert state["snr_t"] == pytest.approx(ref["snr"], rel=1e-8)
    assert state["signal_scale"] == pytest.approx(ref["signal"], rel=1e-10)
    assert state["noise_scale"] == pytest.approx(ref["noise"], rel=1e-8)
    assert state["alpha_bar_T"] == pytest.approx(reference(kind, T, T - 1)["alpha_bar"], rel=1e-10)
    assert state["caption"] == expected_caption(kind, T, t)
    assert state["schedule"].T == T and state["t"] == t and state["kind"] == kind


def test_caption_example_from_the_notebook():
    assert explorer_state("linear", 1000, 1e-4, 0.02, 250)["caption"] == (
        "t=250 of T=1000 (linear): ᾱ_t=0.5214, SNR=1.09, x_t = 0.722·x_0 + 0.692·ε")


def test_explorer_state_uses_the_beta_end_points_except_for_cosine():
    state = explorer_state("linear", 100, 1e-3, 0.2, 99)
    assert state["alpha_bar_t"] == pytest.approx(reference("linear", 100, 99, beta_start=1e-3, beta_end=0.2)["alpha_bar"])
    cosine = explorer_state("cosine", 100, 1e-3, 0.2, 99)
    assert cosine["beta_start"] is None and cosine["beta_end"] is None
    assert cosine["alpha_bar_t"] == pytest.approx(reference("cosine", 100, 99)["alpha_bar"])


def test_explorer_state_rejects_impossible_settings():
    with pytest.raises(ValueError, match="beta_start <= beta_end"):
        explorer_state("linear", 100, 0.1, 0.01, 5)
    with pytest.raises(ValueError, match="out of range"):
        explorer_state("linear", 100, 1e-4, 0.02, 100)


# ------------------------------------------------------------------ the widget
def test_structure_and_css_classes(explorer):
    assert isinstance(explorer.widget, widgets.Box)
    assert set(explorer.controls) == {"kind", "T", "beta_start", "beta_end", "t"}
    assert isinstance(explorer.controls["kind"], widgets.Dropdown)
    assert tuple(explorer.controls["kind"].options) == tuple(SCHEDULE_KINDS)
    assert isinstance(explorer.controls["T"], widgets.IntSlider)
    assert isinstance(explorer.controls["t"], widgets.IntSlider)
    assert isinstance(explorer.caption, widgets.HTML)
    assert isinstance(explorer.output, widgets.Output)
    assert CSS_CLASSES["caption"] == "ddpm-explorer-caption" and CSS_CLASSES["plot"] == "ddpm-explorer-plot"
    assert "ddpm-explorer-caption" in explorer.caption._dom_classes
    assert "ddpm-explorer-plot" in explorer.output._dom_classes
    assert "ddpm-explorer" in explorer.widget._dom_classes
    assert "ddpm-explorer-t" in explorer.controls["t"]._dom_classes

    def descendants(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from descendants(child)

    parts = list(descendants(explorer.widget))
    for part in [*explorer.controls.values(), explorer.caption, explorer.output]:
        assert any(part is p for p in parts)


def test_initial_state(explorer, area):
    assert explorer.values() == {"kind": "linear", "T": 1000, "beta_start": pytest.approx(1e-4),
                                 "beta_end": pytest.approx(0.02), "t": 250}
    assert expected_caption("linear", 1000, 250) in caption_text(explorer)
    assert explorer.controls["t"].max == 999
    assert not explorer.controls["beta_start"].disabled and not explorer.controls["beta_end"].disabled
    assert explorer.draw_count == 1 and len(area.outputs) == 1 and area.outputs[0] is explorer.figure
    assert repr(explorer) == "ScheduleExplorer(kind='linear', T=1000, t=250, beta_start=0.0001, beta_end=0.02)"


def test_moving_t_changes_caption_state_and_image(explorer, image):
    before = caption_text(explorer)
    explorer.controls["t"].value = 600
    assert caption_text(explorer) != before
    assert expected_caption("linear", 1000, 600) in caption_text(explorer)
    assert explorer.state["t"] == 600
    ref = reference("linear", 1000, 600)
    assert explorer.state["alpha_bar_t"] == pytest.approx(ref["alpha_bar"], rel=1e-10)
    # x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with the explorer's fixed ε (DDPM eq. 4)
    expected = ref["signal"] * image.unsqueeze(0) + ref["noise"] * explorer.noise
    torch.testing.assert_close(explorer.x_t, expected, rtol=1e-5, atol=1e-6)


def test_noise_is_fixed_so_only_the_mix_changes(explorer):
    noise = explorer.noise.clone()
    explorer.controls["t"].value = 10
    explorer.controls["kind"].value = "sigmoid"
    torch.testing.assert_close(explorer.noise, noise)


def test_T_change_clamps_t(explorer):
    explorer.controls["t"].value = 900
    draws = explorer.draw_count
    explorer.controls["T"].value = 100
    assert explorer.controls["t"].max == 99
    assert explorer.controls["t"].value == 99               # clamped to the new last step
    assert explorer.draw_count == draws + 1                 # one redraw for T and the clamped t together
    assert expected_caption("linear", 100, 99) in caption_text(explorer)
    assert explorer.state["T"] == 100 and explorer.state["schedule"].T == 100
    # growing T again raises the maximum and keeps t
    explorer.controls["T"].value = 2000
    assert explorer.controls["t"].max == 1999 and explorer.controls["t"].value == 99
    assert expected_caption("linear", 2000, 99) in caption_text(explorer)
    # a t that still fits is kept
    explorer.controls["T"].value = 500
    assert explorer.controls["t"].value == 99 and explorer.controls["t"].max == 499


def test_cosine_disables_the_beta_sliders(explorer):
    explorer.controls["kind"].value = "cosine"
    assert explorer.controls["beta_start"].disabled and explorer.controls["beta_end"].disabled
    assert expected_caption("cosine", 1000, 250) in caption_text(explorer)
    # moving a (disabled) β slider programmatically does not change a cosine schedule
    caption = caption_text(explorer)
    explorer.controls["beta_end"].value = 0.1
    assert caption_text(explorer) == caption
    assert "beta" not in repr(explorer)
    explorer.controls["kind"].value = "quadratic"
    assert not explorer.controls["beta_start"].disabled and not explorer.controls["beta_end"].disabled
    assert expected_caption("quadratic", 1000, 250, beta_end=0.1) in caption_text(explorer)


def test_explorer_can_start_on_cosine(area, image):
    made = ScheduleExplorer(image, kind="cosine", T=100, t=500)
    assert made.controls["beta_start"].disabled and made.controls["beta_end"].disabled
    assert made.controls["t"].value == 99
    assert expected_caption("cosine", 100, 99) in caption_text(made)


def test_beta_sliders_change_the_schedule(explorer):
    explorer.controls["T"].value = 100
    explorer.controls["t"].value = 99
    explorer.controls["beta_start"].value = 1e-3
    explorer.controls["beta_end"].value = 0.2              # the "scale by 1000/T" fix of notebook 02
    assert expected_caption("linear", 100, 99, beta_start=1e-3, beta_end=0.2) in caption_text(explorer)
    assert explorer.state["alpha_bar_T"] < 1e-4


def test_each_update_puts_one_new_figure_in_the_output_area(explorer, area):
    figures = [explorer.figure]
    moves = [("t", 10), ("t", 999), ("T", 50), ("kind", "cosine"), ("kind", "sigmoid"), ("beta_end", 0.05)]
    for name, value in moves:
        explorer.controls[name].value = value
        assert len(area.outputs) == 1                       # the old figure was replaced, not appended to
        assert area.outputs[0] is explorer.figure
        assert all(explorer.figure is not old for old in figures)
        figures.append(explorer.figure)
    assert explorer.draw_count == 1 + len(moves)
    assert area.calls == ["clear(wait=True)", "display"] * (1 + len(moves))
    # the figure draws the curves, the marker at t and x_0 | x_t | ε
    assert len(explorer.figure.axes) == 5
    assert f"t={explorer.state['t']}" in explorer.figure.axes[3].get_title()


def test_explicit_update_redraws(explorer, area):
    state = explorer.update()
    assert state is explorer.state and explorer.draw_count == 2 and len(area.outputs) == 1


def test_impossible_setting_shows_the_error_and_keeps_the_figure(explorer, area):
    explorer.controls["beta_start"].value = 1e-2           # still valid (β_end = 0.02): redrawn
    figure = explorer.figure
    explorer.controls["beta_end"].value = 1e-3             # now β_start > β_end
    assert explorer.state is None
    assert "beta_start &lt;= beta_end" in caption_text(explorer)
    assert explorer.figure is figure and len(area.outputs) == 1
    explorer.controls["beta_end"].value = 0.02             # valid again: redrawn
    assert explorer.state is not None and explorer.figure is not figure


def test_without_an_image_only_curves(area, monkeypatch):
    monkeypatch.setattr(explorer_module, "_default_image", lambda: (None, "No image: test."))
    made = ScheduleExplorer()
    assert made.x_t is None and len(made.figure.axes) == 2
    assert "No image: test." in caption_text(made)


def test_schedule_explorer_returns_the_container(area, image):
    widget = schedule_explorer(image, T=200, t=150)
    assert isinstance(widget, widgets.VBox) and "ddpm-explorer" in widget._dom_classes


def test_images_are_accepted_in_several_forms(area):
    gray_u8 = torch.full((1, 1, 6, 6), 255, dtype=torch.uint8)
    made = ScheduleExplorer(gray_u8, t=0)
    torch.testing.assert_close(made.x0, torch.ones(1, 1, 6, 6))
    rgb = torch.zeros(3, 6, 6)
    assert ScheduleExplorer(rgb).x_t.shape == (1, 3, 6, 6)
    with pytest.raises(ValueError, match="one image"):
        ScheduleExplorer(torch.zeros(2, 1, 6, 6))


def test_display_bundle_points_at_the_widget_and_carries_a_static_png(explorer, display_bundle):
    png = display_bundle(explorer)
    explorer.controls["t"].value = 900
    assert display_bundle(explorer) != png   # the still picture follows the controls
