"""Image files in and out through tifffile, imageio, astropy and zarr; outputs are written atomically.

Beside the pixels, a file's metadata travels to the result's file of the same format
(:func:`read_metadata`): a TIFF's resolution, ImageJ and OME-XML metadata, a FITS
header, a Zarr array's attributes. Big TIFF and FITS files and Zarr stores are read
lazily, block by block, and TIFF and Zarr results written so.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

from ._atomic import replaced_atomically

__all__ = [
    "read_image",
    "read_metadata",
    "write_image",
    "check_writable",
    "open_lazy",
    "write_lazy",
    "is_lazy_source",
    "TIFF_SUFFIXES",
    "FITS_SUFFIXES",
    "IMAGE_SUFFIXES",
]

TIFF_SUFFIXES = (".tif", ".tiff")
#: Phones' photographs (HEIC through pillow-heif's Pillow plugin).
HEIF_SUFFIXES = (".heic", ".heif")
#: JPEG 2000: slide scanners', archives' and some cameras' format, read and written by imagecodecs
#: (Pillow reads its 16-bit colour cut to 8 bits).
JPEG2000_SUFFIXES = (".jp2", ".j2k")
#: Netpbm: 16-bit grey PGM comes from scientific cameras and their tools.
NETPBM_SUFFIXES = (".pgm", ".ppm", ".pnm")
#: Formats imageio reads through Pillow; a GIF's frames become a (T, Y, X, 3) stack.
PILLOW_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".bmp",
    ".webp",
    ".avif",
    *HEIF_SUFFIXES,
    *NETPBM_SUFFIXES,
    ".gif",
)
#: Astronomy's format: an image HDU (primary, extension or tile-compressed, as fpack's ``.fz``).
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz")
IMAGE_SUFFIXES = (*PILLOW_SUFFIXES, *JPEG2000_SUFFIXES, *TIFF_SUFFIXES, *FITS_SUFFIXES)
ZARR_SUFFIX = ".zarr"
#: TIFF and FITS images whose pixels take more than this are streamed through dask instead
#: of read whole (the pixels, not the file: a compressed file is much smaller).
LAZY_FILE_BYTES = 256 * 2**20
#: Rows of a plane in one block of a streamed FITS image (FITS stores rows one after another).
FITS_BLOCK_ROWS = 512
#: Side of the tiles a streamed TIFF is written in (TIFF asks for a multiple of 16).
TIFF_TILE = 256
#: TIFF codecs that give back every value; a result is written with its input's codec
#: when that is one of them and tifffile can encode it here, else with zlib (lossy inputs).
_LOSSLESS_TIFF_CODECS = (
    tifffile.COMPRESSION.NONE,
    tifffile.COMPRESSION.LZW,
    tifffile.COMPRESSION.ADOBE_DEFLATE,
    tifffile.COMPRESSION.DEFLATE,
    tifffile.COMPRESSION.PACKBITS,
    tifffile.COMPRESSION.LZMA,
    tifffile.COMPRESSION.ZSTD,
)
#: The EXIF tag of a photograph's orientation.
_EXIF_ORIENTATION = 0x0112
#: What each Pillow format holds of a photograph's metadata (:func:`_photo_metadata`).
_PHOTO_METADATA = {
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".jfif", ".png"), ("exif", "icc_profile", "dpi")),
    **dict.fromkeys((".webp", ".avif", *HEIF_SUFFIXES), ("exif", "icc_profile")),
}
#: The quality a result is written with in a lossy format (JPEG, AVIF, HEIC): high, since a
#: restored image should not lose to compression the detail the restoration gave back.
LOSSY_QUALITY = 95


@dataclass(frozen=True)
class _RasterFormat:
    """What one format written through Pillow (or imagecodecs) holds: one 2-D image, grey or colour."""

    name: str
    grey: tuple  # dtypes of a grey image; empty: no grey
    colour: tuple  # dtypes of an RGB image
    opacity: bool  # whether RGBA is held too
    lossy: bool  # whether it can only be written lossily (then at LOSSY_QUALITY)
    advice: str  # the formats to use instead


_UINT8, _UINT8_16 = (np.dtype(np.uint8),), (np.dtype(np.uint8), np.dtype(np.uint16))
_RASTER_FORMATS = {
    ".png": _RasterFormat("PNG", _UINT8_16, _UINT8_16, True, False, ".tif"),
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".jfif"), _RasterFormat("JPEG", _UINT8, _UINT8, False, True, ".png or .tif")),
    ".bmp": _RasterFormat("BMP", _UINT8, _UINT8, False, False, ".png or .tif"),
    ".webp": _RasterFormat("WebP", (), _UINT8, True, False, ".png or .tif"),
    ".avif": _RasterFormat("AVIF", _UINT8, _UINT8, True, True, ".png or .tif"),
    **dict.fromkeys(HEIF_SUFFIXES, _RasterFormat("HEIC", _UINT8, _UINT8, True, True, ".png or .tif")),
    **dict.fromkeys(JPEG2000_SUFFIXES, _RasterFormat("JPEG 2000", _UINT8_16, _UINT8_16, True, False, ".tif")),
    **dict.fromkeys(NETPBM_SUFFIXES, _RasterFormat("Netpbm", _UINT8_16, _UINT8, False, False, ".png or .tif")),
}
#: ImageJ metadata that tifffile computes from the written shape itself.
_IMAGEJ_SHAPE_KEYS = ("ImageJ", "images", "channels", "slices", "frames", "hyperstack")
#: ImageJ metadata that describes the values (display ranges, grey or colour mode): kept
#: only for a result of the input's dtype, not for a float difference map.
_IMAGEJ_VALUE_KEYS = ("min", "max", "Ranges", "mode")
#: FITS header keywords of the input's integer storage: kept only for a result of the
#: input's dtype (astropy writes the scaling keywords of the data it is given).
_FITS_STORAGE_KEYS = ("BSCALE", "BZERO", "BLANK")
#: FITS header keywords a result's HDU sets itself (its kind, checksums), or that the
#: restoration makes wrong (the data's range).
_FITS_DROPPED_KEYS = ("XTENSION", "PCOUNT", "GCOUNT", "EXTEND", "SIMPLE", "CHECKSUM", "DATASUM", "DATAMIN", "DATAMAX")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (*IMAGE_SUFFIXES, ZARR_SUFFIX):
        raise ValueError(f"{str(path)!r}: unsupported file type {suffix or '(none)'!r}; use one of {IMAGE_SUFFIXES} or .zarr")
    return suffix


def _reader_message(error: Exception) -> str:
    """The reader's own words in one line, without imageio's hints to install unrelated plugins."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("Could not find a backend"):
        return "no reader recognises its contents"
    return text


