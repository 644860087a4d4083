"""Property-based tests: any shape, dtype and value either works or fails cleanly."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_lowlight import new_model, restore, synthesize_low_light

DTYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.int16, np.int32, np.float16, np.float32, np.float64]

# One tiny model for every example: building it per example would dominate the run time.
MODEL = new_model(width=2, estimate_blocks=1, enhance_blocks=1, seed=0).eval()


@st.composite
def images(draw):
    """(image, channel_axis): 2-D, N-D or RGB(A), odd sizes, edge values included."""
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["grey", "stack", "rgb"]))
    side = st.integers(1, 70)
    if kind == "grey":
        shape, axis = (draw(side), draw(side)), None
    elif kind == "stack":
        shape, axis = (draw(st.integers(1, 3)), draw(st.integers(1, 20)), draw(side)), None
    else:
        shape, axis = (draw(side), draw(side), draw(st.sampled_from([3, 4]))), -1
    if np.issubdtype(dtype, np.floating):
        width = np.dtype(dtype).itemsize * 8
        elements = st.floats(-2.0, 3.0, width=width) | st.sampled_from([np.nan, np.inf, -np.inf])
        fill = draw(st.sampled_from([None, 0.0, 1.0, 0.5]))
        array = draw(hnp.arrays(dtype, shape, elements=elements, fill=st.just(fill) if fill is not None else None))
    else:
        array = draw(hnp.arrays(dtype, shape))
    return array, axis


def _check(function, image, axis):
    copy = image.copy()
    try:
        result = function(image, axis)
    except (ValueError, TypeError) as error:
        message = str(error)
        assert any(word in message for word in ("image", "NaN", "boolean", "channel", "dimensions")), message
        bad_values = image.dtype.kind == "f" and not np.isfinite(image).all()
        assert image.dtype == bool or bad_values, f"refused a valid image: {message}"
    else:
        assert result.shape == image.shape and result.dtype == image.dtype
        if result.dtype.kind == "f":
            # NaN pixels are blank, and stay so; every other pixel gets a value.
            blank = np.isnan(image) if image.dtype.kind == "f" else np.zeros(image.shape, bool)
            np.testing.assert_array_equal(np.isnan(result), blank)
            assert np.isfinite(result[~blank]).all()
    np.testing.assert_array_equal(image, copy)


common = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@common
@given(images())
def test_restore_any_input(example):
    image, axis = example
    _check(lambda im, ax: restore(im, 1.0, model=MODEL, channel_axis=ax, tile_size=32, device="cpu"), image, axis)


@common
@given(images(), st.floats(0.1, 3.0), st.floats(0.1, 3.0))
def test_synthesize_any_input(example, alpha, gamma):
    image, axis = example
    _check(lambda im, ax: synthesize_low_light(im, alpha, gamma, channel_axis=ax, noise_sigma=0.01, seed=0), image, axis)


@pytest.mark.parametrize("alpha", [-1, -1e-9, float("nan"), float("inf"), "1", None, True])
def test_bad_alpha_is_named(alpha):
    with pytest.raises((ValueError, TypeError), match="alpha"):
        restore(np.zeros((8, 8)), alpha, model=MODEL)
    with pytest.raises((ValueError, TypeError), match="alpha"):
        synthesize_low_light(np.zeros((8, 8)), alpha, 1.0)


def test_alpha_zero_restores_but_does_not_synthesize():
    # Restoring at alpha 0 is "denoise only"; synthesising at alpha 0 would darken nothing.
    assert restore(np.zeros((8, 8)), 0, model=MODEL).shape == (8, 8)
    with pytest.raises(ValueError, match="alpha"):
        synthesize_low_light(np.zeros((8, 8)), 0, 1.0)
