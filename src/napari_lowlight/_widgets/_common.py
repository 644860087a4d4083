"""Small Qt building blocks shared by the widgets: layer pickers, device picker, helpers."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator

from napari.layers import Image
from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "CloseWatcher",
    "ImageLayerCombo",
    "ImageLayerList",
    "OWNER_KEY",
    "ProgressBar",
    "Section",
    "channel_axis_of",
    "check_property",
    "combo_property",
    "data_range_property",
    "data_range_spin",
    "double_spin",
    "find_layer",
    "forwarded_property",
    "int_spin",
    "is_alive",
    "layer_snapshot",
    "optional_spin_property",
    "output_layers",
    "scrolling_layout",
    "set_combo_text",
    "spin_property",
]

#: Key of ``layer.metadata`` under which napari-lowlight tags the layers it creates.
OWNER_KEY = "napari_lowlight"


def is_alive(widget: QWidget) -> bool:
    """False once the C++ side of ``widget`` has been deleted (e.g. its viewer closed)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def channel_axis_of(layer) -> int | None:
    """The channel axis the core needs for ``layer``: -1 for RGB(A) layers, else None."""
    return -1 if getattr(layer, "rgb", False) else None


def find_layer(viewer, unique_id):
    """The layer of ``viewer`` whose ``unique_id`` is ``unique_id``, or None."""
    for layer in viewer.layers:
        if layer.unique_id == unique_id:
            return layer
    return None


def output_layers(viewer, role: str, source_id) -> list:
    """Layers napari-lowlight made with ``role`` from the layer with ``source_id``."""
    found = []
    for layer in viewer.layers:
        tag = layer.metadata.get(OWNER_KEY) if isinstance(layer.metadata, dict) else None
        if isinstance(tag, dict) and tag.get("role") == role and tag.get("source_id") == str(source_id):
            found.append(layer)
    return found


def layer_snapshot(layer) -> dict:
    """What a run needs to remember about its source layer (the layer itself may change)."""
    return {
        "unique_id": layer.unique_id,
        "name": layer.name,
        "data": layer.data,
        "rgb": bool(layer.rgb),
        "channel_axis": channel_axis_of(layer),
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "contrast_limits": tuple(layer.contrast_limits),
        # What the layers derived from it inherit (a FITS file's header, say), less napari-lowlight's own tag.
        "metadata": {key: value for key, value in layer.metadata.items() if key != OWNER_KEY},
    }


def check_image_layer(layer) -> str | None:
    """Why ``layer`` cannot be processed, or None when it can."""
    if layer is None:
        return "no image layer selected"
    if not isinstance(layer, Image):
        return f"layer {layer.name!r} is not an image layer"
    if layer.multiscale:
        return f"layer {layer.name!r} is multiscale (a pyramid); napari-lowlight needs a single-resolution image"
    return None


def int_spin(value: int, low: int, high: int, *, step: int = 1, tooltip: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tooltip)
    return spin


def double_spin(
    value: float, low: float, high: float, *, step: float = 0.1, decimals: int = 3, tooltip: str = ""
) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tooltip)
    return spin


def spin_property(attribute: str, doc: str | None = None) -> property:
    """A widget property over the value of the spin box ``self.<attribute>``."""

    def get(self):
        return getattr(self, attribute).value()

    def set(self, value) -> None:
        getattr(self, attribute).setValue(value)

    return property(get, set, doc=doc)


def check_property(attribute: str, doc: str | None = None) -> property:
    """A widget property over whether the check box ``self.<attribute>`` is ticked."""

    def get(self) -> bool:
        return getattr(self, attribute).isChecked()

    def set(self, value) -> None:
        getattr(self, attribute).setChecked(bool(value))

    return property(get, set, doc=doc)


def combo_property(attribute: str, what: str, doc: str | None = None, *, none_text: str | None = None) -> property:
    """A widget property over the text of the combo box ``self.<attribute>``.

    Setting an unknown text raises ValueError naming ``what`` and the choices; with
    ``none_text``, setting None selects that entry.
    """

    def get(self) -> str:
        return getattr(self, attribute).currentText()

    def set(self, value) -> None:
        text = none_text if value is None and none_text is not None else value
        set_combo_text(getattr(self, attribute), text, what=what)

    return property(get, set, doc=doc)


def forwarded_property(attribute: str, name: str, doc: str | None = None) -> property:
    """A widget property that reads and writes ``self.<attribute>.<name>`` (e.g. a picker's layer)."""

    def get(self):
        return getattr(getattr(self, attribute), name)

    def set(self, value) -> None:
        setattr(getattr(self, attribute), name, value)

    return property(get, set, doc=doc)


def optional_spin_property(attribute: str, doc: str) -> property:
    """A widget property over the spin box ``self.<attribute>`` whose minimum (its special value) is None."""

    def get(self):
        spin = getattr(self, attribute)
        return None if spin.value() == spin.minimum() else spin.value()

    def set(self, value) -> None:
        spin = getattr(self, attribute)
        spin.setValue(spin.minimum() if value is None else value)

    return property(get, set, doc=doc)