def read_image(path, *, lazy: bool = False):
    """Read an image file: TIFF (any dtype, N-D stacks, ImageJ and OME), FITS (its first
    image HDU), PNG, JPEG, BMP, WebP, AVIF, HEIC, JPEG 2000, Netpbm (PGM, PPM, PNM) or GIF (its
    frames as a (T, Y, X, 3) stack): 8-bit, and 16-bit where the format holds it.

    Parameters
    ----------
    path : str or Path
    lazy : bool
        Return a dask array that reads nothing yet (TIFF, FITS and Zarr only, see
        :func:`open_lazy`): for files bigger than memory.

    Returns
    -------
    ndarray, or dask.array.Array with ``lazy=True``
        A TIFF's first image series at full resolution; a FITS file's first HDU that holds
        an image, its scaling (BZERO, BSCALE) applied, in native byte order; a GIF of one
        frame is (Y, X, 3); a grey image with opacity (PNG's LA mode) is read as RGBA, (Y, X, 4).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, corrupt or not an image of a supported type.
    """
    path = Path(path)
    if lazy:
        if path.suffix.lower() not in (*TIFF_SUFFIXES, *FITS_SUFFIXES, ZARR_SUFFIX):
            raise ValueError(f"{str(path)!r}: only TIFF and FITS files and Zarr stores are read lazily, not {path.suffix or 'this file'}")
        return open_lazy(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    suffix = _suffix(path)
    if path.stat().st_size == 0:
        raise ValueError(f"input file {str(path)!r} is empty")
    try:
        if suffix in TIFF_SUFFIXES:
            image = tifffile.imread(path)
        elif suffix in FITS_SUFFIXES:
            image = _read_fits(path)
        elif suffix == ".png" and _is_16_bit_colour_png(path):
            image = imagecodecs.imread(path, codec="png")  # Pillow would cut it to 8 bits
        elif suffix in JPEG2000_SUFFIXES:
            image = imagecodecs.jpeg2k_decode(path.read_bytes())
        else:
            image = _read_with_pillow(path, suffix)
    except Exception as error:  # the readers raise many types for a corrupt file
        kind = suffix[1:].upper()
        raise ValueError(f"input file {str(path)!r} is not a readable {kind} image ({_reader_message(error)})") from None
    image = np.asarray(image)
    if suffix in NETPBM_SUFFIXES and image.dtype == np.int32:
        image = image.astype(np.uint16)  # Pillow reads 9- to 16-bit Netpbm as int32, scaled to 0..65535
    if suffix == ".gif" and image.shape[0] == 1:
        image = image[0]  # Pillow reads every GIF as a stack of frames
    if suffix in (*PILLOW_SUFFIXES, *JPEG2000_SUFFIXES) and image.ndim == 3 and image.shape[-1] == 2:
        # Grey plus opacity (a PNG's LA mode), which no layout here holds: as RGBA, three equal
        # colour channels and the opacity, it is restored as colour and the opacity kept. Read
        # as (Y, X, 2), its last axis would be taken for a width.
        image = np.concatenate([np.repeat(image[..., :1], 3, axis=-1), image[..., 1:]], axis=-1)
    if image.size == 0:
        raise ValueError(f"input file {str(path)!r} is not a readable image: it holds no pixels")
    return image


def _fits_image(hdus):
    """The first HDU of an open FITS file that holds an image (a primary HDU may hold none)."""
    from astropy.io import fits

    for hdu in hdus:
        # The shape comes from the header: asking for the data would read it all.
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and hdu.shape:
            return hdu
    raise ValueError("it holds no image HDU (only tables or empty HDUs)")


def _native(pixels) -> np.ndarray:
    """FITS pixels (big-endian, as FITS stores them) in native byte order, which torch and
    most of numpy's fast paths take."""
    pixels = np.asarray(pixels)
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=False)


