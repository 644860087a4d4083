"""Peer low-light networks, written from their papers, loading their published weights.

Benchmarks only: the weights live in ``../shared/peers/`` (see its SOURCES.md), are never
shipped, and are read with ``torch.load(..., weights_only=True)`` (plain state dicts, no
pickled code). Both networks take an RGB image in [0, 1]; a grey image is given to them as
three equal channels and its mean channel comes back.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PEERS_DIR", "ZeroDCE", "SCIIllumination", "load_peers", "apply_peer"]

PEERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "peers"


class ZeroDCE(nn.Module):
    """Zero-DCE (Guo et al., CVPR 2020): a curve-estimation net and eight quadratic curves.

    Seven 3x3 convolutions of width 32 with symmetric skip concatenations (layer 5 takes
    layers 3 and 4, layer 6 takes 2 and 5, layer 7 takes 1 and 6) estimate 24 maps, eight
    RGB curve parameters ``r_n`` in [-1, 1]; each curve maps ``x <- x + r_n * (x**2 - x)``.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.e_conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.e_conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv4 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv5 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv6 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv7 = nn.Conv2d(2 * width, 24, 3, padding=1)

    def forward(self, x):
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        curves = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        for r in torch.split(curves, 3, dim=1):
            x = x + r * (x * x - x)
        return x


class SCIIllumination(nn.Module):
    """SCI's test-time network (Ma et al., CVPR 2022): illumination estimate, then ``x / L``.

    A 3x3 convolution 3 -> 3 with ReLU, one residual block (3x3 convolution, BatchNorm,
    ReLU, added), a 3x3 convolution 3 -> 3 with a sigmoid, plus the input, clamped to
    [1e-4, 1] is the illumination ``L``; the output is ``clamp(x / L, 0, 1)``.
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        features = self.in_conv(x)
        features = features + self.conv(features)
        illumination = (self.out_conv(features) + x).clamp(1e-4, 1)
        return (x / illumination).clamp(0, 1)


def _load(module: nn.Module, path: Path, prefix: str = "", shared=()) -> nn.Module:
    """Load the keys of ``path`` under ``prefix``, less those of ``shared`` (aliases of loaded ones)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {
        name[len(prefix) :]: value
        for name, value in state.items()
        if name.startswith(prefix) and not name[len(prefix) :].startswith(shared)
    }
    module.load_state_dict(state)
    return module.eval()


def load_peers(folder: Path = PEERS_DIR) -> dict:
    """Name -> peer network with its published weights, for every weights file in ``folder``."""
    folder = Path(folder)
    return {
        "Zero-DCE": _load(ZeroDCE(), folder / "zerodce_Epoch99.pth"),
        # SCI's code lists its one block twice (``conv`` and ``blocks.0``, the same module).
        "SCI (medium)": _load(SCIIllumination(), folder / "sci_medium.pt", prefix="enhance.", shared=("blocks.",)),
    }


def apply_peer(network: nn.Module, image: np.ndarray) -> np.ndarray:
    """Run a peer on a float image in [0, 1], (H, W) grey or (H, W, 3) RGB; same shape back."""
    grey = image.ndim == 2
    rgb = np.repeat(image[..., None], 3, axis=-1) if grey else image
    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        out = network(tensor)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return out.mean(axis=-1) if grey else out
