"""Offline sample images: a clean original and its synthetic low-light version.

Nothing is downloaded, ever: the photographs are files that ship inside the
scikit-image package (read directly from its ``data`` folder, not through
``skimage.data``'s fetcher), and the fluorescence stack is generated here. The
low-light versions come from :func:`~napari_lowlight.synthesize_low_light` with a
fixed seed, so every call returns the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .synthesis import synthesize_low_light

__all__ = ["Sample", "SAMPLES", "load_sample", "fluorescence_stack", "skimage_image"]


@dataclass(frozen=True)
class Sample:
    """A low-light image, its clean original and how the one was made from the other.

    ``clean`` is None for a real frame, recorded dark: nothing was made from anything.
    """

    key: str
    title: str
    low: np.ndarray
    clean: np.ndarray | None
    channel_axis: int | None
    synthesis: str


def skimage_image(name: str) -> np.ndarray:
    """Read ``name`` (e.g. ``"camera.png"``) from the data folder inside scikit-image.

    Raises
    ------
    FileNotFoundError
        If the installed scikit-image does not ship that file (no download is tried).
    """
    import imageio.v3 as iio
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not shipped with the installed scikit-image ({path})")
    return np.asarray(iio.imread(path))


def fluorescence_stack(shape=(12, 192, 192), *, seed: int = 0) -> np.ndarray:
    """A procedural fluorescence-like Z-stack (uint16): nuclei, filaments and background.

    Blurred ellipsoidal nuclei of varying brightness, thin bright filaments between
    some of them, a faint uneven background; values use the full uint16 range.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    depth, height, width = shape
    z, y, x = np.meshgrid(np.arange(depth), np.arange(height), np.arange(width), indexing="ij")
    volume = np.zeros(shape, np.float32)
    centres = []
    for _ in range(18):
        cz, cy, cx = rng.uniform(0.2, 0.8) * depth, rng.uniform(0.08, 0.92) * height, rng.uniform(0.08, 0.92) * width
        rz, ry, rx = rng.uniform(2.0, 4.0), rng.uniform(8.0, 16.0), rng.uniform(8.0, 16.0)
        inside = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
        texture = 0.75 + 0.25 * rng.random(shape).astype(np.float32)
        volume = np.maximum(volume, inside * rng.uniform(0.35, 1.0) * texture)
        centres.append((cz, cy, cx))
    for _ in range(10):
        (az, ay, ax), (bz, by, bx) = (centres[i] for i in rng.choice(len(centres), 2, replace=False))
        for t in np.linspace(0.0, 1.0, 400):
            pz, py, px = int(az + t * (bz - az)), int(ay + t * (by - ay)), int(ax + t * (bx - ax))
            volume[pz, py, px] = max(volume[pz, py, px], 0.9)
    volume = ndimage.gaussian_filter(volume, sigma=(0.8, 1.5, 1.5))
    background = ndimage.gaussian_filter(rng.random((height, width)).astype(np.float32), 24)
    background = 0.04 + 0.06 * (background - background.min()) / (np.ptp(background) + 1e-9)
    volume = volume / volume.max() * 0.95 + background[None]
    return (np.clip(volume, 0.0, 1.0) * 65535).round().astype(np.uint16)


def _sample(key, title, clean, *, rgb, alpha, gamma, noise, noise_sigma, photons=None) -> Sample:
    channel_axis = -1 if rgb else None
    low = synthesize_low_light(
        clean, alpha, gamma, noise=noise, noise_sigma=noise_sigma, photons=photons, seed=0, channel_axis=channel_axis
    )
    return Sample(key, title, low, clean, channel_axis, f"alpha={alpha:g}, gamma={gamma:g}, {noise} noise")


def _camera() -> Sample:
    clean = skimage_image("camera.png")
    return _sample("camera", "Camera: low light + clean (grey)", clean, rgb=False, alpha=1.0, gamma=1.0, noise="gaussian", noise_sigma=0.02)


def _astronaut() -> Sample:
    clean = skimage_image("astronaut.png")
    return _sample("astronaut", "Astronaut: low light + clean (RGB)", clean, rgb=True, alpha=1.2, gamma=1.0, noise="gaussian", noise_sigma=0.02)


def _fluorescence() -> Sample:
    return _sample(
        "fluorescence",
        "Fluorescence stack: low light + clean (Z, uint16)",
        fluorescence_stack(),
        rgb=False,
        alpha=1.0,
        gamma=1.0,
        noise="poisson-gaussian",
        noise_sigma=0.005,
        photons=300.0,
    )


def _hubble() -> Sample:
    # A real frame, not a synthesised one: the sky is dark by nature and the camera's
    # noise is its own. NASA's image (public domain), as scikit-image ships it.
    frame = skimage_image("hubble_deep_field.jpg")
    return Sample("hubble", "Hubble Deep Field: a real dark sky frame (RGB)", frame, None, -1, "none: a real frame")


#: key -> function returning the :class:`Sample`; the napari manifest lists the same.
SAMPLES = {"hubble": _hubble, "camera": _camera, "astronaut": _astronaut, "fluorescence": _fluorescence}


def load_sample(key: str = "hubble") -> Sample:
    """Return the sample ``key``: ``"hubble"`` (a real frame), ``"camera"``, ``"astronaut"`` or ``"fluorescence"``."""
    if key not in SAMPLES:
        raise ValueError(f"unknown sample {key!r}; choose one of {sorted(SAMPLES)}")
    return SAMPLES[key]()
