"""The "Restore low light" panel: run the network, then tune alpha live.

A run adds ``<name> difference map`` (hidden, below) and ``<name> restored`` (on top,
in view). The difference map of the last run is cached, so moving the alpha slider
re-runs only Enhance-Net, in a worker: the GUI thread only puts the planes it gets in
place. A plane above ``PREVIEW_PIXELS`` pixels first shows a preview of the part on
screen, then full resolution; on a stack the plane on screen comes first, the others
follow; a newer alpha cancels an older update.

Scripting::

    widget = RestoreWidget(viewer)
    widget.layer = "camera low"
    widget.model_name = "default (shipped)"   # or a trained model, or widget.load_weights(path)
    widget.alpha = 1.0
    wait_for_worker(widget.run())
    wait_for_worker(widget.set_alpha(1.6))     # live update of "camera low restored"
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

import napari_lowlight as core
from napari_lowlight.inference import DEFAULT_TILE_SIZE
from napari_lowlight.intensity import is_dask

from ._common import (
    OWNER_KEY,
    CloseWatcher,
    ImageLayerCombo,
    ProgressBar,
    Section,
    blocked,
    check_image_layer,
    check_property,
    combo_property,
    data_range_property,
    data_range_spin,
    find_layer,
    forwarded_property,
    int_spin,
    is_alive,
    layer_snapshot,
    optional_spin_property,
    output_layers,
    scrolling_layout,
)
from ._state import ModelRegistry, RunState, TaskStatus, model_registry
from ._workers import RESTORE_STAGES, alpha_update_job, restore_job, start_worker, stop_workers

__all__ = ["LiveResult", "RestoreWidget"]

#: Planes with more pixels (Y x X, whatever the colour channels) first show a preview
#: of their part on screen, computed on at most this many pixels.
PREVIEW_PIXELS = 256 * 1024
#: Slider movements closer together than this (ms) are coalesced into one update.
DEBOUNCE_MS = 30
#: Alpha updates that compute at once: the newest, and an older one finishing the
#: computation it is in (it stops before its next); more wait for their turn.
ALPHA_COMPUTATIONS = 2
ALPHA_MIN, ALPHA_MAX = 0.0, 3.0  # 0: denoise only


@dataclass
class LiveResult:
    """What the alpha slider acts on: the last accepted run and its cached difference map."""

    run_id: int
    source_id: Any
    source_name: str
    image: np.ndarray
    difference: np.ndarray
    model: Any
    model_name: str
    channel_axis: int | None
    device: str
    tile_size: int | None
    data_range: float | None
    ensemble: bool
    keep_black: bool
    refine: bool
    restored_id: Any
    difference_id: Any
    alpha: float
    #: Number of leading (stack) axes: Z, T, ... before (Y, X[, C]).
    lead_ndim: int
    extra: dict = field(default_factory=dict)

    @property
    def options(self) -> dict:
        """Keyword arguments of :func:`napari_lowlight.enhance` that the run used."""
        return {
            "model": self.model,
            "channel_axis": self.channel_axis,
            "device": self.device,
            "tile_size": self.tile_size,
            "data_range": self.data_range,
            "ensemble": self.ensemble,
            "keep_black": self.keep_black,
            "refine": self.refine,
        }


def _renamed(layer) -> bool:
    """Whether the user renamed an output layer of this widget (it is then theirs to keep)."""
    return layer.name != layer.metadata.get(OWNER_KEY, {}).get("name", layer.name)


class RestoreWidget(QWidget):
    """Restore an image layer with a model, adding restored and difference-map layers.

    Signals
    -------
    run_finished
        Emitted after a run's result was written to the viewer (or its error reported).
    alpha_applied
        Emitted once an alpha change has reached every plane of the restored layer at
        full resolution.
    """

    run_finished = Signal()
    alpha_applied = Signal()

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
        self.status = TaskStatus()
        #: The last restore worker and the last alpha-update worker (None when none ran).
        self.worker = None
        self.alpha_worker = None
        self.live: LiveResult | None = None
        self._run_id = 0
        self._latest_run: dict[Any, int] = {}
        self._in_flight: set[int] = set()  # restore runs started and not yet finished
        # How the latest run ended, (state, message): the panel shows it once no run is left.
        self._outcome: tuple[RunState, str] | None = None
        self._alpha_generation = 0
        self._alpha_cancel = threading.Event()  # set: the running alpha update is stale
        self._alpha_gate = threading.Semaphore(ALPHA_COMPUTATIONS)
        self._pending = (0, 1)  # full-resolution planes left / planes of the running alpha update
        self._stages_done = 0  # of the latest restore run
        self._workers: list = []  # every worker started, until closing awaits them

        self._layer = ImageLayerCombo(napari_viewer)
        self._layer.setToolTip("The low-light image to restore (it is never modified)")
        self._model = QComboBox()
        self._model.setToolTip("Shipped default, models trained in this session, or a weights file")
        self._load = QPushButton("Load...")
        self._load.setToolTip("Load a .safetensors weights file")
        self._slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(ALPHA_MIN, ALPHA_MAX)
        self._slider.setSingleStep(0.01)
        self._slider.setValue(1.0)
        self._slider.setToolTip("Restoration strength; moving it updates the restored layer live")
        self._auto = QCheckBox("auto")
        self._auto.setToolTip(
            "Estimate alpha from the image when running: colour photographs are brightened as far"
            " as they look darkened; grey frames (micrographs, sky frames) are denoised only (alpha 0)"
        )
        # The shipped weights tell an underexposed photograph from a normal one: start there.
        self._auto.setChecked(True)
        self._device = QComboBox()
        self._device.addItems(core.available_devices())
        self._tile = int_spin(
            0, 0, 16384, step=64, tooltip=f"Tile size in pixels (automatic: {DEFAULT_TILE_SIZE})"
        )
        self._tile.setSpecialValueText("automatic")
        self._data_range = data_range_spin()
        self._ensemble = QCheckBox("average 8 flips and turns (8x slower)")
        self._ensemble.setToolTip("Run the network on the 8 flips and quarter turns of the image and average: less noise")
        self._keep_black = QCheckBox("keep black regions black")
        self._keep_black.setToolTip(
            "Above alpha about 1 the network restores black regions as grey; keep them black (next run)"
        )
        self._keep_black.setChecked(True)
        self._refine = QCheckBox("refine with the image's own noise")
        self._refine.setToolTip(
            "Filter the image again guided by the network's output, under the image's own noise: more"
            " detail, less noise (grey images at any alpha, colour images when brightened)"
        )
        self._refine.setChecked(True)
        self._run = QPushButton("Restore")
        self._run.setToolTip("Restore the selected layer (replaces this widget's earlier output for it)")
        # Determinate only: a busy animation repaints the window all the time (and with
        # software OpenGL, that takes CPU from the restore itself).
        self._progress = ProgressBar()
        self._progress.setRange(0, 100)
        self._progress.setValue(0)
        self._progress.setTextVisible(False)
        self._progress.setMaximumHeight(10)
        self._message = QLabel("")
        self._message.setWordWrap(True)

        model_row = QHBoxLayout()
        model_row.addWidget(self._model, 1)
        model_row.addWidget(self._load)
        alpha_row = QHBoxLayout()
        alpha_row.addWidget(self._slider, 1)
        alpha_row.addWidget(self._auto)
        form = QFormLayout()
        form.addRow("image", self._layer)
        form.addRow("model", model_row)
        form.addRow("alpha", alpha_row)
        form.addRow("blacks", self._keep_black)
        form.addRow("denoising", self._refine)
        #: Device, tile size, data range and ensemble, folded away by default.
        self.advanced = Section("advanced: device, tiles, data range, ensemble")
        self.advanced.form.addRow("device", self._device)
        self.advanced.form.addRow("tile size", self._tile)
        self.advanced.form.addRow("data range", self._data_range)
        self.advanced.form.addRow("ensemble", self._ensemble)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addWidget(self._run)
        layout.addWidget(self._progress)
        layout.addWidget(self._message)
        layout.addStretch(1)
        self._close_watcher = CloseWatcher(self, self.close_workers)

        self._alpha_timer = QTimer(self)
        self._alpha_timer.setSingleShot(True)
        self._alpha_timer.setInterval(DEBOUNCE_MS)
        self._alpha_timer.timeout.connect(self._apply_alpha)
        self._slider.valueChanged.connect(self._on_slider)
        self._run.clicked.connect(self.run)
        self._load.clicked.connect(self._on_load_clicked)
        self.status.events.message.connect(self._on_message)
        self.status.events.progress.connect(self._on_progress)
        self.status.events.state.connect(self._on_state)
        self.registry.changed.connect(self._refresh_models)
        self.registry.added.connect(self._on_model_added)
        self._refresh_models()

    # ------------------------------------------------------------------ parameters
    layer = forwarded_property("_layer", "layer", "The image layer to restore (set a layer or its name).")
    model_name = combo_property("_model", "model", "Registry name of the selected model (see ``registry.names()``).")

    @property
    def alpha(self) -> float:
        """Restoration strength. Setting it starts the update of the last run's restored
        layer in ``self.alpha_worker`` (see :meth:`set_alpha`)."""
        return float(self._slider.value())

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.set_alpha(value)

    auto_alpha = check_property("_auto", "Estimate alpha from the image on the next run.")
    device = combo_property("_device", "device")
    tile_size = optional_spin_property("_tile", "Tile size in pixels, None for the core's default.")
    data_range = data_range_property
    ensemble = check_property("_ensemble", "Average the network over the 8 flips and quarter turns (``ensemble=True``).")
    keep_black = check_property("_keep_black", "Keep black regions black on the next run (``keep_black=True``).")
    refine = check_property("_refine", "Refine restores with the image's own noise on the next run (``refine=True``).")

    @property
    def restored_layer(self):
        """The restored layer of the last run (None before a run or once deleted)."""
        return None if self.live is None else find_layer(self.viewer, self.live.restored_id)

    @property
    def difference_layer(self):
        """The difference-map layer of the last run (None before a run or once deleted)."""
        return None if self.live is None else find_layer(self.viewer, self.live.difference_id)

    # ------------------------------------------------------------------ actions
    def set_alpha(self, value: float):
        """Move the slider to ``value`` and start updating the last result at once.

        Returns the worker that computes the update (``wait_for_worker`` it in a script
        without an event loop), or None when there is nothing to update. Unticks "auto".

        Raises
        ------
        ValueError
            If ``value`` is outside the slider's range.
        """
        if not ALPHA_MIN <= float(value) <= ALPHA_MAX:
            raise ValueError(f"alpha must be between {ALPHA_MIN} and {ALPHA_MAX}, got {value!r}")
        with blocked(self._slider):
            self._slider.setValue(float(value))
        self._auto.setChecked(False)
        self._alpha_timer.stop()
        return self._apply_alpha()

    def load_weights(self, path=None):
        """Load a weights file into the registry and select it; returns its entry or None.

        Without ``path`` a file dialog asks for one. A bad file gives a notification.
        """
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load napari-lowlight weights", "", "Weights (*.safetensors)")
            if not path:
                return None
        path = Path(path)
        try:
            model = core.load_model(path, device="cpu")
        except (OSError, ValueError, TypeError) as error:
            show_error(f"Could not load weights from {path.name}: {error}")
            return None
        entry = self.registry.add(path.name, model, kind="file", path=path, info=str(path))
        self.model_name = entry.name
        return entry

    def run(self, *_):
        """Restore the selected layer in a worker; returns the worker (None if refused).

        The output layers are added (or this widget's earlier output for the same
        source replaced) when the worker returns; they always belong to the layer that
        was selected when ``run`` was called.
        """
        layer = self.layer
        problem = check_image_layer(layer)
        if problem is not None:
            show_error(f"Restore: {problem}")
            return None
        model_name = self.model_name
        model = self._get_model(model_name)
        if model is None:
            return None
        source = layer_snapshot(layer)
        self._run_id += 1
        run_id = self._run_id
        self._latest_run[source["unique_id"]] = run_id
        self._in_flight.add(run_id)
        self._outcome = None
        alpha = "auto" if self.auto_alpha else self.alpha
        what = f"restoring {source['name']!r} with {model_name!r}"
        self.status.state = RunState.RUNNING
        self.status.progress = 0.0
        self.status.message = f"{what}..."
        stages = RESTORE_STAGES if alpha == "auto" else RESTORE_STAGES - 1
        self._stages_done = 0
        options = {
            "model": model,
            "channel_axis": source["channel_axis"],
            "device": self.device,
            "tile_size": self.tile_size,
            "data_range": self.data_range,
            "ensemble": self.ensemble,
            "keep_black": self.keep_black,
            "refine": self.refine,
        }
        settings = {"model_name": model_name, **options}
        # No napari progress bar: its activity indicator animates, so it repaints the
        # window for as long as the run lasts. The panel's bar counts the stages.
        self.worker = self._start(
            restore_job,
            run_id,
            source["data"],
            alpha=alpha,
            **options,
            connect={
                "yielded": partial(self._on_stage, run_id, stages, what),
                "returned": partial(self._on_restored, source, settings, alpha == "auto"),
                "errored": partial(self._on_errored, run_id),
                "finished": partial(self._on_run_finished, run_id),
            },
            error_prefix=f"Restore of {source['name']!r} failed",
        )
        return self.worker

    def close_workers(self, timeout: float | None = None) -> bool:
        """Cancel every run and alpha update of this panel and wait for their threads.

        Called when the viewer or the panel closes. A computation in progress finishes
        first; nothing is written to the viewer afterwards. Returns True if all ended.
        """
        self._cancel_alpha_update()
        self._latest_run.clear()  # no run's result is written either
        workers, self._workers = self._workers, []
        return stop_workers(workers, timeout)

    def _start(self, job, *args, **kwargs):
        """:func:`start_worker`, remembered until closing the panel awaits it."""
        self._close_watcher.watch_window()
        self._workers = [worker for worker in self._workers if not worker.thread_done.is_set()]
        worker = start_worker(job, *args, **kwargs)
        self._workers.append(worker)
        return worker

    # ------------------------------------------------------------------ models
    def _get_model(self, name: str):
        try:
            return self.registry.get(name).get_model()
        except FileNotFoundError as error:
            show_error(
                f"Restore: the weights of {name!r} are missing ({error}); train a model or load a weights file"
            )
        except (KeyError, ValueError, OSError, TypeError) as error:
            show_error(f"Restore: model {name!r} cannot be used: {error}")
        return None

    def _refresh_models(self) -> None:
        if not is_alive(self):
            return
        current = self._model.currentText()
        names = self.registry.names()
        with blocked(self._model):
            self._model.clear()
            self._model.addItems(names)
            if current in names:
                self._model.setCurrentText(current)
            else:
                latest = self.registry.latest("trained")
                self._model.setCurrentText(latest.name if latest else (names[0] if names else ""))

    def _on_model_added(self, entry) -> None:
        # A model just trained or loaded is most likely the one to use next.
        if is_alive(self) and entry.kind in ("trained", "file"):
            self._refresh_models()
            self._model.setCurrentText(entry.name)

    def _on_load_clicked(self, *_) -> None:
        self.load_weights()

    # ------------------------------------------------------------------ run results
    def _on_stage(self, run_id: int, stages: int, what: str, stage: str) -> None:
        """A stage of the latest run starts: the panel's bar counts the stages done."""
        if is_alive(self) and run_id == self._run_id:
            self.status.progress = min(self._stages_done / stages, 1.0)
            self._stages_done += 1
            self.status.message = f"{what}: {stage}..."

    def _on_restored(self, source: dict, settings: dict, auto: bool, result) -> None:
        if not is_alive(self):
            return
        uid = source["unique_id"]
        if self._latest_run.get(uid) != result.run_id:
            return  # a newer run on the same layer was started (or the panel closed): its result wins
        # The difference map first, hidden: the restored layer goes on top, in view.
        difference, added = self._put_layer(
            "difference map",
            source,
            result.difference_view,
            name=f"{source['name']} difference map",
            rgb=False,
            display={"colormap": "magma", "contrast_limits": (0.0, result.difference_max), "visible": False},
            extra={"model": settings["model_name"]},
        )
        restored, _ = self._put_layer(
            "restored",
            source,
            result.restored,
            name=f"{source['name']} restored",
            rgb=source["rgb"],
            extra={"alpha": result.alpha, "model": settings["model_name"]},
        )
        layers = self.viewer.layers
        if added and layers.index(difference) > layers.index(restored):
            layers.move(layers.index(difference), layers.index(restored))  # just below it
        if auto:
            with blocked(self._slider):
                self._slider.setValue(result.alpha)
        if result.run_id >= (self.live.run_id if self.live else 0):
            self._cancel_alpha_update()
            lead = result.image.ndim - 2 - (1 if source["rgb"] else 0)
            self.live = LiveResult(
                run_id=result.run_id,
                source_id=uid,
                source_name=source["name"],
                image=result.image,
                difference=result.difference,
                model=settings["model"],
                model_name=settings["model_name"],
                channel_axis=source["channel_axis"],
                device=settings["device"],
                tile_size=settings["tile_size"],
                data_range=settings["data_range"],
                ensemble=settings["ensemble"],
                keep_black=settings["keep_black"],
                refine=settings["refine"],
                restored_id=restored.unique_id,
                difference_id=difference.unique_id,
                alpha=result.alpha,
                lead_ndim=max(lead, 0),
            )
        if auto and not source["rgb"]:
            done = f"denoised {source['name']!r} (\"auto\" brightens colour photographs only); move the alpha slider to brighten it"
        else:
            done = f"restored {source['name']!r} (alpha={result.alpha:.3g}); move the alpha slider to update it live"
        if result.run_id == self._run_id:
            self._outcome = (RunState.DONE, done)
        if self._in_flight - {result.run_id}:
            # A script started another run meanwhile: the panel stays busy until it is done.
            self.status.message = f"restored {source['name']!r}; another restore is still running..."
        else:
            self._settle()
        if abs(self.alpha - result.alpha) > 1e-6 and not auto:
            # The slider moved while the run was in flight: bring the result up to date.
            self._apply_alpha()

    def _put_layer(self, role: str, source: dict, data, *, name: str, rgb: bool, display=None, extra=None):
        """Replace this widget's ``role`` layer for ``source`` or add a new one.

        A layer the user renamed is theirs to keep (e.g. to compare models): it is left
        alone and a new one is added. A replaced layer takes the source's current name,
        transform and a fresh contrast range, as a new layer would; its visibility and
        place in the layer list stay the user's. Returns ``(layer, added)``.
        """
        tag = {"role": role, "source_id": str(source["unique_id"]), "source_name": source["name"], **(extra or {})}
        display = dict(display or {})
        mine = [layer for layer in output_layers(self.viewer, role, source["unique_id"]) if not _renamed(layer)]
        if mine:
            layer = mine[0]
            layer.data = data
            layer.scale, layer.translate = source["scale"], source["translate"]
            layer.name = name
            if "contrast_limits" in display:
                layer.contrast_limits = display["contrast_limits"]
            else:
                # From the whole data, as a new layer's: napari's default is the visible slice.
                layer.reset_contrast_limits_range(mode="data")
                layer.reset_contrast_limits(mode="data")
        else:
            layer = self.viewer.add_image(
                data, name=name, rgb=rgb, scale=source["scale"], translate=source["translate"], **display
            )
        # napari may have made the name unique ("... [1]"): remember the one it holds.
        layer.metadata = {**layer.metadata, **source["metadata"], OWNER_KEY: {**tag, "name": layer.name}}
        return layer, not mine

    def _on_run_finished(self, run_id: int) -> None:
        # Every run ends here, one that a newer run made stale included: the panel settles
        # on the latest run's outcome once none is left.
        self._in_flight.discard(run_id)
        if not is_alive(self):
            return
        if not self._in_flight and self.status.state.active:
            self._settle()
        self.run_finished.emit()

    def _on_errored(self, run_id: int, error: Exception) -> None:
        if run_id == self._run_id:
            self._outcome = (RunState.ERROR, f"restore failed: {error}")
        if is_alive(self) and not self._in_flight - {run_id}:
            self._settle()

    def _settle(self) -> None:
        """Show how the latest run ended (runs made stale by a newer one leave no outcome)."""
        state, message = self._outcome or (RunState.DONE, "restore finished; a newer run's result was kept")
        self.status.progress = 1.0 if state == RunState.DONE else 0.0
        self.status.state = state
        self.status.message = message

    # ------------------------------------------------------------------ live alpha
    def _on_slider(self, _value) -> None:
        self._auto.setChecked(False)
        self._alpha_timer.start()

    def _cancel_alpha_update(self) -> None:
        """Make the running alpha update stale: it computes nothing more and writes nothing."""
        self._alpha_generation += 1
        self._alpha_cancel.set()
        if self.alpha_worker is not None:
            self.alpha_worker.quit()

    def _apply_alpha(self):
        """Start Enhance-Net on the cached difference map with the slider's alpha, in a worker.

        Runs in the GUI thread at every (coalesced) slider move, so it only reads what
        the update needs (the plane and the region on screen) and starts the worker.
        """
        live = self.live
        if live is None or not is_alive(self):
            return None
        layer = find_layer(self.viewer, live.restored_id)
        if layer is None or _renamed(layer):
            # A renamed result is the user's to keep: the slider leaves it alone.
            self.live = None
            gone = "deleted" if layer is None else "renamed (kept as it is)"
            self.status.message = f"the restored layer was {gone}: run Restore again"
            return None
        alpha = self.alpha
        self._cancel_alpha_update()
        generation = self._alpha_generation
        self._alpha_cancel = cancelled = threading.Event()
        live.alpha = alpha
        layer.metadata = {**layer.metadata, OWNER_KEY: {**layer.metadata.get(OWNER_KEY, {}), "alpha": alpha}}
        if is_dask(live.image):
            # Lazy data: building the new lazy result is instant; napari computes what it shows.
            layer.data = core.enhance(live.image, live.difference, alpha, **live.options)
            self.status.message = f"alpha={alpha:.3g}"
            self.alpha_applied.emit()
            return None
        visible = self._visible_index(layer, live)
        shown = layer.data
        if not (isinstance(shown, np.ndarray) and shown.shape == live.image.shape and shown.dtype == live.image.dtype):
            shown = None  # no preview over data that is not this run's result
        planes = int(np.prod(live.image.shape[: live.lead_ndim]))
        self._pending = (planes, planes)  # full-resolution planes to come
        self.status.progress = 0.0
        self.status.message = f"alpha={alpha:.3g}: updating..."
        self.alpha_worker = self._start(
            alpha_update_job,
            generation,
            live.image,
            live.difference,
            alpha,
            lead_ndim=live.lead_ndim,
            visible=visible,
            region=self._visible_region(layer, live),
            shown=shown,
            preview_pixels=PREVIEW_PIXELS,
            cancelled=cancelled,
            gate=self._alpha_gate,
            connect={
                "yielded": self._on_alpha_update,
                "finished": partial(self._on_alpha_finished, generation),
                "errored": self._on_alpha_errored,
            },
            error_prefix="Restore: alpha update failed",
            **live.options,
        )
        return self.alpha_worker

    def _visible_index(self, layer, live: LiveResult) -> tuple[int, ...] | None:
        """Leading-axis index of the plane on screen, or None (3-D view, transposed axes)."""
        if live.lead_ndim == 0:
            return ()
        dims = self.viewer.dims
        if dims.ndisplay != 2 or list(dims.displayed) != [dims.ndim - 2, dims.ndim - 1]:
            return None
        try:
            coords = np.asarray(layer.world_to_data(dims.point), dtype=float)
        except Exception:  # noqa: BLE001 (a layer transform napari cannot invert)
            return None
        shape = live.image.shape[: live.lead_ndim]
        return tuple(int(np.clip(np.round(c), 0, n - 1)) for c, n in zip(coords[: live.lead_ndim], shape, strict=True))

    def _visible_region(self, layer, live: LiveResult) -> tuple[int, int, int, int] | None:
        """``(y0, y1, x0, x1)`` of the plane that the canvas shows, or None (all of it, or unknown)."""
        height, width = live.image.shape[live.lead_ndim : live.lead_ndim + 2]
        corners = np.asarray(layer.corner_pixels)  # updated by napari on every draw, inclusive
        if corners.shape != (2, layer.ndim):
            return None
        (y0, x0), (y1, x1) = corners[:, -2:]
        y0, x0 = max(int(y0), 0), max(int(x0), 0)
        y1, x1 = min(int(y1) + 1, height), min(int(x1) + 1, width)
        if y1 - y0 < 2 or x1 - x0 < 2:  # never drawn (a hidden viewer)
            return None
        return y0, y1, x0, x1

    def _on_alpha_update(self, update) -> None:
        """Put one plane of the update in place (the GUI thread's only share of the work)."""
        if update.generation != self._alpha_generation or not is_alive(self) or self.live is None:
            return
        layer = find_layer(self.viewer, self.live.restored_id)
        if layer is None:
            return
        if update.index == ():
            layer.data = update.plane  # a 2-D image: swap it
        else:
            self._write_plane(layer, update.index, update.plane)
        if not update.preview:
            left, total = self._pending
            self._pending = (max(left - 1, 0), total)
            self.status.progress = 1.0 - self._pending[0] / max(total, 1)

    def _write_plane(self, layer, index, plane) -> None:
        data = layer.data
        if isinstance(data, np.ndarray) and data.shape[len(index) :] == plane.shape:
            data[index] = plane
            if index == self._visible_index(layer, self.live):
                layer.refresh()

    def _on_alpha_finished(self, generation: int) -> None:
        if generation != self._alpha_generation or not is_alive(self) or self.live is None:
            return
        if self._pending[0] == 0:
            self.status.progress = 1.0
            self.status.message = f"alpha={self.live.alpha:.3g}"
            self.alpha_applied.emit()

    def _on_alpha_errored(self, error: Exception) -> None:
        if is_alive(self):
            self.status.message = f"alpha update failed: {error}"

    # ------------------------------------------------------------------ display
    def _on_message(self, message: str) -> None:
        if is_alive(self):
            self._message.setText(message)

    def _on_state(self, state: RunState) -> None:
        if is_alive(self):
            self._run.setEnabled(not RunState(state).active)

    def _on_progress(self, value: float) -> None:
        if is_alive(self):
            self._progress.setValue(int(round(100 * value)))
