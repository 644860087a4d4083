"""The panels in a shown viewer: a live slider that never blocks, the result in view,
a window that fits a small screen, and closing that leaves no thread behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QEvent, QObject, QThreadPool
from qtpy.QtWidgets import QTabBar

import napari_lowlight as core
from napari_lowlight._demo_viewer import dock_panels
from napari_lowlight._widgets import RestoreWidget
from napari_lowlight._widgets._workers import running_workers

needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def shown(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1100, 700)
    return viewer


@pytest.fixture
def docked(qtbot, shown, registry):
    panel = RestoreWidget(shown, registry=registry)
    panel.model_name, panel.device = "tiny", "cpu"
    shown.window.add_dock_widget(panel, name="Restore low light", area="right")
    return panel


def _restore(qtbot, panel, timeout=60_000):
    with qtbot.waitSignal(panel.run_finished, timeout=timeout):
        assert panel.run() is not None


def _idle_pool(timeout=5.0) -> bool:
    """True once no thread of Qt's global pool runs a job (napari starts its workers there)."""
    deadline = time.monotonic() + timeout
    while QThreadPool.globalInstance().activeThreadCount() and time.monotonic() < deadline:
        time.sleep(0.01)
    return QThreadPool.globalInstance().activeThreadCount() == 0


@needs_display
def test_a_slider_move_returns_to_the_event_loop_at_once(qtbot, shown, docked, helpers):
    photo = np.stack([helpers.grey((768, 1024), np.uint8, seed=c) for c in range(3)], axis=-1)  # 0.79 MPix RGB
    shown.add_image(photo, name="photo", rgb=True)
    _restore(qtbot, docked)
    restored = shown.layers["photo restored"]
    for alpha in (1.4, 0.7, 1.9):
        before = restored.data
        start = time.perf_counter()
        docked._slider.setValue(alpha)  # the slider's own slot: coalesce
        docked._apply_alpha()  # what the coalescing timer then calls: start the worker
        blocked = time.perf_counter() - start
        # Generous for a loaded machine; computing in the GUI thread would be far above it.
        assert blocked < 0.05, f"a slider move held the GUI thread for {blocked * 1000:.0f} ms"
        assert restored.data is before  # nothing was computed in the GUI thread
        with qtbot.waitSignal(docked.alpha_applied, timeout=30_000):
            pass
        assert restored.data is not before
    np.testing.assert_array_equal(
        restored.data,
        core.enhance(photo, docked.live.difference, 1.9, model=docked.live.model, channel_axis=-1, device="cpu"),
    )


@needs_display
def test_the_restored_layer_is_the_top_visible_one(qtbot, shown, docked, helpers):
    for name, data, rgb in (("grey", helpers.grey((64, 64)), False), ("photo", helpers.rgb((64, 64)), True)):
        shown.add_image(data, name=name, rgb=rgb)
        docked.layer = name
        _restore(qtbot, docked)
        visible = [layer.name for layer in shown.layers if layer.visible]
        assert visible[-1] == f"{name} restored"
        assert f"{name} difference map" not in visible
        assert shown.layers.selection.active.name == f"{name} restored"


class _PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


@needs_display
def test_nothing_repaints_the_window_while_a_restore_runs(qtbot, shown, docked, helpers, monkeypatch):
    shown.add_image(helpers.grey((64, 64)), name="low")
    gate = helpers.gated(monkeypatch, "estimate_difference")
    window = docked.window()
    counter = _PaintCounter()
    with qtbot.waitSignal(docked.run_finished, timeout=30_000):
        docked.run()
        qtbot.wait(300)  # the panel's own updates (button, message, bar) are drawn
        window.installEventFilter(counter)
        qtbot.wait(1000)  # a busy animation would repaint the window ~50 times a second
        window.removeEventFilter(counter)
        gate.set()
    assert counter.paints <= 5, f"the window repainted {counter.paints} times in one second of a restore"


