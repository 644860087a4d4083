"""Model weights as safetensors files: save atomically, load without unpickling.

A weights file holds the model's tensors plus string metadata: the architecture name
and version, the :class:`~napari_lowlight.network.ModelConfig` and, optionally, the
training configuration. Loading checks all of it before any tensor reaches the model.
A pickle (``.pt``/``.pth``) is refused: unpickling can run arbitrary code.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ._atomic import replaced_atomically
from .devices import resolve_device
from .network import ALPHA_RANGE, LowLightNet, ModelConfig, seeded_network

__all__ = [
    "default_model",
    "ARCHITECTURE",
    "FORMAT_VERSION",
    "SHIPPED_WEIGHTS",
    "new_model",
    "save_model",
    "load_model",
    "read_metadata",
    "default_weights_path",
    "shipped_weights_path",
]

ARCHITECTURE = "napari-lowlight/residual-context"
FORMAT_VERSION = "1"

#: Tensors whose names start with this are not model weights (e.g. optimizer state).
_EXTRA_PREFIX = "extra."


#: The weights installed with the package, by name, and what each is for (model card:
#: docs/model.md). Nothing is downloaded at first use.
SHIPPED_WEIGHTS = {
    "default": "restores low light: brightens with alpha and denoises (photographs, micrographs, sky frames)",
    "fluorescence": (
        "denoises dim fluorescence frames at alpha 0"
        " (the default, its Enhance-Net deepened, fine-tuned on noisier fluorescence scenes)"
    ),
}


def shipped_weights_path(name: str = "default") -> Path:
    """Path of the shipped weights ``name`` (a key of :data:`SHIPPED_WEIGHTS`) inside the installed package."""
    if name not in SHIPPED_WEIGHTS:
        raise ValueError(f"no shipped weights named {name!r}; shipped: {list(SHIPPED_WEIGHTS)}")
    return Path(str(resources.files("napari_lowlight") / "weights" / f"{name}.safetensors"))


def default_weights_path() -> Path:
    """Path of the shipped default weights inside the installed package."""
    return shipped_weights_path("default")


def new_model(
    width: int = 16,
    *,
    estimate_blocks: int = 3,
    enhance_blocks: int = 2,
    enhance_dilations: tuple[int, ...] = (1,),
    alpha_min: float = ALPHA_RANGE[0],
    seed: int | None = 0,
) -> LowLightNet:
    """A freshly initialised model (seeded, so two calls with one seed are identical).

    ``enhance_dilations`` are the dilations of Enhance-Net's blocks, cycled over them
    (``(1,)``: the paper's blocks).

    ``alpha_min`` is the smallest alpha its automatic estimate can return: 0 for a model
    that will also learn undarkened frames (``train(..., denoise_fraction=...)``).
    """
    for name, value in (("width", width), ("estimate_blocks", estimate_blocks), ("enhance_blocks", enhance_blocks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    config = ModelConfig(
        width=width,
        estimate_blocks=estimate_blocks,
        enhance_blocks=enhance_blocks,
        enhance_dilations=enhance_dilations,
        alpha_min=alpha_min,
    )
    if seed is None:
        return LowLightNet(config)
    return seeded_network(config, seed)


def save_model(model: LowLightNet, path, *, training=None, extra_tensors=None) -> Path:
    """Write ``model`` to a safetensors file, atomically.

    The file is first written to a temporary file beside ``path`` and then renamed over
    it, so a crash, a kill or a full disk never leaves a half-written file: ``path``
    holds either the previous weights or the new ones.

    Parameters
    ----------
    model : LowLightNet
    path : str or Path
        Destination, conventionally ``*.safetensors``.
    training : dict, optional
        JSON-serialisable training configuration stored as metadata.
    extra_tensors : dict of str to Tensor, optional
        Additional tensors (e.g. optimizer state for resumable checkpoints).
    """
    path = Path(path)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    for name, tensor in (extra_tensors or {}).items():
        tensors[_EXTRA_PREFIX + name] = tensor.detach().cpu().contiguous()
    metadata = {
        "architecture": ARCHITECTURE,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict()),
        "training": json.dumps(training or {}),
    }
    with replaced_atomically(path, ".tmp") as temporary:
        save_file(tensors, temporary, metadata=metadata)
    return path


def _open_checked(path: Path):
    """Open ``path`` with safetensors, turning every failure into a clear ValueError."""
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist (shipped weights by name: {', '.join(SHIPPED_WEIGHTS)})")
    with open(path, "rb") as file:
        head = file.read(9)
    # safetensors opens with its header's length (8 bytes, any values) and then the JSON
    # header's "{"; a pickle opens with 0x80, a PyTorch zip checkpoint with "PK". Only
    # named here: nothing is ever unpickled.
    if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise ValueError(
            f"model file {str(path)!r} is a pickle/PyTorch checkpoint; only safetensors weights are loaded "
            "(unpickling can run arbitrary code)"
        )
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"model file {str(path)!r} is not a valid safetensors file ({error})") from None


def read_metadata(path) -> dict:
    """The metadata of a weights file: architecture, version, config and training dicts."""
    with _open_checked(Path(path)) as weights:
        metadata = weights.metadata() or {}
    if metadata.get("architecture") != ARCHITECTURE:
        raise ValueError(
            f"model file {str(path)!r} has architecture {metadata.get('architecture')!r}; expected {ARCHITECTURE!r}"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"model file {str(path)!r} has format version {metadata.get('format_version')!r}; "
            f"this napari-lowlight reads version {FORMAT_VERSION}"
        )
    try:
        config = ModelConfig(**json.loads(metadata["config"]))
        training = json.loads(metadata.get("training", "{}"))
        if not isinstance(training, dict):
            raise ValueError(f"training metadata is a JSON {type(training).__name__}, not an object")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"model file {str(path)!r} has invalid config metadata ({error})") from None
    return {"architecture": ARCHITECTURE, "config": config, "training": training}


def load_weights(path) -> tuple[LowLightNet, dict, dict]:
    """Load a model, its metadata and any extra tensors from ``path`` (on the CPU)."""
    path = Path(path)
    metadata = read_metadata(path)
    model = LowLightNet(metadata["config"])
    expected = model.state_dict()
    state, extra = {}, {}
    with _open_checked(path) as weights:
        for name in weights.keys():
            if name.startswith(_EXTRA_PREFIX):
                extra[name[len(_EXTRA_PREFIX) :]] = weights.get_tensor(name)
            elif name in expected:
                state[name] = weights.get_tensor(name)
            else:
                raise ValueError(f"model file {str(path)!r} has an unexpected tensor {name!r}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"model file {str(path)!r} lacks tensors {missing[:3]}{'...' if len(missing) > 3 else ''}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"model file {str(path)!r}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"the architecture expects {tuple(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            # A diverged run's weights: they would restore every image to black.
            raise ValueError(f"model file {str(path)!r}: tensor {name!r} holds NaN or infinite values")
    model.load_state_dict(state)
    return model, metadata, extra


def load_model(path=None, *, device="auto") -> LowLightNet:
    """Load a model from a safetensors file, in eval mode on ``device``.

    Parameters
    ----------
    path : str or Path, optional
        A weights file written by :func:`save_model`, or the name of shipped weights
        (a key of :data:`SHIPPED_WEIGHTS`, e.g. ``"fluorescence"``, as the CLI's
        ``--model`` takes them); the shipped default when None.
    device : str or torch.device
        ``"auto"`` picks CUDA, then MPS, then the CPU.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a safetensors file (a pickle is refused without being opened by
        pickle), its architecture, version or tensor shapes do not match, or a weight
        is not finite.
    """
    if path is None or (isinstance(path, str) and path in SHIPPED_WEIGHTS):
        path = shipped_weights_path(path or "default")
    model, metadata, _ = load_weights(path)
    model.training_config = metadata["training"]
    return model.to(resolve_device(device)).eval()


@functools.lru_cache(maxsize=1)
def default_model() -> LowLightNet:
    """The shipped default model on the CPU, loaded once and shared: do not train it
    in place (``load_model()`` gives a private copy)."""
    return load_model(device="cpu")
