"""Intensity normalisation: every dtype in and out of the [0, 1] float range.

This is the only place that knows how image dtypes map to intensities; synthesis,
inference and the CLI all go through it so that a uint16 stack comes back as uint16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._cache import ComputedCache
from ._warnings import warn_user
from .planes import colour_channels

__all__ = [
    "IntensityScale",
    "to_unit_float",
    "from_unit_float",
    "check_image",
    "check_data_range",
    "image_scale",
    "is_dask",
    "as_image",
    "computed_once",
]


@dataclass(frozen=True)
class IntensityScale:
    """How an image's values were mapped to [0, 1], so the mapping can be undone.

    ``unit = (value - offset) / span``; the result is converted back to ``dtype``.
    """

    dtype: np.dtype
    offset: float
    span: float


def check_image(image, *, name: str = "image", min_ndim: int = 2, blanks: bool = False) -> np.ndarray:
    """Return ``image`` as an array after checking its type, shape and values.

    ``blanks``: NaN pixels are allowed (blank: off a detector, masked), as long as some are not.

    Raises
    ------
    TypeError
        If ``image`` is not numeric (bool, complex, object and string arrays are refused).
    ValueError
        If it has fewer than ``min_ndim`` dimensions, no pixels, infinite values, or NaN
        values (without ``blanks``; with it, if every pixel is NaN).
    """
    array = np.asarray(image)
    if array.dtype == bool:
        raise TypeError(f"{name} is boolean (a mask?); expected an intensity image")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} has dtype {array.dtype}; expected an integer or float image")
    if array.ndim < min_ndim:
        raise ValueError(f"{name} has shape {array.shape}; expected at least {min_ndim} dimensions")
    if array.size == 0:
        raise ValueError(f"{name} has shape {array.shape} and no pixels")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        if not blanks:
            raise ValueError(f"{name} contains NaN or infinite values")
        if np.isinf(array).any():
            raise ValueError(f"{name} contains infinite values")
        if np.isnan(array).all():
            raise ValueError(f"{name} is NaN (blank) at every pixel; there is nothing to restore")
    return array


def intensity_scale(image: np.ndarray) -> IntensityScale:
    """Choose the mapping of ``image`` values to [0, 1].

    Integers are scaled by their dtype's range (negative values of signed types clip
    to 0). Floats inside [0, 1] are used as given; floats outside are mapped by the
    smallest range that holds both [0, 1] and the data, with a warning, so darkness
    relative to 1 is kept and the output can be mapped back exactly. NaN (blank) pixels
    take no part.
    """
    if np.issubdtype(image.dtype, np.integer):
        return IntensityScale(image.dtype, 0.0, float(np.iinfo(image.dtype).max))
    return float_scale(image.dtype, float(np.nanmin(image)), float(np.nanmax(image)))


def float_scale(dtype, low: float, high: float) -> IntensityScale:
    """The mapping of a float image whose values span [low, high] (see :func:`intensity_scale`)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("image contains NaN or infinite values")
    if low >= 0.0 and high <= 1.0:
        return IntensityScale(dtype, 0.0, 1.0)
    offset, top = min(low, 0.0), max(high, 1.0)
    warn_user(
        f"float image values span [{low:.4g}, {high:.4g}], outside [0, 1]; they are rescaled "
        f"from [{offset:.4g}, {top:.4g}] for processing and mapped back afterwards"
    )
    return IntensityScale(dtype, offset, top - offset)


def to_unit_float(image, *, name: str = "image", scale: IntensityScale | None = None):
    """Convert ``image`` to float32 in [0, 1].

    Parameters
    ----------
    image : array_like
        Any integer or float image, any shape.
    name : str
        Argument name used in error messages.
    scale : IntensityScale, optional
        Reuse a mapping (e.g. the one of a whole stack when converting one slice).

    Returns
    -------
    unit : ndarray of float32 (float64 for float64 input), same shape, values in [0, 1]
    scale : IntensityScale
        Pass to :func:`from_unit_float` to return to the input's dtype and range.
    """
    array = check_image(image, name=name)
    if scale is None:
        scale = intensity_scale(array)
    # float64 input keeps its precision (Eq. 5 is then exact); everything else is float32.
    work = np.float64 if array.dtype == np.float64 else np.float32
    unit = (array.astype(work) - work(scale.offset)) / work(scale.span)
    return np.clip(unit, 0.0, 1.0, out=unit), scale


