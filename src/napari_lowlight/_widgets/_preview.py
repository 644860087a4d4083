"""Before and after: a crop as it is next to its restoration by the weights being trained."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QGridLayout, QLabel, QWidget

from ._common import is_alive
from ._state import TrainingPreview, TrainingStatus

__all__ = ["TrainingPreviewView"]

#: Side in screen pixels of each shown image (a smaller crop is enlarged, pixel for pixel).
SHOWN_SIZE = 128
#: Percentiles of the crop as it is that map to black and white, in both images.
DISPLAY_PERCENTILES = (1.0, 99.5)


def to_qimage(image: np.ndarray) -> QImage:
    """A QImage of an 8-bit grey (H, W) or colour (H, W, 3) array (a copy: Qt owns its pixels)."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    grey = image.ndim == 2
    image_format = QImage.Format.Format_Grayscale8 if grey else QImage.Format.Format_RGB888
    bytes_per_line = width * (1 if grey else 3)
    return QImage(image.data, width, height, bytes_per_line, image_format).copy()


def _colour_only(image: np.ndarray) -> np.ndarray:
    """A grey image as it is; a colour one (H, W, C) without its opacity channel."""
    return image[..., :3] if image.ndim == 3 else image


def _display_range(image: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(image, DISPLAY_PERCENTILES)
    # A flat crop has no range of its own: show it mid-grey rather than divide by zero.
    return (float(low), float(high)) if high > low else (float(low) - 0.5, float(low) + 0.5)


def _to_display(image: np.ndarray, display_range: tuple[float, float]) -> np.ndarray:
    """``image`` as 8 bits, ``display_range`` stretched to black..white."""
    low, high = display_range
    scaled = (np.asarray(image, dtype=np.float32) - low) * (255 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


class TrainingPreviewView(QWidget):
    """Shows ``status.preview``: its crop as it is (before) beside its latest restoration (after).

    Both use the display range of the crop as it is (its 1st and 99.5th percentiles),
    so a change of brightness shows as such. ``before`` and ``after`` are the 8-bit
    images shown (``after`` is None until the run's first validation).
    """

    def __init__(self, status: TrainingStatus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.before: np.ndarray | None = None
        self.after: np.ndarray | None = None
        self._before = QLabel()
        self._after = QLabel()
        for label in (self._before, self._after):
            label.setFixedSize(SHOWN_SIZE, SHOWN_SIZE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._caption = QLabel()
        self._caption.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("before"), 0, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(QLabel("after"), 0, 1, Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self._before, 1, 0)
        layout.addWidget(self._after, 1, 1)
        layout.addWidget(self._caption, 2, 0, 1, 2)
        status.events.preview.connect(self._show)
        self._show(status.preview)

    @property
    def caption(self) -> str:
        return self._caption.text()

    def _show(self, preview: TrainingPreview | None) -> None:
        if not is_alive(self):
            return
        if preview is None:
            self.before = self.after = None
            self._caption.setText("")
        else:
            before = _colour_only(preview.image)
            display_range = _display_range(before)
            self.before = _to_display(before, display_range)
            restored = preview.restored
            self.after = None if restored is None else _to_display(_colour_only(restored), display_range)
            self._caption.setText(preview.caption)
        self._set_image(self._before, self.before, "")
        self._set_image(self._after, self.after, "" if preview is None else "appears at the first validation")

    @staticmethod
    def _set_image(label: QLabel, image: np.ndarray | None, placeholder: str) -> None:
        if image is None:
            label.setPixmap(QPixmap())
            label.setText(placeholder)
            return
        pixmap = QPixmap.fromImage(to_qimage(image))
        label.setPixmap(
            pixmap.scaled(
                SHOWN_SIZE, SHOWN_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
            )
        )
