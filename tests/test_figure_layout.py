"""Figures whose titles must stay readable: no title is drawn over another.

The checker renders a figure (Agg backend), takes the window extent of the suptitle and of every
axes title after ``fig.canvas.draw()``, and reports each pair whose boxes overlap.  Notebook 06's
"DDIM eq. 12, term by term" figure once drew its suptitle over the middle column titles; it is now
``ddpm_teach.plotting.plot_ddim_terms``, checked here at the notebook's sizes.  A sanity test makes
sure the checker does find overlaps, so that a passing layout test means something."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddpm_teach.plotting import plot_ddim_terms  # noqa: E402

MIN_OVERLAP_PX = 0.5          # boxes that share less than this (in both directions) only touch


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drawn_titles(fig: Figure) -> list:
    """The figure's non-empty titles as drawn: the suptitle (and any other figure text) and every
    axes title (centre, left and right)."""
    fig.canvas.draw()
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title]
    return [text for text in texts if text.get_visible() and text.get_text().strip()]


def title_overlaps(fig: Figure) -> list[tuple[str, str]]:
    """Every pair of drawn titles whose window-extent bounding boxes overlap."""
    renderer = fig.canvas.get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in drawn_titles(fig)]
    overlaps = []
    for (name_a, a), (name_b, b) in itertools.combinations(boxes, 2):
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        if width > MIN_OVERLAP_PX and height > MIN_OVERLAP_PX:
            overlaps.append((name_a, name_b))
    return overlaps


def ddim_terms_figure(rows: int) -> Figure:
    generator = torch.Generator().manual_seed(0)
    terms = {name: 2 * torch.rand(rows, 1, 28, 28, generator=generator) - 1
             for name in ("x_t", "pred_x0", "x0_term", "direction", "noise_term", "x_prev")}
    return plot_ddim_terms(**terms, t=666, t_prev=555, eta=1.0)


# ------------------------------------------------------------------ the figure of notebook 06 §2
@pytest.mark.parametrize("rows", [1, 4, 8])          # notebook 06 shows N_SHOW = 4 (CI size) or 8 (full size)
def test_ddim_terms_titles_do_not_overlap(rows):
    fig = ddim_terms_figure(rows)
    titles = [text.get_text() for text in drawn_titles(fig)]
    assert len(titles) == 7, titles                   # the suptitle and the six column titles
    assert "√ᾱ_prev·x̂_0" in titles and "√(1−ᾱ_prev−σ²)·ε̂" in titles
    assert title_overlaps(fig) == []


def test_ddim_terms_suptitle_sits_above_every_column_title():
    fig = ddim_terms_figure(4)
    renderer = fig.canvas.get_renderer()
    suptitle = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert ax.title.get_window_extent(renderer).y1 <= suptitle.y0, ax.title.get_text()


def test_ddim_terms_rejects_terms_of_different_shapes():
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match="one shape"):
        plot_ddim_terms(x_t=x, pred_x0=x, x0_term=x, direction=x[:3], noise_term=x, x_prev=x, t=666, t_prev=555,
                        eta=1.0)


# ------------------------------------------------------------------ the checker can fail
def test_checker_finds_a_suptitle_drawn_over_an_axes_title():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("a column title")
    fig.canvas.draw()
    box = ax.title.get_window_extent(fig.canvas.get_renderer()).transformed(fig.transFigure.inverted())
    fig.suptitle("a suptitle in the same place", y=(box.y0 + box.y1) / 2, va="center")
    assert title_overlaps(fig) == [("a suptitle in the same place", "a column title")]


def test_checker_finds_axes_titles_that_overlap_each_other():
    fig, axes = plt.subplots(1, 2, figsize=(3, 2))
    axes[0].set_title("a very long title for a narrow column")
    axes[1].set_title("another very long title next to it")
    assert title_overlaps(fig) == [("a very long title for a narrow column", "another very long title next to it")]


def test_checker_passes_titles_that_are_apart():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
    axes[0].set_title("left")
    axes[1].set_title("right")
    fig.suptitle("above both")
    assert title_overlaps(fig) == []
