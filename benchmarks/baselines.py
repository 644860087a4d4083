"""The baselines of BENCHMARK.md, each a function ``low -> enhanced`` on floats in [0, 1].

``best_gamma`` is an oracle: it sees the clean image to pick its exponent, so it is an
upper bound for any single global tone curve, not a method a user can run.
"""

import numpy as np
from skimage.exposure import equalize_adapthist
from skimage.metrics import peak_signal_noise_ratio

from .lime import lime

__all__ = ["low_input", "clahe", "best_gamma", "lime", "BASELINES", "ORACLE_GAMMA"]


def low_input(low):
    """The low-light image itself (what doing nothing scores).

    Parameters
    ----------
    low : ndarray
        Float image in [0, 1].

    Returns
    -------
    ndarray
        ``low`` unchanged.
    """
    return low


def clahe(low, *, clip_limit=0.01):
    """Contrast-limited adaptive histogram equalisation (scikit-image defaults).

    Parameters
    ----------
    low : ndarray, shape (H, W) or (H, W, 3)
        Float image in [0, 1]; RGB images are equalised on their HSV value channel.
    clip_limit : float, optional
        The benchmark protocol's 0.01 (scikit-image's default).

    Returns
    -------
    ndarray, float64 in [0, 1]
    """
    return equalize_adapthist(low, clip_limit=clip_limit)


def _psnr(reference, image):
    return peak_signal_noise_ratio(reference, image, data_range=1.0)


def best_gamma(low, clean, *, bounds=(0.05, 2.0), coarse_step=0.02, fine_step=0.001):
    """The single global power law ``low**g`` that maximises PSNR against the clean image.

    A coarse grid over `bounds`, then a fine grid around the coarse optimum (the PSNR
    of a power law is smooth and, in practice, unimodal in ``g``).

    Parameters
    ----------
    low : ndarray
        Float image in [0, 1].
    clean : ndarray
        The ground truth, same shape.
    bounds : (float, float), optional
        Range of exponents searched.
    coarse_step, fine_step : float, optional
        Grid spacings of the two passes.

    Returns
    -------
    enhanced : ndarray
        ``low ** g`` for the best ``g``.
    g : float
        The chosen exponent.
    """
    low = np.asarray(low, dtype=np.float64)

    def best_on(grid):
        scores = [_psnr(clean, low**g) for g in grid]
        return grid[int(np.argmax(scores))]

    g = best_on(np.arange(bounds[0], bounds[1] + coarse_step / 2, coarse_step))
    fine = np.arange(g - coarse_step, g + coarse_step + fine_step / 2, fine_step)
    g = float(best_on(fine[(fine >= bounds[0]) & (fine <= bounds[1])]))
    return low**g, g


#: The name of the best-gamma oracle in :data:`BASELINES`.
ORACLE_GAMMA = "best global gamma (oracle)"
#: Name -> function of the low image (and, for the oracle, the clean image).
BASELINES = {
    "low input": lambda low, clean: low_input(low),
    "CLAHE": lambda low, clean: clahe(low),
    ORACLE_GAMMA: lambda low, clean: best_gamma(low, clean)[0],
    "LIME": lambda low, clean: lime(low),
}
