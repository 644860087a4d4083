"""The LIME baseline of the benchmarks (benchmarks/lime.py): small, fast checks."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ is not part of the installed package: load the module from its file.
_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "lime.py"
_spec = importlib.util.spec_from_file_location("benchmarks_lime", _PATH)
lime_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lime_module)


@pytest.fixture
def dark_rgb():
    rng = np.random.default_rng(0)
    smooth = np.linspace(0.02, 0.25, 40)[None, :, None] * np.ones((32, 40, 3))
    return np.clip(smooth * rng.uniform(0.6, 1.0, (32, 40, 3)), 0, 1)


def test_lime_brightens_and_keeps_shape(dark_rgb):
    for image in (dark_rgb, dark_rgb.mean(axis=-1)):
        out = lime_module.lime(image)
        assert out.shape == image.shape
        assert out.min() >= 0 and out.max() <= 1
        assert out.mean() > 1.5 * image.mean()


def test_constant_illumination_is_a_fixed_point():
    # No gradients: the smoothness term vanishes and the solve returns its input.
    t_hat = np.full((12, 15), 0.3)
    np.testing.assert_allclose(lime_module.refine_illumination(t_hat), t_hat, atol=1e-12)


def test_sparse_difference_matches_array_difference():
    image = np.random.default_rng(1).random((6, 9))
    for axis in (0, 1):
        sparse_grad = lime_module._difference_operator(6, 9, axis) @ image.ravel()
        np.testing.assert_allclose(sparse_grad.reshape(6, 9), lime_module._forward_difference(image, axis))


def test_refinement_smooths_texture_and_keeps_range():
    rng = np.random.default_rng(2)
    t_hat = 0.5 + 0.05 * rng.standard_normal((24, 24))
    t = lime_module.refine_illumination(t_hat)
    assert np.std(t) < 0.5 * np.std(t_hat)
    assert abs(t.mean() - t_hat.mean()) < 0.01
