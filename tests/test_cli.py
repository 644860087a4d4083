import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import imageio.v3 as iio

from napari_lowlight import load_model, restore, save_model
from napari_lowlight.cli import main
from napari_lowlight.io import read_image


@pytest.fixture
def model_file(tiny_model, tmp_path):
    return str(save_model(tiny_model, tmp_path / "tiny.safetensors"))


@pytest.fixture
def png(tmp_path, rng):
    path = tmp_path / "photo.png"
    iio.imwrite(path, rng.integers(0, 256, (40, 48, 3)).astype(np.uint8))
    return path


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_synthesize_then_restore_round_trip(tmp_path, png, model_file):
    low = tmp_path / "low.png"
    assert main(["synthesize", str(png), "-o", str(low), "--alpha", "1", "--gamma", "0.5", "--sigma", "0.02", "--seed", "1"]) == 0
    original, dark = iio.imread(png), iio.imread(low)
    assert dark.shape == original.shape and dark.dtype == np.uint8 and dark.mean() < original.mean()
    out, difference = tmp_path / "restored.png", tmp_path / "difference.tif"
    assert main(["restore", str(low), "-o", str(out), "--model", model_file, "--difference", str(difference), "--tile", "32"]) == 0
    assert iio.imread(out).shape == original.shape
    diff = tifffile.imread(difference)
    assert diff.dtype == np.float32 and diff.shape == original.shape


def test_restore_many_files_into_a_folder(tmp_path, rng, model_file):
    inputs = []
    for index, dtype in enumerate([np.uint8, np.uint16]):
        path = tmp_path / f"frame{index}.tif"
        tifffile.imwrite(path, (rng.random((2, 20, 24)) * np.iinfo(dtype).max).astype(dtype))
        inputs.append(path)
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["restore", *map(str, inputs), "-o", str(folder), "--model", model_file, "--alpha", "auto"]) == 0
    for path in inputs:
        written = tifffile.imread(folder / path.name)
        assert written.shape == (2, 20, 24) and written.dtype == tifffile.imread(path).dtype


def test_restore_with_shipped_weights_by_name(tmp_path, rng):
    source = tmp_path / "frame.tif"
    frame = rng.poisson(np.full((24, 24), 5.0)).astype(np.uint16)
    tifffile.imwrite(source, frame)
    outputs = {}
    for name in ("default", "fluorescence"):
        outputs[name] = tmp_path / f"{name}.tif"
        assert main(["restore", str(source), "-o", str(outputs[name]), "--model", name, "--alpha", "0", "--data-range", "15"]) == 0
    assert not np.array_equal(tifffile.imread(outputs["default"]), tifffile.imread(outputs["fluorescence"]))


def test_restore_12_bit_data_with_data_range(tmp_path, rng, model_file):
    source, out = tmp_path / "camera12.tif", tmp_path / "restored.tif"
    tifffile.imwrite(source, rng.integers(0, 4096, (24, 24)).astype(np.uint16))
    assert main(["restore", str(source), "-o", str(out), "--model", model_file, "--data-range", "4095"]) == 0
    restored = tifffile.imread(out)
    assert restored.dtype == np.uint16 and restored.max() <= 4095


@pytest.mark.parametrize(
    ("flag", "alpha", "option"),
    [
        ("--ensemble", "0.7", {"ensemble": True}),
        ("--lift-blacks", "1.5", {"keep_black": False}),
        ("--no-refine", "0", {"refine": False}),
    ],
)
def test_restore_options_reach_the_core(tmp_path, rng, tiny_model, model_file, flag, alpha, option):
    from napari_lowlight import restore

    source, out = tmp_path / "frame.tif", tmp_path / "restored.tif"
    frame = rng.integers(0, 4096, (40, 36)).astype(np.uint16)
    tifffile.imwrite(source, frame)
    assert main(["restore", str(source), "-o", str(out), "--model", model_file, "--alpha", alpha, flag]) == 0
    expected = restore(frame, float(alpha), model=tiny_model, **option)
    assert not np.array_equal(expected, restore(frame, float(alpha), model=tiny_model))
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_train_writes_a_loadable_model_and_says_where_it_computes(tmp_path, png, capsys):
    out = tmp_path / "trained.safetensors"
    assert main(["train", str(png), "-o", str(out), "--steps", "2", "--batch-size", "4", "--patch-size", "16", "--device", "cpu"]) == 0
    from napari_lowlight import load_model

    assert load_model(out, device="cpu").config.width == 16
    assert "training (cpu, float32)" in capsys.readouterr().err


