"""Files as users have them: formats read and written, metadata kept, big TIFFs streamed."""

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr
from astropy.io import fits

from napari_lowlight import load_model, restore, save_model
from napari_lowlight.cli import main
from napari_lowlight.io import check_writable, read_image, read_metadata, write_image, write_lazy


@pytest.fixture
def model_file(tiny_model, tmp_path):
    return str(save_model(tiny_model, tmp_path / "tiny.safetensors"))


def _restore(source, target, model_file, *options):
    # alpha 1, as the expected results below are computed (the CLI's default is "auto").
    assert main(["restore", str(source), "-o", str(target), "--model", model_file, "--alpha", "1", *options]) == 0


@pytest.fixture
def stack(rng):
    return rng.integers(0, 4096, (2, 3, 40, 50)).astype(np.uint16)


def _description_tags(path):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return tif, page, page.tags["XResolution"].value, page.resolutionunit, page.tags.valueof("Software")


def test_imagej_metadata_survives_restoring(tmp_path, stack, model_file):
    source, out, difference = tmp_path / "cells.tif", tmp_path / "out.tif", tmp_path / "difference.tif"
    ranges = (0.0, 4095.0, 10.0, 2000.0, 0.0, 100.0)
    tifffile.imwrite(
        source, stack, imagej=True, resolution=(3077.0, 3077.0), software="Microscope 2.1", compression="zlib",
        metadata={"axes": "ZCYX", "spacing": 2.5, "unit": "um", "Ranges": ranges, "Labels": [f"l{i}" for i in range(6)]},
    )
    _restore(source, out, model_file, "--difference", str(difference))
    for path in (out, difference):
        with tifffile.TiffFile(path) as tif:
            page, meta = tif.pages.first, tif.imagej_metadata
            assert tif.series[0].axes == "ZCYX" and tif.series[0].shape == stack.shape
            assert page.tags["XResolution"].value == (3077, 1) and page.tags.valueof("Software") == "Microscope 2.1"
            assert meta["spacing"] == 2.5 and meta["unit"] == "um" and meta["Labels"] == [f"l{i}" for i in range(6)]
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert tifffile.imread(out).dtype == np.uint16 and tifffile.TiffFile(out).imagej_metadata["Ranges"] == ranges
    # The display ranges of the counts do not describe a float difference map.
    assert "Ranges" not in tifffile.TiffFile(difference).imagej_metadata


@pytest.mark.parametrize("compression", ["lzw", "zstd", "jpeg"])
def test_compressed_tiffs_are_read_and_a_lossless_codec_is_kept(tmp_path, compression, model_file):
    # Microscopes, Fiji and slide scanners write these codecs; tifffile decodes them with imagecodecs.
    # A lossy source (JPEG) is written back losslessly.
    source, out = tmp_path / f"{compression}.tif", tmp_path / "out.tif"
    image = np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3)).astype(np.uint8)
    tifffile.imwrite(source, image, compression=compression, photometric="rgb")
    read = read_image(source)
    assert read.shape == image.shape and read.dtype == np.uint8
    if compression != "jpeg":
        np.testing.assert_array_equal(read, image)
    _restore(source, out, model_file)
    kept = {"lzw": tifffile.COMPRESSION.LZW, "zstd": tifffile.COMPRESSION.ZSTD, "jpeg": tifffile.COMPRESSION.DEFLATE}
    assert tifffile.TiffFile(out).pages.first.compression == kept[compression]


def test_a_lookup_table_survives_restoring(tmp_path, model_file):
    # ImageJ saves an 8-bit image with a LUT (Fire, Green...) as a palette TIFF: values are intensities.
    source, out, difference = tmp_path / "lut.tif", tmp_path / "out.tif", tmp_path / "difference.tif"
    lut = np.stack([np.arange(256), np.zeros(256), np.arange(256)[::-1]]).astype(np.uint16) * 257
    tifffile.imwrite(source, np.random.default_rng(0).integers(0, 60, (40, 48)).astype(np.uint8), photometric="palette", colormap=lut)
    _restore(source, out, model_file, "--difference", str(difference))
    with tifffile.TiffFile(out) as tif:
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.PALETTE
        np.testing.assert_array_equal(tif.pages.first.colormap, lut)
    with tifffile.TiffFile(difference) as tif:  # float: no lookup table applies
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.MINISBLACK and tif.pages.first.colormap is None


