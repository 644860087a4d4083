"""Load: many files in one call and many alpha changes keep memory flat."""

import resource

import numpy as np
import tifffile

from napari_lowlight import enhance, estimate_difference, save_model
from napari_lowlight.cli import main


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_two_hundred_files_in_one_call(tmp_path, tiny_model, rng):
    model = save_model(tiny_model, tmp_path / "model.safetensors")
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    for index in range(200):
        tifffile.imwrite(inputs / f"f{index:03d}.tif", (rng.random((48, 48)) * 255).astype(np.uint8))
    main(["restore", str(inputs / "f000.tif"), "-o", str(tmp_path / "warm.tif"), "--model", str(model)])
    before = _rss_mb()
    assert main(["restore", str(inputs), "-o", str(outputs), "--model", str(model)]) == 0
    assert len(list(outputs.iterdir())) == 200
    assert _rss_mb() < before * 1.10


def test_hundred_alpha_changes(tiny_model, rng):
    image = rng.random((256, 256)).astype(np.float32)
    difference = estimate_difference(image, model=tiny_model)
    for alpha in np.linspace(0.5, 2.0, 10):
        enhance(image, difference, float(alpha), model=tiny_model)
    before = _rss_mb()
    for alpha in np.linspace(0.5, 2.0, 100):
        enhance(image, difference, float(alpha), model=tiny_model)
    assert _rss_mb() < before * 1.10