def _fits_dtype(hdu) -> np.dtype:
    """The dtype of an image HDU's pixels once scaled, in native byte order, from one pixel (not the whole image)."""
    return _native(hdu.section[tuple(slice(0, 1) for _ in hdu.shape)]).dtype


def _read_fits(path: Path) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdus:
        return _native(_fits_image(hdus).data)


@functools.cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def _pillow_plugins(suffix: str) -> None:
    """Make Pillow able to read and write ``suffix``: HEIC and HEIF through pillow-heif's plugin."""
    if suffix in HEIF_SUFFIXES:
        _register_heif()


def _read_with_pillow(path: Path, suffix: str) -> np.ndarray:
    """A photograph (PNG, JPEG, WebP, AVIF, HEIC, ...) as it is shown: turned as its EXIF
    orientation says (the result carries no EXIF, and would be shown unturned), and CMYK as RGB."""
    _pillow_plugins(suffix)
    if suffix in NETPBM_SUFFIXES and _deep_colour_netpbm(path):
        raise ValueError("its colour has more than 8 bits per channel, which Pillow reads cut to 8; save it as a 16-bit TIFF or PNG")
    cmyk = iio.immeta(path).get("mode") == "CMYK"
    return iio.imread(path, rotate=True, mode="RGB" if cmyk else None)


def _deep_colour_netpbm(path: Path) -> bool:
    """Whether a Netpbm file holds RGB of more than 8 bits: Pillow's decoder of it takes
    (mode, maxval) and scales every value to 8 bits (grey of 9 to 16 bits it reads whole)."""
    with Image.open(path) as image:
        args = image.tile[0].args if image.tile else None
        return image.mode == "RGB" and isinstance(args, tuple) and len(args) == 2 and args[1] > 255


