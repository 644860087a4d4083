"""A dependency-free live plot of the training loss (log scale) and validation PSNR."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossCurve"]

LOSS_COLOUR = QColor(90, 170, 255)
PSNR_COLOUR = QColor(255, 170, 60)


class LossCurve(QWidget):
    """Plots ``(step, loss)`` points on a log axis and ``(step, psnr)`` on a right axis.

    Keeps at most ``max_points`` loss points (older ones are thinned by two), so a long
    run costs constant memory and drawing time.
    """

    def __init__(self, parent: QWidget | None = None, *, max_points: int = 2000) -> None:
        super().__init__(parent)
        self.max_points = max_points
        self.losses: list[tuple[int, float]] = []
        self.psnrs: list[tuple[int, float]] = []
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding)
        self.setToolTip(
            "Training loss (blue, log scale) and validation PSNR in dB (orange) of the averaged weights, "
            "which trail the loss early in a run"
        )

    def clear(self) -> None:
        self.losses.clear()
        self.psnrs.clear()
        self.update()

    def add_point(self, step: int, loss: float, psnr: float | None = None) -> None:
        if math.isfinite(loss) and loss > 0:
            self.losses.append((step, loss))
            if len(self.losses) > self.max_points:
                self.losses = self.losses[::2]
        if psnr is not None and math.isfinite(psnr) and (not self.psnrs or self.psnrs[-1][0] != step):
            if not self.psnrs or self.psnrs[-1][1] != psnr:
                self.psnrs.append((step, psnr))
        self.update()

    # ------------------------------------------------------------------ drawing
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.windowText().color()
        grid = QColor(text)
        grid.setAlpha(60)
        rect = QRectF(self.rect()).adjusted(46, 8, -40, -20)
        painter.setPen(QPen(grid, 1))
        painter.drawRect(rect)
        if not self.losses:
            painter.setPen(text)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss curve appears here while training")
            painter.end()
            return
        steps = [s for s, _ in self.losses] + [s for s, _ in self.psnrs]
        x0, x1 = min(steps), max(steps)
        x1 = x1 if x1 > x0 else x0 + 1
        logs = [math.log10(v) for _, v in self.losses]
        y0, y1 = min(logs), max(logs)
        if y1 - y0 < 1e-6:
            y0, y1 = y0 - 0.5, y1 + 0.5

        def to_x(step):
            return rect.left() + (step - x0) / (x1 - x0) * rect.width()

        def to_y(value, low, high):
            return rect.bottom() - (value - low) / (high - low) * rect.height()

        path = QPainterPath(QPointF(to_x(self.losses[0][0]), to_y(logs[0], y0, y1)))
        for (step, _), value in zip(self.losses[1:], logs[1:], strict=True):
            path.lineTo(QPointF(to_x(step), to_y(value, y0, y1)))
        painter.setPen(QPen(LOSS_COLOUR, 1.5))
        painter.drawPath(path)
        painter.setPen(text)
        painter.drawText(QRectF(0, rect.top() - 6, 44, 14), Qt.AlignmentFlag.AlignRight, f"{10**y1:.2g}")
        painter.drawText(QRectF(0, rect.bottom() - 8, 44, 14), Qt.AlignmentFlag.AlignRight, f"{10**y0:.2g}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 2, 80, 14), Qt.AlignmentFlag.AlignLeft, f"step {x0}")
        painter.drawText(
            QRectF(rect.right() - 80, rect.bottom() + 2, 80, 14), Qt.AlignmentFlag.AlignRight, f"step {x1}"
        )
        if self.psnrs:
            values = [v for _, v in self.psnrs]
            p0, p1 = min(values), max(values)
            if p1 - p0 < 0.5:
                p0, p1 = p0 - 0.25, p1 + 0.25
            painter.setPen(QPen(PSNR_COLOUR, 1.5))
            points = [QPointF(to_x(s), to_y(v, p0, p1)) for s, v in self.psnrs]
            for a, b in zip(points, points[1:], strict=False):
                painter.drawLine(a, b)
            for point in points:
                painter.drawEllipse(point, 2.5, 2.5)
            painter.drawText(QRectF(rect.right() + 3, rect.top() - 6, 40, 14), Qt.AlignmentFlag.AlignLeft, f"{p1:.1f}")
            painter.drawText(
                QRectF(rect.right() + 3, rect.bottom() - 8, 40, 14), Qt.AlignmentFlag.AlignLeft, f"{p0:.1f}"
            )
            painter.drawText(QRectF(rect.right() + 3, rect.center().y() - 7, 40, 14), Qt.AlignmentFlag.AlignLeft, "dB")
        painter.end()