def test_a_grey_png_with_opacity_is_restored_as_rgba_and_keeps_its_opacity(tmp_path, model_file):
    source, out = tmp_path / "grey_alpha.png", tmp_path / "out.png"
    rng = np.random.default_rng(0)
    grey, opacity = rng.integers(0, 60, (40, 48), dtype=np.uint8), rng.integers(0, 256, (40, 48), dtype=np.uint8)
    iio.imwrite(source, np.dstack([grey, opacity]))
    read = read_image(source)
    assert read.shape == (40, 48, 4)
    np.testing.assert_array_equal(read[..., 0], grey)
    np.testing.assert_array_equal(read[..., 3], opacity)
    _restore(source, out, model_file)
    restored = iio.imread(out)
    assert restored.shape == (40, 48, 4)
    np.testing.assert_array_equal(restored[..., 3], opacity)


def test_a_photo_is_read_as_it_is_shown_turned_by_its_exif_and_cmyk_as_rgb(tmp_path):
    from PIL import Image

    stored = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    turned = Image.fromarray(stored)
    exif = turned.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    turned.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "turned.jpg").shape == (60, 30, 3)
    Image.fromarray(stored).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg").shape == (30, 60, 3)  # not four channels taken for RGBA


@pytest.mark.parametrize("suffix", [".jpg", ".heic", ".avif"])
def test_a_photographs_exif_colour_profile_and_resolution_survive_restoring(tmp_path, model_file, suffix):
    import pillow_heif
    from PIL import Image, ImageCms

    pillow_heif.register_heif_opener()
    source, out = tmp_path / f"phone{suffix}", tmp_path / f"out{suffix}"
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 60, (30, 60, 3), dtype=np.uint8))
    exif = photo.getexif()
    exif[0x010F], exif[0x0132], exif[0x0112] = "Canon", "2026:12:07 10:00:00", 6
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo.save(source, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300))
    _restore(source, out, model_file)
    with Image.open(out) as restored:
        kept = restored.getexif()
        assert restored.size == (30, 60)  # turned upright, as the source is shown
        assert kept[0x010F] == "Canon" and kept[0x0132] == "2026:12:07 10:00:00"
        assert kept.get(0x0112, 1) == 1  # not turned a second time by a viewer
        assert restored.info["icc_profile"] == icc
        assert suffix != ".jpg" or restored.info["dpi"] == (300, 300)  # HEIC and AVIF hold no resolution


def test_an_ome_tiffs_significant_bits_set_its_full_intensity(tmp_path, model_file, capsys):
    # A 12-bit camera's frames stored as uint16: full intensity is 4095, not 65535.
    source, out, overridden = tmp_path / "cam.ome.tif", tmp_path / "out.ome.tif", tmp_path / "over.ome.tif"
    frames = np.random.default_rng(0).integers(0, 1200, (2, 40, 48)).astype(np.uint16)
    tifffile.imwrite(source, frames, ome=True, metadata={"axes": "ZYX", "SignificantBits": 12})
    model = load_model(model_file, device="cpu")
    _restore(source, out, model_file)
    assert "full intensity 4095" in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(out), restore(frames, 1.0, model=model, data_range=4095))
    with tifffile.TiffFile(out) as tif:
        assert tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["SignificantBits"] == 12
    _restore(source, overridden, model_file, "--data-range", "65535")
    np.testing.assert_array_equal(tifffile.imread(overridden), restore(frames, 1.0, model=model))