def _is_16_bit_colour_png(path: Path) -> bool:
    """Whether the PNG header (IHDR: bit depth, then colour type) says 16-bit RGB, RGBA or grey + alpha."""
    with open(path, "rb") as file:
        header = file.read(26)
    return header[12:16] == b"IHDR" and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def read_metadata(path) -> dict:
    """What a TIFF file or Zarr store holds beside its pixels, for :func:`write_image` and
    :func:`write_lazy` to write into a result of the same format.

    Parameters
    ----------
    path : str or Path
        A TIFF file, a FITS file, a Zarr store or a file of any other format :func:`read_image` reads.

    Returns
    -------
    dict
        ``"dtype"``: the pixels' dtype (value ranges apply to results of that dtype only);
        ``"tiff"``: options of ``tifffile.imwrite``: resolution and its unit, the Software
        tag, the ImageJ metadata (axes, spacing, unit, ranges, labels), the OME-XML
        physical sizes, time increment and channel names, any other image description,
        the photometric layout and a lossless codec; ``"fits"``: the image HDU's header
        (an ``astropy.io.fits.Header``: WCS, exposure, observation and every other card);
        ``"zarr"``: the array's attributes
        and, for an OME-Zarr image, its group's attributes with the multiscales listing
        level 0 only; ``"photo"``: a photograph's EXIF (orientation reset, as
        :func:`read_image` turns the pixels), colour profile and resolution;
        ``"data_range"``: the full-intensity value an OME-TIFF's significant bits give
        integer pixels (4095 for 12 of 16 bits), else None; ``"not_kept"``: what a written
        result leaves out, in words.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _tiff_metadata(path)
    if suffix in FITS_SUFFIXES:
        return _fits_metadata(path)
    if suffix == ZARR_SUFFIX:
        return _zarr_metadata(path)
    return {"dtype": None, "photo": _photo_metadata(path), "not_kept": []}


def _photo_metadata(path: Path) -> dict:
    """A photograph's EXIF (its orientation reset: :func:`read_image` turns the pixels), colour
    profile and resolution, as Pillow's ``save`` takes them."""
    _pillow_plugins(path.suffix.lower())
    try:
        meta = iio.immeta(path)
    except Exception as error:  # the readers raise many types for a corrupt file
        raise ValueError(f"input file {str(path)!r} is not a readable image ({_reader_message(error)})") from None
    kept = {key: meta[key] for key in ("icc_profile", "dpi") if meta.get(key)}
    if meta.get("exif"):
        exif = Image.Exif()
        exif.load(meta["exif"])
        exif[_EXIF_ORIENTATION] = 1
        kept["exif"] = exif.tobytes()
    return kept


def _photo_options(metadata, suffix: str) -> dict:
    """Pillow ``save`` options that write ``metadata`` (of :func:`read_metadata`) into a ``suffix`` file."""
    held = _PHOTO_METADATA.get(suffix, ())
    return {key: value for key, value in (metadata or {}).get("photo", {}).items() if key in held}


def _tiff_metadata(path: Path) -> dict:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = series.keyframe
            options = {"photometric": page.photometric}
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
                # A lookup table on the intensities (ImageJ writes its LUTs so): shown as before.
                options["colormap"] = page.colormap
            if page.samplesperpixel > 1:  # for one sample, tifffile would read a planar layout as an extra axis
                options.update(planarconfig=page.planarconfig, extrasamples=page.extrasamples)
            options["compression"] = page.compression if _can_encode(page.compression) else tifffile.COMPRESSION.DEFLATE
            if page.predictor != 1 and options["compression"] != tifffile.COMPRESSION.NONE:
                options["predictor"] = page.predictor
            tags = page.tags
            if "XResolution" in tags and "YResolution" in tags:
                options["resolution"] = (tags["XResolution"].value, tags["YResolution"].value)
                options["resolutionunit"] = page.resolutionunit
            if tags.valueof("Software"):
                options["software"] = tags.valueof("Software")
            if tif.is_imagej:
                kept = {k: v for k, v in (tif.imagej_metadata or {}).items() if k not in _IMAGEJ_SHAPE_KEYS}
                options.update(imagej=True, metadata={"axes": series.axes, **kept})
            elif tif.is_ome:
                options.update(ome=True, metadata={"axes": series.axes, **_ome_image_metadata(tif.ome_metadata)})
            elif page.description and not tif.is_shaped:
                options.update(description=page.description, metadata=None)
            not_kept = []
            if len(series.levels) > 1:
                not_kept.append(f"its {len(series.levels) - 1} lower-resolution pyramid level(s) (level 0 is restored)")
            if len(tif.series) > 1:
                not_kept.append(f"its {len(tif.series) - 1} further image series (the first is restored)")
            return {"dtype": series.dtype, "tiff": options, "data_range": _significant_range(options, series.dtype), "not_kept": not_kept}
    except Exception as error:  # tifffile raises many types for a corrupt file
        raise ValueError(f"input file {str(path)!r} is not a readable TIFF image ({_reader_message(error)})") from None


def _fits_metadata(path: Path) -> dict:
    from astropy.io import fits

    try:
        with fits.open(path) as hdus:  # headers and one pixel only: the pixels may be big
            image = _fits_image(hdus)
            others = [hdu for index, hdu in enumerate(hdus) if hdu is not image and (index or hdu.shape)]
            return {
                "dtype": _fits_dtype(image),
                "fits": {"header": image.header.copy()},
                "data_range": None,
                "not_kept": [f"its {len(others)} further HDU(s) (the first image HDU is restored)"] if others else [],
            }
    except Exception as error:  # astropy raises many types for a corrupt file
        raise ValueError(f"input file {str(path)!r} is not a readable FITS image ({_reader_message(error)})") from None


