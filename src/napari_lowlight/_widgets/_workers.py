"""The functions the widgets run in napari thread workers, and how they are started.

The job functions hold no Qt and no maths: they call the core API
(:mod:`napari_lowlight`) with a snapshot of the widget's parameters and return plain
results. The widget connects the worker's signals (delivered in the main thread) to
callbacks that write layers; a worker never touches the viewer.

Every worker started here is tracked until its thread is done: :func:`stop_workers`
cancels some and waits for their threads, and at interpreter exit the ones still
running are waited for, so that no thread outlives the Qt objects it emits through
(that aborts the process).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

import napari_lowlight as core
from napari_lowlight.inference import _refines
from napari_lowlight.intensity import is_dask
from napari_lowlight.planes import normalise_channel_axis

logger = logging.getLogger(__name__)


class JobError(Exception):
    """A ``RuntimeError`` (torch raises many) re-raised from a job.

    superqt's workers take a ``RuntimeError`` for a deleted Qt object and end
    silently, without ``errored`` or ``finished``; any other exception type is
    reported normally. :func:`start_worker` shields every job.
    """


def shielded(job):
    """``job`` (a function or a generator function) raising :class:`JobError` instead of ``RuntimeError``."""
    if inspect.isgeneratorfunction(job):

        @functools.wraps(job)
        def generator(*args, **kwargs):
            try:
                return (yield from job(*args, **kwargs))
            except RuntimeError as error:
                raise JobError(str(error) or type(error).__name__) from error

        return generator

    @functools.wraps(job)
    def function(*args, **kwargs):
        try:
            return job(*args, **kwargs)
        except RuntimeError as error:
            raise JobError(str(error) or type(error).__name__) from error

    return function


__all__ = [
    "AlphaUpdate",
    "JobError",
    "RestoreResult",
    "SynthesisResult",
    "alpha_update_job",
    "difference_view",
    "restore_job",
    "running_workers",
    "start_worker",
    "stop_workers",
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
    """Low-light version of ``data`` (and, optionally, its true difference map as one
    value map, :func:`difference_view`)."""
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
    difference = None
    if with_difference:
        difference = difference_view(
            core.difference_map(image, gamma, channel_axis=channel_axis, data_range=data_range), channel_axis
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
    #: What the difference-map layer shows (:func:`difference_view`).
    difference_view: np.ndarray
    #: Upper contrast limit for displaying ``difference_view`` (a high percentile).
    difference_max: float


def difference_view(difference, channel_axis: int | None):
    """The difference map as one grey value map: a colour image's is the mean of its
    colour channels (the RGBA opacity's map, always 0, left out); a grey one as it is.

    ``channel_axis`` is None or negative (napari keeps colour channels last). Lazy for
    a dask map.
    """
    if channel_axis is None:
        return difference
    colour = np.moveaxis(difference, channel_axis, -1)[..., :3]
    return colour.mean(axis=-1, dtype=np.float32)


def restore_job(run_id: int, data, *, alpha, **options) -> Iterator[str]:
    """Estimate-Net then Enhance-Net on ``data``; yields stage names, returns a :class:`RestoreResult`.

    The two halves run separately so the difference map can be cached for the live
    alpha slider (``enhance`` alone re-runs on a new alpha). ``options`` are keyword
    arguments of :func:`napari_lowlight.restore` (model, channel_axis, device, tile_size,
    data_range, ensemble, keep_black, refine).
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
    # Blacks and the refinement act on Enhance-Net's output alone.
    difference = core.estimate_difference(
        image, **{key: value for key, value in options.items() if key not in ("keep_black", "refine")}
    )
    yield "enhancing"
    restored = core.enhance(image, difference, alpha, **options)
    view = difference_view(difference, options.get("channel_axis"))
    shown = view[(0,) * (view.ndim - 2)] if is_dask(view) else view
    top = float(np.percentile(np.asarray(shown), 99.5)) if view.size else 0.0  # lazy: first plane only
    return RestoreResult(run_id, float(alpha), image, difference, restored, view, max(top, 1e-6))


#: Stages ``restore_job`` yields with ``alpha="auto"`` (one fewer without).
RESTORE_STAGES = 4


@dataclass(frozen=True)
class AlphaUpdate:
    """One plane of an alpha update, for the main thread to put in place."""

    generation: int
    #: Leading (stack) index of the plane; ``()`` for a 2-D image.
    index: tuple[int, ...]
    #: The whole plane: full resolution, or a preview.
    plane: np.ndarray
    #: Whether a later update replaces this plane: a coarse preview of the part on screen, or the
    #: plane at full resolution before its refinement.
    preview: bool


def alpha_update_job(
    generation: int,
    image: np.ndarray,
    difference: np.ndarray,
    alpha: float,
    *,
    lead_ndim: int,
    visible: tuple[int, ...] | None,
    region: tuple[int, int, int, int] | None,
    shown: np.ndarray | None,
    preview_pixels: int,
    cancelled: threading.Event,
    gate: threading.Semaphore,
    channel_axis: int | None,
    **options,
) -> Iterator[AlphaUpdate]:
    """Enhance-Net on the cached difference map with a new alpha, one plane at a time.

    Yields :class:`AlphaUpdate`: first, when the plane on screen (``visible``, a
    leading index; ``()`` for a 2-D image) has more than ``preview_pixels`` pixels, a
    preview of it: its on-screen ``region`` ``(y0, y1, x0, x1)`` (None: all of it) from
    at most ``preview_pixels`` computed pixels, pasted into the plane as ``shown``
    (the restored layer's current data, only read) holds it; then that plane at full
    resolution (first unrefined, as a preview, when ``options`` refine it); then the other
    planes of a stack.

    Each computation runs while holding ``gate`` (a semaphore bounding how many
    updates compute at once) and only while ``cancelled`` is unset: a newer alpha sets
    it, and this update stops before its next computation. ``channel_axis`` is None or
    negative (napari keeps colour channels last), so it means the same axis for a plane
    and for the stack. ``options`` are keyword arguments of :func:`napari_lowlight.enhance`.
    """
    if channel_axis is not None and channel_axis >= 0:
        raise ValueError(f"channel_axis must be None or negative here, got {channel_axis}")

    def computed(compute):
        """``compute()`` under the gate, or None once the update is cancelled."""
        if cancelled.is_set():
            return None
        with gate:
            return None if cancelled.is_set() else compute()

    indices = list(np.ndindex(*image.shape[:lead_ndim]))
    if visible is not None:
        indices.remove(visible)
        indices.insert(0, visible)
        height, width = _plane_size(image[visible], channel_axis)
        if shown is not None and height * width > preview_pixels:
            plane = computed(
                lambda: _preview_plane(
                    image, difference, alpha, visible, shown, region, preview_pixels, channel_axis, options
                )
            )
            if plane is None:
                return
            yield AlphaUpdate(generation, visible, plane, True)
    for index in indices:

        def enhanced(index=index, **changed):
            # The whole image as context: the plane matches the stack's result.
            return core.enhance(
                image[index], difference[index], alpha, channel_axis=channel_axis, context_image=image, **(options | changed)
            )

        if index == visible and _refines(
            options.get("refine", True), alpha, normalise_channel_axis(channel_axis, image[index].ndim), image[index].shape
        ):
            # The refinement takes about as long as the network pass again: the plane on screen
            # shows the network's output first.
            plane = computed(lambda: enhanced(refine=False))
            if plane is None:
                return
            yield AlphaUpdate(generation, index, plane, True)
        plane = computed(enhanced)
        if plane is None:
            return
        yield AlphaUpdate(generation, index, plane, False)


def _plane_size(plane: np.ndarray, channel_axis: int | None) -> tuple[int, int]:
    """(height, width) of one plane (Y, X[, C])."""
    return plane.shape[-3:-1] if channel_axis is not None else plane.shape[-2:]


def _preview_plane(image, difference, alpha, index, shown, region, preview_pixels, channel_axis, options):
    """The plane ``index`` as ``shown`` holds it, with its on-screen ``region`` replaced
    by a coarse :func:`~napari_lowlight.inference.enhance_preview` at ``alpha``.

    The region is computed with a margin of Enhance-Net's receptive radius (in
    preview pixels), so its borders see the neighbourhood a full pass sees.
    """
    from napari_lowlight.inference import enhance_preview

    height, width = _plane_size(image[index], channel_axis)
    y0, y1, x0, x1 = region if region is not None else (0, height, 0, width)
    step = max(1, math.ceil(math.sqrt((y1 - y0) * (x1 - x0) / preview_pixels)))
    margin = step * options["model"].enhance_radius
    top, bottom, left, right = max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width)
    crop = (*index, slice(top, bottom), slice(left, right))
    pixels = (bottom - top) * (right - left)
    coarse = enhance_preview(
        image[crop],
        difference[crop],
        alpha,
        max_pixels=math.ceil(pixels / step**2),
        channel_axis=channel_axis,
        context_image=image,
        # The preview is coarse anyway, and the ensemble's 8 passes or the refinement would only delay it.
        **(options | {"ensemble": False, "refine": False}),
    )
    plane = np.array(shown[index], copy=True)
    plane[y0:y1, x0:x1] = coarse[y0 - top : y1 - top, x0 - left : x1 - left]
    return plane


