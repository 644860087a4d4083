"""Shared fixtures: tiny models and images keep the suite fast on a 2-core CPU."""

import numpy as np
import pytest
import torch

from napari_lowlight import new_model


def _randomised_batchnorm(model):
    """``model`` in eval mode with random BatchNorm statistics and affines.

    Random running statistics make folding and tiling tests meaningful (fresh BN
    layers are the identity).
    """
    generator = torch.Generator().manual_seed(2)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
    return model.eval()


@pytest.fixture
def tiny_model():
    """A width-4 model with randomised BatchNorm statistics, in eval mode."""
    return _randomised_batchnorm(new_model(width=4, seed=1))


@pytest.fixture
def tiny_dilated_model():
    """As ``tiny_model``, with three Enhance-Net blocks dilated by 1, 2 and 4 (a receptive radius of 44 px)."""
    return _randomised_batchnorm(new_model(width=4, enhance_blocks=3, enhance_dilations=(1, 2, 4), seed=1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def smooth_image(rng):
    """A 64x80 float32 image in [0, 1] with structure at several scales."""
    y, x = np.mgrid[:64, :80] / 20.0
    image = 0.5 + 0.3 * np.sin(x) * np.cos(y) + 0.1 * rng.random((64, 80))
    return np.clip(image, 0, 1).astype(np.float32)
