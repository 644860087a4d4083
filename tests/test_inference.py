import numpy as np
import pytest

from napari_lowlight import enhance, estimate_alpha, estimate_difference, inference, restore


@pytest.mark.parametrize("model_name", ["tiny_model", "tiny_dilated_model"])
def test_tiling_equals_untiled(model_name, request, rng):
    tiny_model = request.getfixturevalue(model_name)
    image = rng.random((150, 170)).astype(np.float32)
    untiled = restore(image, 1.0, model=tiny_model, tile_size=1024, device="cpu")
    tiled = restore(image, 1.0, model=tiny_model, tile_size=32, device="cpu")
    np.testing.assert_allclose(tiled, untiled, atol=1e-4)


def test_cached_difference_equals_restore(tiny_model, smooth_image):
    restored, difference = restore(smooth_image, 1.5, model=tiny_model, return_difference=True, tile_size=32)
    cached = estimate_difference(smooth_image, model=tiny_model, tile_size=48)
    np.testing.assert_allclose(cached, difference, atol=1e-5)
    np.testing.assert_allclose(enhance(smooth_image, cached, 1.5, model=tiny_model, tile_size=40), restored, atol=1e-5)


def test_a_denoise_only_restore_skips_estimate_net(tiny_model, smooth_image, monkeypatch):
    expected, _ = restore(smooth_image, 0.0, model=tiny_model, return_difference=True)
    smoothed = []
    smooth = inference._smooth_difference
    monkeypatch.setattr(inference, "_smooth_difference", lambda *args, **kwargs: smoothed.append(1) or smooth(*args, **kwargs))
    # Alpha 0 multiplies the difference map by 0: without it the result is the same, bit for bit.
    np.testing.assert_array_equal(restore(smooth_image, 0.0, model=tiny_model), expected)
    assert not smoothed
    restore(smooth_image, 0.5, model=tiny_model)
    assert smoothed


def test_alpha_changes_the_result(tiny_model, smooth_image):
    weak = restore(smooth_image, 0.5, model=tiny_model)
    strong = restore(smooth_image, 2.0, model=tiny_model)
    assert np.abs(weak - strong).max() > 1e-3


@pytest.mark.parametrize(
    "shape, channel_axis",
    [((40, 50), None), ((2, 3, 40, 50), None), ((40, 50, 3), -1), ((3, 40, 50), 0), ((2, 40, 50, 3), -1), ((1, 1), None), ((3, 5), None)],
)
def test_shapes_are_kept(tiny_model, rng, shape, channel_axis):
    image = rng.random(shape).astype(np.float32)
    restored, difference = restore(image, 1.0, model=tiny_model, channel_axis=channel_axis, return_difference=True)
    assert restored.shape == difference.shape == shape
    assert difference.dtype == np.float32


def test_stack_planes_are_restored_independently(tiny_model, rng):
    stack = rng.random((3, 32, 32)).astype(np.float32)
    whole = restore(stack, 1.0, model=tiny_model)
    # The context belongs to the whole stack: a plane enhanced on its own, with the
    # stack as context image, matches the stack's result (the live-slider path).
    difference = estimate_difference(stack, model=tiny_model)
    plane = enhance(stack[1], difference[1], 1.0, model=tiny_model, context_image=stack)
    np.testing.assert_allclose(plane, whole[1], atol=1e-5)
    alone = enhance(stack[1], difference[1], 1.0, model=tiny_model)
    assert np.abs(alone - whole[1]).max() > 1e-6  # its own statistics differ


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.float16])
def test_dtype_is_kept(tiny_model, rng, dtype):
    image = rng.random((30, 30))
    if np.issubdtype(dtype, np.integer):
        image = image * np.iinfo(dtype).max
    image = image.astype(dtype)
    restored = restore(image, 1.0, model=tiny_model)
    assert restored.dtype == dtype


@pytest.mark.parametrize(("dtype", "data_range"), [(np.uint8, None), (np.uint16, 4095)])
def test_rgba_opacity_is_passed_through(tiny_model, rng, dtype, data_range):
    # Opacity is not an intensity: a 12-bit data range must not clip it.
    image = rng.integers(0, np.iinfo(dtype).max, (20, 24, 4)).astype(dtype)
    restored = restore(image, 1.0, model=tiny_model, channel_axis=-1, data_range=data_range)
    np.testing.assert_array_equal(restored[..., 3], image[..., 3])


