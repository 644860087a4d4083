"""The held-out test set of the quality benchmark: no download, nothing seen in training.

Training uses ``shared/data/train`` (BSD "Train400" grey crops, LIVE1 and Set14 colour
photographs). The test set is disjoint from it:

- scikit-image's bundled sample images, read straight from the files shipped inside the
  installed ``skimage/data`` folder (never through ``skimage.data``'s fetchers, so no
  network access can happen, and a missing file is an error rather than a download);
- procedurally generated scientific scenes (fluorescence-like cells and a point-source
  field), seeded, at 16 bits.

Storage follows BENCHMARK.md: grey scientific images as 16-bit, RGB photographs as 8-bit.
The clean image is quantised to that dtype, so its float version (dtype range -> [0, 1])
is exactly what a user's file holds.
"""

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import skimage
from scipy import ndimage
from skimage.color import rgb2gray
from skimage.transform import resize

__all__ = [
    "BenchImage",
    "load_test_set",
    "fit_to_side",
    "quantise",
    "read_bundled",
    "fluorescence_cells",
    "point_sources",
    "SKIMAGE_DATA",
]

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"

#: (name, file in skimage/data, kind). Grey scientific or grey photographs: 16-bit;
#: RGB photographs and micrographs: 8-bit. hubble_deep_field is an astronomy image,
#: used as grey (luminance) like most scientific cameras record.
_GREY_FILES = [
    ("camera", "camera.png"),
    ("moon", "moon.png"),
    ("coins", "coins.png"),
    ("cell", "cell.png"),
    ("hubble_grey", "hubble_deep_field.jpg"),
]
_RGB_FILES = [
    ("astronaut", "astronaut.png"),
    ("coffee", "coffee.png"),
    ("chelsea", "chelsea.png"),
    ("rocket", "rocket.jpg"),
    ("motorcycle", "motorcycle_left.png"),
    ("ihc", "ihc.png"),
    ("retina", "retina.jpg"),
]
#: The images used by ``quick=True``: one photograph and one generated scene per group.
_QUICK = {"camera", "fluo_cells", "astronaut", "coffee"}


@dataclass
class BenchImage:
    """One clean test image as a user would store it.

    Attributes
    ----------
    name : str
    stored : ndarray
        uint16 (H, W) for grey, uint8 (H, W, 3) for RGB.
    group : {"grey16", "rgb8"}
    """

    name: str
    stored: np.ndarray
    group: str

    @property
    def channel_axis(self):
        return -1 if self.stored.ndim == 3 else None

    @property
    def clean(self):
        """The float64 ground truth in [0, 1]."""
        return self.stored / float(np.iinfo(self.stored.dtype).max)


def quantise(image, dtype):
    """A float image in [0, 1] stored in an integer ``dtype``, rounded as a camera or an image writer would."""
    top = np.iinfo(dtype).max
    return np.round(np.clip(image, 0.0, 1.0) * top).astype(dtype)


def fit_to_side(image, max_side):
    """``image`` downscaled (anti-aliased) so that its longer side is at most ``max_side``; never upscaled."""
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    shape = tuple(max(1, round(n * scale)) for n in image.shape[:2]) + image.shape[2:]
    return resize(image, shape, order=3, anti_aliasing=True, mode="reflect")


def read_bundled(filename):
    """An image file shipped inside ``skimage/data``, as floats in [0, 1] (RGB without alpha)."""
    path = SKIMAGE_DATA / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not bundled with this scikit-image; the test set needs no download")
    image = iio.imread(path)
    if image.ndim == 3:
        image = image[..., :3]  # drop an alpha channel
    return image / float(np.iinfo(image.dtype).max)


