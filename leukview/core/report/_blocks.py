"""The report as HTML blocks that the renderer keeps whole on a page (:func:`report_blocks`)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..calls import (
    Differential,
    DifferentialRow,
    blast_callers,
    differential_count,
    differential_rows,
    display_name,
)
from ..session import current_user, now_iso
from ._content import ReportContent, corrections, provider_text
from ._gallery import MAX_GALLERY_PER_CLASS, GalleryGroup

__all__ = [
    "CORRECTIONS_PER_BLOCK",
    "DISCLAIMER",
    "MAX_CORRECTIONS",
    "SNAPSHOT_URL",
    "ReportBlock",
    "domain_html",
    "page_footer",
    "page_header",
    "report_blocks",
    "report_html",
    "status_text",
    "when_text",
]

DISCLAIMER = (
    "LeukView is decision support, not a diagnosis. Its cell classes come from machine-learning "
    "models and classical image analysis, which make mistakes, especially on stains, microscopes "
    "and diseases unlike their training data. A qualified person must review the cells and the smear "
    "before any clinical decision; this report is valid only as reviewed and signed by that person."
)
#: Where the HTML refers to the snapshot; the renderer supplies the image under this name.
SNAPSHOT_URL = "leukview://snapshot"
#: At most this many corrections are listed (the newest), this many per block.
MAX_CORRECTIONS = 40
CORRECTIONS_PER_BLOCK = 20


@dataclass(frozen=True)
class ReportBlock:
    """A part of the report the renderer keeps whole on one page.

    Attributes
    ----------
    kind : {'html', 'snapshot', 'gallery'}
        ``snapshot``: the image, fitted to the space left (``html`` is its caption);
        ``gallery``: one class's cell images (``group``), laid out by the renderer.
    html : str
    keep_with_previous : bool
        Moved to the next page together with the block before it, never alone.
    new_page : bool
        Starts a page.
    group : GalleryGroup, optional
    """

    kind: str
    html: str = ""
    keep_with_previous: bool = False
    new_page: bool = False
    group: GalleryGroup | None = None


_TABLE = "border='1' cellspacing='0' cellpadding='2' width='100%'"


def when_text(iso: str) -> str:
    """An ISO 8601 time as a report prints it: ``2024-05-02 10:14 (UTC+02:00)``."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    offset = moment.strftime("%z")
    zone = f" (UTC{offset[:3]}:{offset[3:]})" if offset else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def status_text(content: ReportContent) -> str:
    """``SIGNED by jdoe on …`` or ``DRAFT (not signed)`` (the header and every page's footer say it)."""
    sign = content.signature
    if sign is None:
        return "DRAFT (not signed)"
    if not sign.valid:
        return f"DRAFT (signed by {sign.who} on {when_text(sign.when)}, changed since)"
    return f"SIGNED by {sign.who} on {when_text(sign.when)}"


def page_header(content: ReportContent) -> str:
    """The line above every page."""
    parts = [f"LeukView report · {content.image_name}"]
    if content.fields.patient_id:
        parts.append(f"Patient {content.fields.patient_id}")
    if content.fields.specimen_id:
        parts.append(f"Specimen {content.fields.specimen_id}")
    return " · ".join(parts)


def page_footer(content: ReportContent, page: int, pages: int) -> str:
    """The line below every page: the sign-off status and the page number."""
    return f"{status_text(content)} · page {page} of {pages}"


def domain_html(content: ReportContent) -> str:
    """The boxed warning when the image's (or the case's) cells are unlike the training data, else ``''``.

    From the recorded :class:`~leukview.core.domain.DomainCheck` (``content.domain``):
    its :data:`~leukview.core.domain.WARNING` and its numbers.
    """
    check = content.domain
    if check is None or check.warning is None:
        return ""
    esc = html.escape
    return (
        "<table cellspacing='0' cellpadding='6' width='100%' style='margin-top:4px'>"
        "<tr><td style='background:#FFF3E0; border:2px solid #E65100; color:#BF360C'>"
        f"<b>Warning: {esc(check.warning)}.</b><br>"
        f"{esc(check.details())}. Review every cell: this differential is not validated for these cells."
        "</td></tr></table>"
    )