def test_float_opacity_does_not_set_the_intensity_scale(tiny_model, rng):
    # Opacity in [0, 255] beside colour in [0, 0.3]: the colour must be read as it is.
    colour = (rng.random((20, 24, 3)) * 0.3).astype(np.float32)
    results = []
    for opacity in (1.0, 255.0):
        image = np.concatenate([colour, np.full((20, 24, 1), opacity, np.float32)], axis=-1)
        results.append(restore(image, 1.0, model=tiny_model, channel_axis=-1))
    np.testing.assert_array_equal(results[0][..., :3], results[1][..., :3])
    assert results[1][..., 3].max() == 255.0


def test_float_outside_unit_range_warns_and_maps_back(tiny_model, rng):
    image = (rng.random((24, 24)) * 4000).astype(np.float32)
    with pytest.warns(UserWarning, match="outside") as caught:
        restored = restore(image, 1.0, model=tiny_model)
    assert restored.max() > 1.5  # back in the input's units
    # The warning points at the caller's line, not into the library.
    assert {record.filename for record in caught if "outside" in str(record.message)} == {__file__}


def test_float_range_warning_points_at_the_caller_of_lazy_restore(tiny_model, rng):
    da = pytest.importorskip("dask.array")
    image = da.from_array((rng.random((24, 24)) * 4000).astype(np.float32), chunks=12)
    with pytest.warns(UserWarning, match="outside") as caught:
        restore(image, 1.0, model=tiny_model)
    assert {record.filename for record in caught if "outside" in str(record.message)} == {__file__}


def test_auto_alpha_estimates_a_colour_photograph_and_denoises_grey_planes(tiny_model, smooth_image):
    photo = np.stack([smooth_image, smooth_image**1.2, smooth_image**0.8], axis=-1)
    alpha = estimate_alpha(photo, model=tiny_model, channel_axis=-1)
    assert 0.5 <= alpha <= 2.0  # the paper model's estimator has no "denoise only" answer
    np.testing.assert_allclose(
        restore(photo, "auto", model=tiny_model, channel_axis=-1), restore(photo, alpha, model=tiny_model, channel_axis=-1), atol=1e-6
    )
    # Grey planes are taken for frames dim by nature unless said to be a photograph.
    assert estimate_alpha(smooth_image, model=tiny_model) == 0.0
    np.testing.assert_array_equal(restore(smooth_image, "auto", model=tiny_model), restore(smooth_image, 0.0, model=tiny_model))
    assert 0.5 <= estimate_alpha(smooth_image, model=tiny_model, photograph=True) <= 2.0
    assert estimate_alpha(photo, model=tiny_model, channel_axis=-1, photograph=False) == 0.0
    with pytest.raises(ValueError, match="photograph"):
        estimate_alpha(photo, model=tiny_model, photograph="yes")


def test_input_is_not_modified(tiny_model, smooth_image):
    copy = smooth_image.copy()
    restore(smooth_image, 1.0, model=tiny_model)
    np.testing.assert_array_equal(smooth_image, copy)


def test_blank_nan_pixels_stay_blank_and_the_live_path_agrees(tiny_model, rng):
    # Astronomy frames mark pixels off the detector or masked as NaN (a mosaic's border, say).
    stack = (rng.random((3, 40, 48)) * 0.3).astype(np.float32)
    stack[:, :, :6] = np.nan
    stack[1, 10, 20] = np.nan
    stack[2] = np.nan  # a plane with nothing in it
    given = stack.copy()
    restored, difference = restore(stack, 0.5, model=tiny_model, return_difference=True)
    np.testing.assert_array_equal(np.isnan(restored), np.isnan(given))
    np.testing.assert_array_equal(np.isnan(stack), np.isnan(given))  # the input untouched
    assert np.isfinite(difference).all()  # Estimate-Net's values at the filled pixels
    cached = estimate_difference(stack, model=tiny_model)
    np.testing.assert_array_equal(enhance(stack, cached, 0.5, model=tiny_model), restored)
    plane = enhance(stack[1], cached[1], 0.5, model=tiny_model, context_image=stack)
    np.testing.assert_allclose(plane, restored[1], atol=1e-6)
    assert np.isfinite(estimate_alpha(stack, model=tiny_model))
    # At alpha 0 the refinement fits its noise on the filled frame.
    denoised = restore(stack[:2], 0.0, model=tiny_model)
    assert np.isfinite(denoised[~np.isnan(stack[:2])]).all()
    with pytest.raises(ValueError, match="infinite"):
        restore(np.where(np.isnan(stack), np.inf, stack), 0.5, model=tiny_model)
    # A lazy image, block by block: each block's overlap holds the nearest pixels its blanks take.
    da = pytest.importorskip("dask.array")
    # (The two planes' own noise, which the refinement of a brightened restore reads, is not the three's.)
    lazy = restore(da.from_array(stack[:2], chunks=(1, 20, 24)), 0.5, model=tiny_model, tile_size=32)
    np.testing.assert_allclose(lazy.compute(), restore(stack[:2], 0.5, model=tiny_model), atol=1e-5)


