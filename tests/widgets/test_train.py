"""The Train / fine-tune widget, end to end in a real viewer, with a tiny model on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import napari_lowlight as core
from napari_lowlight._widgets import ModelRegistry, RestoreWidget, RunState, TrainWidget
from napari_lowlight.inference import GUIDE_NOISE_KEY
from napari_lowlight.training import FINE_TUNE_LR, GUIDE_NOISE_CHOICES, SCRATCH_LR, SELF_SUPERVISED_DEFAULTS


@pytest.fixture
def widget(viewer, registry):
    widget = TrainWidget(viewer, registry=registry)
    widget.start_from = "scratch"
    widget.model_width = 4
    widget.batch_size, widget.patch_size = 2, 16
    widget.validate_every = 2
    widget.device = "cpu"
    return widget


def train(qtbot, widget, timeout=60_000):
    with qtbot.waitSignal(widget.training_finished, timeout=timeout):
        worker = widget.start()
        assert worker is not None
    return worker


def weights(model) -> dict:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def noisy(clean: np.ndarray, sigma: float = 0.1, seed: int = 1) -> np.ndarray:
    """``clean`` (floats in [0, 1]) with Gaussian noise, as float32."""
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1).astype(np.float32)


def spy_on_train(monkeypatch) -> dict:
    """Record the keyword arguments the widget passes to ``core.train``."""
    passed = {}
    original = core.train

    def spy(*args, **kwargs):
        passed.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(core, "train", spy)
    return passed


def train_self_supervised(qtbot, widget, monkeypatch, layer: str, steps: int = 2) -> dict:
    """Train a new tiny model on ``layer``'s noisy frames; returns what reached ``core.train``."""
    widget.mode = "self-supervised"
    widget.start_from = "scratch"  # the mode's choice is the shipped weights; a tiny model is quicker
    widget.train_layers = [layer]
    widget.steps = steps
    passed = spy_on_train(monkeypatch)
    train(qtbot, widget)
    return passed


def test_training_finishes_and_model_is_selectable_in_restore(qtbot, viewer, widget, registry, helpers):
    image = helpers.grey((40, 40))
    viewer.add_image(image.copy(), name="clean")
    restore = RestoreWidget(viewer, registry=registry)
    widget.train_layers = ["clean"]
    widget.steps = 5
    train(qtbot, widget)

    status = widget.status
    assert status.state == RunState.DONE
    assert status.step == status.steps == 5
    assert math.isfinite(status.loss) and status.validation_psnr is not None
    assert [step for step, _ in widget.loss_curve.losses] == [1, 2, 3, 4, 5]
    assert status.model_name == "trained #1 (5 steps)"
    assert registry.get(status.model_name).model is widget.model
    assert not widget.model.training  # eval mode, ready for inference
    assert not same_weights(weights(widget.model), weights(core.new_model(width=4, seed=0)))
    assert restore.model_name == "trained #1 (5 steps)"  # immediately selectable in Restore
    np.testing.assert_array_equal(viewer.layers["clean"].data, image)
    assert len(viewer.layers) == 1


@pytest.mark.parametrize("mode", ["clean", "self-supervised"])
def test_stop_ends_within_one_step_and_keeps_the_weights(qtbot, viewer, widget, registry, helpers, monkeypatch, mode):
    viewer.add_image(helpers.grey((40, 40)), name="frame")
    widget.mode = mode
    widget.start_from = "scratch"
    widget.train_layers = ["frame"]
    widget.steps = 100_000
    began_after_stop = []
    holder = []
    original = core.train

    def spy(*args, **kwargs):
        for event in original(*args, **kwargs):
            yield event
            # Runs when the consumer asks for another step.
            began_after_stop.append(bool(holder) and holder[0].is_set())

    monkeypatch.setattr(core, "train", spy)
    with qtbot.waitSignal(widget.training_finished, timeout=60_000):
        widget.start()
        holder.append(widget.run.stop_event)
        qtbot.waitUntil(lambda: widget.status.step >= 3, timeout=30_000)
        widget.stop()
        assert widget.status.state == RunState.STOPPING
    assert widget.status.state == RunState.STOPPED
    assert not any(began_after_stop)  # no step started once Stop was pressed
    steps = widget.run.steps_done
    assert 3 <= steps < 100_000 and widget.status.step == steps
    entry = registry.get(widget.status.model_name)
    assert entry.name == f"trained #1 ({steps} steps)"
    assert entry.model is widget.model and not widget.model.training
    assert not same_weights(weights(widget.model), weights(core.new_model(width=4, seed=0)))


