"""napari widgets of napari-lowlight (Qt); the core library never imports this package.

One module per panel (``_synthesize``, ``_train``, ``_restore``), the thread-worker
jobs in ``_workers``, the Train panel's parts in ``_loss_curve`` and ``_preview``, the
evented state the panels share in ``_state`` (the model registry the Restore panel
follows, the training status the Train panel shows).
"""

from ._restore import RestoreWidget
from ._state import (
    DEFAULT_MODEL_NAME,
    ModelEntry,
    ModelRegistry,
    RunState,
    TaskStatus,
    TrainingPreview,
    TrainingStatus,
    model_registry,
)
from ._synthesize import SynthesizeWidget
from ._train import TrainWidget
from ._training_run import TrainingRun, active_runs
from ._workers import wait_for_worker

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelEntry",
    "ModelRegistry",
    "RestoreWidget",
    "RunState",
    "SynthesizeWidget",
    "TaskStatus",
    "TrainWidget",
    "TrainingPreview",
    "TrainingRun",
    "TrainingStatus",
    "active_runs",
    "model_registry",
    "wait_for_worker",
]
