"""Slicer's views for a page: trame-slicer's remote-controlled slice and 3D views, made cheap
for a CPU renderer.

- A new view renders nothing until trame-slicer's remote renderer takes it over (by default
  every MRML change while the view is being set up renders at once: about 240 renders, 4 s on
  Mesa llvmpipe, per page).
- No multi-sampling (8 samples by default): each frame is drawn on the CPU.
- Each slice view refits its volume when the browser resizes it (the first resize arrives after
  the volume is shown, so a fit made before it would use the wrong size).
"""
from __future__ import annotations

from typing import Any, Callable

from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui
from trame_slicer.rca_view.rca_view_factory import RemoteViewFactory
from trame_slicer.views import NoScheduleRendering, SliceView, ThreeDView, ViewType
from vtkmodules.vtkCommonCore import vtkCommand


def _quiet(view_class: type) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        view = view_class(scheduled_render_strategy=NoScheduleRendering(), **kwargs)
        view.render_window().SetMultiSamples(0)
        return view
    return make


def register_views(view_manager: Any, server: Any) -> None:
    """Register the slice and 3D view factories of one page."""
    for view_class, view_type, gutter in (
            (SliceView, ViewType.SLICE_VIEW, create_vertical_slice_view_gutter_ui),
            (ThreeDView, ViewType.THREE_D_VIEW, create_vertical_view_gutter_ui)):
        view_manager.register_factory(RemoteViewFactory(
            server, _quiet(view_class), view_type, populate_view_ui_f=gutter))


def refit_on_resize(view: Any) -> None:
    """Fit the slice view to its volume after every resize (after trame-slicer's own resize
    observer, which has the default priority 0)."""
    view.interactor().AddObserver(vtkCommand.WindowResizeEvent,
                                  lambda *_: view.fit_view_to_content(), -1.0)


__all__ = ["refit_on_resize", "register_views"]
