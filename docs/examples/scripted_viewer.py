"""Scripted viewer automation with napari-lowlight.

Opens a napari viewer, adds a clean image, and then, through the docked widgets' plain
attributes and methods:

1. synthesises a low-light version (Synthesize low light),
2. fine-tunes a model on the clean image for a few steps (Train / fine-tune; it starts
   from the shipped weights when they are installed, from scratch otherwise),
3. restores the low-light layer with that model at two alpha values (Restore low light:
   the second alpha is a live update that re-runs only Enhance-Net),

restores it once more through the plain library API (``napari_lowlight.restore``),
and saves a screenshot of the viewer.

Run it (under Xvfb on a machine without a display)::

    python docs/examples/scripted_viewer.py --output scripted.png
    python docs/examples/scripted_viewer.py --steps 200 --show   # keep the viewer open

``run_demo`` is importable, so a test (or a notebook) can drive an existing viewer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def run_demo(
    viewer,
    *,
    output: str | Path | None = None,
    steps: int = 30,
    width: int = 8,
    size: int = 256,
    device: str = "auto",
    alphas: tuple[float, float] = (0.8, 1.6),
) -> dict:
    """Run the whole tour on ``viewer``; returns what it did (layer names, numbers, paths)."""
    import napari_lowlight as nll
    from napari_lowlight.samples import skimage_image
    from napari_lowlight._widgets import RestoreWidget, SynthesizeWidget, TrainWidget, wait_for_worker
    from napari_lowlight._widgets._state import DEFAULT_MODEL_NAME, model_registry

    # 1. a clean image (a crop of scikit-image's camera, shipped inside the package)
    clean = skimage_image("camera.png")[:size, 128 : 128 + size]
    viewer.add_image(clean, name="camera", contrast_limits=(0, 255))

    # 2. synthesise low light with the Synthesize widget
    synthesize = SynthesizeWidget(viewer)
    viewer.window.add_dock_widget(synthesize, name="Synthesize low light", area="right")
    synthesize.layer = "camera"
    synthesize.alpha, synthesize.gamma = 1.2, 1.0
    synthesize.noise, synthesize.noise_sigma, synthesize.seed = "gaussian", 0.02, 0
    wait_for_worker(synthesize.run())
    low_layer = viewer.layers[-1]

    # 3. fine-tune on the clean image with the Train widget
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Train / fine-tune", area="right")
    train.train_layers = ["camera"]
    try:
        model_registry.get(DEFAULT_MODEL_NAME).get_model()
        train.start_from = "default"
    except (KeyError, FileNotFoundError, ValueError):
        train.start_from, train.model_width = "scratch", width
    train.steps, train.batch_size, train.patch_size = steps, 8, 32
    train.validate_every = max(1, steps // 5)
    train.device = device
    wait_for_worker(train.start())
    if train.status.model_name == "":
        raise RuntimeError(f"training did not produce a model: {train.status.message}")

    # 4. restore with the fine-tuned model at two alphas with the Restore widget
    restore = RestoreWidget(viewer)
    viewer.window.add_dock_widget(restore, name="Restore low light", area="right")
    restore.layer = low_layer
    restore.model_name = train.status.model_name
    restore.device = device
    restore.alpha = alphas[0]
    wait_for_worker(restore.run())
    restored = restore.restored_layer
    first = restored.data.copy()
    wait_for_worker(restore.set_alpha(alphas[1]))  # live: Enhance-Net only
    second = restored.data.copy()

    # 5. the same through the plain library API (no widget), as a layer of its own
    api = nll.restore(low_layer.data, alphas[1], model=train.model, device=device)
    viewer.add_image(api, name=f"{low_layer.name} restored (API)", visible=False)

    restored.visible = True
    viewer.layers.selection.active = restored
    shot = None
    if output is not None:
        shot = Path(output)
        viewer.screenshot(str(shot), canvas_only=False)  # the window, docked widgets included
    return {
        "low": low_layer.name,
        "restored": restored.name,
        "model": train.status.model_name,
        "steps": train.status.step,
        "mean_clean": float(clean.mean()),
        "mean_low": float(np.mean(low_layer.data)),
        "mean_restored": (float(first.mean()), float(second.mean())),
        "api_equals_widget": bool(np.array_equal(api, second)),
        "screenshot": shot,
        "widgets": (synthesize, train, restore),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("scripted_viewer.png"), help="screenshot file (PNG)")
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps")
    parser.add_argument("--width", type=int, default=8, help="model width when training from scratch")
    parser.add_argument("--size", type=int, default=256, help="side of the image crop")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--show", action="store_true", help="keep the viewer open afterwards")
    args = parser.parse_args(argv)

    import napari

    viewer = napari.Viewer(show=args.show, title="napari-lowlight: scripted")
    try:
        result = run_demo(
            viewer, output=args.output, steps=args.steps, width=args.width, size=args.size, device=args.device
        )
        first, second = result["mean_restored"]
        print(
            f"model {result['model']!r} after {result['steps']} steps; mean intensity: "
            f"clean {result['mean_clean']:.1f}, low {result['mean_low']:.1f}, "
            f"restored {first:.1f} / {second:.1f}; screenshot {result['screenshot']}"
        )
        if args.show:
            napari.run()
    finally:
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
