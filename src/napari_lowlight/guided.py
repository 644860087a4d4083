"""The guided filter (He, Sun and Tang, 2010): edge-preserving smoothing of a map by a guide image.

Estimate-Net's difference map carries the noise of the low-light image it is estimated
from, and alpha multiplies it into Enhance-Net's input. :func:`guided_filter` smooths a
map where the guide image is flat and keeps its steps where the guide has edges, which a
plain blur would spread.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["guided_filter"]


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``source`` to follow the edges of ``guide``.

    In every ``(2 * radius + 1)``-square window, ``source`` is fitted by least squares as
    ``a * guide + b`` (``a`` regularised towards 0 by ``eps``); each pixel's output is the
    mean of the fits of the windows that hold it. Where the guide varies much more than
    ``sqrt(eps)`` within a window the output follows its edges; where it is flat the output
    is the source's local mean. Borders are mirrored. A pixel's output depends on the
    inputs within ``2 * radius`` pixels of it.

    Parameters
    ----------
    guide, source : ndarray, shape (H, W)
        The image whose edges to follow and the map to filter.
    radius : int
        Window radius in pixels, >= 1.
    eps : float
        Regularisation, > 0, in the guide's intensity units squared.

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    guide, source = np.asarray(guide, dtype=np.float64), np.asarray(source, dtype=np.float64)
    if guide.ndim != 2 or guide.shape != source.shape:
        raise ValueError(f"guide and source have shapes {guide.shape} and {source.shape}; expected one 2-D shape")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    slope, offset = local_linear_fit(guide, source, radius, lambda mean, variance, *_: variance + eps)
    return (slope * guide + offset).astype(np.float32)


def local_linear_fit(guide: np.ndarray, source: np.ndarray, radius: int, fitted_variance) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ``(slope, offset)`` of ``source ~ slope * guide + offset``, the guided filter's fit.

    In every ``(2 * radius + 1)``-square window (borders mirrored) the slope is the window's
    covariance of guide and source over ``fitted_variance(guide_mean, guide_variance,
    covariance, source_mean)`` (the guide's variance, regularised as the caller needs, from
    the window's statistics); each pixel takes the mean slope and offset of the windows that
    hold it. ``guide`` and ``source`` are float64 arrays of one 2-D shape.
    """

    def mean(values):
        return ndimage.uniform_filter(values, 2 * radius + 1, mode="reflect")

    guide_mean, source_mean = mean(guide), mean(source)
    guide_variance = mean(guide * guide) - guide_mean**2
    covariance = mean(guide * source) - guide_mean * source_mean
    slope = covariance / fitted_variance(guide_mean, guide_variance, covariance, source_mean)
    offset = source_mean - slope * guide_mean
    return mean(slope), mean(offset)