def test_train_on_generated_scenes_alone(tmp_path):
    out = tmp_path / "scenes.safetensors"
    assert main(["train", "--scenes", "2", "-o", str(out), "--steps", "2", "--batch-size", "4", "--patch-size", "16"]) == 0
    from napari_lowlight.weights import read_metadata

    assert read_metadata(out)["training"]["data"] == {
        "paths": [], "files": 0, "scenes": 2, "scene_kinds": ["fluorescence", "stars"],
        "scene_psf_sigma_range": None, "add_enhance_blocks": [], "enhance_width": None,
        "pairs": 0, "data_range": None,
    }


def test_train_on_one_kind_of_generated_scene(tmp_path, monkeypatch):
    from napari_lowlight import scenes

    made = []
    monkeypatch.setitem(scenes.SCENE_KINDS, "stars", lambda *args, **kwargs: made.append("a star field"))
    out = tmp_path / "fluorescence.safetensors"
    argv = ["train", "--scenes", "3", "--scene-kinds", "fluorescence", "-o", str(out), "--steps", "2", "--batch-size", "4", "--patch-size", "16"]
    assert main(argv) == 0
    from napari_lowlight.weights import read_metadata

    assert made == [] and read_metadata(out)["training"]["data"]["scene_kinds"] == ["fluorescence"]


@pytest.mark.parametrize(
    ("recipe", "message"),
    [('scenes = 2\nscene_kinds = "stars"', "kinds must be a non-empty list"), ('scene_kinds = ["stars"]', "give --scenes N too")],
)
def test_train_refuses_bad_scene_kinds(tmp_path, capsys, png, recipe, message):
    config = tmp_path / "recipe.toml"
    config.write_text(f"[train]\nsteps = 1\n{recipe}\n")
    assert main(["train", str(png), "--config", str(config), "-o", str(tmp_path / "out.safetensors")]) != 0
    assert message in capsys.readouterr().err and not (tmp_path / "out.safetensors").exists()


def test_a_recipe_deepens_the_starting_weights(tmp_path, model_file):
    from napari_lowlight import load_model
    from napari_lowlight.weights import read_metadata

    config, out = tmp_path / "recipe.toml", tmp_path / "deeper.safetensors"
    recipe = f"[train]\nfrom = {model_file!r}\nscenes = 2\nadd_enhance_blocks = [2, 4]\nsteps = 2\nbatch_size = 4\npatch_size = 16\n"
    config.write_text(recipe + "enhance_width = 6\n")
    assert main(["train", "--config", str(config), "-o", str(out)]) == 0
    start, grown = load_model(model_file, device="cpu").config, load_model(out, device="cpu").config
    assert grown.enhance_blocks == start.enhance_blocks + 2
    assert grown.enhance_dilations == (1,) * start.enhance_blocks + (2, 4)
    assert grown.enhance_channels == 6 and grown.width == start.width
    assert read_metadata(out)["training"]["data"]["add_enhance_blocks"] == [2, 4]
    assert read_metadata(out)["training"]["data"]["enhance_width"] == 6


def test_a_recipes_starting_weights_file_is_found_beside_the_recipe(tmp_path, model_file, monkeypatch):
    import shutil

    from napari_lowlight import load_model

    folder = tmp_path / "recipes"
    folder.mkdir()
    shutil.copy(model_file, folder / "start.safetensors")
    (folder / "recipe.toml").write_text('[train]\nfrom = "start.safetensors"\nscenes = 2\nsteps = 1\nbatch_size = 4\npatch_size = 16\n')
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    out = tmp_path / "tuned.safetensors"
    assert main(["train", "--config", str(folder / "recipe.toml"), "-o", str(out)]) == 0
    # Fine-tuned from the width-4 file, not trained from scratch at the default width.
    assert load_model(out, device="cpu").config.width == load_model(model_file, device="cpu").config.width == 4