def test_ome_physical_sizes_and_channel_names_survive_restoring(tmp_path, stack, model_file):
    source, out = tmp_path / "cells.ome.tif", tmp_path / "out.ome.tif"
    sizes = {"PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.325, "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 2.5}
    tifffile.imwrite(
        source, stack, ome=True, resolution=(30770.0, 30770.0), resolutionunit="CENTIMETER",
        metadata={"axes": "ZCYX", "Name": "cells", **sizes, "Channel": {"Name": ["DAPI", "GFP", "RFP"]}},
    )
    _restore(source, out, model_file)
    with tifffile.TiffFile(out) as tif:
        image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        assert tif.is_ome and tif.series[0].axes == "ZCYX" and image["Name"] == "cells"
        assert {key: image["Pixels"][key] for key in sizes} == sizes
        assert [channel["Name"] for channel in image["Pixels"]["Channel"]] == ["DAPI", "GFP", "RFP"]
        assert tif.pages.first.tags["XResolution"].value == (30770, 1)
        assert tif.pages.first.resolutionunit == tifffile.RESUNIT.CENTIMETER


def test_a_plain_tiff_keeps_resolution_description_software_and_colour(tmp_path, rng, model_file):
    source, out = tmp_path / "photo.tif", tmp_path / "out.tif"
    image = rng.integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    tifffile.imwrite(
        source, image, photometric="rgb", resolution=(300.0, 300.0), resolutionunit="INCH",
        description="Vendor XY exposure=20ms", metadata=None, software="Vendor XY",
    )
    _restore(source, out, model_file)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.tags["XResolution"].value == (300, 1) and page.resolutionunit == tifffile.RESUNIT.INCH
        assert page.description == "Vendor XY exposure=20ms" and page.tags.valueof("Software") == "Vendor XY"
        assert page.photometric == tifffile.PHOTOMETRIC.RGB and tif.asarray().dtype == np.uint16


def test_a_fits_cube_restores_to_fits_with_its_header(tmp_path, rng, model_file, capsys):
    # A 16-bit camera's frames are stored as int16 with BZERO 32768; astronomers keep their WCS,
    # exposure and observation cards with the pixels.
    source, out, difference = tmp_path / "m31.fits", tmp_path / "out.fits", tmp_path / "difference.fits"
    cube = rng.integers(0, 4000, (2, 30, 40)).astype(np.uint16)
    primary = fits.PrimaryHDU(cube)
    primary.header.update(OBJECT="M31", CRVAL1=10.68, CTYPE1="RA---TAN", EXPTIME=30.0, DATAMAX=3999)
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.zeros(3))])
    fits.HDUList([primary, table]).writeto(source)
    before = source.read_bytes()
    read = read_image(source)
    np.testing.assert_array_equal(read, cube)
    assert read.dtype == np.uint16 and read.dtype.isnative
    _restore(source, out, model_file, "--difference", str(difference))
    assert "1 further HDU(s)" in capsys.readouterr().err and source.read_bytes() == before
    with fits.open(out) as hdus:
        header, restored = hdus[0].header, hdus[0].data
        assert restored.dtype == np.uint16 and restored.shape == cube.shape
        assert (header["OBJECT"], header["CRVAL1"], header["CTYPE1"], header["EXPTIME"]) == ("M31", 10.68, "RA---TAN", 30.0)
        assert "DATAMAX" not in header  # the input's range, which the restoration changed
        assert "processed by napari-lowlight" in str(header["HISTORY"])
    expected = restore(cube, 1.0, model=load_model(model_file), refine=False)
    np.testing.assert_array_equal(restored, expected)
    with fits.open(difference) as hdus:
        # The counts' scaling does not describe a float difference map.
        assert hdus[0].data.dtype.kind == "f" and "BZERO" not in hdus[0].header
        assert hdus[0].header["OBJECT"] == "M31"


def test_a_tile_compressed_float_fits_round_trips_losslessly(tmp_path, rng, model_file):
    # fpack's .fz: a calibrated frame in big-endian floats with a background below 0.
    source, out = tmp_path / "frame.fits.fz", tmp_path / "out.fits.fz"
    frame = (rng.random((40, 48)) * 3000 - 100).astype(">f4")
    image = fits.CompImageHDU(frame, compression_type="GZIP_2", quantize_level=0.0)
    image.header["FILTER"] = "Ha"
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(source)
    read = read_image(source)
    assert read.dtype == np.float32 and read.dtype.isnative
    np.testing.assert_array_equal(read, frame)
    _restore(source, out, model_file)
    with fits.open(out) as hdus:
        assert isinstance(hdus[1], fits.CompImageHDU) and hdus[1].header["FILTER"] == "Ha"
        with pytest.warns(UserWarning, match="outside \\[0, 1\\]"):
            expected = restore(read, 1.0, model=load_model(model_file))
        np.testing.assert_array_equal(hdus[1].data, expected)  # written without loss


