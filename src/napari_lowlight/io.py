"""Image files in and out through tifffile and imageio; outputs are written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from ._atomic import replaced_atomically

__all__ = ["read_image", "write_image", "check_writable", "open_lazy", "write_lazy", "is_lazy_source", "TIFF_SUFFIXES", "IMAGE_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", *TIFF_SUFFIXES)
ZARR_SUFFIX = ".zarr"
#: TIFF files larger than this are streamed through dask instead of read whole.
LAZY_TIFF_BYTES = 256 * 2**20


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (*IMAGE_SUFFIXES, ZARR_SUFFIX):
        raise ValueError(f"{str(path)!r}: unsupported file type {suffix or '(none)'!r}; use one of {IMAGE_SUFFIXES} or .zarr")
    return suffix


def read_image(path) -> np.ndarray:
    """Read an image file: PNG/JPEG (8/16-bit) or TIFF (any dtype, N-D stacks).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, corrupt or not an image of a supported type.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    suffix = _suffix(path)
    if path.stat().st_size == 0:
        raise ValueError(f"input file {str(path)!r} is empty")
    if suffix == ".png" and _is_16_bit_colour_png(path):
        raise ValueError(
            f"input file {str(path)!r} is a 16-bit colour PNG, which the PNG reader (Pillow) cuts to "
            "8 bits; save it as TIFF to keep every bit"
        )
    try:
        image = tifffile.imread(path) if suffix in TIFF_SUFFIXES else iio.imread(path)
    except Exception as error:  # the readers raise many types for a corrupt file
        raise ValueError(f"input file {str(path)!r} is not a readable {suffix[1:].upper()} image ({error})") from None
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"input file {str(path)!r} is not a readable image: it holds no pixels")
    return image


def _is_16_bit_colour_png(path: Path) -> bool:
    """Whether the PNG header (IHDR: bit depth, then colour type) says 16-bit RGB, RGBA or grey + alpha."""
    with open(path, "rb") as file:
        header = file.read(26)
    return header[12:16] == b"IHDR" and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def check_writable(path, dtype, shape, *, lazy: bool = False) -> None:
    """Raise ValueError if an image of ``dtype`` and ``shape`` cannot be written to ``path``.

    PNG holds one grey, RGB or RGBA image of uint8, or uint16 grey (Pillow writes no
    16-bit colour); JPEG one uint8 grey or RGB image; TIFF any dtype and dimensions. A
    lazy (dask) result goes to a Zarr store or a TIFF file. Checking before computing
    means no work is lost to a format that cannot hold the result.
    """
    path = Path(path)
    suffix = _suffix(path)
    dtype = np.dtype(dtype)
    if lazy:
        if suffix not in (ZARR_SUFFIX, *TIFF_SUFFIXES):
            raise ValueError(f"{str(path)!r}: a lazy result is written to .zarr or .tif, not {suffix}")
        return
    if suffix not in (".png", ".jpg", ".jpeg"):
        return
    kind = "PNG" if suffix == ".png" else "JPEG"
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))):
        raise ValueError(f"{str(path)!r}: {kind} holds one 2-D grey, RGB or RGBA image, not shape {tuple(shape)}; use .tif")
    colour = len(shape) == 3
    if suffix == ".png":
        if dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{str(path)!r}: PNG holds uint8 or uint16 images, not {dtype}; use .tif")
        if dtype == np.uint16 and colour:
            raise ValueError(f"{str(path)!r}: 16-bit colour cannot be written as PNG (16-bit PNG is grey only here); use .tif")
        return
    if dtype != np.uint8:
        raise ValueError(f"{str(path)!r}: JPEG holds uint8 images, not {dtype}; use .png or .tif")
    if colour and shape[-1] == 4:
        raise ValueError(f"{str(path)!r}: JPEG holds no opacity channel; use .png or .tif")


def write_image(path, image: np.ndarray) -> Path:
    """Write ``image`` to ``path`` (format from the suffix), atomically.

    Formats and what they hold: :func:`check_writable`. The file appears complete or
    not at all.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ZARR_SUFFIX:
        raise ValueError(f"{str(path)!r}: a Zarr store is written by write_lazy (any array: dask.array.asarray(image))")
    image = np.asarray(image)
    check_writable(path, image.dtype, image.shape)
    with replaced_atomically(path, suffix) as temporary:
        if suffix in TIFF_SUFFIXES:
            tifffile.imwrite(temporary, image)
        else:
            iio.imwrite(temporary, image, extension=suffix)
    return path


def is_lazy_source(path) -> bool:
    """Whether ``path`` is read lazily: a Zarr store, or a TIFF too big to read whole."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ZARR_SUFFIX:
        return True
    return suffix in TIFF_SUFFIXES and path.is_file() and path.stat().st_size > LAZY_TIFF_BYTES


class _TiffView:
    """tifffile's Zarr view of a TIFF file, which pickles as the file's absolute path.

    The view holds an open file (and its lock), which cannot travel to another process;
    dask workers of a cluster reopen the file from the path instead, and refuse it if it
    is no longer the file that was opened (size, modification time, shape, dtype).
    """

    def __init__(self, path: str, identity: tuple | None = None):
        import zarr

        self.path = path
        self._array = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        self.shape, self.dtype, self.chunks = self._array.shape, self._array.dtype, self._array.chunks
        self.ndim = len(self.shape)
        status = os.stat(path)
        self.identity = (status.st_size, status.st_mtime_ns, tuple(self.shape), str(self.dtype))
        if identity is not None and tuple(identity) != self.identity:
            raise ValueError(f"input {path!r} changed after it was opened; restore it again")

    def __getitem__(self, key):
        return self._array[key]

    def __reduce__(self):
        return _TiffView, (self.path, self.identity)


def open_lazy(path):
    """Open a Zarr store or a TIFF file as a dask array, reading nothing yet.

    TIFF pages (or tiles) become chunks through tifffile's Zarr view, so a multi-gigabyte
    stack streams plane by plane, on any dask scheduler, a cluster's processes included.
    """
    import dask.array as da
    from dask.base import tokenize

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    try:
        if path.suffix.lower() == ZARR_SUFFIX:
            return da.from_zarr(str(path))
        view = _TiffView(str(path.resolve()))
        name = "tiff-" + tokenize(view.path, view.identity)
        return da.from_array(view, chunks=view.chunks, name=name, asarray=True)
    except Exception as error:  # zarr and tifffile raise many types for a broken store
        raise ValueError(f"input {str(path)!r} is not a readable Zarr array or TIFF file ({error})") from None


def write_lazy(path, array) -> Path:
    """Compute a dask array block by block into a Zarr store or a TIFF file, atomically.

    Zarr gets the array's chunks; a TIFF is written one 2-D plane at a time, so memory
    holds one plane's worth of blocks, never the whole result.
    """
    import shutil

    path = Path(path)
    suffix = _suffix(path)
    check_writable(path, array.dtype, array.shape, lazy=True)
    if suffix != ZARR_SUFFIX:
        planes = array.reshape(-1, *array.shape[-2:]) if array.ndim > 2 else array[None]
        with replaced_atomically(path, suffix) as temporary:
            tifffile.imwrite(temporary, (plane.compute() for plane in planes), shape=array.shape, dtype=array.dtype)
        return path
    # A Zarr store is a folder, which os.replace cannot put over another: the old store
    # steps aside first and goes only once the new one is in place.
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        array.to_zarr(str(work / "new"))
        if path.exists():
            os.replace(path, work / "old")
        os.replace(work / "new", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
