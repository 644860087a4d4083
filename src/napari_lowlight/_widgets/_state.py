"""Evented state shared by the widgets: they listen to these objects, never to each other.

* :class:`ModelRegistry` — the models a session knows (the shipped default, models
  trained in the Train widget, weight files loaded by hand). The Train widget adds to
  it; the Restore widget lists it and follows its ``changed`` signal.
* :class:`TrainingStatus` and :class:`TaskStatus` — evented dataclasses describing a
  run; the worker callbacks write them, the widgets' labels, buttons, loss curve and
  preview read them.

Nothing here imports Qt: scripts and tests can use these objects headless.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal, evented

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelEntry",
    "ModelRegistry",
    "RunState",
    "TaskStatus",
    "TrainingPreview",
    "TrainingStatus",
    "model_registry",
]

def shipped_model_name(weights: str) -> str:
    """The registry name of the shipped weights ``weights`` (a key of ``SHIPPED_WEIGHTS``)."""
    return f"{weights} (shipped)"


#: Registry name of the default weights shipped inside the package.
DEFAULT_MODEL_NAME = shipped_model_name("default")


def step_count(steps: int) -> str:
    """``"1 step"``, ``"5 steps"``: how many training steps ran, in words."""
    return f"{steps} step" if steps == 1 else f"{steps} steps"


class RunState(str, Enum):
    """Life cycle of a background run."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"

    @property
    def active(self) -> bool:
        return self in (RunState.RUNNING, RunState.STOPPING)


@evented
@dataclass
class TaskStatus:
    """State of a short background task (synthesis, restoration, a live alpha update)."""

    state: RunState = RunState.IDLE
    message: str = ""
    #: Fraction done in [0, 1] (stages of a run, planes of an alpha update).
    progress: float = 0.0


# eq=False: compared by identity, so that every new restoration is an event (arrays have no plain ==).
@dataclass(frozen=True, eq=False)
class TrainingPreview:
    """A crop that a run restores with its averaged weights at every validation (``train(preview=...)``)."""

    #: The crop as it is (a held-back noisy frame's, in a self-supervised run).
    image: np.ndarray
    #: Where the crop comes from, in words.
    caption: str = ""
    #: ``image`` restored at the last validation; None before the first.
    restored: np.ndarray | None = None


@evented
@dataclass
class TrainingStatus:
    """State of a training run, updated after every step.

    ``step`` is written last on every update, so a listener of ``events.step`` sees the
    matching ``loss``, ``validation_psnr``, ``images_per_second`` and ``preview``.
    """

    state: RunState = RunState.IDLE
    step: int = 0
    steps: int = 0
    loss: float = math.nan
    validation_psnr: float | None = None
    learning_rate: float = math.nan
    images_per_second: float = 0.0
    message: str = ""
    #: Registry name of the model the last run produced ("" before any).
    model_name: str = ""
    #: The run's preview crop and its latest restoration (None: the run has no preview).
    preview: TrainingPreview | None = None


@dataclass
class ModelEntry:
    """One model the session knows.

    ``kind`` is ``"default"`` (shipped weights, loaded lazily on first use), ``"trained"`` or ``"file"``.
    """

    name: str
    kind: str
    model: Any = None
    path: Path | None = None
    loader: Callable[[], Any] | None = field(default=None, repr=False)
    info: str = ""

    def get_model(self):
        """The torch model, loading it on first use (raises what the loader raises)."""
        if self.model is None:
            if self.loader is None:
                raise ValueError(f"model {self.name!r} has no weights")
            self.model = self.loader()
        return self.model


class ModelRegistry:
    """The models known to this session, by unique display name.

    Signals
    -------
    changed()
        Emitted after any addition or removal.
    added(ModelEntry)
        Emitted after an entry was added (a trained model, a loaded file).
    """

    changed = Signal()
    added = Signal(object)

    def __init__(self, *, include_default: bool = True) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ModelEntry] = {}
        self._counter = itertools.count(1)
        if include_default:
            from napari_lowlight.weights import SHIPPED_WEIGHTS, load_model

            for weights, purpose in SHIPPED_WEIGHTS.items():
                name = shipped_model_name(weights)
                loader = partial(load_model, weights, device="cpu")
                self._entries[name] = ModelEntry(name, "default", loader=loader, info=purpose)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Entry names, in insertion order (the default first)."""
        return list(self._entries)

    def get(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no model named {name!r}; known: {self.names()}") from None

    def _unique(self, name: str) -> str:
        if name not in self._entries:
            return name
        for number in itertools.count(2):
            candidate = f"{name} ({number})"
            if candidate not in self._entries:
                return candidate
        raise AssertionError  # pragma: no cover

    def add(self, name: str, model, *, kind: str = "trained", path=None, info: str = "") -> ModelEntry:
        """Add ``model`` under ``name`` (made unique); emits ``added`` and ``changed``."""
        with self._lock:
            entry = ModelEntry(
                self._unique(name), kind, model=model, path=None if path is None else Path(path), info=info
            )
            self._entries[entry.name] = entry
        self.added.emit(entry)
        self.changed.emit()
        return entry

    def add_trained(self, model, *, steps: int, info: str = "") -> ModelEntry:
        """Add a freshly trained model as ``"trained #N (S steps)"``."""
        return self.add(f"trained #{next(self._counter)} ({step_count(steps)})", model, kind="trained", info=info)

    def remove(self, name: str) -> None:
        with self._lock:
            del self._entries[name]
        self.changed.emit()

    def latest(self, kind: str = "trained") -> ModelEntry | None:
        """The most recently added entry of ``kind``, or None."""
        matches = [entry for entry in self._entries.values() if entry.kind == kind]
        return matches[-1] if matches else None

    def clear(self, *, keep_default: bool = True) -> None:
        """Forget every entry (but the shipped weights when ``keep_default``)."""
        with self._lock:
            self._entries = {
                name: entry for name, entry in self._entries.items() if keep_default and entry.kind == "default"
            }
        self.changed.emit()


#: The registry shared by the widgets of all viewers of this process.
model_registry = ModelRegistry()