@pytest.mark.parametrize(
    "image, kwargs, error, word",
    [
        (np.zeros(10), {}, ValueError, "dimensions"),
        (np.full((8, 8), np.nan), {}, ValueError, "NaN"),
        (np.zeros((8, 8), bool), {}, TypeError, "boolean"),
        (np.zeros((8, 8)), {"alpha": -0.5}, ValueError, "alpha"),
        (np.zeros((8, 8)), {"alpha": "bright"}, TypeError, "alpha"),
        (np.zeros((8, 8)), {"tile_size": 3}, ValueError, "tile_size"),
        (np.zeros((8, 8)), {"channel_axis": 0}, ValueError, "two spatial axes"),
        (np.zeros((8, 8)), {"device": "tpu"}, ValueError, "device"),
        (np.zeros((8, 8)), {"data_range": 0}, ValueError, "data_range"),
        (np.zeros((8, 8)), {"data_range": "12 bit"}, TypeError, "data_range"),
    ],
)
def test_bad_input_is_named(tiny_model, image, kwargs, error, word):
    with pytest.raises(error, match=word):
        restore(image, model=tiny_model, **kwargs)


@pytest.mark.parametrize("function", [estimate_alpha, estimate_difference])
def test_a_channel_axis_on_a_grey_image_is_named(tiny_model, function):
    with pytest.raises(ValueError, match="channel_axis=1 on a 2-D image"):
        function(np.zeros((8, 8)), model=tiny_model, channel_axis=1)


def test_enhance_rejects_a_difference_of_another_shape(tiny_model, smooth_image):
    with pytest.raises(ValueError, match="difference"):
        enhance(smooth_image, np.zeros((3, 3), np.float32), 1.0, model=tiny_model)


def test_optimised_inference_matches_the_plain_model(tiny_model, rng):
    """Folded BatchNorm, channels-last, tiling and batching change no value beyond 1e-3."""
    import torch

    from napari_lowlight.inference import _context_sample, _smooth_difference
    from napari_lowlight.network import image_context

    image = rng.random((96, 80)).astype(np.float32)
    context = image_context(torch.from_numpy(np.asarray(_context_sample(image, None), np.float32)).reshape(1, -1))
    low = torch.from_numpy(image)[None, None]
    with torch.no_grad():
        # The plain nets, with the guided filter between them as restore runs it.
        plain_difference = _smooth_difference(image[None], tiny_model.estimate(low, context)[0].numpy(), colours=1)
        plain = tiny_model.enhance(low, torch.from_numpy(plain_difference)[None], torch.tensor([1.3]).view(-1, 1, 1, 1), context)
    restored, difference = restore(image, 1.3, model=tiny_model, tile_size=32, return_difference=True, keep_black=False)
    np.testing.assert_allclose(restored, plain.clamp(0, 1)[0, 0].numpy(), atol=1e-3)
    np.testing.assert_allclose(difference, plain_difference[0], atol=1e-3)


