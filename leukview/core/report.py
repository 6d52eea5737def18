"""What the PDF report of a reviewed field says, without Qt.

:func:`build_report` gathers a :class:`ReportContent` (the differential and
blast percentage come from :mod:`leukview.core.calls`, the snapshot from
:func:`leukview.core.overlay.render_overlay`) and :func:`report_html` lays it
out as HTML. The viewer and ``leukview report`` both call them, so their
reports say the same; :func:`leukview.gui.report.write_pdf_report` only
prints that HTML to a PDF.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .analysis import Analysis, ModelRun
from .calibration import Calibration
from .calls import NON_LEUKOCYTE, class_colour, differential_count, display_name, flag_models
from .cells import Cell
from .overlay import render_overlay
from .session import current_user, now_iso

DISCLAIMER = (
    "LeukView is decision support, not a diagnosis. Its cell classes come from machine-learning "
    "models and classical image analysis, which make mistakes, especially on stains, microscopes "
    "and diseases unlike their training data. A qualified person must review the cells and the smear "
    "before any clinical decision; this report is valid only as reviewed and signed by that person."
)
#: Where the HTML refers to the snapshot; the renderer supplies the image under this name.
SNAPSHOT_URL = "leukview://snapshot"
#: The snapshot's longer side in pixels (enough for A4 at print resolution).
SNAPSHOT_MAX_SIDE = 2000
#: At most this many corrections are listed (the newest).
MAX_CORRECTIONS = 40


class AuditLike(Protocol):
    """An audit-log entry as the report reads it.

    Corrections are the entries with a ``cell`` whose ``before`` and
    ``after`` differ (read with ``getattr``, so entries without them are
    simply not corrections).
    """

    @property
    def when(self) -> str: ...

    @property
    def who(self) -> str: ...

    def describe(self) -> str: ...


@dataclass
class ReportContent:
    """Everything the report shows.

    Attributes
    ----------
    image_name : str
    width, height : int
        The image's size in pixels.
    cells : sequence of Cell
    models : sequence of ModelRun
    threshold : float
        Confidence threshold of the flags.
    calibration : Calibration
    analysed : str
        When the image was analysed (ISO 8601), or empty.
    audit : sequence of AuditLike
    reviewer : str
        Who made the report.
    created : str
        When the report was made (ISO 8601).
    snapshot : ndarray of uint8, shape (h, w, 3), optional
        RGB image with the overlays (:func:`leukview.core.overlay.render_overlay`).
    """

    image_name: str
    width: int
    height: int
    cells: Sequence[Cell]
    models: Sequence[ModelRun]
    threshold: float
    calibration: Calibration = field(default_factory=Calibration.unknown)
    analysed: str = ""
    audit: Sequence[AuditLike] = ()
    reviewer: str = ""
    created: str = ""
    snapshot: np.ndarray | None = None


def provider_text(provider: str) -> str:
    """A short, user-facing name of an onnxruntime execution provider (``CUDAExecutionProvider`` -> ``GPU (CUDA)``)."""
    return {
        "CPUExecutionProvider": "CPU",
        "CUDAExecutionProvider": "GPU (CUDA)",
        "TensorrtExecutionProvider": "GPU (TensorRT)",
        "DmlExecutionProvider": "GPU (DirectML)",
        "CoreMLExecutionProvider": "CoreML",
    }.get(provider, provider or "?")


def report_snapshot(
    image: np.ndarray,
    analysis: Analysis,
    threshold: float,
    *,
    heatmap: bool = False,
    max_side: int = SNAPSHOT_MAX_SIDE,
) -> np.ndarray:
    """The field with its overlays, its longer side at most ``max_side`` pixels.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The analysed RGB image (or a reduced copy of it).
    analysis : Analysis
    threshold : float
    heatmap : bool
        Blend the class-activation heatmap (off in reports unless asked).
    max_side : int

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
    """
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width, 1))
    if scale < 1.0:  # reduce first: the overlay is drawn at the size it is printed
        size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return render_overlay(image, analysis, threshold=threshold, heatmap=heatmap)


def build_report(
    analysis: Analysis,
    image: np.ndarray | None,
    *,
    audit: Sequence[AuditLike] = (),
    threshold: float,
    created: str | None = None,
    reviewer: str | None = None,
    image_name: str | None = None,
    analysed: str = "",
    heatmap: bool = False,
) -> ReportContent:
    """Gather the report of one analysed (and perhaps reviewed) field.

    Parameters
    ----------
    analysis : Analysis
        Cells with their reviews, the models that ran and the calibration.
    image : ndarray of uint8, shape (H, W, 3), optional
        The analysed image, for the snapshot (:func:`report_snapshot`); None: no snapshot.
    audit : sequence of AuditLike
        The session's audit log (its corrections are listed).
    threshold : float
        Confidence threshold of the flags (the session's).
    created, reviewer : str, optional
        Now and the system user when None.
    image_name : str, optional
        The file name of ``analysis.image`` when None.
    analysed : str
        When the analysis was made.
    heatmap : bool
        Blend the class-activation heatmap into the snapshot.

    Returns
    -------
    ReportContent
    """
    if image_name is None:
        image_name = Path(analysis.image).name if analysis.image else "image"
    snapshot = None if image is None else report_snapshot(image, analysis, threshold, heatmap=heatmap)
    return ReportContent(
        image_name=image_name,
        width=analysis.width,
        height=analysis.height,
        cells=analysis.cells,
        models=analysis.models,
        threshold=float(threshold),
        calibration=analysis.calibration,
        analysed=analysed,
        audit=tuple(audit),
        reviewer=current_user() if reviewer is None else reviewer,
        created=now_iso() if created is None else created,
        snapshot=snapshot,
    )


def corrections(audit: Sequence[AuditLike]) -> list[AuditLike]:
    """The entries that changed a cell's call, oldest first."""
    return [
        e
        for e in audit
        if getattr(e, "cell", None) is not None and getattr(e, "before", None) != getattr(e, "after", None)
    ]


def report_html(content: ReportContent, image_url: str = SNAPSHOT_URL) -> str:
    """The report as HTML that QTextDocument lays out (tables, no scripts, no external resources).

    Parameters
    ----------
    content : ReportContent
    image_url : str
        Where the snapshot is referred to (the renderer provides it under this name).

    Returns
    -------
    str
    """
    esc = html.escape
    diff = differential_count(content.cells, content.models, content.threshold)
    blast = diff.blast_percent
    cal = content.calibration
    pixel = esc(cal.describe()) if cal.known else "unknown (sizes in pixels)"
    reviewer = content.reviewer or current_user()
    created = content.created or now_iso()

    rows = []
    for name in diff.classes:
        count = diff.counts.get(name, 0)
        percent = diff.percent(name)
        style = " style='color:#777'" if name in NON_LEUKOCYTE else ""
        swatch = f"<span style='color:{class_colour(name)}'>■</span>"
        weight = "<b>{}</b>" if count else "{}"
        rows.append(
            f"<tr{style}><td>{swatch} {esc(display_name(name))}</td>"
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
        blast_text = (
            f"<b>{blast:.1f} %</b> of {diff.leukocytes} white cells "
            f"(calls by {esc(source)}, corrections included)"
        )

    if content.models:
        model_rows = "".join(
            f"<tr><td>{esc(m.name)}</td><td>{esc(m.version)}</td><td>{esc(provider_text(m.provider))}</td>"
            f"<td>{esc(', '.join(display_name(c) for c in m.classes))}</td></tr>"
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
            f"({diff.total - diff.reviewed} unreviewed, {diff.flagged} of them flagged for review).</p>"
        )
    changed = corrections(content.audit)
    if changed:
        audit_rows = "".join(
            f"<tr><td>{esc(str(e.when))}</td><td>{esc(str(e.who))}</td><td>{esc(e.describe())}</td></tr>"
            for e in changed[-MAX_CORRECTIONS:]
        )
        audit_html = (
            "<table border='1' cellspacing='0' cellpadding='2' width='100%' style='font-size:8pt'>"
            "<tr><th align='left'>When</th><th align='left'>Who</th><th align='left'>Change</th></tr>"
            f"{audit_rows}</table>"
        )
        if len(changed) > MAX_CORRECTIONS:
            audit_html += f"<p style='font-size:8pt'>The newest {MAX_CORRECTIONS} of {len(changed)} are listed.</p>"
    else:
        audit_html = "<p>No corrections.</p>"

    snapshot = ""
    if content.snapshot is not None and content.snapshot.size:
        h, w = content.snapshot.shape[:2]
        width = 640 if w >= h else int(640 * w / h * 0.75)
        snapshot = f"<p align='center'><img src='{esc(image_url)}' width='{width}'></p>"

    from .. import __version__

    return f"""
<html><body style="font-family:'DejaVu Sans',sans-serif; font-size:10pt">
<h2 style="margin-bottom:0">LeukView blood-smear report</h2>
<p style="color:#C62828; margin-top:2px"><b>Decision support only: not a diagnosis.</b></p>
<table cellspacing="0" cellpadding="2">
<tr><td><b>Image</b></td><td>{esc(content.image_name)} ({content.width} × {content.height} px)</td></tr>
<tr><td><b>Pixel size</b></td><td>{pixel}</td></tr>
<tr><td><b>Analysed</b></td><td>{esc(content.analysed or '—')}</td></tr>
<tr><td><b>Report</b></td><td>{esc(created)} by {esc(reviewer)}, LeukView {esc(__version__)}</td></tr>
<tr><td><b>Review</b></td><td>{review_state}; {len(changed)} correction(s);
confidence threshold {content.threshold:.0%}</td></tr>
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


__all__ = [
    "DISCLAIMER",
    "SNAPSHOT_URL",
    "AuditLike",
    "ReportContent",
    "build_report",
    "corrections",
    "provider_text",
    "report_html",
    "report_snapshot",
]