def test_blank_nan_pixels_stay_blank_and_the_rest_is_restored(tmp_path, rng, model_file, capsys):
    # Reduced astronomy frames mark pixels off the detector or masked as NaN.
    source, out, difference = tmp_path / "stacked.fits", tmp_path / "out.fits", tmp_path / "difference.fits"
    frame = (rng.random((40, 48)) * 2000).astype(np.float32)
    frame[:, :8] = np.nan
    frame[20, 30] = np.nan
    fits.PrimaryHDU(frame).writeto(source)
    _restore(source, out, model_file, "--difference", str(difference))
    assert "321 NaN (blank) pixels" in capsys.readouterr().err
    result = fits.getdata(out)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(frame))
    assert np.isfinite(result[~np.isnan(frame)]).all()
    # The difference map keeps Estimate-Net's values there: restoring from it agrees with restore.
    assert np.isfinite(fits.getdata(difference)).all()
    # A frame with nothing but blanks is named, not restored into NaN.
    fits.PrimaryHDU(np.full((20, 20), np.nan, np.float32)).writeto(tmp_path / "empty.fits")
    assert main(["restore", str(tmp_path / "empty.fits"), "-o", str(tmp_path / "e.fits"), "--model", model_file]) == 1
    assert "NaN (blank) at every pixel" in capsys.readouterr().err


def test_a_fits_file_without_an_image_is_named(tmp_path, model_file, capsys):
    source = tmp_path / "catalogue.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.zeros(2))])]).writeto(source)
    with pytest.raises(ValueError, match="catalogue.fits.*not a readable FITS image.*no image HDU"):
        read_image(source)
    assert main(["restore", str(source), "-o", str(tmp_path / "out.fits"), "--model", model_file]) == 1
    assert "no image HDU" in capsys.readouterr().err