def _largest_exact_float(dtype) -> float:
    """The largest float64 that converts to integer ``dtype`` without overflow (< 2**63 for int64)."""
    top = float(np.iinfo(dtype).max)
    return top if int(top) <= np.iinfo(dtype).max else float(np.nextafter(top, 0.0))


def from_unit_float(unit: np.ndarray, scale: IntensityScale) -> np.ndarray:
    """Map a [0, 1] float array back to the range and dtype described by ``scale``.

    Values are clipped to [0, 1] first, so integer outputs never wrap around.
    """
    unit = np.clip(unit, 0.0, 1.0)
    if np.issubdtype(scale.dtype, np.integer):
        # Clip to the dtype, never wrap: a data_range above the dtype's maximum would wrap, and
        # so would the maxima of 32- and 64-bit types, which float32 (float64 for 64-bit types)
        # rounds up past them: those are computed in float64 and clipped below 2**63.
        work = np.float64 if np.dtype(scale.dtype).itemsize >= 4 else unit.dtype.type
        values = np.rint(unit.astype(work, copy=False) * work(scale.span))
        return np.minimum(values, work(_largest_exact_float(scale.dtype))).astype(scale.dtype)
    values = unit.astype(np.float64) * scale.span + scale.offset
    return values.astype(scale.dtype)


def is_dask(image) -> bool:
    """Whether ``image`` is a dask array (checked without importing dask)."""
    return type(image).__module__.split(".")[0] == "dask"


def as_image(image):
    """``image`` as an array: dask arrays stay lazy, anything else becomes numpy."""
    return image if is_dask(image) else np.asarray(image)


def check_data_range(data_range) -> float | None:
    """Validate a user's ``data_range``: None, or a positive finite number."""
    if data_range is None:
        return None
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.integer, np.floating)):
        raise TypeError(f"data_range must be a positive number or None, got {data_range!r}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
    return float(data_range)


def image_scale(image, data_range=None, *, channel_axis=None, blanks: bool = False) -> IntensityScale:
    """The mapping of an in-memory or dask image to [0, 1].

    Parameters
    ----------
    image : array_like or dask.array.Array
    data_range : float, optional
        The value that means full intensity, e.g. 4095 for a 12-bit camera's data in
        uint16: values map from [0, data_range] (values outside it clip, and results
        come back in that range). Default: :func:`intensity_scale` (the dtype's range
        for integers; [0, 1] for floats). A lazy float array is scanned once for its
        range only when ``data_range`` is not given.
    channel_axis : int, optional
        The (non-negative) colour axis: an RGBA image's opacity is no intensity, so a
        float image's range is that of its colour channels.
    blanks : bool
        Allow NaN (blank) pixels in an in-memory image (:func:`check_image`); they take no
        part in the range. A lazy image's range always leaves them out.
    """
    data_range = check_data_range(data_range)
    if not is_dask(image):
        image = check_image(image, blanks=blanks)
    elif image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"image has dtype {image.dtype}; expected an integer or float image")
    if data_range is not None:
        return IntensityScale(image.dtype, 0.0, data_range)
    if np.issubdtype(image.dtype, np.integer):
        return IntensityScale(image.dtype, 0.0, float(np.iinfo(image.dtype).max))
    image = colour_channels(image, channel_axis)
    if not is_dask(image):
        return intensity_scale(image)

    def value_range():
        import dask
        import dask.array as da

        return tuple(float(value) for value in dask.compute(da.nanmin(image), da.nanmax(image)))

    return float_scale(image.dtype, *computed_once(image, "value range", value_range))


#: Results computed from lazy arrays (their value range, their context pixels).
_COMPUTED = ComputedCache(32)


def computed_once(image, what: str, compute):
    """``compute()`` for the dask array ``image``, once: later calls return the stored result.

    A dask array's ``name`` is a token of its whole graph, so the same name means the same
    values. This keeps a live alpha slider on a lazy layer from reading the data again on
    every move (the value range and the context pixels are needed by every call).
    """
    return _COMPUTED.get((image.name, what), compute)