def test_enhance_preview_is_coarse_but_close(tiny_model, smooth_image):
    from napari_lowlight.inference import enhance_preview

    image = np.kron(smooth_image, np.ones((4, 4), np.float32))  # 256x320, smooth at the preview's scale
    difference = estimate_difference(image, model=tiny_model)
    full = enhance(image, difference, 1.4, model=tiny_model)
    preview = enhance_preview(image, difference, 1.4, max_pixels=64 * 80, model=tiny_model)
    assert preview.shape == full.shape and preview.dtype == full.dtype
    assert np.array_equal(preview[0::4, 0::4], preview[1::4, 1::4])  # computed at a quarter of the resolution
    assert np.abs(preview - full).mean() < 0.05
    rgb = np.stack([image] * 3, axis=-1)
    assert enhance_preview(rgb, np.zeros_like(rgb), 1.0, max_pixels=1000, channel_axis=-1, model=tiny_model).shape == rgb.shape


def test_data_range_maps_12_bit_data_like_floats(tiny_model, smooth_image):
    twelve_bit = np.round(smooth_image * 4095).astype(np.uint16)
    restored = restore(twelve_bit, 1.0, model=tiny_model, data_range=4095)
    as_float = restore(twelve_bit / np.float32(4095), 1.0, model=tiny_model)
    assert restored.dtype == np.uint16 and restored.max() <= 4095
    np.testing.assert_allclose(restored / 4095, as_float, atol=1e-3)
    # Without it the same data reads as nearly black (1/16 of the uint16 range): another result.
    assert np.abs(restore(twelve_bit, 1.0, model=tiny_model).astype(int) - restored).max() > 100
    assert estimate_alpha(twelve_bit, model=tiny_model, data_range=4095) == estimate_alpha(
        twelve_bit / np.float32(4095), model=tiny_model
    )


def test_changing_weights_in_place_is_seen_by_the_next_call(tiny_model, smooth_image):
    """Prepared (folded) models are cached; any change to the weights must give a new one."""
    import copy

    import torch

    results = [restore(smooth_image, 1.0, model=tiny_model)]
    with torch.no_grad():
        tiny_model.enhance.tail.bias.sub_(0.3)  # an optimiser step
    results.append(restore(smooth_image, 1.0, model=tiny_model))
    tiny_model.enhance.tail.bias.data = tiny_model.enhance.tail.bias.data - 0.3  # EMA / averaging code
    results.append(restore(smooth_image, 1.0, model=tiny_model))
    for before, after in zip(results, results[1:]):
        assert np.abs(after - before).max() > 0.05
    np.testing.assert_array_equal(results[-1], restore(smooth_image, 1.0, model=copy.deepcopy(tiny_model)))


@pytest.mark.parametrize(
    "transform, inverse",
    [(np.fliplr, np.fliplr), (np.flipud, np.flipud), (np.rot90, lambda image: np.rot90(image, -1))],
    ids=["flip-x", "flip-y", "quarter-turn"],
)
def test_ensemble_is_equivariant_to_flips_and_turns(tiny_dilated_model, rng, transform, inverse):
    image = rng.random((72, 90)).astype(np.float32)

    def turned_back(**options):
        turned = np.ascontiguousarray(transform(image))
        # The refinement's blocks lie on a grid from the image's origin: the network's output alone.
        return inverse(restore(turned, 1.2, model=tiny_dilated_model, tile_size=32, refine=False, **options))

    plain = restore(image, 1.2, model=tiny_dilated_model, tile_size=32, refine=False)
    assert np.abs(turned_back() - plain).max() > 1e-3  # the network alone is not equivariant
    ensemble = restore(image, 1.2, model=tiny_dilated_model, tile_size=32, refine=False, ensemble=True)
    np.testing.assert_allclose(turned_back(ensemble=True), ensemble, atol=1e-5)


def test_ensemble_is_seam_free_and_the_same_on_every_path(tiny_dilated_model, rng):
    da = pytest.importorskip("dask.array")
    image = rng.random((150, 170)).astype(np.float32)
    options = dict(model=tiny_dilated_model, ensemble=True)
    whole, difference = restore(image, 0.8, tile_size=1024, return_difference=True, **options)
    np.testing.assert_allclose(restore(image, 0.8, tile_size=32, **options), whole, atol=1e-4)
    np.testing.assert_allclose(estimate_difference(image, tile_size=48, **options), difference, atol=1e-5)
    np.testing.assert_allclose(enhance(image, difference, 0.8, tile_size=40, **options), whole, atol=1e-4)
    lazy = restore(da.from_array(image, chunks=64), 0.8, tile_size=32, **options)
    np.testing.assert_allclose(lazy.compute(), whole, atol=1e-4)


