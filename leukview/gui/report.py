"""The report and snapshot exports that need Qt: the PDF and a PNG of the scene.

What the report says is decided in :mod:`leukview.core.report` (Qt-free, shared
with ``leukview report``); this module lays its blocks out on A4 pages
(:class:`ReportLayout`: a block is never split over two pages, the signature
never alone on one, the snapshot fitted whole into the space left, the cell
images by class in a grid) and prints them to a PDF.

Length (~630 lines): the A4 layout (paging rules) and the report dialog are the two
Qt halves of one export; what the report says is in core.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPaintDevice,
    QPainter,
    QPdfWriter,
    QPen,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGraphicsScene,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from leukview import __version__
from leukview.core.calls import class_colour
from leukview.core.errors import LeukViewError
from leukview.core.report import (
    DISCLAIMER,
    SNAPSHOT_URL,
    GalleryGroup,
    ReportBlock,
    ReportContent,
    build_report,
    page_footer,
    page_header,
    report_blocks,
    report_html,
    when_text,
)
from leukview.core.session import REPORT_FIELDS, ReportFields, current_user

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument


class PdfExporter(Protocol):
    """What :func:`report_dialog` needs of the window (gui.exports' mixin), named without importing it."""

    document: ReviewDocument

    def export_pdf(self, path: str | None = None, heatmap: bool = False) -> Path | None: ...


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
    """:func:`leukview.core.report.report_html` laid out by Qt as one page, the snapshot attached."""
    document = QTextDocument()
    document.setDocumentMargin(0)
    if content.snapshot is not None and content.snapshot.size:
        document.addResource(
            QTextDocument.ResourceType.ImageResource, QUrl(SNAPSHOT_URL), snapshot_qimage(content.snapshot)
        )
    document.setHtml(report_html(content, SNAPSHOT_URL))
    return document


# ---------------------------------------------------------------- pages

MM_PER_INCH = 25.4
PAGE_MM = (210.0, 297.0)  # A4 portrait
MARGIN_MM = 15.0
HEADER_MM = 7.0
#: The snapshot takes at most this share of a page's text height (the rest follows it).
SNAPSHOT_MAX_SHARE = 0.62
#: ...and goes to the next page when less than this share is left.
SNAPSHOT_MIN_SHARE = 0.35
THUMB_MM = 22.0
THUMB_GAP_MM = 2.5
STYLE = "font-family:'DejaVu Sans',sans-serif; font-size:9pt"


@dataclass
class _Item:
    """Something placed on a page: an HTML block, the snapshot, or rows of a class's cell images."""

    kind: str
    height: float
    document: QTextDocument | None = None
    image_rect: QRectF | None = None
    caption: QTextDocument | None = None
    group: GalleryGroup | None = None
    rows: tuple[int, int] = (0, 0)  # gallery: first row, end row
    continued: bool = False
    y: float = 0.0


class ReportLayout:
    """The report's pages on a paint device: blocks kept whole, the signature never alone.

    Parameters
    ----------
    content : ReportContent
    device : QPaintDevice
        Where the pages are drawn (a QPdfWriter, or a QImage of one page): its
        resolution sets the sizes (A4 at that resolution) and the text's layout.
    """

    def __init__(self, content: ReportContent, device: QPaintDevice) -> None:
        self.content = content
        self.dpi = float(device.logicalDpiY())
        self.device = device
        self.page_w = self.mm(PAGE_MM[0])
        self.page_h = self.mm(PAGE_MM[1])
        self.left = self.mm(MARGIN_MM)
        self.width = self.page_w - 2 * self.left
        self.top = self.mm(MARGIN_MM + HEADER_MM)
        self.bottom = self.page_h - self.mm(MARGIN_MM + HEADER_MM)
        self.text_h = self.bottom - self.top
        self.thumb = self.mm(THUMB_MM)
        self.gap = self.mm(THUMB_GAP_MM)
        self.columns = max(1, int((self.width + self.gap) // (self.thumb + self.gap)))
        self.pages: list[list[_Item]] = self._paginate(report_blocks(content))

    def mm(self, value: float) -> float:
        return value * self.dpi / MM_PER_INCH

    # -- measuring

    def _document(self, html_text: str) -> QTextDocument:
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.documentLayout().setPaintDevice(self.device)
        font = QFont("DejaVu Sans")
        font.setPointSizeF(9.0)
        document.setDefaultFont(font)
        document.setHtml(f"<html><body style=\"{STYLE}\">{html_text}</body></html>")
        document.setTextWidth(self.width)
        return document

    def _gallery_row_h(self) -> float:
        return self.thumb + self.mm(4.5) + self.gap

    def _gallery_header_h(self) -> float:
        return self.mm(7.0)

    # -- paginating

    def _paginate(self, blocks: list[ReportBlock]) -> list[list[_Item]]:
        pages: list[list[_Item]] = [[]]
        y = self.top

        def new_page() -> None:
            nonlocal y
            pages.append([])
            y = self.top

        def put(item: _Item) -> None:
            nonlocal y
            item.y = y
            pages[-1].append(item)
            y += item.height + self.mm(2.0)

        for block in blocks:
            if block.new_page and pages[-1]:
                new_page()
            if block.kind == "gallery" and block.group is not None:
                y = self._put_gallery(block, pages, y, new_page, put)
                continue
            if block.kind == "snapshot":
                item = self._snapshot_item(block, self.bottom - y)
                if item is None:
                    new_page()
                    item = self._snapshot_item(block, self.text_h)
                assert item is not None
                put(item)
                continue
            document = self._document(block.html)
            item = _Item("html", document.size().height(), document=document)
            if y + item.height > self.bottom and pages[-1]:
                previous = pages[-1][-1] if block.keep_with_previous else None
                if previous is not None and previous.kind == "html" and previous.height + item.height <= self.text_h:
                    pages[-1].pop()  # the signature never goes alone: the block before goes with it
                    new_page()
                    put(previous)
                else:
                    new_page()
            put(item)
        return [page for page in pages if page]

    def _snapshot_item(self, block: ReportBlock, space: float) -> _Item | None:
        snapshot = self.content.snapshot
        assert snapshot is not None
        caption = self._document(block.html)
        room = min(space, self.text_h * SNAPSHOT_MAX_SHARE) - caption.size().height() - self.mm(2.0)
        if space < self.text_h * SNAPSHOT_MIN_SHARE or room <= 0:
            return None
        h, w = snapshot.shape[:2]
        scale = min(self.width / w, room / h)  # the whole image, never cut
        rect = QRectF(self.left + (self.width - w * scale) / 2.0, 0.0, w * scale, h * scale)
        return _Item("snapshot", rect.height() + self.mm(1.5) + caption.size().height(), image_rect=rect, caption=caption)

    def _put_gallery(self, block: ReportBlock, pages: list[list[_Item]], y: float, new_page, put) -> float:  # noqa: ANN001
        group = block.group
        assert group is not None
        rows = -(-len(group.cells) // self.columns)
        start = 0
        continued = False
        while start < rows:
            space = self.bottom - y
            fit = int((space - self._gallery_header_h()) // self._gallery_row_h())
            if fit <= 0 or (start == 0 and fit < min(rows, 2) and pages[-1]):
                new_page()
                y = self.top
                continue
            end = min(rows, start + fit)
            height = self._gallery_header_h() + (end - start) * self._gallery_row_h()
            item = _Item("gallery", height, group=group, rows=(start, end), continued=continued)
            put(item)
            y = item.y + item.height + self.mm(2.0)
            start, continued = end, True
        return y

    # -- drawing

    def draw_page(self, painter: QPainter, index: int) -> None:
        content = self.content
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        small = QFont("DejaVu Sans")
        small.setPointSizeF(7.5)
        painter.setFont(small)
        painter.setPen(QColor("#555555"))
        header = QRectF(self.left, self.mm(MARGIN_MM), self.width, self.mm(HEADER_MM - 2))
        painter.drawText(header, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop), page_header(content))
        painter.setPen(QPen(QColor("#BBBBBB"), self.mm(0.2)))
        painter.drawLine(QPointF(self.left, header.bottom()), QPointF(self.left + self.width, header.bottom()))
        footer = QRectF(self.left, self.bottom + self.mm(2.0), self.width, self.mm(HEADER_MM - 2))
        painter.setPen(QColor("#1B5E20") if content.signed else QColor("#B71C1C"))
        painter.drawText(
            footer, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop), page_footer(content, index + 1, len(self.pages))
        )
        for item in self.pages[index]:
            if item.kind == "html" and item.document is not None:
                painter.save()
                painter.translate(self.left, item.y)
                item.document.drawContents(painter)
                painter.restore()
            elif item.kind == "snapshot" and item.image_rect is not None and content.snapshot is not None:
                rect = QRectF(item.image_rect)
                rect.moveTop(item.y)
                painter.drawImage(rect, snapshot_qimage(content.snapshot))
                painter.setPen(QPen(QColor("#777777"), self.mm(0.2)))
                painter.drawRect(rect)
                if item.caption is not None:
                    painter.save()
                    painter.translate(self.left, rect.bottom() + self.mm(1.5))
                    item.caption.drawContents(painter)
                    painter.restore()
            elif item.kind == "gallery" and item.group is not None:
                self._draw_gallery(painter, item)
        painter.restore()

    def _draw_gallery(self, painter: QPainter, item: _Item) -> None:
        group = item.group
        assert group is not None
        colour = QColor(class_colour(group.name)) if group.name else QColor("#777777")
        title_font = QFont("DejaVu Sans")
        title_font.setPointSizeF(9.5)
        title_font.setBold(True)
        painter.setFont(title_font)
        swatch = QRectF(self.left, item.y + self.mm(1.0), self.mm(4.0), self.mm(4.0))
        painter.fillRect(swatch, colour)
        painter.setPen(QColor("#111111"))
        shown = len(group.cells)
        more = f", {shown} shown" if shown < group.total else ""
        title = f"{group.title}: {group.total} cell{'s' if group.total != 1 else ''}{more}"
        if item.continued:
            title += " (continued)"
        painter.drawText(
            QRectF(swatch.right() + self.mm(2.0), item.y, self.width, self._gallery_header_h()),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), title,
        )  # fmt: skip
        caption_font = QFont("DejaVu Sans")
        caption_font.setPointSizeF(7.0)
        start, end = item.rows
        for index, cell in enumerate(group.cells[start * self.columns : end * self.columns]):
            row, col = divmod(index, self.columns)
            x = self.left + col * (self.thumb + self.gap)
            y = item.y + self._gallery_header_h() + row * self._gallery_row_h()
            rect = QRectF(x, y, self.thumb, self.thumb)
            painter.drawImage(rect, snapshot_qimage(cell.crop))
            painter.setPen(QPen(colour, self.mm(0.8)))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(self.mm(0.4), self.mm(0.4), -self.mm(0.4), -self.mm(0.4)))
            painter.setFont(caption_font)
            mark = " ?" if cell.flagged else (" ✓" if cell.reviewed else "")
            painter.setPen(QColor("#B26A00") if cell.flagged else QColor("#222222"))
            painter.drawText(
                QRectF(x, y + self.thumb, self.thumb, self.mm(4.5)),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter), f"{cell.id}{mark}",
            )  # fmt: skip


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
        writer.setResolution(300)
        writer.setPageLayout(
            QPageLayout(
                QPageSize(QPageSize.PageSizeId.A4),
                QPageLayout.Orientation.Portrait,
                QMarginsF(0, 0, 0, 0),
                QPageLayout.Unit.Millimeter,
            )
        )
        layout = ReportLayout(content, writer)
        painter = QPainter(writer)
        try:
            for index in range(len(layout.pages)):
                if index:
                    writer.newPage()
                layout.draw_page(painter, index)
        finally:
            painter.end()
        del writer  # QPdfWriter finishes the file when it is destroyed
        if Path(tmp).stat().st_size == 0:
            raise LeukViewError("the PDF came out empty", path)
        os.replace(tmp, path)
    except OSError as exc:
        raise LeukViewError(f"cannot write the report ({exc.strerror or exc})", path) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def render_report_pages(content: ReportContent, dpi: float = 96.0) -> list[QImage]:
    """The report's A4 pages as images (the PDF's layout, at ``dpi``)."""
    probe = QImage(8, 8, QImage.Format.Format_RGB32)
    dots = int(round(dpi / 0.0254))
    probe.setDotsPerMeterX(dots)
    probe.setDotsPerMeterY(dots)
    layout = ReportLayout(content, probe)
    pages = []
    for index in range(len(layout.pages)):
        image = QImage(int(round(layout.page_w)), int(round(layout.page_h)), QImage.Format.Format_RGB32)
        image.setDotsPerMeterX(dots)
        image.setDotsPerMeterY(dots)
        image.fill(QColor("white"))
        painter = QPainter(image)
        layout.draw_page(painter, index)
        painter.end()
        pages.append(image)
    return pages


