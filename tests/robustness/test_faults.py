"""Faults: a killed writer, a full disk, a device out of memory, a stop mid-training."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import napari_lowlight.inference as inference
from napari_lowlight import load_model, new_model, restore, save_model, train


def test_sigkill_while_writing_keeps_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    save_model(new_model(width=4), path)
    writer = textwrap.dedent(
        f"""
        import torch
        from napari_lowlight import new_model, save_model
        model = new_model(width=4)
        padding = {{"padding": torch.rand(4_000_000)}}  # a slow, 16 MB write
        print("ready", flush=True)
        while True:
            save_model(model, {str(path)!r}, extra_tensors=padding)
        """
    )
    for delay in (0.05, 0.2, 0.45):
        process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        model = load_model(path, device="cpu")  # never half-written
        assert model.config.width == 4


def test_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    import napari_lowlight.weights as weights

    path = save_model(new_model(width=4), tmp_path / "model.safetensors")
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights, "save_file", no_space)
    with pytest.raises(OSError, match="No space"):
        save_model(new_model(width=4, seed=9), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_permissions_of_the_umask(tmp_path, umask):
    # Written through a temporary file, yet readable by colleagues as a plain write would be.
    from napari_lowlight.io import write_image

    previous = os.umask(umask)
    try:
        written = [
            save_model(new_model(width=4), tmp_path / "model.safetensors"),
            write_image(tmp_path / "image.tif", np.zeros((8, 8), np.uint16)),
            write_image(tmp_path / "image.png", np.zeros((8, 8), np.uint8)),
        ]
    finally:
        os.umask(previous)
    assert [path.stat().st_mode & 0o777 for path in written] == [0o666 & ~umask] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "image.tif", "model.safetensors"]


def test_out_of_memory_retries_with_smaller_tiles(tiny_model, rng, monkeypatch):
    image = rng.random((150, 130)).astype(np.float32)
    expected = restore(image, 1.0, model=tiny_model, tile_size=256)
    real = inference._tiled_apply
    tiles = []

    def small_memory(planes, network, out_channels, halo, tile, batch_pixels, device):
        tiles.append(tile)
        if tile > 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(planes, network, out_channels, halo, tile, batch_pixels, device)

    monkeypatch.setattr(inference, "_tiled_apply", small_memory)
    result = restore(image, 1.0, model=tiny_model, tile_size=256)
    assert tiles[:3] == [256, 128, 64]
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_out_of_memory_shrinks_the_batch_of_tiles_too(tiny_model, rng, monkeypatch):
    # As on a GPU, tiles go through the network in batches of up to 200k pixels, and the
    # device holds 40k: with smaller tiles alone, more of them would fill the same batch.
    image = rng.random((300, 300)).astype(np.float32)
    expected = restore(image, 1.0, model=tiny_model, tile_size=128)
    monkeypatch.setattr(inference, "_batch_pixels", lambda device: 200_000)
    real = inference._tiled_apply
    batches = []

    def limited_memory(planes, network, out_channels, halo, tile, batch_pixels, device):
        def network_in_memory(tiles):
            batches.append(tiles.shape[0] * tiles.shape[2] * tiles.shape[3])
            if batches[-1] > 40_000:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return network(tiles)

        return real(planes, network_in_memory, out_channels, halo, tile, batch_pixels, device)

    monkeypatch.setattr(inference, "_tiled_apply", limited_memory)
    result = restore(image, 1.0, model=tiny_model, tile_size=256)
    assert max(batches) > 40_000 and batches[-1] <= 40_000
    np.testing.assert_allclose(result, expected, atol=1e-5)
    # Already at the smallest tile: only the batch can shrink, and it does.
    batches.clear()
    result = restore(image, 1.0, model=tiny_model, tile_size=64)
    assert max(batches) > 40_000 and batches[-1] <= 40_000
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_stop_mid_training_leaves_a_usable_model(smooth_image, tmp_path):
    run = train([smooth_image], model=new_model(width=4), steps=100, batch_size=4, patch_size=16, device="cpu", validate_every=0)
    event = next(run)
    run.close()  # the worker's Stop: no further step runs
    saved = save_model(event.model, tmp_path / "stopped.safetensors")
    assert restore(smooth_image, 1.0, model=load_model(saved, device="cpu")).shape == smooth_image.shape