def test_zarr_attributes_survive_restoring(tmp_path, rng, model_file):
    source, out = tmp_path / "in.zarr", tmp_path / "out.zarr"
    stored = zarr.create_array(str(source), shape=(2, 40, 50), chunks=(1, 40, 50), dtype=np.uint16, attributes={"pixel_size_um": [2.5, 0.3, 0.3]})
    stored[:] = rng.integers(0, 65536, (2, 40, 50))
    _restore(source, out, model_file)
    assert dict(zarr.open_array(str(out), mode="r").attrs) == {"pixel_size_um": [2.5, 0.3, 0.3]}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_ome_zarr_image_restores_level_0_and_says_the_pyramid_is_dropped(tmp_path, rng, model_file, capsys, zarr_format):
    source, out = tmp_path / "in.zarr", tmp_path / "out.zarr"
    axes = [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}]
    datasets = [{"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [0.5 * 2**level] * 2}]} for level in range(2)]
    multiscales = [{"version": "0.4", "name": "cells", "axes": axes, "datasets": datasets}]
    attributes = {"multiscales": multiscales, "omero": {"channels": [{"label": "DAPI"}]}}
    if zarr_format == 3:
        attributes = {"ome": {"version": "0.5", "multiscales": multiscales}}
    group = zarr.open_group(str(source), mode="w", zarr_format=zarr_format, attributes=attributes)
    level0 = rng.integers(0, 256, (40, 50)).astype(np.uint8)
    group.create_array("0", data=level0, chunks=(20, 25))
    group.create_array("1", data=level0[::2, ::2], chunks=(20, 25))
    _restore(source, out, model_file)
    assert "1 lower-resolution pyramid level(s)" in capsys.readouterr().err
    written = zarr.open_group(str(out), mode="r")
    written_multiscales = written.attrs["multiscales"] if zarr_format == 2 else written.attrs["ome"]["multiscales"]
    assert written_multiscales[0]["datasets"] == datasets[:1] and written_multiscales[0]["axes"] == axes
    assert sorted(written.array_keys()) == ["0"] and written["0"].shape == level0.shape
    if zarr_format == 2:
        assert written.attrs["omero"] == {"channels": [{"label": "DAPI"}]}
    expected = restore(level0, 1.0, model=load_model(model_file, device="cpu"))
    assert np.abs(written["0"][:].astype(int) - expected.astype(int)).max() <= 1
    assert zarr.open_group(str(source), mode="r").attrs.asdict() == attributes  # the input is untouched


def test_a_compressed_tiff_streams_by_its_pixel_size_tile_by_tile(tmp_path, rng, model_file, monkeypatch):
    import napari_lowlight.io as io

    # The file is small (zlib), its pixels are not: the threshold counts pixels.
    image = np.zeros((300, 260), np.uint16)
    image[::7] = rng.integers(0, 65536, (43, 260))
    source, out = tmp_path / "big.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, image, compression="zlib", resolution=(100.0, 100.0))
    assert source.stat().st_size < image.nbytes / 4
    monkeypatch.setattr(io, "LAZY_FILE_BYTES", image.nbytes - 1)
    assert io.is_lazy_source(source)
    _restore(source, out, model_file, "--tile", "64")
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.tags["XResolution"].value == (100, 1)
        written = tif.asarray()
    expected = restore(image, 1.0, model=load_model(model_file, device="cpu"))
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 2e-3 * 65535


@pytest.mark.parametrize("suffix", [".fits", ".fz"])
def test_a_big_fits_streams_by_bands_of_rows_and_keeps_its_header(tmp_path, rng, model_file, monkeypatch, suffix):
    import pickle

    import cloudpickle

    import napari_lowlight.io as io

    image = rng.integers(0, 4000, (300, 260)).astype(np.uint16)
    source, out = tmp_path / f"mosaic{suffix}", tmp_path / f"out{suffix}"
    header = fits.Header({"OBJECT": "M31"})
    hdus = [fits.PrimaryHDU(image, header=header)]
    if suffix == ".fz":  # fpack's tiles of one row, decompressed band by band
        hdus = [fits.PrimaryHDU(), fits.CompImageHDU(image, header=header, compression_type="RICE_1")]
    fits.HDUList(hdus).writeto(source)
    monkeypatch.setattr(io, "LAZY_FILE_BYTES", image.nbytes - 1)
    monkeypatch.setattr(io, "FITS_BLOCK_ROWS", 100)
    assert io.is_lazy_source(source)
    lazy = read_image(source, lazy=True)
    assert isinstance(lazy, da.Array) and lazy.chunks == ((100, 100, 100), (260,)) and lazy.dtype == np.uint16
    # What a cluster's worker does: unpickle the graph elsewhere, then read the file.
    np.testing.assert_array_equal(pickle.loads(cloudpickle.dumps(lazy)).compute(), image)
    _restore(source, out, model_file, "--tile", "64")
    written = read_image(out)
    assert fits.getheader(out, ext=1 if suffix == ".fz" else 0)["OBJECT"] == "M31"
    expected = restore(image, 1.0, model=load_model(model_file, device="cpu"))
    assert written.dtype == np.uint16 and np.abs(written.astype(int) - expected.astype(int)).max() <= 2e-3 * 65535


def test_a_big_fits_mosaic_with_blank_borders_streams(tmp_path, rng, model_file, monkeypatch, capsys):
    # A drizzled mosaic: big, float, NaN off the observed field (whole blocks of it, too).
    import warnings

    import napari_lowlight.io as io

    mosaic = (rng.random((300, 260)) * 500).astype(np.float32)
    mosaic[:, :120] = np.nan
    source, out = tmp_path / "mosaic.fits", tmp_path / "out.fits"
    fits.PrimaryHDU(mosaic).writeto(source)
    monkeypatch.setattr(io, "LAZY_FILE_BYTES", mosaic.nbytes - 1)
    monkeypatch.setattr(io, "FITS_BLOCK_ROWS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy complaint about the all-blank blocks
        _restore(source, out, model_file, "--tile", "64")
    written = fits.getdata(out)
    np.testing.assert_array_equal(np.isnan(written), np.isnan(mosaic))
    with pytest.warns(UserWarning, match="outside"):
        expected = restore(mosaic, 1.0, model=load_model(model_file, device="cpu"))
    np.testing.assert_allclose(written, expected, atol=1e-3 * 500)


def test_a_lazy_tiff_is_written_one_band_of_blocks_at_a_time(tmp_path, rng):
    computed = []

    def counted(block):
        if block.size:  # not dask's probe of the output type
            computed.append(block.shape)
        return block

    image = rng.random((3, 600, 300, 3)).astype(np.float32)
    lazy = da.from_array(image, chunks=(1, 100, 100, 3)).map_blocks(counted, dtype=np.float32)
    path = write_lazy(tmp_path / "rgb.tif", lazy)
    np.testing.assert_array_equal(tifffile.imread(path), image)
    assert len(computed) == 3 * 6 * 3  # every block once, bands never recomputed
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.is_tiled and tif.pages.first.photometric == tifffile.PHOTOMETRIC.RGB


def test_read_image_lazily(tmp_path, stack):
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression="zlib")
    lazy = read_image(tmp_path / "stack.tif", lazy=True)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), stack)
    iio.imwrite(tmp_path / "photo.png", stack[0, 0].astype(np.uint8))
    with pytest.raises(ValueError, match="only TIFF and FITS files and Zarr stores"):
        read_image(tmp_path / "photo.png", lazy=True)


