"""Procedurally generated scientific scenes: training data for microscopy and astronomy.

Photographs teach the network what a clean natural image looks like, so its image
context learns their brightness: most of a photograph is mid-grey. Fluorescence
micrographs and sky images are mostly black with a few bright structures, and a
network that has only seen photographs reads such a frame as a badly darkened
photograph and lifts its background. These generators add the other kind of clean
image to the training set: seeded, offline, made of the structures those images
contain (blurred cells, nuclei, filaments and puncta on a dim uneven background;
dense filament networks filling cells;
stars of power-law brightness, galaxies and faint nebulosity).

Every scene is a float32 (H, W) array in [0, 1], noise-free and blurred by a
Gaussian point-spread function; the training loop adds the low-light degradation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "fluorescence_scene",
    "filament_network",
    "star_field",
    "generated_scenes",
    "SCENE_KINDS",
    "DEFAULT_SCENE_KINDS",
    "PSF_SIGMA_RANGES",
]


def _log_uniform(rng: np.random.Generator, low: float, high: float, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _smooth_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Smooth random texture in [0, 1] (Gaussian-filtered white noise, rescaled)."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    return (field - field.min()) / (np.ptp(field) + 1e-12)


def _ellipse_mask(rows, cols, centre, radii, angle):
    dy, dx = rows - centre[0], cols - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radii[1]
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / radii[0]
    return np.hypot(u, v)


#: Sigma (pixels) of the Gaussian point-spread function of each kind of scene, drawn uniformly.
PSF_SIGMA_RANGES = {"fluorescence": (0.7, 2.5), "filament_network": (0.7, 2.5), "stars": (0.8, 2.5)}


def _uneven_background(rng: np.random.Generator, shape) -> np.ndarray:
    """A dim background varying slowly over the frame (autofluorescence, out-of-focus light)."""
    return _log_uniform(rng, 0.002, 0.1) * (0.5 + _smooth_field(rng, shape, min(shape) / 6))


def _add_puncta(rng: np.random.Generator, image: np.ndarray, most: int, brightness_range) -> None:
    """Add up to ``most`` puncta to ``image`` in place: single pixels before the blur, log-uniform brightness."""
    count = rng.integers(0, most)
    rows, cols = rng.integers(0, image.shape[0], count), rng.integers(0, image.shape[1], count)
    np.add.at(image, (rows, cols), _log_uniform(rng, *brightness_range, count))


def _filament(rng: np.random.Generator, shape, steps: int, heading: float, bending: float):
    """A filament: a smooth random walk of unit steps from a random start, as (rows, cols) indices.

    ``heading`` is the first step's direction (radians); each step turns by a normal
    angle of standard deviation ``bending``. Steps outside the frame are dropped.
    """
    headings = heading + np.cumsum(rng.normal(0, bending, steps))
    y = rng.uniform(0, shape[0]) + np.cumsum(np.sin(headings))
    x = rng.uniform(0, shape[1]) + np.cumsum(np.cos(headings))
    inside = (y >= 0) & (y < shape[0]) & (x >= 0) & (x < shape[1])
    return y[inside].astype(int), x[inside].astype(int)


def fluorescence_scene(shape=(256, 256), *, seed=0, psf_sigma_range=PSF_SIGMA_RANGES["fluorescence"]) -> np.ndarray:
    """A widefield/confocal-like fluorescence frame.

    Cells (textured ellipses, some with a brighter nucleus), curved filaments and
    diffraction-limited puncta on a dim, uneven background; the brightest structure
    reaches a random level in [0.4, 1].

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    seed : int
        Seed of everything random in the scene.
    psf_sigma_range : (float, float)
        Range of the point-spread function's sigma in pixels (out-of-focus light and
        aberrations blur a real widefield frame beyond its in-focus PSF).

    Returns
    -------
    ndarray, float32, shape ``shape``, in [0, 1]
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    side = min(shape)
    signal = np.zeros(shape, np.float32)
    for _ in range(rng.integers(0, 25)):
        centre = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radii = _log_uniform(rng, 0.02, 0.15, 2) * side
        radius = _ellipse_mask(rows, cols, centre, radii, rng.uniform(0, np.pi))
        texture = 0.6 + 0.4 * _smooth_field(rng, shape, rng.uniform(1, 4))
        signal += np.where(radius < 1, rng.uniform(0.05, 0.6) * texture * (1 - 0.5 * radius**2), 0)
        if rng.random() < 0.6:
            signal += np.where(radius < rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.8), 0)
    for _ in range(rng.integers(0, 12)):
        steps = rng.integers(50, 4 * side)
        path = _filament(rng, shape, steps, rng.uniform(0, 2 * np.pi), 0.08)
        np.maximum.at(signal, path, rng.uniform(0.2, 1.0))
    _add_puncta(rng, signal, 200, (0.1, 2.0))
    signal = ndimage.gaussian_filter(signal, rng.uniform(*psf_sigma_range))
    signal *= rng.uniform(0.4, 1.0) / max(float(signal.max()), 1e-6)
    return np.clip(signal + _uneven_background(rng, shape), 0, 1).astype(np.float32)


