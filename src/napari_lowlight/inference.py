"""Restoration of whole images: normalisation, planes, seam-free tiling, the alpha cache.

Data flows one way: array -> [0, 1] float -> 2-D planes -> overlapping tiles -> network
-> tile cores -> planes -> the input's shape and dtype. A tile's window extends its core
by the network's receptive radius (its halo), so every output pixel sees exactly the
neighbourhood it would see in one untiled pass: tiled and untiled results are equal.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import numbers
import threading
from collections.abc import Callable

import numpy as np
import torch

from ._cache import ComputedCache
from ._warnings import warn_user
from .devices import mixed_precision, resolve_device
from .guided import guided_filter
from .intensity import as_image, computed_once, from_unit_float, image_scale, is_dask, to_unit_float
from .network import LowLightNet, fold_batchnorm, image_context
from .noise import (
    REFINE_BLOCK,
    REFINE_GUIDE_BLOCK,
    REFINE_GUIDE_NOISE,
    REFINE_PASSES,
    REFINE_STEP,
    TONE_REACH,
    NoiseModel,
    fit_noise,
    refine_brightened,
    wiener_refine,
)
from .planes import channels_before_planes, colour_channels, is_colour, opacity_channel, resolve_channel_axis, split_planes
from .weights import default_model

__all__ = [
    "restore",
    "estimate_difference",
    "enhance",
    "enhance_preview",
    "estimate_alpha",
    "black_toe",
    "DEFAULT_TILE_SIZE",
]

#: Core size of a tile; windows add the halo on each side. On the CPU, 256-pixel tiles one
#: at a time keep the activations in cache: twice as fast on a 2048x2048 image as 512-pixel
#: tiles three at a time, despite the larger halo share (benchmarks/bench_speed.py).
DEFAULT_TILE_SIZE = 256
#: Pixels per batch of tiles on a GPU, where batching fills the device; bounds activation
#: memory (~256 bytes per pixel at width 16). The CPU runs one tile at a time.
BATCH_PIXELS = 1 << 22
#: Planes smaller than this are mirror-padded first (reflect padding needs a few pixels).
MIN_PLANE_SIZE = 16
#: Pixels sampled for the image context (quantiles of a few thousand pixels are stable).
CONTEXT_SAMPLES = 1 << 16
#: Smallest tile tried when the device runs out of memory.
MIN_TILE_SIZE = 64
#: Tiles along Y and X of a lazy image's block: every block also computes the overlap it
#: shares with its neighbours, a share that shrinks as blocks grow (benchmarks/bench_big_files.py).
LAZY_BLOCK_TILES = 8
#: Steepness of the toe that takes a restored black back to black (``keep_black``): it moves
#: the tones near the black's level and hardly those well above it, where a straight
#: stretch to black would darken the midtones as well (docs/model.md).
BLACK_TOE_POWER = 8
#: Below this alpha a restore only denoises (the output keeps the frame's intensities), and
#: ``refine`` filters it again with the frame's own noise model (:func:`~napari_lowlight.noise.wiener_refine`);
#: from it on, the restore brightens, and ``refine`` filters the frame brightened by the restore's
#: local tone curve (:func:`~napari_lowlight.noise.refine_brightened`).
REFINE_MAX_ALPHA = 0.05
#: The key of a model's training metadata that holds the refinement's first-pass noise factor
#: (``wiener_refine``'s ``guide_noise``) a self-supervised fine-tune calibrated on its frames.
GUIDE_NOISE_KEY = "refine_guide_noise"
#: Planes and windows per plane the noise model is fitted on (:func:`_noise_windows`): at most
#: a megapixel, read again by every plane of a live-slider update on a stack.
NOISE_PLANES = 4
NOISE_WINDOW = 128
NOISE_WINDOWS_PER_AXIS = 4
#: Pixels on each side a refined pixel depends on beyond the network's radius, a multiple of
#: the refinement's step so that a lazy block's windows fall on the whole image's grid.
REFINE_REACH = -(-(REFINE_GUIDE_BLOCK - 1 + (REFINE_PASSES - 1) * (REFINE_BLOCK - 1)) // REFINE_STEP) * REFINE_STEP
#: The guided filter that smooths Estimate-Net's difference map along the image's edges
#: (:func:`_smooth_difference`): window radius and regularisation (intensities in [0, 1]), and
#: the pixels it reaches. Chosen on held-out photographs darkened as a camera would (scratch runs
#: of bench_real's P3: radius 2 to 8, eps 1e-4 to 1e-3, a luminance or a per-channel guide, and
#: a plain box blur, which gained about two thirds as much).
DIFFERENCE_GUIDE_RADIUS = 4
DIFFERENCE_GUIDE_EPS = 1e-3
DIFFERENCE_GUIDE_REACH = 2 * DIFFERENCE_GUIDE_RADIUS
#: The device-generic out-of-memory error of torch >= 2.5, CUDA's before it: a floor of 2.5
#: would make pip replace a user's older CUDA build of torch.
_OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _check_alpha(alpha, *, allow_auto: bool):
    if allow_auto and isinstance(alpha, str) and alpha == "auto":
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        choices = 'a number >= 0 or "auto"' if allow_auto else "a number >= 0"
        raise TypeError(f"alpha must be {choices}, got {alpha!r}")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
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


def _batch_pixels(device) -> int:
    """Pixels per network call on ``device``: GPUs take batches of tiles, the CPU one tile."""
    return BATCH_PIXELS if torch.device(device).type == "cuda" else 0


def _tiled_apply(
    planes: np.ndarray, network: Callable, out_channels: int, halo: int, tile: int, batch_pixels: int, device
) -> np.ndarray:
    """Run ``network`` over one image's planes tile by tile.

    Parameters
    ----------
    planes : ndarray, shape (C, H, W), float32
        The channels ``network`` takes for one 2-D plane.
    network : callable
        Maps a (B, C, h, w) tensor to a (B, out_channels, h, w) tensor.
    batch_pixels : int
        Pixels of the tiles batched into one network call (at least one tile per call).

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
    batch = max(1, batch_pixels // (window_h * window_w))
    for first in range(0, len(tiles), batch):
        group = tiles[first : first + batch]
        crops = np.stack([planes[:, wy : wy + window_h, wx : wx + window_w] for (_, _, wy), (_, _, wx) in group])
        result = network(torch.from_numpy(crops).to(device)).float().cpu().numpy()
        for out, ((y0, y1, wy), (x0, x1, wx)) in zip(result, group):
            output[:, y0:y1, x0:x1] = out[:, y0 - wy : y1 - wy, x0 - wx : x1 - wx]
    return output[:, :height, :width]


def _dihedral_average(network: Callable) -> Callable:
    """``network`` averaged over the 8 flips and quarter turns of its input (a self-ensemble).

    Each transformed output is turned back before averaging; the networks are fully
    convolutional, so a turned tile of any shape is a valid input.
    """

    def averaged(tiles: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for turns in range(4):
            for flipped in (False, True):
                turned = torch.rot90(tiles, turns, dims=(2, 3))
                output = network(turned.flip(3) if flipped else turned).float()
                total = total + torch.rot90(output.flip(3) if flipped else output, -turns, dims=(2, 3))
        return total / 8

    return averaged


class _CompiledModule:
    """``torch.compile`` of a module that falls back to the module itself if compiling fails.

    Inductor needs a working C++ compiler (CPU) or Triton (GPU); without one the first
    call raises a compiler error, and the module then runs eagerly, with a warning. Calls
    are serialised: the compiler is not thread-safe (dask runs blocks in threads), and on
    a CPU each call already uses every core.
    """

    def __init__(self, module: torch.nn.Module):
        self.eager = module
        self._lock = threading.Lock()
        self.compiled = None
        try:
            self.compiled = torch.compile(module)
        except RuntimeError as error:  # e.g. a Python version this torch cannot compile for
            self._warn(error)

    def __call__(self, *args):
        with self._lock:
            if self.compiled is not None:
                try:
                    return self.compiled(*args)
                except Exception as error:
                    self._fall_back(error)
        return self.eager(*args)

    def _fall_back(self, error: Exception) -> None:
        """Turn compilation off after a compiler failure; raise anything else."""
        from torch._dynamo.exc import TorchDynamoException

        cause = error
        while cause is not None:
            if isinstance(cause, _OutOfMemoryError):
                raise cause  # the tile back-off handles it, even when it struck while compiling
            cause = cause.__cause__
        if not isinstance(error, TorchDynamoException):
            raise error
        self._warn(error)
        self.compiled = None

    @staticmethod
    def _warn(error: Exception) -> None:
        warn_user(f"torch.compile failed ({type(error).__name__}: {error}); running without it", RuntimeWarning)


class _Runner:
    """A model prepared for fast inference on one device.

    BatchNorm is folded into the convolutions, tensors are channels-last on the CPU
    (faster convolutions), recent GPUs run in bfloat16 autocast, and with ``compiled`` both
    nets go through ``torch.compile``.
    """

    def __init__(self, model: LowLightNet, device, *, compiled: bool = False):
        self.device = resolve_device(device)
        self.model = fold_batchnorm(model).to(self.device)
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._estimate, self._enhance = self.model.estimate, self.model.enhance
        if compiled:
            self._estimate, self._enhance = _CompiledModule(self._estimate), _CompiledModule(self._enhance)

    @contextlib.contextmanager
    def mode(self):
        with torch.inference_mode(), mixed_precision(self.device):
            yield

    def _layout(self, tensor):
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def estimate(self, context: torch.Tensor):
        """Network (B, 1, h, w) low -> (B, 1, h, w) difference."""
        return lambda low: self._estimate(self._layout(low), context.expand(low.shape[0], -1))

    def enhance(self, alpha: float, context: torch.Tensor):
        """Network (B, 2, h, w) [low, difference] -> (B, 1, h, w) restored."""
        alpha_t = torch.full((1, 1, 1, 1), alpha, device=self.device)
        return lambda inputs: self._enhance(
            self._layout(inputs[:, :1]),
            self._layout(inputs[:, 1:]),
            alpha_t.expand(inputs.shape[0], -1, -1, -1),
            context.expand(inputs.shape[0], -1),
        )


#: Prepared runners (folded, channels-last, maybe compiled), keyed by the weights' content,
#: so a model changed in any way gets a new runner and copies of one model (e.g. unpickled
#: by dask workers) share one. Built outside the cache's lock: a first CUDA use takes
#: seconds, and the viewer's own alpha updates must not wait for a worker's.
_RUNNERS = ComputedCache(4)


def _weights_digest(model: LowLightNet) -> bytes:
    """A fingerprint of the model's architecture and every weight and buffer value."""
    digest = hashlib.blake2b(repr(model.config).encode(), digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.digest()


def _prepared(model: LowLightNet, device, compiled: bool) -> _Runner:
    """The runner of ``model`` on ``device``, cached while its weights stay the same."""
    device = resolve_device(device)
    key = (_weights_digest(model), str(device), compiled)
    return _RUNNERS.get(key, lambda: _Runner(model, device, compiled=compiled))


def _run_planes(runner: _Runner, inputs: list[np.ndarray], network, out_channels, halo, tile):
    """Apply a network to every plane, shrinking tiles when the device runs out of memory.

    ``inputs`` are arrays of shape (N, H, W) stacked as channels per plane.
    """
    count = inputs[0].shape[0]
    output = np.empty((out_channels, *inputs[0].shape), np.float32)
    batch_pixels = _batch_pixels(runner.device)
    with runner.mode():
        for index in range(count):
            planes = np.stack([np.asarray(array[index], dtype=np.float32) for array in inputs])
            while True:
                try:
                    output[:, index] = _tiled_apply(planes, network, out_channels, halo, tile, batch_pixels, runner.device)
                    break
                except _OutOfMemoryError:
                    if tile // 2 < MIN_TILE_SIZE and batch_pixels < (tile + 2 * halo) ** 2:
                        raise  # one tile of the smallest size per call did not fit
                # Halving the tile alone would only batch four times as many tiles. Out of
                # the except block, the traceback no longer holds the failed batch's tensors.
                if tile // 2 >= MIN_TILE_SIZE:
                    tile //= 2
                batch_pixels //= 4
                if runner.device.type == "cuda":
                    torch.cuda.empty_cache()
    return output


def _spatial_axes(ndim: int, channel_axis) -> tuple[int, int]:
    """The (Y, X) axes: the last two axes that are not the channel axis."""
    axes = [axis for axis in range(ndim) if axis != channel_axis]
    return axes[-2], axes[-1]


def _blanks_filled(arrays, channel_axis):
    """In-memory ``arrays`` (an image first, then arrays of its shape) with the image's NaN pixels
    (blank: off a detector, masked) given the values of the nearest pixel of their 2-D plane
    that is not NaN, and where those pixels were; the arrays as they are and None when the
    image has no NaN. The other arrays change only where they are NaN too.

    Each plane is filled on its own, so a slice of a stack, or a lazy block of a plane whose
    overlap holds the nearest pixels, is filled as the whole image is; a plane with nothing
    but NaN becomes 0.
    """
    from scipy import ndimage

    image = np.asarray(arrays[0])
    if image.dtype.kind != "f" or not np.isnan(image).any():
        return arrays, None
    blank = np.isnan(image)
    # The spatial axes last, as split_planes puts them.
    order = tuple(range(image.ndim)) if channel_axis is None else channels_before_planes(image.ndim, channel_axis)
    shape = [image.shape[axis] for axis in order]
    planes_blank = blank.transpose(order).reshape(-1, *shape[-2:])
    filled = [np.array(array, dtype=array.dtype).transpose(order).reshape(planes_blank.shape) for array in arrays]
    for index, gaps in enumerate(planes_blank):
        if not gaps.any():
            continue
        nearest = None if gaps.all() else tuple(ndimage.distance_transform_edt(gaps, return_distances=False, return_indices=True))
        for planes in filled:
            plane = planes[index]
            missing = np.isnan(plane)
            plane[missing] = 0 if nearest is None else plane[nearest][missing]
    return [planes.reshape(shape).transpose(np.argsort(order)) for planes in filled], blank


def _evenly_spaced(last: int, count: int) -> np.ndarray:
    """Up to ``count`` distinct integers spread evenly over [0, ``last``], both ends included."""
    return np.unique(np.linspace(0, last, count).round().astype(int))


def _context_sample(image, channel_axis):
    """A fixed subset of ``image``'s pixels for the image context (numpy or dask alike).

    Up to 16 evenly spaced indices along every non-spatial axis and a regular grid of
    about CONTEXT_SAMPLES pixels in (Y, X): the same pixels whether the image is in
    memory or a lazy dask array, so both give the same context and the same result.
    """
    y_axis, x_axis = _spatial_axes(image.ndim, channel_axis)
    sample = colour_channels(image, channel_axis)
    count = 1
    for axis in range(image.ndim):
        if axis in (y_axis, x_axis):
            continue
        size = sample.shape[axis]
        if axis != channel_axis:  # every colour channel stays
            keep = _evenly_spaced(size - 1, min(size, 16))
            sample = np.take(sample, keep, axis=axis) if len(keep) < size else sample
            size = len(keep)
        count *= size
    stride = max(1, int(np.ceil(np.sqrt(count * image.shape[y_axis] * image.shape[x_axis] / CONTEXT_SAMPLES))))
    index = [slice(None)] * image.ndim
    index[y_axis] = index[x_axis] = slice(None, None, stride)
    return sample[tuple(index)]


def _model_and_context(image, channel_axis, model, scale):
    """The model to use and the image context (1, Q) of ``image``."""
    model = default_model() if model is None else model
    pixels = _context_sample(image, channel_axis)
    if is_dask(image):
        pixels = computed_once(image, f"context pixels, channel axis {channel_axis}", lambda: np.asarray(pixels))
    pixels = np.asarray(pixels)
    if pixels.dtype.kind == "f":
        pixels = pixels[~np.isnan(pixels)]  # blank pixels hold no intensity
        if not pixels.size:
            raise ValueError("image is NaN (blank) at every pixel of its context sample; there is nothing to restore")
    sample, _ = to_unit_float(pixels.reshape(1, -1), scale=scale, name="image")
    context = image_context(torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32)).reshape(1, -1))
    return model, context


def _noise_windows(image) -> list:
    """A fixed set of full-resolution windows of the grey ``image`` to fit its noise on (numpy or dask alike).

    Up to NOISE_PLANES planes evenly spaced over the stack, each read in a grid of up to
    NOISE_WINDOWS_PER_AXIS squared windows of NOISE_WINDOW pixels a side, evenly spread:
    neighbouring pixels stay together, as the fit's high-pass needs, in a bounded number of pixels.
    """
    *lead, height, width = image.shape
    planes = list(np.ndindex(*lead))
    planes = [planes[i] for i in _evenly_spaced(len(planes) - 1, min(len(planes), NOISE_PLANES))]

    def windows_along(size):
        window = min(size, NOISE_WINDOW)
        starts = _evenly_spaced(size - window, min(NOISE_WINDOWS_PER_AXIS, -(-size // window)))
        return [slice(start, start + window) for start in starts]

    rows, columns = windows_along(height), windows_along(width)
    return [image[(*plane, row, column)] for plane in planes for row in rows for column in columns]


def _noise_models(image, channel_axis, scale) -> tuple[NoiseModel, ...]:
    """The Poisson-Gaussian noise of ``image`` in [0, 1] intensities: one model for every grey
    plane, or one per colour channel of a colour image; ``channel_axis`` is non-negative or None."""
    if not is_colour(channel_axis, image.shape):
        return (_noise_model(image, channel_axis, scale),)
    image = colour_channels(image, channel_axis)
    index = (slice(None),) * channel_axis
    return tuple(_noise_model(image[(*index, channel)], None, scale) for channel in range(image.shape[channel_axis]))


def _noise_model(image, channel_axis, scale) -> NoiseModel:
    """The Poisson-Gaussian noise of the grey planes of ``image`` in [0, 1] intensities, fitted on
    :func:`_noise_windows`; ``channel_axis`` (non-negative or None) holds channels other than colour."""
    if channel_axis is not None:
        image = image.transpose(channels_before_planes(image.ndim, channel_axis))
    windows = _noise_windows(image)
    if is_dask(image):
        import dask

        windows = computed_once(image, "noise windows", lambda: dask.compute(*windows))
    windows = [np.asarray(window) for window in windows]
    # Windows on blank pixels would show flat fills for noise-free regions: only whole windows count.
    whole = [window for window in windows if not (window.dtype.kind == "f" and np.isnan(window).any())]
    windows = whole or [_blanks_filled([window], None)[0][0] for window in windows]
    return fit_noise([to_unit_float(window, scale=scale, name="image")[0] for window in windows])


def _refines(refine: bool, alpha, channel_axis, shape) -> bool:
    """Whether a pass refines its output: ``refine``, planes of ``shape`` at least one refinement
    window a side, and grey planes or a brightening ``alpha``.

    A colour image's noise is not the model's: demosaicing and JPEG's chroma subsampling
    correlate it across pixels and channels, and on well-exposed colour photographs the
    denoise-only refinement lowered PSNR and SSIM (docs/method.md). A brightened restore's
    smoothing costs more than that (bench_real's P3 photographs), so colour images are
    refined when brightened.
    """
    spatial = [shape[axis] for axis in _spatial_axes(len(shape), channel_axis)]
    if not refine or alpha is None or min(spatial) < REFINE_BLOCK:
        return False
    return alpha >= REFINE_MAX_ALPHA or not is_colour(channel_axis, shape)


def _guide_noise(model: LowLightNet) -> float:
    """The refinement's first-pass noise factor for ``model``'s output: what its weights record
    (:data:`GUIDE_NOISE_KEY` of their training metadata: the shipped default weights' measured
    factor, or what a self-supervised fine-tune calibrated on its frames), else
    :data:`~napari_lowlight.noise.REFINE_GUIDE_NOISE`."""
    recorded = getattr(model, "training_config", None) or {}
    return float(recorded.get(GUIDE_NOISE_KEY, REFINE_GUIDE_NOISE))


def _check_image_shape(image, channel_axis) -> int | None:
    if image.ndim < 2:
        raise ValueError(f"image has shape {image.shape}; expected at least 2 dimensions (Y, X)")
    return resolve_channel_axis(channel_axis, image.shape)


def estimate_alpha(image, *, model=None, channel_axis=None, data_range=None, photograph="auto") -> float:
    """Estimate the low-light intensity alpha of ``image`` (what ``alpha="auto"`` uses).

    The model's alpha estimator reads quantiles of the whole image's intensities (the
    same image context Estimate-Net gets) and was trained on synthetic low-light images
    with alpha in [0.5, 2], so the estimate lies in that range; a model also trained on
    undarkened frames (``ModelConfig.alpha_min`` 0, as the shipped one) can answer down
    to 0, "denoise only". Parameters are those of :func:`restore`, and:

    photograph : bool or "auto"
        Whether ``image`` is a photograph that lost its exposure, whose alpha the estimator
        reads (True), or a frame dim by nature, a micrograph or a sky frame, which is
        denoised and not brightened (False: the answer is 0). ``"auto"`` (the default):
        colour images (``channel_axis`` of 3 or 4 entries) are photographs, grey planes are
        not. Why grey planes are not: a scientific frame's brightness is its display's
        contrast limits, not a tone curve to undo, and intensity statistics cannot tell a
        fluorescence frame from a darkened photograph (docs/method.md). For a darkened
        grey photograph, pass True.
    """
    if photograph not in (True, False, "auto"):
        raise ValueError(f'photograph must be True, False or "auto", got {photograph!r}')
    image = as_image(image)
    channel_axis = _check_image_shape(image, channel_axis)
    if not _is_photograph(photograph, channel_axis, image.shape):
        return 0.0
    model, context = _model_and_context(image, channel_axis, model, image_scale(image, data_range, channel_axis=channel_axis, blanks=True))
    return _alpha_from_context(model, context)


def _is_photograph(photograph, channel_axis, shape) -> bool:
    return is_colour(channel_axis, shape) if photograph == "auto" else photograph


def _alpha_from_context(model: LowLightNet, context: torch.Tensor) -> float:
    device = next(model.parameters()).device
    with torch.inference_mode():
        return float(model.alpha_estimator(context.to(device))[0])


def _pass_settings(model, context, alpha, scale, device, tile, *, compile, ensemble, keep_black=False, noise=None) -> dict:
    """The keyword arguments of ``_apply`` (through ``_lazy`` for dask) that every public function passes.

    ``noise``: the image's :class:`~napari_lowlight.noise.NoiseModel` per colour channel (one for
    grey planes) when the pass refines its output.
    """
    return dict(
        model=model,
        context=context,
        alpha=alpha,
        scale=scale,
        device=device,
        tile=tile,
        compiled=bool(compile),
        ensemble=bool(ensemble),
        keep_black=bool(keep_black),
        noise=noise,
    )


def _apply(inputs, *, kind, model, context, alpha, scale, channel_axis, device, tile, compiled, ensemble, keep_black, noise):
    """Run one network pass on in-memory arrays: the shared body of every public function.

    ``kind`` is ``"restore"`` (returns restored, difference), ``"estimate"`` (returns the
    difference), ``"enhance"`` (``inputs`` is (image, difference); returns restored) or
    ``"denoise"`` (alpha 0, which multiplies the difference map by 0: Enhance-Net alone on a
    zero map; returns restored).
    """

    def network(function):
        return _dihedral_average(function) if ensemble else function

    inputs, blank = _blanks_filled(inputs, channel_axis)
    unit, _ = to_unit_float(inputs[0], scale=scale)
    planes, passthrough, layout = split_planes(unit, channel_axis)
    runner = _prepared(model, device, compiled)
    context = context.to(runner.device)
    radius, enhance_radius = runner.model.receptive_radius, runner.model.enhance_radius
    if kind == "enhance":
        difference_planes, _, _ = split_planes(np.asarray(inputs[1], dtype=np.float32), channel_axis)
    elif kind == "denoise":
        difference_planes = np.zeros_like(planes)
    else:
        # Estimate-Net over the planes first, with its own (smaller) halo, then Enhance-Net with
        # its own: fewer halo pixels than one pass of both nets with the sum of the halos.
        estimate = network(runner.estimate(context))
        difference_planes = _smooth_difference(
            planes,
            _run_planes(runner, [planes], estimate, 1, radius - enhance_radius, tile)[0],
            colours=3 if layout.colour else 1,
        )
        if kind == "estimate":
            return _merge_difference(difference_planes, passthrough, layout)
    output = _run_planes(
        runner, [planes, difference_planes], network(runner.enhance(alpha, context)), 1, enhance_radius, tile
    )
    if keep_black and alpha > 0:
        output = black_toe(output, _restored_black(runner, alpha, context))
    if noise is not None:
        output[0] = _refined(planes, difference_planes, output[0], noise, alpha, _guide_noise(model), runner.device)
    restored = layout.merge(from_unit_float(output[0], scale), opacity_channel(np.asarray(inputs[0]), channel_axis))
    if blank is not None:
        # Blank in, blank out; the difference map keeps Estimate-Net's values there, so that
        # enhance on it sees what restore saw.
        restored[blank] = np.nan
    return (restored, _merge_difference(difference_planes, passthrough, layout)) if kind == "restore" else restored


def _refined(planes, difference_planes, restored, noise, alpha, guide_noise, device) -> np.ndarray:
    """``restored`` planes refined under the noise of their colour channel (``noise``, one per channel)."""
    refined = np.empty_like(restored)
    for index, (frame, estimate) in enumerate(zip(planes, restored)):
        channel_noise = noise[index % len(noise)]
        if alpha < REFINE_MAX_ALPHA:
            # Enhance-Net's input is the noisy frame the output estimates: at these alphas, the frame itself.
            enhanced = frame + alpha * difference_planes[index]
            refined[index] = wiener_refine(enhanced, estimate, channel_noise, guide_noise=guide_noise, device=device)
        else:
            refined[index] = refine_brightened(frame, estimate, channel_noise, device=device)
    return refined


def _smooth_difference(planes: np.ndarray, difference: np.ndarray, *, colours: int) -> np.ndarray:
    """Estimate-Net's ``difference`` planes smoothed by a guided filter, the image's ``planes`` the guide.

    The estimate carries the low-light image's noise, which alpha multiplies into
    Enhance-Net's input; the guided filter (:mod:`napari_lowlight.guided`) smooths it where
    the image is flat and keeps its steps at the image's edges. The ``colours`` consecutive
    planes of a pixel's colour share one guide, their mean: a channel's own guide carries its
    chroma noise into ``D``.
    """
    guides = np.repeat(planes.reshape(-1, colours, *planes.shape[-2:]).mean(axis=1), colours, axis=0)
    smoothed = np.empty_like(difference)
    for index, (guide, plane) in enumerate(zip(guides, difference)):
        smoothed[index] = np.maximum(guided_filter(guide, plane, DIFFERENCE_GUIDE_RADIUS, DIFFERENCE_GUIDE_EPS), 0)
    return smoothed


def _restored_black(runner: _Runner, alpha: float, context: torch.Tensor) -> float:
    """What a black region of the image comes out as at ``alpha``: the nets' answer to a black frame.

    Eq. 5 above alpha 1 clips every grey below a threshold to black, so the nets learn to
    restore a black input as grey; in a real dark photograph black is mostly black (a
    backdrop, a night sky). The nets are convolutional with reflect padding, so a black
    frame of any size comes out uniform, and the image's own context sets the level.
    """
    black = torch.zeros(1, 1, MIN_PLANE_SIZE, MIN_PLANE_SIZE, device=runner.device)
    with runner.mode():
        difference = runner.model.estimate(black, context)
        alpha_t = torch.full((1, 1, 1, 1), alpha, device=runner.device)
        restored = runner.model.enhance(black, difference, alpha_t, context)
    return max(float(restored.float().mean()), 0.0)


def black_toe(restored: np.ndarray, black: float) -> np.ndarray:
    """Take ``black`` back to 0 with a toe curve that leaves the brighter tones nearly as they are.

    ``x - black * ((1 - x) / (1 - black)) ** BLACK_TOE_POWER``, clipped at 0: increasing in
    ``x``, 0 at ``black`` and below, 1 at 1.

    Parameters
    ----------
    restored : ndarray of float
        Intensities in [0, 1].
    black : float
        The level to take to 0, in [0, 1).

    Returns
    -------
    ndarray of float, the shape and dtype of ``restored``.
    """
    if black <= 0:
        return restored
    headroom = np.clip((1 - restored) / (1 - black), 0, None)
    return np.clip(restored - black * headroom**BLACK_TOE_POWER, 0, None).astype(restored.dtype, copy=False)


def _on_cpu(model: LowLightNet) -> LowLightNet:
    """``model`` itself if it lives on the CPU, else a CPU copy (``model`` is left as it is)."""
    if all(tensor.device.type == "cpu" for tensor in model.state_dict().values()):
        return model
    return copy.deepcopy(model).cpu()


def _estimate_halo(model: LowLightNet) -> int:
    """A lazy Estimate-Net block's overlap: Estimate-Net's reach and the guided filter's on its map."""
    return model.receptive_radius - model.enhance_radius + DIFFERENCE_GUIDE_REACH


def _halo(network_radius: int, noise, alpha: float) -> int:
    """A lazy block's overlap: the network's reach, and the refinement's when it runs (``noise``),
    with its local tone fit's when the pass brightens (``alpha``)."""
    if noise is None:
        return network_radius
    reach = network_radius + (TONE_REACH if alpha >= REFINE_MAX_ALPHA else 0)
    return -(-reach // REFINE_STEP) * REFINE_STEP + REFINE_REACH


def _lazy(inputs, *, kind, halo, channel_axis, out_dtype, **settings):
    """``_apply`` over overlapping dask blocks: lazy, seam-free, any dask scheduler.

    Blocks overlap by the network's receptive radius in Y and X and hold whole colour
    axes; at the image border there is no padding, so each block sees exactly what an
    in-memory pass sees and the result equals it.
    """
    import dask.array as da

    y_axis, x_axis = _spatial_axes(inputs[0].ndim, channel_axis)
    # Blocks start on the refinement's grid (their overlap is a multiple of its step too).
    core = -(-max(4 * halo, LAZY_BLOCK_TILES * settings["tile"]) // REFINE_STEP) * REFINE_STEP
    chunks = {y_axis: core, x_axis: core}
    if channel_axis is not None:
        chunks[channel_axis] = -1
    arrays = [da.asarray(array).rechunk(chunks) for array in inputs]
    # Each block's runner moves the model to its worker's device; a model pickled from a
    # GPU would not even unpickle on a worker without one.
    settings["model"] = _on_cpu(settings["model"])

    def block(*blocks):
        # Equal tiles no larger than the chosen size that split the block with its overlap:
        # tiles of that size would leave a sliver at the block's end that costs a whole window.
        length = max(blocks[0].shape[y_axis], blocks[0].shape[x_axis])
        tile = -(-length // -(-length // settings["tile"]))
        result = _apply(blocks, kind=kind, channel_axis=channel_axis, **{**settings, "tile": tile})
        return result[0] if kind == "restore" else result

    # An axis held by one block needs no overlap (and dask refuses one deeper than the axis).
    depth = {axis: halo if arrays[0].numblocks[axis] > 1 else 0 for axis in (y_axis, x_axis)}
    return da.map_overlap(block, *arrays, depth=depth, boundary="none", dtype=out_dtype, trim=True)


def restore(
    image,
    alpha=1.0,
    *,
    model=None,
    channel_axis=None,
    device="auto",
    tile_size=None,
    return_difference=False,
    data_range=None,
    compile=False,
    ensemble=False,
    keep_black=True,
    refine=True,
):
    """Restore a low-light image.

    Parameters
    ----------
    image : array_like or dask.array.Array
        A 2-D grey image, a colour image with ``channel_axis``, or any N-D stack whose
        last two axes are (Y, X) (every 2-D plane is restored). Integers are scaled by
        their dtype range; floats are intensities in [0, 1] (other ranges are mapped
        into it with a warning and back afterwards). NaN pixels of a float image are
        blank (off a detector, masked): the network sees the nearest pixel's
        value of their plane there and they are NaN in the result (infinite values are
        refused). A dask array gives a lazy dask array back, computed block by block on
        any scheduler.
    alpha : float or "auto"
        Restoration strength: the low-light intensity to undo, >= 0 (trained on
        [0.5, 2]; 0 is "denoise only", no brightening, for a model trained with
        undarkened frames, as the shipped one). ``"auto"`` estimates it from a colour
        image and is 0 for grey planes, which are denoised (:func:`estimate_alpha`; for a
        darkened grey photograph pass ``estimate_alpha(image, photograph=True)``).
    model : LowLightNet, optional
        The shipped default model when None.
    channel_axis : int, "auto" or None
        Axis of channels: 3 or 4 are RGB(A), whose opacity channel is passed through;
        any other count (two fluorescent labels, say) is restored as grey planes. ``"auto"``:
        the last axis of an image of 3 or more dimensions when it has 3 or 4 entries,
        as napari guesses. None (the default) restores every 2-D plane as grey, and
        warns (:class:`~napari_lowlight.planes.ChannelAxisWarning`) when the last axis
        has 3 or 4 entries: for a colour photo pass ``"auto"`` or -1.
    device : str or torch.device
        ``"auto"`` picks CUDA, then MPS, then the CPU.
    tile_size : int, optional
        Core size of the tiles (default 256); any image size works.
    return_difference : bool
        Also return the estimated difference map.
    data_range : float, optional
        The value of full intensity, e.g. 4095 for a 12-bit camera's data stored as
        uint16: without it such data fills 1/16 of the range and looks very dark to
        the network. Values outside [0, data_range] clip. Default: the dtype's range for integers,
        [0, 1] for floats.
    compile : bool
        Run both nets through ``torch.compile``: faster per tile after a one-off
        compilation per model and tile shape (docs/benchmarks.md has both), so for batch
        work on many or large images. Needs a C++ compiler on the CPU; without one
        it warns and runs as usual.
    ensemble : bool
        Average each network's output over the 8 flips and quarter turns of its input (a
        geometric self-ensemble): a little less residual noise for 8 times the time
        (docs/benchmarks.md measures both).
    keep_black : bool
        Keep what is black in the image black: above alpha about 1 the nets restore a
        black region as grey (Eq. 5 trains black inputs as clipped greys), so the output
        level of a black frame at this alpha is taken back to 0 by a toe curve that
        leaves the brighter tones nearly as they are (:func:`black_toe`). No effect at
        alpha 0. False gives the nets' output as it is.
    refine : bool
        Filter the frame again with the network's output as the guide: an empirical
        Wiener filter in sliding DCT blocks under the image's own Poisson-Gaussian noise
        model, fitted once on windows of the image (per colour channel for a colour
        image). Below alpha 0.05 (``REFINE_MAX_ALPHA``: denoise only, as at alpha 0 or an
        "auto" that finds nothing to brighten) the frame is filtered as it is
        (:func:`~napari_lowlight.noise.wiener_refine`); from it on, brightened by the
        output's local tone curve, an affine fit of the output on the frame in windows
        of 17 pixels (:func:`~napari_lowlight.noise.refine_brightened`). It gives back
        detail the network smoothed and removes what it left of the noise
        (docs/benchmarks.md measures it on real fluorescence frames and photographs),
        for about the time of the network pass again. Colour images
        (``channel_axis``) are refined only when brightened: demosaicing and compression
        correlate their noise, which costs a denoise-only refinement more than it gains.
        No effect on planes under 32 pixels a side. False gives the nets' output as it is.

    Returns
    -------
    restored : ndarray
        Same shape and dtype as ``image``.
    difference : ndarray of float32, same shape as ``image``
        Only with ``return_difference=True``: Estimate-Net's difference map.
    """
    alpha = _check_alpha(alpha, allow_auto=True)
    tile = _check_tile_size(tile_size)
    image = as_image(image)
    channel_axis = _check_image_shape(image, channel_axis)
    scale = image_scale(image, data_range, channel_axis=channel_axis, blanks=True)
    model, context = _model_and_context(image, channel_axis, model, scale)
    if alpha == "auto":
        alpha = _alpha_from_context(model, context) if _is_photograph("auto", channel_axis, image.shape) else 0.0
    noise = _noise_models(image, channel_axis, scale) if _refines(refine, alpha, channel_axis, image.shape) else None
    settings = _pass_settings(
        model, context, alpha, scale, device, tile, compile=compile, ensemble=ensemble, keep_black=keep_black, noise=noise
    )
    if alpha == 0 and not return_difference:
        # Enhance-Net's input is then the image itself: Estimate-Net's map would be multiplied by 0.
        if not is_dask(image):
            return _apply([image], kind="denoise", channel_axis=channel_axis, **settings)
        halo = _halo(model.enhance_radius, noise, alpha)
        return _lazy([image], kind="denoise", halo=halo, channel_axis=channel_axis, out_dtype=image.dtype, **settings)
    if not is_dask(image):
        restored, difference = _apply([image], kind="restore", channel_axis=channel_axis, **settings)
        return (restored, difference) if return_difference else restored
    halo = _halo(model.receptive_radius + DIFFERENCE_GUIDE_REACH, noise, alpha)
    restored = _lazy([image], kind="restore", halo=halo, channel_axis=channel_axis, out_dtype=image.dtype, **settings)
    if not return_difference:
        return restored
    settings["noise"] = None
    difference = _lazy([image], kind="estimate", halo=_estimate_halo(model), channel_axis=channel_axis, out_dtype=np.float32, **settings)
    return restored, difference


def _merge_difference(difference, passthrough, layout):
    """Put difference planes back in the image's shape (the opacity channel's map is 0)."""
    opacity = None if passthrough is None else np.zeros(passthrough.shape, np.float32)
    return layout.merge(difference, opacity)


def estimate_difference(
    image,
    *,
    model=None,
    channel_axis=None,
    device="auto",
    tile_size=None,
    data_range=None,
    compile=False,
    ensemble=False,
):
    """Run Estimate-Net only: the difference map to cache for live alpha changes.

    Parameters are those of :func:`restore`. Returns float32 of ``image``'s shape
    (a lazy dask array for a dask input).
    """
    tile = _check_tile_size(tile_size)
    image = as_image(image)
    channel_axis = _check_image_shape(image, channel_axis)
    scale = image_scale(image, data_range, channel_axis=channel_axis, blanks=True)
    model, context = _model_and_context(image, channel_axis, model, scale)
    settings = _pass_settings(model, context, None, scale, device, tile, compile=compile, ensemble=ensemble)
    if not is_dask(image):
        return _apply([image], kind="estimate", channel_axis=channel_axis, **settings)
    return _lazy([image], kind="estimate", halo=_estimate_halo(model), channel_axis=channel_axis, out_dtype=np.float32, **settings)


def enhance(
    image,
    difference,
    alpha,
    *,
    model=None,
    channel_axis=None,
    device="auto",
    tile_size=None,
    context_image=None,
    data_range=None,
    compile=False,
    ensemble=False,
    keep_black=True,
    refine=True,
):
    """Run Enhance-Net only, on a cached difference map: the fast path of a new alpha.

    ``enhance(image, estimate_difference(image), alpha)`` equals ``restore(image, alpha)``.
    To update a view first, pass matching slices of ``image`` and ``difference`` and
    the whole image as ``context_image``.

    Parameters
    ----------
    image : array_like or dask.array.Array
        The low-light image (as for :func:`restore`).
    difference : array_like of float
        Same shape as ``image``, from :func:`estimate_difference` on the same model.
    alpha : float
        Restoration strength, >= 0 (as for :func:`restore`).
    context_image : array_like, optional
        The image whose statistics form the image context, when ``image`` is a slice of
        it (a plane of a stack, a crop): then the slice matches the whole image's result.
        Default: ``image`` itself. Same dtype as ``image``.
    model, channel_axis, device, tile_size, data_range, compile, ensemble, keep_black, refine
        As for :func:`restore`; the noise model of ``refine`` is fitted on ``context_image``.

    Returns
    -------
    ndarray, same shape and dtype as ``image`` (a lazy dask array for a dask input).
    """
    alpha = _check_alpha(alpha, allow_auto=False)
    tile = _check_tile_size(tile_size)
    image, difference = as_image(image), as_image(difference)
    channel_axis = _check_image_shape(image, channel_axis)
    if tuple(difference.shape) != tuple(image.shape):
        raise ValueError(f"difference has shape {tuple(difference.shape)}; expected the image's shape {tuple(image.shape)}")
    if context_image is None:
        whole, whole_axis = image, channel_axis
    else:
        whole = as_image(context_image)
        # The slice's leading axes were dropped from the whole image's: shift the channel axis.
        whole_axis = _check_image_shape(whole, None if channel_axis is None else channel_axis + whole.ndim - image.ndim)
    scale = image_scale(whole, data_range, channel_axis=whole_axis, blanks=True)
    model, context = _model_and_context(whole, whole_axis, model, scale)
    noise = _noise_models(whole, whole_axis, scale) if _refines(refine, alpha, channel_axis, image.shape) else None
    settings = _pass_settings(
        model, context, alpha, scale, device, tile, compile=compile, ensemble=ensemble, keep_black=keep_black, noise=noise
    )
    if not (is_dask(image) or is_dask(difference)):
        return _apply([image, difference], kind="enhance", channel_axis=channel_axis, **settings)
    halo = _halo(model.enhance_radius, noise, alpha)
    return _lazy([image, difference], kind="enhance", halo=halo, channel_axis=channel_axis, out_dtype=image.dtype, **settings)


def enhance_preview(image, difference, alpha, *, max_pixels=1 << 18, channel_axis=None, context_image=None, **options):
    """A coarse, fast :func:`enhance` for live feedback on big images.

    Enhance-Net runs on every ``step``-th pixel in Y and X (``step`` chosen so at most
    ``max_pixels`` pixels per plane are computed) and the result is enlarged back by
    repetition. Use it to show a new alpha at once, then replace it by :func:`enhance`.

    Returns
    -------
    ndarray, same shape and dtype as ``image``.
    """
    image, difference = np.asarray(image), np.asarray(difference)
    axis = _check_image_shape(image, channel_axis)
    y_axis, x_axis = _spatial_axes(image.ndim, axis)
    step = max(1, int(np.ceil(np.sqrt(image.shape[y_axis] * image.shape[x_axis] / max_pixels))))
    index = [slice(None)] * image.ndim
    index[y_axis] = index[x_axis] = slice(None, None, step)
    index = tuple(index)
    small = enhance(
        image[index],
        difference[index],
        alpha,
        channel_axis=axis,
        context_image=image if context_image is None else context_image,
        **options,
    )
    large = np.repeat(np.repeat(small, step, axis=y_axis), step, axis=x_axis)
    crop = [slice(None)] * image.ndim
    crop[y_axis], crop[x_axis] = slice(image.shape[y_axis]), slice(image.shape[x_axis])
    return large[tuple(crop)]
