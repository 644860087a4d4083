"""napari readers and a writer for files napari itself mishandles or cannot open.

FITS, astronomy's format: the pixels and header go through :mod:`napari_lowlight.io`, as
the command line's do. A layer read from a FITS file keeps the header in its metadata
(``"fits_header"``), layers the plugin derives from it inherit that metadata, and a layer
written to FITS takes the header back. HEIC, phones' photographs, which napari's reader
(Pillow without pillow-heif's plugin) refuses: read turned upright, as for the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import FITS_SUFFIXES, HEIF_SUFFIXES, read_image, read_metadata, write_image

__all__ = ["FITS_HEADER_KEY", "fits_reader", "heic_reader", "write_fits"]

#: Key of ``layer.metadata`` that holds a FITS file's header (an ``astropy.io.fits.Header``).
FITS_HEADER_KEY = "fits_header"


def _paths(path) -> list:
    """napari's ``path`` argument, one path or a list of them, as a list."""
    return [path] if isinstance(path, (str, Path)) else list(path)


def _all_of(path, suffixes) -> bool:
    """Whether napari's ``path`` names files, every one with one of ``suffixes``."""
    paths = _paths(path)
    return bool(paths) and all(Path(p).suffix.lower() in suffixes for p in paths)


def fits_reader(path):
    """The reader of ``path`` (a FITS file, or a list of them), or None for any other path."""
    return _fits_layers if _all_of(path, FITS_SUFFIXES) else None


def heic_reader(path):
    """The reader of ``path`` (a HEIC file, or a list of them), or None for any other path."""
    return _heic_layers if _all_of(path, HEIF_SUFFIXES) else None


def _heic_layers(path) -> list:
    """One image layer per HEIC file, named after it: grey, or colour (RGB or RGBA) on its last axis."""
    layers = []
    for p in _paths(path):
        data = read_image(p)
        layers.append((data, {"name": Path(p).name, "rgb": data.ndim == 3}, "image"))
    return layers


def _fits_layers(path) -> list:
    """One image layer per FITS file: its first image HDU, the header in the layer's metadata."""
    layers = []
    for p in _paths(path):
        data = read_image(p)
        attributes = {"name": Path(p).name, "metadata": {FITS_HEADER_KEY: read_metadata(p)["fits"]["header"]}}
        layers.append((data, attributes | _rows_upward(data.shape), "image"))
    return layers


def _rows_upward(shape) -> dict:
    """A layer's scale and translate that show a FITS image as astronomy's viewers do.

    FITS's first row is the bottom of the picture (DS9, ``imshow(origin="lower")``), napari's
    the top. A scale of -1 along the rows turns the display over and the translate keeps the
    image where it was, so the data stay in the file's order: a layer written back, or
    restored and written, has its rows where the file had them. Derived layers inherit both.
    """
    if len(shape) < 2:
        return {}
    lead = len(shape) - 2
    return {"scale": (1.0,) * lead + (-1.0, 1.0), "translate": (0.0,) * lead + (float(shape[-2] - 1), 0.0)}


def write_fits(path: str, data, attributes: dict) -> list[str]:
    """Write one image layer's ``data`` to the FITS file ``path``, with the header its metadata holds."""
    data = np.asarray(data)
    header = (attributes.get("metadata") or {}).get(FITS_HEADER_KEY)
    metadata = None if header is None else {"fits": {"header": header}, "dtype": data.dtype}
    return [str(write_image(path, data, metadata=metadata))]
