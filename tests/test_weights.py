import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import napari_lowlight.weights as weights
from napari_lowlight import load_model, new_model, restore, save_model


@pytest.mark.parametrize("model_name", ["tiny_model", "tiny_dilated_model"])
def test_round_trip(model_name, request, tmp_path, smooth_image):
    tiny_model = request.getfixturevalue(model_name)
    path = save_model(tiny_model, tmp_path / "model.safetensors", training={"steps": 3})
    loaded = load_model(path, device="cpu")
    for name, tensor in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    assert loaded.config == tiny_model.config
    assert loaded.training_config == {"steps": 3}
    np.testing.assert_array_equal(restore(smooth_image, model=loaded), restore(smooth_image, model=tiny_model))


def test_shipped_default_loads():
    model = load_model(device="cpu")
    assert not model.training
    assert weights.default_weights_path().stat().st_size < 5_000_000


def test_shipped_fluorescence_weights_denoise_a_dim_scene_at_alpha_0():
    from napari_lowlight import estimate_alpha
    from napari_lowlight.scenes import generated_scenes

    model = load_model("fluorescence", device="cpu")  # by name, as the CLI's --model takes it
    assert model.config.alpha_min == 0.0 and model.training_config["steps"] > 0
    scene = generated_scenes(1, seed=12345)[0][:128, :128]
    noisy = np.random.default_rng(0).poisson(scene * 20) / 20
    # A dim frame is not read as a darkened one, even taken for a photograph.
    assert estimate_alpha(noisy, model=model, photograph=True) < 0.2
    error = np.mean((restore(noisy, 0.0, model=model) - scene) ** 2)
    assert error < 0.5 * np.mean((noisy - scene) ** 2)


def test_the_shipped_default_weights_refine_a_dim_noisy_frame_with_their_own_factor():
    from napari_lowlight import inference
    from napari_lowlight.scenes import generated_scenes

    model = load_model(device="cpu")
    # The recipe writes no factor: one lost by re-saving the weights brings back the weaker one.
    assert inference._guide_noise(model) > inference.REFINE_GUIDE_NOISE
    scene = generated_scenes(1, seed=12345)[0][:128, :128]
    noisy = np.random.default_rng(0).poisson(scene * 20) / 20
    recorded = np.mean((restore(noisy, 0.0, model=model) - scene) ** 2)
    del model.training_config[inference.GUIDE_NOISE_KEY]
    generic = np.mean((restore(noisy, 0.0, model=model) - scene) ** 2)
    assert recorded < generic


def test_shipped_weights_are_named():
    with pytest.raises(ValueError, match=r"no shipped weights named 'fluorescent'; shipped: \['default', 'fluorescence'\]"):
        weights.shipped_weights_path("fluorescent")


def test_failed_write_keeps_the_previous_file(tiny_model, tmp_path, monkeypatch):
    path = save_model(tiny_model, tmp_path / "model.safetensors")
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as file:
            file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights, "save_file", disk_full)
    with pytest.raises(OSError, match="space"):
        save_model(tiny_model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_pickles_are_refused_without_running_them(tmp_path, suffix):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = str(marker)
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(exploit))
    with pytest.raises(ValueError, match="pickle"):
        load_model(path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "zip.pt")
    with pytest.raises(ValueError, match="pickle"):
        load_model(tmp_path / "zip.pt")
    assert not marker.exists()


def test_a_header_length_that_looks_like_a_pickle_still_loads(tmp_path):
    # A safetensors file opens with its header's length: its low byte may be anything,
    # the 0x80 that opens a pickle included (one file in 256).
    path = tmp_path / "model.safetensors"
    model = new_model(width=1)
    for padding in range(300):
        save_model(model, path, training={"note": "x" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert load_model(path, device="cpu").config.width == 1


def test_weights_that_are_not_finite_are_refused(tmp_path):
    model = new_model(width=1)
    with torch.no_grad():
        model.enhance.tail.weight.fill_(float("nan"))
    path = save_model(model, tmp_path / "diverged.safetensors")
    with pytest.raises(ValueError, match="'enhance.tail.weight' holds NaN"):
        load_model(path, device="cpu")


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="safetensors"):
        load_model(garbage)
    with pytest.raises(FileNotFoundError, match="does not exist .shipped weights by name: default, fluorescence"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="'fluorescent' does not exist"):
        load_model("fluorescent")


def test_wrong_architecture_is_refused(tmp_path, tiny_model):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"architecture": "someone-else/unet"})
    with pytest.raises(ValueError, match="architecture"):
        load_model(other)
    wrong_shapes = tmp_path / "wrong.safetensors"
    state = {k: v for k, v in tiny_model.state_dict().items()}
    metadata = {
        "architecture": weights.ARCHITECTURE,
        "format_version": weights.FORMAT_VERSION,
        "config": json.dumps(tiny_model.config.to_dict() | {"width": 8}),
    }
    save_file(state, str(wrong_shapes), metadata=metadata)
    with pytest.raises(ValueError, match="shape"):
        load_model(wrong_shapes)


def test_the_alpha_estimator_range_round_trips_and_a_bad_one_is_refused(tmp_path, tiny_model):
    denoiser = weights.new_model(width=4, alpha_min=0.0)
    loaded = load_model(save_model(denoiser, tmp_path / "denoiser.safetensors"))
    assert loaded.config.alpha_min == 0.0 and loaded.alpha_estimator.low == 0.0
    # Files written before the option existed estimate alpha in the paper's [0.5, 2].
    older = tmp_path / "older.safetensors"
    config = tiny_model.config.to_dict()
    del config["alpha_min"]
    metadata = {"architecture": weights.ARCHITECTURE, "format_version": weights.FORMAT_VERSION, "config": json.dumps(config)}
    save_file(tiny_model.state_dict(), str(older), metadata=metadata)
    assert load_model(older).alpha_estimator.low == 0.5
    for bad in (-1.0, 0.9, "0"):
        metadata["config"] = json.dumps(config | {"alpha_min": bad})
        save_file(tiny_model.state_dict(), str(older), metadata=metadata)
        with pytest.raises(ValueError, match="alpha_min"):
            load_model(older)


def test_training_metadata_that_is_not_an_object_is_refused(tmp_path, tiny_model):
    path = tmp_path / "odd.safetensors"
    metadata = {
        "architecture": weights.ARCHITECTURE,
        "format_version": weights.FORMAT_VERSION,
        "config": json.dumps(tiny_model.config.to_dict()),
        "training": json.dumps([1, 2]),
    }
    save_file(tiny_model.state_dict(), str(path), metadata=metadata)
    with pytest.raises(ValueError, match="training metadata"):
        load_model(path)
