"""One training run in a thread worker: stop flag, status updates, registration of the result.

A :class:`TrainingRun` is a plain object, not a widget: it lives until its worker has
finished even if the widget that started it is deleted (its viewer closed), so the
worker always ends cleanly and the (averaged) weights trained so far still reach the registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import weakref

from ._state import ModelRegistry, RunState, TrainingPreview, TrainingStatus, step_count
from ._workers import start_worker, train_job

__all__ = ["TrainingRun", "active_runs"]

_ACTIVE: set[TrainingRun] = set()


def active_runs() -> list[TrainingRun]:
    """Training runs whose worker has not finished yet (any widget, any viewer)."""
    return list(_ACTIVE)


class TrainingRun:
    """Train ``model`` on ``data`` in a napari thread worker.

    Parameters
    ----------
    data : dict
        The training data as the keyword argument of :func:`napari_lowlight.train` of
        its kind: ``{"images": [...]}`` (clean images), ``{"pairs": [(low, high), ...]}``
        or ``{"noisy": [...]}`` (self-supervised), arrays or array-likes such as layer data.
    model
        The model to train, in place (the caller passes a copy when it must not change).
    params : dict
        Further keyword arguments of :func:`napari_lowlight.train` (``steps`` required).
    status : TrainingStatus
        Written after every step and at the end.
    registry : ModelRegistry
        Receives the trained model when the run ends (finished or stopped after at
        least one step), as ``"trained #N (S steps)"``.
    description : str
        What the run trains on, in words (``"on camera"``), for its messages.
    preview : TrainingPreview, optional
        A crop for the core to restore at every validation (its ``preview``);
        ``status.preview`` holds it with its latest restoration.
    """

    def __init__(
        self,
        *,
        data: dict,
        model,
        params: dict,
        status: TrainingStatus,
        registry: ModelRegistry,
        description: str = "",
        preview: TrainingPreview | None = None,
    ) -> None:
        self.data = data
        self.model = model
        self.params = dict(params)
        self.preview = preview
        if preview is not None:
            self.params["preview"] = preview.image
        self.status = status
        self.registry = registry
        self.description = description
        self.stop_event = threading.Event()
        self.last_event = None
        self.error: Exception | None = None
        self.entry = None
        self.worker = None
        self._holder: dict = {}
        self._aborted = False
        #: Called (no arguments) at the very end, once the run's result is registered.
        self.finished_callbacks: list = []

    @property
    def running(self) -> bool:
        return self in _ACTIVE

    @property
    def steps_done(self) -> int:
        return 0 if self.last_event is None else int(self.last_event.step)

    def start(self):
        """Start the worker; returns it."""
        status = self.status
        status.model_name = ""
        status.validation_psnr = None
        status.loss = math.nan
        status.images_per_second = 0.0
        status.steps = int(self.params["steps"])
        status.step = 0
        status.preview = self.preview
        status.message = f"training {self.description}..."
        status.state = RunState.RUNNING
        _ACTIVE.add(self)
        self.worker = start_worker(
            train_job,
            self.stop_event,
            self.data,
            self.model,
            self.params,
            holder=self._holder,
            connect={
                "yielded": self._on_yielded,
                "errored": self._on_errored,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
            progress={"total": status.steps, "desc": "napari-lowlight: training"},
            error_prefix="Training failed",
        )
        return self.worker

    def stop(self) -> None:
        """Ask the run to stop after the step in progress; the (averaged) weights so far are kept."""
        self.stop_event.set()
        if self.status.state == RunState.RUNNING:
            self.status.state = RunState.STOPPING
            self.status.message = "stopping after the current step..."

    def stop_when_destroyed(self, qobject) -> None:
        """Stop this run when ``qobject`` (e.g. the widget that started it) is destroyed."""
        event = weakref.ref(self.stop_event)

        def _stop(*_):
            target = event()
            if target is not None:
                target.set()

        qobject.destroyed.connect(_stop)

    # ------------------------------------------------------------------ callbacks (main thread)
    def _on_yielded(self, event) -> None:
        self.last_event = event
        status = self.status
        status.steps = int(event.steps)
        status.loss = float(event.loss)
        status.learning_rate = float(event.learning_rate)
        status.images_per_second = float(event.images_per_second)
        if event.validation_psnr is not None:
            status.validation_psnr = float(event.validation_psnr)
        # Between validations the core repeats its last restoration: only a new one is news.
        shown = status.preview
        if shown is not None and event.preview is not None and event.preview is not shown.restored:
            status.preview = dataclasses.replace(shown, restored=event.preview)
        if event.step == event.steps and "noisy" in self.data:
            # The core then calibrates the denoise-only refinement on the frames, before it returns.
            status.message = "calibrating the denoise-only refinement on the frames..."
        status.step = int(event.step)  # last: listeners of ``step`` see a consistent state

    def _on_errored(self, error: Exception) -> None:
        self.error = error
        self.status.state = RunState.ERROR
        self.status.message = f"training failed: {error}"

    def _on_aborted(self) -> None:
        self._aborted = True

    def _on_finished(self) -> None:
        try:
            self._finish()
        finally:
            _ACTIVE.discard(self)
            for callback in self.finished_callbacks:
                callback()

    def _finish(self) -> None:
        # A worker aborted from outside (napari cancels workers when its window closes)
        # leaves the generator suspended: close it, so the core loop ends too.
        generator = self._holder.pop("generator", None)
        if generator is not None:
            with contextlib.suppress(Exception):
                generator.close()
        with contextlib.suppress(Exception):
            self.model.eval()
        if self.error is not None:
            return
        stopped = self.stop_event.is_set() or self._aborted
        steps = self.steps_done
        if steps > 0:
            info = f"{self.description}, {steps} of {self.params['steps']} steps"
            self.entry = self.registry.add_trained(self.model, steps=steps, info=info)
            self.status.model_name = self.entry.name
            what = "stopped" if stopped else "finished"
            self.status.message = f"{what} after {step_count(steps)}; available in Restore as {self.entry.name!r}"
        else:
            self.status.message = "stopped before the first step; no model was added"
        self.status.state = RunState.STOPPED if stopped else RunState.DONE
