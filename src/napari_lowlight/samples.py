"""Offline sample images: a clean original and its synthetic low-light version.

Everything comes from images inside the installed scikit-image package or is generated,
so samples work on a machine without network access.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import data

from .synthesis import synthesize_low_light

__all__ = ["Sample", "SAMPLES", "load_sample", "fluorescence_scene"]


@dataclass(frozen=True)
class Sample:
    """A low-light image, its clean original and how the one was made from the other."""

    name: str
    low: np.ndarray
    clean: np.ndarray
    alpha: float
    gamma: float
    channel_axis: int | None


def fluorescence_scene(shape=(256, 256), *, cells: int = 40, seed: int = 0) -> np.ndarray:
    """A fluorescence-microscopy-like uint16 image: bright blurred cells on a dark background.

    Parameters
    ----------
    shape : (int, int)
        Image size (Y, X).
    cells : int
        Number of cells.
    seed : int
        Seed of the cell positions, sizes and brightness.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    image = np.full(shape, 0.02, np.float32)
    for _ in range(cells):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radius = rng.uniform(4, 14)
        brightness = rng.uniform(0.3, 1.0)
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2
        # A bright rim and a dimmer nucleus, like a membrane stain.
        image[inside] = np.maximum(image[inside], brightness * 0.5)
        nucleus = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.45 * radius) ** 2
        image[nucleus] = np.maximum(image[nucleus], brightness)
    image = ndimage.gaussian_filter(image, 1.5)
    return np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)


def _photo():
    clean = data.coffee()
    low = synthesize_low_light(clean, 1.0, 0.5, noise="gaussian", noise_sigma=0.02, seed=0, channel_axis=-1)
    return Sample("coffee (RGB photograph)", low, clean, 1.0, 0.5, -1)


def _fluorescence():
    clean = fluorescence_scene()
    low = synthesize_low_light(clean, 1.5, 1.0, noise="poisson-gaussian", photons=200, noise_sigma=0.005, seed=0)
    return Sample("cells (16-bit fluorescence)", low, clean, 1.5, 1.0, None)


def _astronomy():
    clean = data.hubble_deep_field()
    low = synthesize_low_light(clean, 1.0, 1.0, noise="gaussian", noise_sigma=0.01, seed=0, channel_axis=-1)
    return Sample("Hubble deep field (RGB)", low, clean, 1.0, 1.0, -1)


SAMPLES = {"photo": _photo, "fluorescence": _fluorescence, "astronomy": _astronomy}


def load_sample(name: str = "photo") -> Sample:
    """Return the sample ``name``: one of ``"photo"``, ``"fluorescence"``, ``"astronomy"``."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {sorted(SAMPLES)}")
    return SAMPLES[name]()
