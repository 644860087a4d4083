"""napari reader for FITS files, astronomy's format, which napari itself does not open.

The pixels and header come from :func:`napari_lowlight.io.read_image` and
:func:`~napari_lowlight.io.read_metadata`, as the command line reads them.
"""

from __future__ import annotations

from pathlib import Path

from .io import FITS_SUFFIXES, read_image, read_metadata

__all__ = ["fits_reader"]


def fits_reader(path):
    """The reader of ``path`` (a FITS file, or a list of them), or None for any other path."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(Path(p).suffix.lower() not in FITS_SUFFIXES for p in paths):
        return None
    return _fits_layers


def _fits_layers(path) -> list:
    """One image layer per FITS file: its first image HDU, the header in the layer's metadata."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [
        (read_image(p), {"name": Path(p).name, "metadata": {"fits_header": read_metadata(p)["fits"]["header"]}}, "image")
        for p in paths
    ]
