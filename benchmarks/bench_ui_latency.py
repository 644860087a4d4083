"""Latency of the Restore panel's live alpha slider in a real napari viewer.

A shown viewer (1280x800 window) holds a low-light image restored by the Restore panel;
the script then moves the alpha slider as a user would (``setValue`` on the slider,
the panel's own coalescing timer and worker from there) and measures, per move:

* the longest block of the GUI thread: the largest gap between the ticks of a 5 ms
  heartbeat timer, from the move until the full-resolution result is on screen (slots,
  data swaps and the canvas repaint all count);
* the time to the preview (planes above 256 k pixels first show the part on screen,
  computed on at most 256 k pixels) and to full resolution, each until the first canvas
  repaint after the panel put it in place.

Also: a drag (ten moves 40 ms apart: the longest block, and the time from the last move
to its full resolution), and one restore inside the viewer against the same call
outside it (what the viewer's repaints cost a run). Without ``--model``, the shipped
fluorescence weights (a deeper Enhance-Net) are then timed on the grey image too.

Run from the repository root on a machine without a display under Xvfb::

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m benchmarks.bench_ui_latency
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from . import _report

HEARTBEAT_MS = 5
ALPHAS = (1.5, 0.8, 1.9, 1.1, 1.6, 0.6, 1.3)
FULL = dict(photo=1024, grey=2048, moves=len(ALPHAS))
QUICK = dict(photo=256, grey=512, moves=2)


def images(photo_side: int, grey_side: int) -> dict:
    """The low-light test images: a real RGB photo and a grey one, upscaled and darkened."""
    from skimage.transform import resize

    import napari_lowlight as core
    from napari_lowlight.samples import skimage_image

    def darken(clean, channel_axis):
        return core.synthesize_low_light(clean, 1.0, 1.0, noise_sigma=0.02, seed=0, channel_axis=channel_axis)

    photo = resize(skimage_image("astronaut.png"), (photo_side, photo_side), preserve_range=True).astype(np.uint8)
    grey = resize(skimage_image("camera.png"), (grey_side, grey_side), preserve_range=True).astype(np.uint8)
    return {
        f"{photo_side}x{photo_side} RGB photo (astronaut)": (darken(photo, -1), True),
        f"{grey_side}x{grey_side} grey image (camera)": (darken(grey, None), False),
    }


class _Clock:
    """A heartbeat in the GUI thread and the times of the canvas's repaints."""

    def __init__(self, canvas_widget):
        from qtpy.QtCore import QEvent, QObject, QTimer

        self.ticks: list[float] = []
        self.paints: list[float] = []
        self._timer = QTimer()
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._timer.start()
        paints = self.paints

        class PaintFilter(QObject):
            def eventFilter(self, watched, event):
                if event.type() == QEvent.Type.Paint:
                    paints.append(time.perf_counter())  # as the canvas starts painting
                return False

        self._filter = PaintFilter()
        self._canvas = canvas_widget
        canvas_widget.installEventFilter(self._filter)

    def stop(self) -> None:
        self._timer.stop()
        self._canvas.removeEventFilter(self._filter)
        self._timer.deleteLater()
        self._filter.deleteLater()

    def longest_block(self, start: float, end: float) -> float:
        """The largest gap between heartbeats (or the window's ends) in [start, end], s."""
        ticks = [start] + [t for t in self.ticks if start < t < end] + [end]
        return max(b - a for a, b in zip(ticks, ticks[1:]))

    def repaint_after(self, moment: float, wait: float = 2.0) -> float:
        """The first canvas repaint after ``moment`` (processing events until it comes;
        napari may repaint within the data swap itself)."""
        deadline = time.perf_counter() + wait
        while time.perf_counter() < deadline:
            later = [t for t in self.paints if t >= moment]
            if later:
                return later[0]
            _process(0.002)
        return float("nan")


