"""The real-image benchmark's own pieces (benchmarks/bench_real.py, benchmarks/peers.py): P3 and the peers."""

import numpy as np
import pytest
import torch

# `python -m pytest` from the repository root puts it on sys.path; benchmarks/ is a package there.
bench_real = pytest.importorskip("benchmarks.bench_real")
peers = pytest.importorskip("benchmarks.peers")


@pytest.fixture
def photo(rng):
    y, x = np.mgrid[:48, :64] / 64.0
    image = np.stack([0.3 + 0.5 * x, 0.2 + 0.6 * y, 0.5 + 0.2 * np.sin(6 * x)], axis=-1)
    return np.clip(image + 0.05 * rng.random(image.shape), 0, 1)


def test_srgb_curves_are_inverse():
    values = np.linspace(0, 1, 101)
    assert np.allclose(bench_real.linear_to_srgb(bench_real.srgb_to_linear(values)), values, atol=1e-9)


def test_camera_darkening_is_dark_noisy_8_bit_and_seeded(photo):
    low, settings = bench_real.camera_darkening(photo, np.random.default_rng(3))
    again, _ = bench_real.camera_darkening(photo, np.random.default_rng(3))
    assert low.dtype == np.uint8 and low.shape == photo.shape
    np.testing.assert_array_equal(low, again)
    assert 8 <= settings["exposure"] <= 30 and 20 <= settings["photons"] <= 500
    # At least 8x less linear light: the sRGB values drop to well under half.
    assert low.mean() / 255 < 0.5 * photo.mean()
    # Shot noise: the darkened copies of one photo differ from seed to seed.
    other, _ = bench_real.camera_darkening(photo, np.random.default_rng(4))
    assert not np.array_equal(low, other)


def test_no_reference_measures_see_brightness_clipping_haze_and_noise(photo, rng):
    low = 0.1 * photo
    mean, clipped, black_level, noise = bench_real.no_reference_measures(low, photo)
    assert mean == pytest.approx(photo.mean())
    assert clipped == 0
    noisy = np.clip(photo + rng.normal(0, 0.05, photo.shape), 0, 1)
    assert bench_real.no_reference_measures(low, noisy)[3] > 2 * noise
    saturated = photo.copy()
    saturated[:12, :, 0] = 1.0
    assert bench_real.no_reference_measures(low, saturated)[1] == pytest.approx(12 / 48)
    # A photo without black pixels has no black level; black kept black scores 0; a haze lifts it.
    assert np.isnan(black_level)
    low[:5] = 0.0
    assert bench_real.no_reference_measures(low, np.where(low > 0, photo, 0.0))[2] == 0
    assert bench_real.no_reference_measures(low, 0.1 + 0.9 * photo)[2] == pytest.approx(0.1 + 0.9 * photo[:5].mean())


def test_detail_kept_is_one_unchanged_below_one_smoothed_above_one_noisier(photo, rng):
    from scipy import ndimage

    assert bench_real.detail_kept(photo, photo) == pytest.approx(1.0)
    assert bench_real.detail_kept(photo, ndimage.gaussian_filter(photo, (1.5, 1.5, 0))) < 0.5
    assert bench_real.detail_kept(photo, np.clip(photo + rng.normal(0, 0.05, photo.shape), 0, 1)) > 1.5


def test_w2s_scores_average_per_channel_of_the_file_name():
    frames = ["w2s_001_0.png", "w2s_001_1.png", "w2s_002_0.png", "w2s_012_2.png"]
    means = bench_real.mean_by_channel(frames, {"ours": [30.0, 20.0, 32.0, 40.0]})
    assert means == {"ours": {0: 31.0, 1: 20.0, 2: 40.0}}


@pytest.mark.parametrize("network", [peers.ZeroDCE(), peers.SCIIllumination().eval()])
def test_peers_keep_shape_and_range_for_grey_and_rgb(network, photo):
    for image in (photo, photo.mean(axis=-1)):
        out = peers.apply_peer(network, image)
        assert out.shape == image.shape
        assert 0 <= out.min() and out.max() <= 1


def test_zero_dce_with_zero_curves_is_the_identity(photo):
    network = peers.ZeroDCE()
    with torch.no_grad():
        network.e_conv7.weight.zero_()
        network.e_conv7.bias.zero_()
    np.testing.assert_allclose(peers.apply_peer(network, photo), photo, atol=1e-6)


@pytest.mark.parametrize(
    "argv",
    [["--quick", "--json", "/tmp/scratch/r.json", "--seed", "3"], ["--quick", "--json=/tmp/scratch/r.json", "--seed", "3"]],
)
def test_the_printed_command_reruns_the_benchmark_without_the_scratch_json_path(argv, monkeypatch):
    report = pytest.importorskip("benchmarks._report")
    monkeypatch.setattr("sys.argv", ["bench_real.py", *argv])
    assert report.command_line("benchmarks.bench_real") == "python -m benchmarks.bench_real --quick --seed 3"
