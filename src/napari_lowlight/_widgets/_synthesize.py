"""The "Synthesize low light" panel: darken a clean image layer with the paper's model.

Scripting::

    widget = SynthesizeWidget(viewer)
    widget.layer = "camera"          # a layer or its name
    widget.alpha, widget.gamma = 1.2, 1.0
    widget.noise, widget.noise_sigma = "gaussian", 0.02
    worker = widget.run()            # adds "camera low (...)" when done
"""

from __future__ import annotations

from functools import partial

import napari
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QPushButton, QWidget

from ._common import (
    OWNER_KEY,
    CloseWatcher,
    ImageLayerCombo,
    Section,
    check_image_layer,
    check_property,
    combo_property,
    data_range_property,
    data_range_spin,
    double_spin,
    forwarded_property,
    int_spin,
    is_alive,
    layer_snapshot,
    scrolling_layout,
    spin_property,
)
from ._state import RunState, TaskStatus
from ._workers import start_worker, stop_workers, synthesize_job

__all__ = ["NOISE_MODELS", "SynthesizeWidget", "low_light_name"]

#: Noise choices shown to the user -> the core's ``noise`` argument.
NOISE_MODELS = {"none": None, "gaussian": "gaussian", "poisson-gaussian": "poisson-gaussian"}


def low_light_name(source: str, alpha: float, gamma: float, noise: str, noise_sigma: float, photons, seed) -> str:
    """Name of a synthesised layer: the source and every parameter that made it."""
    parts = [f"alpha={alpha:g}", f"gamma={gamma:g}"]
    if noise == "gaussian":
        parts.append(f"gaussian sigma={noise_sigma:g}")
    elif noise == "poisson-gaussian":
        parts.append(f"poisson-gaussian photons={photons:g} sigma={noise_sigma:g}")
    else:
        parts.append("no noise")
    if noise != "none":
        parts.append(f"seed={seed}")
    return f"{source} low ({', '.join(parts)})"


