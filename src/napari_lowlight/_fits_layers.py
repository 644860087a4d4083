"""napari reader and writer for FITS files, astronomy's format, which napari itself mishandles.

The pixels and header go through :mod:`napari_lowlight.io`, as the command line's do: a
layer read from a FITS file keeps the header in its metadata (``"fits_header"``), layers the
plugin derives from it inherit that metadata, and a layer written to FITS takes the header back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import FITS_SUFFIXES, read_image, read_metadata, write_image

__all__ = ["FITS_HEADER_KEY", "fits_reader", "write_fits"]

#: Key of ``layer.metadata`` that holds a FITS file's header (an ``astropy.io.fits.Header``).
FITS_HEADER_KEY = "fits_header"


def _paths(path) -> list:
    """napari's ``path`` argument, one path or a list of them, as a list."""
    return [path] if isinstance(path, (str, Path)) else list(path)


def fits_reader(path):
    """The reader of ``path`` (a FITS file, or a list of them), or None for any other path."""
    paths = _paths(path)
    if not paths or any(Path(p).suffix.lower() not in FITS_SUFFIXES for p in paths):
        return None
    return _fits_layers


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