def _process(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    app = QApplication.instance()
    while True:
        app.processEvents()
        if time.perf_counter() >= end:
            return
        time.sleep(0.001)


def _spy_updates(panel) -> list:
    """Record ``(time the panel starts putting it in place, is_preview)`` for every plane
    the panel puts in place (napari may repaint the canvas within the swap)."""
    arrivals = []
    deliver = panel._on_alpha_update

    def spy(update):
        start = time.perf_counter()
        deliver(update)
        if update.generation == panel._alpha_generation:  # put in place, not dropped as stale
            arrivals.append((start, update.preview))

    panel._on_alpha_update = spy  # the panel connects this attribute when it starts an update
    return arrivals


def _wait_full(panel, arrivals, count_before, timeout=120.0) -> float:
    """Process events until a full-resolution plane arrives after ``count_before``; its time."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        full = [t for t, preview in arrivals[count_before:] if not preview]
        if full and panel.alpha_worker is not None and panel.alpha_worker.done.is_set():
            return full[-1]
        _process(0.002)
    raise TimeoutError("no full-resolution update arrived")


def measure_image(viewer, panel, clock, name, low, rgb, *, model, moves, log):
    """Restore ``low`` in the viewer, then move the slider; returns the numbers of one image."""
    import napari_lowlight as core
    from napari_lowlight._widgets import wait_for_worker

    axis = -1 if rgb else None
    core.restore(low[:64, :64], 1.0, model=model, channel_axis=axis, device=panel.device)  # warm-up: the prepared model is cached
    layer = viewer.add_image(low, name="low", rgb=rgb)
    panel.layer = layer
    panel.alpha = 1.0
    _process(0.5)
    start = time.perf_counter()
    wait_for_worker(panel.run(), timeout=1800)
    in_viewer = time.perf_counter() - start
    start = time.perf_counter()
    core.restore(low, 1.0, model=model, channel_axis=axis, device=panel.device)
    plain = time.perf_counter() - start
    print(f"{name}: restore {in_viewer:.2f} s in the viewer, {plain:.2f} s plain", file=log)
    viewer.reset_view()
    _process(1.0)

    arrivals = _spy_updates(panel)
    results = []
    for alpha in ALPHAS[:moves]:
        _process(0.3)
        before = len(arrivals)
        moved = time.perf_counter()
        panel._slider.setValue(alpha)  # the user's move: the panel's slots take it from here
        full = _wait_full(panel, arrivals, before)
        full_shown = clock.repaint_after(full)
        previews = [t for t, preview in arrivals[before:] if preview]
        preview_shown = clock.repaint_after(previews[0]) if previews else float("nan")
        # A refined plane on screen first comes as the network's output at full resolution.
        unrefined_shown = clock.repaint_after(previews[-1]) if len(previews) > 1 else float("nan")
        block = clock.longest_block(moved, full_shown)
        results.append(
            dict(alpha=alpha, block=block, preview=preview_shown - moved, unrefined=unrefined_shown - moved, full=full_shown - moved)
        )
        print(
            f"  alpha {alpha}: longest GUI block {block * 1000:.0f} ms, preview {results[-1]['preview']:.2f} s, "
            f"unrefined {results[-1]['unrefined']:.2f} s, full {results[-1]['full']:.2f} s",
            file=log,
        )

    # A drag: ten moves 40 ms apart, as fast as a hand moves the slider.
    _process(0.5)
    before = len(arrivals)
    started = time.perf_counter()
    for alpha in np.linspace(0.6, 2.0, 10):
        panel._slider.setValue(float(alpha))
        _process(0.04)
    last_move = time.perf_counter()
    full_shown = clock.repaint_after(_wait_full(panel, arrivals, before))
    drag = dict(block=clock.longest_block(started, full_shown), full=full_shown - last_move)
    print(f"  drag: longest GUI block {drag['block'] * 1000:.0f} ms, full {drag['full']:.2f} s after the last move", file=log)
    del panel._on_alpha_update
    return dict(moves=results, drag=drag, restore_in_viewer=in_viewer, restore_plain=plain)


def run(*, photo_side, grey_side, moves, model_path=None, device="cpu", grey_only=False, log=sys.stderr):
    import napari

    import napari_lowlight as core
    from napari_lowlight._widgets import ModelRegistry, RestoreWidget

    model = core.load_model(model_path, device="cpu")
    registry = ModelRegistry(include_default=False)
    registry.add("benchmark", model, kind="file")
    results, idle = {}, []
    for name, (low, rgb) in images(photo_side, grey_side).items():
        if grey_only and rgb:
            continue
        # A viewer of its own per image: clearing one and reusing it has crashed Mesa's
        # software OpenGL here (a torch process, a new kind of layer after an RGB one).
        viewer = napari.Viewer(title="napari-lowlight: UI latency")
        viewer.window.resize(1280, 800)
        panel = RestoreWidget(viewer, registry=registry)
        panel.model_name, panel.device = "benchmark", device
        viewer.window.add_dock_widget(panel, name="Restore low light", area="right")
        _process(1.0)
        clock = _Clock(viewer.window._qt_viewer.canvas.native)
        try:
            _process(1.0)
            idle.append(clock.longest_block(time.perf_counter() - 0.9, time.perf_counter()))
            results[name] = measure_image(viewer, panel, clock, name, low, rgb, model=model, moves=moves, log=log)
        finally:
            clock.stop()
            viewer.close()
    return dict(images=results, idle_block=max(idle), heartbeat_ms=HEARTBEAT_MS, device=device), model


def _ms(seconds):
    return f"{seconds * 1000:.0f}"


def format_report(result, *, model_text, machine, command, quick):
    lines = _report.section_header(
        "UI latency: the live alpha slider in napari",
        command=command,
        machine=machine,
        model_text=model_text,
        quick=quick,
        images_word="small images",
    )
    first = next(iter(result["images"].values()))
    lines += [
        f"A shown napari viewer (1280x800 window, Xvfb with Mesa's software OpenGL) and the Restore panel on the "
        f"{result['device']} device; {len(first['moves'])} slider moves per image, each after the previous one's "
        "full resolution is on screen, then a drag of ten moves 40 ms apart. Times run from the move "
        "(`setValue` on the slider: the panel's own coalescing and worker from there) to the first canvas "
        f"repaint after the panel put the plane in place. The longest GUI block is the largest gap between the "
        f"ticks of a {result['heartbeat_ms']} ms heartbeat timer in the GUI thread over that time (idle: "
        f"{_ms(result['idle_block'])} ms). Cells are median / worst over the moves. \"unrefined\": the plane on screen "
        "at full resolution as the network gives it, before its refinement (`refine=True`, the default) replaces it. "
        "Goals: block <= 50 ms, preview <= 0.3 s, full resolution <= 1.5 s for the 1 MPix photo on 2 CPU cores.",
        "",
    ]
    rows = []
    for name, numbers in result["images"].items():
        moves = numbers["moves"]

        def cell(key, scale=1.0, digits=2, moves=moves):
            values = [m[key] * scale for m in moves if np.isfinite(m[key])]
            if not values:
                return "none"
            return f"{statistics.median(values):.{digits}f} / {max(values):.{digits}f}"

        rows.append(
            [
                name,
                cell("block", 1000, 0),
                cell("preview"),
                cell("unrefined"),
                cell("full"),
                f"{_ms(numbers['drag']['block'])} / {numbers['drag']['full']:.2f}",
                f"{numbers['restore_in_viewer']:.2f} / {numbers['restore_plain']:.2f}",
            ]
        )
    lines.append(
        _report.markdown_table(
            [
                "image",
                "longest GUI block, ms",
                "to preview, s",
                "to full resolution unrefined, s",
                "to full resolution, s",
                "drag: block ms / full s after the last move",
                "restore in the viewer / plain call, s",
            ],
            rows,
        )
    )
    if any(row[2] == "none" for row in rows):
        lines += [
            "",
            '"none": the image\'s planes are small enough (at most 256 k pixels, colour channels not counted) to '
            "skip the preview.",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ui_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images and two moves: a smoke run")
    parser.add_argument("--device", default="cpu", help="the Restore panel's device (default: cpu)")
    _report.add_model_option(parser)
    _report.add_output_options(parser)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    machine = _report.machine_description()
    result, model = run(
        photo_side=size["photo"], grey_side=size["grey"], moves=size["moves"], model_path=args.model, device=args.device
    )
    model_text = _report.describe_model(model, args.model)
    if args.model is None:
        # The shipped fluorescence weights' deeper Enhance-Net on the kind of frame they are for.
        from napari_lowlight.weights import shipped_weights_path

        path = shipped_weights_path("fluorescence")
        more, fluorescence = run(
            photo_side=size["photo"],
            grey_side=size["grey"],
            moves=size["moves"],
            model_path=path,
            device=args.device,
            grey_only=True,
        )
        result["images"].update({f"{name}, fluorescence weights": numbers for name, numbers in more["images"].items()})
        result["idle_block"] = max(result["idle_block"], more["idle_block"])
        label = "the shipped fluorescence weights"
        model_text += '. Rows marked "fluorescence weights": ' + _report.describe_model(fluorescence, path, label=label)
    report = format_report(
        result,
        model_text=model_text,
        machine=machine,
        command=_report.command_line("benchmarks.bench_ui_latency"),
        quick=args.quick,
    )
    _report.publish(args, "ui-latency", report, result)


if __name__ == "__main__":
    main()
