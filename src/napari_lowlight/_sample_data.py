"""napari sample data: the offline samples of :mod:`napari_lowlight.samples` as layers.

Each function returns napari layer-data tuples: the clean original first (hidden; a real
frame has none), the low-light version last (on top, ready for the Restore widget).
"""

from __future__ import annotations

import numpy as np

from .samples import Sample, load_sample

__all__ = ["SAMPLE_LAYERS", "astronaut_sample", "camera_sample", "fluorescence_sample", "hubble_sample", "sample_layers"]


def sample_layers(sample: Sample) -> list:
    """Layer-data tuples of ``sample``: its clean original (if it has one), then its low-light version."""
    clean_kwargs = {"name": f"{sample.key} (clean)", "visible": False}
    low_kwargs = {
        "name": f"{sample.key} (low light)",
        "metadata": {"napari_lowlight": {"role": "sample", "synthesis": sample.synthesis}},
    }
    if sample.channel_axis is not None:
        clean_kwargs["rgb"] = low_kwargs["rgb"] = True
    else:
        # The full display range, so the low-light image looks as dark as it is.
        dtype = sample.low.dtype
        limits = (0, np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else (0.0, 1.0)
        clean_kwargs["contrast_limits"] = low_kwargs["contrast_limits"] = limits
    low_layer = (sample.low, low_kwargs, "image")
    return [low_layer] if sample.clean is None else [(sample.clean, clean_kwargs, "image"), low_layer]


def hubble_sample():
    """A real dark sky frame (the Hubble Deep Field, RGB), as recorded."""
    return sample_layers(load_sample("hubble"))


def camera_sample():
    """Grey photograph (scikit-image's ``camera``), darkened with Gaussian noise."""
    return sample_layers(load_sample("camera"))


def astronaut_sample():
    """RGB photograph (scikit-image's ``astronaut``), darkened with Gaussian noise."""
    return sample_layers(load_sample("astronaut"))


def fluorescence_sample():
    """Procedural fluorescence Z-stack (uint16), darkened with Poisson-Gaussian noise."""
    return sample_layers(load_sample("fluorescence"))


#: key -> layer function, in the manifest's order.
SAMPLE_LAYERS = {
    "hubble": hubble_sample,
    "camera": camera_sample,
    "astronaut": astronaut_sample,
    "fluorescence": fluorescence_sample,
}