def _fits_hdus(image: np.ndarray, metadata, compressed: bool):
    """The HDUs of a FITS result: ``image`` with the input's header (:func:`read_metadata`) where
    it applies, as the primary HDU, or tile-compressed (lossless) after an empty one for ``.fz``."""
    from astropy.io import fits

    header = fits.Header()
    if metadata and "fits" in metadata:
        header = metadata["fits"]["header"].copy()
        dropped = _FITS_DROPPED_KEYS + (() if image.dtype == metadata["dtype"] else _FITS_STORAGE_KEYS)
        for key in dropped:
            header.remove(key, ignore_missing=True, remove_all=True)
    header.add_history("processed by napari-lowlight")
    if not compressed:
        return fits.HDUList([fits.PrimaryHDU(image, header=header)])
    # RICE is lossless for integers; floats would be quantised by it, so they take GZIP unquantised.
    options = dict(compression_type="RICE_1") if image.dtype.kind in "iu" else dict(compression_type="GZIP_2", quantize_level=0.0)
    return fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, header=header, **options)])


def _can_encode(compression) -> bool:
    if compression not in _LOSSLESS_TIFF_CODECS:
        return False
    try:
        tifffile.TIFF.COMPRESSORS[compression]
    except KeyError:  # the codec needs imagecodecs, which is not installed
        return False
    return True


def _significant_range(options: dict, dtype) -> float | None:
    """The full-intensity value of integer pixels of which the OME metadata says fewer bits
    are significant (a 12-bit camera's frames stored as uint16: 4095), else None."""
    bits = (options.get("metadata") or {}).get("SignificantBits") if options.get("ome") else None
    dtype = np.dtype(dtype)
    if bits is None or dtype.kind != "u" or not 0 < int(bits) < 8 * dtype.itemsize:
        return None
    return float(2 ** int(bits) - 1)


def _ome_image_metadata(xml: str) -> dict:
    """The first OME image's name, physical pixel sizes, time increment, significant bits and
    channel names, as tifffile's OME writer takes them."""
    image = tifffile.xml2dict(xml)["OME"]["Image"]
    image = image[0] if isinstance(image, list) else image
    pixels = image.get("Pixels", {})
    kept = {key: value for key, value in pixels.items() if key.startswith(("PhysicalSize", "TimeIncrement", "SignificantBits"))}
    if image.get("Name"):
        kept["Name"] = image["Name"]
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    names = [channel.get("Name") for channel in channels]
    if any(names):
        kept["Channel"] = {"Name": [name or "" for name in names]}
    return kept


def _ome_multiscales(attributes: dict):
    """The OME-Zarr ``multiscales`` list of a group's attributes (NGFF 0.4, or 0.5 under ``ome``)."""
    return attributes.get("multiscales") or attributes.get("ome", {}).get("multiscales")


def _zarr_metadata(path: Path) -> dict:
    import copy

    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises many types for a broken store
        raise ValueError(f"input {str(path)!r} is not a readable Zarr array ({_reader_message(error)})") from None
    zarr_format = node.metadata.zarr_format
    if isinstance(node, zarr.Array):
        return {"dtype": node.dtype, "zarr": {"attributes": dict(node.attrs), "zarr_format": zarr_format, "group": None}, "not_kept": []}
    group_attributes = copy.deepcopy(dict(node.attrs))
    multiscales = _ome_multiscales(group_attributes)
    if not multiscales:
        raise ValueError(f"input {str(path)!r} is a Zarr group without OME-Zarr multiscales; give the path of one array in it")
    datasets = multiscales[0]["datasets"]
    level = node[datasets[0]["path"]]
    dropped = len(datasets) - 1
    del datasets[1:]  # the result has level 0 only: its multiscales must not list the others
    not_kept = [f"its {dropped} lower-resolution pyramid level(s) (level 0 is restored; none are rebuilt)"] if dropped else []
    group = {"attributes": group_attributes, "path": datasets[0]["path"]}
    return {
        "dtype": level.dtype,
        "zarr": {"attributes": dict(level.attrs), "zarr_format": zarr_format, "group": group},
        "not_kept": not_kept,
    }