def fluorescence_cells(shape=(256, 256), *, n_cells=14, seed=0):
    """A fluorescence-like micrograph: cells with bright nuclei and puncta on a dark background.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    n_cells : int
        Number of cells (they may overlap).
    seed : int
        Seed of the layout and intensities.

    Returns
    -------
    image : ndarray, float64 in [0, 1]
        Noise-free, blurred by a Gaussian point-spread function.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    scale = min(shape) / 256
    # A weak, smooth background (out-of-focus light, autofluorescence).
    glow = ((rows - shape[0] * 0.3) ** 2 + (cols - shape[1] * 0.7) ** 2) / (0.5 * shape[0] * shape[1])
    image = 0.015 + 0.02 * np.exp(-glow)
    for _ in range(n_cells):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        a, b = rng.uniform(14, 30, size=2) * scale
        theta = rng.uniform(0, np.pi)
        dy, dx = rows - cy, cols - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
        radius = np.hypot(u, v)
        # Cytoplasm with a gentle falloff towards the membrane, a brighter nucleus.
        image += np.where(radius < 1, rng.uniform(0.1, 0.35) * (1 - 0.4 * radius**2), 0.0)
        image += np.where(radius < 0.45, rng.uniform(0.25, 0.55), 0.0)
        for _ in range(rng.integers(3, 10)):
            r, phi = rng.uniform(0.5, 0.95), rng.uniform(0, 2 * np.pi)
            py = cy + r * (a * np.cos(phi) * np.sin(theta) + b * np.sin(phi) * np.cos(theta))
            px = cx + r * (a * np.cos(phi) * np.cos(theta) - b * np.sin(phi) * np.sin(theta))
            image += rng.uniform(0.2, 0.5) * np.exp(-((rows - py) ** 2 + (cols - px) ** 2) / (2 * (1.2 * scale) ** 2))
    image = ndimage.gaussian_filter(image, 1.5 * scale)
    return np.clip(image / max(image.max(), 1e-12) * 0.95, 0.0, 1.0)


def point_sources(shape=(256, 256), *, n_points=300, seed=1):
    """A point-source field (stars, single molecules): PSF-blurred points of log-uniform brightness.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    n_points : int
        Number of point sources; a few extended blobs are added as well.
    seed : int
        Seed of the positions and brightnesses.

    Returns
    -------
    image : ndarray, float64 in [0, 1]
    """
    rng = np.random.default_rng(seed)
    scale = min(shape) / 256
    impulses = np.zeros(shape)
    ys, xs = rng.integers(0, shape[0], n_points), rng.integers(0, shape[1], n_points)
    # Log-uniform brightness: most sources are faint, the ones users look for in the dark.
    np.add.at(impulses, (ys, xs), np.exp(rng.uniform(np.log(0.03), np.log(1.0), n_points)))
    sigma = 1.3 * scale
    # The PSF's peak is 1 / (2 pi sigma^2); rescale so a source's peak equals its brightness.
    image = ndimage.gaussian_filter(impulses, sigma) * 2 * np.pi * sigma**2
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for _ in range(4):
        cy, cx, width = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(6, 16) * scale
        image += rng.uniform(0.1, 0.4) * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * width**2))
    return np.clip(0.01 + image, 0.0, 1.0)


def load_test_set(*, max_side=320, quick=False):
    """The benchmark's clean test images, grey 16-bit and RGB 8-bit.

    Parameters
    ----------
    max_side : int, optional
        Bundled images are downscaled so that their longer side is at most this; the
        generated scenes are made at ``max_side`` x ``max_side``.
    quick : bool, optional
        Only four images (a smoke run).

    Returns
    -------
    list of BenchImage
    """
    images = []
    for name, filename in _GREY_FILES:
        if quick and name not in _QUICK:
            continue
        image = read_bundled(filename)
        if image.ndim == 3:
            image = rgb2gray(image)
        images.append(BenchImage(name, quantise(fit_to_side(image, max_side), np.uint16), "grey16"))
    generated = [("fluo_cells", fluorescence_cells), ("point_sources", point_sources)]
    for name, make in generated:
        if quick and name not in _QUICK:
            continue
        images.append(BenchImage(name, quantise(make((max_side, max_side)), np.uint16), "grey16"))
    for name, filename in _RGB_FILES:
        if quick and name not in _QUICK:
            continue
        images.append(BenchImage(name, quantise(fit_to_side(read_bundled(filename), max_side), np.uint8), "rgb8"))
    return images
