"""The "Train / fine-tune" panel.

Trains on clean image layers (low-light versions are synthesised on the fly within the
ranges set here), on a real pair of layers (low, high), or self-supervised on layers of
noisy frames alone (Noise2Void's blind spots, at alpha 0: denoising), from scratch, from
the shipped weights, from the last trained model or from a weights file. Progress shows
in napari's activity dock and here (a live loss curve and validation PSNR; for noisy
frames, which have no reference, a held-back frame's crop before and after instead);
Stop ends the run after the step in progress and keeps the (averaged) weights trained so
far. The result joins the model registry, so it is selectable in Restore at once; Save
writes it as safetensors.

Scripting::

    widget = TrainWidget(viewer)
    widget.train_layers = ["camera"]
    widget.start_from, widget.model_width = "scratch", 8
    widget.steps, widget.batch_size, widget.patch_size = 200, 8, 32
    wait_for_worker(widget.start())
    widget.save_weights("camera.safetensors")

    widget.mode = "self-supervised"      # fine-tunes the shipped weights; the last frame is held back
    widget.start_from = "fluorescence"   # the shipped fluorescence weights, for fluorescence frames
    widget.train_layers = ["noisy stack"]
    wait_for_worker(widget.start())
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from typing import NamedTuple

import napari
import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import napari_lowlight as core
from napari_lowlight.training import FINE_TUNE_LR, SCRATCH_LR, SELF_SUPERVISED_DEFAULTS
from napari_lowlight.weights import SHIPPED_WEIGHTS

from ._common import (
    CloseWatcher,
    ImageLayerCombo,
    ImageLayerList,
    ProgressBar,
    Section,
    channel_axis_of,
    check_image_layer,
    combo_property,
    data_range_property,
    data_range_spin,
    double_spin,
    forwarded_property,
    int_spin,
    is_alive,
    optional_spin_property,
    scrolling_layout,
    spin_property,
)
from ._loss_curve import LossCurve
from ._preview import TrainingPreviewView
from ._state import ModelRegistry, RunState, TrainingPreview, TrainingStatus, model_registry, shipped_model_name
from ._training_run import TrainingRun
from ._workers import stop_workers

__all__ = ["MODES", "START_FROM", "TRAIN_NOISE", "TrainWidget"]

#: Data modes (scripting) -> labels shown in the widget.
MODES = {
    "clean": "clean images (synthesise low light)",
    "pairs": "real pairs (low, high)",
    "self-supervised": "noisy frames only (self-supervised)",
}

#: Start-from keys (scripting) -> labels shown in the widget.
START_FROM = {
    "scratch": "new model (scratch)",
    **{weights: f"shipped {weights} weights" for weights in SHIPPED_WEIGHTS},
    "last trained": "last trained model",
    "file": "weights file",
}
#: Value of the "undarkened share" field that stands for the starting weights' share.
UNDARKENED_INHERIT = -0.05
#: Noise choices for synthesis during training -> the core's ``noise`` argument.
TRAIN_NOISE = {"mixed": "mixed", "gaussian": "gaussian", "poisson-gaussian": "poisson-gaussian", "none": None}
#: Settings suggested for clean images and real pairs (the learning rate follows the start:
#: see ``TrainWidget._suggested_settings``); self-supervised runs get ``SELF_SUPERVISED_DEFAULTS``.
SUPERVISED_DEFAULTS = dict(steps=500, batch_size=32, patch_size=48)
#: Largest side of the held-back frame's crop that a self-supervised run restores as it trains.
PREVIEW_SIZE = 128


def _default_width() -> int:
    return int(inspect.signature(core.new_model).parameters["width"].default)


class _TrainingData(NamedTuple):
    """What the ticked or picked layers give a run."""

    #: The core's data keyword argument: ``{"images": ...}``, ``{"pairs": ...}`` or ``{"noisy": ...}``.
    data: dict
    channel_axis: int | None
    #: What the run trains on, in words.
    description: str
    preview: TrainingPreview | None = None


def _split_last_frame(data, frame_ndim: int):
    """``(last, others)``: the last frame of the stack ``data`` and a list of views of all the others.

    Slices only, so a large (or lazy) stack is neither copied nor read: a (T, Z, Y, X)
    stack gives its first T - 1 time points whole and the first Z - 1 planes of the last.
    """
    others, index = [], ()
    for _ in range(data.ndim - frame_ndim):
        part = data[(*index, slice(None, -1))]
        if part.shape[0]:
            others.append(part)
        index = (*index, -1)
    return data[index], others


def _central_crop(frame, size: int = PREVIEW_SIZE) -> np.ndarray:
    """A copy of the central ``size`` x ``size`` part of ``frame`` (Y, X[, C]), or all of a smaller one."""
    top, left = (max(0, (length - size) // 2) for length in frame.shape[:2])
    return np.array(frame[top : top + size, left : left + size])


class _RangeEdit(QWidget):
    """Two spin boxes holding ``(low, high)``."""

    def __init__(self, low: float, high: float, minimum: float, maximum: float, *, step: float, decimals: int) -> None:
        super().__init__()
        self.low = double_spin(low, minimum, maximum, step=step, decimals=decimals)
        self.high = double_spin(high, minimum, maximum, step=step, decimals=decimals)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.low)
        row.addWidget(QLabel("to"))
        row.addWidget(self.high)

    @property
    def value(self) -> tuple[float, float]:
        return (self.low.value(), self.high.value())

    @value.setter
    def value(self, pair) -> None:
        low, high = pair
        self.low.setValue(low)
        self.high.setValue(high)


class TrainWidget(QWidget):
    """Train or fine-tune a model on image layers; the result is usable in Restore.

    Signals
    -------
    training_finished
        Emitted when a run has ended (finished, stopped or failed) and its model, if
        any, is in the registry.
    """

    training_finished = Signal()

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        registry: ModelRegistry | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.registry = model_registry if registry is None else registry
        self.status = TrainingStatus()
        #: The current or last :class:`TrainingRun` (None before the first).
        self.run: TrainingRun | None = None

        # --- data
        self._mode_buttons = {key: QRadioButton(label) for key, label in MODES.items()}
        self._mode_buttons["clean"].setChecked(True)
        self._mode = QButtonGroup(self)
        for button in self._mode_buttons.values():
            self._mode.addButton(button)
        self._layers = ImageLayerList(napari_viewer)
        self._low = ImageLayerCombo(napari_viewer)
        self._high = ImageLayerCombo(napari_viewer)
        pairs_page = QWidget()
        pairs_form = QFormLayout(pairs_page)
        pairs_form.setContentsMargins(0, 0, 0, 0)
        pairs_form.addRow("low", self._low)
        pairs_form.addRow("high", self._high)
        self._data_pages = QStackedWidget()
        self._data_pages.addWidget(self._layers)
        self._data_pages.addWidget(pairs_page)
        data_box = QGroupBox("Data")
        data_layout = QVBoxLayout(data_box)
        for button in self._mode_buttons.values():
            data_layout.addWidget(button)
        data_layout.addWidget(self._data_pages)

        # --- synthesis ranges
        self._alpha_range = _RangeEdit(0.5, 2.0, 0.01, 5.0, step=0.1, decimals=2)
        self._gamma_range = _RangeEdit(0.5, 2.0, 0.05, 5.0, step=0.1, decimals=2)
        self._noise = QComboBox()
        self._noise.addItems(list(TRAIN_NOISE))
        self._noise.setToolTip("mixed: half Gaussian, half Poisson-Gaussian")
        self._sigma_range = _RangeEdit(0.0, 0.03, 0.0, 1.0, step=0.005, decimals=4)
        # Its minimum, below any share, stands for "inherit": fine-tuning keeps alpha 0 trained.
        self._undarkened = double_spin(
            UNDARKENED_INHERIT,
            UNDARKENED_INHERIT,
            0.95,
            step=0.05,
            decimals=2,
            tooltip="Share of samples left undarkened, with only their noise (alpha 0: denoise only). "
            "Raise it for frames that are dim by nature, such as fluorescence",
        )
        self._undarkened.setSpecialValueText("as the starting weights")
        # Folded away by default: the recipe's ranges suit most images.
        self._synthesis_box = Section("synthesis ranges (clean images)")
        synthesis_form = self._synthesis_box.form
        synthesis_form.addRow("alpha", self._alpha_range)
        synthesis_form.addRow("gamma", self._gamma_range)
        synthesis_form.addRow("noise", self._noise)
        synthesis_form.addRow("noise sigma", self._sigma_range)
        synthesis_form.addRow("undarkened share", self._undarkened)

        # --- model
        self._start_from = QComboBox()
        for key, label in START_FROM.items():
            self._start_from.addItem(label, key)
        self._width = int_spin(_default_width(), 1, 256, tooltip="Channels per layer of a new model")
        self._path = QLineEdit()
        self._path.setPlaceholderText("weights .safetensors")
        self._browse = QPushButton("...")
        path_row = QHBoxLayout()
        path_row.addWidget(self._path, 1)
        path_row.addWidget(self._browse)
        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow("start from", self._start_from)
        model_form.addRow("width", self._width)
        model_form.addRow("file", path_row)

        # --- training
        self._steps = int_spin(SUPERVISED_DEFAULTS["steps"], 1, 10_000_000, step=100)
        self._batch = int_spin(SUPERVISED_DEFAULTS["batch_size"], 1, 4096)
        self._patch = int_spin(SUPERVISED_DEFAULTS["patch_size"], 8, 1024, step=8)
        self._lr = double_spin(SCRATCH_LR, 1e-7, 1.0, step=1e-4, decimals=6)
        self._seed = int_spin(0, 0, 2**31 - 1)
        # A 12-bit camera's uint16 frames would otherwise train as 1/16 as bright as they are.
        self._data_range = data_range_spin()
        self._device = QComboBox()
        self._device.addItems(core.available_devices())
        self._validate = int_spin(
            50,
            0,
            1_000_000,
            tooltip="Steps between validations (0: never): the PSNR on held-back patches, "
            "or for noisy frames the held-back frame's preview",
        )
        #: The fields the panel suggests values for (keys as in ``SELF_SUPERVISED_DEFAULTS``) and
        #: the value it last put in each: a field holding another was set by the user and is kept.
        self._suggested_fields = {
            "steps": self._steps,
            "batch_size": self._batch,
            "patch_size": self._patch,
            "lr": self._lr,
        }
        self._suggested = {name: field.value() for name, field in self._suggested_fields.items()}
        training_box = QGroupBox("Training")
        training_layout = QVBoxLayout(training_box)
        training_form = QFormLayout()
        training_form.addRow("steps", self._steps)
        training_form.addRow("device", self._device)
        training_layout.addLayout(training_form)
        #: Batch, patch, learning rate, seed and validation, folded away by default.
        self.advanced = Section("advanced: batch, patch, learning rate, seed, data range")
        self.advanced.form.addRow("batch size", self._batch)
        self.advanced.form.addRow("patch size", self._patch)
        self.advanced.form.addRow("learning rate", self._lr)
        self.advanced.form.addRow("seed", self._seed)
        self.advanced.form.addRow("data range", self._data_range)
        self.advanced.form.addRow("validate every", self._validate)
        training_layout.addWidget(self.advanced)

        # --- actions and progress
        self._train = QPushButton("Train")
        self._stop = QPushButton("Stop")
        self._save = QPushButton("Save weights...")
        self._stop.setEnabled(False)
        self._save.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self._train)
        buttons.addWidget(self._stop)
        buttons.addWidget(self._save)
        self._progress = ProgressBar()
        self._progress.setRange(0, 1)
        self._progress.setValue(0)
        self._numbers = QLabel("")
        self._numbers.setWordWrap(True)  # a long line would widen the panel
        self._message = QLabel("")
        self._message.setWordWrap(True)
        self.loss_curve = LossCurve()
        #: Self-supervised runs: a held-back frame's crop before and after (hidden in the other modes).
        self.preview = TrainingPreviewView(self.status)

        layout = scrolling_layout(self)
        layout.addWidget(data_box)
        layout.addWidget(self._synthesis_box)
        layout.addWidget(model_box)
        layout.addWidget(training_box)
        layout.addLayout(buttons)
        layout.addWidget(self._progress)
        layout.addWidget(self._numbers)
        layout.addWidget(self.loss_curve)
        layout.addWidget(self.preview)
        layout.addWidget(self._message)
        layout.addStretch(1)

        self._mode.buttonToggled.connect(self._on_mode)
        self._start_from.currentIndexChanged.connect(self._on_start_from)
        self._browse.clicked.connect(self._on_browse)
        self._train.clicked.connect(self.start)
        self._stop.clicked.connect(self.stop)
        self._save.clicked.connect(self._on_save_clicked)
        self.status.events.state.connect(self._on_state)
        self.status.events.step.connect(self._on_step)
        self.status.events.message.connect(self._on_message)
        self._close_watcher = CloseWatcher(self, self.close_workers)
        self._on_mode()
        self._on_start_from()

    # ------------------------------------------------------------------ parameters
    @property
    def mode(self) -> str:
        """``"clean"`` (synthesise from clean layers), ``"pairs"`` (a low and a high layer) or
        ``"self-supervised"`` (layers of noisy frames alone; the last frame is held back for the preview).

        Choosing ``"self-supervised"`` starts from the shipped weights instead of scratch (blind
        spots teach denoising only: a new model would never learn to brighten); a mode suggests
        its steps, batch size, patch size and learning rate for the fields the user has not set.
        """
        return next(key for key, button in self._mode_buttons.items() if button.isChecked())

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {value!r}")
        self._mode_buttons[value].setChecked(True)

    train_layers = forwarded_property(
        "_layers", "layers", "The ticked image layers: clean images, or noisy frames (set layers or names)."
    )
    low_layer = forwarded_property("_low", "layer", "The low-light layer of a pair (pairs mode).")
    high_layer = forwarded_property("_high", "layer", "The well-exposed layer of a pair (pairs mode).")
    alpha_range = forwarded_property("_alpha_range", "value")
    gamma_range = forwarded_property("_gamma_range", "value")
    noise = combo_property(
        "_noise",
        "noise model",
        '``"mixed"``, ``"gaussian"``, ``"poisson-gaussian"`` or ``"none"``.',
        none_text="none",
    )
    noise_sigma_range = forwarded_property("_sigma_range", "value")
    denoise_fraction = optional_spin_property(
        "_undarkened",
        "Share of samples left undarkened (alpha 0: denoise only), in [0, 0.95]; None: that of the "
        "run that trained the starting weights (the shipped ones: 0.2), 0 for a new model.",
    )

    @property
    def start_from(self) -> str:
        """A key of ``START_FROM``: ``"scratch"``, a shipped weights' name (``"default"``,
        ``"fluorescence"``), ``"last trained"`` or ``"file"`` (see ``weights_path``)."""
        return self._start_from.currentData()

    @start_from.setter
    def start_from(self, key: str) -> None:
        if key not in START_FROM:
            raise ValueError(f"start_from must be one of {list(START_FROM)}, got {key!r}")
        self._start_from.setCurrentIndex(list(START_FROM).index(key))

    model_width = spin_property("_width", "Width (channels per layer) of a model started from scratch.")

    @property
    def weights_path(self) -> Path | None:
        text = self._path.text().strip()
        return Path(text) if text else None

    @weights_path.setter
    def weights_path(self, value) -> None:
        self._path.setText("" if value is None else str(value))

    steps = spin_property("_steps")
    batch_size = spin_property("_batch")
    patch_size = spin_property("_patch")
    learning_rate = spin_property("_lr")
    seed = spin_property("_seed")
    validate_every = spin_property("_validate")
    data_range = data_range_property
    device = combo_property("_device", "device")

    @property
    def model(self):
        """The model of the current or last run (None before the first run)."""
        return None if self.run is None else self.run.model

    @property
    def worker(self):
        return None if self.run is None else self.run.worker

    # ------------------------------------------------------------------ actions
    def start(self, *_):
        """Start training in a worker; returns the worker (None when the input is refused)."""
        if self.run is not None and self.run.running:
            show_error("Train: a training run is already in progress; stop it first")
            return None
        data = self._training_data()
        if data is None:
            return None
        model = self._initial_model()
        if model is None:
            return None
        params = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "patch_size": self.patch_size,
            "lr": self.learning_rate,
            "seed": self.seed,
            "device": self.device,
            "channel_axis": data.channel_axis,
            "validate_every": self.validate_every,
            "data_range": self.data_range,
        }
        if self.mode == "clean":
            params.update(
                alpha_range=self.alpha_range,
                gamma_range=self.gamma_range,
                noise=TRAIN_NOISE[self.noise],
                noise_sigma_range=self.noise_sigma_range,
                denoise_fraction=self.denoise_fraction,
            )
        self.loss_curve.clear()
        self.run = TrainingRun(
            data=data.data,
            model=model,
            params=params,
            status=self.status,
            registry=self.registry,
            description=data.description,
            preview=data.preview,
        )
        self.run.stop_when_destroyed(self)
        self.run.finished_callbacks.append(self._on_finished)
        self._close_watcher.watch_window()
        return self.run.start()

    def close_workers(self, timeout: float | None = None) -> bool:
        """Stop a training run after its step in progress and wait for its thread.

        Called when the viewer or the panel closes; the (averaged) weights trained so far
        still reach the registry once the run's last signal is handled. Returns True if
        no thread is left.
        """
        if self.run is None or self.run.worker is None:
            return True
        self.run.stop()
        return stop_workers([self.run.worker], timeout)

    def stop(self, *_) -> None:
        """Stop the run after the step in progress, keeping the (averaged) weights trained so far."""
        if self.run is not None and self.run.running:
            self.run.stop()

    def save_weights(self, path=None) -> Path | None:
        """Save the last run's model as safetensors; returns the path (None if nothing saved).

        Without ``path`` a file dialog asks for one; ``.safetensors`` is appended when
        missing.
        """
        if self.run is None or self.run.steps_done == 0:
            show_error("Train: there is no trained model to save yet")
            return None
        if self.run.running:
            show_error("Train: stop the run (or let it finish) before saving")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save weights", "model.safetensors", "Weights (*.safetensors)")
            if not path:
                return None
        path = Path(path)
        if path.is_dir():
            show_error(f"Train: {str(path)!r} is a folder; give the weights file a name")
            return None
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        try:
            # With the run's training metadata: a self-supervised run's calibrated refinement is part of it.
            saved = core.save_model(self.run.model, path, training=getattr(self.run.model, "training_config", None))
        except (OSError, ValueError, TypeError) as error:
            show_error(f"Train: could not save weights to {path}: {error}")
            return None
        saved = Path(saved) if saved is not None else path
        if self.run.entry is not None:
            self.run.entry.path = saved
        self.status.message = f"saved weights to {saved}"
        show_info(f"napari-lowlight: saved weights to {saved}")
        return saved

    # ------------------------------------------------------------------ helpers
    def _training_data(self) -> _TrainingData | None:
        """The data of the layers the mode uses, or None after a notification."""
        if self.mode == "pairs":
            return self._pair_data()
        layers = self.train_layers
        if not layers:
            kind = "clean image layer" if self.mode == "clean" else "image layer of noisy frames"
            show_error(f"Train: tick at least one {kind}")
            return None
        for layer in layers:
            problem = check_image_layer(layer)
            if problem is not None:
                show_error(f"Train: {problem}")
                return None
        kinds = {channel_axis_of(layer) for layer in layers}
        if len(kinds) > 1:
            show_error("Train: the ticked layers mix RGB and grey images; train on one kind at a time")
            return None
        channel_axis = kinds.pop()
        names = ", ".join(layer.name for layer in layers)
        if self.mode == "clean":
            return _TrainingData({"images": [layer.data for layer in layers]}, channel_axis, f"on {names}")
        return self._noisy_frames_data(layers, channel_axis, f"self-supervised on {names}")

    @staticmethod
    def _noisy_frames_data(layers, channel_axis, description: str) -> _TrainingData:
        """The noisy frames of ``layers`` but the last, whose central crop is the preview.

        With a single frame in all, that frame is both trained on and previewed.
        """
        frame_ndim = 2 if channel_axis is None else 3  # napari's RGB(A) channels are last
        frames = [layer.data for layer in layers]
        name = layers[-1].name
        held_back, others = _split_last_frame(frames[-1], frame_ndim)  # without a stack's axes of length 1
        if len(frames) == 1 and not others:
            caption = f"Centre of {name!r}, the only frame: not held back, so it is trained on too."
        else:
            frames = frames[:-1] + others
            caption = f"Centre of the last frame of {name!r}, held back from training."
        preview = TrainingPreview(_central_crop(held_back), caption=caption)
        return _TrainingData({"noisy": frames}, channel_axis, description, preview)

    def _pair_data(self) -> _TrainingData | None:
        low, high = self.low_layer, self.high_layer
        for layer in (low, high):
            problem = check_image_layer(layer)
            if problem is not None:
                show_error(f"Train: {problem}")
                return None
        if low.unique_id == high.unique_id:
            show_error("Train: the low and the high layer of a pair must be different layers")
            return None
        if tuple(low.data.shape) != tuple(high.data.shape) or low.rgb != high.rgb:
            show_error(
                f"Train: the pair's shapes differ: {low.name!r} is {tuple(low.data.shape)}, "
                f"{high.name!r} is {tuple(high.data.shape)}"
            )
            return None
        return _TrainingData(
            {"pairs": [(low.data, high.data)]}, channel_axis_of(low), f"on the pair {low.name!r} -> {high.name!r}"
        )

    def _initial_model(self):
        """A fresh or copied model to train, or None after a notification."""
        key = self.start_from
        try:
            if key == "scratch":
                # Noisy frames teach "auto" alpha 0: a new model's estimator must reach it.
                floor = {"alpha_min": 0.0} if self.mode == "self-supervised" else {}
                return core.new_model(width=self.model_width, seed=self.seed, **floor)
            if key in SHIPPED_WEIGHTS:
                return copy.deepcopy(self.registry.get(shipped_model_name(key)).get_model())
            if key == "last trained":
                entry = self.registry.latest("trained")
                if entry is None:
                    show_error("Train: no model has been trained in this session yet")
                    return None
                return copy.deepcopy(entry.get_model())
            path = self.weights_path
            if path is None:
                show_error("Train: choose a weights file to start from")
                return None
            return core.load_model(path, device="cpu")
        except FileNotFoundError as error:
            show_error(f"Train: weights not found: {error}")
        except (KeyError, ValueError, OSError, TypeError) as error:
            show_error(f"Train: cannot start from {START_FROM[key]}: {error}")
        return None

    # ------------------------------------------------------------------ UI callbacks
    def _suggested_settings(self) -> dict:
        """Steps, batch size, patch size and learning rate for the current mode and start."""
        scratch = self.start_from == "scratch"
        if self.mode == "self-supervised":
            # Chosen for fine-tuning trained weights; a new model takes the larger step.
            return SELF_SUPERVISED_DEFAULTS | ({"lr": SCRATCH_LR} if scratch else {})
        # Fine-tuning wants a smaller step than training from scratch.
        return SUPERVISED_DEFAULTS | {"lr": SCRATCH_LR if scratch else FINE_TUNE_LR}

    def _suggest_settings(self) -> None:
        """Put the suggested settings in the fields still holding the panel's last suggestion.

        A value the user set (any other) is theirs and stays.
        """
        for name, value in self._suggested_settings().items():
            field = self._suggested_fields[name]
            if field.value() == self._suggested[name]:
                field.setValue(value)
                self._suggested[name] = field.value()

    def _on_mode(self, _button=None, checked: bool = True) -> None:
        if not checked:  # the button left; the one chosen reports too
            return
        mode = self.mode
        self._data_pages.setCurrentIndex(1 if mode == "pairs" else 0)
        self._layers.setToolTip(
            "Tick one or more layers of noisy frames (each plane of a stack is a frame)"
            if mode == "self-supervised"
            else "Tick one or more clean image layers"
        )
        self._synthesis_box.setEnabled(mode == "clean")
        self.preview.setVisible(mode == "self-supervised")
        if mode == "self-supervised" and self.start_from == "scratch":
            # Noisy frames teach denoising at alpha 0 only: a new model would never learn to brighten.
            self.start_from = "default"
        self._suggest_settings()

    def _on_start_from(self, *_) -> None:
        key = self.start_from
        self._suggest_settings()
        self._width.setEnabled(key == "scratch")
        self._path.setEnabled(key == "file")
        self._browse.setEnabled(key == "file")

    def _on_browse(self, *_) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start from weights", "", "Weights (*.safetensors)")
        if path:
            self.weights_path = path

    def _on_save_clicked(self, *_) -> None:
        self.save_weights()

    def _on_state(self, state) -> None:
        if not is_alive(self):
            return
        state = RunState(state)
        self._train.setEnabled(not state.active)
        self._stop.setEnabled(state == RunState.RUNNING)
        self._save.setEnabled(not state.active and self.run is not None and self.run.steps_done > 0)
        if state.active:
            self._progress.setRange(0, max(self.status.steps, 1))

    def _on_step(self, step: int) -> None:
        if not is_alive(self):
            return
        status = self.status
        self._progress.setRange(0, max(status.steps, 1))
        self._progress.setValue(step)
        if step == 0:
            self._numbers.setText("")
            return
        psnr = "" if status.validation_psnr is None else f"   val. PSNR {status.validation_psnr:.2f} dB"
        speed = "" if not math.isfinite(status.images_per_second) else f"   {status.images_per_second:.0f} img/s"
        self._numbers.setText(f"step {step}/{status.steps}   loss {status.loss:.4g}{psnr}{speed}")
        self.loss_curve.add_point(step, status.loss, status.validation_psnr)

    def _on_finished(self) -> None:
        if is_alive(self):
            self.training_finished.emit()

    def _on_message(self, message: str) -> None:
        if is_alive(self):
            self._message.setText(message)