def test_compiled_inference_matches_eager(tiny_model, smooth_image):
    eager = restore(smooth_image, 1.3, model=tiny_model, tile_size=32)
    compiled = restore(smooth_image, 1.3, model=tiny_model, tile_size=32, compile=True)
    np.testing.assert_allclose(compiled, eager, atol=1e-3)


def _replace_compile(monkeypatch, compile):
    """Make ``compile`` stand for ``torch.compile``, with no compiled model cached."""
    import torch

    from napari_lowlight import inference
    from napari_lowlight._cache import ComputedCache

    monkeypatch.setattr(torch, "compile", compile)
    monkeypatch.setattr(inference, "_RUNNERS", ComputedCache(4))


def _compile_raising(monkeypatch, error):
    """Make ``torch.compile`` give modules that raise ``error``."""

    def compile(module):
        def call(*args):
            raise error

        return call

    _replace_compile(monkeypatch, compile)


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(tiny_model, smooth_image, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    _compile_raising(monkeypatch, TorchDynamoException("no C++ compiler found"))
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        restored = restore(smooth_image, 1.3, model=tiny_model, compile=True)
    np.testing.assert_array_equal(restored, restore(smooth_image, 1.3, model=tiny_model))


def test_a_compiler_refusing_this_python_falls_back_to_eager(tiny_model, smooth_image, monkeypatch):
    def compile(module):
        raise RuntimeError("torch.compile is not supported on Python 3.14+")

    _replace_compile(monkeypatch, compile)
    with pytest.warns(RuntimeWarning, match="not supported on Python"):
        restored = restore(smooth_image, 1.3, model=tiny_model, compile=True)
    np.testing.assert_array_equal(restored, restore(smooth_image, 1.3, model=tiny_model))


def test_other_errors_of_a_compiled_model_are_not_hidden(tiny_model, smooth_image, monkeypatch):
    _compile_raising(monkeypatch, ValueError("a real problem"))
    with pytest.raises(ValueError, match="a real problem"):
        restore(smooth_image, 1.7, model=tiny_model, compile=True)


@pytest.mark.parametrize(("dtype", "data_range"), [(np.uint16, 70000), (np.int64, None), (np.uint64, None)])
def test_integer_results_clip_to_the_dtype_never_wrap(tiny_model, dtype, data_range):
    image = np.full((24, 24), np.iinfo(dtype).max, dtype)
    image[::2] = 0
    restored = restore(image, 2.0, model=tiny_model, data_range=data_range)
    assert restored.dtype == dtype
    assert restored.min() >= 0 and restored.max() > np.iinfo(dtype).max // 2  # bright stays bright


def test_black_toe_takes_black_to_0_and_keeps_the_brighter_tones():
    from napari_lowlight.inference import black_toe

    tones = np.linspace(0, 1, 101, dtype=np.float32)
    toed = black_toe(tones, 0.1)
    assert toed.dtype == np.float32
    assert np.all(toed[tones <= 0.1] == 0) and toed[-1] == pytest.approx(1)
    assert np.all(np.diff(toed[tones >= 0.1]) > 0)
    assert np.abs(toed - tones)[tones >= 0.5].max() < 1e-3
    np.testing.assert_array_equal(black_toe(tones, 0.0), tones)


def test_black_regions_stay_black_above_alpha_1():
    """The shipped nets restore a black backdrop as grey at a high alpha; keep_black takes it back to black."""
    yy, xx = np.mgrid[:96, :96]
    image = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 20**2, 0.25, 0.0).astype(np.float32)
    backdrop = (yy - 48) ** 2 + (xx - 48) ** 2 > 32**2  # beyond the nets' reach of the disc's edge
    raw = restore(image, 1.5, keep_black=False)
    kept = restore(image, 1.5)
    assert raw[backdrop].mean() > 0.05
    assert kept[backdrop].mean() < 0.01
    lit = (yy - 48) ** 2 + (xx - 48) ** 2 < 10**2
    np.testing.assert_allclose(kept[lit], raw[lit], atol=0.02)
    np.testing.assert_array_equal(restore(image, 0.0), restore(image, 0.0, keep_black=False))
