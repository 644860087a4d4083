"""Restoration of whole images: normalisation, planes, seam-free tiling, the alpha cache.

Data flows one way: array -> [0, 1] float -> 2-D planes -> overlapping tiles -> network
-> tile cores -> planes -> the input's shape and dtype. A tile's window extends its core
by the network's receptive radius (its halo), so every output pixel sees exactly the
neighbourhood it would see in one untiled pass: tiled and untiled results are equal.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable

import numpy as np
import torch

from .devices import resolve_device
from .intensity import from_unit_float, to_unit_float
from .network import LowLightNet, fold_batchnorm, image_context
from .planes import split_planes
from .weights import load_model

__all__ = ["restore", "estimate_difference", "enhance", "estimate_alpha", "DEFAULT_TILE_SIZE"]

#: Core size of a tile; windows add the halo on each side.
DEFAULT_TILE_SIZE = 512
#: Pixels per batch of tiles: bounds activation memory (~256 bytes per pixel at width 16).
BATCH_PIXELS = 1 << 20
#: Planes smaller than this are mirror-padded first (reflect padding needs a few pixels).
MIN_PLANE_SIZE = 16
#: Pixels sampled for the image context (quantiles of a few thousand pixels are stable).
CONTEXT_SAMPLES = 1 << 16
#: Smallest tile tried when the device runs out of memory.
MIN_TILE_SIZE = 64


def _check_alpha(alpha, *, allow_auto: bool):
    if allow_auto and isinstance(alpha, str) and alpha == "auto":
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        choices = 'a positive number or "auto"' if allow_auto else "a positive number"
        raise TypeError(f"alpha must be {choices}, got {alpha!r}")
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    return float(alpha)


def _check_tile_size(tile_size) -> int:
    if tile_size is None:
        return DEFAULT_TILE_SIZE
    if isinstance(tile_size, bool) or not isinstance(tile_size, numbers.Integral) or tile_size < MIN_PLANE_SIZE:
        raise ValueError(f"tile_size must be an integer >= {MIN_PLANE_SIZE}, got {tile_size!r}")
    return int(tile_size)


def _windows(length: int, tile: int, halo: int):
    """Split one axis into cores of ``tile`` pixels and equal-length windows around them.

    Yields ``(core_start, core_stop, window_start)``. Every window has the same length
    (so tiles batch together) and extends its core by at least ``halo`` pixels on each
    side that is not an image border.
    """
    window = min(tile + 2 * halo, length)
    if window == length:
        yield 0, length, 0
        return
    for start in range(0, length, tile):
        yield start, min(start + tile, length), min(max(start - halo, 0), length - window)


def _tiled_apply(planes: np.ndarray, network: Callable, out_channels: int, halo: int, tile: int, device) -> np.ndarray:
    """Run ``network`` over one image's planes tile by tile.

    Parameters
    ----------
    planes : ndarray, shape (C, H, W), float32
        The channels ``network`` takes for one 2-D plane.
    network : callable
        Maps a (B, C, h, w) tensor to a (B, out_channels, h, w) tensor.

    Returns
    -------
    ndarray, shape (out_channels, H, W), float32
    """
    channels, height, width = planes.shape
    pad_y, pad_x = max(0, MIN_PLANE_SIZE - height), max(0, MIN_PLANE_SIZE - width)
    if pad_y or pad_x:
        planes = np.pad(planes, ((0, 0), (0, pad_y), (0, pad_x)), mode="symmetric")
    full_h, full_w = planes.shape[1:]
    output = np.empty((out_channels, full_h, full_w), np.float32)
    tiles = [(ys, xs) for ys in _windows(full_h, tile, halo) for xs in _windows(full_w, tile, halo)]
    window_h, window_w = min(tile + 2 * halo, full_h), min(tile + 2 * halo, full_w)
    batch = max(1, BATCH_PIXELS // (window_h * window_w))
    for first in range(0, len(tiles), batch):
        group = tiles[first : first + batch]
        crops = np.stack([planes[:, wy : wy + window_h, wx : wx + window_w] for (_, _, wy), (_, _, wx) in group])
        result = network(torch.from_numpy(crops).to(device)).float().cpu().numpy()
        for out, ((y0, y1, wy), (x0, x1, wx)) in zip(result, group):
            output[:, y0:y1, x0:x1] = out[:, y0 - wy : y1 - wy, x0 - wx : x1 - wx]
    return output[:, :height, :width]


class _Runner:
    """A model prepared for fast inference on one device, with the image's context.

    BatchNorm is folded into the convolutions, tensors are channels-last on the CPU
    (faster convolutions) and CUDA runs in bfloat16 autocast.
    """

    def __init__(self, model: LowLightNet, device):
        self.device = resolve_device(device)
        self.model = fold_batchnorm(model).to(self.device)
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @contextlib.contextmanager
    def mode(self):
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def _layout(self, tensor):
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def context(self, planes: np.ndarray) -> torch.Tensor:
        """Image context (1, Q) from a fixed-seed sample of pixels of all planes."""
        rng = np.random.default_rng(0)
        count = min(CONTEXT_SAMPLES, planes.size)
        index = tuple(rng.integers(0, size, count) for size in planes.shape)
        samples = torch.from_numpy(np.ascontiguousarray(planes[index], dtype=np.float32))
        with torch.inference_mode():
            return image_context(samples[None]).to(self.device)

    def estimate_alpha(self, context: torch.Tensor) -> float:
        with torch.inference_mode():
            return float(self.model.alpha_estimator(context)[0])

    def full(self, alpha: float, context: torch.Tensor):
        """Network (B, 1, h, w) low -> (B, 2, h, w): restored and difference."""
        alpha_t = torch.full((1,), alpha, device=self.device)

        def network(low):
            restored, difference = self.model(self._layout(low), alpha_t.expand(low.shape[0]), context.expand(low.shape[0], -1))
            return torch.cat([restored, difference], dim=1)

        return network

    def estimate(self, context: torch.Tensor):
        """Network (B, 1, h, w) low -> (B, 1, h, w) difference."""
        return lambda low: self.model.estimate(self._layout(low), context.expand(low.shape[0], -1))

    def enhance(self, alpha: float):
        """Network (B, 2, h, w) [low, difference] -> (B, 1, h, w) restored."""
        alpha_t = torch.full((1, 1, 1, 1), alpha, device=self.device)
        return lambda inputs: self.model.enhance(
            self._layout(inputs[:, :1]), self._layout(inputs[:, 1:]), alpha_t.expand(inputs.shape[0], -1, -1, -1)
        )


def _run_planes(runner: _Runner, inputs: list[np.ndarray], make_network, out_channels, halo, tile):
    """Apply a network to every plane, shrinking tiles when the device runs out of memory.

    ``inputs`` are arrays of shape (N, H, W) stacked as channels per plane.
    """
    count = inputs[0].shape[0]
    output = np.empty((out_channels, *inputs[0].shape), np.float32)
    network = make_network()
    with runner.mode():
        for index in range(count):
            planes = np.stack([np.asarray(array[index], dtype=np.float32) for array in inputs])
            while True:
                try:
                    output[:, index] = _tiled_apply(planes, network, out_channels, halo, tile, runner.device)
                    break
                except torch.OutOfMemoryError:
                    if tile // 2 < MIN_TILE_SIZE:
                        raise
                    tile //= 2
                    if runner.device.type == "cuda":
                        torch.cuda.empty_cache()
    return output


def _prepare(image, channel_axis, model, device):
    unit, scale = to_unit_float(image)
    planes, passthrough, layout = split_planes(unit, channel_axis)
    runner = _Runner(load_model(device="cpu") if model is None else model, device)
    return planes, passthrough, layout, scale, runner


def estimate_alpha(image, *, model=None, channel_axis=None) -> float:
    """Estimate the low-light intensity alpha of ``image`` (what ``alpha="auto"`` uses).

    The model's alpha estimator reads quantiles of the whole image's intensities (the
    same image context Estimate-Net gets) and was trained on synthetic low-light images
    with alpha in [0.5, 2], so the estimate lies in that range.
    """
    planes, _, _, _, runner = _prepare(image, channel_axis, model, "cpu")
    return runner.estimate_alpha(runner.context(planes))


def restore(
    image,
    alpha=1.0,
    *,
    model=None,
    channel_axis=None,
    device="auto",
    tile_size=None,
    return_difference=False,
):
    """Restore a low-light image.

    Parameters
    ----------
    image : array_like
        A 2-D grey image, a colour image with ``channel_axis``, or any N-D stack whose
        last two axes are (Y, X) (every 2-D plane is restored). Integers are scaled by
        their dtype range; floats are intensities in [0, 1] (other ranges are mapped
        into it with a warning and back afterwards).
    alpha : float or "auto"
        Restoration strength: the low-light intensity to undo, > 0 (trained on
        [0.5, 2]). ``"auto"`` estimates it from the image (:func:`estimate_alpha`).
    model : LowLightNet, optional
        The shipped default model when None.
    channel_axis : int, optional
        Axis of RGB(A) channels; the RGBA opacity channel is passed through.
    device : str or torch.device
        ``"auto"`` picks CUDA, then MPS, then the CPU.
    tile_size : int, optional
        Core size of the tiles (default 512); any image size works.
    return_difference : bool
        Also return the estimated difference map.

    Returns
    -------
    restored : ndarray
        Same shape and dtype as ``image``.
    difference : ndarray of float32, same shape as ``image``
        Only with ``return_difference=True``: Estimate-Net's difference map.
    """
    alpha = _check_alpha(alpha, allow_auto=True)
    tile = _check_tile_size(tile_size)
    planes, passthrough, layout, scale, runner = _prepare(image, channel_axis, model, device)
    context = runner.context(planes)
    if alpha == "auto":
        alpha = runner.estimate_alpha(context)
    halo = runner.model.receptive_radius
    output = _run_planes(runner, [planes], lambda: runner.full(alpha, context), 2, halo, tile)
    restored = from_unit_float(layout.merge(output[0], passthrough), scale)
    if not return_difference:
        return restored
    return restored, _merge_difference(output[1], passthrough, layout)


def _merge_difference(difference, passthrough, layout):
    """Put difference planes back in the image's shape (the opacity channel's map is 0)."""
    opacity = None if passthrough is None else np.zeros(passthrough.shape, np.float32)
    return layout.merge(difference, opacity)


def estimate_difference(image, *, model=None, channel_axis=None, device="auto", tile_size=None) -> np.ndarray:
    """Run Estimate-Net only: the difference map to cache for live alpha changes.

    Parameters are those of :func:`restore`. Returns float32 of ``image``'s shape.
    """
    tile = _check_tile_size(tile_size)
    planes, passthrough, layout, _, runner = _prepare(image, channel_axis, model, device)
    context = runner.context(planes)
    halo = runner.model.receptive_radius - runner.model.enhance_radius
    output = _run_planes(runner, [planes], lambda: runner.estimate(context), 1, halo, tile)
    return _merge_difference(output[0], passthrough, layout)


def enhance(image, difference, alpha, *, model=None, channel_axis=None, device="auto", tile_size=None):
    """Run Enhance-Net only, on a cached difference map: the fast path of a new alpha.

    ``enhance(image, estimate_difference(image), alpha)`` equals ``restore(image, alpha)``.
    To update a view first, pass matching slices of ``image`` and ``difference``.

    Parameters
    ----------
    image : array_like
        The low-light image (as for :func:`restore`).
    difference : array_like of float
        Same shape as ``image``, from :func:`estimate_difference` on the same model.
    alpha : float
        Restoration strength, > 0.

    Returns
    -------
    ndarray, same shape and dtype as ``image``.
    """
    alpha = _check_alpha(alpha, allow_auto=False)
    tile = _check_tile_size(tile_size)
    planes, passthrough, layout, scale, runner = _prepare(image, channel_axis, model, device)
    difference = np.asarray(difference)
    if difference.shape != layout.shape:
        raise ValueError(f"difference has shape {difference.shape}; expected the image's shape {layout.shape}")
    difference_planes, _, _ = split_planes(difference, channel_axis)
    halo = runner.model.enhance_radius
    output = _run_planes(runner, [planes, difference_planes], lambda: runner.enhance(alpha), 1, halo, tile)
    return from_unit_float(layout.merge(output[0], passthrough), scale)
