"""Write the user guide's screenshots (docs/images/*.png) from a real napari viewer.

A 1280x800 window with the three panels docked as tabs, as ``napari-lowlight demo``
docks them; each widget is shown in use, on the offline samples:

* ``synthesize.png`` — the camera sample: clean, synthesised low light and its true
  difference map side by side (grid view), the Synthesize tab in front.
* ``train.png`` — the Train widget after a short fine-tuning run (the shipped weights
  when installed, otherwise a small model from scratch): live loss curve, PSNR.
* ``train_self_supervised.png`` — the Train widget fine-tuning the shipped weights on the
  noisy fluorescence Z-stack alone (self-supervised): loss curve, the held-back plane's
  crop before and after.
* ``restore.png`` — the Restore widget on the astronaut sample (RGB): low light,
  restored and the estimated difference map (one value map) side by side, the slider.
* ``restore_stack.png`` — the fluorescence Z-stack restored, one plane shown.
* ``restore_demo.png`` — what ``napari-lowlight demo`` opens on: the restored camera
  sample on top, in view, the Restore panel in front.

Run on a machine without a display under Xvfb, with a screen large enough for the
1280x800 window (about 3 minutes on a 2-core CPU)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/make_screenshots.py [--steps 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wait(worker, timeout=1800):
    from napari_lowlight._widgets import wait_for_worker

    wait_for_worker(worker, timeout=timeout)


def _settle(viewer, seconds=0.5):
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _shot(viewer, path: Path) -> None:
    _settle(viewer)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def _only(viewer, keep):
    """Show only the layers named in ``keep``, in a grid."""
    for layer in viewer.layers:
        layer.visible = layer.name in keep
    grid = _grid(viewer)
    grid.enabled = len(keep) > 1
    grid.shape = (1, len(keep)) if len(keep) > 1 else (-1, -1)
    viewer.reset_view()


def _grid(viewer):
    """The grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--steps", type=int, default=100, help="training steps for train.png")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtWidgets import QDockWidget, QScrollArea

    from napari_lowlight._demo_viewer import dock_panels
    from napari_lowlight._sample_data import astronaut_sample, camera_sample, fluorescence_sample
    from napari_lowlight._widgets import DEFAULT_MODEL_NAME
    from napari_lowlight._widgets._state import model_registry

    try:
        model_registry.get(DEFAULT_MODEL_NAME).get_model()
        have_default = True
    except (FileNotFoundError, ValueError):
        have_default = False
    print(f"shipped default weights: {'yes' if have_default else 'missing (training from scratch)'}")

    viewer = napari.Viewer(title="napari-lowlight")
    viewer.window.resize(1280, 800)
    synthesize, train, restore = dock_panels(viewer)

    def front(panel):
        dock = panel.parentWidget()
        while not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        _settle(viewer, 0.1)  # the dock area makes its tab bar when it lays out
        dock.raise_()  # the panel's tab

    def add(sample):
        viewer.layers.clear()
        _grid(viewer).enabled = False
        for data, kwargs, _ in sample():
            viewer.add_image(data, **kwargs)
        return viewer.layers[-2], viewer.layers[-1]  # clean, low

    # ---------------------------------------------------------------- synthesize
    clean, low = add(camera_sample)
    clean.visible = True
    front(synthesize)
    synthesize.layer = clean
    synthesize.alpha, synthesize.gamma = 1.5, 1.0
    synthesize.noise, synthesize.noise_sigma, synthesize.seed = "poisson-gaussian", 0.01, 0
    synthesize.photons = 200.0
    synthesize.add_difference = True
    _wait(synthesize.run())
    synthesized = viewer.layers[-2].name
    difference = viewer.layers[-1].name
    _only(viewer, [clean.name, synthesized, difference])
    _shot(viewer, args.out / "synthesize.png")

    # ---------------------------------------------------------------- train
    front(train)
    train.train_layers = [clean.name]
    if have_default:
        train.start_from = "default"
    else:
        train.start_from, train.model_width = "scratch", 8
    train.steps, train.batch_size, train.patch_size = args.steps, 8, 48
    train.validate_every = max(1, args.steps // 15)
    train.device = args.device
    _wait(train.start())
    print(train.status.message)
    _only(viewer, [clean.name])
    _shot(viewer, args.out / "train.png")
    trained = train.status.model_name

    # ---------------------------------------------------------------- restore (what the demo shows)
    front(restore)
    restore.model_name = DEFAULT_MODEL_NAME if have_default else trained
    restore.device = args.device
    for layer in viewer.layers:
        layer.visible = layer.name == low.name  # as the demo opens: the low-light sample on top
    _grid(viewer).enabled = False
    restore.layer = low
    restore.auto_alpha = True
    _wait(restore.run())
    viewer.reset_view()
    _shot(viewer, args.out / "restore_demo.png")

    # ---------------------------------------------------------------- restore a colour photo
    clean, low = add(astronaut_sample)
    restore.layer = low
    restore.auto_alpha = False
    restore.alpha = 1.0
    _wait(restore.run())
    _wait(restore.set_alpha(1.2))
    _only(viewer, [low.name, restore.restored_layer.name, restore.difference_layer.name])
    _shot(viewer, args.out / "restore.png")

    # ---------------------------------------------------------------- self-supervised on a noisy stack
    clean, stack = add(fluorescence_sample)
    front(train)
    train.mode = "self-supervised"
    train.train_layers = [stack.name]
    if not have_default:
        train.start_from, train.model_width = "scratch", 8
    train.steps, train.batch_size = args.steps, 8  # the patch size stays the mode's
    train.validate_every = max(1, args.steps // 15)
    _wait(train.start())
    print(train.status.message)
    _only(viewer, [stack.name])
    train.findChild(QScrollArea).ensureWidgetVisible(train.preview)  # the panel scrolls to its before/after
    _shot(viewer, args.out / "train_self_supervised.png")
    train.mode = "clean"

    # ---------------------------------------------------------------- restore a stack
    front(restore)
    restore.layer = stack
    restore.alpha = 1.0  # the sample's true alpha
    _wait(restore.run())
    viewer.dims.set_current_step(0, stack.data.shape[0] // 2)
    _only(viewer, ["fluorescence (clean)", stack.name, restore.restored_layer.name])
    # Same display range for all three, so brightness compares honestly.
    for name in ("fluorescence (clean)", stack.name, restore.restored_layer.name):
        viewer.layers[name].contrast_limits = (0, 40000)
    _shot(viewer, args.out / "restore_stack.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