def test_save_weights_round_trip(qtbot, viewer, widget, helpers, tmp_path, notifications):
    viewer.add_image(helpers.grey((40, 40)), name="clean")
    widget.train_layers = ["clean"]
    assert widget.save_weights(tmp_path / "early") is None  # nothing trained yet
    widget.steps = 2
    train(qtbot, widget)
    assert widget.save_weights(tmp_path) is None  # a folder is no file name
    assert any("is a folder" in message for message in helpers.errors(notifications))
    assert not list(tmp_path.glob("*.safetensors"))
    path = widget.save_weights(tmp_path / "mine")
    assert path == tmp_path / "mine.safetensors" and path.is_file()
    loaded = core.load_model(path, device="cpu")
    assert same_weights(weights(loaded), weights(widget.model))
    # With the run's training metadata (JSON keeps no tuples: compare a few entries).
    recorded = ("steps", "lr", "seed", "self_supervised")
    assert [loaded.training_config[key] for key in recorded] == [widget.model.training_config[key] for key in recorded]
    assert loaded.training_config["steps"] == 2


def test_pairs_and_fine_tuning_the_last_model(qtbot, viewer, widget, registry, helpers):
    high = helpers.grey((40, 40))
    low = core.synthesize_low_light(high, 1.0, 1.0, noise=None)
    viewer.add_image(low, name="low")
    viewer.add_image(high, name="high")
    widget.mode = "pairs"
    widget.low_layer, widget.high_layer = "low", "high"
    widget.steps = 3
    train(qtbot, widget)
    assert widget.status.state == RunState.DONE
    first = registry.get("trained #1 (3 steps)")
    before = weights(first.model)

    widget.start_from = "last trained"
    widget.steps = 2
    train(qtbot, widget)
    assert widget.status.model_name == "trained #2 (2 steps)"
    assert widget.model is not first.model
    assert same_weights(weights(first.model), before)  # fine-tuning worked on a copy


@pytest.mark.parametrize(
    "case", ["no layers", "no noisy layers", "mixed rgb", "pair shapes", "same pair", "no file", "no last"]
)
def test_bad_input_is_a_notification_and_starts_nothing(qtbot, viewer, registry, helpers, notifications, case):
    registry.clear()
    widget = TrainWidget(viewer, registry=registry)
    widget.model_width, widget.device = 4, "cpu"
    viewer.add_image(helpers.grey((40, 40)), name="grey")
    viewer.add_image(helpers.rgb((40, 40)), name="colour", rgb=True)
    viewer.add_image(helpers.grey((30, 40)), name="small")
    if case == "no noisy layers":
        widget.mode = "self-supervised"
    elif case == "mixed rgb":
        widget.train_layers = ["grey", "colour"]
    elif case in ("pair shapes", "same pair"):
        widget.mode = "pairs"
        widget.low_layer, widget.high_layer = "grey", "small" if case == "pair shapes" else "grey"
    elif case == "no file":
        widget.train_layers = ["grey"]
        widget.start_from = "file"
    elif case == "no last":
        widget.train_layers = ["grey"]
        widget.start_from = "last trained"
    assert widget.start() is None
    assert widget.run is None
    assert helpers.errors(notifications), case
    assert len(viewer.layers) == 3 and len(registry) == 0


@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_error_in_worker_is_a_notification(qtbot, viewer, widget, registry, helpers, notifications, monkeypatch, error):
    viewer.add_image(helpers.grey((40, 40)), name="clean")
    widget.train_layers = ["clean"]
    widget.steps = 10
    original = core.train

    def failing(*args, **kwargs):
        generator = original(*args, **kwargs)
        yield next(generator)
        raise error("simulated failure at step 2")  # RuntimeError: as torch raises

    monkeypatch.setattr(core, "train", failing)
    names = registry.names()
    train(qtbot, widget)
    assert widget.status.state == RunState.ERROR
    assert registry.names() == names
    assert any("simulated failure at step 2" in message for message in helpers.errors(notifications))
    assert len(viewer.layers) == 1


def test_closing_the_viewer_while_training_ends_the_worker(qtbot, make_napari_viewer_proxy, registry, helpers):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(helpers.grey((40, 40)), name="clean")
    widget = TrainWidget(viewer, registry=registry)
    viewer.window.add_dock_widget(widget, name="Train")
    widget.train_layers = ["clean"]
    widget.start_from, widget.model_width, widget.device = "scratch", 4, "cpu"
    widget.batch_size, widget.patch_size, widget.steps = 2, 16, 100_000
    worker = widget.start()
    run = widget.run
    qtbot.waitUntil(lambda: run.status.step >= 1, timeout=30_000)
    viewer.close()
    qtbot.waitUntil(worker.done.is_set, timeout=30_000)
    assert not run.running and not worker.is_running
    assert run.status.state == RunState.STOPPED
    assert run.steps_done < 100_000
    assert run.entry is not None and run.entry.model is run.model  # weights so far kept


