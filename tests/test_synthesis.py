import numpy as np
import pytest

from napari_lowlight import difference_map, synthesize_low_light


@pytest.mark.parametrize("alpha, gamma", [(0.5, 0.5), (1.0, 0.5), (1.0, 2.0), (2.0, 1.0)])
def test_matches_equation_5_exactly(rng, alpha, gamma):
    image = rng.random((33, 47))
    low = synthesize_low_light(image, alpha, gamma)
    expected = np.clip(image - alpha * (1 - image**gamma) * image, 0, 1)
    assert low.dtype == np.float64
    np.testing.assert_array_equal(low, expected)


def test_luminous_sources_stay_bright_and_dark_parts_go_black():
    image = np.array([[1.0, 0.05], [0.5, 0.0]])
    low = synthesize_low_light(image, 2.0, 1.0)
    assert low[0, 0] == 1.0
    assert low[0, 1] == 0.0  # 0.05 - 2 * 0.95 * 0.05 < 0, clipped
    assert low[1, 1] == 0.0


def test_difference_map_formula(rng):
    image = rng.random((20, 30)).astype(np.float32)
    np.testing.assert_allclose(difference_map(image, 0.7), (1 - image**0.7) * image, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_dtype_round_trip(rng, dtype):
    top = np.iinfo(dtype).max
    image = rng.integers(0, top + 1, (25, 31)).astype(dtype)
    low = synthesize_low_light(image, 1.0, 0.5)
    assert low.dtype == dtype and low.shape == image.shape
    unit = image / top
    expected = np.rint(np.clip(unit - (1 - unit**0.5) * unit, 0, 1) * top)
    assert np.abs(low.astype(np.int64) - expected).max() <= 1


def test_gaussian_noise_statistics():
    image = np.full((256, 256), 0.8)
    low = synthesize_low_light(image, 0.5, 1.0, noise="gaussian", noise_sigma=0.05, seed=3)
    clean_low = 0.8 - 0.5 * 0.2 * 0.8
    assert abs(low.mean() - clean_low) < 0.002
    assert abs(low.std() - 0.05) < 0.002


def test_poisson_gaussian_noise_statistics():
    image = np.full((256, 256), 1.0)  # alpha leaves full intensity unchanged
    low = synthesize_low_light(image * 0.5, 1e-9, 1.0, noise="poisson-gaussian", photons=100, noise_sigma=0.01, seed=4)
    expected_var = 0.5 / 100 + 0.01**2
    assert abs(low.var() - expected_var) / expected_var < 0.05
    assert abs(low.mean() - 0.5) < 0.005


def test_seed_reproduces_noise(rng):
    image = rng.random((16, 16))
    first = synthesize_low_light(image, 1.0, 1.0, noise_sigma=0.02, seed=7)
    np.testing.assert_array_equal(first, synthesize_low_light(image, 1.0, 1.0, noise_sigma=0.02, seed=7))
    assert not np.array_equal(first, synthesize_low_light(image, 1.0, 1.0, noise_sigma=0.02, seed=8))


@pytest.mark.parametrize(("dtype", "data_range"), [(np.uint8, None), (np.uint16, 4095)])
def test_rgba_opacity_passes_through(rng, dtype, data_range):
    image = rng.integers(0, np.iinfo(dtype).max, (10, 12, 4)).astype(dtype)
    low = synthesize_low_light(image, 1.0, 1.0, channel_axis=-1, data_range=data_range)
    np.testing.assert_array_equal(low[..., 3], image[..., 3])
    assert (low[..., :3] <= image[..., :3]).all()


def test_input_is_not_modified(rng):
    image = rng.random((12, 12)).astype(np.float32)
    copy = image.copy()
    synthesize_low_light(image, 1.5, 0.5, noise_sigma=0.1, seed=0)
    np.testing.assert_array_equal(image, copy)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"alpha": 0}, ValueError, "alpha"),
        ({"alpha": -1}, ValueError, "alpha"),
        ({"alpha": float("nan")}, ValueError, "alpha"),
        ({"alpha": "strong"}, TypeError, "alpha"),
        ({"gamma": 0}, ValueError, "gamma"),
        ({"noise": "salt"}, ValueError, "noise"),
        ({"noise": "poisson-gaussian"}, ValueError, "photons"),
        ({"channel_axis": 5}, ValueError, "channel_axis"),
        ({"data_range": -4095}, ValueError, "data_range"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, word):
    arguments = {"alpha": 1.0, "gamma": 1.0} | kwargs
    alpha, gamma = arguments.pop("alpha"), arguments.pop("gamma")
    with pytest.raises(error, match=word):
        synthesize_low_light(np.zeros((8, 8, 3)), alpha, gamma, **arguments)


def test_nan_image_is_refused():
    image = np.zeros((8, 8))
    image[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        synthesize_low_light(image, 1.0, 1.0)


def test_data_range_scales_integer_data(rng):
    twelve_bit = rng.integers(0, 4096, (16, 16)).astype(np.uint16)
    low = synthesize_low_light(twelve_bit, 1.0, 0.5, data_range=4095)
    expected = synthesize_low_light(twelve_bit / 4095, 1.0, 0.5)
    assert low.dtype == np.uint16
    np.testing.assert_allclose(low, expected * 4095, atol=0.5)
    np.testing.assert_allclose(difference_map(twelve_bit, 0.5, data_range=4095), difference_map(twelve_bit / 4095, 0.5), atol=1e-6)
