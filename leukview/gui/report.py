"""Exports that need Qt: a PNG snapshot with overlays and the PDF report."""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)
from PySide6.QtWidgets import QGraphicsScene

from leukview import __version__
from leukview.core.analysis import ModelRun
from leukview.core.cells import Cell
from leukview.core.errors import LeukViewError
from leukview.core.export import (
    NON_LEUKOCYTE,
    blast_percentage,
    differential_count,
    flag_models,
    is_flagged,
)
from leukview.core.session import AuditEntry, current_user, now_iso

from .cellinfo import class_colour, pretty, provider_text

DISCLAIMER = (
    "LeukView is decision support, not a diagnosis. Its cell classes come from machine-learning "
    "models and classical image analysis, which make mistakes, especially on stains, microscopes "
    "and diseases unlike their training data. A qualified person must review the cells and the smear "
    "before any clinical decision; this report is valid only as reviewed and signed by that person."
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


@dataclass
class ReportContent:
    """Everything the PDF report shows."""

    image_name: str
    width: int
    height: int
    cells: Sequence[Cell]
    models: Sequence[ModelRun]
    threshold: float
    pixel_size_um: float | None = None
    pixel_size_source: str = ""
    analysed: str = ""
    audit: Sequence[AuditEntry] = ()
    snapshot: QImage | None = None
    reviewer: str = ""
    created: str = ""


def report_html(content: ReportContent, image_url: str = "leukview://snapshot") -> str:
    """The report as HTML for QTextDocument (tables, no scripts, no external resources)."""
    esc = html.escape
    diff = differential_count(content.cells, content.models)
    blast = blast_percentage(content.cells, content.models)
    flagged_left = sum(1 for c in content.cells if is_flagged(c, content.models, content.threshold))
    pixel = (
        f"{content.pixel_size_um:.4g} µm/px ({esc(content.pixel_size_source)})"
        if content.pixel_size_um
        else "unknown (sizes in pixels)"
    )
    reviewer = content.reviewer or current_user()
    created = content.created or now_iso()

    rows = []
    for name in diff.classes:
        count = diff.counts.get(name, 0)
        percent = diff.percent(name)
        style = " style='color:#777'" if name in NON_LEUKOCYTE else ""
        swatch = f"<span style='color:{class_colour(name).name()}'>■</span>"
        weight = "<b>{}</b>" if count else "{}"
        rows.append(
            f"<tr{style}><td>{swatch} {esc(pretty(name))}</td>"
            f"<td align='right'>{weight.format(count)}</td>"
            f"<td align='right'>{'' if percent is None else f'{percent:.1f}'}</td></tr>"
        )
    rows.append(
        f"<tr><td><b>White cells (total)</b></td><td align='right'><b>{diff.leukocytes}</b></td>"
        f"<td align='right'>{'100.0' if diff.leukocytes else ''}</td></tr>"
    )
    if diff.unclassified:
        rows.append(f"<tr><td>Unclassified</td><td align='right'>{diff.unclassified}</td><td></td></tr>")

    flaggers = flag_models(content.models)
    if blast is None:
        blast_text = "not determined (no blast model and no reviewed cell)"
    else:
        source = ", ".join(f"{m.name} {m.version}" for m in flaggers) or "reviewer labels only"
        blast_text = f"<b>{blast:.1f} %</b> of {diff.leukocytes} white cells (calls by {esc(source)}, corrections included)"

    if content.models:
        model_rows = "".join(
            f"<tr><td>{esc(m.name)}</td><td>{esc(m.version)}</td><td>{esc(provider_text(m.provider))}</td>"
            f"<td>{esc(', '.join(pretty(c) for c in m.classes))}</td></tr>"
            for m in content.models
        )
        models_html = (
            "<table border='1' cellspacing='0' cellpadding='3' width='100%'>"
            "<tr><th align='left'>Model</th><th align='left'>Version</th><th align='left'>Ran on</th>"
            f"<th align='left'>Classes</th></tr>{model_rows}</table>"
        )
    else:
        models_html = "<p>No model was installed: cells were segmented by LeukView and classified by the reviewer.</p>"

    review_state = f"{diff.reviewed} of {diff.total} white cells reviewed"
    warn = ""
    if diff.total and diff.reviewed < diff.total:
        warn = (
            f"<p style='color:#B26A00'><b>Not every cell has been reviewed</b> "
            f"({diff.total - diff.reviewed} unreviewed, {flagged_left} of them with low model confidence).</p>"
        )
    corrections = [e for e in content.audit if e.cell is not None and e.before != e.after][-40:]
    if corrections:
        audit_rows = "".join(
            f"<tr><td>{esc(e.when)}</td><td>{esc(e.who)}</td><td>{esc(e.action)}</td><td>{e.cell}</td>"
            f"<td>{esc(pretty(e.before) if e.before else '—')} → {esc(pretty(e.after) if e.after else '—')}</td>"
            f"<td>{esc((e.model or '') + ' ' + (e.model_version or ''))}</td></tr>"
            for e in corrections
        )
        audit_html = (
            "<table border='1' cellspacing='0' cellpadding='2' width='100%' style='font-size:8pt'>"
            "<tr><th align='left'>When</th><th align='left'>Who</th><th align='left'>Action</th>"
            "<th align='left'>Cell</th><th align='left'>Change</th><th align='left'>Model</th></tr>"
            f"{audit_rows}</table>"
        )
    else:
        audit_html = "<p>No corrections.</p>"

    snapshot = ""
    if content.snapshot is not None and not content.snapshot.isNull():
        w, h = content.snapshot.width(), content.snapshot.height()
        width = 640 if w >= h else int(640 * w / h * 0.75)
        snapshot = f"<p align='center'><img src='{image_url}' width='{width}'></p>"

    return f"""
<html><body style="font-family:'DejaVu Sans',sans-serif; font-size:10pt">
<h2 style="margin-bottom:0">LeukView blood-smear report</h2>
<p style="color:#C62828; margin-top:2px"><b>Decision support only: not a diagnosis.</b></p>
<table cellspacing="0" cellpadding="2">
<tr><td><b>Image</b></td><td>{esc(content.image_name)} ({content.width} × {content.height} px)</td></tr>
<tr><td><b>Pixel size</b></td><td>{pixel}</td></tr>
<tr><td><b>Analysed</b></td><td>{esc(content.analysed or '—')}</td></tr>
<tr><td><b>Report</b></td><td>{esc(created)} by {esc(reviewer)}, LeukView {esc(__version__)}</td></tr>
<tr><td><b>Review</b></td><td>{review_state}; {len(corrections)} correction(s)</td></tr>
</table>
{warn}
{snapshot}
<h3>Differential count</h3>
<table border="1" cellspacing="0" cellpadding="3" width="60%">
<tr><th align="left">Class</th><th align="right">Count</th><th align="right">% of WBC</th></tr>
{''.join(rows)}
</table>
<p style="font-size:8pt; color:#555">Erythroblasts, platelets and artefacts are counted but are not part of the
white-cell total. A differential is usually based on 100 or 200 white cells; this one counts {diff.leukocytes}.</p>
<p><b>Blast percentage:</b> {blast_text}</p>
<h3>Models</h3>
{models_html}
<h3>Corrections (audit log)</h3>
{audit_html}
<h3>Disclaimer</h3>
<p style="border:1px solid #C62828; padding:6px">{esc(DISCLAIMER)}</p>
<p style="margin-top:18px">Reviewed and signed: ______________________________ &nbsp; Date: ______________</p>
</body></html>
"""


def build_document(content: ReportContent) -> QTextDocument:
    document = QTextDocument()
    document.setDocumentMargin(0)
    if content.snapshot is not None:
        document.addResource(
            QTextDocument.ResourceType.ImageResource, QUrl("leukview://snapshot"), content.snapshot
        )
    document.setHtml(report_html(content))
    return document


def write_pdf_report(path: str | os.PathLike[str], content: ReportContent) -> Path:
    """Write the report as an A4 PDF, atomically.

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
    "render_report_page",
    "render_scene",
    "report_html",
    "save_png",
    "write_pdf_report",
]
