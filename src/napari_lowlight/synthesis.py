"""Low-light synthesis (the paper's Eq. 5 and 6) and sensor noise models."""

from __future__ import annotations

import numbers

import numpy as np

from .intensity import as_image, from_unit_float, image_scale, is_dask, to_unit_float
from .planes import opacity_channel, resolve_channel_axis, split_planes

__all__ = ["synthesize_low_light", "difference_map", "add_noise", "NOISE_MODELS"]

NOISE_MODELS = ("gaussian", "poisson-gaussian", None)


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float, or raise naming ``name`` if it is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def difference_map(image, gamma, *, channel_axis=None, data_range=None) -> np.ndarray:
    """The paper's difference map ``D = (1 - I**gamma) * I`` (Eq. 6).

    Parameters
    ----------
    image : array_like
        Clean image, any shape; integers are scaled by their dtype range.
    gamma : float
        Positive exponent of the illumination map.
    channel_axis : int, optional
        Axis of channels: RGB(A) for 3 or 4, whose opacity channel's map is 0; grey
        planes for any other count.
    data_range : float, optional
        The value of full intensity (e.g. 4095 for 12-bit data in uint16); default:
        the dtype's range for integers, 1 for floats.

    Returns
    -------
    ndarray of float32, same shape as ``image``, values in [0, 1].
    """
    gamma = check_positive(gamma, "gamma")
    image = np.asarray(image)
    channel_axis = resolve_channel_axis(channel_axis, image.shape)
    unit, _ = to_unit_float(image, scale=image_scale(image, data_range, channel_axis=channel_axis))
    planes, passthrough, layout = split_planes(unit, channel_axis)
    diff = (1.0 - planes**gamma) * planes
    opacity = None if passthrough is None else np.zeros_like(passthrough)
    return layout.merge(diff.astype(np.float32), opacity)


def check_noise(noise, noise_sigma, photons) -> tuple:
    """Validate the noise settings; return ``(noise, noise_sigma, photons)`` as numbers."""
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    if isinstance(noise_sigma, bool) or not isinstance(noise_sigma, numbers.Real):
        raise TypeError(f"noise_sigma must be a number, got {noise_sigma!r}")
    if noise_sigma < 0 or not np.isfinite(noise_sigma):
        raise ValueError(f"noise_sigma must be a non-negative number, got {noise_sigma!r}")
    if noise == "poisson-gaussian":
        if photons is None:
            raise ValueError("noise='poisson-gaussian' needs photons (the photon count at intensity 1)")
        photons = check_positive(photons, "photons")
    return noise, float(noise_sigma), photons


def add_noise(low, rng, noise, noise_sigma, photons):
    """Sensor noise added to an image in [0, 1] (the noise of :func:`synthesize_low_light`).

    Parameters
    ----------
    low : ndarray of float
        Intensities in [0, 1], any shape.
    rng : numpy.random.Generator
    noise : {"gaussian", "poisson-gaussian", None}
    noise_sigma : float
        Standard deviation of the Gaussian (read) noise.
    photons : float or None
        Photon count at intensity 1, for ``"poisson-gaussian"``.

    Returns
    -------
    ndarray
        Same shape and dtype as ``low``; not clipped (values may leave [0, 1]).
    """
    if noise is None:
        return low
    if noise == "poisson-gaussian":
        low = (rng.poisson(low * photons) / photons).astype(low.dtype)
    if noise_sigma > 0:
        low = low + rng.normal(0.0, noise_sigma, size=low.shape).astype(low.dtype)
    return low


def synthesize_low_light(
    image,
    alpha,
    gamma,
    *,
    noise="gaussian",
    noise_sigma=0.0,
    photons=None,
    seed=None,
    channel_axis=None,
    data_range=None,
):
    """Make a low-light version of a clean image (the paper's Eq. 5, plus noise).

    ``low = clip(clip(I - alpha * (1 - I**gamma) * I, 0, 1) + noise, 0, 1)``: luminous sources
    (I = 1) stay bright, and for ``alpha > 1`` dark regions go fully black.

    Parameters
    ----------
    image : array_like or dask.array.Array
        Clean image of any shape (2-D grey, colour with ``channel_axis``, or an N-D
        stack). Floats are intensities in [0, 1]; integers are scaled by their dtype
        range. A dask array gives a lazy dask array back (noise seeded per block).
    alpha : float
        Low-light intensity, > 0 (the paper trains on [0.5, 2]).
    gamma : float
        Exponent of the illumination map, > 0 (the paper shows 0.5, 1 and 2).
    noise : {"gaussian", "poisson-gaussian", None}
        ``"gaussian"`` adds N(0, ``noise_sigma``); ``"poisson-gaussian"`` first draws
        shot noise with ``photons`` photons at intensity 1, then adds read noise
        N(0, ``noise_sigma``). With ``noise_sigma=0`` and Gaussian noise the result is
        exactly Eq. 5 clipped to [0, 1].
    noise_sigma : float
        Standard deviation of the Gaussian (read) noise, in [0, 1] intensity units.
    photons : float, optional
        Photon count at full intensity, for ``"poisson-gaussian"``.
    seed : int or numpy.random.Generator, optional
        Seed of the noise, for reproducible results.
    channel_axis : int, optional
        Axis of channels: RGB(A) for 3 or 4, whose opacity channel is passed through
        unchanged; grey planes for any other count.
    data_range : float, optional
        The value of full intensity, e.g. 4095 for a 12-bit camera's data in uint16
        (values outside [0, data_range] clip). Default: the dtype's range for integers, 1 for floats.

    Returns
    -------
    ndarray
        Same shape and dtype as ``image``. Integer outputs are quantised (rounded),
        as a camera would store them.
    """
    alpha = check_positive(alpha, "alpha")
    gamma = check_positive(gamma, "gamma")
    image = as_image(image)
    if image.ndim < 2:
        raise ValueError(f"image has shape {image.shape}; expected at least 2 dimensions (Y, X)")
    channel_axis = resolve_channel_axis(channel_axis, image.shape)
    noise, noise_sigma, photons = check_noise(noise, noise_sigma, photons)
    scale = image_scale(image, data_range, channel_axis=channel_axis)
    settings = dict(noise=noise, noise_sigma=noise_sigma, photons=photons, channel_axis=channel_axis, scale=scale)
    if not is_dask(image):
        return _synthesize(image, alpha, gamma, seed=seed, **settings)
    # Pixels are independent: blocks need no overlap. Each block's noise has its own seed
    # derived from ``seed`` and the block's position, so a lazy result is reproducible.
    if channel_axis is not None:
        image = image.rechunk({channel_axis: -1})
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    entropy = np.random.SeedSequence(seed).entropy

    def block(chunk, block_id=None):
        return _synthesize(chunk, alpha, gamma, seed=[entropy, *block_id], **settings)

    return image.map_blocks(block, dtype=image.dtype)


def _synthesize(image, alpha, gamma, *, noise, noise_sigma, photons, seed, channel_axis, scale):
    """Eq. 5 plus noise on an in-memory array, with a given intensity scale."""
    unit, _ = to_unit_float(image, scale=scale)
    planes, _, layout = split_planes(unit, channel_axis)
    # Light cannot be negative: the sensor sees the clipped signal, then adds its noise.
    low = np.clip(planes - alpha * (1.0 - planes**gamma) * planes, 0.0, 1.0)
    low = add_noise(low, np.random.default_rng(seed), noise, noise_sigma, photons)
    np.clip(low, 0.0, 1.0, out=low)
    return layout.merge(from_unit_float(low, scale), opacity_channel(np.asarray(image), channel_axis))
