"""Interactive explorers for the notebooks (ipywidgets 7.7, as on Colab, and 8).

Each explorer is a pure function, testable without a browser, and a class that owns the widgets:

* :mod:`~ddpm_teach.widgets.schedule`: the noise-schedule explorer of notebook 02,
  :func:`explorer_state` and :class:`ScheduleExplorer`;
* :mod:`~ddpm_teach.widgets.guidance`: the classifier-free guidance explorer of notebook 07,
  :func:`guidance_state`, :func:`plot_guidance_state` and :class:`GuidanceExplorer`;
* :mod:`~ddpm_teach.widgets.base`: what both share, :class:`FigureExplorer` (the controls, the
  caption, the output area, ``values()``, and closing each figure once it is drawn).

Every name is importable from here: ``from ddpm_teach.widgets import ScheduleExplorer``.
"""
from .base import FigureExplorer
from .guidance import (GUIDANCE_CSS_CLASSES, GuidanceExplorer, format_guidance_caption, guidance_state,
                       plot_guidance_state)
from .schedule import CSS_CLASSES, ScheduleExplorer, explorer_state, format_caption, schedule_explorer

__all__ = ["FigureExplorer",
           "CSS_CLASSES", "explorer_state", "format_caption", "ScheduleExplorer", "schedule_explorer",
           "GUIDANCE_CSS_CLASSES", "format_guidance_caption", "guidance_state", "plot_guidance_state",
           "GuidanceExplorer"]