@pytest.mark.parametrize(
    "name, image",
    [
        ("photo.bmp", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3)),
        ("grey.bmp", np.arange(20 * 24, dtype=np.uint8).reshape(20, 24)),
        ("photo.webp", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3)),
        ("sticker.webp", np.arange(20 * 24 * 4, dtype=np.uint8).reshape(20, 24, 4)),
    ],
)
def test_bmp_and_webp_restore_into_their_own_format(tmp_path, model_file, name, image):
    source, out = tmp_path / name, tmp_path / "out" / name
    out.parent.mkdir()
    write_image(source, image)
    np.testing.assert_array_equal(read_image(source), image)  # WebP is written losslessly
    _restore(source, out.parent, model_file)
    restored = read_image(out)
    assert restored.shape == image.shape and restored.dtype == np.uint8


@pytest.mark.parametrize(
    "name, image, lossless",
    [
        ("phone.heic", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3), False),
        ("photo.avif", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3), False),
        ("photo.jfif", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3), False),
        ("slide.jp2", (np.arange(20 * 24, dtype=np.uint16) * 97).reshape(20, 24), True),
        ("scan.j2k", (np.arange(20 * 24 * 3, dtype=np.uint16) * 31).reshape(20, 24, 3), True),  # Pillow: cut to 8 bits
        ("camera.pgm", (np.arange(20 * 24, dtype=np.uint16) * 97).reshape(20, 24), True),
        ("photo.ppm", np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3), True),
    ],
)
def test_phone_and_science_formats_restore_into_their_own_format(tmp_path, model_file, name, image, lossless):
    source, out = tmp_path / name, tmp_path / "out" / name
    out.parent.mkdir()
    write_image(source, image)
    stored = read_image(source)
    assert stored.shape == image.shape and stored.dtype == image.dtype  # 16-bit PGM and JPEG 2000 stay 16-bit
    if lossless:
        np.testing.assert_array_equal(stored, image)
    _restore(source, out.parent, model_file)
    restored = read_image(out)
    assert restored.shape == image.shape and restored.dtype == image.dtype


