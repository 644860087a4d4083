"""The noise model fitted on a frame alone, and the Wiener refinement it drives."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_lowlight import enhance, estimate_difference, restore
from napari_lowlight.noise import NoiseModel, fit_noise, refine_brightened, wiener_refine


def _psnr(clean, output):
    return 10 * np.log10(1 / np.mean((clean - output) ** 2))


@pytest.fixture
def cells(rng):
    """A clean 192x160 frame of blurred bright spots on a dim background, in [0, 1]."""
    frame = np.zeros((192, 160))
    frame[tuple(rng.integers(0, 160, (2, 40)))] = 1.0
    frame = ndimage.gaussian_filter(frame, 1.5)
    return (0.05 + 0.9 * frame / frame.max()).astype(np.float64)


def _poisson_gaussian(clean, rng, photons=50, read_sigma=0.01):
    return rng.poisson(clean * photons) / photons + rng.normal(0, read_sigma, clean.shape)


def test_the_fit_recovers_shot_and_read_noise_from_one_frame(rng):
    ramp = np.tile(np.linspace(0.05, 0.95, 256), (256, 1))
    noise = fit_noise(_poisson_gaussian(ramp, rng, read_sigma=0.05))
    assert noise.gain == pytest.approx(1 / 50, rel=0.15)
    assert noise.read_variance == pytest.approx(0.05**2, rel=0.3)


def test_stabilising_gives_unit_noise_at_every_intensity_and_inverts(rng):
    noise = NoiseModel(gain=1 / 50, read_variance=1e-4)
    for level in (0.05, 0.3, 0.9):
        samples = _poisson_gaussian(np.full(100_000, level), rng)
        assert noise.stabilise(samples).std() == pytest.approx(1.0, abs=0.05)
    values = np.linspace(0, 1, 11)
    np.testing.assert_allclose(noise.unstabilise(noise.stabilise(values)), values, atol=1e-12)


def test_refinement_gives_back_what_an_oversmoothed_estimate_lost(cells, rng):
    noisy = _poisson_gaussian(cells, rng)
    smoothed = ndimage.gaussian_filter(noisy, 2.5)
    refined = wiener_refine(noisy, smoothed, fit_noise(noisy))
    assert refined.dtype == np.float32 and refined.shape == cells.shape
    assert _psnr(cells, refined) > _psnr(cells, smoothed) + 2
    assert _psnr(cells, refined) > _psnr(cells, noisy) + 3


@pytest.mark.parametrize("guide_block", [8, 16])
def test_a_window_on_the_grid_refines_as_the_whole_frame(cells, rng, guide_block):
    """What lets lazy blocks refine alone: a pixel depends on the frame within its reach."""
    noisy = _poisson_gaussian(np.tile(cells, (2, 2)), rng)
    estimate = ndimage.gaussian_filter(noisy, 1.5)
    noise = fit_noise(noisy)
    options = dict(block=8, step=4, passes=2, guide_block=guide_block)
    whole = wiener_refine(noisy, estimate, noise, **options)
    reach = guide_block - 1 + 7
    window = (slice(16, 368), slice(8, 312))  # starts on the grid of 4
    part = wiener_refine(noisy[window], estimate[window], noise, **options)
    np.testing.assert_allclose(part[reach:-reach, reach:-reach], whole[window][reach:-reach, reach:-reach], atol=1e-5)


def test_a_first_pass_block_off_the_grid_is_refused(cells):
    with pytest.raises(ValueError, match=r"guide_block \(6\) must be a positive multiple of step \(4\)"):
        wiener_refine(cells, cells, NoiseModel(1e-3, 1e-5), guide_block=6)


def test_the_refinement_keeps_the_intensity_of_spots_at_a_few_photons(cells, rng):
    """Filtered in the frame's own intensities, the kept coefficients keep their mean.

    Through the Anscombe transform and its algebraic inverse the spots came out about 8% dimmer.
    """
    noisy = _poisson_gaussian(cells, rng, photons=10, read_sigma=0.002)
    refined = wiener_refine(noisy, ndimage.gaussian_filter(cells, 1.0), fit_noise(noisy))
    spots = cells > np.quantile(cells, 0.8)
    assert refined[spots].mean() == pytest.approx(noisy[spots].mean(), rel=0.05)
    assert refined.mean() == pytest.approx(noisy.mean(), rel=0.01)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(block=10, step=4), "multiple"),
        (dict(passes=0), "passes"),
        (dict(step=0), "step"),
        (dict(guide_noise=0), "guide_noise"),
    ],
)
def test_bad_refinement_settings_are_named(kwargs, word):
    frame = np.zeros((16, 16))
    with pytest.raises(ValueError, match=word):
        wiener_refine(frame, frame, NoiseModel(0.01, 0.0), **kwargs)


@pytest.mark.parametrize("refine", [wiener_refine, refine_brightened])
def test_frames_of_different_shapes_are_refused(refine):
    with pytest.raises(ValueError, match="shapes"):
        refine(np.zeros((16, 16)), np.zeros((16, 17)), NoiseModel(0.01, 0.0))


@pytest.mark.parametrize("gain, read_variance", [(0.0, 0.0), (np.nan, 0.0), (0.01, -1.0)])
def test_a_bad_noise_model_is_named(gain, read_variance):
    with pytest.raises(ValueError, match="gain|read_variance"):
        NoiseModel(gain, read_variance)


def test_restore_refines_grey_frames_at_every_alpha(tiny_model, cells, rng):
    noisy = np.clip(_poisson_gaussian(cells, rng), 0, 1).astype(np.float32)
    for alpha in (0.0, 1.0):
        plain = restore(noisy, alpha, model=tiny_model, refine=False)
        assert np.abs(restore(noisy, alpha, model=tiny_model) - plain).max() > 1e-3


def test_refining_a_brightened_restore_gives_back_detail_and_keeps_its_tone(cells, rng):
    """An over-smoothed brightening by a tone curve: the frame's detail comes back under the curve."""
    noisy = np.clip(_poisson_gaussian(cells / 8, rng, photons=2000, read_sigma=0.002), 0, 1)
    truth = np.sqrt(cells)  # the tone curve the restore brightened the frame by, on the clean frame
    restored = ndimage.gaussian_filter(np.sqrt(8 * noisy), 1.5)
    refined = refine_brightened(noisy, restored, fit_noise(noisy))
    assert refined.dtype == np.float32 and refined.shape == cells.shape
    assert _psnr(truth, refined) > _psnr(truth, restored) + 1
    assert abs(refined.mean() - restored.mean()) < 0.01