#: The "data range" fields' property (see :func:`data_range_spin`).
data_range_property = optional_spin_property(
    "_data_range", "Value of full intensity (e.g. 4095 for 12-bit data); None for the dtype's range."
)


def data_range_spin() -> QDoubleSpinBox:
    """The "data range" field: the value of full intensity, or the dtype's range at 0."""
    spin = double_spin(
        0.0,
        0.0,
        1e12,
        step=1.0,
        decimals=2,
        tooltip="Value of full intensity, e.g. 4095 for 12-bit camera data stored as uint16 "
        "(dtype range: integers by their type, floats as [0, 1])",
    )
    spin.setSpecialValueText("dtype range")
    return spin


def set_combo_text(combo: QComboBox, text: str, *, what: str = "value") -> None:
    """Select ``text`` in ``combo`` or raise ValueError listing the choices."""
    index = combo.findText(text)
    if index < 0:
        choices = [combo.itemText(i) for i in range(combo.count())]
        raise ValueError(f"unknown {what} {text!r}; choose one of {choices}")
    combo.setCurrentIndex(index)


@contextlib.contextmanager
def blocked(*widgets: QWidget) -> Iterator[None]:
    """Block the Qt signals of ``widgets`` for the duration of the block."""
    previous = [widget.blockSignals(True) for widget in widgets]
    try:
        yield
    finally:
        for widget, was in zip(widgets, previous, strict=True):
            widget.blockSignals(was)


class _LayerTracker:
    """Calls ``self._refresh`` whenever the viewer's image layers or their names change."""

    def _track(self, viewer) -> None:
        self._viewer = viewer
        events = viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self._on_removed)
        events.moved.connect(self._refresh_later)
        for layer in viewer.layers:
            layer.events.name.connect(self._refresh_later)

    def _untrack(self) -> None:
        try:
            layers = self._viewer.layers
        except ValueError:
            # A viewer proxy whose viewer is gone (a widget destroyed at interpreter exit):
            # nothing is left to disconnect, and a slot raising here would abort Qt.
            return
        events = layers.events
        for emitter, callback in (
            (events.inserted, self._on_inserted),
            (events.removed, self._on_removed),
            (events.moved, self._refresh_later),
        ):
            with contextlib.suppress(Exception):
                emitter.disconnect(callback)
        for layer in layers:
            with contextlib.suppress(Exception):
                layer.events.name.disconnect(self._refresh_later)

    def _on_inserted(self, event) -> None:
        event.value.events.name.connect(self._refresh_later)
        self._refresh_later()

    def _on_removed(self, event) -> None:
        with contextlib.suppress(Exception):
            event.value.events.name.disconnect(self._refresh_later)
        self._refresh_later()

    def _refresh_later(self, *_) -> None:
        if is_alive(self):
            self._refresh()

    def _image_layers(self) -> list:
        return [layer for layer in self._viewer.layers if isinstance(layer, Image)]


class ImageLayerCombo(QComboBox, _LayerTracker):
    """A picker of the viewer's image layers that follows additions, removals and renames.

    The selection is kept by layer identity (``unique_id``), so renaming or reordering
    layers never silently switches the selected layer.
    """

    layer_changed = Signal(object)

    def __init__(self, viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self._track(viewer)
        self._refresh()
        self.currentIndexChanged.connect(lambda _: self.layer_changed.emit(self.layer))
        self.destroyed.connect(self._untrack_static(self))

    @staticmethod
    def _untrack_static(combo):
        untrack = combo._untrack
        return lambda *_: untrack()

    def _refresh(self) -> None:
        current = self.currentData()
        layers = self._image_layers()
        with blocked(self):
            self.clear()
            for layer in layers:
                self.addItem(layer.name, layer.unique_id)
            index = self.findData(current) if current is not None else -1
            if index < 0 and layers:
                # Nothing selected yet: start from the viewer's active image layer.
                active = self._viewer.layers.selection.active
                index = self.findData(active.unique_id) if isinstance(active, Image) else -1
                index = max(index, 0)
            self.setCurrentIndex(index)
        if self.currentData() != current:
            self.layer_changed.emit(self.layer)

    @property
    def layer(self):
        """The selected image layer, or None."""
        uid = self.currentData()
        return None if uid is None else find_layer(self._viewer, uid)

    @layer.setter
    def layer(self, value) -> None:
        """Select a layer, given as a layer or its name."""
        name = value if isinstance(value, str) else value.name
        set_combo_text(self, name, what="image layer")


class ImageLayerList(QListWidget, _LayerTracker):
    """A checklist of the viewer's image layers (several training images)."""

    def __init__(self, viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMaximumHeight(110)
        self._track(viewer)
        self._refresh()
        self.destroyed.connect(ImageLayerCombo._untrack_static(self))

    def _refresh(self) -> None:
        checked = set(self._checked_ids())
        self.clear()
        for layer in self._image_layers():
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer.unique_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.unique_id in checked else Qt.CheckState.Unchecked)
            self.addItem(item)

    def _checked_ids(self) -> list:
        return [
            self.item(row).data(Qt.ItemDataRole.UserRole)
            for row in range(self.count())
            if self.item(row).checkState() == Qt.CheckState.Checked
        ]

    @property
    def layers(self) -> list:
        """The checked image layers, in viewer order."""
        ids = self._checked_ids()
        return [layer for layer in (find_layer(self._viewer, uid) for uid in ids) if layer is not None]

    @layers.setter
    def layers(self, values: Iterable) -> None:
        """Check exactly ``values`` (layers or layer names)."""
        names = [value if isinstance(value, str) else value.name for value in values]
        known = {self.item(row).text() for row in range(self.count())}
        missing = [name for name in names if name not in known]
        if missing:
            raise ValueError(f"no image layer named {missing}; image layers: {sorted(known)}")
        for row in range(self.count()):
            item = self.item(row)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)


