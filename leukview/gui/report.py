"""The report and snapshot exports that need Qt: the PDF and a PNG of the scene.

What the report says is decided in :mod:`leukview.core.report` (Qt-free, shared
with ``leukview report``); this module only prints its HTML to a PDF.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)
from PySide6.QtWidgets import QApplication, QGraphicsScene

from leukview import __version__
from leukview.core.errors import LeukViewError
from leukview.core.report import (
    DISCLAIMER,
    SNAPSHOT_URL,
    ReportContent,
    build_report,
    report_html,
)


def render_scene(scene: QGraphicsScene, source: QRectF, max_side: int = 4096) -> QImage:
    """Render a scene rectangle to an RGB image at up to one pixel per image pixel.

    Parameters
    ----------
    scene : QGraphicsScene
    source : QRectF
        Scene (image pixel) rectangle to render.
    max_side : int
        The longer side of the result is at most this many pixels.

    Returns
    -------
    QImage (Format_RGB32)
    """
    scale = min(1.0, max_side / max(source.width(), source.height(), 1.0))
    width = max(1, int(round(source.width() * scale)))
    height = max(1, int(round(source.height() * scale)))
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    scene.render(painter, QRectF(0, 0, width, height), source, Qt.AspectRatioMode.IgnoreAspectRatio)
    painter.end()
    return image


def save_png(image: QImage, path: str | os.PathLike[str]) -> Path:
    """Write a QImage as PNG atomically; LeukViewError when it cannot be written."""
    from leukview.core.atomic import atomic_write_bytes

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise LeukViewError("could not encode the PNG", path)
    buffer.close()
    try:
        return atomic_write_bytes(path, bytes(data.data()))
    except OSError as exc:
        raise LeukViewError(f"cannot write the file ({exc.strerror or exc})", path) from exc


def snapshot_qimage(snapshot: np.ndarray) -> QImage:
    """An RGB uint8 array (H, W, 3) as a QImage that owns its pixels."""
    rgb = np.ascontiguousarray(snapshot[..., :3], dtype=np.uint8)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def ensure_application() -> QGuiApplication:
    """The running Qt application, or a new one (a headless report needs one for its fonts).

    A QApplication, not a bare QGuiApplication, so that widgets can still be
    made later in the same process.
    """
    app = QGuiApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "leukview"])
        _KEEP.append(app)
    return app  # type: ignore[return-value]


_KEEP: list[QGuiApplication] = []  # the application must outlive this call


def build_document(content: ReportContent) -> QTextDocument:
    """:func:`leukview.core.report.report_html` laid out by Qt, the snapshot attached."""
    document = QTextDocument()
    document.setDocumentMargin(0)
    if content.snapshot is not None and content.snapshot.size:
        document.addResource(
            QTextDocument.ResourceType.ImageResource, QUrl(SNAPSHOT_URL), snapshot_qimage(content.snapshot)
        )
    document.setHtml(report_html(content, SNAPSHOT_URL))
    return document


def write_pdf_report(path: str | os.PathLike[str], content: ReportContent) -> Path:
    """Write the report as an A4 PDF, atomically.

    Parameters
    ----------
    path : path-like
    content : ReportContent
        From :func:`leukview.core.report.build_report`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LeukViewError
        When the file cannot be written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise LeukViewError(f"cannot write the report ({exc.strerror or exc})", path) from exc
    try:
        writer = QPdfWriter(tmp)
        writer.setTitle(f"LeukView report: {content.image_name}")
        writer.setCreator(f"LeukView {__version__}")
        writer.setPageLayout(
            QPageLayout(
                QPageSize(QPageSize.PageSizeId.A4),
                QPageLayout.Orientation.Portrait,
                QMarginsF(15, 15, 15, 15),
                QPageLayout.Unit.Millimeter,
            )
        )
        document = build_document(content)
        document.print_(writer)
        del writer  # QPdfWriter finishes the file when it is destroyed
        if Path(tmp).stat().st_size == 0:
            raise LeukViewError("the PDF came out empty", path)
        os.replace(tmp, path)
    except OSError as exc:
        raise LeukViewError(f"cannot write the report ({exc.strerror or exc})", path) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def render_report_page(content: ReportContent, width: int = 800) -> QImage:
    """The report laid out on one tall image (to look at it without a PDF viewer)."""
    document = build_document(content)
    document.setTextWidth(width)
    size = document.size()
    image = QImage(int(size.width()), int(size.height()), QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    document.drawContents(painter, QRectF(0, 0, size.width(), size.height()))
    painter.end()
    return image


__all__ = [
    "DISCLAIMER",
    "ReportContent",
    "build_document",
    "build_report",
    "ensure_application",
    "render_report_page",
    "render_scene",
    "report_html",
    "save_png",
    "snapshot_qimage",
    "write_pdf_report",
]