def test_a_clean_textured_frame_barely_brightened_keeps_its_tone(rng):
    """Noise read off texture (too high) must not steepen the local tone curve into a contrast boost."""
    shading = ndimage.gaussian_filter(rng.random((128, 128)), 6)
    frame = 0.3 + 0.4 * (shading - shading.min()) / np.ptp(shading)
    frame += 0.05 * ndimage.gaussian_filter(rng.standard_normal(frame.shape), 1)  # texture, no noise
    restored = 1.05 * frame  # a slight brightening that kept the texture
    refined = refine_brightened(frame, restored, NoiseModel(gain=0.002, read_variance=0.002))
    assert _psnr(restored, refined) > 30  # was 22 with the slope over the variance less that noise


def test_a_lazy_brightened_restore_equals_in_memory(tiny_model, rng):
    """Blocks overlap by the local gain's reach too (grey and colour)."""
    clean = np.tile(np.linspace(0.02, 0.3, 180), (700, 1))
    grey = np.clip(_poisson_gaussian(clean, rng), 0, 1).astype(np.float32)
    colour = np.stack([grey, grey[::-1], grey[:, ::-1]], axis=-1)
    for image, chunks, channel_axis in ((grey, (260, 180), None), (colour, (260, 180, 3), -1)):
        lazy = restore(da.from_array(image, chunks=chunks), 1.0, model=tiny_model, tile_size=32, channel_axis=channel_axis)
        assert len(lazy.chunks[0]) > 1
        whole = restore(image, 1.0, model=tiny_model, tile_size=32, channel_axis=channel_axis)
        np.testing.assert_allclose(lazy.compute(), whole, atol=2e-4)


def test_a_refined_plane_matches_its_stack_on_every_path(tiny_model, cells, rng):
    """The live slider enhances one plane with the stack as context: the noise is the stack's too."""
    stack = np.stack([np.clip(_poisson_gaussian(cells, rng, photons=p), 0, 1) for p in (20, 200)]).astype(np.float32)
    whole = restore(stack, 0.0, model=tiny_model)
    difference = estimate_difference(stack, model=tiny_model)
    plane = enhance(stack[0], difference[0], 0.0, model=tiny_model, context_image=stack)
    np.testing.assert_allclose(plane, whole[0], atol=1e-5)


def test_a_lazy_refined_restore_equals_in_memory(tiny_model, rng):
    """Blocks overlap by the refinement's reach too, and start on its grid."""
    clean = np.tile(np.linspace(0.1, 0.9, 200), (820, 1))
    image = np.clip(_poisson_gaussian(clean, rng), 0, 1).astype(np.float32)
    lazy = restore(da.from_array(image, chunks=(300, 200)), 0.0, model=tiny_model, tile_size=32)
    assert len(lazy.chunks[0]) > 1
    np.testing.assert_allclose(lazy.compute(), restore(image, 0.0, model=tiny_model, tile_size=32), atol=2e-4)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (40, 31), (2, 3, 20, 50)])
def test_planes_smaller_than_a_window_are_restored_unrefined(tiny_model, rng, shape):
    image = rng.random(shape).astype(np.float32)
    np.testing.assert_array_equal(restore(image, 0.0, model=tiny_model), restore(image, 0.0, model=tiny_model, refine=False))


def test_colour_images_are_refined_only_when_brightened(tiny_model, rng):
    """Demosaicing and JPEG correlate a colour photograph's noise, which the model takes as
    independent: what the denoise-only refinement costs there, a brightening's smoothing outweighs."""
    image = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    refined = restore(image, 0.0, model=tiny_model, channel_axis=-1)
    np.testing.assert_array_equal(refined, restore(image, 0.0, model=tiny_model, channel_axis=-1, refine=False))
    plain = restore(image, 1.0, model=tiny_model, channel_axis=-1, refine=False)
    assert np.abs(restore(image, 1.0, model=tiny_model, channel_axis=-1).astype(int) - plain).max() > 0


@pytest.mark.parametrize("values", [(0.0,), (0.0, 1.0), (0.2, 0.2001)])
def test_frames_of_one_or_two_values_fit_and_refine(tiny_model, rng, values):
    """A mask or a blank frame at alpha 0: quantile bins fall between tied values, and must not break the fit."""
    frame = rng.choice(np.array(values, dtype=np.float32), size=(64, 64))
    noise = fit_noise(frame)
    assert np.isfinite(noise.gain) and np.isfinite(noise.read_variance)
    assert np.isfinite(restore(frame, 0.0, model=tiny_model)).all()
