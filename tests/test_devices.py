"""Device choice: what "auto" picks, what is refused, when network passes use bfloat16, and
(on a machine with a GPU) that the CUDA path restores and trains."""

import contextlib
import warnings

import numpy as np
import pytest
import torch

from napari_lowlight.devices import available_devices, mixed_precision, resolve_device


def test_auto_resolves_to_an_available_device():
    assert resolve_device("auto").type in available_devices()
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("device", "message"), [("warp", "not a device name"), ("cuda:x", "not a device name")])
def test_unknown_devices_are_refused_by_name(device, message):
    with pytest.raises(ValueError, match=f"{device!r} is {message}"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match="'cuda' is not available on this machine"):
        resolve_device("cuda")


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="'cuda:1' is not available: this machine has 1 CUDA device"):
        resolve_device("cuda:1")


@pytest.mark.parametrize(("capability", "bfloat16"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bfloat16_only_on_gpus_that_compute_in_it(monkeypatch, capability, bfloat16):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU-only torch warns that CUDA autocast is disabled
        context = mixed_precision(torch.device("cuda"))
    if bfloat16:
        assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    else:
        assert isinstance(context, contextlib.nullcontext)


def test_the_cpu_computes_in_float32():
    with mixed_precision(torch.device("cpu")):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@needs_gpu
def test_restoring_on_the_gpu_matches_the_cpu(tiny_model, smooth_image):
    from napari_lowlight import restore

    on_cpu = restore(smooth_image, 1.3, model=tiny_model, device="cpu", tile_size=32)
    on_gpu = restore(smooth_image, 1.3, model=tiny_model, device="cuda", tile_size=32)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.02)  # bfloat16 on recent GPUs


@needs_gpu
def test_training_on_the_gpu_hands_back_a_model_that_saves(smooth_image, tmp_path):
    from napari_lowlight import load_model, new_model, save_model, train

    run = train([smooth_image], model=new_model(width=4), steps=5, batch_size=4, patch_size=16, device="cuda")
    events = list(run)
    assert all(np.isfinite(event.loss) for event in events)
    saved = save_model(events[-1].model, tmp_path / "gpu.safetensors")
    assert load_model(saved, device="cpu").config.width == 4
