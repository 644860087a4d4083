"""The functions the widgets run in napari thread workers, and how they are started.

The job functions hold no Qt and no maths: they call the core API
(:mod:`napari_lowlight`) with a snapshot of the widget's parameters and return plain
results. The widget connects the worker's signals (delivered in the main thread) to
callbacks that write layers; a worker never touches the viewer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

import napari_lowlight as core
from napari_lowlight.intensity import is_dask

logger = logging.getLogger(__name__)


class JobError(Exception):
    """A ``RuntimeError`` (torch raises many) re-raised from a generator job.

    superqt's generator workers take a ``RuntimeError`` for a deleted Qt object and
    end silently, without ``errored`` or ``finished``; any other exception type is
    reported normally.
    """


def shielded(generator_function):
    """Make ``generator_function`` raise :class:`JobError` instead of ``RuntimeError``."""

    @functools.wraps(generator_function)
    def wrapper(*args, **kwargs):
        try:
            return (yield from generator_function(*args, **kwargs))
        except RuntimeError as error:
            raise JobError(str(error) or type(error).__name__) from error

    return wrapper


__all__ = [
    "JobError",
    "RestoreResult",
    "SynthesisResult",
    "enhance_planes_job",
    "restore_job",
    "start_worker",
    "synthesize_job",
    "train_job",
    "wait_for_worker",
]


# --------------------------------------------------------------------------- synthesis
@dataclass
class SynthesisResult:
    low: np.ndarray
    difference: np.ndarray | None


def synthesize_job(
    data,
    *,
    alpha: float,
    gamma: float,
    noise: str | None,
    noise_sigma: float,
    photons: float | None,
    seed: int | None,
    channel_axis: int | None,
    data_range: float | None,
    with_difference: bool,
) -> SynthesisResult:
    """Low-light version of ``data`` (and, optionally, its true difference map)."""
    image = np.asarray(data)
    low = core.synthesize_low_light(
        image,
        alpha,
        gamma,
        noise=noise,
        noise_sigma=noise_sigma,
        photons=photons,
        seed=seed,
        channel_axis=channel_axis,
        data_range=data_range,
    )
    difference = (
        core.difference_map(image, gamma, channel_axis=channel_axis, data_range=data_range) if with_difference else None
    )
    return SynthesisResult(low, difference)


# --------------------------------------------------------------------------- restoration
@dataclass
class RestoreResult:
    run_id: int
    alpha: float
    image: np.ndarray
    difference: np.ndarray
    restored: np.ndarray
    #: Upper contrast limit for displaying ``difference`` (a high percentile).
    difference_max: float


@shielded
def restore_job(run_id: int, data, *, alpha, **options) -> Iterator[str]:
    """Estimate-Net then Enhance-Net on ``data``; yields stage names, returns a :class:`RestoreResult`.

    The two halves run separately so the difference map can be cached for the live
    alpha slider (``enhance`` alone re-runs on a new alpha). ``options`` are keyword
    arguments of :func:`napari_lowlight.restore` (model, channel_axis, device, tile_size,
    data_range).
    """
    yield "reading image"
    # A dask- or zarr-backed layer stays lazy: the results are lazy dask arrays too and
    # napari computes only the planes it shows.
    image = data if is_dask(data) else np.asarray(data)
    if isinstance(alpha, str):  # "auto"
        yield "estimating alpha"
        alpha = core.estimate_alpha(
            image, **{key: options[key] for key in ("model", "channel_axis", "data_range") if key in options}
        )
    yield "estimating difference map"
    difference = core.estimate_difference(image, **options)
    yield "enhancing"
    restored = core.enhance(image, difference, alpha, **options)
    channel_axis = options.get("channel_axis")
    shown = difference[(0,) * (difference.ndim - 2 - (channel_axis is not None))] if is_dask(difference) else difference
    top = float(np.percentile(np.asarray(shown), 99.5)) if difference.size else 0.0  # lazy: first plane only
    return RestoreResult(run_id, float(alpha), image, difference, restored, max(top, 1e-6))


#: Stages ``restore_job`` yields with ``alpha="auto"`` (one fewer without).
RESTORE_STAGES = 4


@shielded
def enhance_planes_job(
    generation: int,
    image: np.ndarray,
    difference: np.ndarray,
    alpha: float,
    indices: Sequence[tuple[int, ...]],
    *,
    channel_axis: int | None,
    **options,
) -> Iterator[tuple[int, tuple[int, ...], np.ndarray]]:
    """Enhance-Net on the planes at ``indices`` (leading-axis indices of a stack).

    Yields ``(generation, index, restored_plane)`` one plane at a time, so the widget
    writes each into the restored layer as it arrives and a newer alpha can abort the
    rest between two planes. ``channel_axis`` is None or negative (napari keeps RGB
    channels last), so it means the same axis for the stack and for one plane.
    ``options`` are keyword arguments of :func:`napari_lowlight.enhance`.
    """
    if channel_axis is not None and channel_axis >= 0:
        raise ValueError(f"channel_axis must be None or negative here, got {channel_axis}")
    for index in indices:
        plane = core.enhance(
            image[index],
            difference[index],
            alpha,
            channel_axis=channel_axis,
            context_image=image,  # normalised and conditioned like the whole stack
            **options,
        )
        yield generation, index, plane


def enhance_job(
    generation: int, image: np.ndarray, difference: np.ndarray, alpha: float, **options
) -> tuple[int, np.ndarray]:
    """Enhance-Net on a whole (2-D) image; returns ``(generation, restored)``.

    ``options`` are keyword arguments of :func:`napari_lowlight.enhance`.
    """
    return generation, core.enhance(image, difference, alpha, **options)


# --------------------------------------------------------------------------- training
@shielded
def train_job(
    stop: threading.Event, images, pairs, model, params: dict, *, holder: dict | None = None
) -> Iterator[Any]:
    """Iterate :func:`napari_lowlight.train`, yielding its progress events.

    ``stop`` is checked before every step, the first included: once set, the core
    generator is closed (so no further step starts) and the model holds the average of
    the weights trained so far (see :class:`napari_lowlight.training.WeightAverage`).
    The model is left in eval mode whichever way the run ends. ``holder["generator"]``
    is the core generator, for the caller to close if the worker is aborted between
    two steps (then this function is never resumed).
    """
    generator = core.train(images, pairs=pairs, model=model, **params)
    if holder is not None:
        holder["generator"] = generator
    try:
        while not stop.is_set():
            event = next(generator, None)
            if event is None:
                break
            yield event
    finally:
        generator.close()
        model.eval()


# --------------------------------------------------------------------------- workers
def start_worker(
    func: Callable,
    *args,
    connect: dict[str, Callable | Sequence[Callable]] | None = None,
    progress: bool | dict | None = None,
    error_prefix: str = "napari-lowlight",
    **kwargs,
):
    """Start ``func(*args, **kwargs)`` in a napari thread worker and return the worker.

    An exception in the worker becomes one napari error notification,
    ``"<error_prefix>: <message>"``, and is never re-raised into Qt; the widget's own
    ``errored`` callback only resets its state. ``worker.done`` (a
    :class:`threading.Event`) is set once the ``finished`` callbacks have run in the
    main thread.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(
        func,
        *args,
        _connect=connect or {},
        _progress=progress,
        _ignore_errors=True,
        _start_thread=False,
        **kwargs,
    )
    # Some napari versions relay worker errors to the notification manager with a
    # traceback, others do not: take that over so there is always exactly one.
    relay = getattr(worker, "_relay_error", None)
    if relay is not None:
        with contextlib.suppress(TypeError, RuntimeError):
            worker.errored.disconnect(relay)
    worker.errored.connect(partial(_notify_error, error_prefix))
    done = threading.Event()
    worker.done = done
    # Connected last: runs after the widget's own ``finished`` callbacks.
    worker.finished.connect(done.set)
    worker.start()
    return worker


def _notify_error(prefix: str, error: BaseException) -> None:
    from napari.utils.notifications import show_error

    logger.debug("%s failed", prefix, exc_info=(type(error), error, error.__traceback__))
    show_error(f"{prefix}: {error}")


def wait_for_worker(worker, timeout: float = 300.0) -> None:
    """Process Qt events until ``worker`` (from :func:`start_worker`) has finished.

    For scripts that drive the widgets without running napari's event loop: the
    worker's results are delivered to the main thread as Qt events, so this keeps
    processing them until the worker's ``finished`` callbacks have run.

    Raises
    ------
    TimeoutError
        If it is still running after ``timeout`` seconds.
    """
    import time

    from qtpy.QtWidgets import QApplication

    if worker is None:
        return
    done = worker.done
    app = QApplication.instance()
    deadline = time.monotonic() + timeout
    while not done.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker still running after {timeout} s")
        app.processEvents()
        time.sleep(0.002)
    app.processEvents()