# --------------------------------------------------------------------------- training
def train_job(stop: threading.Event, data: dict, model, params: dict, *, holder: dict | None = None) -> Iterator[Any]:
    """Iterate :func:`napari_lowlight.train`, yielding its progress events.

    ``data`` holds the training data as the core's keyword argument of its kind
    (``{"images": ...}``, ``{"pairs": ...}`` or ``{"noisy": ...}``), ``params`` the
    further keyword arguments.

    ``stop`` is checked before every step, the first included: once set, the core
    generator is closed (so no further step starts) and the model holds the average of
    the weights trained so far (see :class:`napari_lowlight.training.WeightAverage`).
    The model is left in eval mode whichever way the run ends. ``holder["generator"]``
    is the core generator, for the caller to close if the worker is aborted between
    two steps (then this function is never resumed).
    """
    generator = core.train(**data, model=model, **params)
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
#: Workers started by :func:`start_worker` (weakly: superqt and Qt's pool hold them while they run).
_STARTED = weakref.WeakSet()
_EXIT_HOOK: list = []


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
    main thread; ``worker.thread_done`` once the worker's thread has emitted its last
    signal (what :func:`stop_workers` waits for: it needs no event loop).
    """
    from napari.qt.threading import create_worker
    from qtpy.QtCore import Qt

    worker = create_worker(
        shielded(func),
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
    worker.thread_done = thread_done = threading.Event()
    # A direct connection runs in the worker's thread, when it emits its last signal
    # (superqt's private ``_finished`` follows ``finished``; older versions lack it).
    # It holds the event only: a reference to the worker would keep it (and through its
    # callbacks the panel and the viewer) alive for good.
    last = getattr(type(worker.signals), "_finished", None)
    (worker._finished if last is not None else worker.finished).connect(
        lambda *_: thread_done.set(), Qt.ConnectionType.DirectConnection
    )
    _STARTED.add(worker)
    if not _EXIT_HOOK:
        # Exit handlers run before the interpreter tears down modules, and with them
        # the Qt objects a running worker still emits through.
        _EXIT_HOOK.append(atexit.register(_await_at_exit))
    worker.start()
    return worker


def running_workers() -> list:
    """Workers started by :func:`start_worker` whose thread has not ended yet."""
    return [worker for worker in list(_STARTED) if not worker.thread_done.is_set()]


def stop_workers(workers: Iterable, timeout: float | None = None) -> bool:
    """Ask ``workers`` to stop and wait until their threads have ended.

    A generator job stops at its next ``yield``; a computation in progress always
    finishes first (a thread cannot be interrupted). Needs no Qt event loop: the
    callbacks the workers' last signals queue for the main thread run whenever it
    next processes events (the widgets' callbacks ignore results of a closed panel).

    Returns
    -------
    bool
        True if every thread ended (within ``timeout`` seconds, when given).
    """
    workers = [worker for worker in workers if worker is not None]
    for worker in workers:
        with contextlib.suppress(RuntimeError):
            worker.quit()
    deadline = None if timeout is None else time.monotonic() + timeout
    for worker in workers:
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not worker.thread_done.wait(left):
            return False
    return True


def _await_at_exit() -> None:
    """At interpreter exit, wait for the workers still running (a script that ends
    during a restore): their threads would emit through deleted Qt objects."""
    workers = running_workers()
    if workers:
        print(f"napari-lowlight: waiting for {len(workers)} running worker(s) to finish...", file=sys.stderr)
        stop_workers(workers)


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
