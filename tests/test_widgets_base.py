"""ddpm_teach.widgets.base.FigureExplorer: what both explorers share, on a one-slider explorer.

The explorer here draws a horizontal line at its slider's value, so each figure can be told
apart; the tests check the layout and CSS classes, ``values()``, the caption, that every figure
is closed for pyplot once drawn and replaces the last one in the output area.
"""
from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from ddpm_teach.widgets import FigureExplorer  # noqa: E402


class LineExplorer(FigureExplorer):
    """A slider ``level`` and a checkbox ``grid``; the figure is one line at the level."""

    css_classes = {"container": "test-line", "caption": "test-line-caption", "plot": "test-line-plot"}

    def __init__(self, level: float = 0.5):
        super().__init__({"level": widgets.FloatSlider(value=level, min=0.0, max=1.0),
                          "grid": widgets.Checkbox(value=False),
                          "note": widgets.Text(value="")},
                         rows=[("level", "grid"), ("note",)])
        self.updates = 0
        self._listen()

    def update(self):
        self.updates += 1
        values = self.values()
        if values["note"] == "fail":
            self._set_error(ValueError("level <= 1 & no <b>tags</b>"))
            return None
        self._set_caption(f"level={values['level']:g}", "one line", values["note"])
        self._redraw(values)
        return values

    def _draw(self, state):
        fig, ax = plt.subplots()
        ax.axhline(state["level"])
        ax.grid(state["grid"])
        return fig

    def __repr__(self):
        return f"LineExplorer(level={self.values()['level']:g})"


@pytest.fixture
def explorer(area):
    made = LineExplorer()
    yield made
    plt.close("all")


def test_layout_and_css_classes(explorer):
    first_row, note, caption, output = explorer.widget.children
    assert isinstance(first_row, widgets.HBox) and list(first_row.children) == [explorer.controls["level"],
                                                                                 explorer.controls["grid"]]
    assert note is explorer.controls["note"]                      # a row of one is the control itself
    assert caption is explorer.caption and output is explorer.output
    assert "test-line" in explorer.widget._dom_classes
    assert "test-line-caption" in explorer.caption._dom_classes
    assert "test-line-plot" in explorer.output._dom_classes
    for name, control in explorer.controls.items():
        assert f"test-line-{name}" in control._dom_classes


def test_values_reads_every_control(explorer):
    assert explorer.values() == {"level": 0.5, "grid": False, "note": ""}
    explorer.controls["grid"].value = True
    explorer.controls["level"].value = 0.25
    assert explorer.values() == {"level": 0.25, "grid": True, "note": ""}


def test_every_change_updates_once_and_replaces_the_figure(explorer, area):
    assert explorer.updates == 1 and explorer.draw_count == 1 and area.outputs == [explorer.figure]
    first = explorer.figure
    explorer.controls["level"].value = 0.75
    assert explorer.updates == 2 and explorer.draw_count == 2
    assert area.outputs == [explorer.figure] and explorer.figure is not first
    assert list(explorer.figure.axes[0].get_lines()[0].get_ydata()) == [0.75, 0.75]
    assert area.calls == ["clear(wait=True)", "display"] * 2


def test_figures_are_closed_once_drawn(explorer):
    """The inline backend would show an open figure a second time, under the widget."""
    explorer.controls["level"].value = 0.1
    assert plt.get_fignums() == []
    assert explorer.figure.axes                                    # closed, yet still drawable
    assert explorer._repr_mimebundle_()["image/png"]


def test_caption_is_escaped_and_errors_keep_the_figure(explorer, area):
    explorer.controls["note"].value = "a <note>"
    assert explorer.caption.value == "<b>level=0.5</b><br>one line<br><i>a &lt;note&gt;</i>"
    figure = explorer.figure
    explorer.controls["note"].value = "fail"
    assert "level &lt;= 1 &amp; no &lt;b&gt;tags&lt;/b&gt;" in explorer.caption.value
    assert "color:#b00020" in explorer.caption.value
    assert explorer.figure is figure and area.outputs == [figure]


def test_display_bundle(explorer, display_bundle):
    png = display_bundle(explorer)
    explorer.controls["level"].value = 0.9
    assert display_bundle(explorer) != png