def filament_network(shape=(256, 256), *, seed=0, psf_sigma_range=PSF_SIGMA_RANGES["filament_network"]) -> np.ndarray:
    """A cytoskeleton-like fluorescence frame: dense networks of filaments filling cells.

    Tens to hundreds of long, thin filaments, most of them running along a few shared
    directions (bundles), some beaded, with scattered puncta, inside one or more large
    cells over a hazy out-of-focus glow; outside the cells a dim, uneven background.
    Labelled actin or microtubules look so: dense fine texture that
    :func:`fluorescence_scene`'s sparse cells and few filaments never show.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    seed : int
        Seed of everything random in the scene.
    psf_sigma_range : (float, float)
        Range of the point-spread function's sigma in pixels.

    Returns
    -------
    ndarray, float32, shape ``shape``, in [0, 1]
    """
    rng = np.random.default_rng(seed)
    side = min(shape)
    # The cells: a thresholded large-scale random field, its edge softened.
    field = _smooth_field(rng, shape, side / rng.uniform(3, 8))
    cells = ndimage.gaussian_filter((field > rng.uniform(0.2, 0.7)).astype(np.float32), rng.uniform(2, 6))
    haze = rng.uniform(0.02, 0.4) * (0.5 + 0.5 * _smooth_field(rng, shape, side / 10))
    filaments = np.zeros(shape, np.float32)
    bundles = rng.uniform(0, np.pi, rng.integers(1, 5))
    for _ in range(int(_log_uniform(rng, 20, 600))):
        steps = rng.integers(20, 2 * side)
        heading = rng.choice(bundles) + rng.normal(0, 0.3) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi)
        path = _filament(rng, shape, steps, heading, rng.uniform(0.005, 0.06))
        brightness = rng.uniform(0.1, 1.0)
        if rng.random() < 0.4:  # beaded: brightness varying along the filament
            brightness = brightness * (1 + 0.5 * np.clip(rng.standard_normal(len(path[0])), -1, 2))
        # Summed, not the maximum: where filaments bundle, the bundle is brighter.
        np.add.at(filaments, path, brightness)
    _add_puncta(rng, filaments, 400, (0.2, 2.0))
    filaments = ndimage.gaussian_filter(filaments * cells, rng.uniform(*psf_sigma_range))
    # A few summed crossings would otherwise set the scale and leave every single filament faint.
    filaments /= max(float(np.quantile(filaments, 0.999)), 1e-6)
    signal = rng.uniform(0.3, 0.9) * filaments + haze * cells
    signal *= rng.uniform(0.4, 1.0) / max(float(signal.max()), 1e-6)
    return np.clip(signal + _uneven_background(rng, shape), 0, 1).astype(np.float32)