def test_fine_tuning_starts_with_a_smaller_learning_rate(widget):
    widget.start_from = "default"
    assert widget.learning_rate == pytest.approx(1e-4)
    widget.start_from = "scratch"
    assert widget.learning_rate == pytest.approx(1e-3)
    widget.learning_rate = 0.01  # typed by the user: switching keeps it
    widget.start_from = "default"
    assert widget.learning_rate == pytest.approx(0.01)


def test_fine_tuning_can_start_from_the_shipped_fluorescence_weights(viewer):
    registry = ModelRegistry()  # with the shipped weights
    widget = TrainWidget(viewer, registry=registry)
    widget.mode = "self-supervised"
    widget.start_from = "fluorescence"
    assert widget.learning_rate == pytest.approx(SELF_SUPERVISED_DEFAULTS["lr"])
    start = weights(widget._initial_model())
    assert same_weights(start, weights(registry.get("fluorescence (shipped)").get_model()))
    assert not same_weights(start, weights(registry.get("default (shipped)").get_model()))


def test_noise_none_selects_no_noise_and_unknown_names_are_refused(widget):
    widget.noise = None  # as in the core's noise=None
    assert widget.noise == "none"
    with pytest.raises(ValueError, match="noise model"):
        widget.noise = "salt"


def test_the_undarkened_share_is_the_starting_weights_unless_set(qtbot, viewer, widget, helpers):
    viewer.add_image(helpers.grey((40, 40)), name="clean")
    widget.train_layers = ["clean"]
    widget.steps = 1
    assert widget.denoise_fraction is None  # "as the starting weights"
    widget.start_from, widget.weights_path = "file", core.weights.default_weights_path()
    train(qtbot, widget)
    shipped = core.weights.read_metadata(widget.weights_path)["training"]["denoise_fraction"]
    assert shipped > 0 and widget.model.training_config["denoise_fraction"] == shipped
    widget.denoise_fraction = 0.5
    train(qtbot, widget)
    assert widget.model.training_config["denoise_fraction"] == 0.5
    widget.denoise_fraction = 0.0  # a share of its own, not the special value
    assert widget.denoise_fraction == 0.0


def test_a_one_step_model_is_named_in_the_singular(registry, tiny_model):
    assert registry.add_trained(tiny_model, steps=1).name == "trained #1 (1 step)"
    assert registry.add_trained(tiny_model, steps=2).name == "trained #2 (2 steps)"


def test_a_stop_before_the_first_step_trains_nothing(helpers):
    import threading

    import torch

    from napari_lowlight._widgets._workers import train_job

    model = core.new_model(width=4)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    stop = threading.Event()
    stop.set()
    params = {"steps": 5, "batch_size": 2, "patch_size": 16, "device": "cpu", "validate_every": 0}
    assert list(train_job(stop, {"images": [helpers.grey((40, 40))]}, model, params)) == []
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_self_supervised_training_previews_a_held_back_frame(qtbot, viewer, widget, registry, helpers, monkeypatch):
    stack = noisy(helpers.grey((3, 40, 40), np.float32))
    viewer.add_image(stack.copy(), name="noisy")
    widget.mode = "self-supervised"
    widget.start_from = "scratch"  # the mode's choice is the shipped weights; a tiny model is quicker
    widget.train_layers = ["noisy"]
    widget.steps = 4
    assert not widget.preview.isHidden()
    messages = []
    widget.status.events.message.connect(messages.append)
    passed = spy_on_train(monkeypatch)
    train(qtbot, widget)

    status = widget.status
    assert status.state == RunState.DONE and status.step == 4
    assert messages[0] == "training self-supervised on noisy..."
    assert "calibrating the denoise-only refinement on the frames..." in messages
    assert status.validation_psnr is None  # no reference to score against
    assert [step for step, _ in widget.loss_curve.losses] == [1, 2, 3, 4]
    assert registry.get(status.model_name).model is widget.model
    assert widget.model.training_config["self_supervised"] is True
    # The refinement calibrated on the frames trained on (restore reads it from the model).
    assert widget.model.training_config[GUIDE_NOISE_KEY] in GUIDE_NOISE_CHOICES
    np.testing.assert_array_equal(viewer.layers["noisy"].data, stack)
    # The last plane is held back: training sees the first two, the preview is the third.
    assert set(passed) >= {"noisy", "preview"} and not {"images", "pairs", "denoise_fraction"} & set(passed)
    trained_on = np.concatenate([np.reshape(frames, (-1, 40, 40)) for frames in passed["noisy"]])
    np.testing.assert_array_equal(trained_on, stack[:2])
    np.testing.assert_array_equal(passed["preview"], stack[2])
    preview = status.preview
    np.testing.assert_array_equal(preview.image, stack[2])
    assert preview.restored.shape == (40, 40) and preview.restored.dtype == np.float32
    assert not np.array_equal(preview.restored, preview.image)
    shown = widget.preview
    assert shown.before.shape == shown.after.shape == (40, 40) and shown.after.dtype == np.uint8
    assert not np.array_equal(shown.before, shown.after)
    assert "held back from training" in shown.caption

    widget.mode = "clean"
    assert widget.preview.isHidden()


