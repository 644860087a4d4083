"""Property-based tests of the CLI's numeric options: any text either works or ends in one line."""

import contextlib
import io
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_lowlight import new_model, save_model
from napari_lowlight.cli import main

#: Texts a user or a script might pass: any float or integer, and the classic troublemakers.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(1e-45, 1e45).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1e300", "-1e300", "1e-300", "3.5e38", "1e38", "1e30", "1e-30", "1e15", "1e16", "nan", "-inf", "-0", "0", "1", "", "0x10", "1_000"]),
)
#: Sizes that train within seconds, or that are refused before training.
TRAINING_SIZES = st.one_of(st.integers(-3, 8), st.integers(2**31, 2**80)).map(str)

options = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    iio.imwrite(folder / "photo.png", rng.integers(0, 256, (24, 20, 3)).astype(np.uint8))
    tifffile.imwrite(folder / "frame.tif", rng.random((24, 20)).astype(np.float32))
    model = save_model(new_model(width=2, estimate_blocks=1, enhance_blocks=1, seed=0), folder / "tiny.safetensors")
    return {"png": folder / "photo.png", "tif": folder / "frame.tif", "model": model}


def _run(argv_for) -> None:
    """Run ``main(argv_for(folder))`` in a fresh folder and check how it ended."""
    with tempfile.TemporaryDirectory() as folder:
        argv, output = argv_for(Path(folder))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exit:  # argparse refusing an option
                code = exit.code
        # A training bar redraws itself with carriage returns; the rest are lines.
        lines = [line for line in stderr.getvalue().replace("\r", "\n").splitlines() if line.startswith("napari-lowlight")]
        assert "Traceback" not in stderr.getvalue()
        assert not any("RuntimeWarning" in line for line in lines), lines  # numpy's own overflow noise
        if code == 0:
            assert output.exists()
            if output.suffix == ".tif":
                assert np.isfinite(tifffile.imread(output)).all()
        else:
            assert code in (1, 2) and not output.exists()
            assert len(lines) == 1 and ": error: " in lines[0], lines


@options
@given(st.sampled_from(["--alpha", "--data-range", "--tile"]), NUMBERS, st.sampled_from(["png", "tif"]))
def test_restore_options(files, option, value, kind):
    def argv(folder):
        output = folder / f"out.{kind}"
        return ["restore", str(files[kind]), "-o", str(output), "--model", str(files["model"]), f"{option}={value}"], output

    _run(argv)


@options
@given(st.sampled_from(["--alpha", "--gamma", "--sigma", "--photons", "--seed", "--data-range"]), NUMBERS, st.sampled_from(["png", "tif"]))
def test_synthesize_options(files, option, value, kind):
    def argv(folder):
        output = folder / f"low.{kind}"
        others = {"--alpha": "1", "--gamma": "0.5", "--noise": "poisson-gaussian", "--photons": "100", "--sigma": "0.01"}
        others[option] = value
        return ["synthesize", str(files[kind]), "-o", str(output), *(f"{k}={v}" for k, v in others.items())], output

    _run(argv)


@settings(options, max_examples=15)
@given(st.one_of(st.tuples(st.sampled_from(["--lr", "--seed"]), NUMBERS), st.tuples(st.sampled_from(["--batch-size", "--patch-size"]), TRAINING_SIZES)))
def test_train_options(files, choice):
    option, value = choice

    def argv(folder):
        output = folder / "model.safetensors"
        others = {"--steps": "1", "--batch-size": "2", "--patch-size": "16", "--device": "cpu"}
        others[option] = value
        return ["train", str(files["png"]), "-o", str(output), *(f"{k}={v}" for k, v in others.items())], output

    _run(argv)
