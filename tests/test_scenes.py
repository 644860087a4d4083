import numpy as np
import pytest

from napari_lowlight.scenes import fluorescence_scene, generated_scenes, star_field


@pytest.mark.parametrize("make", [fluorescence_scene, star_field])
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