def test_a_recipe_sets_the_blur_of_generated_scenes(tmp_path, capsys, monkeypatch):
    from napari_lowlight import scenes
    from napari_lowlight.weights import read_metadata

    made = []

    def scene(shape, seed, psf_sigma_range):
        made.append(psf_sigma_range)
        return np.zeros(shape, np.float32)

    monkeypatch.setitem(scenes.SCENE_KINDS, "fluorescence", scene)
    config, out = tmp_path / "recipe.toml", tmp_path / "blurred.safetensors"
    recipe = "[train]\nscenes = 2\nscene_kinds = ['fluorescence']\nsteps = 1\nbatch_size = 2\npatch_size = 16\n"
    config.write_text(recipe + "scene_psf_sigma_range = [1.0, 3.0]\n")
    assert main(["train", "--config", str(config), "-o", str(out)]) == 0
    assert made == [(1.0, 3.0)] * 2
    assert read_metadata(out)["training"]["data"]["scene_psf_sigma_range"] == [1.0, 3.0]
    for bad in ("[3.0, 1.0]", "2.0"):
        config.write_text(recipe + f"scene_psf_sigma_range = {bad}\n")
        assert main(["train", "--config", str(config), "-o", str(tmp_path / "bad.safetensors")]) != 0
        assert "psf_sigma_range must be (low, high)" in capsys.readouterr().err
    config.write_text(recipe.replace("scenes = 2\n", "") + "scene_psf_sigma_range = [1.0, 3.0]\n")
    assert main(["train", "--config", str(config), "-o", str(tmp_path / "none.safetensors")]) != 0
    assert "give --scenes N too" in capsys.readouterr().err
    assert not (tmp_path / "bad.safetensors").exists() and not (tmp_path / "none.safetensors").exists()


@pytest.mark.parametrize(
    ("start", "growth", "message"),
    [
        ("scratch", "add_enhance_blocks = [2]", "give the weights to start from"),
        (None, "add_enhance_blocks = [0]", "must be a list of dilations"),
        ("scratch", "enhance_width = 32", "give the weights to start from"),
        (None, "enhance_width = 2", "enhance_width must be an integer above the current"),
    ],
)
def test_train_refuses_growth_it_cannot_make(tmp_path, capsys, model_file, start, growth, message):
    config = tmp_path / "recipe.toml"
    config.write_text(f"[train]\nfrom = {(start or model_file)!r}\nscenes = 2\n{growth}\nsteps = 1\n")
    assert main(["train", "--config", str(config), "-o", str(tmp_path / "out.safetensors")]) != 0
    assert message in capsys.readouterr().err and not (tmp_path / "out.safetensors").exists()


def test_self_supervised_fine_tune_on_a_12_bit_stack_then_restore_with_it(tmp_path, rng, model_file):
    # A time-lapse of a 12-bit camera: every plane is a noisy frame, --data-range says what is white.
    stack = tmp_path / "timelapse.tif"
    tifffile.imwrite(stack, rng.integers(0, 4096, (3, 40, 40)).astype(np.uint16))
    tuned, restored = tmp_path / "tuned.safetensors", tmp_path / "restored.tif"
    argv = ["train", str(stack), "--self-supervised", "--from", model_file, "-o", str(tuned), "--data-range", "4095"]
    assert main([*argv, "--steps", "2", "--batch-size", "4", "--patch-size", "16", "--device", "cpu"]) == 0
    from napari_lowlight.training import GUIDE_NOISE_CHOICES
    from napari_lowlight.weights import read_metadata

    training = read_metadata(tuned)["training"]
    assert training["self_supervised"] is True and training["steps"] == 2 and training["batch_size"] == 4
    assert training["data"]["files"] == 1 and training["data"]["data_range"] == 4095
    # Calibrated on the planes after the last step; restore refines with it.
    assert training["refine_guide_noise"] in GUIDE_NOISE_CHOICES
    assert main(["restore", str(stack), "--model", str(tuned), "--alpha", "0", "-o", str(restored), "--data-range", "4095"]) == 0
    assert tifffile.imread(restored).shape == (3, 40, 40)


