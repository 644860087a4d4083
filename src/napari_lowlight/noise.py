"""A frame's sensor noise, and the empirical Wiener filter that refines a denoised frame with it.

A camera's noise is Poisson-Gaussian: a pixel of intensity ``x`` varies by
``gain * x + read_variance``. :func:`fit_noise` reads both numbers off a noisy frame
alone, and :class:`NoiseModel` gives the variance at any intensity and stabilises the
frame (the generalised Anscombe transform: noise of unit variance at every intensity).

:func:`wiener_refine` is the second stage of BM3D without its block matching: in
sliding blocks of the frame, each DCT coefficient is shrunk by ``E^2 / (E^2 + s^2)``,
``E`` being the same coefficient of a denoised estimate of the frame (the network's
output) and ``s^2`` the noise's variance there. Where the estimate has structure the
noisy frame's own values come back; where it is flat the noise goes. The estimate only
decides how much of each coefficient to keep, so detail the network smoothed away but the
frame still holds returns, and what the network left of the noise is filtered again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .guided import local_linear_fit

__all__ = ["NoiseModel", "fit_noise", "refine_brightened", "wiener_refine"]

#: Bins of local brightness the noise's variance is measured in (:func:`fit_noise`), and the
#: fewest blocks a bin needs to count.
NOISE_BINS = 16
MIN_BIN_BLOCKS = 8
#: Side of the blocks whose high-pass variances :func:`fit_noise` reads, and the quantile of
#: them it takes in each bin: the flattest tenth, where texture adds least (on grey photographs
#: with noise of 0 / 0.01 / 0.03 the fit reads 0.021 / 0.024 / 0.039 where a robust spread over
#: all pixels read 0.033 / 0.036 / 0.048: docs/method.md).
NOISE_BLOCK = 8
NOISE_QUANTILE = 0.1
#: That quantile of the blocks' high-pass variances over the noise's variance, for noise
#: alone (simulated: 0.756, +-0.004 over 512x512 frames): what it is divided by, so that a
#: flat noisy frame reads its own noise.
NOISE_QUANTILE_RATIO = 0.756
#: Side of the DCT blocks and their step of :func:`wiener_refine`: 32-pixel blocks every 4 pixels
#: scored highest on real widefield frames of those tried (8 to 32 pixels, steps of 1 to 8;
#: docs/method.md). Under the flattest-blocks noise fit, 3 passes scored above 2 with both
#: shipped weights on those frames, on simulated photon-limited frames and on grey photographs,
#: and level with 4 and 5 (docs/method.md).
REFINE_BLOCK = 32
REFINE_STEP = 4
REFINE_PASSES = 3
#: Side of the first pass's blocks, the pass that counts the noise ``guide_noise`` times over:
#: 8 scored above 16 and 32 with both shipped weights on simulated photon-limited frames and
#: grey photographs, and with the default weights on real widefield frames, where the
#: fluorescence weights were level (docs/method.md). Small blocks follow the guide's structure
#: closely where the first pass filters hardest.
REFINE_GUIDE_BLOCK = 8
#: Beta of the Kaiser window that weighs each block's pixels when blocks are averaged, as
#: BM3D's: pixels near a block's edge count less, which keeps the blocks' grid out of flat regions.
REFINE_KAISER_BETA = 2.0
#: The first pass's noise variance, in multiples of the frame's: its guide, the network's
#: output, may still hold noise, which a coefficient would otherwise keep as structure
#: (docs/method.md: 2 scored higher than 1, 1.2 and 1.5 on real and simulated frames with
#: the shipped fluorescence weights). Weights may record their own in their training
#: metadata: the shipped default weights, which leave more of such frames' noise, record 12
#: (docs/model.md), and a self-supervised fine-tune calibrates its own on its frames.
REFINE_GUIDE_NOISE = 2.0
#: Radius, in pixels, of the square windows in which :func:`refine_brightened` fits a brightened
#: restore as an affine function of its frame (its local tone curve), and the pixels the fit
#: reaches: its windows' statistics, then their average over the windows that hold a pixel.
TONE_RADIUS = 8
TONE_REACH = 2 * TONE_RADIUS
#: Rows of windows transformed at once: bounds the memory of a large plane's refinement
#: (8 rows were the fastest on a 2-core CPU, of 2 to 32).
_BLOCK_ROWS = 8


@dataclass(frozen=True)
class NoiseModel:
    """Poisson-Gaussian noise: intensity ``x`` varies by ``gain * x + read_variance``.

    Intensities are those of the frame the model was fitted on (in [0, 1] for the library's
    frames); ``gain`` > 0 and ``read_variance`` >= 0.
    """

    gain: float
    read_variance: float

    def __post_init__(self):
        if not (np.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"gain must be a positive finite number, got {self.gain!r}")
        if not (np.isfinite(self.read_variance) and self.read_variance >= 0):
            raise ValueError(f"read_variance must be a finite number >= 0, got {self.read_variance!r}")

    def stabilise(self, frame: np.ndarray) -> np.ndarray:
        """The generalised Anscombe transform: noise of unit variance at every intensity."""
        a, b = self.gain, self.read_variance
        return (2 / a) * np.sqrt(np.maximum(a * frame + 0.375 * a**2 + b, 0))

    def unstabilise(self, stabilised: np.ndarray) -> np.ndarray:
        """The algebraic inverse of :meth:`stabilise`."""
        a, b = self.gain, self.read_variance
        return a * stabilised**2 / 4 - 0.375 * a - b / a

    def variance(self, intensity: np.ndarray) -> np.ndarray:
        """The noise's variance at the mean ``intensity`` (clipped at 0)."""
        return self.gain * np.maximum(intensity, 0) + self.read_variance


