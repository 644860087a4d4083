"""napari-lowlight: restore low-light images with a deep residual network.

The public API imports neither Qt, napari nor magicgui: scripts and the CLI use it as
a plain library; the napari widgets are thin front ends onto the same functions.
"""

from .devices import available_devices, resolve_device
from .inference import enhance, estimate_alpha, estimate_difference, restore
from .io import read_image, write_image
from .network import LowLightNet, ModelConfig
from .planes import ChannelAxisWarning
from .synthesis import difference_map, synthesize_low_light
from .training import TrainingProgress, train
from .weights import load_model, new_model, save_model

__version__ = "0.1.0"

__all__ = [
    "ChannelAxisWarning",
    "LowLightNet",
    "ModelConfig",
    "TrainingProgress",
    "available_devices",
    "difference_map",
    "enhance",
    "estimate_alpha",
    "estimate_difference",
    "load_model",
    "new_model",
    "read_image",
    "resolve_device",
    "restore",
    "save_model",
    "synthesize_low_light",
    "train",
    "write_image",
]
