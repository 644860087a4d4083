"""The guided filter that makes Estimate-Net's difference map follow the image's edges."""

import numpy as np
import pytest
from scipy import ndimage

from napari_lowlight import estimate_difference, inference
from napari_lowlight.guided import guided_filter


def test_an_affine_function_of_the_guide_comes_back_unchanged(rng):
    guide = rng.random((40, 48))
    source = 0.3 * guide + 0.1
    np.testing.assert_allclose(guided_filter(guide, source, 3, 1e-8), source, atol=1e-5)


def test_noise_is_smoothed_and_the_guides_edge_kept(rng):
    """A step guide and a noisy step map: flat parts smoothed, the step as sharp as the guide's."""
    guide = np.zeros((64, 64))
    guide[:, 32:] = 1.0
    step = 0.2 * (1 - guide)
    noisy = step + rng.normal(0, 0.02, step.shape)
    followed = guided_filter(guide, noisy, 4, 1e-3)
    blurred = ndimage.uniform_filter(ndimage.uniform_filter(noisy, 9), 9)
    flat = np.s_[:, 4:24]
    assert followed[flat].std() < 0.3 * noisy[flat].std()
    edge = np.s_[:, 28:36]
    assert np.abs(followed - step)[edge].mean() < 0.2 * np.abs(blurred - step)[edge].mean()


def test_a_flat_guide_gives_the_maps_local_mean(rng):
    source = rng.random((30, 30))
    followed = guided_filter(np.full((30, 30), 0.5), source, 2, 1e-3)
    np.testing.assert_allclose(followed, ndimage.uniform_filter(ndimage.uniform_filter(source, 5), 5), atol=1e-5)


@pytest.mark.parametrize(
    "args, word", [((np.zeros((8, 8)), np.zeros((8, 9)), 2, 1e-3), "shapes"), ((np.zeros((8, 8)), np.zeros((8, 8)), 0, 1e-3), "radius"), ((np.zeros((8, 8)), np.zeros((8, 8)), 2, 0.0), "eps")]
)
def test_bad_arguments_are_named(args, word):
    with pytest.raises(ValueError, match=word):
        guided_filter(*args)


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_the_difference_map_is_smoothed_on_a_noisy_flat_image(tiny_model, rng, monkeypatch, channel_axis):
    shape = (64, 64) if channel_axis is None else (64, 64, 3)
    image = np.clip(0.2 + rng.normal(0, 0.05, shape), 0, 1).astype(np.float32)
    smoothed = estimate_difference(image, model=tiny_model, channel_axis=channel_axis)
    monkeypatch.setattr(inference, "_smooth_difference", lambda planes, difference, colours: difference)
    raw = estimate_difference(image, model=tiny_model, channel_axis=channel_axis)

    def detail(difference):
        return (difference - ndimage.uniform_filter(difference, 3)).std()

    assert smoothed.shape == image.shape and (smoothed >= 0).all()
    assert detail(smoothed) < 0.5 * detail(raw)
