"""``napari-lowlight demo`` with a display: the sample, its restoration and the widgets."""

from __future__ import annotations

import napari

from ._sample_data import sample_layers
from ._widgets import RestoreWidget, SynthesizeWidget, TrainWidget
from .samples import Sample


def show_demo(sample: Sample) -> None:
    """Open napari with ``sample``, restore it with the shipped weights at alpha "auto"
    through the Restore widget, dock the other widgets, and run the event loop."""
    viewer = napari.Viewer(title="napari-lowlight demo")
    for data, kwargs, _ in sample_layers(sample):
        viewer.add_image(data, **kwargs)
    low_layer = viewer.layers[-1]
    viewer.window.add_dock_widget(SynthesizeWidget(viewer), name="Synthesize low light", area="right")
    viewer.window.add_dock_widget(TrainWidget(viewer), name="Train / fine-tune", area="right")
    restore = RestoreWidget(viewer)
    viewer.window.add_dock_widget(restore, name="Restore low light", area="right")
    restore.layer = low_layer
    restore.auto_alpha = True
    restore.run()
    napari.run()
