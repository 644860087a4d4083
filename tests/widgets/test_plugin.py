"""The npe2 manifest, the widgets as napari opens them from the Plugins menu, the samples."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from napari_lowlight._sample_data import SAMPLE_LAYERS
from napari_lowlight.samples import fluorescence_stack, load_sample, skimage_image

MANIFEST = resources.files("napari_lowlight") / "napari.yaml"
WIDGETS = {
    "Synthesize low light": "SynthesizeWidget",
    "Train / fine-tune": "TrainWidget",
    "Restore low light": "RestoreWidget",
}


def test_manifest_is_valid_and_its_commands_import():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(str(MANIFEST))
    manifest.validate_imports()
    assert manifest.name == "napari-lowlight"
    assert {widget.display_name for widget in manifest.contributions.widgets} == set(WIDGETS)
    assert {sample.key for sample in manifest.contributions.sample_data} == set(SAMPLE_LAYERS)
    for sample in manifest.contributions.sample_data:
        assert sample.display_name == load_sample(sample.key).title


def _installed() -> bool:
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    return "napari-lowlight" in manager


@pytest.mark.skipif(not _installed(), reason="napari-lowlight is not installed (no npe2 entry point)")
@pytest.mark.parametrize("display_name", list(WIDGETS))
def test_widgets_open_from_the_plugins_menu(viewer, display_name):
    dock, widget = viewer.window.add_plugin_dock_widget("napari-lowlight", display_name)
    assert type(widget).__name__ == WIDGETS[display_name]


@pytest.mark.skipif(not _installed(), reason="napari-lowlight is not installed (no npe2 entry point)")
def test_open_sample_adds_low_light_and_clean_layers(viewer):
    viewer.open_sample("napari-lowlight", "camera")
    assert [layer.name for layer in viewer.layers] == ["camera (clean)", "camera (low light)"]


@pytest.mark.skipif(not _installed(), reason="napari-lowlight is not installed (no npe2 entry point)")
def test_napari_opens_a_fits_file_with_its_header(viewer, tmp_path, rng):
    from astropy.io import fits

    frame = rng.integers(0, 4000, (30, 40)).astype(np.uint16)
    primary = fits.PrimaryHDU(frame)
    primary.header["OBJECT"] = "M31"
    primary.writeto(tmp_path / "m31.fits")
    # napari's own reader (through imageio) adds 32768 to these unsigned counts and turns the rows over.
    [layer] = viewer.open(tmp_path / "m31.fits", plugin="napari-lowlight")
    np.testing.assert_array_equal(layer.data, frame)
    assert layer.name == "m31.fits" and layer.metadata["fits_header"]["OBJECT"] == "M31"
    # Shown as DS9 shows it: the file's first row at the bottom, in the place the unturned image had.
    np.testing.assert_allclose(layer.data_to_world((0, 0)), (29, 0))
    np.testing.assert_allclose(layer.data_to_world((29, 39)), (0, 39))


@pytest.mark.skipif(not _installed(), reason="napari-lowlight is not installed (no npe2 entry point)")
def test_a_fits_frame_restored_in_napari_is_saved_with_its_header(qtbot, viewer, registry, tmp_path, rng):
    from astropy.io import fits

    from napari_lowlight._widgets import RestoreWidget

    fits.PrimaryHDU(rng.integers(0, 4000, (32, 40)).astype(np.uint16), header=fits.Header({"OBJECT": "M31"})).writeto(tmp_path / "m31.fits")
    [source] = viewer.open(tmp_path / "m31.fits", plugin="napari-lowlight")
    widget = RestoreWidget(viewer, registry=registry)
    widget.model_name, widget.device, widget.layer, widget.alpha = "tiny", "cpu", "m31.fits", 0.0
    with qtbot.waitSignal(widget.run_finished, timeout=30_000):
        widget.run()
    restored = viewer.layers["m31.fits restored"]
    # The derived layer inherits the file's header, and the plugin's writer puts it back.
    assert restored.metadata["fits_header"]["OBJECT"] == "M31"
    np.testing.assert_array_equal(restored.scale, source.scale)  # shown turned over as its source
    np.testing.assert_array_equal(restored.translate, source.translate)
    [written] = restored.save(str(tmp_path / "restored.fits"), plugin="napari-lowlight")
    with fits.open(written) as hdus:
        assert hdus[0].header["OBJECT"] == "M31" and "processed by napari-lowlight" in str(hdus[0].header["HISTORY"])
        np.testing.assert_array_equal(hdus[0].data, restored.data)
    assert source.metadata["fits_header"]["OBJECT"] == "M31" and "napari_lowlight" not in source.metadata


def test_the_readers_leave_other_files_to_napari():
    from napari_lowlight._file_layers import fits_reader, heic_reader

    assert fits_reader("cells.tif") is None and fits_reader(["a.fits", "b.png"]) is None
    assert fits_reader("frame.FITS") is not None and fits_reader(["a.fits", "b.fz"]) is not None
    assert heic_reader("photo.jpg") is None and heic_reader(["a.heic", "b.fits"]) is None
    assert heic_reader("IMG_0001.HEIC") is not None


@pytest.mark.skipif(not _installed(), reason="napari-lowlight is not installed (no npe2 entry point)")
def test_napari_opens_a_phones_heic_photograph_upright(viewer, tmp_path, rng):
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    photo = Image.fromarray(rng.integers(0, 256, (30, 40, 3)).astype(np.uint8))
    exif = photo.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    photo.save(tmp_path / "IMG_0001.heic", exif=exif.tobytes())
    [layer] = viewer.open(tmp_path / "IMG_0001.heic", plugin="napari-lowlight")
    assert layer.name == "IMG_0001.heic" and layer.rgb and layer.data.shape == (40, 30, 3)


@pytest.fixture
def offline(monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a sample tried to download something")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    pytest.importorskip("pooch")
    import pooch

    monkeypatch.setattr(pooch, "retrieve", no_network)


SYNTHESISED = [key for key in SAMPLE_LAYERS if load_sample(key).clean is not None]


@pytest.mark.parametrize("key", SYNTHESISED)
def test_samples_are_offline_deterministic_pairs(key, offline):
    function = SAMPLE_LAYERS[key]
    (clean, clean_kwargs, clean_type), (low, low_kwargs, low_type) = function()
    assert clean_type == low_type == "image"
    assert clean.shape == low.shape and clean.dtype == low.dtype
    assert low.astype(float).mean() < 0.8 * clean.astype(float).mean()  # darker
    assert low_kwargs["name"].endswith("(low light)") and clean_kwargs["name"].endswith("(clean)")
    assert clean_kwargs.get("rgb", False) == low_kwargs.get("rgb", False) == (clean.ndim == 3 and clean.shape[-1] == 3)
    (_, _, _), (again, _, _) = function()
    np.testing.assert_array_equal(low, again)


def test_the_real_sample_is_one_dark_rgb_frame_read_offline(offline):
    assert set(SAMPLE_LAYERS) - set(SYNTHESISED) == {"hubble"}
    [(frame, kwargs, layer_type)] = SAMPLE_LAYERS["hubble"]()
    assert layer_type == "image" and kwargs["rgb"] and frame.shape == (872, 1000, 3)
    assert frame.mean() < 0.1 * 255  # dark by nature
    assert kwargs["metadata"]["napari_lowlight"]["synthesis"].startswith("none")


def test_skimage_files_are_read_from_the_package_only():
    assert skimage_image("camera.png").shape == (512, 512)
    with pytest.raises(FileNotFoundError):
        skimage_image("not-shipped.png")


def test_fluorescence_stack_is_a_uint16_z_stack():
    stack = fluorescence_stack()
    assert stack.shape == (12, 192, 192) and stack.dtype == np.uint16
    assert stack.max() > 30_000 and np.median(stack) < 10_000  # bright objects on a dark background
