"""docs/examples/scripted_viewer.py runs as documented: in-process and as a script."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "scripted_viewer.py"


def _load():
    spec = importlib.util.spec_from_file_location("scripted_viewer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_demo_drives_every_widget(viewer, tmp_path, monkeypatch):
    from napari_lowlight._widgets import _state

    # The demo uses the process-wide registry; give it a clean one without shipped weights.
    registry = _state.ModelRegistry(include_default=False)
    monkeypatch.setattr(_state, "model_registry", registry)
    for module in ("_train", "_restore"):
        monkeypatch.setattr(f"napari_lowlight._widgets.{module}.model_registry", registry)
    result = _load().run_demo(viewer, output=tmp_path / "shot.png", steps=3, width=4, size=48, device="cpu")

    names = [layer.name for layer in viewer.layers]
    assert names[:2] == ["camera", result["low"]]
    assert result["low"].startswith("camera low (alpha=1.2")
    assert result["restored"] == f"{result['low']} restored"
    assert f"{result['low']} difference map" in names and f"{result['low']} restored (API)" in names
    assert result["model"] == "trained #1 (3 steps)" and result["steps"] == 3
    assert result["mean_low"] < result["mean_clean"]
    assert result["mean_restored"][0] != result["mean_restored"][1]  # two alphas, two results
    assert result["api_equals_widget"]  # the widget and the library agree
    from imageio.v3 import imread

    shot = imread(result["screenshot"])
    assert shot.ndim == 3 and shot.shape[0] > 100 and np.ptp(shot[..., :3]) > 0


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")
def test_script_runs_from_the_command_line(tmp_path):
    shot = tmp_path / "cli.png"
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--steps",
            "2",
            "--width",
            "4",
            "--size",
            "48",
            "--device",
            "cpu",
            "--output",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "after 2 steps" in completed.stdout
    assert shot.is_file() and shot.stat().st_size > 1000
