"""The Restore low light widget, end to end in a real viewer, with a tiny model on the CPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import napari_lowlight as core
from napari_lowlight._widgets import RestoreWidget, RunState
from napari_lowlight._widgets._workers import difference_view


@pytest.fixture
def widget(viewer, registry):
    widget = RestoreWidget(viewer, registry=registry)
    widget.model_name = "tiny"
    widget.device = "cpu"
    return widget


def run(qtbot, widget, timeout=30_000):
    with qtbot.waitSignal(widget.run_finished, timeout=timeout):
        worker = widget.run()
        assert worker is not None
    return worker


def set_alpha(qtbot, widget, alpha, timeout=20_000):
    """Move the slider to ``alpha`` and wait until every plane has it at full resolution."""
    with qtbot.waitSignal(widget.alpha_applied, timeout=timeout):
        worker = widget.set_alpha(alpha)
        assert worker is not None
    return worker


def record_updates(monkeypatch, widget) -> list:
    """The :class:`AlphaUpdate` items the alpha updates started from now on deliver to the panel, in order."""
    updates = []
    deliver = widget._on_alpha_update

    def spy(update):
        updates.append(update)
        deliver(update)

    monkeypatch.setattr(widget, "_on_alpha_update", spy)
    return updates


def expected(image, model, alpha, channel_axis=None):
    difference = core.estimate_difference(image, model=model, channel_axis=channel_axis, device="cpu")
    return core.enhance(image, difference, alpha, model=model, channel_axis=channel_axis, device="cpu"), difference


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("grey", np.uint8), ("grey", np.float32), ("stack", np.uint16), ("rgb", np.uint8)],
)
def test_run_adds_restored_and_difference_layers(qtbot, viewer, widget, tiny_model, helpers, kind, dtype):
    if kind == "rgb":
        image = helpers.rgb()
    elif kind == "stack":
        image = helpers.grey((3, 32, 24), dtype)
    else:
        image = helpers.grey((32, 32), dtype)
    source = viewer.add_image(image.copy(), name="low", rgb=kind == "rgb", scale=(2.0,) * (2 if kind != "stack" else 3))
    widget.layer = "low"
    widget.alpha = 1.3
    run(qtbot, widget)

    # The difference map below the result and hidden: what the user sees is the result.
    names = [layer.name for layer in viewer.layers]
    assert names == ["low", "low difference map", "low restored"]
    restored, difference = viewer.layers["low restored"], viewer.layers["low difference map"]
    assert [layer.name for layer in viewer.layers if layer.visible][-1] == "low restored"
    assert not difference.visible
    assert restored.data.shape == image.shape and restored.data.dtype == image.dtype
    assert restored.rgb == (kind == "rgb") and not difference.rgb
    assert tuple(restored.scale) == tuple(difference.scale) == tuple(source.scale)
    axis = -1 if kind == "rgb" else None
    want, want_difference = expected(image, tiny_model, 1.3, axis)
    np.testing.assert_array_equal(restored.data, want)
    # One value map, for a colour image the mean of its channels, in magma.
    shown = want_difference.mean(axis=-1) if kind == "rgb" else want_difference
    assert difference.data.shape == shown.shape and difference.data.dtype == np.float32
    np.testing.assert_allclose(difference.data, shown, atol=1e-6)
    np.testing.assert_array_equal(widget.live.difference, want_difference)  # the slider's cache: every channel
    low, high = difference.contrast_limits
    assert low == 0.0 and 0.0 < high <= max(float(shown.max()), 1e-6)
    assert difference.colormap.name == "magma"
    np.testing.assert_array_equal(source.data, image)  # input untouched
    assert widget.status.state == RunState.DONE and widget.status.progress == 1.0


def test_blank_nan_pixels_stay_blank_in_the_result_and_the_slider(qtbot, viewer, widget, tiny_model, helpers):
    frame = helpers.grey((32, 40), np.float32)
    frame[:, :5] = np.nan  # a mosaic's border, say
    viewer.add_image(frame.copy(), name="mosaic")
    widget.layer, widget.alpha = "mosaic", 1.0
    run(qtbot, widget)
    restored = viewer.layers["mosaic restored"]
    np.testing.assert_array_equal(np.isnan(restored.data), np.isnan(frame))
    np.testing.assert_array_equal(restored.data, core.restore(frame, 1.0, model=tiny_model, device="cpu"))
    set_alpha(qtbot, widget, 1.5)
    np.testing.assert_array_equal(np.isnan(restored.data), np.isnan(frame))
    assert np.isfinite(restored.data[:, 5:]).all()


def test_a_difference_map_the_user_deleted_comes_back_below_the_result(qtbot, viewer, widget, helpers):
    viewer.add_image(helpers.rgb(), name="photo", rgb=True)
    run(qtbot, widget)
    viewer.layers.remove("photo difference map")
    viewer.add_image(helpers.grey(), name="other")
    run(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    assert names.index("photo difference map") == names.index("photo restored") - 1


def test_difference_view_of_rgba_leaves_out_the_opacity():
    difference = np.zeros((4, 5, 4), np.float32)
    difference[..., :3] = [0.1, 0.2, 0.6]
    view = difference_view(difference, -1)
    assert view.shape == (4, 5) and view.dtype == np.float32
    np.testing.assert_allclose(view, 0.3)
    assert difference_view(difference[..., 0], None) is not None


def test_alpha_slider_updates_in_place_without_estimate_net(qtbot, viewer, widget, tiny_model, helpers, monkeypatch):
    calls = []
    original = core.estimate_difference
    monkeypatch.setattr(core, "estimate_difference", lambda *a, **k: calls.append(1) or original(*a, **k))
    image = helpers.grey()
    viewer.add_image(image, name="low")
    widget.alpha = 1.0
    run(qtbot, widget)
    restored = viewer.layers["low restored"]
    before = restored.data.copy()
    difference = original(image, model=tiny_model, device="cpu")

    set_alpha(qtbot, widget, 2.0)
    assert viewer.layers["low restored"].unique_id == restored.unique_id
    assert not np.array_equal(restored.data, before)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 2.0, model=tiny_model, device="cpu"))
    assert len(calls) == 1  # the difference map came from the cache
    assert restored.metadata["napari_lowlight"]["alpha"] == 2.0

    # Dragging the real slider: coalesced, then applied.
    with qtbot.waitSignal(widget.alpha_applied, timeout=10_000):
        widget._slider.setValue(0.6)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 0.6, model=tiny_model, device="cpu"))
    set_alpha(qtbot, widget, 0.0)  # the slider's bottom: denoise only
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 0.0, model=tiny_model, device="cpu"))
    assert restored.metadata["napari_lowlight"]["alpha"] == 0.0
    assert len(calls) == 1
    assert len(viewer.layers) == 3


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_stack_updates_visible_plane_first_then_the_rest(qtbot, viewer, widget, tiny_model, helpers, monkeypatch, colour):
    if colour:
        image = np.stack([helpers.rgb(seed=z) for z in range(4)])  # (Z, Y, X, RGB)
    else:
        image = helpers.grey((4, 32, 32), np.uint16)
    axis = -1 if colour else None
    viewer.add_image(image, name="stack", rgb=colour)
    run(qtbot, widget)
    restored = viewer.layers["stack restored"]
    old = restored.data.copy()
    _, difference = expected(image, tiny_model, 1.0, axis)
    new = core.enhance(image, difference, 2.5, model=tiny_model, device="cpu", channel_axis=axis)
    viewer.dims.set_current_step(0, 2)

    updates = record_updates(monkeypatch, widget)
    with qtbot.waitSignal(widget.alpha_applied, timeout=20_000):
        worker = widget.set_alpha(2.5)
        assert worker is not None
        # Nothing was computed in the GUI thread: the layer is unchanged until the worker delivers.
        np.testing.assert_array_equal(restored.data, old)
    # The plane on screen first, the network's output and then refined; 32x32 planes need no coarse preview.
    assert [update.index for update in updates] == [(2,), (2,), (0,), (1,), (3,)]
    assert [update.preview for update in updates] == [True, False, False, False, False]
    np.testing.assert_array_equal(restored.data, new)
    assert widget.status.progress == 1.0


@pytest.mark.parametrize("kind", ["grey", "stack", "rgb"])
def test_big_planes_show_a_preview_then_full_resolution(qtbot, viewer, widget, tiny_model, helpers, monkeypatch, kind):
    import napari_lowlight._widgets._restore as restore_module

    monkeypatch.setattr(restore_module, "PREVIEW_PIXELS", 64)  # every 32x32 plane counts as big
    image = {"grey": helpers.grey((32, 32), np.uint16), "stack": helpers.grey((2, 32, 32), np.uint16)}.get(kind)
    image = helpers.rgb() if image is None else image
    axis = -1 if kind == "rgb" else None
    viewer.add_image(image, name="big", rgb=kind == "rgb")
    run(qtbot, widget)
    restored = viewer.layers["big restored"]
    _, difference = expected(image, tiny_model, 1.0, axis)
    new = core.enhance(image, difference, 2.0, model=tiny_model, device="cpu", channel_axis=axis)
    updates = record_updates(monkeypatch, widget)
    set_alpha(qtbot, widget, 2.0)
    preview, unrefined, *full = updates
    visible = (0,) if kind == "stack" else ()
    assert preview.preview and preview.index == visible
    # Then the plane on screen at full resolution as the network gives it, before its refinement.
    assert unrefined.preview and unrefined.index == visible
    assert [update.preview for update in full] == [False] * len(full)
    coarse = preview.plane
    assert np.array_equal(coarse[0::4, 0::4], coarse[1::4, 1::4])  # coarse: 4x4 blocks (64 pixels computed)
    assert not np.array_equal(coarse, new[0] if kind == "stack" else new)
    np.testing.assert_array_equal(viewer.layers["big restored"].data, new)


def test_the_preview_switch_counts_pixels_not_colour_values(qtbot, viewer, widget, helpers, monkeypatch):
    import napari_lowlight._widgets._restore as restore_module

    # 32x32 RGB: 1024 pixels, 3072 values. Below the switch by pixels: no preview.
    monkeypatch.setattr(restore_module, "PREVIEW_PIXELS", 1500)
    viewer.add_image(helpers.rgb(), name="photo", rgb=True)
    run(qtbot, widget)
    updates = record_updates(monkeypatch, widget)
    set_alpha(qtbot, widget, 1.8)
    assert [update.preview for update in updates] == [True, False]  # no coarse preview: unrefined, then refined


def test_a_preview_covers_the_region_on_screen_only(tiny_model, helpers):
    import threading

    from napari_lowlight._widgets._workers import alpha_update_job

    image = helpers.grey((64, 48), np.uint16)
    options = dict(model=tiny_model, device="cpu", tile_size=None, data_range=None)
    difference = core.estimate_difference(image, **options)
    shown = np.zeros_like(image)
    updates = list(
        alpha_update_job(
            7, image, difference, 1.5, lead_ndim=0, visible=(), region=(8, 40, 10, 30), shown=shown,
            preview_pixels=160, cancelled=threading.Event(), gate=threading.Semaphore(1), channel_axis=None, **options,
        )
    )
    preview, unrefined, full = updates
    assert preview.generation == unrefined.generation == full.generation == 7
    assert preview.preview and unrefined.preview and not full.preview
    outside = np.ones(image.shape, bool)
    outside[8:40, 10:30] = False
    assert not preview.plane[outside].any()  # as the layer showed it
    assert preview.plane[8:40, 10:30].all()
    # The network's output at full resolution first, as the refinement doubles the wait for it.
    np.testing.assert_array_equal(unrefined.plane, core.enhance(image, difference, 1.5, refine=False, **options))
    np.testing.assert_array_equal(full.plane, core.enhance(image, difference, 1.5, **options))
    assert not np.array_equal(unrefined.plane, full.plane)
    assert np.array_equal(shown, np.zeros_like(image))  # the layer's data is only read
    # Unrefined, the full-resolution plane comes once.
    updates = list(
        alpha_update_job(
            8, image, difference, 1.5, lead_ndim=0, visible=(), region=None, shown=shown,
            preview_pixels=10**9, cancelled=threading.Event(), gate=threading.Semaphore(1), channel_axis=None,
            refine=False, **options,
        )
    )
    assert [update.preview for update in updates] == [False]


def test_a_cancelled_update_computes_nothing_more(tiny_model, helpers):
    import threading

    from napari_lowlight._widgets._workers import alpha_update_job

    stack = helpers.grey((3, 32, 32), np.uint16)
    options = dict(model=tiny_model, device="cpu")
    difference = core.estimate_difference(stack, **options)
    cancelled = threading.Event()
    job = alpha_update_job(
        1, stack, difference, 1.5, lead_ndim=1, visible=(1,), region=None, shown=stack,
        preview_pixels=10**9, cancelled=cancelled, gate=threading.Semaphore(1), channel_axis=None, **options,
    )
    assert next(job).index == (1,)
    cancelled.set()
    assert list(job) == []


def test_newer_alpha_aborts_older_stack_update(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.grey((6, 32, 32), np.uint8)
    viewer.add_image(image, name="stack")
    run(qtbot, widget)
    restored = viewer.layers["stack restored"]
    _, difference = expected(image, tiny_model, 1.0)
    with qtbot.waitSignal(widget.alpha_applied, timeout=20_000):
        widget.set_alpha(0.5)
        widget.set_alpha(1.7)
    qtbot.waitUntil(lambda: widget.alpha_worker.done.is_set(), timeout=20_000)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.7, model=tiny_model, device="cpu"))


def test_auto_alpha_sets_the_slider(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.rgb()
    viewer.add_image(image, name="low", rgb=True)
    assert widget.auto_alpha  # the panel opens with "auto" ticked
    run(qtbot, widget)
    estimate = core.estimate_alpha(image, model=tiny_model, channel_axis=-1)
    assert estimate >= 0.5  # the tiny model's estimator answers in [0.5, 2]
    assert widget.alpha == pytest.approx(estimate, abs=0.01)
    assert widget.auto_alpha  # kept for the next image
    meta = viewer.layers["low restored"].metadata["napari_lowlight"]
    assert meta["alpha"] == pytest.approx(estimate)


def test_auto_alpha_denoises_a_grey_frame_and_says_how_to_brighten_it(qtbot, viewer, widget, helpers):
    viewer.add_image(helpers.grey(), name="cells")
    run(qtbot, widget)
    assert widget.alpha == 0.0
    assert viewer.layers["cells restored"].metadata["napari_lowlight"]["alpha"] == 0.0
    assert "denoised" in widget.status.message and "slider" in widget.status.message


def test_rerun_replaces_only_its_own_layers(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.grey()
    viewer.add_image(image, name="low")
    mine_lookalike = viewer.add_image(np.zeros((32, 32), np.uint8), name="low restored")
    widget.layer = "low"
    widget.alpha = 1.0
    run(qtbot, widget)
    assert len(viewer.layers) == 4
    ours = [layer for layer in viewer.layers if "napari_lowlight" in layer.metadata]
    assert len(ours) == 2
    widget.alpha = 0.7
    run(qtbot, widget)
    assert len(viewer.layers) == 4  # replaced, not added
    np.testing.assert_array_equal(mine_lookalike.data, 0)  # someone else's layer: untouched
    ours = [layer for layer in viewer.layers if layer.metadata.get("napari_lowlight", {}).get("role") == "restored"]
    assert len(ours) == 1
    np.testing.assert_array_equal(ours[0].data, expected(image, tiny_model, 0.7)[0])


def test_rerun_follows_the_source_and_rescales_the_display(qtbot, viewer, widget, tiny_model, helpers):
    image = (helpers.grey((32, 32), np.float32) * 16000).astype(np.uint16)
    source = viewer.add_image(image, name="low")
    widget.data_range = 4095  # a 12-bit camera's range: the output stays within it
    run(qtbot, widget)
    restored = viewer.layers["low restored"]
    assert restored.contrast_limits[1] <= 4095
    source.scale, source.name = (0.5, 0.25), "cells"
    restored.visible = False  # napari's default contrast source, the visible slice, is empty then
    widget.data_range = None
    run(qtbot, widget)
    assert restored in viewer.layers and restored.name == "cells restored"
    data = restored.data
    assert list(restored.contrast_limits) == [data.min(), data.max()] and data.max() > 4095  # the new range
    assert tuple(restored.scale) == tuple(viewer.layers["cells difference map"].scale) == (0.5, 0.25)


def test_a_renamed_result_is_kept_and_a_new_one_added(qtbot, viewer, widget, registry, helpers):
    # Comparing two models: the user renames the first result to keep it.
    viewer.add_image(helpers.grey(), name="low")
    run(qtbot, widget)
    kept = viewer.layers["low restored"]
    kept.name = "low restored with tiny (keep)"
    kept_data = kept.data.copy()
    registry.add("other", core.new_model(width=4, seed=5), kind="trained")  # the widget selects it
    run(qtbot, widget)
    np.testing.assert_array_equal(kept.data, kept_data)
    assert kept.metadata["napari_lowlight"]["model"] == "tiny"
    assert viewer.layers["low restored"].metadata["napari_lowlight"]["model"] == "other"
    set_alpha(qtbot, widget, 1.7)  # the live slider moves the new result, not the kept one
    np.testing.assert_array_equal(kept.data, kept_data)


def test_the_slider_leaves_a_renamed_result_alone(qtbot, viewer, widget, helpers):
    viewer.add_image(helpers.grey(), name="low")
    run(qtbot, widget)
    kept = viewer.layers["low restored"]
    kept.name = "keep"
    kept_data = kept.data.copy()
    assert widget.set_alpha(1.9) is None
    np.testing.assert_array_equal(kept.data, kept_data)
    assert "renamed" in widget.status.message


def test_the_button_waits_and_the_panel_stays_busy_until_every_run_is_done(qtbot, viewer, widget, helpers, monkeypatch):
    small, big = helpers.grey(seed=1), helpers.grey(seed=2)
    viewer.add_image(small, name="small")
    viewer.add_image(big, name="big")
    gate = threading.Event()
    original = core.estimate_difference

    def big_waits(image, **kwargs):
        if image.shape == big.shape and np.array_equal(image, big):
            gate.wait(10)
        return original(image, **kwargs)

    monkeypatch.setattr(core, "estimate_difference", big_waits)
    widget.layer = "big"
    later = widget.run()
    assert not widget._run.isEnabled()  # no second click while a run is on
    widget.layer = "small"
    with qtbot.waitSignal(widget.run_finished, timeout=30_000):
        widget.run()  # a script may still start one
    assert "small restored" in [layer.name for layer in viewer.layers]
    assert widget.status.state == RunState.RUNNING and not widget._run.isEnabled()
    with qtbot.waitSignal(widget.run_finished, timeout=30_000):
        gate.set()
    assert "big restored" in [layer.name for layer in viewer.layers]
    assert widget.status.state == RunState.DONE and widget._run.isEnabled()
    # Each finished callback is its own queued event: the one setting ``done`` may
    # still be waiting in the queue when run_finished has already been seen.
    qtbot.waitUntil(later.done.is_set, timeout=5_000)


def test_switching_layer_mid_run_writes_to_the_right_layer(qtbot, viewer, widget, tiny_model, helpers, monkeypatch):
    a, b = helpers.grey(seed=1), helpers.grey(seed=2)
    viewer.add_image(a.copy(), name="A")
    viewer.add_image(b.copy(), name="B")
    gate = helpers.gated(monkeypatch, "estimate_difference")
    widget.layer = "A"
    widget.alpha = 1.0  # unticks "auto"
    with qtbot.waitSignal(widget.run_finished, timeout=30_000):
        widget.run()
        widget.layer = "B"  # the user picks another layer while A is being restored
        viewer.layers.selection.active = viewer.layers["B"]
        gate.set()
    names = [layer.name for layer in viewer.layers]
    assert "A restored" in names and "B restored" not in names
    np.testing.assert_array_equal(viewer.layers["A restored"].data, expected(a, tiny_model, 1.0)[0])
    np.testing.assert_array_equal(viewer.layers["B"].data, b)
    np.testing.assert_array_equal(viewer.layers["A"].data, a)


def test_two_quick_runs_do_not_mix(qtbot, viewer, widget, tiny_model, helpers, monkeypatch):
    image = helpers.grey()
    viewer.add_image(image, name="low")
    first_call = threading.Event()
    original = core.estimate_difference

    def first_slow(*args, **kwargs):
        if not first_call.is_set():
            first_call.set()
            threading.Event().wait(1.0)  # the first run finishes last
        return original(*args, **kwargs)

    monkeypatch.setattr(core, "estimate_difference", first_slow)
    widget.alpha = 0.5
    first = widget.run()
    widget.alpha = 1.8
    second = widget.run()
    qtbot.waitUntil(lambda: first.done.is_set() and second.done.is_set(), timeout=30_000)
    restored = [layer for layer in viewer.layers if layer.name.startswith("low restored")]
    assert len(restored) == 1
    np.testing.assert_array_equal(restored[0].data, expected(image, tiny_model, 1.8)[0])
    assert restored[0].metadata["napari_lowlight"]["alpha"] == 1.8
    assert widget.live.alpha == 1.8
    # The stale first run finished last: the panel still settles, on the second run's outcome.
    qtbot.waitUntil(lambda: widget.status.state == RunState.DONE, timeout=5_000)
    assert widget._run.isEnabled() and "alpha=1.8" in widget.status.message


def test_bad_weights_file_notifies_and_adds_nothing(qtbot, viewer, widget, registry, notifications, helpers, tmp_path):
    viewer.add_image(helpers.grey(), name="low")
    bad = tmp_path / "model.safetensors"
    bad.write_text("this is not a weights file")
    names = registry.names()
    assert widget.load_weights(bad) is None
    assert registry.names() == names
    assert widget.model_name == "tiny"
    assert any("model.safetensors" in message for message in helpers.errors(notifications))
    assert len(viewer.layers) == 1


def test_error_in_worker_is_notified_and_layers_unchanged(qtbot, viewer, widget, notifications, helpers, monkeypatch):
    image = helpers.grey()
    viewer.add_image(image.copy(), name="low")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in Estimate-Net")

    monkeypatch.setattr(core, "estimate_difference", broken)
    run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["low"]
    np.testing.assert_array_equal(viewer.layers["low"].data, image)
    assert widget.status.state == RunState.ERROR
    assert any("simulated failure" in message for message in helpers.errors(notifications))


def test_missing_default_model_is_a_notification(qtbot, viewer, notifications, helpers):
    from napari_lowlight._widgets import DEFAULT_MODEL_NAME, ModelRegistry

    registry = ModelRegistry()

    def missing():
        raise FileNotFoundError("default.safetensors")

    registry.get(DEFAULT_MODEL_NAME).loader = missing
    widget = RestoreWidget(viewer, registry=registry)
    viewer.add_image(helpers.grey(), name="low")
    assert widget.model_name == DEFAULT_MODEL_NAME
    assert widget.run() is None
    assert any(f"weights of {DEFAULT_MODEL_NAME!r} are missing" in message for message in helpers.errors(notifications))
    assert len(viewer.layers) == 1


def test_models_follow_the_registry(viewer, widget, registry, tmp_path, tiny_model):
    path = core.save_model(tiny_model, tmp_path / "mine.safetensors")
    entry = widget.load_weights(path)
    assert entry is not None and entry.kind == "file"
    assert widget.model_name == "mine.safetensors"
    registry.add_trained(core.new_model(width=4, seed=1), steps=3)
    names = [widget._model.itemText(i) for i in range(widget._model.count())]
    assert names == registry.names()
    assert widget.model_name == "trained #1 (3 steps)"  # a new model is selected


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_many_alpha_changes_keep_memory_flat(qtbot, viewer, widget, helpers):
    image = helpers.grey((512, 512), np.float32)  # 1 MiB per copy: a leak per change shows
    viewer.add_image(image, name="low")
    run(qtbot, widget)
    alphas = np.linspace(0.5, 2.0, 20)
    for alpha in alphas[:10]:  # warm-up
        set_alpha(qtbot, widget, float(alpha))
    qtbot.wait(50)
    before = _rss_bytes()
    for index in range(100):
        set_alpha(qtbot, widget, float(alphas[index % len(alphas)]))
    qtbot.wait(50)
    growth = _rss_bytes() - before
    assert growth < 0.1 * before, f"RSS grew by {growth / 2**20:.0f} MiB over 100 alpha changes"
    assert len(viewer.layers) == 3


def test_dask_layer_restores_lazily(qtbot, viewer, widget, tiny_model, helpers):
    import dask.array as da

    stack = helpers.grey((3, 40, 36), np.uint16)
    viewer.add_image(da.from_array(stack, chunks=(1, 40, 36)), name="lazy")
    widget.layer = "lazy"
    widget.alpha = 1.0
    run(qtbot, widget)
    restored = viewer.layers["lazy restored"]
    assert isinstance(restored.data, da.Array)  # nothing computed beyond what napari shows
    want, _ = expected(stack, tiny_model, 1.0)
    assert np.abs(restored.data.compute().astype(int) - want.astype(int)).max() <= 2e-3 * 65535
    widget.alpha = 1.8
    qtbot.waitUntil(lambda: viewer.layers["lazy restored"].metadata["napari_lowlight"]["alpha"] == 1.8, timeout=10_000)
    updated = viewer.layers["lazy restored"].data
    assert isinstance(updated, da.Array)
    assert np.abs(updated.compute().astype(int) - want.astype(int)).max() > 0


def test_data_range_for_12_bit_data_reaches_the_core_and_the_slider(qtbot, viewer, widget, tiny_model, helpers):
    image = (helpers.grey((32, 32), np.uint16) // 16).astype(np.uint16)  # a 12-bit camera's values
    viewer.add_image(image, name="camera12")
    widget.data_range = 4095
    widget.alpha = 1.0  # unticks "auto"
    run(qtbot, widget)
    restored = viewer.layers["camera12 restored"]
    options = dict(model=tiny_model, device="cpu", data_range=4095)
    difference = core.estimate_difference(image, **options)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.0, **options))
    assert restored.data.max() <= 4095
    set_alpha(qtbot, widget, 1.8)  # the live path keeps the run's data range
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.8, **options))


def test_the_ensemble_reaches_the_run_and_the_live_slider(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.grey((40, 48), np.uint16)
    viewer.add_image(image, name="frame")
    widget.ensemble = True
    widget.alpha = 0.4  # unticks "auto"
    run(qtbot, widget)
    restored = viewer.layers["frame restored"]
    options = dict(model=tiny_model, device="cpu", ensemble=True)
    difference = core.estimate_difference(image, **options)
    np.testing.assert_array_equal(viewer.layers["frame difference map"].data, difference)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 0.4, **options))
    set_alpha(qtbot, widget, 1.5)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.5, **options))
    assert not np.array_equal(restored.data, core.enhance(image, difference, 1.5, model=tiny_model, device="cpu"))


def test_keep_black_is_on_and_lifting_blacks_reaches_the_run_and_the_live_slider(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.grey((40, 48), np.uint16)
    viewer.add_image(image, name="frame")
    assert widget.keep_black
    widget.keep_black = False
    widget.alpha = 1.2  # unticks "auto"
    run(qtbot, widget)
    restored = viewer.layers["frame restored"]
    difference = core.estimate_difference(image, model=tiny_model, device="cpu")
    options = dict(model=tiny_model, device="cpu", keep_black=False)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.2, **options))
    set_alpha(qtbot, widget, 1.8)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 1.8, **options))
    assert not np.array_equal(restored.data, core.enhance(image, difference, 1.8, model=tiny_model, device="cpu"))


def test_refine_is_on_and_turning_it_off_reaches_the_run_and_the_live_slider(qtbot, viewer, widget, tiny_model, helpers):
    image = helpers.grey((40, 48), np.uint16)
    viewer.add_image(image, name="frame")
    assert widget.refine
    widget.alpha = 0.5  # unticks "auto"
    run(qtbot, widget)
    restored = viewer.layers["frame restored"]
    difference = core.estimate_difference(image, model=tiny_model, device="cpu")
    set_alpha(qtbot, widget, 0.0)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 0.0, model=tiny_model, device="cpu"))
    widget.refine = False
    run(qtbot, widget)
    restored = viewer.layers["frame restored"]
    options = dict(model=tiny_model, device="cpu", refine=False)
    np.testing.assert_array_equal(restored.data, core.enhance(image, difference, 0.0, **options))
    assert not np.array_equal(restored.data, core.enhance(image, difference, 0.0, model=tiny_model, device="cpu"))
