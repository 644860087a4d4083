"""Device choice, in one place: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["available_devices", "resolve_device", "mixed_precision"]


def available_devices() -> list[str]:
    """Device names usable on this machine, ``"auto"`` first."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(device="auto") -> torch.device:
    """Turn ``"auto"``, a name or a :class:`torch.device` into a usable device.

    Raises
    ------
    ValueError
        If ``device`` is unknown or not available here (e.g. ``"cuda"`` without a GPU).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a device name ({error})") from None
    if resolved.type not in available_devices():
        raise ValueError(f"device {device!r} is not available on this machine; available: {available_devices()}")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} is not available: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def mixed_precision(device: torch.device):
    """The autocast context of network passes on ``device``.

    bfloat16 on a GPU that computes in it natively (compute capability 8 and up: Ampere
    and later); older GPUs only emulate it, slowly, so they and other devices run in
    float32.
    """
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