def check_writable(path, dtype, shape, *, lazy: bool = False) -> None:
    """Raise ValueError if an image of ``dtype`` and ``shape`` cannot be written to ``path``.

    PNG and JPEG 2000 hold one grey, RGB or RGBA image of uint8 or uint16; JPEG, BMP and
    Netpbm one uint8 grey or RGB image (Netpbm's grey also uint16); WebP one uint8 RGB or RGBA
    image; AVIF and HEIC one uint8 grey, RGB or RGBA image; TIFF and FITS any dtype and
    dimensions; GIF nothing (256 colours cannot hold a result).
    A lazy (dask) result goes to a Zarr store, a TIFF file or a FITS file. Checking before computing
    means no work is lost to a format that cannot hold the result.
    """
    path = Path(path)
    suffix = _suffix(path)
    dtype = np.dtype(dtype)
    if lazy:
        if suffix not in (ZARR_SUFFIX, *TIFF_SUFFIXES, *FITS_SUFFIXES):
            raise ValueError(f"{str(path)!r}: a lazy result is written to .zarr, .tif or .fits, not {suffix}")
        return
    if suffix in (ZARR_SUFFIX, *TIFF_SUFFIXES, *FITS_SUFFIXES):
        return
    if suffix == ".gif":
        raise ValueError(f"{str(path)!r}: GIF holds 256 colours per frame, too few for a restored image; use .tif or .png")
    held = _RASTER_FORMATS[suffix]
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))):
        raise ValueError(f"{str(path)!r}: {held.name} holds one 2-D grey, RGB or RGBA image, not shape {tuple(shape)}; use .tif")
    colour = len(shape) == 3
    if colour and shape[-1] == 4 and not held.opacity:
        raise ValueError(f"{str(path)!r}: {held.name} holds no opacity channel; use .png or .tif")
    dtypes = held.colour if colour else held.grey
    if not dtypes:
        raise ValueError(f"{str(path)!r}: {held.name} holds colour images only, not grey; use .png or .tif")
    if dtype not in dtypes:
        kind = "colour" if colour else "grey"
        names = " or ".join(str(d) for d in dtypes)
        raise ValueError(f"{str(path)!r}: {held.name} holds {kind} images of {names}, not {dtype}; use {held.advice}")


def _tiff_options(metadata, dtype) -> dict:
    """``tifffile.imwrite`` options that write ``metadata`` (of :func:`read_metadata`) for pixels of ``dtype``."""
    if not metadata or "tiff" not in metadata:
        return {}
    options = dict(metadata["tiff"])
    if np.dtype(dtype) != metadata["dtype"]:
        # A float difference map: its input's display ranges, lookup table and integer predictor do not apply.
        options.pop("predictor", None)
        if options.pop("colormap", None) is not None:
            options["photometric"] = tifffile.PHOTOMETRIC.MINISBLACK
        if isinstance(options.get("metadata"), dict) and options.get("imagej"):
            options["metadata"] = {k: v for k, v in options["metadata"].items() if k not in _IMAGEJ_VALUE_KEYS}
        if isinstance(options.get("metadata"), dict) and options.get("ome"):
            options["metadata"] = {k: v for k, v in options["metadata"].items() if k != "SignificantBits"}
    return options


def write_image(path, image: np.ndarray, *, metadata=None) -> Path:
    """Write ``image`` to ``path`` (format from the suffix), atomically.

    Formats and what they hold: :func:`check_writable`. ``metadata`` (from
    :func:`read_metadata` of the input) is written where the format holds it: a TIFF's
    into a TIFF ``path``, a FITS header into a FITS ``path`` (with a HISTORY card saying
    what processed it; ``.fz`` is written tile-compressed, losslessly), a photograph's EXIF,
    colour profile and resolution into a JPEG, PNG, WebP, AVIF or HEIC ``path`` (JPEG, AVIF
    and HEIC at quality ``LOSSY_QUALITY``; the other formats losslessly). The file appears
    complete or not at all.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ZARR_SUFFIX:
        raise ValueError(f"{str(path)!r}: a Zarr store is written by write_lazy (any array: dask.array.asarray(image))")
    image = np.asarray(image)
    check_writable(path, image.dtype, image.shape)
    with replaced_atomically(path, suffix) as temporary:
        if suffix in TIFF_SUFFIXES:
            tifffile.imwrite(temporary, image, **_tiff_options(metadata, image.dtype))
        elif suffix in FITS_SUFFIXES:
            _fits_hdus(image, metadata, compressed=suffix == ".fz").writeto(temporary, overwrite=True)  # over the empty placeholder
        elif suffix == ".png" and image.dtype == np.uint16 and image.ndim == 3:
            temporary.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(image)))  # Pillow writes no 16-bit colour
        elif suffix in JPEG2000_SUFFIXES:  # lossless (reversible), the container as the suffix says
            temporary.write_bytes(imagecodecs.jpeg2k_encode(np.ascontiguousarray(image), codecformat=suffix[1:]))
        elif suffix == ".webp":
            # Lossless, and the colour of transparent pixels kept: a result is not re-encoded lossily.
            iio.imwrite(temporary, image, extension=suffix, lossless=True, exact=True, **_photo_options(metadata, suffix))
        else:
            _pillow_plugins(suffix)
            quality = {"quality": LOSSY_QUALITY} if _RASTER_FORMATS[suffix].lossy else {}
            iio.imwrite(temporary, image, extension=suffix, **quality, **_photo_options(metadata, suffix))
    return path


def is_lazy_source(path) -> bool:
    """Whether ``path`` is read lazily: a Zarr store, or a TIFF or FITS file whose pixels are too big to read whole."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ZARR_SUFFIX:
        return True
    if suffix not in (*TIFF_SUFFIXES, *FITS_SUFFIXES) or not path.is_file():
        return False
    try:
        if suffix in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                return tif.series[0].nbytes > LAZY_FILE_BYTES
        from astropy.io import fits

        with fits.open(path) as hdus:  # reads the headers only
            image = _fits_image(hdus)
            return np.prod(image.shape) * abs(image.header["BITPIX"]) // 8 > LAZY_FILE_BYTES
    except Exception:  # a corrupt file: read_image names the problem
        return False


