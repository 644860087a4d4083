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
