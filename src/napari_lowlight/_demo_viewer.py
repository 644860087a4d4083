"""``napari-lowlight demo`` with a display: the sample, its restoration and the widgets."""

from __future__ import annotations

import napari

from ._sample_data import sample_layers
from ._widgets import RestoreWidget, SynthesizeWidget, TrainWidget
from .samples import Sample

#: Dock names of the three panels (as the Plugins menu names them).
PANEL_NAMES = ("Synthesize low light", "Train / fine-tune", "Restore low light")


def dock_panels(viewer, *, registry=None) -> tuple[SynthesizeWidget, TrainWidget, RestoreWidget]:
    """Dock the three panels as tabs on the right of ``viewer``, the Restore panel in front.

    Tabs, not a column: each panel gets the whole height, so the window fits a
    1280x800 screen. ``registry`` is the model registry of Train and Restore (the
    session's shared one when None).
    """
    extra = {} if registry is None else {"registry": registry}
    panels = (SynthesizeWidget(viewer), TrainWidget(viewer, **extra), RestoreWidget(viewer, **extra))
    docks = [
        viewer.window.add_dock_widget(panel, name=name, area="right", tabify=True)
        for panel, name in zip(panels, PANEL_NAMES, strict=True)
    ]
    docks[-1].raise_()
    return panels


def show_demo(sample: Sample) -> None:
    """Open napari with ``sample``, restore it with the shipped weights at alpha "auto"
    through the Restore widget (the result lands on top, in view), dock the other
    widgets behind it, and run the event loop."""
    viewer = napari.Viewer(title="napari-lowlight demo")
    for data, kwargs, _ in sample_layers(sample):
        viewer.add_image(data, **kwargs)
    low_layer = viewer.layers[-1]
    _, _, restore = dock_panels(viewer)
    restore.layer = low_layer
    restore.auto_alpha = True
    restore.run()
    napari.run()