def test_a_16_bit_colour_ppm_is_refused_not_cut_to_8_bits(tmp_path):
    # Pillow reads RGB Netpbm of more than 8 bits as 8 bits: a mangled image, so it is refused by name.
    deep = tmp_path / "scan.ppm"
    deep.write_bytes(b"P6\n5 4\n65535\n" + (np.arange(4 * 5 * 3) * 1000).astype(">u2").tobytes())
    with pytest.raises(ValueError, match="more than 8 bits per channel.*16-bit TIFF or PNG"):
        read_image(deep)
    shallow = tmp_path / "photo.ppm"
    shallow.write_bytes(b"P6\n5 4\n255\n" + np.arange(4 * 5 * 3, dtype=np.uint8).tobytes())
    np.testing.assert_array_equal(read_image(shallow), np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3))


@pytest.mark.parametrize(
    "name, dtype, shape, message",
    [
        ("out.jp2", np.float32, (20, 24, 3), "JPEG 2000 holds colour images of uint8 or uint16, not float32; use .tif"),
        ("out.pgm", np.float32, (20, 24), "Netpbm holds grey images of uint8 or uint16, not float32"),
        ("out.heic", np.uint16, (20, 24, 3), "HEIC holds colour images of uint8, not uint16; use .png or .tif"),
        ("out.ppm", np.uint8, (20, 24, 4), "Netpbm holds no opacity channel"),
    ],
)
def test_a_format_that_cannot_hold_the_result_is_named_before_any_work(tmp_path, name, dtype, shape, message):
    with pytest.raises(ValueError, match=message):
        check_writable(tmp_path / name, dtype, shape)


def test_gif_frames_are_a_stack_and_the_result_goes_to_tiff(tmp_path, rng, model_file, capsys):
    frames = rng.integers(0, 256, (3, 20, 24, 3)).astype(np.uint8)
    source = tmp_path / "clip.gif"
    iio.imwrite(source, frames)
    assert read_image(source).shape == (3, 20, 24, 3)
    iio.imwrite(tmp_path / "still.gif", frames[0])
    assert read_image(tmp_path / "still.gif").shape == (20, 24, 3)
    _restore(source, tmp_path / "clip.tif", model_file)
    assert tifffile.imread(tmp_path / "clip.tif").shape == (3, 20, 24, 3)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["restore", str(source), "-o", str(tmp_path / "clip_restored.gif"), "--model", model_file]) == 1
    assert "GIF holds 256 colours" in capsys.readouterr().err and sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_folder_of_bmp_files_is_a_batch(tmp_path, rng, model_file):
    folder, out = tmp_path / "lime", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    for name in ("a.bmp", "b.bmp"):
        iio.imwrite(folder / name, rng.integers(0, 256, (20, 24, 3)).astype(np.uint8))
    _restore(folder, out, model_file)
    assert sorted(p.name for p in out.iterdir()) == ["a.bmp", "b.bmp"]


def test_a_corrupt_file_in_a_batch_is_named_without_plugin_hints(tmp_path, rng, model_file, capsys):
    (tmp_path / "notes.png").write_text("hello, I am text")
    iio.imwrite(tmp_path / "good.png", rng.integers(0, 256, (20, 24)).astype(np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    assert main(["restore", str(tmp_path / "notes.png"), str(tmp_path / "good.png"), "-o", str(out), "--model", model_file]) == 1
    err = capsys.readouterr().err
    assert "notes.png" in err and "no reader recognises its contents" in err
    assert "pip install" not in err and "pyav" not in err


def test_restore_defaults_to_the_automatic_alpha(tmp_path, rng, model_file):
    image = rng.integers(0, 256, (40, 50)).astype(np.uint8)
    source, out = tmp_path / "dark.png", tmp_path / "out.png"
    write_image(source, image)
    assert main(["restore", str(source), "-o", str(out), "--model", model_file]) == 0
    expected = restore(image, "auto", model=load_model(model_file, device="cpu"))
    assert np.abs(read_image(out).astype(int) - expected.astype(int)).max() <= 1


def test_restore_help_gives_the_default_alpha(capsys):
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    assert "(default: auto)" in " ".join(capsys.readouterr().out.split())


def test_a_photograph_without_exif_or_profile_keeps_nothing(tmp_path):
    iio.imwrite(tmp_path / "photo.png", np.zeros((4, 4), np.uint8))
    assert read_metadata(tmp_path / "photo.png") == {"dtype": None, "photo": {}, "not_kept": []}