def test_self_supervised_defaults_apply_unless_overridden(monkeypatch, tmp_path, png):
    from napari_lowlight import cli
    from napari_lowlight.training import SELF_SUPERVISED_DEFAULTS

    seen = {}

    def recording_train(**arguments):
        seen.update(arguments)
        raise SystemExit(0)  # what reached train() is all this test needs

    monkeypatch.setattr("napari_lowlight.training.train", recording_train)
    with pytest.raises(SystemExit):
        cli.main(["train", str(png), "--self-supervised", "--steps", "7", "-o", str(tmp_path / "m.safetensors")])
    assert seen["noisy"] and "images" not in seen
    assert seen["model"] is not None  # the shipped weights, fine-tuned
    assert seen["steps"] == 7
    for name in ("batch_size", "patch_size", "lr"):
        assert seen[name] == SELF_SUPERVISED_DEFAULTS[name]


def test_a_recipe_sets_the_undarkened_share_of_the_scenes(tmp_path, png):
    recipe, out = tmp_path / "recipe.toml", tmp_path / "m.safetensors"
    recipe.write_text("[train]\nscenes = 2\nsteps = 2\nbatch_size = 4\npatch_size = 16\ndim_denoise_fraction = 0.7\n")
    assert main(["train", str(png), "--config", str(recipe), "-o", str(out), "--device", "cpu"]) == 0
    from napari_lowlight.weights import read_metadata

    training = read_metadata(out)["training"]
    assert training["dim_denoise_fraction"] == 0.7 and training["data"]["scenes"] == 2


def test_headless_demo(tmp_path, capsys):
    assert main(["demo", "--headless", "--sample", "fluorescence", "-o", str(tmp_path)]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "fluorescence_restored.tif").dtype == np.uint16


