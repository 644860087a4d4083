"""Training: random patches, low-light synthesis on the fly, a resumable generator loop.

Each step draws ``batch_size`` patches from the clean images, darkens each with its
own random alpha, gamma and noise (the paper's recipe), and fits the network with an
L2 loss on the output plus L2 losses on the difference map and the alpha estimate
(the generator knows both). The image context of each patch is computed from a pixel
sample of its whole synthesised image, as :func:`~napari_lowlight.restore` does.

Every step's randomness is derived from ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as if it had never stopped.

The weights handed back are an exponential moving average of the trained ones
(:class:`WeightAverage`): single steps move the benchmark by several dB at constant
loss, and the average of many is steadier and slightly better.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .devices import mixed_precision, resolve_device
from ._warnings import warn_user
from .inference import GUIDE_NOISE_KEY, _refines, restore
from .intensity import IntensityScale, check_data_range, check_image, to_unit_float
from .network import ALPHA_RANGE, LowLightNet, image_context
from .noise import fit_noise, wiener_refine
from .planes import split_planes
from .weights import load_weights, new_model, read_metadata, save_model

__all__ = [
    "TrainingConfig",
    "TrainingProgress",
    "WeightAverage",
    "train",
    "calibrated_guide_noise",
    "FINE_TUNE_LR",
    "SELF_SUPERVISED_DEFAULTS",
]

#: Pixels per image drawn to compute the image context during training.
CONTEXT_SAMPLES = 4096
NOISE_CHOICES = ("gaussian", "poisson-gaussian", "mixed", None)
#: Adam's learning rate from scratch (the paper's).
SCRATCH_LR = 1e-3
#: Learning rate for fine-tuning existing weights: the from-scratch rate first knocks them far off.
FINE_TUNE_LR = 1e-4
#: ``train(noisy=...)`` settings for fine-tuning trained weights on a few dozen noisy frames
#: (chosen on real W2S frames; benchmarks/bench_self_supervised.py measures them and their time).
SELF_SUPERVISED_DEFAULTS = dict(steps=2400, batch_size=32, patch_size=64, lr=3e-4)
#: Randomness index of the held-back validation batch (beyond any training step).
VALIDATION_STEP = 2**40
#: A blind spot's value is replaced by that of another pixel at most this far away (Noise2Void's 5x5).
BLIND_SPOT_RADIUS = 2
#: The largest share of blind spots that keeps them ``BLIND_SPOT_RADIUS + 2`` apart (see ``_blind_spots``).
MAX_MASK_FRACTION = 1 / (BLIND_SPOT_RADIUS + 2) ** 2
#: The refinement's first-pass noise factors a self-supervised fine-tune chooses from
#: (:func:`calibrated_guide_noise`), and the frames, at most this many and this many pixels a
#: side, it scores them on: about half a minute on a 2-core CPU.
GUIDE_NOISE_CHOICES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
CALIBRATION_FRAMES = 8
CALIBRATION_SIDE = 512


@dataclass
class TrainingConfig:
    """Everything that defines a training run (stored in the weights' metadata)."""

    steps: int
    batch_size: int = 32
    patch_size: int = 48
    lr: float = SCRATCH_LR
    lr_milestones: tuple[float, ...] = (0.6, 0.85)
    weight_decay: float = 1e-6
    alpha_range: tuple[float, float] = (0.5, 2.0)
    denoise_fraction: float = 0.0
    #: Undarkened share of the ``dim_images`` samples (None: ``denoise_fraction``).
    dim_denoise_fraction: float | None = None
    gamma_range: tuple[float, float] = (0.5, 2.0)
    #: Share of the darkened samples that lose exposure instead: ``low = kept * I`` with saturated
    #: pixels at 1 (Eq. 5's limit gamma -> infinity), as an underexposed photograph shows, ``kept``
    #: log-uniform in ``exposure_kept_range``. Their alpha is 1, the strength the darkening
    #: defines (as for real pairs), and their difference map ``(1 - kept) * I``.
    exposure_fraction: float = 0.0
    exposure_kept_range: tuple[float, float] = (0.03, 0.5)
    #: Share of the undarkened (alpha 0) samples recorded over a black level ``b``, uniform in
    #: ``black_level_range``: the clean image becomes ``b + (1 - b) * I`` (target included), as
    #: a camera's offset and a specimen's background lift a fluorescence frame's blacks.
    black_level_fraction: float = 0.0
    black_level_range: tuple[float, float] = (0.0, 0.1)
    #: Share of the samples whose clean image has its shadows crushed to true black by a
    #: threshold ``t`` uniform in ``shadow_crush_range``: ``max(I - t, 0) / (1 - t)``, target
    #: included. Eq. 5 above alpha 1 clips grey truths to a black input; real dark
    #: photographs mostly hold black truths there (backdrops, night skies), which clean
    #: training photographs rarely have.
    shadow_crush_fraction: float = 0.0
    shadow_crush_range: tuple[float, float] = (0.0, 0.25)
    #: Share of the darkened samples that Enhance-Net runs at a strength ``s`` other than their
    #: alpha, uniform in ``strength_range``, against the target ``clip(I + (s - alpha) * D)``:
    #: partly restored below alpha, brighter above. Trained at the true alpha alone, the
    #: network's output on a dark photograph came out darker at alpha 1.2 than at 1 (nothing
    #: taught it what an alpha off the darkening means); with them, the user's alpha is a
    #: strength the output follows. The alpha estimator and Estimate-Net still learn the true
    #: alpha and ``D``.
    strength_fraction: float = 0.0
    strength_range: tuple[float, float] = (0.0, 3.0)
    noise: str | None = "mixed"
    #: Share of the samples recorded without sensor noise (quantised only, when drawn). Without
    #: them every training input is noisy, and the network smooths a clean photograph's texture
    #: away as if it were noise.
    noise_free_fraction: float = 0.0
    noise_sigma_range: tuple[float, float] = (0.0, 0.03)
    photons_range: tuple[float, float] = (20.0, 1000.0)
    quantize_fraction: float = 0.5
    difference_weight: float = 0.5
    alpha_weight: float = 0.01
    #: Further whole-image draws per step on which the alpha estimator trains (their
    #: contexts only: no patches, no network pass), beside the batch's own.
    alpha_batch_size: int = 0
    average_decay: float = 0.999
    freeze_batchnorm: bool = False
    seed: int = 0
    paired: bool = False
    #: Trained on noisy frames alone (``train(noisy=...)``), by blind-spot masking at alpha 0.
    self_supervised: bool = False
    #: Share of each self-supervised patch's pixels that are blind spots (one per grid cell):
    #: the most that keeps them apart. Each blind spot is a scored pixel, and on the real W2S
    #: frames this share fit better than Noise2Void's 2% in the same steps.
    mask_fraction: float = MAX_MASK_FRACTION
    #: Self-supervised only: further noisy patches per step, twice ``patch_size`` a side (at most
    #: the smallest frame), scored by Neighbor2Neighbor beside the blind spots (see
    #: :func:`_neighbour_loss`); 0: blind spots alone. A blind spot is scored without its own
    #: value, a neighbour pair at half resolution. On the real W2S frames 8 of them raised a
    #: fine-tune of the fluorescence weights and lowered one of the default weights
    #: (docs/method.md), so they are not the default.
    neighbour_batch_size: int = 0
    #: Weight of Neighbor2Neighbor's regulariser (the paper's gamma: 2 for real noise).
    neighbour_regularisation: float = 2.0

    def __post_init__(self):
        for name in ("steps", "batch_size", "patch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "alpha_batch_size", "neighbour_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be at least 8, got {self.patch_size}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        regularisation = self.neighbour_regularisation
        if isinstance(regularisation, bool) or not (isinstance(regularisation, (int, float)) and 0 <= regularisation < math.inf):
            raise ValueError(f"neighbour_regularisation must be a non-negative number, got {regularisation!r}")
        for name in ("alpha_range", "gamma_range", "noise_sigma_range", "photons_range", "strength_range"):
            low, high = getattr(self, name)
            zero_allowed = name in ("noise_sigma_range", "strength_range")  # no read noise; denoise only
            if not (0 <= low <= high) or (not zero_allowed and low == 0):
                bound = "0 <= low <= high" if zero_allowed else "0 < low <= high"
                raise ValueError(f"{name} must be (low, high) with {bound}, got {(low, high)!r}")
        low, high = self.exposure_kept_range
        if not 0 < low <= high < 1:
            raise ValueError(f"exposure_kept_range must be (low, high) with 0 < low <= high < 1, got {(low, high)!r}")
        for name in ("black_level_range", "shadow_crush_range"):
            low, high = getattr(self, name)
            if not 0 <= low <= high < 1:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high < 1, got {(low, high)!r}")
        for name in (
            "denoise_fraction",
            "dim_denoise_fraction",
            "exposure_fraction",
            "black_level_fraction",
            "shadow_crush_fraction",
            "strength_fraction",
            "noise_free_fraction",
        ):
            value = getattr(self, name)
            if value is None and name == "dim_denoise_fraction":
                continue
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not (isinstance(self.average_decay, (int, float)) and 0 <= self.average_decay < 1):
            raise ValueError(f"average_decay must be in [0, 1), got {self.average_decay!r}")
        if not isinstance(self.freeze_batchnorm, bool):
            raise ValueError(f"freeze_batchnorm must be True or False, got {self.freeze_batchnorm!r}")
        if self.noise not in NOISE_CHOICES:
            raise ValueError(f"noise must be one of {NOISE_CHOICES}, got {self.noise!r}")
        if isinstance(self.mask_fraction, bool) or not (
            isinstance(self.mask_fraction, (int, float, np.floating)) and 0 < self.mask_fraction <= MAX_MASK_FRACTION
        ):
            raise ValueError(f"mask_fraction must be in (0, {MAX_MASK_FRACTION:.4g}], got {self.mask_fraction!r}")


@dataclass
class TrainingProgress:
    """One training step's report (yielded by :func:`train`)."""

    step: int
    steps: int
    loss: float
    learning_rate: float
    images_per_second: float
    validation_psnr: float | None = None
    model: LowLightNet | None = field(default=None, repr=False)
    #: ``train(preview=...)`` restored by the averaged weights at the last validation (the same
    #: array until the next one).
    preview: np.ndarray | None = field(default=None, repr=False)


class _Batch(NamedTuple):
    """One step's tensors: inputs ``low`` (B, 1, P, P), ``alpha`` (B,), ``context`` (B, K), and what is scored."""

    low: torch.Tensor
    #: The output's target: the clean patches, the high of a pair, or the noisy patch itself.
    target: torch.Tensor
    #: The true difference map (synthesised samples only).
    difference: torch.Tensor | None
    alpha: torch.Tensor
    context: torch.Tensor
    #: Where the output is scored (self-supervised: the blind spots); None: everywhere.
    mask: torch.Tensor | None = None
    #: The alpha Enhance-Net runs at, where it is not ``alpha`` (``TrainingConfig.strength_fraction``).
    strength: torch.Tensor | None = None

    @property
    def network_alpha(self) -> torch.Tensor:
        """The alpha the network restores ``low`` at (``target`` is its output's goal there)."""
        return self.alpha if self.strength is None else self.strength

    def to(self, device) -> _Batch:
        return _Batch(*(t if t is None else t.to(device) for t in self))


class _PatchSource:
    """Clean (or paired) planes and a sampler of aligned random patches.

    Each source image is kept as an array (C, H, W) of its planes: the channels of a
    colour image stay together, because the image context is computed over all of them.
    ``dim`` flags the input images that are dim by nature (``self.dim``: one flag per
    stored image). ``data_range`` is the value of full intensity, for all images or one per
    image (None: :func:`~napari_lowlight.intensity.to_unit_float`'s mapping).
    """

    def __init__(self, images, patch_size: int, channel_axis, name: str, dim=None, data_range=None):
        self.images, dim_flags = [], []
        #: The shortest side of any plane before padding to ``patch_size``.
        self.smallest_side = math.inf
        axes = list(channel_axis) if isinstance(channel_axis, (list, tuple)) else [channel_axis] * len(images)
        if len(axes) != len(images):
            raise ValueError(f"channel_axis has {len(axes)} entries for {len(images)} images")
        dim = [False] * len(images) if dim is None else list(dim)
        ranges = list(data_range) if isinstance(data_range, (list, tuple)) else [data_range] * len(images)
        for position, (image, axis, is_dim, full) in enumerate(zip(images, axes, dim, ranges, strict=True)):
            image = np.asarray(image)
            # data_range: a 12-bit camera's uint16 frames, say, would otherwise train as 1/16 as bright.
            scale = None if full is None else IntensityScale(image.dtype, 0.0, full)
            unit, _ = to_unit_float(image, name=f"{name}[{position}]", scale=scale)
            planes, _, layout = split_planes(unit, axis)
            # Colour channels of one image stay together; every other plane stands alone.
            per_image = layout.colour_shape[-1] - int(layout.has_opacity) if layout.colour else 1
            for group in planes.reshape(-1, per_image, *planes.shape[-2:]):
                self.images.append(_pad_to(group.astype(np.float32), patch_size))
                dim_flags.append(is_dim)
            self.smallest_side = min(self.smallest_side, *planes.shape[-2:])
        if not self.images:
            raise ValueError(f"{name} is empty; give at least one image")
        self.patch_size = patch_size
        self.dim = np.array(dim_flags)

    def with_patch_size(self, patch_size: int) -> _PatchSource:
        """The same images (shared, not copied), cropped into patches of another size."""
        if patch_size > self.smallest_side:
            raise ValueError(f"patch_size {patch_size} exceeds the smallest image side, {self.smallest_side}")
        other = copy.copy(self)
        other.patch_size = patch_size
        return other

    def crop(self, rng: np.random.Generator, index: int):
        """A random (P, P) patch of image ``index`` and where it lies: (channel, y, x)."""
        image = self.images[index]
        channel = int(rng.integers(image.shape[0]))
        y = int(rng.integers(image.shape[1] - self.patch_size + 1))
        x = int(rng.integers(image.shape[2] - self.patch_size + 1))
        return image[channel, y : y + self.patch_size, x : x + self.patch_size], (channel, y, x)

    def crop_at(self, index: int, where):
        channel, y, x = where
        return self.images[index][channel, y : y + self.patch_size, x : x + self.patch_size]

    def pixels(self, rng: np.random.Generator, index: int, count: int) -> np.ndarray:
        """``count`` random pixel values of image ``index`` (all channels)."""
        image = self.images[index]
        return image.reshape(-1)[rng.integers(0, image.size, count)]


def _pad_to(planes: np.ndarray, size: int) -> np.ndarray:
    pad_y, pad_x = max(0, size - planes.shape[1]), max(0, size - planes.shape[2])
    if pad_y or pad_x:
        planes = np.pad(planes, ((0, 0), (0, pad_y), (0, pad_x)), mode="symmetric")
    return planes


def _augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip and 90-degree rotation of the last two axes (the square's 8 symmetries)."""
    patch = np.rot90(patch, int(rng.integers(4)), axes=(-2, -1))
    return patch[..., ::-1] if rng.integers(2) else patch


def _difference(clean, gamma, depth):
    """The difference map ``depth * (1 - I**gamma) * I``; ``gamma`` and ``depth`` broadcast.

    ``depth`` is 1 for Eq. 6; an exposure sample (gamma = inf) has ``depth = 1 - kept``.
    """
    return depth * (1 - clean**gamma) * clean


def _darken(clean, alpha, gamma, depth):
    """Eq. 5 without clipping, per sample: ``I - alpha * D``; the parameters broadcast."""
    return clean - alpha * _difference(clean, gamma, depth)


def _noise(low, config: TrainingConfig, generator: torch.Generator, sigma, photons, shot, bits):
    """Sensor noise and quantisation for a batch, then clipping (as a camera would)."""
    low = low.clamp(0, 1)  # the sensor sees the clipped signal, then adds its noise
    if config.noise is not None:
        poisson_rate = (low * photons).where(shot, torch.zeros_like(low))
        shot_noisy = torch.poisson(poisson_rate, generator=generator) / photons
        low = torch.where(shot, shot_noisy, low)
        low = low + sigma * torch.randn(low.shape, generator=generator)
    low = low.clamp(0, 1)
    levels = (2.0**bits - 1).clamp(min=1)
    quantised = torch.round(low * levels) / levels
    return torch.where(bits > 0, quantised, low)


@dataclass
class _Degradation:
    """Per-sample parameters of the synthesised low light, tensors of shape (B,)."""

    alpha: torch.Tensor
    gamma: torch.Tensor
    #: 1 for Eq. 5; ``1 - kept`` for an exposure sample (see ``TrainingConfig.exposure_fraction``).
    depth: torch.Tensor
    #: The black level the clean image is recorded over (``TrainingConfig.black_level_fraction``).
    black: torch.Tensor
    #: The threshold below which the clean image is crushed to black (``TrainingConfig.shadow_crush_fraction``).
    crush: torch.Tensor
    sigma: torch.Tensor
    photons: torch.Tensor
    shot: torch.Tensor
    bits: torch.Tensor
    #: The alpha Enhance-Net restores at: ``alpha``, or another strength (``TrainingConfig.strength_fraction``).
    strength: torch.Tensor

    @classmethod
    def draw(cls, rng: np.random.Generator, config: TrainingConfig, dim: np.ndarray) -> _Degradation:
        """Random parameters for samples from images flagged ``dim`` (bool, shape (B,))."""
        count = len(dim)

        def uniform(bounds, log=False):
            low, high = (math.log(bounds[0]), math.log(bounds[1])) if log else bounds
            values = torch.from_numpy(rng.uniform(low, high, count).astype(np.float32))
            return values.exp() if log else values

        alpha, gamma = uniform(config.alpha_range), uniform(config.gamma_range, log=True)
        depth = torch.ones(count)
        if config.exposure_fraction:  # drawn only then, so runs without it keep their random stream
            exposure = torch.from_numpy(rng.random(count) < config.exposure_fraction)
            # I**inf is 0 below 1 and 1 at 1: at alpha 1, low = kept * I with saturated pixels kept.
            gamma[exposure] = math.inf
            alpha[exposure] = 1.0
            depth[exposure] = 1 - uniform(config.exposure_kept_range, log=True)[exposure]
        dim_share = config.denoise_fraction if config.dim_denoise_fraction is None else config.dim_denoise_fraction
        share = np.where(dim, dim_share, config.denoise_fraction)
        if share.any():  # drawn only then, so runs without it keep their random stream
            alpha[torch.from_numpy(rng.random(count) < share)] = 0.0
        black = torch.zeros(count)
        if config.black_level_fraction:  # drawn only then, so runs without it keep their random stream
            lifted = torch.from_numpy(rng.random(count) < config.black_level_fraction) & (alpha == 0)
            black[lifted] = uniform(config.black_level_range)[lifted]
        crush = torch.zeros(count)
        if config.shadow_crush_fraction:  # drawn only then, so runs without it keep their random stream
            crushed = torch.from_numpy(rng.random(count) < config.shadow_crush_fraction)
            crush[crushed] = uniform(config.shadow_crush_range)[crushed]
        sigma, photons = uniform(config.noise_sigma_range), uniform(config.photons_range, log=True)
        if config.noise == "mixed":
            shot = torch.from_numpy(rng.random(count) < 0.5)
        else:
            shot = torch.full((count,), config.noise == "poisson-gaussian")
        quantise = rng.random(count) < config.quantize_fraction
        bits = torch.from_numpy(np.where(quantise, rng.choice([8, 16], count), 0).astype(np.float32))
        if config.noise_free_fraction:  # drawn only then, so runs without it keep their random stream
            noise_free = torch.from_numpy(rng.random(count) < config.noise_free_fraction)
            sigma[noise_free] = 0.0
            shot &= ~noise_free
        strength = alpha.clone()
        if config.strength_fraction:  # drawn only then, so runs without it keep their random stream
            # Undarkened samples hold no D that Estimate-Net learns to see, to brighten by.
            off = torch.from_numpy(rng.random(count) < config.strength_fraction) & (alpha > 0)
            strength[off] = uniform(config.strength_range)[off]
        return cls(alpha, gamma, depth, black, crush, sigma, photons, shot, bits, strength)

    def recorded(self, clean: torch.Tensor) -> torch.Tensor:
        """``clean``, shadows crushed, over each sample's black level: the noise-free frame, and the target."""
        crush, black = _per_sample(self.crush, clean), _per_sample(self.black, clean)
        clean = (clean - crush).clamp(min=0) / (1 - crush)
        return black + (1 - black) * clean

    def apply(self, clean: torch.Tensor, config: TrainingConfig, generator: torch.Generator) -> torch.Tensor:
        """The low-light version of ``clean`` (:meth:`recorded`): patches (B, 1, P, P) or pixel rows (B, S)."""
        low = _darken(clean, *(_per_sample(v, clean) for v in (self.alpha, self.gamma, self.depth)))
        return _noise(low, config, generator, *(_per_sample(v, clean) for v in (self.sigma, self.photons, self.shot, self.bits)))


def _per_sample(values: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Per-sample ``values`` (B,) shaped to broadcast over ``batch`` (B, ...)."""
    return values.view(-1, *([1] * (batch.ndim - 1)))


def _synthetic_batch(source: _PatchSource, config: TrainingConfig, step: int, count: int) -> _Batch:
    """The batch of synthesised low-light patches for ``step``."""
    rng = np.random.default_rng([config.seed, step])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    indices = rng.integers(len(source.images), size=count)
    clean = np.stack([_augment(source.crop(rng, i)[0][None], rng) for i in indices])
    pixels = np.stack([source.pixels(rng, i, CONTEXT_SAMPLES) for i in indices])
    degradation = _Degradation.draw(rng, config, source.dim[indices])
    clean_t = degradation.recorded(torch.from_numpy(np.ascontiguousarray(clean)))
    pixels_t = degradation.recorded(torch.from_numpy(pixels))
    low = degradation.apply(clean_t, config, generator)
    low_pixels = degradation.apply(pixels_t, config, generator)
    difference = _difference(clean_t, *(_per_sample(v, clean_t) for v in (degradation.gamma, degradation.depth)))
    if not config.strength_fraction:
        return _Batch(low, clean_t, difference, degradation.alpha, image_context(low_pixels))
    # The clean image restored at the strength: I - alpha * D, the noise-free low, brightened by strength * D.
    target = (clean_t + _per_sample(degradation.strength - degradation.alpha, clean_t) * difference).clamp(0, 1)
    return _Batch(low, target, difference, degradation.alpha, image_context(low_pixels), strength=degradation.strength)


def _context_batch(source: _PatchSource, config: TrainingConfig, step: int, count: int):
    """``(alpha, context)`` of ``count`` further whole-image draws for the alpha estimator.

    Contexts cost a few thousand pixels each and no network pass, so the estimator can
    see many more per step than the patches' own (its own random stream, so the patches
    stay those of a run without them).
    """
    rng = np.random.default_rng([config.seed, step, 1])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    indices = rng.integers(len(source.images), size=count)
    pixels = torch.from_numpy(np.stack([source.pixels(rng, i, CONTEXT_SAMPLES) for i in indices]))
    degradation = _Degradation.draw(rng, config, source.dim[indices])
    return degradation.alpha, image_context(degradation.apply(degradation.recorded(pixels), config, generator))


def _paired_batch(low_source: _PatchSource, high_source: _PatchSource, config: TrainingConfig, step: int, count: int):
    """A batch of aligned (low, high) patches; alpha is 1: the strength the pairs define."""
    rng = np.random.default_rng([config.seed, step])
    lows, highs, pixel_rows = [], [], []
    for index in rng.integers(len(low_source.images), size=count):
        low_patch, where = low_source.crop(rng, index)
        pair = _augment(np.stack([low_patch, high_source.crop_at(index, where)]), rng)
        lows.append(pair[:1])
        highs.append(pair[1:])
        pixel_rows.append(low_source.pixels(rng, index, CONTEXT_SAMPLES))
    context = image_context(torch.from_numpy(np.stack(pixel_rows)))
    low = torch.from_numpy(np.ascontiguousarray(np.stack(lows)))
    high = torch.from_numpy(np.ascontiguousarray(np.stack(highs)))
    return _Batch(low, high, None, torch.ones(count), context)


#: Offsets (dy, dx) a blind spot takes its value from: its neighbourhood without itself.
_NEIGHBOURS = np.array(
    [(dy, dx) for dy in range(-BLIND_SPOT_RADIUS, BLIND_SPOT_RADIUS + 1) for dx in range(-BLIND_SPOT_RADIUS, BLIND_SPOT_RADIUS + 1) if dy or dx]
)


def _blind_spots(patch: np.ndarray, mask_fraction: float, rng: np.random.Generator):
    """Noise2Void's masking of a noisy patch with a margin of ``BLIND_SPOT_RADIUS`` pixels.

    One pixel of each ``spacing x spacing`` cell of the patch's interior becomes a blind
    spot: its value is replaced by that of a random other pixel of its 5x5 neighbourhood,
    so the network cannot copy it and only the noise-free part, which neighbours share,
    is predictable. Blind spots sit at least ``BLIND_SPOT_RADIUS + 1`` pixels apart, so
    no blind spot's own value can reach the input as another's replacement.

    Parameters
    ----------
    patch : ndarray, shape (P + 2r, Q + 2r)
        The noisy patch with its margin (replacements near the edge come from it).
    mask_fraction : float
        Share of blind spots, at most ``1 / (r + 2)**2``: one per cell of
        ``round(mask_fraction**-0.5)`` pixels a side (the default 0.0625: 4x4 cells; 0.02: 7x7 cells, 2.04%).
    rng : numpy.random.Generator
        Draws the blind spots and their replacements.

    Returns
    -------
    masked : ndarray, shape (P, Q)
        The interior with the blind spots replaced: the network's input.
    noisy : ndarray, shape (P, Q)
        The interior as it is: the target at the blind spots.
    mask : ndarray of bool, shape (P, Q)
        The blind spots.
    """
    margin = BLIND_SPOT_RADIUS
    noisy = patch[margin:-margin, margin:-margin]
    height, width = noisy.shape
    # Capped at the patch: however small the fraction, every patch has a blind spot to score.
    spacing = min(max(margin + 2, round(mask_fraction**-0.5)), height, width)
    rows, columns = -(-height // spacing), -(-width // spacing)
    # Within its cell a blind spot keeps `margin` pixels clear of the next cell's.
    ys = (np.arange(rows) * spacing)[:, None] + rng.integers(spacing - margin, size=(rows, columns))
    xs = (np.arange(columns) * spacing)[None, :] + rng.integers(spacing - margin, size=(rows, columns))
    inside = (ys < height) & (xs < width)
    ys, xs = ys[inside], xs[inside]
    dy, dx = _NEIGHBOURS[rng.integers(len(_NEIGHBOURS), size=len(ys))].T
    masked = noisy.copy()
    masked[ys, xs] = patch[ys + margin + dy, xs + margin + dx]
    mask = np.zeros(noisy.shape, bool)
    mask[ys, xs] = True
    return masked, noisy, mask


def _blind_spot_batch(source: _PatchSource, config: TrainingConfig, step: int, count: int) -> _Batch:
    """A batch of masked noisy patches, scored at their blind spots, at alpha 0 (see :func:`_blind_spots`).

    ``source`` crops patches with the blind spots' margin on each side.
    """
    rng = np.random.default_rng([config.seed, step])
    inputs, targets, masks, pixel_rows = [], [], [], []
    for index in rng.integers(len(source.images), size=count):
        masked, noisy, mask = _blind_spots(_augment(source.crop(rng, index)[0], rng), config.mask_fraction, rng)
        inputs.append(masked[None])
        targets.append(noisy[None])
        masks.append(mask[None])
        pixel_rows.append(source.pixels(rng, index, CONTEXT_SAMPLES))
    low, target, mask = (torch.from_numpy(np.ascontiguousarray(np.stack(a))) for a in (inputs, targets, masks))
    # The frames as they are: alpha 0 ("denoise only") is their true strength.
    return _Batch(low, target, None, torch.zeros(count), image_context(torch.from_numpy(np.stack(pixel_rows))), mask)


def calibrated_guide_noise(frames, denoise, *, mask_fraction=MAX_MASK_FRACTION, seed=0, device="cpu") -> float:
    """The refinement's first-pass noise factor that restores ``frames`` best, chosen with no reference.

    Noise2Self's calibration (Batson and Royer, 2019) of :func:`~napari_lowlight.noise.wiener_refine`:
    each frame's blind spots (:func:`_blind_spots`) take a neighbour's value and the masked
    frame is denoised into the guide. The filter's input is the frame with each blind spot
    set to the guide's value there plus fresh noise of the frame's noise model (a neighbour's
    value would also bring the step between the two pixels, which favours heavier filtering).
    The frame is refined with each factor of :data:`GUIDE_NOISE_CHOICES` and the refined
    blind spots are scored against their own noisy values. Neither the network nor the
    filter saw those values, so the noise adds the same expected error to every factor, and
    the lowest score is the lowest error against the clean frame. A network fine-tuned on
    frames of a kind is a closer guide to them than the shipped weights, which the default
    factor was chosen for.

    Parameters
    ----------
    frames : sequence of ndarray, shape (H, W)
        Noisy grey frames, intensities in [0, 1]; the first :data:`CALIBRATION_FRAMES`,
        cropped to their central :data:`CALIBRATION_SIDE` square, are scored.
    denoise : callable
        Frame -> its denoised estimate, same shape: the refinement's guide.
    mask_fraction : float
        Share of blind spots, as for :func:`_blind_spots`.
    seed : int
        Seed of the blind spots.
    device : str or torch.device
        Where the refinement runs.

    Returns
    -------
    float
        One of :data:`GUIDE_NOISE_CHOICES`.
    """
    rng = np.random.default_rng([seed, VALIDATION_STEP])
    errors = np.zeros(len(GUIDE_NOISE_CHOICES))
    for frame in list(frames)[:CALIBRATION_FRAMES]:
        frame = np.asarray(frame, dtype=np.float32)
        top, left = (max(0, (side - CALIBRATION_SIDE) // 2) for side in frame.shape)
        frame = frame[top : top + CALIBRATION_SIDE, left : left + CALIBRATION_SIDE]
        masked, noisy, mask = _blind_spots(np.pad(frame, BLIND_SPOT_RADIUS, mode="reflect"), mask_fraction, rng)
        guide, noise = denoise(masked), fit_noise([frame])
        filled = noisy.copy()
        spots = guide[mask]
        filled[mask] = spots + rng.standard_normal(spots.shape) * np.sqrt(noise.variance(spots))
        for index, factor in enumerate(GUIDE_NOISE_CHOICES):
            refined = wiener_refine(filled, guide, noise, guide_noise=factor, device=device)
            errors[index] += np.sum((refined[mask] - noisy[mask]) ** 2, dtype=np.float64)
    return GUIDE_NOISE_CHOICES[int(np.argmin(errors))]


#: Two pixels of a 2x2 cell side by side or one above the other, as channel indices of
#: ``F.pixel_unshuffle(images, 2)``: (0, 1) and (2, 3) are rows, (0, 2) and (1, 3) columns.
_ADJACENT_IN_CELL = np.array([(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0), (1, 3), (3, 1)])


class _NeighbourBatch(NamedTuple):
    """Noisy patches ``noisy`` (B, 1, 2P, 2P) and, per 2x2 cell, the two adjacent pixels
    ``first`` and ``second`` (B, 1, P, P) that make its sub-sampled pair (see :func:`_neighbour_loss`)."""

    noisy: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    context: torch.Tensor

    def to(self, device) -> _NeighbourBatch:
        return _NeighbourBatch(*(t.to(device) for t in self))


def _neighbour_batch(source: _PatchSource, config: TrainingConfig, step: int, count: int) -> _NeighbourBatch:
    """A batch of noisy patches (of ``source``'s even size) with a random neighbour pair per 2x2 cell."""
    # Apart from the blind spots' stream: a step draws the same blind spots with or without neighbours.
    rng = np.random.default_rng([config.seed, step, 1])
    patches, pixel_rows = [], []
    for index in rng.integers(len(source.images), size=count):
        patches.append(_augment(source.crop(rng, index)[0], rng)[None])
        pixel_rows.append(source.pixels(rng, index, CONTEXT_SAMPLES))
    half = source.patch_size // 2
    pairs = torch.from_numpy(_ADJACENT_IN_CELL[rng.integers(len(_ADJACENT_IN_CELL), size=(count, 1, half, half))])
    noisy = torch.from_numpy(np.ascontiguousarray(np.stack(patches)))
    return _NeighbourBatch(noisy, pairs[..., 0], pairs[..., 1], image_context(torch.from_numpy(np.stack(pixel_rows))))


def _cell_pixels(images: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """One pixel of each 2x2 cell of ``images`` (B, 1, 2P, 2P): the ``chosen`` (B, 1, P, P) one."""
    return torch.gather(F.pixel_unshuffle(images, 2), 1, chosen)


def _neighbour_loss(denoise, batch: _NeighbourBatch, regularisation: float) -> torch.Tensor:
    """Neighbor2Neighbor's loss (Huang et al., CVPR 2021) on a batch of noisy patches.

    Each 2x2 cell gives two adjacent pixels: their images at half resolution, ``first``
    and ``second``, show the same scene under independent noise, so the network that
    denoises ``first`` is scored against ``second``, as in Noise2Noise. The pixels are
    not at the same place, though; the regulariser asks the gap between the output and
    ``second`` to be the gap the network makes between the same two sub-images of its
    own full-resolution output (no gradient through it), which would be 0 for a perfect
    denoiser and the identity alike.

    Parameters
    ----------
    denoise : callable
        ``denoise(images, context)`` -> restored images of the same shape.
    batch : _NeighbourBatch
        The noisy patches and their pairs.
    regularisation : float
        Weight of the regulariser.
    """
    with torch.no_grad():
        whole = denoise(batch.noisy, batch.context).float()
    first = _cell_pixels(batch.noisy, batch.first)
    second = _cell_pixels(batch.noisy, batch.second)
    restored = denoise(first, batch.context).float()
    gap = _cell_pixels(whole, batch.first) - _cell_pixels(whole, batch.second)
    return F.mse_loss(restored, second) + regularisation * F.mse_loss(restored - second, gap)


class WeightAverage:
    """An exponential moving average of a model's weights and BatchNorm statistics.

    The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so a
    short fine-tuning run averages its own last steps rather than its starting point.
    ``decay=0`` keeps the latest weights.

    Parameters
    ----------
    model : nn.Module
        The model being trained; the average starts as a copy of it.
    decay : float in [0, 1)
        Weight of the old average at each update, once ramped up.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, average in self.model.state_dict().items():
            if average.is_floating_point():
                average.lerp_(current[name], 1 - decay)
            else:  # BatchNorm's step counter
                average.copy_(current[name])
        self.updates += 1


def _psnr(restored: torch.Tensor, clean: torch.Tensor) -> float:
    mse = F.mse_loss(restored.clamp(0, 1), clean).item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


#: Checkpoints store the averaged weights as the model (so the file restores like the
#: weights a stop would hand back) and the trained ones, to resume from, under this prefix.
_TRAINED_PREFIX = "trained."


def _checkpoint_tensors(optimizer: torch.optim.Optimizer, step: int, model, average: WeightAverage) -> dict:
    """Adam's moments, the step, the trained weights and the average's update count as flat tensors."""
    tensors = {
        "step": torch.tensor([step], dtype=torch.int64),
        "average_updates": torch.tensor([average.updates], dtype=torch.int64),
    }
    tensors |= {_TRAINED_PREFIX + name: value for name, value in model.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value)
    return tensors


def _restore_optimizer(optimizer: torch.optim.Optimizer, extra: dict) -> int:
    state = optimizer.state_dict()
    for name, tensor in extra.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            value = tensor if tensor.ndim else tensor.reshape(())
            state["state"].setdefault(int(index), {})[key] = value
    optimizer.load_state_dict(state)
    return int(extra["step"][0])


def train(
    images=(),
    *,
    dim_images=(),
    pairs=None,
    noisy=None,
    model=None,
    steps,
    batch_size=32,
    patch_size=48,
    lr=SCRATCH_LR,
    alpha_range=(0.5, 2.0),
    gamma_range=(0.5, 2.0),
    noise="mixed",
    noise_sigma_range=(0.0, 0.03),
    seed=0,
    device="auto",
    channel_axis=None,
    validate_every=50,
    checkpoint=None,
    checkpoint_every=500,
    freeze_batchnorm=None,
    denoise_fraction=None,
    strength_fraction=None,
    data_range=None,
    preview=None,
    **options,
):
    """Train or fine-tune the network; a generator of :class:`TrainingProgress` events.

    Parameters
    ----------
    images : sequence of array_like
        Clean images (2-D grey, colour with ``channel_axis``, or N-D stacks whose
        planes are used). Low-light versions are synthesised on the fly.
    dim_images : sequence of array_like, optional
        Clean images that are dim by nature (micrographs, sky frames, such as
        :func:`napari_lowlight.scenes.generated_scenes`), trained beside ``images``
        but left undarkened in their own share of samples, ``dim_denoise_fraction``
        (a further option; default: ``denoise_fraction``). A frame that looks like
        them then reads as undarkened to ``alpha="auto"`` more often.
    pairs : sequence of (low, high) array_like, optional
        Real aligned pairs instead of ``images``: the network learns low -> high at
        alpha = 1 (Estimate-Net is then supervised only through the output).
    noisy : sequence of array_like, optional
        Noisy frames with no clean version, instead of ``images`` (self-supervised, as
        Noise2Void): the network learns to denoise them as they are, at alpha 0. A few
        pixels of each patch (``mask_fraction``, a further option: 6.25%) become blind
        spots, replaced by a neighbour's value, and only they are scored against their
        own noisy value: noise that is independent from pixel to pixel cannot be
        predicted from the neighbours, the signal can. With ``neighbour_batch_size``
        (a further option, default 0), as many further patches per step are split into
        two half-resolution images of adjacent pixels, and the network denoising one
        is scored against the other (Neighbor2Neighbor, :func:`_neighbour_loss`). The
        alpha estimator learns that the frames need no brightening (alpha 0);
        Estimate-Net is not trained (alpha 0 does not use its difference map). ``SELF_SUPERVISED_DEFAULTS`` holds settings
        for fine-tuning the shipped weights on a few dozen frames.
    model : LowLightNet, optional
        Weights to fine-tune (trained in place, and left holding the averaged weights
        when training ends or is stopped); a new default-size model when None. Unused
        when training resumes from ``checkpoint``: the weights then come from the file.
    steps : int
        Number of optimisation steps.
    batch_size, patch_size : int
        Patches per step and their side in pixels (paper: 32 and 48).
    lr : float
        Adam's learning rate, divided by 10 at 60% and 85% of ``steps``. For
        fine-tuning, ``FINE_TUNE_LR`` (1e-4) keeps the start's quality.
    alpha_range, gamma_range : (float, float)
        Uniform range of alpha; log-uniform range of gamma.
    noise : {"mixed", "gaussian", "poisson-gaussian", None}
        Sensor noise of the synthesised images: Gaussian with sigma uniform in
        ``noise_sigma_range``, Poisson-Gaussian (shot noise with a log-uniform photon
        count, plus that read noise), or half of each ("mixed"). Half the samples are
        also quantised to 8 or 16 bits.
    seed : int
        Seeds everything: the same seed gives the same weights on the CPU.
    device : str
        ``"auto"`` picks CUDA (with bfloat16 autocast from compute capability 8 on), then MPS, then the CPU.
    channel_axis : int, None or a sequence of them
        Axis of channels (RGB(A) for 3 or 4, grey planes for other counts), for all
        images or one per image (of ``images`` followed by ``dim_images``).
    validate_every : int
        Steps between validation PSNRs of the averaged weights on a fixed, held-back
        batch (0: never).
    checkpoint : str or Path, optional
        Safetensors file written every ``checkpoint_every`` steps and at the end. Its
        model is the averaged weights (restore with it like any weights file); the
        trained weights and optimizer state ride along. If it exists when training
        starts, training resumes from it; its folder is made if missing.
    freeze_batchnorm : bool or None, optional
        Normalise with the BatchNorm running statistics of the starting weights and
        leave them unchanged, instead of normalising by each batch and learning new
        statistics. None (default): as the run being resumed from ``checkpoint`` did;
        otherwise freeze when ``model`` comes with learned statistics (trained weights
        being fine-tuned: theirs come from far more varied data than a few frames of one
        kind), not for a new model.
    denoise_fraction : float in [0, 1) or None, optional
        Share of the samples left undarkened, with only their noise, at alpha 0: alpha 0
        then means "denoise only", and ``alpha="auto"`` can answer 0 for a frame that
        does not look darkened. A new model's alpha estimator then ranges over [0, 2]
        (a ``model`` passed in keeps its own range). None (default): the share of the
        run being resumed from ``checkpoint``, else of the run that trained ``model``
        (fine-tuning keeps alpha 0 trained), else 0 (the paper's recipe).
    strength_fraction : float in [0, 1) or None, optional
        Share of the darkened samples that Enhance-Net restores at a strength ``s`` uniform
        in ``strength_range`` (a further option, default [0, 3], the slider's range) instead
        of their alpha, to ``clip(I + (s - alpha) * D)``: the output then follows the alpha a
        user sets, brighter as it rises. None (default): as for ``denoise_fraction`` (the
        shipped weights were trained with strength samples, and their fine-tunes keep them),
        else 0 (the paper's recipe).
    data_range : float, optional
        The value of full intensity in the images of ``images``, ``pairs`` or ``noisy``
        (not ``dim_images``), e.g. 4095 for a 12-bit camera's frames stored as uint16 (as
        in :func:`~napari_lowlight.restore`). Default: the dtype's range for integers,
        [0, 1] for floats.
    preview : array_like, optional
        An image (a 2-D crop of a frame held out of the data, say) that the averaged
        weights restore whenever they are validated and at the last step, into
        ``TrainingProgress.preview``: at alpha 0 for ``noisy`` frames, which have no
        reference to score against, at 1 for ``pairs``, at "auto" for ``images``.
    **options
        Further :class:`TrainingConfig` fields (e.g. ``difference_weight``;
        ``average_decay``: the decay of the weight average, 0 to hand back the last
        step's weights; ``alpha_batch_size``: further whole-image draws per step for
        the alpha estimator alone, cheap beside the patches; ``exposure_fraction``: the
        share of darkened samples that lose exposure instead, ``kept * I`` with
        saturated pixels kept, as underexposed photographs show, at alpha 1 and with
        ``kept`` log-uniform in ``exposure_kept_range``; ``black_level_fraction``: the
        share of undarkened samples recorded over a black level uniform in
        ``black_level_range``, ``b + (1 - b) * I``, target included; ``shadow_crush_fraction``:
        the share of samples whose clean image has its shadows crushed to true black by a
        threshold ``t`` uniform in ``shadow_crush_range``, ``max(I - t, 0) / (1 - t)``, target
        included; ``noise_free_fraction``: the share of
        samples recorded without sensor noise, quantised only, so that the network learns to
        leave a clean image's texture alone).

    Yields
    ------
    TrainingProgress
        After every step; ``event.model`` is the model being trained. Stop by no longer
        iterating and calling ``close()``: the model then holds the averaged weights.

    Returns
    -------
    LowLightNet
        The trained model (``StopIteration.value``) with the averaged weights, in eval mode.
    """
    data_range = check_data_range(data_range)
    if isinstance(noisy, np.ndarray):
        raise ValueError("noisy is one array; pass a list of frames ([stack]: every plane of a stack is a frame)")
    modes = [name for name, given in (("images", len(images)), ("pairs", pairs is not None), ("noisy", noisy is not None)) if given]
    if len(modes) > 1:
        raise ValueError(f"give one kind of training data, not {' and '.join(modes)}")
    resumed = _resumed_training(checkpoint)
    self_supervised = noisy is not None
    if resumed is not None:
        for name, now in (("self_supervised", self_supervised), ("paired", pairs is not None)):
            if bool(resumed.get(name, False)) != now:
                raise ValueError(
                    f"checkpoint {str(checkpoint)!r} holds a run with {name}={not now}; resume it with the same kind of data"
                )
    config = TrainingConfig(
        steps=steps,
        batch_size=batch_size,
        patch_size=patch_size,
        lr=lr,
        alpha_range=tuple(alpha_range),
        gamma_range=tuple(gamma_range),
        noise=noise,
        noise_sigma_range=tuple(noise_sigma_range),
        seed=seed,
        paired=pairs is not None,
        self_supervised=self_supervised,
        freeze_batchnorm=_default_freeze(model, resumed) if freeze_batchnorm is None else freeze_batchnorm,
        denoise_fraction=(
            _inherited_share("denoise_fraction", model, resumed, pairs) if denoise_fraction is None else denoise_fraction
        ),
        strength_fraction=(
            _inherited_share("strength_fraction", model, resumed, pairs) if strength_fraction is None else strength_fraction
        ),
        **options,
    )
    if config.neighbour_batch_size and not self_supervised:
        raise ValueError("neighbour_batch_size scores pairs of pixels of noisy frames; give the frames as noisy=...")
    if pairs is not None or self_supervised:
        # Options of synthesis: real pairs and noisy frames are used as they are.
        kind = "real pairs" if pairs is not None else "noisy frames"
        if denoise_fraction:
            raise ValueError(f"denoise_fraction leaves synthesised samples undarkened; {kind} are not synthesised")
        if len(dim_images):
            raise ValueError(f"dim_images are clean images to synthesise from; they cannot be combined with {kind}")
        if config.alpha_batch_size:
            raise ValueError(f"alpha_batch_size draws synthesised contexts for the alpha estimator; {kind} have none")
    if pairs is not None:
        pairs = list(pairs)
        for position, (low, high) in enumerate(pairs):
            if np.shape(low) != np.shape(high):
                raise ValueError(f"pairs[{position}]: low shape {np.shape(low)} differs from high shape {np.shape(high)}")
        low_source = _PatchSource([low for low, _ in pairs], patch_size, channel_axis, "pairs (low)", data_range=data_range)
        high_source = _PatchSource([high for _, high in pairs], patch_size, channel_axis, "pairs (high)", data_range=data_range)

        def batch(step, count):
            return _paired_batch(low_source, high_source, config, step, count)

        contexts = neighbours = None
    elif self_supervised:
        if model is not None and model.config.alpha_min > 0:
            warn_user(
                f"the model's automatic alpha cannot go below {model.config.alpha_min:g}: after this fine-tune"
                ' "auto" still brightens colour frames (grey ones it denoises); restore them at alpha 0'
            )
        # Patches come with the margin their blind spots' replacements are drawn from.
        noisy_source = _PatchSource(
            list(noisy), patch_size + 2 * BLIND_SPOT_RADIUS, channel_axis, "noisy", data_range=data_range
        )
        # A frame padded to the patch repeats its edge pixels: a blind spot could meet a copy of itself.
        side = noisy_source.smallest_side
        if side < noisy_source.patch_size:
            raise ValueError(
                f"noisy frames of {side} pixels a side are smaller than a patch with its blind spots' margin"
                f" ({noisy_source.patch_size} pixels); use patch_size <= {side - 2 * BLIND_SPOT_RADIUS}"
            )

        def batch(step, count):
            return _blind_spot_batch(noisy_source, config, step, count)

        # Twice a blind-spot patch a side, halved by the sub-sampling; even, and within every frame.
        neighbour_source = noisy_source.with_patch_size(min(2 * patch_size, side - side % 2))

        def neighbours(step, count):
            return _neighbour_batch(neighbour_source, config, step, count)

        contexts = None
    else:
        images, dim_images = list(images), list(dim_images)
        dim = [False] * len(images) + [True] * len(dim_images)
        # dim_images (generated scenes, say) keep their own range.
        ranges = [data_range] * len(images) + [None] * len(dim_images)
        source = _PatchSource(images + dim_images, patch_size, channel_axis, "images", dim=dim, data_range=ranges)

        def batch(step, count):
            return _synthetic_batch(source, config, step, count)

        def contexts(step, count):
            return _context_batch(source, config, step, count)

        neighbours = None

    device = resolve_device(device)
    if preview is not None:
        # Each mode's own strength: noisy frames as they are, pairs at the 1 they define.
        alpha = 0.0 if self_supervised else 1.0 if pairs is not None else "auto"
        preview = _Preview(preview, alpha, channel_axis, data_range, device)
    loop = _train_loop(config, batch, contexts, neighbours, model, device, validate_every, checkpoint, checkpoint_every, preview)
    if not self_supervised:
        return loop
    # Only the frames restore refines: grey planes (a colour image's channels stay together here).
    grey = [image[0] for image in noisy_source.images if len(image) == 1 and _refines(True, 0.0, None, image[0].shape)]
    return _calibrated(loop, grey, config, device)


def _calibrated(loop, frames, config: TrainingConfig, device):
    """``loop``'s events and model, its refinement's noise factor calibrated on ``frames`` when it ends.

    The factor goes into the model's training metadata (:data:`~napari_lowlight.inference.GUIDE_NOISE_KEY`),
    which ``restore`` reads and a saved weights file keeps. A run stopped early keeps the factor it had.
    """
    model = yield from loop

    def denoise(frame):
        return restore(frame, 0.0, model=model, refine=False, device=device, data_range=1.0)

    if frames:
        model.training_config[GUIDE_NOISE_KEY] = calibrated_guide_noise(
            frames, denoise, mask_fraction=config.mask_fraction, seed=config.seed, device=device
        )
    return model


@dataclass
class _Preview:
    """An image to restore with the weights as they train (see ``train(preview=...)``)."""

    image: np.ndarray
    alpha: float | str
    channel_axis: object
    data_range: float | None
    device: torch.device

    def __post_init__(self):
        # A copy (the caller's array may change while training runs), checked now, not at the first validation.
        self.image = np.array(check_image(self.image, name="preview"))
        if isinstance(self.channel_axis, (list, tuple)):  # one per training image: the preview takes theirs if shared
            self.channel_axis = self.channel_axis[0] if len(set(self.channel_axis)) == 1 else None

    def restored(self, model) -> np.ndarray:
        return restore(
            self.image, self.alpha, model=model, channel_axis=self.channel_axis, device=self.device, data_range=self.data_range
        )


def _resumed_training(checkpoint) -> dict | None:
    """The training configuration recorded by the run ``checkpoint`` resumes, if it exists."""
    if checkpoint is not None and Path(checkpoint).exists():
        return read_metadata(checkpoint)["training"]
    return None


def _default_freeze(model, resumed: dict | None) -> bool:
    """``freeze_batchnorm`` when not given: the resumed run's choice (``resumed``, from
    :func:`_resumed_training`), else whether ``model`` holds BatchNorm statistics learned
    from data (a new model's are untouched)."""
    if resumed is not None:
        # Runs written before the option existed learned their statistics.
        return bool(resumed.get("freeze_batchnorm", False))
    return model is not None and any(int(norm.num_batches_tracked) > 0 for norm in _batchnorms(model))


def _inherited_share(name: str, model, resumed: dict | None, pairs) -> float:
    """The share ``name`` (``denoise_fraction``, ``strength_fraction``) when not given: 0 for
    real pairs (nothing is synthesised), the resumed run's (``resumed``), else that of the run
    that trained ``model`` (a fine-tune keeps what the weights' alpha means), else 0."""
    if pairs is not None:
        return 0.0
    recorded = resumed if resumed is not None else getattr(model, "training_config", None) or {}
    return recorded.get(name, 0.0)  # TrainingConfig checks it


def _batchnorms(model) -> list:
    return [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]


def _train_loop(
    config, make_batch, make_contexts, make_neighbours, model, device, validate_every, checkpoint, checkpoint_every, preview
):
    if model is None:
        # The alpha estimator's range must hold the alpha 0 of undarkened samples (and noisy frames).
        denoising = config.denoise_fraction or config.self_supervised
        model = new_model(seed=config.seed, alpha_min=0.0 if denoising else ALPHA_RANGE[0])
    resuming = checkpoint is not None and Path(checkpoint).exists()
    if checkpoint is not None:
        # Now, not at the first checkpoint minutes into the run: a folder that cannot be made fails at once.
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
    extra, trained = {}, {}
    if resuming:
        model, _, extra = load_weights(checkpoint)
        trained = {name[len(_TRAINED_PREFIX) :]: t for name, t in extra.items() if name.startswith(_TRAINED_PREFIX)}
    # A checkpoint's model is the average (an older version's: its trained weights).
    average = WeightAverage(model, config.average_decay)
    if trained:
        average.updates = int(extra["average_updates"][0])
        model.load_state_dict(trained)
    # Self-supervised steps hold alpha at 0, so Enhance-Net's weights from its alpha input get no
    # gradient. Adam's L2 decay, then their only gradient, is normalised into full-size steps
    # that erase them (and the brightening they do at alpha > 0), and then into subnormal
    # floats that slow a CPU several-fold. Decoupled decay leaves a weight without gradient as
    # it is.
    optimizer_class = torch.optim.AdamW if config.self_supervised else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = _restore_optimizer(optimizer, extra) if resuming else 0
    if start and not trained:
        warn_user(
            f"checkpoint {str(checkpoint)!r} holds no weight average (an older version wrote it); "
            f"the average restarts from its weights at step {start}"
        )
    # Channels-last convolutions train about twice as fast on the CPU.
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    average.model.to(device, memory_format=memory_format)
    _move_optimizer_state(optimizer, device)
    milestones = [int(fraction * config.steps) for fraction in config.lr_milestones]
    # Validation patches come from a step index no training step uses; noisy frames have no reference to score.
    validation = None if config.self_supervised else make_batch(VALIDATION_STEP, min(64, 4 * config.batch_size)).to(device)
    autocast = mixed_precision(device)
    torch.manual_seed(config.seed)

    def save(step):
        training = asdict(config) | {"steps_done": step}
        extra_tensors = _checkpoint_tensors(optimizer, step, model, average)
        save_model(average.model, checkpoint, training=training, extra_tensors=extra_tensors)

    # model.train() below puts them back in training mode at every step.
    frozen_norms = _batchnorms(model) if config.freeze_batchnorm else []
    psnr = restored_preview = None

    def denoise(noisy, context):
        # Alpha 0 multiplies the difference map away: Estimate-Net's pass would change nothing
        # but the time a step takes. Left without gradients, Adam leaves it alone (zero
        # gradients would let weight decay alone move it by full-size steps).
        zero = torch.zeros(len(noisy), 1, 1, 1, device=noisy.device)
        return model.enhance(noisy, torch.zeros_like(noisy), zero, context)

    try:
        for step in range(start, config.steps):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.1 ** sum(step >= milestone for milestone in milestones)
            began = time.perf_counter()
            batch = make_batch(step, config.batch_size).to(device)
            low = batch.low.contiguous(memory_format=memory_format)
            target, difference, alpha, context, scored = batch.target, batch.difference, batch.alpha, batch.context, batch.mask
            estimator_alpha, estimator_context = alpha, context
            if config.alpha_batch_size:
                more_alpha, more_context = make_contexts(step, config.alpha_batch_size)
                estimator_alpha = torch.cat([alpha, more_alpha.to(device)])
                estimator_context = torch.cat([context, more_context.to(device)])
            model.train()
            for norm in frozen_norms:
                norm.eval()
            with autocast:
                if config.self_supervised:
                    restored = denoise(low, context)
                else:
                    restored, estimated = model(low, batch.network_alpha, context)
                restored = restored.float()
                if scored is None:
                    loss = F.mse_loss(restored, target)
                else:  # self-supervised: the blind spots only
                    loss = F.mse_loss(restored[scored], target[scored])
                if config.self_supervised and config.neighbour_batch_size:
                    neighbours = make_neighbours(step, config.neighbour_batch_size).to(device)
                    neighbours = neighbours._replace(noisy=neighbours.noisy.contiguous(memory_format=memory_format))
                    loss = loss + _neighbour_loss(denoise, neighbours, config.neighbour_regularisation)
                if difference is not None:
                    # An undarkened sample (alpha 0) holds no trace of D: Estimate-Net, which
                    # never sees alpha, would learn to expect none in every image.
                    darkened = alpha > 0
                    if darkened.any():
                        estimate_loss = F.mse_loss(estimated[darkened].float(), difference[darkened])
                        loss = loss + config.difference_weight * estimate_loss
                # Real pairs' alpha of 1 is a convention, not a measured strength: it is not taught.
                if difference is not None or config.self_supervised:
                    alpha_loss = F.mse_loss(model.alpha_estimator(estimator_context).float(), estimator_alpha)
                    loss = loss + config.alpha_weight * alpha_loss
            if not torch.isfinite(loss):
                # Non-finite weights would restore every image to black or NaN: stop, name the cause.
                raise ValueError(
                    f"training diverged at step {step + 1} (loss {float(loss.detach())}); lower the learning rate (lr={config.lr:g})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average.update(model)
            elapsed = time.perf_counter() - began
            done = step + 1
            validating = validate_every and (done % validate_every == 0 or done == config.steps)
            if validation is not None and validating:
                with torch.inference_mode():
                    validated = average.model(validation.low, validation.network_alpha, validation.context)[0]
                    psnr = _psnr(validated.float(), validation.target)
            # The preview also at the end, so a run without validations still shows its result.
            if preview is not None and (validating or done == config.steps):
                restored_preview = preview.restored(average.model)
            if checkpoint is not None and (done % checkpoint_every == 0 or done == config.steps):
                save(done)
            yield TrainingProgress(
                step=done,
                steps=config.steps,
                loss=float(loss.detach()),
                learning_rate=optimizer.param_groups[0]["lr"],
                images_per_second=config.batch_size / max(elapsed, 1e-9),
                validation_psnr=psnr,
                model=model,
                preview=restored_preview,
            )
    finally:
        # Also when the caller stops early (close()): hand back the averaged weights, in eval mode.
        model.load_state_dict(average.model.state_dict())
        model.eval()
    model.training_config = asdict(config)
    return model


def _move_optimizer_state(optimizer, device):
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)
