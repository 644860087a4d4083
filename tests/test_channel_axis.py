"""``channel_axis="auto"``: one rule for the library, the CLI and napari, and a warning
when an image that looks like colour is processed as grey planes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_lowlight as nl
from napari_lowlight.planes import auto_channel_axis, resolve_channel_axis


@pytest.fixture
def photo(rng):
    return (rng.random((40, 48, 3)) * 60).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((40, 48, 3), -1), ((40, 48, 4), -1), ((5, 40, 48, 3), -1), ((40, 48), None), ((3, 40, 48), None), ((40, 3), None)],
)
def test_the_rule(shape, axis):
    assert auto_channel_axis(shape) == axis


def test_the_cli_uses_the_library_rule(monkeypatch):
    from napari_lowlight import cli, planes

    calls = []
    monkeypatch.setattr(planes, "auto_channel_axis", lambda shape: calls.append(shape) or -1)
    assert cli._resolve_channel_axis("auto", np.zeros((8, 8, 3)), {}) == -1
    assert calls == [(8, 8, 3)]
    assert cli._resolve_channel_axis("none", np.zeros((8, 8, 3)), {}) is None
    assert cli._resolve_channel_axis(0, np.zeros((3, 8, 8)), {}) == 0


@pytest.mark.parametrize(("shape", "axis"), [((40, 48, 2), -1), ((2, 40, 48), 0), ((3, 40, 5, 48), 2), ((40, 48, 1), 2)])
def test_channels_other_than_colour_are_grey_planes_wherever_their_axis_is(tiny_model, rng, shape, axis):
    # Two fluorescent labels, say: skimage's channel_axis takes any count, and so does restore.
    image = (rng.random(shape) * 4000).astype(np.uint16)
    planes_first = np.moveaxis(image, axis, -3)
    restored, difference = nl.restore(image, 0.0, model=tiny_model, channel_axis=axis, return_difference=True)
    expected, expected_difference = nl.restore(planes_first, 0.0, model=tiny_model, return_difference=True)
    assert restored.shape == image.shape and restored.dtype == np.uint16
    # Refined as grey planes are (40 pixels a side fit a refinement window).
    np.testing.assert_array_equal(restored, np.moveaxis(expected, -3, axis))
    np.testing.assert_array_equal(difference, np.moveaxis(expected_difference, -3, axis))
    cached = nl.estimate_difference(image, model=tiny_model, channel_axis=axis)
    np.testing.assert_array_equal(nl.enhance(image, cached, 0.0, model=tiny_model, channel_axis=axis), restored)
    assert nl.estimate_alpha(image, model=tiny_model, channel_axis=axis, photograph=True) == nl.estimate_alpha(
        planes_first, model=tiny_model, photograph=True
    )
    low = nl.synthesize_low_light(image, 1.0, 0.5, seed=0, channel_axis=axis)
    np.testing.assert_array_equal(low, np.moveaxis(nl.synthesize_low_light(planes_first, 1.0, 0.5, seed=0), -3, axis))


def test_lazy_channels_other_than_colour_match_in_memory(tiny_model, rng):
    import dask.array as da

    image = rng.random((40, 48, 2)).astype(np.float32)
    lazy = nl.restore(da.from_array(image, chunks=(20, 24, 1)), 0.0, model=tiny_model, channel_axis=-1, tile_size=64)
    np.testing.assert_allclose(lazy.compute(), nl.restore(image, 0.0, model=tiny_model, channel_axis=-1), atol=1e-6)


def test_auto_restores_a_photo_as_colour(tiny_model, photo):
    auto, difference = nl.restore(photo, 1.2, model=tiny_model, channel_axis="auto", return_difference=True)
    colour, colour_difference = nl.restore(photo, 1.2, model=tiny_model, channel_axis=-1, return_difference=True)
    np.testing.assert_array_equal(auto, colour)
    np.testing.assert_array_equal(difference, colour_difference)
    cached = nl.estimate_difference(photo, model=tiny_model, channel_axis="auto")
    np.testing.assert_array_equal(cached, colour_difference)
    np.testing.assert_array_equal(nl.enhance(photo, cached, 1.2, model=tiny_model, channel_axis="auto"), colour)
    assert nl.estimate_alpha(photo, model=tiny_model, channel_axis="auto") == nl.estimate_alpha(
        photo, model=tiny_model, channel_axis=-1
    )


def test_auto_keeps_an_rgba_opacity(tiny_model, photo):
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 128, np.uint8)], axis=-1)
    restored = nl.restore(rgba, 1.0, model=tiny_model, channel_axis="auto")
    assert (restored[..., 3] == 128).all()


def test_auto_on_grey_images_and_stacks_means_planes(tiny_model, rng):
    for shape in ((32, 40), (3, 32, 40)):
        image = rng.random(shape).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(
                nl.restore(image, 1.0, model=tiny_model, channel_axis="auto"), nl.restore(image, 1.0, model=tiny_model)
            )


def test_a_photo_processed_as_planes_warns_at_the_callers_line(tiny_model, photo):
    with pytest.warns(nl.ChannelAxisWarning, match=r"channel_axis=-1") as caught:
        nl.restore(photo, 1.0, model=tiny_model)
    assert {record.filename for record in caught} == {__file__}
    for call in (
        lambda: nl.estimate_difference(photo, model=tiny_model),
        lambda: nl.estimate_alpha(photo, model=tiny_model),
        lambda: nl.enhance(photo, np.zeros(photo.shape, np.float32), 1.0, model=tiny_model),
    ):
        with pytest.warns(nl.ChannelAxisWarning):
            call()


def test_enhance_warns_once_per_call(tiny_model, photo):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nl.enhance(photo, np.zeros(photo.shape, np.float32), 1.0, model=tiny_model)
    assert len([record for record in caught if record.category is nl.ChannelAxisWarning]) == 1


def test_no_warning_with_a_channel_axis(tiny_model, photo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nl.restore(photo, 1.0, model=tiny_model, channel_axis=-1)
        nl.restore(photo, 1.0, model=tiny_model, channel_axis="auto")


def test_a_bad_channel_axis_string_is_named():
    with pytest.raises(ValueError, match='"auto"'):
        resolve_channel_axis("last", (8, 8, 3))


def test_the_cli_does_not_warn_when_planes_were_asked_for(tmp_path, tiny_model, photo, capsys):
    from napari_lowlight.cli import main

    source, model_file = tmp_path / "photo.png", tmp_path / "tiny.safetensors"
    nl.write_image(source, photo)
    nl.save_model(tiny_model, model_file)
    assert main(["restore", str(source), "-o", str(tmp_path / "planes.png"), "--model", str(model_file), "--channel-axis", "none"]) == 0
    assert "looks like colour" not in capsys.readouterr().err
    assert main(["restore", str(source), "-o", str(tmp_path / "auto.png"), "--model", str(model_file), "--alpha", "1"]) == 0
    np.testing.assert_array_equal(
        nl.read_image(tmp_path / "auto.png"), nl.restore(photo, 1.0, model=tiny_model, channel_axis=-1, device="cpu")
    )


def test_synthesis_takes_auto_too(photo):
    auto = nl.synthesize_low_light(photo, 1.0, 1.0, noise_sigma=0.0, channel_axis="auto")
    np.testing.assert_array_equal(auto, nl.synthesize_low_light(photo, 1.0, 1.0, noise_sigma=0.0, channel_axis=-1))
    with pytest.warns(nl.ChannelAxisWarning):
        nl.synthesize_low_light(photo, 1.0, 1.0, noise_sigma=0.0)
    np.testing.assert_array_equal(
        nl.difference_map(photo, 1.0, channel_axis="auto"), nl.difference_map(photo, 1.0, channel_axis=-1)
    )