def test_headless_demo_of_a_real_frame_reports_what_changed(tmp_path, capsys, monkeypatch):
    from napari_lowlight import samples

    # The real sample's path through the demo, on a crop of the frame: quick on 2 cores.
    real = samples.load_sample("hubble")
    crop = samples.Sample(real.key, real.title, real.low[:96, :128], None, -1, real.synthesis)
    monkeypatch.setitem(samples.SAMPLES, "hubble", lambda: crop)
    assert main(["demo", "--headless", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and "alpha=auto" in printed and "PSNR" not in printed
    assert tifffile.imread(tmp_path / "hubble_restored.tif").shape == (96, 128, 3)
    assert not (tmp_path / "hubble_clean.tif").exists()


def _bad_inputs(tmp_path, png, model_file):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage that is not a tiff")
    text = tmp_path / "notes.png"
    text.write_text("hello, I am text")
    nan = tmp_path / "nan.tif"
    tifffile.imwrite(nan, np.full((8, 8), np.nan, np.float32))
    line = tmp_path / "line.tif"
    tifffile.imwrite(line, np.zeros(16, np.uint8))
    pickled = tmp_path / "evil.safetensors"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[train]\nscenes = "10"\n')
    grey = tmp_path / "grey.png"
    iio.imwrite(grey, np.zeros((20, 20), np.uint8))
    twins = [tmp_path / "a" / "frame.tif", tmp_path / "b" / "frame.tif"]
    for twin in twins:
        twin.parent.mkdir()
        tifffile.imwrite(twin, np.zeros((20, 20), np.uint8))
    out = str(tmp_path / "out.png")
    return {
        "difference as png": (["restore", str(png), "-o", out, "--difference", str(tmp_path / "d.png"), "--model", model_file], "float32"),
        "rgba as jpeg": (["synthesize", str(_rgba(tmp_path)), "-o", str(tmp_path / "o.jpg"), "--alpha", "1", "--gamma", "1"], "opacity"),
        "channel axis on grey": (["restore", str(grey), "-o", out, "--channel-axis", "0", "--model", model_file], "two spatial axes"),
        "train into a folder": (["train", "--scenes", "2", "-o", str(tmp_path)], "is a folder"),
        "synthesize into a folder": (["synthesize", str(png), "-o", str(tmp_path), "--alpha", "1", "--gamma", "1"], "is a folder"),
        "same names": (["restore", *map(str, twins), "-o", str(tmp_path), "--model", model_file], "would both be written"),
        "difference named as result": (
            ["restore", str(twins[0]), "-o", str(tmp_path), "--difference", str(tmp_path), "--model", model_file],
            "would both be written",
        ),
        "missing": (["restore", str(tmp_path / "nope.png"), "-o", out, "--model", model_file], "does not exist"),
        "empty": (["restore", str(empty), "-o", out, "--model", model_file], "empty"),
        "corrupt": (["restore", str(corrupt), "-o", str(tmp_path / "o.tif"), "--model", model_file], "not a readable"),
        "text": (["restore", str(text), "-o", out, "--model", model_file], "not a readable"),
        "nan": (["restore", str(nan), "-o", str(tmp_path / "o.tif"), "--model", model_file], "NaN"),
        "shape": (["restore", str(line), "-o", str(tmp_path / "o.tif"), "--model", model_file], "dimensions"),
        "alpha negative": (["restore", str(png), "-o", out, "--alpha", "-1", "--model", model_file], ">= 0"),
        "alpha text": (["restore", str(png), "-o", out, "--alpha", "bright", "--model", model_file], "not a number"),
        "self-supervised with scenes": (["train", str(png), "--self-supervised", "--scenes", "2", "-o", str(tmp_path / "m.safetensors")], "--self-supervised"),
        "self-supervised without frames": (["train", "--self-supervised", "-o", str(tmp_path / "m.safetensors")], "no noisy frames"),
        "scenes with pairs": (["train", "--scenes", "2", "--pairs", str(png), str(png), "-o", str(tmp_path / "m.safetensors")], "--pairs"),
        "data range": (["restore", str(png), "-o", out, "--data-range", "0", "--model", model_file], "positive"),
        "scenes in recipe": (["train", "--config", str(recipe), "-o", str(tmp_path / "m.safetensors")], "scenes"),
        "negative seed": (["train", "--scenes", "2", "--seed", "-1", "-o", str(tmp_path / "m.safetensors")], ">= 0"),
        "gamma": (["synthesize", str(png), "-o", out, "--alpha", "1", "--gamma", "-2"], "positive"),
        "same path": (["restore", str(png), "-o", str(png), "--model", model_file], "is the input"),
        "pickle model": (["restore", str(png), "-o", out, "--model", str(pickled)], "pickle"),
        "unwritable": (["restore", str(png), "-o", str(tmp_path / "no" / "dir" / "o.png"), "--model", model_file], "does not exist"),
        "folder where a file is": (["restore", str(png), "-o", f"{png}{os.sep}", "--model", model_file], "a file is there"),
    }


def _exit_code(argv) -> int:
    """``main``'s status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "corrupt",
        "text",
        "nan",
        "shape",
        "alpha negative",
        "alpha text",
        "data range",
        "gamma",
        "same path",
        "pickle model",
        "unwritable",
        "folder where a file is",
        "scenes with pairs",
        "negative seed",
        "scenes in recipe",
        "difference as png",
        "rgba as jpeg",
        "channel axis on grey",
        "same names",
        "difference named as result",
        "train into a folder",
        "synthesize into a folder",
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, png, model_file, capsys, case):
    argv, words = _bad_inputs(tmp_path, png, model_file)[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert _exit_code(argv) != 0
    assert words in _error_line(capsys)
    # Nothing was written, not even the outputs the failing call could have made first.
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def _rgba(folder):
    path = folder / "rgba.png"
    iio.imwrite(path, np.full((20, 20, 4), 200, np.uint8))
    return path


def test_a_link_to_the_output_folder_is_the_same_folder(tmp_path, model_file, capsys):
    source = tmp_path / "frame.tif"
    tifffile.imwrite(source, np.zeros((20, 20), np.uint8))
    (tmp_path / "out").mkdir()
    (tmp_path / "also_out").symlink_to(tmp_path / "out")
    argv = ["restore", str(source), "-o", str(tmp_path / "out"), "--difference", str(tmp_path / "also_out")]
    assert main([*argv, "--model", model_file]) == 1
    assert "would both be written" in _error_line(capsys) and not list((tmp_path / "out").iterdir())


def test_an_image_restores_into_a_zarr_store(tmp_path, png, model_file):
    import dask.array as da

    assert main(["restore", str(png), "-o", str(tmp_path / "out.zarr"), "--model", model_file]) == 0
    stored = da.from_zarr(str(tmp_path / "out.zarr"))
    assert stored.shape == iio.imread(png).shape and stored.dtype == np.uint8


def test_one_input_goes_into_an_output_folder(tmp_path, png, model_file):
    folder = tmp_path / "restored"
    folder.mkdir()
    assert main(["restore", str(png), "-o", str(folder), "--difference", str(folder), "--model", model_file]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["photo.png", "photo.tif"]


def test_an_output_ending_with_a_separator_is_a_new_folder(tmp_path, png, model_file):
    folder = tmp_path / "restored"
    argv = ["restore", str(png), "-o", f"{folder}{os.sep}", "--difference", f"{tmp_path / 'maps'}{os.sep}"]
    assert main([*argv, "--model", model_file]) == 0
    assert [p.name for p in folder.iterdir()] == ["photo.png"]
    assert [p.name for p in (tmp_path / "maps").iterdir()] == ["photo.tif"]


def test_two_channel_samples_of_a_tiff_are_restored_as_channels(tmp_path, model_file):
    # Y X S with two samples per pixel: read as (Y, X, 2), whose last axis is not a width.
    source, out = tmp_path / "two.tif", tmp_path / "out.tif"
    image = np.stack([np.full((40, 48), 50000), np.full((40, 48), 3000)], axis=-1).astype(np.uint16)
    tifffile.imwrite(source, image, photometric="minisblack", planarconfig="contig", extrasamples=[0])
    assert main(["restore", str(source), "-o", str(out), "--alpha", "0", "--model", model_file]) == 0
    restored = tifffile.imread(out)
    assert restored.shape == image.shape and restored.dtype == np.uint16
    channels_apart = restore(np.moveaxis(image, -1, 0), 0.0, model=load_model(model_file, device="cpu"))
    np.testing.assert_array_equal(restored, np.moveaxis(channels_apart, 0, -1))


def test_a_16_bit_colour_png_keeps_its_16_bits(tmp_path, model_file):
    # Pillow, imageio's PNG reader, cuts 16-bit colour to 8 bits: the file was refused before.
    import imagecodecs

    source, out = tmp_path / "colour16.png", tmp_path / "out.png"
    image = np.random.default_rng(0).integers(0, 4000, (20, 24, 3)).astype(np.uint16)
    source.write_bytes(imagecodecs.png_encode(image))
    np.testing.assert_array_equal(read_image(source), image)
    assert main(["restore", str(source), "-o", str(out), "--model", model_file]) == 0
    restored = imagecodecs.imread(out, codec="png")
    assert restored.shape == image.shape and restored.dtype == np.uint16
    assert len(np.unique(restored)) > 256  # not 8 bits scaled up


def test_a_fine_tune_on_12_bit_ome_frames_records_their_full_intensity(tmp_path, model_file):
    frames = [tmp_path / f"cam{i}.ome.tif" for i in range(2)]
    for i, path in enumerate(frames):
        noisy = np.random.default_rng(i).poisson(300, (40, 48)).astype(np.uint16)
        tifffile.imwrite(path, noisy, ome=True, metadata={"axes": "YX", "SignificantBits": 12})
    out = tmp_path / "tuned.safetensors"
    argv = ["train", *map(str, frames), "--self-supervised", "--from", model_file, "--steps", "1", "--batch-size", "2", "--patch-size", "16"]
    assert main([*argv, "-o", str(out)]) == 0
    assert load_model(out, device="cpu").training_config["data"]["data_range"] == 4095


def test_a_bad_file_in_a_batch_is_named_and_the_others_are_restored(tmp_path, rng, model_file, capsys):
    names = ["a.tif", "b.tif", "c.tif"]
    for name in names:
        tifffile.imwrite(tmp_path / name, rng.random((20, 20)).astype(np.float32))
    tifffile.imwrite(tmp_path / "b.tif", np.full((20, 20), np.nan, np.float32))
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["restore", *(str(tmp_path / n) for n in names), "-o", str(folder), "--model", model_file]) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "c.tif"]
    err = capsys.readouterr().err
    assert "b.tif" in err and "NaN" in err and "1 of 3 files could not be restored" in err


def test_an_rgb_time_lapse_is_recognised_as_colour(tmp_path, rng, model_file):
    source = tmp_path / "rgb_frames.tif"
    tifffile.imwrite(source, rng.integers(0, 256, (2, 20, 24, 3)).astype(np.uint8))
    outputs = [tmp_path / "auto.tif", tmp_path / "explicit.tif"]
    assert main(["restore", str(source), "-o", str(outputs[0]), "--model", model_file]) == 0
    assert main(["restore", str(source), "-o", str(outputs[1]), "--channel-axis", "-1", "--model", model_file]) == 0
    np.testing.assert_array_equal(tifffile.imread(outputs[0]), tifffile.imread(outputs[1]))


def test_console_script_reports_errors_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "napari_lowlight.cli", "restore", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_zarr_streams_through_dask(tmp_path, rng, model_file):
    import dask.array as da

    stack = (rng.random((3, 70, 90)) * 65535).astype(np.uint16)
    da.from_array(stack, chunks=(1, 35, 45)).to_zarr(str(tmp_path / "big.zarr"))
    out = tmp_path / "out.zarr"
    argv = ["restore", str(tmp_path / "big.zarr"), "-o", str(out), "--model", model_file, "--alpha", "1"]
    argv += ["--difference", str(tmp_path / "d.zarr")]
    assert main([*argv, "--scheduler", "synchronous"]) == 0
    written = da.from_zarr(str(out)).compute()
    assert written.shape == stack.shape and written.dtype == np.uint16
    from napari_lowlight import load_model, restore

    expected = restore(stack, 1.0, model=load_model(model_file, device="cpu"))
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 2e-3 * 65535
    assert da.from_zarr(str(tmp_path / "d.zarr")).dtype == np.float32


@pytest.mark.parametrize("scheduler", [[], ["--scheduler", "processes"]], ids=["threads", "processes"])
def test_big_tiff_streams_plane_by_plane(tmp_path, rng, model_file, monkeypatch, scheduler):
    # Processes, as a cluster's workers, get the file through pickles of the task graph.
    import napari_lowlight.io as io

    monkeypatch.setattr(io, "LAZY_FILE_BYTES", 1000)  # every TIFF counts as big
    stack = rng.random((2, 40, 50)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    argv = ["restore", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out.tif"), "--model", model_file]
    assert main([*argv, *scheduler]) == 0
    written = tifffile.imread(tmp_path / "out.tif")
    assert written.shape == stack.shape and written.dtype == np.float32


def test_warnings_are_one_line_naming_the_tool(tmp_path, rng, model_file, capsys):
    source = tmp_path / "counts.tif"
    tifffile.imwrite(source, (rng.random((20, 20)) * 4000).astype(np.float32))  # floats beyond [0, 1]
    assert main(["restore", str(source), "-o", str(tmp_path / "out.tif"), "--model", model_file]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-lowlight: warning:") and "outside" in err[0]
