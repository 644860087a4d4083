"""The Synthesize low light widget, end to end in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

import napari_lowlight as core
from napari_lowlight._widgets import RunState, SynthesizeWidget


def _run(qtbot, widget):
    with qtbot.waitSignal(widget.run_finished, timeout=20_000):
        worker = widget.run()
        assert worker is not None
    return worker


@pytest.mark.parametrize(
    ("shape", "dtype", "rgb"),
    [
        ((32, 32), np.uint8, False),
        ((3, 24, 32), np.uint16, False),
        ((32, 32), np.float32, False),
        ((32, 32, 3), np.uint8, True),
    ],
    ids=["grey-uint8", "stack-uint16", "float32", "rgb"],
)
def test_adds_low_light_layer_and_keeps_source(qtbot, viewer, helpers, shape, dtype, rgb):
    image = helpers.rgb(shape[:2]) if rgb else helpers.grey(shape, dtype)
    source = viewer.add_image(image.copy(), name="clean", rgb=rgb)
    widget = SynthesizeWidget(viewer)
    widget.layer = "clean"
    widget.alpha, widget.gamma = 1.5, 1.0
    widget.noise, widget.noise_sigma, widget.seed = "gaussian", 0.01, 3
    widget.add_difference = True
    _run(qtbot, widget)

    assert len(viewer.layers) == 3
    low = viewer.layers[1]
    assert low.name == "clean low (alpha=1.5, gamma=1, gaussian sigma=0.01, seed=3)"
    assert low.data.shape == image.shape and low.data.dtype == image.dtype
    assert low.rgb == rgb
    expected = core.synthesize_low_light(
        image, 1.5, 1.0, noise="gaussian", noise_sigma=0.01, seed=3, channel_axis=-1 if rgb else None
    )
    np.testing.assert_array_equal(low.data, expected)
    assert low.data.astype(float).mean() < image.astype(float).mean()
    difference = viewer.layers[2]
    assert difference.name == "clean true difference map (gamma=1)"
    # One value map in magma, for a colour image the mean of its channels' maps.
    true_map = core.difference_map(image, 1.0, channel_axis=-1 if rgb else None)
    shown = true_map.mean(axis=-1) if rgb else true_map
    assert difference.data.dtype == np.float32 and difference.data.shape == shown.shape and not difference.rgb
    np.testing.assert_allclose(difference.data, shown, atol=1e-6)
    assert difference.colormap.name == "magma"
    # The source layer is untouched, data and identity.
    np.testing.assert_array_equal(source.data, image)
    assert viewer.layers[0].name == "clean"
    assert widget.status.state == RunState.DONE


def test_poisson_gaussian_and_no_noise_names(qtbot, viewer, helpers):
    viewer.add_image(helpers.grey(), name="img")
    widget = SynthesizeWidget(viewer)
    widget.noise, widget.photons, widget.noise_sigma = "poisson-gaussian", 50.0, 0.0
    _run(qtbot, widget)
    widget.noise = None  # as in the core's noise=None
    assert widget.noise == "none"
    _run(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    assert names[1] == "img low (alpha=1, gamma=1, poisson-gaussian photons=50 sigma=0, seed=0)"
    assert names[2] == "img low (alpha=1, gamma=1, no noise)"
    # Without noise the result is Eq. 5 exactly.
    np.testing.assert_array_equal(
        viewer.layers[2].data, core.synthesize_low_light(helpers.grey(), 1.0, 1.0, noise=None)
    )


def test_no_layer_gives_notification(qtbot, viewer, notifications, helpers):
    widget = SynthesizeWidget(viewer)
    assert widget.run() is None
    assert any("no image layer" in message for message in helpers.errors(notifications))
    assert len(viewer.layers) == 0


def test_error_in_worker_is_notified_and_adds_nothing(qtbot, viewer, notifications, helpers):
    image = helpers.grey(dtype=np.float32)
    image[3, 3] = np.nan  # the core refuses NaN with a ValueError
    viewer.add_image(image.copy(), name="bad")
    widget = SynthesizeWidget(viewer)
    _run(qtbot, widget)
    qtbot.waitUntil(lambda: widget.status.state == RunState.ERROR, timeout=5_000)
    assert len(viewer.layers) == 1
    np.testing.assert_array_equal(viewer.layers[0].data, image)
    assert any("NaN" in message for message in helpers.errors(notifications))


def test_scripting_rejects_unknown_choices(viewer):
    widget = SynthesizeWidget(viewer)
    with pytest.raises(ValueError, match="noise model"):
        widget.noise = "salt"
    with pytest.raises(ValueError, match="image layer"):
        widget.layer = "nope"


def test_data_range_reaches_the_synthesis(qtbot, viewer, helpers):
    image = (helpers.grey((32, 32), np.uint16) // 16).astype(np.uint16)
    viewer.add_image(image, name="camera12")
    widget = SynthesizeWidget(viewer)
    widget.alpha, widget.gamma, widget.noise, widget.data_range = 1.0, 0.5, "none", 4095
    _run(qtbot, widget)
    expected = core.synthesize_low_light(image, 1.0, 0.5, noise=None, data_range=4095)
    np.testing.assert_array_equal(viewer.layers[1].data, expected)