def render_report_page(content: ReportContent, width: int = 800) -> QImage:
    """The report's pages one below the other, ``width`` pixels wide (to look at it without a PDF viewer)."""
    dpi = width / (PAGE_MM[0] / MM_PER_INCH)
    pages = render_report_pages(content, dpi)
    height = sum(p.height() for p in pages) + 8 * (len(pages) - 1)
    image = QImage(max(p.width() for p in pages), height, QImage.Format.Format_RGB32)
    image.fill(QColor("#888888"))
    painter = QPainter(image)
    y = 0
    for page in pages:
        painter.drawImage(0, y, page)
        y += page.height() + 8
    painter.end()
    if image.width() != width:  # the resolution is whole dots per metre
        image = image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
    return image


# ---------------------------------------------------------------- the report dialog


class ReportDialog(QDialog):
    """The case fields, the sign-off and this report's options, before the PDF is written.

    Parameters
    ----------
    document : ReviewDocument
        Its case fields are edited (audited when they change); :meth:`sign` asks it
        to sign, which it refuses while flagged cells are left (the count is shown).
    """

    WRITE = 2  # the dialog's result when the PDF is to be written

    def __init__(self, document: ReviewDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report and sign-off")
        self.document = document
        current = document.settings.report
        form = QFormLayout()
        self.editors: dict[str, QLineEdit] = {}
        for name, label in REPORT_FIELDS:
            editor = QLineEdit(getattr(current, name))
            editor.setMaxLength(200)
            editor.setObjectName(name)
            form.addRow(label, editor)
            self.editors[name] = editor
        if not self.editors["reviewer"].text():
            self.editors["reviewer"].setPlaceholderText(document.reviewer or current_user())
        self.heatmap = QCheckBox("Show the class-activation heatmap in this report's snapshot")
        self.heatmap.setToolTip("Off unless chosen here, for this report only (the view's heatmap is not used)")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("signStatus")
        self.sign_button = QPushButton("Sign off")
        self.sign_button.setToolTip("Sign the case: allowed once every flagged cell is reviewed (audited)")
        self.sign_button.clicked.connect(self.sign)
        buttons = QDialogButtonBox()
        self.write_button = buttons.addButton("Write PDF…", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self._write)
        buttons.rejected.connect(self._close)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.sign_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.heatmap)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.update_status()

    def fields(self) -> ReportFields:
        return ReportFields(**{name: editor.text() for name, editor in self.editors.items()})

    def apply_fields(self) -> None:
        """Give the document the fields as typed (audited when they changed)."""
        self.document.set_report_fields(self.fields())

    def signer(self) -> str:
        return self.editors["reviewer"].text().strip() or self.document.reviewer or current_user()

    def update_status(self) -> None:
        diff = self.document.differential()
        sign = self.document.signature()
        if sign is not None and sign.valid:
            self.status.setText(f"<b style='color:#1B5E20'>Signed</b> by {sign.who} on {when_text(sign.when)}.")
        elif diff.flagged:
            cells = "cell is" if diff.flagged == 1 else "cells are"
            self.status.setText(
                f"<b style='color:#B71C1C'>Draft.</b> {diff.flagged} flagged {cells} not reviewed yet: "
                "the case can be signed once every flagged cell is accepted or reclassified."
            )
        elif sign is not None:
            self.status.setText(
                f"<b style='color:#B71C1C'>Draft.</b> Signed by {sign.who} on {when_text(sign.when)}, "
                f"but the review changed since ({sign.changes_after} change(s)): sign again."
            )
        else:
            self.status.setText("<b style='color:#B71C1C'>Draft.</b> Every flagged cell is reviewed: ready to sign.")
        self.sign_button.setEnabled(not diff.flagged and not (sign is not None and sign.valid))

    def sign(self) -> bool:
        """Sign as the reviewer named (the system user when none); False with the reason when refused."""
        try:
            self.apply_fields()
            self.document.sign(self.signer())
        except LeukViewError as exc:  # SignOffRefused: the flagged cells left
            self.status.setText(f"<b style='color:#B71C1C'>Not signed:</b> {exc.reason}")
            return False
        self.update_status()
        return True

    def _write(self) -> None:
        try:
            self.apply_fields()
        except LeukViewError as exc:
            self.status.setText(f"<b style='color:#B71C1C'>{exc.reason}</b>")
            return
        self.done(self.WRITE)

    def _close(self) -> None:
        with contextlib.suppress(LeukViewError):  # what cannot be kept is said when writing
            self.apply_fields()
        self.reject()


def reportable(document: ReviewDocument) -> bool:
    """Whether there is a review to report or export: the image's, or an open case's.

    A case is reported whole (its pooled cells) once any of its fields is
    analysed, whichever field is shown.
    """
    from leukview.core.document import CaseDocument

    if document.session is not None:
        return True
    return (isinstance(document, CaseDocument) and document.case is not None
            and len(document.pending()) < len(document.case.images))


def report_dialog(window: PdfExporter, parent: QWidget | None = None) -> Path | None:
    """Ask for the case fields and the sign-off, then write the PDF (the window's export)."""
    if not reportable(window.document):
        return None
    dialog = ReportDialog(window.document, parent)
    if dialog.exec() != ReportDialog.WRITE:
        return None
    return window.export_pdf(heatmap=dialog.heatmap.isChecked())


__all__ = [
    "DISCLAIMER",
    "ReportContent",
    "ReportDialog",
    "ReportLayout",
    "build_document",
    "build_report",
    "ensure_application",
    "render_report_page",
    "render_report_pages",
    "render_scene",
    "report_dialog",
    "report_html",
    "reportable",
    "save_png",
    "snapshot_qimage",
    "write_pdf_report",
]