class SynthesizeWidget(QWidget):
    """Make a low-light version of an image layer (grey, RGB or N-D, any dtype).

    Adds a new layer named after the source and the parameters and never changes the
    source layer; optionally adds the true difference map ``D = (1 - I**gamma) * I``.

    Signals
    -------
    run_finished
        Emitted after a run's result was added to the viewer (or its error reported).
    """

    run_finished = Signal()

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.status = TaskStatus()
        self.worker = None
        self._closed = False  # closing the panel drops the result of a run in progress

        self._layer = ImageLayerCombo(napari_viewer)
        self._layer.setToolTip("The clean image to darken (it is never modified)")
        self._alpha = double_spin(1.0, 0.01, 5.0, step=0.1, decimals=2, tooltip="Low-light intensity (paper: 0.5-2)")
        self._gamma = double_spin(1.0, 0.05, 5.0, step=0.1, decimals=2, tooltip="Exponent of the illumination map")
        self._noise = QComboBox()
        self._noise.addItems(list(NOISE_MODELS))
        self._noise.setCurrentText("gaussian")
        self._noise.setToolTip("Sensor noise: Gaussian, or Poisson shot noise plus Gaussian read noise")
        self._sigma = double_spin(
            0.02, 0.0, 1.0, step=0.005, decimals=4, tooltip="Std. of Gaussian (read) noise, in [0, 1] units"
        )
        self._photons = double_spin(
            100.0, 0.1, 1e7, step=10.0, decimals=1, tooltip="Photons at full intensity (Poisson)"
        )
        self._seed = int_spin(0, 0, 2**31 - 1, tooltip="Seed of the noise (same seed, same image)")
        self._data_range = data_range_spin()
        self._difference = QCheckBox("also add the true difference map")
        self._run = QPushButton("Synthesize")
        self._run.setToolTip("Add a low-light version of the selected layer")
        self._message = QLabel("")
        self._message.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image", self._layer)
        form.addRow("alpha", self._alpha)
        form.addRow("gamma", self._gamma)
        form.addRow("noise", self._noise)
        form.addRow("noise sigma", self._sigma)
        form.addRow("photons", self._photons)
        #: Seed and data range, folded away by default.
        self.advanced = Section("advanced: seed, data range")
        self.advanced.form.addRow("seed", self._seed)
        self.advanced.form.addRow("data range", self._data_range)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addWidget(self._difference)
        layout.addWidget(self._run)
        layout.addWidget(self._message)
        layout.addStretch(1)
        self._close_watcher = CloseWatcher(self, self.close_workers)

        self._noise.currentTextChanged.connect(self._on_noise_changed)
        self._run.clicked.connect(self.run)
        self.status.events.state.connect(self._on_state)
        self.status.events.message.connect(self._on_message)
        self._on_noise_changed(self._noise.currentText())

    # ------------------------------------------------------------------ parameters
    layer = forwarded_property("_layer", "layer", "The source image layer (set a layer or its name).")
    alpha = spin_property("_alpha")
    gamma = spin_property("_gamma")
    noise = combo_property(
        "_noise", "noise model", '``"none"``, ``"gaussian"`` or ``"poisson-gaussian"``.', none_text="none"
    )
    noise_sigma = spin_property("_sigma")
    photons = spin_property("_photons")
    seed = spin_property("_seed")
    data_range = data_range_property
    add_difference = check_property("_difference", "Also add the true difference map as a float layer.")

    # ------------------------------------------------------------------ actions
    def run(self, *_):
        """Synthesise in a worker; return the worker (None when the input is refused).

        The new layer(s) are added when the worker returns; errors become napari
        notifications and add nothing.
        """
        layer = self.layer
        problem = check_image_layer(layer)
        if problem is not None:
            show_error(f"Synthesize low light: {problem}")
            return None
        source = layer_snapshot(layer)
        params = {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "noise": NOISE_MODELS[self.noise],
            "noise_sigma": self.noise_sigma,
            "photons": self.photons if self.noise == "poisson-gaussian" else None,
            "seed": self.seed,
            "channel_axis": source["channel_axis"],
            "data_range": self.data_range,
            "with_difference": self.add_difference,
        }
        name = low_light_name(
            source["name"], self.alpha, self.gamma, self.noise, self.noise_sigma, self.photons, self.seed
        )
        self.status.state = RunState.RUNNING
        self.status.message = f"synthesising {name!r}..."
        self._close_watcher.watch_window()
        self._closed = False
        # No napari progress bar: its animated activity indicator repaints the window.
        self.worker = start_worker(
            synthesize_job,
            source["data"],
            connect={
                "returned": partial(self._on_returned, source, params, name),
                "errored": self._on_errored,
                "finished": self._on_finished,
            },
            error_prefix="Synthesize low light failed",
            **params,
        )
        return self.worker

    def close_workers(self, timeout: float | None = None) -> bool:
        """Wait for a running synthesis (its result is then dropped); True if none is left.

        Called when the viewer or the panel closes.
        """
        self._closed = True
        return stop_workers([self.worker], timeout)

    # ------------------------------------------------------------------ callbacks
    def _on_returned(self, source: dict, params: dict, name: str, result) -> None:
        if self._closed or not is_alive(self):
            return
        tag = {"role": "synthesized", "source_id": str(source["unique_id"])}
        tag.update({key: value for key, value in params.items() if key != "with_difference"})
        common = {"scale": source["scale"], "translate": source["translate"]}
        # The source's contrast limits keep the darkening visible (autoscaling would undo it).
        self.viewer.add_image(
            result.low,
            name=name,
            contrast_limits=source["contrast_limits"],
            metadata={**source["metadata"], OWNER_KEY: tag},
            rgb=source["rgb"],
            **common,
        )
        if result.difference is not None:
            top = float(result.difference.max()) or 1.0
            self.viewer.add_image(
                result.difference,  # one value map, also for a colour image
                name=f"{source['name']} true difference map (gamma={params['gamma']:g})",
                colormap="magma",
                contrast_limits=(0.0, top),
                metadata={**source["metadata"], OWNER_KEY: {"role": "true difference", "source_id": str(source["unique_id"])}},
                rgb=False,
                **common,
            )
        self.status.state = RunState.DONE
        self.status.message = f"added {name!r}"

    def _on_errored(self, error: Exception) -> None:
        self.status.state = RunState.ERROR
        self.status.message = f"failed: {error}"

    def _on_finished(self) -> None:
        if is_alive(self):
            self.run_finished.emit()

    def _on_noise_changed(self, text: str) -> None:
        self._sigma.setEnabled(text != "none")
        self._photons.setEnabled(text == "poisson-gaussian")

    def _on_message(self, message: str) -> None:
        if is_alive(self):
            self._message.setText(message)

    def _on_state(self, state: RunState) -> None:
        if is_alive(self):
            self._run.setEnabled(not RunState(state).active)