def star_field(shape=(256, 256), *, seed=0, psf_sigma_range=PSF_SIGMA_RANGES["stars"]) -> np.ndarray:
    """An astronomical frame: stars, galaxies and nebulosity over a dim sky.

    Star brightnesses follow a power law (many faint, few bright, some saturated);
    galaxies are elliptical exponential profiles; nebulosity is faint smooth texture.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    seed : int
        Seed of everything random in the scene.
    psf_sigma_range : (float, float)
        Range of the point-spread function's sigma (the seeing) in pixels.

    Returns
    -------
    ndarray, float32, shape ``shape``, in [0, 1]
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    side = min(shape)
    sky = _log_uniform(rng, 0.001, 0.08) * (0.7 + 0.6 * _smooth_field(rng, shape, side / 4))
    nebula = rng.uniform(0, 0.3) * _smooth_field(rng, shape, rng.uniform(4, side / 8)) ** 3
    galaxies = np.zeros(shape, np.float32)
    for _ in range(rng.integers(0, 6)):
        radius = _ellipse_mask(rows, cols, (rng.uniform(0, shape[0]), rng.uniform(0, shape[1])),
                               _log_uniform(rng, 0.01, 0.08, 2) * side, rng.uniform(0, np.pi))
        galaxies += rng.uniform(0.05, 0.6) * np.exp(-3 * radius)
    count = int(_log_uniform(rng, 30, 3000))
    impulses = np.zeros(shape, np.float32)
    # Pareto-distributed fluxes: the faint end dominates, a few stars saturate.
    fluxes = 0.02 * (1 + rng.pareto(rng.uniform(0.8, 1.6), count))
    np.add.at(impulses, (rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)), fluxes)
    psf_sigma = rng.uniform(*psf_sigma_range)
    stars = ndimage.gaussian_filter(impulses, psf_sigma) * (2 * np.pi * psf_sigma**2)
    return np.clip(sky + nebula + ndimage.gaussian_filter(galaxies, psf_sigma) + stars, 0, 1).astype(np.float32)


def _sigma_range(value) -> tuple[float, float]:
    """``value`` as ``(low, high)`` with ``0 < low <= high``, or a ValueError naming ``psf_sigma_range``."""
    bounds = tuple(value) if isinstance(value, (list, tuple)) else ()
    numbers = len(bounds) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    if not (numbers and 0 < bounds[0] <= bounds[1]):
        raise ValueError(f"psf_sigma_range must be (low, high) with 0 < low <= high, got {value!r}")
    return bounds


#: Scene generators by the name ``generated_scenes(kinds=...)`` and a recipe's ``scene_kinds`` use.
SCENE_KINDS = {"fluorescence": fluorescence_scene, "filament_network": filament_network, "stars": star_field}
#: What ``generated_scenes`` makes unless told: fluorescence frames and star fields in turn.
DEFAULT_SCENE_KINDS = ("fluorescence", "stars")


def generated_scenes(
    count: int, shape=(256, 256), *, seed=0, kinds=DEFAULT_SCENE_KINDS, psf_sigma_range=None
) -> list[np.ndarray]:
    """``count`` scientific scenes, cycling through ``kinds``.

    Parameters
    ----------
    count : int
        Number of scenes (>= 0).
    shape : tuple of int
        (H, W) of each scene.
    seed : int
        Scene ``k`` is generated from the seed ``(seed, k)``: the same arguments give
        the same scenes, and a larger ``count`` only appends.
    kinds : sequence of str
        Names of :data:`SCENE_KINDS`; scene ``k`` is of kind ``kinds[k % len(kinds)]``.
    psf_sigma_range : (float, float), optional
        Range of the point-spread function's sigma in pixels for every kind (default:
        each kind's own, :data:`PSF_SIGMA_RANGES`).

    Returns
    -------
    list of ndarray, float32 (H, W) in [0, 1]
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(kinds, str) or not kinds or any(kind not in SCENE_KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty list of {sorted(SCENE_KINDS)}, got {kinds!r}")
    # Not given: each generator's own default range.
    blur = {} if psf_sigma_range is None else {"psf_sigma_range": _sigma_range(psf_sigma_range)}
    makers = [SCENE_KINDS[kind] for kind in kinds]
    return [
        makers[k % len(makers)](shape, seed=int(np.random.default_rng([seed, k]).integers(2**31)), **blur)
        for k in range(count)
    ]