def fit_noise(windows, *, bins: int = NOISE_BINS) -> NoiseModel:
    """Fit a Poisson-Gaussian noise model to noisy frames alone (no reference).

    The noise is read off the high-pass ``x - box3(x)`` (its variance is 8/9 of the noise's
    for independent pixels) in blocks of ``NOISE_BLOCK`` pixels a side: in each of ``bins``
    bins of the blocks' mean, the ``NOISE_QUANTILE`` quantile of their variances (the
    flattest blocks, where texture and edges add least) over what that quantile is for
    noise alone (``NOISE_QUANTILE_RATIO``). A line through the bins' variances
    gives the gain (its slope) and the read noise's variance (its intercept, which a camera's
    offset can make negative: then 0).

    Parameters
    ----------
    windows : ndarray or sequence of ndarray, each of shape (H, W)
        Noisy frames or windows of one frame, in one intensity scale, at least 3x3.

    Returns
    -------
    NoiseModel
        Gain at least 1e-6 (a frame with no measurable noise gets that floor), read
        variance at least 0. A frame of a single brightness gets all its variance as
        read noise.
    """
    windows = [windows] if isinstance(windows, np.ndarray) else list(windows)
    if not windows:
        raise ValueError("windows is empty; expected at least one 2-D frame")
    block_means, block_variances = [], []
    for window in windows:
        window = np.asarray(window, dtype=np.float64)
        if window.ndim != 2 or min(window.shape) < 3:
            raise ValueError(f"windows holds an array of shape {window.shape}; expected 2-D frames of at least 3x3")
        residual = (window - ndimage.uniform_filter(window, 3)) * np.sqrt(9 / 8)
        side = min(NOISE_BLOCK, *window.shape)
        rows, columns = window.shape[0] // side, window.shape[1] // side

        def blocks(plane):
            return plane[: rows * side, : columns * side].reshape(rows, side, columns, side)

        block_means.append(blocks(window).mean(axis=(1, 3)).ravel())
        block_variances.append(blocks(residual).var(axis=(1, 3)).ravel())
    means, variances = np.concatenate(block_means), np.concatenate(block_variances)
    bins = max(1, min(bins, len(means) // MIN_BIN_BLOCKS))
    edges = np.quantile(means, np.linspace(0, 1, bins + 1))
    bin_means, bin_variances = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (means >= low) & (means <= high)
        if np.count_nonzero(inside) < min(MIN_BIN_BLOCKS, len(means)):  # between two tied values of the quantiles
            continue
        bin_means.append(means[inside].mean())
        bin_variances.append(np.quantile(variances[inside], NOISE_QUANTILE) / NOISE_QUANTILE_RATIO)
    if len(bin_means) < 2 or np.ptp(bin_means) == 0:
        # One brightness only: its variance cannot be split into shot and read noise.
        return NoiseModel(1e-6, float(np.mean(bin_variances)) if bin_variances else 0.0)
    gain, read_variance = np.polyfit(bin_means, bin_variances, 1)
    return NoiseModel(max(float(gain), 1e-6), max(float(read_variance), 0.0))


def wiener_refine(
    noisy: np.ndarray,
    estimate: np.ndarray,
    noise: NoiseModel,
    *,
    block: int = REFINE_BLOCK,
    step: int = REFINE_STEP,
    passes: int = REFINE_PASSES,
    guide_noise: float = REFINE_GUIDE_NOISE,
    guide_block: int = REFINE_GUIDE_BLOCK,
    device="cpu",
) -> np.ndarray:
    """Refine a denoised ``estimate`` of ``noisy`` by empirical Wiener filtering.

    In every ``block`` x ``block`` window (``guide_block`` in the first pass) on a grid of ``step`` pixels (anchored at the
    frame's origin; the frame is mirrored at its borders), each orthonormal DCT coefficient
    ``Y`` of the noisy frame becomes ``Y * E**2 / (E**2 + s**2)``, ``E`` being the
    estimate's and ``s**2`` the noise's variance in the window: the mean of
    :meth:`NoiseModel.variance` over the estimate's pixels (what a coefficient of
    independent, signal-dependent noise has). Windows are averaged with BM3D's weights
    (the inverse of the noise the window keeps) times a Kaiser window, which keeps the
    windows' grid out of flat regions. Each further pass uses the previous result as the
    estimate; the first counts ``guide_noise`` times the noise, for what noise the estimate
    still holds.

    The filter runs on the frame's own intensities, not on a variance-stabilised frame: a
    coefficient kept whole keeps its mean, where the stabilising transform's inverse biases
    intensities low at a few photons per pixel (and the transform stops stabilising below
    one). A pixel's result depends on the frames within ``guide_block - 1 + (passes - 1) *
    (block - 1)`` pixels of it.

    Parameters
    ----------
    noisy : ndarray, shape (H, W)
        The noisy frame, intensities of ``noise``'s scale.
    estimate : ndarray, shape (H, W)
        A denoised estimate of it, same scale.
    noise : NoiseModel
        The frame's noise (:func:`fit_noise`).
    block : int
        Window side, a multiple of ``step``.
    step : int
        Grid spacing of the windows, >= 1.
    passes : int
        Filtering passes, >= 1.
    guide_noise : float
        The first pass's noise variance in multiples of the frame's, > 0: larger for a
        noisier ``estimate``.
    guide_block : int
        The first pass's window side, a multiple of ``step``.
    device : str or torch.device
        Where the windows are transformed (the arrays in and out are NumPy's).

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    noisy, estimate = np.asarray(noisy), np.asarray(estimate)
    if noisy.ndim != 2 or noisy.shape != estimate.shape:
        raise ValueError(
            f"noisy and estimate have shapes {noisy.shape} and {estimate.shape}; expected one 2-D shape"
        )
    for name, side in (("block", block), ("guide_block", guide_block)):
        if step < 1 or side < step or side % step:
            raise ValueError(f"{name} ({side}) must be a positive multiple of step ({step})")
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    if not guide_noise > 0:
        raise ValueError(f"guide_noise must be > 0, got {guide_noise}")
    return _refined(noisy, estimate, noise.variance, block, step, passes, guide_noise, guide_block, torch.device(device))


def _refined(noisy, estimate, variance, block, step, passes, guide_noise, guide_block, device) -> np.ndarray:
    """:func:`wiener_refine`'s passes; ``variance`` gives the noise's variance per pixel from an estimate."""
    noisy, refined = noisy.astype(np.float32), estimate.astype(np.float32)
    for done in range(passes):
        scale, side = (1.0, block) if done else (guide_noise, guide_block)
        refined = _wiener_pass(noisy, refined, scale * np.asarray(variance(refined), dtype=np.float32), side, step, device)
    return refined


def refine_brightened(noisy: np.ndarray, restored: np.ndarray, noise: NoiseModel, *, device="cpu") -> np.ndarray:
    """Refine a brightened ``restored`` of ``noisy`` as :func:`wiener_refine` does, with the frame's own noise.

    In the square window of radius ``TONE_RADIUS`` around each pixel, ``restored`` is fitted
    as ``slope * noisy + offset`` by least squares, the slope over the frame's variance less
    its noise's (the noise would flatten it; at least a quarter of the variance is kept), and
    no steeper than the larger of ``var(restored) / covariance`` (the restore's own contrast)
    and the windows' mean ratio (the restore's local brightening);
    each pixel's slope and offset are their means over the windows that hold it, as in a
    guided filter. That local tone curve brightens the frame, which is then filtered with
    ``restored`` as the guide, under the frame's noise times the slope squared (counted once
    in the first pass). Detail that the restore smoothed away and the frame still holds
    above its noise comes back; the restore's tone stays. A pixel's result depends on the
    frames within ``TONE_REACH`` pixels plus :func:`wiener_refine`'s reach of it.

    Parameters
    ----------
    noisy : ndarray, shape (H, W)
        The frame, intensities of ``noise``'s scale.
    restored : ndarray, shape (H, W)
        Its brightened restore, same scale.
    noise : NoiseModel
        The frame's noise (:func:`fit_noise`).
    device : str or torch.device
        Where the refinement's windows are transformed.

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    noisy, restored = np.asarray(noisy, dtype=np.float64), np.asarray(restored, dtype=np.float64)
    if noisy.ndim != 2 or noisy.shape != restored.shape:
        raise ValueError(f"noisy and restored have shapes {noisy.shape} and {restored.shape}; expected one 2-D shape")

    def window_mean(values):
        return ndimage.uniform_filter(values, 2 * TONE_RADIUS + 1, mode="reflect")

    def signal_variance(frame_mean, frame_variance, covariance, restored_mean):
        # The fitted noise, read off texture on a clean textured frame, can leave too little
        # variance and steepen the slope into a contrast boost the restore does not have. The
        # slope is held to the larger of the restore's own contrast (var(restored) / covariance,
        # the slope when the restore keeps the frame's noise) and its local brightening (mean
        # over mean, the slope of an exposure change).
        restored_variance = window_mean(restored * restored) - restored_mean**2
        magnitude = np.abs(covariance)
        steepest = np.maximum(restored_variance / np.maximum(magnitude, 1e-12), restored_mean / np.maximum(frame_mean, 1e-6))
        at_steepest = magnitude / np.maximum(steepest, 1e-12)
        less_noise = frame_variance - noise.variance(frame_mean)
        return np.maximum.reduce([less_noise, 0.25 * frame_variance, at_steepest]) + 1e-6

    slope, offset = local_linear_fit(noisy, restored, TONE_RADIUS, signal_variance)
    variance = slope**2 * noise.variance(window_mean(noisy))
    return _refined(
        slope * noisy + offset, restored, lambda _: variance, REFINE_BLOCK, REFINE_STEP, REFINE_PASSES, 1.0, REFINE_GUIDE_BLOCK, torch.device(device)
    )


def _mirrored(frame: np.ndarray, block: int, step: int, device: torch.device) -> torch.Tensor:
    """``frame`` mirrored by ``block`` pixels before and at least that after, to a grid of ``step``."""
    height, width = frame.shape
    after = [block + (-(size + block)) % step for size in (height, width)]
    return torch.from_numpy(np.pad(frame, ((block, after[0]), (block, after[1])), mode="symmetric")).to(device)


def _dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix: ``matrix @ x`` transforms the columns of ``x``."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(torch.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * np.sqrt(2 / size)
    matrix[0] /= np.sqrt(2)
    return matrix.float()


def _wiener_pass(
    frame: np.ndarray, estimate: np.ndarray, variance: np.ndarray, block: int, step: int, device: torch.device
) -> np.ndarray:
    """One pass of :func:`wiener_refine`, with the noise's variance per pixel."""
    height, width = frame.shape
    noisy, pilot = _mirrored(frame, block, step, device), _mirrored(estimate, block, step, device)
    rows, columns = (noisy.shape[0] - block) // step + 1, (noisy.shape[1] - block) // step + 1
    cells = block // step
    dct = _dct_matrix(block).to(device)
    kaiser = torch.from_numpy(np.kaiser(block, REFINE_KAISER_BETA)).float().to(device)
    # The inverse DCT and the 2-D Kaiser window in one: diag(k) @ D.T @ C @ D @ diag(k).
    windowed_inverse = kaiser[:, None] * dct.T
    # A DCT coefficient's noise variance is the mean of the window's pixels' variances.
    window_variance = torch.nn.functional.avg_pool2d(
        _mirrored(variance.astype(np.float32), block, step, device)[None, None], block, step
    )[0, 0].clamp_min_(1e-12)

    def transform(windows, matrix):
        # matrix @ windows @ matrix.T, as two products on the last axis: each one large
        # matrix product rather than one small product per window.
        return ((windows @ matrix.T).transpose(-1, -2) @ matrix.T).transpose(-1, -2)

    # Each window is cells x cells grid cells of step x step pixels: cell (u, v) of window
    # (i, j) is grid cell (i + u, j + v), which the weighted windows are summed into.
    total = torch.zeros(rows + cells - 1, columns + cells - 1, step, step, device=device)
    window_weight = torch.empty(rows, columns, device=device)
    noisy_windows = noisy.unfold(0, block, step).unfold(1, block, step)
    pilot_windows = pilot.unfold(0, block, step).unfold(1, block, step)
    for first in range(0, rows, _BLOCK_ROWS):
        last = min(first + _BLOCK_ROWS, rows)
        noise_variance = window_variance[first:last, :, None, None]
        coefficients = transform(noisy_windows[first:last], dct)
        power = transform(pilot_windows[first:last], dct).square_()
        shrink = power.div_(power + noise_variance)
        filtered = transform(coefficients.mul_(shrink), windowed_inverse)
        window_weight[first:last] = 1 / (noise_variance[..., 0, 0] * shrink.square_().sum(dim=(-2, -1))).clamp_min_(1e-8)
        filtered.mul_(window_weight[first:last, :, None, None])
        cells_view = filtered.reshape(last - first, columns, cells, step, cells, step)
        for u in range(cells):
            for v in range(cells):
                total[first + u : last + u, v : v + columns] += cells_view[:, :, u, :, v, :]
    # Each pixel's sum of weights: the windows' weights spread by the Kaiser window.
    kaiser_2d = kaiser[:, None] * kaiser[None, :]
    weight = torch.nn.functional.conv_transpose2d(window_weight[None, None], kaiser_2d[None, None], stride=step)[0, 0]
    total = total.permute(0, 2, 1, 3).reshape(noisy.shape)
    result = total / weight
    return result[block : block + height, block : block + width].cpu().numpy()
