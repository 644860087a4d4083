"""Fixtures for the widget tests: a real napari viewer (under Xvfb), tiny models, CPU only.

Run with ``xvfb-run -a python -m pytest tests/widgets`` (Qt6 binding): the
``offscreen`` Qt platform has no OpenGL, which napari's image layers need.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import torch  # noqa: E402

import napari_lowlight as core  # noqa: E402
from napari_lowlight._widgets import ModelRegistry, active_runs  # noqa: E402

# Keep the tests light on a shared 2-core machine, and deterministic.
torch.set_num_threads(1)


@pytest.fixture
def tiny_model():
    """An untrained model small enough to run a 32x32 image in milliseconds."""
    return core.new_model(width=4, seed=0)


@pytest.fixture
def registry(tiny_model):
    """A registry of its own per test holding one tiny model (no shipped default needed)."""
    registry = ModelRegistry(include_default=False)
    registry.add("tiny", tiny_model, kind="trained")
    return registry


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


@pytest.fixture
def notifications():
    """Notifications dispatched during the test (errors from workers included)."""
    from napari.utils.notifications import notification_manager

    records = []
    notification_manager.notification_ready.connect(records.append)
    yield records
    notification_manager.notification_ready.disconnect(records.append)


@pytest.fixture(autouse=True)
def _stop_workers(qtbot):
    """Leave no training worker running behind a test."""
    yield
    for run in active_runs():
        run.stop()
    for run in active_runs():
        if run.worker is not None:
            qtbot.waitUntil(lambda run=run: not run.running, timeout=30_000)


class Helpers:
    """Test images and notification filters (a fixture, so test modules need no imports)."""

    @staticmethod
    def grey(shape=(32, 32), dtype=np.uint8, seed=0):
        """A smooth random test image of ``dtype`` (integers use their full range)."""
        rng = np.random.default_rng(seed)
        base = rng.random(shape)
        for axis in (-1, -2):
            base = (base + np.roll(base, 1, axis=axis) + np.roll(base, -1, axis=axis)) / 3
        base = (base - base.min()) / (np.ptp(base) + 1e-9)
        if np.issubdtype(dtype, np.integer):
            return (base * np.iinfo(dtype).max).round().astype(dtype)
        return base.astype(dtype)

    @staticmethod
    def rgb(shape=(32, 32), seed=0):
        return np.stack([Helpers.grey(shape, np.uint8, seed + c) for c in range(3)], axis=-1)

    @staticmethod
    def gated(monkeypatch, name: str):
        """Make ``core.<name>`` wait until the returned event is set (at most 10 s) before it computes."""
        import threading

        gate = threading.Event()
        original = getattr(core, name)

        def waits(*args, **kwargs):
            gate.wait(10)
            return original(*args, **kwargs)

        monkeypatch.setattr(core, name, waits)
        return gate

    @staticmethod
    def errors(records) -> list[str]:
        from napari.utils.notifications import NotificationSeverity

        return [str(n.message) for n in records if n.severity >= NotificationSeverity.WARNING]


@pytest.fixture
def helpers():
    return Helpers