def test_a_single_rgb_frame_is_trained_on_and_previewed_from_its_centre(qtbot, viewer, widget, helpers, monkeypatch):
    frame = (noisy(helpers.rgb((150, 200)) / 255.0) * 255).astype(np.uint8)
    viewer.add_image(frame, name="photo", rgb=True)
    passed = train_self_supervised(qtbot, widget, monkeypatch, "photo")

    assert widget.status.state == RunState.DONE
    assert len(passed["noisy"]) == 1 and passed["noisy"][0] is viewer.layers["photo"].data
    assert passed["channel_axis"] == -1
    centre = frame[11:139, 36:164]  # 128 x 128 of 150 x 200
    np.testing.assert_array_equal(passed["preview"], centre)
    restored = widget.status.preview.restored
    assert restored.shape == (128, 128, 3) and restored.dtype == np.uint8
    assert widget.preview.after.shape == (128, 128, 3)
    assert "not held back" in widget.preview.caption


def test_a_one_frame_stack_previews_its_frame_and_a_new_model_can_answer_alpha_zero(qtbot, viewer, widget, rng, monkeypatch):
    stack = rng.random((1, 40, 40)).astype(np.float32)
    viewer.add_image(stack, name="one plane")
    passed = train_self_supervised(qtbot, widget, monkeypatch, "one plane")

    np.testing.assert_array_equal(passed["preview"], stack[0])  # the plane, not a strip of the stack
    assert widget.preview.before.shape == (40, 40)
    assert widget.model.config.alpha_min == 0.0  # noisy frames teach "auto" alpha 0


def test_the_data_range_of_12_bit_frames_reaches_the_core(qtbot, viewer, widget, rng, monkeypatch):
    viewer.add_image(rng.integers(0, 4096, (2, 40, 40)).astype(np.uint16), name="camera")
    widget.data_range = 4095
    passed = train_self_supervised(qtbot, widget, monkeypatch, "camera")
    assert passed["data_range"] == 4095
    assert widget.status.state == RunState.DONE


def test_the_self_supervised_mode_suggests_its_settings_but_keeps_typed_ones(viewer, registry):
    widget = TrainWidget(viewer, registry=registry)
    clean = (widget.steps, widget.batch_size, widget.patch_size)
    assert widget.start_from == "scratch" and widget.preview.isHidden()
    widget.batch_size = 8  # typed: kept in every mode

    widget.mode = "self-supervised"
    assert widget.start_from == "default"  # noisy frames teach no brightening to a new model
    assert (widget.steps, widget.patch_size) == (SELF_SUPERVISED_DEFAULTS["steps"], SELF_SUPERVISED_DEFAULTS["patch_size"])
    assert widget.batch_size == 8
    assert widget.learning_rate == pytest.approx(SELF_SUPERVISED_DEFAULTS["lr"])
    widget.start_from = "scratch"  # allowed; a new model takes the larger step
    assert widget.learning_rate == pytest.approx(SCRATCH_LR)
    widget.start_from = "default"
    widget.steps = 100  # typed

    widget.mode = "clean"
    assert widget.start_from == "default"
    assert (widget.steps, widget.batch_size, widget.patch_size) == (100, 8, clean[2])
    assert widget.learning_rate == pytest.approx(FINE_TUNE_LR)
    widget.learning_rate = 0.005  # typed
    widget.mode = "self-supervised"
    assert widget.learning_rate == pytest.approx(0.005)
    with pytest.raises(ValueError, match="self-supervised"):
        widget.mode = "noise2void"


def test_holding_back_the_last_frame_of_a_stack_slices_without_copying():
    from napari_lowlight._widgets._train import _split_last_frame

    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    last, others = _split_last_frame(stack, 2)
    np.testing.assert_array_equal(last, stack[1, 2])
    planes = np.concatenate([part.reshape(-1, 4, 5) for part in others])
    np.testing.assert_array_equal(planes, stack.reshape(-1, 4, 5)[:-1])
    assert all(np.shares_memory(part, stack) for part in others)
    last, others = _split_last_frame(stack[:1, :1], 2)  # a single frame
    assert others == [] and np.array_equal(last, stack[0, 0])