class _FitsSection:
    """The pixels of a FITS file's first image HDU, read region by region (astropy's ``section``:
    scaling applied, a tile-compressed image decompressed tile by tile), in native byte order."""

    def __init__(self, path: str):
        from astropy.io import fits

        self._hdus = fits.open(path)
        image = _fits_image(self._hdus)
        self._section, self.shape, self.dtype = image.section, tuple(image.shape), _fits_dtype(image)
        self.chunks = (*(1 for _ in self.shape[:-2]), min(self.shape[-2], FITS_BLOCK_ROWS), self.shape[-1])

    def __getitem__(self, key):
        return _native(self._section[key])


def _tiff_pixels(path: str):
    """tifffile's Zarr view of a TIFF file's first series at full resolution."""
    import zarr

    array = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    return array["0"] if isinstance(array, zarr.Group) else array  # a pyramid: its full-resolution level


class _FileView:
    """A TIFF or FITS file's pixels read region by region, which pickles as the file's absolute path.

    The view holds an open file (and its lock), which cannot travel to another process;
    dask workers of a cluster reopen the file from the path instead, and refuse it if it
    is no longer the file that was opened (size, modification time, shape, dtype).
    """

    def __init__(self, path: str, identity: tuple | None = None):
        self.path = path
        self._array = _FitsSection(path) if Path(path).suffix.lower() in FITS_SUFFIXES else _tiff_pixels(path)
        self.shape, self.dtype, self.chunks = tuple(self._array.shape), np.dtype(self._array.dtype), self._array.chunks
        self.ndim = len(self.shape)
        status = os.stat(path)
        self.identity = (status.st_size, status.st_mtime_ns, tuple(self.shape), str(self.dtype))
        if identity is not None and tuple(identity) != self.identity:
            raise ValueError(f"input {path!r} changed after it was opened; restore it again")

    def __getitem__(self, key):
        return self._array[key]

    def __reduce__(self):
        return _FileView, (self.path, self.identity)


def open_lazy(path):
    """Open a Zarr store (an array, or an OME-Zarr image's level 0), a TIFF file or a FITS
    file as a dask array, reading nothing yet.

    TIFF pages, strips or tiles become chunks through tifffile's Zarr view (compressed
    files included), and a FITS image's bands of ``FITS_BLOCK_ROWS`` rows through astropy's
    sections (tile-compressed files included), so a file bigger than memory streams block
    by block, on any dask scheduler, a cluster's processes included.
    """
    import dask.array as da
    from dask.base import tokenize

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    if path.suffix.lower() == ZARR_SUFFIX:
        group = _zarr_metadata(path)["zarr"]["group"]
        try:
            return da.from_zarr(str(path), component=None if group is None else group["path"])
        except Exception as error:  # zarr raises many types for a broken store
            raise ValueError(f"input {str(path)!r} is not a readable Zarr array ({_reader_message(error)})") from None
    kind = "FITS" if path.suffix.lower() in FITS_SUFFIXES else "TIFF"
    try:
        view = _FileView(str(path.resolve()))
    except Exception as error:  # tifffile and astropy raise many types for a corrupt file
        raise ValueError(f"input {str(path)!r} is not a readable {kind} file ({_reader_message(error)})") from None
    name = f"{kind.lower()}-" + tokenize(view.path, view.identity)
    return da.from_array(view, chunks=view.chunks, name=name, asarray=True)


