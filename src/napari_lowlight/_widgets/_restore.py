"""The "Restore low light" panel: run the network, then tune alpha live.

A run adds ``<name> restored`` and ``<name> difference map``. The difference map of
the last run is cached, so moving the alpha slider re-runs only Enhance-Net: a 2-D
image updates at once, a stack updates its visible plane at once and the other planes
in a worker (with progress), plane by plane; a newer alpha aborts an older update.

Scripting::

    widget = RestoreWidget(viewer)
    widget.layer = "camera low"
    widget.model_name = "default (shipped)"   # or a trained model, or widget.load_weights(path)
    widget.alpha = 1.0
    wait_for_worker(widget.run())
    widget.alpha = 1.6                         # live update of "camera low restored"
"""

from __future__ import annotations

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
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

import napari_lowlight as core
from napari_lowlight.inference import DEFAULT_TILE_SIZE, enhance_preview
from napari_lowlight.intensity import is_dask

from ._common import (
    OWNER_KEY,
    ImageLayerCombo,
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
)
from ._state import ModelRegistry, RunState, TaskStatus, model_registry
from ._workers import RESTORE_STAGES, enhance_job, enhance_planes_job, restore_job, start_worker

__all__ = ["LiveResult", "RestoreWidget"]

#: 2-D images up to this many pixels are re-enhanced in the main thread on an alpha change.
SYNC_PIXELS = 1024 * 1024
#: Bigger planes first show a coarse preview computed on at most this many pixels.
PREVIEW_PIXELS = 256 * 1024
#: Slider movements closer together than this (ms) are coalesced into one update.
DEBOUNCE_MS = 60
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
    restored_id: Any
    difference_id: Any
    alpha: float
    #: Number of leading (stack) axes: Z, T, ... before (Y, X[, C]).
    lead_ndim: int
    extra: dict = field(default_factory=dict)


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
        Emitted once an alpha change has reached every plane of the restored layer.
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
        self._pending = (0, 1)  # planes left / planes queued by the running alpha update

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
        self._auto.setToolTip("Estimate alpha from the image when running")
        self._device = QComboBox()
        self._device.addItems(core.available_devices())
        self._tile = int_spin(
            0, 0, 16384, step=64, tooltip=f"Tile size in pixels (automatic: {DEFAULT_TILE_SIZE})"
        )
        self._tile.setSpecialValueText("automatic")
        self._data_range = data_range_spin()
        self._run = QPushButton("Restore")
        self._run.setToolTip("Restore the selected layer (replaces this widget's earlier output for it)")
        self._progress = QProgressBar()
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
        form.addRow("device", self._device)
        form.addRow("tile size", self._tile)
        form.addRow("data range", self._data_range)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._run)
        layout.addWidget(self._progress)
        layout.addWidget(self._message)
        layout.addStretch(1)

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
        """Restoration strength. Setting it updates the restored layer of the last run now.

        The visible plane is written before the setter returns; the other planes of a
        stack follow in ``self.alpha_worker``.
        """
        return float(self._slider.value())

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.set_alpha(value)

    auto_alpha = check_property("_auto", "Estimate alpha from the image on the next run.")
    device = combo_property("_device", "device")
    tile_size = optional_spin_property("_tile", "Tile size in pixels, None for the core's default.")
    data_range = data_range_property

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
        """Move the slider to ``value`` and update the last result now.

        Returns the worker that updates the rest of a stack, or None when nothing is
        left to do in the background. Unticks "auto".

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
        self.status.state = RunState.RUNNING
        self.status.progress = -1.0
        self.status.message = f"restoring {source['name']!r} with {model_name!r}..."
        stages = RESTORE_STAGES if alpha == "auto" else RESTORE_STAGES - 1
        options = {
            "model": model,
            "channel_axis": source["channel_axis"],
            "device": self.device,
            "tile_size": self.tile_size,
            "data_range": self.data_range,
        }
        settings = {"model_name": model_name, **options}
        self.worker = start_worker(
            restore_job,
            run_id,
            source["data"],
            alpha=alpha,
            **options,
            connect={
                "returned": partial(self._on_restored, source, settings, alpha == "auto"),
                "errored": partial(self._on_errored, run_id),
                "finished": partial(self._on_run_finished, run_id),
            },
            progress={"total": stages, "desc": "napari-lowlight: restore"},
            error_prefix=f"Restore of {source['name']!r} failed",
        )
        return self.worker

    # ------------------------------------------------------------------ models
    def _get_model(self, name: str):
        try:
            return self.registry.get(name).get_model()
        except FileNotFoundError as error:
            show_error(
                f"Restore: the shipped default weights are missing ({error}); train a model or load a weights file"
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
    def _on_restored(self, source: dict, settings: dict, auto: bool, result) -> None:
        if not is_alive(self):
            return
        uid = source["unique_id"]
        if self._latest_run.get(uid) != result.run_id:
            return  # a newer run on the same layer was started: its result wins
        restored = self._put_layer(
            "restored",
            source,
            result.restored,
            name=f"{source['name']} restored",
            extra={"alpha": result.alpha, "model": settings["model_name"]},
        )
        difference = self._put_layer(
            "difference map",
            source,
            result.difference,
            name=f"{source['name']} difference map",
            display={"colormap": None if source["rgb"] else "magma", "contrast_limits": (0.0, result.difference_max)},
            extra={"model": settings["model_name"]},
        )
        if auto:
            with blocked(self._slider):
                self._slider.setValue(result.alpha)
        if result.run_id >= (self.live.run_id if self.live else 0):
            self._alpha_generation += 1  # stale any running alpha update
            self._quit_alpha_worker()
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
                restored_id=restored.unique_id,
                difference_id=difference.unique_id,
                alpha=result.alpha,
                lead_ndim=max(lead, 0),
            )
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

    def _put_layer(self, role: str, source: dict, data, *, name: str, display=None, extra=None):
        """Replace this widget's ``role`` layer for ``source`` or add a new one.

        A layer the user renamed is theirs to keep (e.g. to compare models): it is left
        alone and a new one is added. A replaced layer takes the source's current name,
        transform and a fresh contrast range, as a new layer would.
        """
        tag = {"role": role, "source_id": str(source["unique_id"]), "source_name": source["name"], **(extra or {})}
        display = display or {}
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
                data, name=name, rgb=source["rgb"], scale=source["scale"], translate=source["translate"], **display
            )
        # napari may have made the name unique ("... [1]"): remember the one it holds.
        layer.metadata = {**layer.metadata, OWNER_KEY: {**tag, "name": layer.name}}
        return layer

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

    def _quit_alpha_worker(self) -> None:
        if self.alpha_worker is not None:
            self.alpha_worker.quit()

    def _apply_alpha(self):
        """Re-run Enhance-Net on the cached difference map with the slider's alpha."""
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
        self._alpha_generation += 1
        generation = self._alpha_generation
        self._quit_alpha_worker()
        live.alpha = alpha
        layer.metadata = {**layer.metadata, OWNER_KEY: {**layer.metadata.get(OWNER_KEY, {}), "alpha": alpha}}
        options = {
            "model": live.model,
            "channel_axis": live.channel_axis,
            "device": live.device,
            "tile_size": live.tile_size,
            "data_range": live.data_range,
        }
        if is_dask(live.image):
            # Lazy data: building the new lazy result is instant; napari computes what it shows.
            layer.data = core.enhance(live.image, live.difference, alpha, **options)
            self.status.message = f"alpha={alpha:.3g}"
            self.alpha_applied.emit()
            return None
        if live.lead_ndim == 0:
            try:
                if live.image.size <= SYNC_PIXELS:
                    layer.data = core.enhance(live.image, live.difference, alpha, **options)
                    self.status.message = f"alpha={alpha:.3g}"
                    self.alpha_applied.emit()
                    return None
                # A big image: a coarse preview now, full resolution from the worker.
                layer.data = enhance_preview(live.image, live.difference, alpha, max_pixels=PREVIEW_PIXELS, **options)
            except Exception as error:  # noqa: BLE001 (shown to the user, never raised into Qt)
                show_error(f"Restore: alpha update failed: {error}")
                return None
            self.status.message = f"alpha={alpha:.3g}: updating..."
            self.status.progress = -1.0
            self.alpha_worker = start_worker(
                enhance_job,
                generation,
                live.image,
                live.difference,
                alpha,
                connect={"returned": self._on_enhanced, "errored": self._on_alpha_errored},
                progress={"desc": "napari-lowlight: alpha update"},
                error_prefix="Restore: alpha update failed",
                **options,
            )
            return self.alpha_worker
        indices = list(np.ndindex(*live.image.shape[: live.lead_ndim]))
        visible = self._visible_index(layer, live)
        if visible is not None:
            big = live.image[visible].size > SYNC_PIXELS
            enhance_visible = partial(enhance_preview, max_pixels=PREVIEW_PIXELS) if big else core.enhance
            try:
                plane = enhance_visible(
                    live.image[visible], live.difference[visible], alpha, context_image=live.image, **options
                )
            except Exception as error:  # noqa: BLE001
                show_error(f"Restore: alpha update failed: {error}")
                return None
            self._write_plane(layer, visible, plane, refresh=True)
            indices.remove(visible)
            if big:  # the preview is replaced first, at full resolution
                indices.insert(0, visible)
        if not indices:
            self.alpha_applied.emit()
            return None
        self.status.message = f"alpha={alpha:.3g}: updating {len(indices)} more planes..."
        self.status.progress = 0.0
        self._pending = (len(indices), len(indices))
        self.alpha_worker = start_worker(
            enhance_planes_job,
            generation,
            live.image,
            live.difference,
            alpha,
            indices,
            connect={
                "yielded": self._on_plane,
                "finished": partial(self._on_planes_finished, generation),
                "errored": self._on_alpha_errored,
            },
            progress={"total": len(indices), "desc": "napari-lowlight: alpha update"},
            error_prefix="Restore: alpha update failed",
            **options,
        )
        return self.alpha_worker

    def _visible_index(self, layer, live: LiveResult) -> tuple[int, ...] | None:
        """Leading-axis index of the plane on screen, or None (3-D view, transposed axes)."""
        dims = self.viewer.dims
        if dims.ndisplay != 2 or list(dims.displayed) != [dims.ndim - 2, dims.ndim - 1]:
            return None
        try:
            coords = np.asarray(layer.world_to_data(dims.point), dtype=float)
        except Exception:  # noqa: BLE001 (a layer transform napari cannot invert)
            return None
        shape = live.image.shape[: live.lead_ndim]
        return tuple(int(np.clip(np.round(c), 0, n - 1)) for c, n in zip(coords[: live.lead_ndim], shape, strict=True))

    def _write_plane(self, layer, index, plane, *, refresh: bool) -> None:
        data = layer.data
        if isinstance(data, np.ndarray) and data.shape[len(index) :] == plane.shape:
            data[index] = plane
            if refresh:
                layer.refresh()

    def _on_plane(self, item) -> None:
        generation, index, plane = item
        if generation != self._alpha_generation or not is_alive(self) or self.live is None:
            return
        layer = find_layer(self.viewer, self.live.restored_id)
        if layer is None:
            return
        visible = self._visible_index(layer, self.live)
        self._write_plane(layer, index, plane, refresh=index == visible)
        left, total = self._pending
        self._pending = (max(left - 1, 0), total)
        self.status.progress = 1.0 - self._pending[0] / max(total, 1)

    def _on_planes_finished(self, generation: int) -> None:
        if generation != self._alpha_generation or not is_alive(self) or self.live is None:
            return
        layer = find_layer(self.viewer, self.live.restored_id)
        if layer is not None:
            layer.refresh()
        self.status.progress = 1.0
        self.status.message = f"alpha={self.live.alpha:.3g}: all planes updated"
        self.alpha_applied.emit()

    def _on_enhanced(self, result) -> None:
        generation, restored = result
        if generation != self._alpha_generation or not is_alive(self) or self.live is None:
            return
        layer = find_layer(self.viewer, self.live.restored_id)
        if layer is not None:
            layer.data = restored
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
        if not is_alive(self):
            return
        if value < 0:
            self._progress.setRange(0, 0)  # busy indicator
        else:
            self._progress.setRange(0, 100)
            self._progress.setValue(int(round(100 * value)))