@needs_display
def test_the_demo_panels_fit_a_1280x800_screen_with_restore_in_front(qtbot, shown, registry):
    synthesize, train, restore = dock_panels(shown, registry=registry)
    qtbot.wait(200)
    window = restore.window()
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 760, f"the window needs {hint.width()}x{hint.height()} px"
    window.resize(1280, 760)
    qtbot.wait(200)
    bars = [bar for bar in window.findChildren(QTabBar) if "Restore low light" in _tabs(bar)]
    assert len(bars) == 1 and set(_tabs(bars[0])) == {"Synthesize low light", "Train / fine-tune", "Restore low light"}
    assert bars[0].tabText(bars[0].currentIndex()) == "Restore low light"  # in front
    assert not restore._run.visibleRegion().isEmpty()  # the Restore button needs no scrolling
    assert not restore._slider.visibleRegion().isEmpty()


def _tabs(bar) -> list[str]:
    return [bar.tabText(index) for index in range(bar.count())]


def _slowed(monkeypatch, name: str) -> threading.Event:
    """Make ``core.<name>`` take 0.4 s longer a call; returns an event set once a call is in it."""
    computing = threading.Event()
    original = getattr(core, name)

    def slow(*args, **kwargs):
        computing.set()
        time.sleep(0.4)
        return original(*args, **kwargs)

    monkeypatch.setattr(core, name, slow)
    return computing


def _stack(viewer, helpers):
    viewer.add_image(helpers.grey((6, 32, 32), np.uint16), name="stack")


@needs_display
def test_closing_the_viewer_mid_update_leaves_no_running_thread(qtbot, shown, docked, helpers, monkeypatch):
    _stack(shown, helpers)
    _restore(qtbot, docked)
    computing = _slowed(monkeypatch, "enhance")
    worker = docked.set_alpha(1.6)
    assert computing.wait(10)
    shown.close()
    assert worker.thread_done.is_set()  # awaited inside close()
    assert not running_workers()
    assert _idle_pool()
    qtbot.wait(100)  # the worker's last signals reach a closed panel: nothing happens


@needs_display
def test_removing_the_panel_mid_update_cancels_and_awaits_it(qtbot, shown, docked, helpers, monkeypatch):
    _stack(shown, helpers)
    _restore(qtbot, docked)
    restored = shown.layers["stack restored"].data.copy()
    computing = _slowed(monkeypatch, "enhance")
    worker = docked.set_alpha(1.6)
    assert computing.wait(10)
    shown.window.remove_dock_widget(docked)
    assert worker.thread_done.is_set()
    qtbot.wait(200)
    # Cancelled after the plane in progress: the other planes kept their data.
    changed = [not np.array_equal(a, b) for a, b in zip(shown.layers["stack restored"].data, restored, strict=True)]
    assert sum(changed) <= 1


@needs_display
def test_closing_the_viewer_during_a_restore_run_awaits_it(qtbot, shown, docked, helpers, monkeypatch):
    shown.add_image(helpers.grey((64, 64)), name="low")
    computing = _slowed(monkeypatch, "estimate_difference")
    worker = docked.run()
    assert computing.wait(10)
    shown.close()
    assert worker.thread_done.is_set() and not running_workers()


SCRIPT = """
import numpy as np
import napari
import napari_lowlight as core
from napari_lowlight._widgets import ModelRegistry, RestoreWidget, wait_for_worker

registry = ModelRegistry(include_default=False)
registry.add("tiny", core.new_model(width=4, seed=0), kind="trained")
viewer = napari.Viewer()
viewer.add_image(np.random.default_rng(0).integers(0, 80, (4, 160, 200, 3), dtype=np.uint8), name="low", rgb=True)
panel = RestoreWidget(viewer, registry=registry)
panel.device = "cpu"
viewer.window.add_dock_widget(panel, area="right")
wait_for_worker(panel.run())
original = core.enhance

def slow(*args, **kwargs):
    import time
    time.sleep(0.3)
    return original(*args, **kwargs)

core.enhance = slow
panel.set_alpha(1.7)
{ending}
print("script ended", flush=True)
"""


@needs_display
@pytest.mark.parametrize("ending", ["viewer.close()", "pass"], ids=["closed", "left-open"])
def test_a_script_that_ends_mid_update_exits_cleanly(tmp_path, ending):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("{ending}", ending))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(core.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "script ended" in completed.stdout
    assert "has been deleted" not in output and "Traceback" not in output, output[-3000:]