def write_lazy(path, array, *, metadata=None) -> Path:
    """Compute a dask array block by block into a Zarr store, a TIFF file or a FITS file, atomically.

    Zarr gets the array's chunks. A TIFF is written tile by tile (BigTIFF when it needs
    more than 4 GB), one band of the array's chunks at a time, so memory holds a band of
    blocks, never a whole plane. A FITS result is assembled in memory, block by block (its
    own size: the restoration's working memory stays that of a block), and then written:
    for results bigger than memory, write Zarr or TIFF. ``metadata`` (from
    :func:`read_metadata`) is written into a result of its own format: a TIFF's tags, a FITS
    header, a Zarr array's attributes, an OME-Zarr image's group (whose multiscales then
    list level 0 only).
    """
    path = Path(path)
    suffix = _suffix(path)
    check_writable(path, array.dtype, array.shape, lazy=True)
    if suffix in FITS_SUFFIXES:
        return write_image(path, array.compute(), metadata=metadata)
    if suffix != ZARR_SUFFIX:
        options = _tiff_options(metadata, array.dtype)
        with replaced_atomically(path, suffix) as temporary:
            tiles = _tiff_tiles(array, samples=_contiguous_samples(array.shape, options))
            tifffile.imwrite(temporary, tiles, shape=array.shape, dtype=array.dtype, tile=(TIFF_TILE, TIFF_TILE), **options)
        return path
    # A Zarr store is a folder, which os.replace cannot put over another: the old store
    # steps aside first and goes only once the new one is in place.
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        _write_zarr(work / "new", array, (metadata or {}).get("zarr"))
        if path.exists():
            os.replace(path, work / "old")
        os.replace(work / "new", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _contiguous_samples(shape, options) -> bool:
    """Whether the last axis holds the samples of one pixel (RGB(A) stored contiguously)."""
    if "photometric" in options:
        rgb = options["photometric"] == tifffile.PHOTOMETRIC.RGB
        return rgb and options.get("planarconfig") != tifffile.PLANARCONFIG.SEPARATE
    return len(shape) >= 3 and shape[-1] in (3, 4)  # what tifffile infers without options


def _tiff_tiles(array, *, samples: bool):
    """The TIFF tiles of a dask array in file order: plane by plane, row by row.

    Each band of the array's chunks is computed once, across the whole width, and cut
    into tiles; rows short of a tile wait for the next band. Edge tiles are partial
    (tifffile pads them).
    """
    y_axis = array.ndim - (3 if samples else 2)
    for index in np.ndindex(array.shape[:y_axis]):
        plane = array[index]
        rows = np.empty((0, *plane.shape[1:]), plane.dtype)
        for top, height in zip(np.cumsum((0, *array.chunks[y_axis][:-1])), array.chunks[y_axis]):
            rows = np.concatenate([rows, np.asarray(plane[top : top + height].compute())])
            whole = len(rows) if top + height == plane.shape[0] else len(rows) // TIFF_TILE * TIFF_TILE
            for y in range(0, whole, TIFF_TILE):
                for x in range(0, rows.shape[1], TIFF_TILE):
                    yield rows[y : y + TIFF_TILE, x : x + TIFF_TILE]
            rows = rows[whole:]


def _write_zarr(folder: Path, array, zarr_metadata) -> None:
    """Write ``array`` as a new Zarr store at ``folder``, with the attributes of ``zarr_metadata``."""
    import zarr

    zarr_metadata = zarr_metadata or {"attributes": {}, "zarr_format": None, "group": None}
    # Zarr takes one chunk shape: the array's largest chunk along each axis.
    options = dict(shape=array.shape, chunks=tuple(max(c) for c in array.chunks), dtype=array.dtype, attributes=zarr_metadata["attributes"])
    group = zarr_metadata["group"]
    if group is None:
        target = zarr.create_array(str(folder), zarr_format=zarr_metadata["zarr_format"] or 3, **options)
    else:
        root = zarr.open_group(str(folder), mode="w", zarr_format=zarr_metadata["zarr_format"], attributes=group["attributes"])
        target = root.create_array(group["path"], **options)
    array.rechunk(target.chunks).to_zarr(target)
