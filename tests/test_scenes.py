import numpy as np
import pytest

from napari_lowlight.scenes import filament_network, fluorescence_scene, generated_scenes, star_field


@pytest.mark.parametrize("make", [fluorescence_scene, filament_network, star_field])
def test_scene_is_a_dark_float_image_in_range(make):
    scene = make((64, 80), seed=3)
    assert scene.shape == (64, 80) and scene.dtype == np.float32
    assert 0 <= scene.min() and scene.max() <= 1
    # Scientific frames are mostly dark with bright structures: that is why they are here.
    assert np.median(scene) < 0.3 < scene.max()


def test_generated_scenes_are_seeded_and_append_only():
    first = generated_scenes(3, (32, 32), seed=7)
    again = generated_scenes(4, (32, 32), seed=7)
    assert len(again) == 4
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], generated_scenes(1, (32, 32), seed=8)[0])
    assert not np.array_equal(first[0], first[2])


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_generated_scenes_rejects_a_bad_count(count):
    with pytest.raises(ValueError, match="count"):
        generated_scenes(count)


def test_generated_scenes_of_one_kind_only():
    fluorescence = generated_scenes(2, (32, 32), seed=7, kinds=["fluorescence"])
    mixed = generated_scenes(2, (32, 32), seed=7)
    np.testing.assert_array_equal(fluorescence[0], mixed[0])  # scene 0 is a fluorescence frame in both
    seed_1 = int(np.random.default_rng([7, 1]).integers(2**31))
    np.testing.assert_array_equal(fluorescence[1], fluorescence_scene((32, 32), seed=seed_1))
    assert not np.array_equal(fluorescence[1], mixed[1])  # a star field there


@pytest.mark.parametrize("kinds", [[], "fluorescence", ["galaxies"]])
def test_generated_scenes_rejects_bad_kinds(kinds):
    with pytest.raises(ValueError, match="kinds"):
        generated_scenes(1, kinds=kinds)


def _fine_detail(image):
    """Share of the image's variation finer than a 1.5-pixel Gaussian."""
    from scipy import ndimage

    return np.std(image - ndimage.gaussian_filter(image, 1.5)) / np.std(image)


def test_a_wider_point_spread_function_blurs_the_scenes():
    sharp, blurred = (
        generated_scenes(6, (64, 64), seed=7, kinds=["fluorescence"], psf_sigma_range=sigmas)
        for sigmas in ((0.7, 0.7), (3.0, 3.0))
    )
    assert all(_fine_detail(b) < 0.5 * _fine_detail(s) for s, b in zip(sharp, blurred))
    seed_1 = int(np.random.default_rng([7, 1]).integers(2**31))
    stars = generated_scenes(2, (32, 32), seed=7, psf_sigma_range=(3.0, 3.0))[1]
    np.testing.assert_array_equal(stars, star_field((32, 32), seed=seed_1, psf_sigma_range=(3.0, 3.0)))
    # The default is each kind's own range: the scenes of earlier recipes.
    assert not np.array_equal(stars, generated_scenes(2, (32, 32), seed=7)[1])
    np.testing.assert_array_equal(generated_scenes(2, (32, 32), seed=7)[1], star_field((32, 32), seed=seed_1))


def test_filament_networks_hold_more_fine_detail_than_the_sparse_scenes():
    # At the same blur and at the recipes' scene size, so that only the structure differs.
    sparse, dense = (
        generated_scenes(8, (256, 256), seed=7, kinds=[kind], psf_sigma_range=(1.0, 1.0))
        for kind in ("fluorescence", "filament_network")
    )
    assert np.mean([_fine_detail(s) for s in dense]) > 1.3 * np.mean([_fine_detail(s) for s in sparse])


@pytest.mark.parametrize("sigmas", [(0.0, 1.0), (2.0, 1.0)])
def test_generated_scenes_rejects_a_bad_psf_range(sigmas):
    with pytest.raises(ValueError, match="psf_sigma_range"):
        generated_scenes(1, psf_sigma_range=sigmas)
