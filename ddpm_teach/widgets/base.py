"""What every explorer shares: controls, a caption and one figure in an output area (notebooks 02, 07).

An explorer is a set of ipywidgets controls, an ``HTML`` caption and an ``Output`` that holds one
matplotlib figure at a time, stacked in one container.  :class:`FigureExplorer` builds that
container, gives each part the CSS class a browser test looks for, reads the controls
(:meth:`~FigureExplorer.values`), and shows each new figure after closing it for pyplot, so that
the inline backend does not show it a second time under the widget.  The explorers built on it:

* :class:`~ddpm_teach.widgets.schedule.ScheduleExplorer`, the noise schedules of notebook 02;
* :class:`~ddpm_teach.widgets.guidance.GuidanceExplorer`, classifier-free guidance in notebook 07.

Only APIs common to ipywidgets 7.7 (as on Colab) and 8 are used: ``observe(..., names="value")``,
``add_class``, ``Layout``, and an ``Output`` filled with ``clear_output(wait=True)`` and
``display(fig)`` inside ``with output:``.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from IPython.display import clear_output, display

__all__ = ["FigureExplorer"]


def _figure_png(fig) -> str:
    """A figure as base64 PNG text, the form Jupyter's ``image/png`` output takes."""
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class FigureExplorer:
    """Controls, a caption and one figure, redrawn whenever a control moves.

    Attributes:
        controls: ``{name: widget}``; each carries the CSS class ``<container>-<name>``.
        caption:  an ``HTML`` widget (class ``css_classes["caption"]``).
        output:   an ``Output`` widget holding one figure (class ``css_classes["plot"]``).
        widget:   the container to display (class ``css_classes["container"]``); displaying the
                  explorer itself shows it too.
        figure:   the latest figure drawn, already closed for pyplot; ``draw_count`` counts them.

    A subclass sets ``css_classes`` (keys ``container``, ``caption``, ``plot``), calls
    ``super().__init__(controls, rows)`` and then :meth:`_listen`, and writes ``update()`` (read
    the controls, set the caption, call :meth:`_redraw`) and ``_draw(state)`` (a new figure).
    """

    css_classes: Mapping[str, str]

    def __init__(self, controls: Mapping[str, Any], rows: Sequence[Sequence[str]]):
        """controls: ``{name: widget}``; rows: the layout, the controls' names row by row (a row
        of one name is a control on its own, e.g. a full-width slider)."""
        import ipywidgets as widgets

        self.controls = dict(controls)
        for name, control in self.controls.items():
            control.add_class(f"{self.css_classes['container']}-{name}")
        self.caption = widgets.HTML(value="")
        self.caption.add_class(self.css_classes["caption"])
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.output.add_class(self.css_classes["plot"])
        lines = [self.controls[row[0]] if len(row) == 1 else widgets.HBox([self.controls[name] for name in row])
                 for row in rows]
        self.widget = widgets.VBox([*lines, self.caption, self.output])
        self.widget.add_class(self.css_classes["container"])
        self.figure = None
        self.draw_count = 0

    def _listen(self) -> None:
        """Call :meth:`_on_change` whenever a control's value changes, and draw the first figure."""
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict[str, Any]:
        """The controls' current values, ``{name: value}``."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, change: dict) -> None:
        self.update()

    def update(self):
        raise NotImplementedError

    def _draw(self, state: dict[str, Any]):
        raise NotImplementedError

    # ------------------------------------------------------------------ caption and figure
    def _set_caption(self, headline: str, detail: str, note: str = "") -> None:
        """The caption: the headline in bold, a line of detail, and a note in italics if any."""
        note_html = f"<br><i>{html.escape(note)}</i>" if note else ""
        self.caption.value = f"<b>{html.escape(headline)}</b><br>{html.escape(detail)}{note_html}"

    def _set_error(self, error: Exception) -> None:
        """The caption says what is wrong with the setting (in red)."""
        self.caption.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"

    def _redraw(self, state: dict[str, Any]) -> None:
        """Draw ``state`` as a new figure and put it in the output area in place of the last one."""
        import matplotlib.pyplot as plt

        fig = self._draw(state)
        fig.tight_layout()
        plt.close(fig)   # shown once, in the output area, not again by the inline backend
        with self.output:   # works in JupyterLab, Notebook 7, VS Code and Colab
            clear_output(wait=True)
            display(fig)
        self.figure = fig
        self.draw_count += 1

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
        if self.figure is not None:
            bundle["image/png"] = _figure_png(self.figure)
        return bundle