def _case_html(content: ReportContent, diff: Differential) -> str:
    esc = html.escape
    f = content.fields
    sign = content.signature
    if content.signed:
        assert sign is not None
        status = f"<b style='color:#1B5E20'>Signed</b> by {esc(sign.who)} on {esc(when_text(sign.when))}"
    elif sign is not None:
        status = (
            f"<b style='color:#B71C1C'>DRAFT</b>: signed by {esc(sign.who)} on {esc(when_text(sign.when))}, but the review "
            f"changed after ({sign.changes_after} change(s)); it must be signed again"
        )
    else:
        status = "<b style='color:#B71C1C'>DRAFT: not signed</b>"
    blank = "<span style='color:#999'>not given</span>"

    def value(text: str) -> str:
        return esc(text) if text else blank

    cal = content.calibration
    pixel = esc(cal.describe()) if cal.known else "unknown (sizes in pixels)"
    from ... import __version__

    changed = corrections(content.audit)
    rows = [
        ("Patient ID", value(f.patient_id)), ("Specimen ID", value(f.specimen_id)),
        ("Ordering physician", value(f.physician)), ("Reviewer", value(f.reviewer or (sign.who if sign else ""))),
        ("Status", status),
        ("Image", f"{esc(content.image_name)} ({content.width} × {content.height} px)"
                  + (f"; snapshot of {esc(content.field_text)}" if content.field_text else "")),
        ("Pixel size", pixel), ("Analysed", esc(when_text(content.analysed) or "—")),
        ("Report", f"{esc(when_text(content.created or now_iso()))} by {esc(content.reviewer or current_user())}, "
                   f"LeukView {esc(__version__)}"),
        ("Review", f"{diff.reviewed} of {diff.total} white cells reviewed; {len(changed)} correction(s); "
                   f"confidence threshold {content.threshold:.0%}"),
        ("Class list", esc(content.class_list or "—")),
    ]  # fmt: skip
    table = "".join(f"<tr><td width='22%'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    warn = ""
    if diff.total and diff.reviewed < diff.total:
        warn = (
            f"<p style='color:#B26A00'><b>Not every cell has been reviewed</b> "
            f"({diff.total - diff.reviewed} unreviewed, {diff.flagged} of them flagged for review).</p>"
        )
    return (
        "<h2 style='margin-bottom:0'>LeukView blood-smear report</h2>"
        "<p style='color:#C62828; margin-top:2px'><b>Decision support only: not a diagnosis.</b></p>"
        f"{domain_html(content)}<table cellspacing='0' cellpadding='2' width='100%'>{table}</table>{warn}"
    )


def _differential_html(content: ReportContent, diff: Differential) -> str:
    esc = html.escape
    counted, apart = differential_rows(diff)

    def name_cell(row: DifferentialRow) -> str:
        return f"<td><span style='color:{row.colour}'>■</span> {esc(row.display)}</td><td>{esc(row.abbreviation)}</td>"

    rows = []
    for row in counted:
        count = f"<b>{row.count}</b>" if row.count else "0"
        percent = "" if row.percent is None else f"{row.percent:.1f}"
        rows.append(f"<tr>{name_cell(row)}<td align='right'>{count}</td><td align='right'>{percent}</td></tr>")
    total = f"{'100.0' if diff.leukocytes else ''}"
    rows.append(
        f"<tr style='background:#EEEEEE'><td><b>White cells (total)</b></td><td></td>"
        f"<td align='right'><b>{diff.leukocytes}</b></td><td align='right'>{total}</td></tr>"
    )
    if apart:
        rows.append("<tr><td colspan='4'><i>Counted apart (not in the white-cell total)</i></td></tr>")
        for row in apart:
            extra = "" if row.per_100_wbc is None else f"{row.per_100_wbc:.1f} / 100 WBC"
            rows.append(
                f"<tr style='color:#555'>{name_cell(row)}<td align='right'>{row.count}</td>"
                f"<td align='right'>{extra}</td></tr>"
            )
    if diff.atypical:
        rows.append(
            f"<tr><td>Unclassified (review): atypical</td><td></td><td align='right'>{diff.atypical}</td><td></td></tr>"
        )
    if diff.unclassified:
        rows.append(f"<tr><td>Unclassified</td><td></td><td align='right'>{diff.unclassified}</td><td></td></tr>")
    blast = diff.blast_percent
    flaggers = blast_callers(content.models)
    if blast is None:
        blast_text = "not determined (no blast model and no reviewed cell)"
    else:
        source = ", ".join(f"{m.name} {m.version}" for m in flaggers) or "the class calls, corrections included"
        blast_text = f"<b>{blast:.1f} %</b> of {diff.leukocytes} white cells ({esc(source)})"
    apart_names = ", ".join(r.display for r in apart) or "none"
    return (
        "<h3>Differential count</h3>"
        f"<table {_TABLE}>"
        "<tr><th align='left' width='46%'>Class</th><th align='left' width='14%'>Abbr.</th>"
        "<th align='right' width='14%'>Count</th><th align='right' width='26%'>% of WBC</th></tr>"
        f"{''.join(rows)}</table>"
        f"<p style='font-size:8pt; color:#555'>Counted apart: {esc(apart_names)}. A differential is usually "
        f"based on 100 or 200 white cells; this one counts {diff.leukocytes}.</p>"
        f"<p><b>Blast percentage:</b> {blast_text}</p>"
    )


def _models_html(content: ReportContent) -> str:
    esc = html.escape
    if not content.models:
        return (
            "<h3>Models</h3><p>No model was installed: cells were segmented by LeukView and classified by "
            "the reviewer.</p>"
        )
    model_rows = "".join(
        f"<tr><td>{esc(m.name)}</td><td>{esc(m.version)}</td><td>{esc(provider_text(m.provider))}</td>"
        f"<td>{esc(', '.join(display_name(c) for c in m.classes))}</td></tr>"
        for m in content.models
    )
    return (
        f"<h3>Models</h3><table {_TABLE}>"
        "<tr><th align='left'>Model</th><th align='left'>Version</th><th align='left'>Ran on</th>"
        f"<th align='left'>Classes</th></tr>{model_rows}</table>"
    )


def _corrections_blocks(content: ReportContent) -> list[ReportBlock]:
    esc = html.escape
    changed = corrections(content.audit)
    if not changed:
        return [ReportBlock("html", "<h3>Corrections (audit log)</h3><p>No corrections.</p>")]
    listed = changed[-MAX_CORRECTIONS:]
    blocks = []
    for start in range(0, len(listed), CORRECTIONS_PER_BLOCK):
        chunk = listed[start : start + CORRECTIONS_PER_BLOCK]
        body = "".join(
            f"<tr><td>{esc(str(e.when))}</td><td>{esc(str(e.who))}</td><td>{esc(e.describe())}</td></tr>"
            for e in chunk
        )
        heading = "<h3>Corrections (audit log)</h3>" if start == 0 else ""
        note = ""
        if start + CORRECTIONS_PER_BLOCK >= len(listed) and len(changed) > MAX_CORRECTIONS:
            note = f"<p style='font-size:8pt'>The newest {MAX_CORRECTIONS} of {len(changed)} are listed.</p>"
        blocks.append(
            ReportBlock(
                "html",
                f"{heading}<table {_TABLE} style='font-size:8pt'><tr><th align='left'>When</th>"
                f"<th align='left'>Who</th><th align='left'>Change</th></tr>{body}</table>{note}",
            )
        )
    return blocks


def _signature_html(content: ReportContent) -> str:
    esc = html.escape
    sign = content.signature
    if content.signed:
        assert sign is not None
        line = (
            f"<p style='margin-top:10px'><b>Reviewed and signed</b> by <b>{esc(sign.who)}</b> on "
            f"<b>{esc(when_text(sign.when))}</b> (audited; every flagged cell was reviewed before signing).</p>"
        )
    else:
        why = "not signed" if sign is None else "changed after it was signed"
        line = (
            f"<p style='margin-top:10px; color:#B71C1C'><b>DRAFT: {why}.</b> Sign the case in LeukView "
            "(File ▸ PDF report and sign-off, Ctrl+P) once every flagged cell is reviewed.</p>"
            "<p style='margin-top:14px'>Reviewed and signed: ______________________________ &nbsp; "
            "Date: ______________</p>"
        )
    return f"<h3>Disclaimer</h3><p style='border:1px solid #C62828; padding:6px'>{esc(DISCLAIMER)}</p>{line}"


def report_blocks(content: ReportContent) -> list[ReportBlock]:
    """The report in the order it is printed, as blocks the renderer keeps whole.

    Case and image, then the differential table (one block: never split over
    two pages), the snapshot, the models, the corrections, the disclaimer with
    the signature (kept with the block before it: never alone on a page), then
    the cell images by class, from a new page.
    """
    diff = differential_count(content.cells, content.models, content.threshold)
    blocks = [
        ReportBlock("html", _case_html(content, diff)),
        ReportBlock("html", _differential_html(content, diff)),
    ]
    if content.snapshot is not None and content.snapshot.size:
        caption = "Outlines and labels: the cell's id and class (abbreviations as in the table); ? flagged for review."
        if content.heatmap:
            caption += " Heatmap: where the model behind each call looked (chosen for this report)."
        blocks.append(ReportBlock("snapshot", f"<p style='font-size:8pt; color:#555'>{html.escape(caption)}</p>"))
    blocks.append(ReportBlock("html", _models_html(content)))
    blocks.extend(_corrections_blocks(content))
    blocks.append(ReportBlock("html", _signature_html(content), keep_with_previous=True))
    groups = [g for g in content.gallery if g.cells]
    if groups:
        blocks.append(
            ReportBlock(
                "html",
                "<h3>Cell images by class</h3><p style='font-size:8pt; color:#555'>Each image is labelled with its "
                "cell id (as on the snapshot); ? flagged, ✓ reviewed. At most "
                f"{MAX_GALLERY_PER_CLASS} per class, in review order.</p>",
                new_page=True,
            )
        )
        for index, group in enumerate(groups):
            blocks.append(ReportBlock("gallery", group=group, keep_with_previous=index == 0))
    elif content.gallery_note:
        blocks.append(ReportBlock("html", f"<p style='font-size:8pt; color:#555'>{html.escape(content.gallery_note)}</p>"))
    return blocks


def report_html(content: ReportContent, image_url: str = SNAPSHOT_URL) -> str:
    """The report's text blocks as one HTML page (the snapshot as an image; cell images as a count).

    Parameters
    ----------
    content : ReportContent
    image_url : str
        Where the snapshot is referred to (the renderer provides it under this name).

    Returns
    -------
    str
        HTML that QTextDocument lays out (tables, no scripts, no external resources).
    """
    parts = []
    for block in report_blocks(content):
        if block.kind == "snapshot":
            parts.append(f"<p align='center'><img src='{html.escape(image_url)}' width='640'></p>{block.html}")
        elif block.kind == "gallery" and block.group is not None:
            group = block.group
            ids = ", ".join(str(c.id) for c in group.cells)
            parts.append(f"<p><b>{html.escape(group.title)}</b>: {group.total} cell(s): {ids}</p>")
        else:
            parts.append(block.html)
    return (
        "<html><body style=\"font-family:'DejaVu Sans',sans-serif; font-size:9pt\">"
        + "".join(parts)
        + "</body></html>"
    )