# --------------------------------------------------------------------------- panel layout
class _VerticalScrollArea(QScrollArea):
    """Scrolls up and down only: as wide as its contents need, as short as the room it gets."""

    def _with_content_width(self, hint, content_hint):
        hint.setWidth(content_hint.width() + self.verticalScrollBar().sizeHint().width())
        return hint

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        return hint if self.widget() is None else self._with_content_width(hint, self.widget().minimumSizeHint())

    def sizeHint(self):
        hint = super().sizeHint()
        return hint if self.widget() is None else self._with_content_width(hint, self.widget().sizeHint())


def scrolling_layout(panel: QWidget) -> QVBoxLayout:
    """Give ``panel`` a frameless, vertical scroll area and return the layout of its contents.

    Docked panels then shrink to the room the window has (a scroll bar appears)
    instead of forcing the window taller than the screen.
    """
    content = QWidget()
    area = _VerticalScrollArea()
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(content)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    return QVBoxLayout(content)


class ProgressBar(QProgressBar):
    """A determinate progress bar that repaints with the rest of the window.

    ``QProgressBar.setValue`` repaints at once; in a window holding napari's OpenGL
    canvas that recomposes the whole window then and there (tens of milliseconds with
    software OpenGL, in the middle of whatever slot set the value).
    """

    def setValue(self, value: int) -> None:
        self.setUpdatesEnabled(False)
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # an ordinary, deferred update


class Section(QWidget):
    """A titled group of form rows that folds away (collapsed by default): the fields
    most runs leave alone, so that a panel fits a small screen."""

    def __init__(self, title: str, parent: QWidget | None = None, *, expanded: bool = False) -> None:
        super().__init__(parent)
        self._toggle = QToolButton()
        self._toggle.setText(title)
        self._toggle.setCheckable(True)
        self._toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._toggle.setAutoRaise(True)
        self._body = QWidget()
        #: The rows of the section.
        self.form = QFormLayout(self._body)
        self.form.setContentsMargins(12, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._toggle)
        layout.addWidget(self._body)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._toggle.toggled.connect(self._show)
        self.expanded = expanded
        self._show(expanded)

    @property
    def expanded(self) -> bool:
        return self._toggle.isChecked()

    @expanded.setter
    def expanded(self, value: bool) -> None:
        self._toggle.setChecked(bool(value))

    def _show(self, shown: bool) -> None:
        self._body.setVisible(shown)
        self._toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


# --------------------------------------------------------------------------- closing
class CloseWatcher(QObject):
    """Calls ``on_close()`` when the panel it watches goes away.

    That is: the napari window holding the panel closes (``viewer.close()``, the
    window's close button once confirmed, quitting napari), the panel is taken out of
    its dock (its close button), or it is deleted. The panel then cancels and awaits
    its workers, so no thread outlives the viewer; ``on_close`` must be harmless to call
    twice and touch no Qt object of the panel (it may be gone). :meth:`watch_window` is
    called whenever the panel starts a worker: by then it is docked.
    """

    def __init__(self, panel: QWidget, on_close) -> None:
        super().__init__(panel)
        self._on_close = on_close
        self._window = None
        panel.installEventFilter(self)
        # Not through this object (the panel's children are deleted before it), and
        # without keeping the panel alive.
        method = weakref.WeakMethod(on_close)
        panel.destroyed.connect(lambda *_: method() is not None and method()())

    def watch_window(self) -> None:
        """Watch the main window the panel is docked in (if any) from now on."""
        window = self.parent().parentWidget()
        while window is not None and not isinstance(window, QMainWindow):
            window = window.parentWidget()
        watched = self._watched()
        if window is not None and window is not watched:
            if watched is not None and is_alive(watched):
                watched.removeEventFilter(self)
            # Weakly: the window's Python side holds the whole viewer.
            self._window = weakref.ref(window)
            window.installEventFilter(self)

    def _watched(self):
        return None if self._window is None else self._window()

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if watched is self._watched():
            # A program's close is final; a user's may still be cancelled in a dialog and
            # is final once the window hides. Minimising hides it spontaneously.
            if kind in (QEvent.Type.Close, QEvent.Type.Hide) and not event.spontaneous():
                self._on_close()
        elif kind == QEvent.Type.ParentChange and self._window is not None and watched.parentWidget() is None:
            self._on_close()  # taken out of its dock
        return False
