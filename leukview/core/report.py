"""What the PDF report of a reviewed field says, without Qt.

:func:`build_report` gathers a :class:`ReportContent`: the differential and
blast percentage from :mod:`leukview.core.calls` (rows in the class list's
clinical order, :func:`differential_rows`), a snapshot drawn for the page
(:func:`report_snapshot`: the whole field at one size whatever the image's,
labels that never overlap, no heatmap unless asked), the cells' images by
class (:func:`report_gallery`), the case fields and the sign-off
(:func:`signature`, from the audit log). :func:`report_blocks` lays it out as
HTML blocks that the renderer keeps whole on a page
(:func:`leukview.gui.report.write_pdf_report`); :func:`report_html` joins
them for a single page. The viewer and ``leukview report`` both call them, so
their reports say the same.

Sign-off follows CellaVision's rule: a case is signed only when no cell
flagged for review is left unreviewed (:func:`sign_off` refuses with the
count left); the signature is an audit entry, and any change to the review
after it makes the report a draft again.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .analysis import Analysis, ModelRun
from .calibration import Calibration
from .calls import (
    FLAG_COLOUR,
    Differential,
    DifferentialRow,
    call_cell,
    class_rgb,
    differential_count,
    differential_rows,
    display_name,
    flag_models,
    review_cells,
    review_classes,
    review_order,
)
from .cells import Cell
from .classes import abbreviation, active_classes
from .errors import SessionError
from .labels import LabelRequest, place_labels
from .preprocess import CropRule, crop_cell
from .session import EXPORT_ACTIONS, AuditAction, AuditEntry, ReportFields, current_user, now_iso

if TYPE_CHECKING:
    from .session import Session

DISCLAIMER = (
    "LeukView is decision support, not a diagnosis. Its cell classes come from machine-learning "
    "models and classical image analysis, which make mistakes, especially on stains, microscopes "
    "and diseases unlike their training data. A qualified person must review the cells and the smear "
    "before any clinical decision; this report is valid only as reviewed and signed by that person."
)
#: Where the HTML refers to the snapshot; the renderer supplies the image under this name.
SNAPSHOT_URL = "leukview://snapshot"
#: The snapshot's longer side in pixels, whatever the image's (a 224 px image is enlarged, a
#: large one reduced), so that its labels and outlines have one size on the page.
SNAPSHOT_SIDE = 1800
#: At most this many corrections are listed (the newest), this many per block.
MAX_CORRECTIONS = 40
CORRECTIONS_PER_BLOCK = 20
#: The cell images of the report: cut as the viewer's gallery cuts them, this many pixels a side.
GALLERY_RULE = CropRule(scale=1.4, min_side=24, background="keep")
GALLERY_SIDE = 112
#: At most this many images per class (the first in review order: flagged and least sure first).
MAX_GALLERY_PER_CLASS = 48


class AuditLike(Protocol):
    """An audit-log entry as the report reads it.

    Corrections are the entries with a ``cell`` whose ``before`` and
    ``after`` differ; the sign-off is an entry whose ``action`` is
    ``sign off`` (read with ``getattr``, so entries without them are simply
    neither).
    """

    @property
    def when(self) -> str: ...

    @property
    def who(self) -> str: ...

    def describe(self) -> str: ...


# ---------------------------------------------------------------- sign-off


class SignOffRefused(SessionError):
    """The case cannot be signed yet: flagged cells are left unreviewed.

    Attributes
    ----------
    remaining : int
        How many.
    """

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        cells = "cell is" if remaining == 1 else "cells are"
        super().__init__(
            f"cannot sign: {remaining} flagged {cells} not reviewed yet (every flagged cell must be "
            "accepted or reclassified first)"
        )


@dataclass(frozen=True)
class Signature:
    """Who signed the case and when, and whether the review is still as signed.

    Attributes
    ----------
    who, when : str
        From the audit log's ``sign off`` entry.
    changes_after : int
        Audit entries after it that change the review (exports do not).
    """

    who: str
    when: str
    changes_after: int = 0

    @property
    def valid(self) -> bool:
        """Nothing changed since the signature: the report is signed, not a draft."""
        return self.changes_after == 0


def signature(audit: Sequence[AuditLike]) -> Signature | None:
    """The last sign-off of an audit log (None when the case was never signed)."""
    last = None
    for index, entry in enumerate(audit):
        if getattr(entry, "action", None) is AuditAction.SIGN:
            last = index
    if last is None:
        return None
    entry = audit[last]
    later = [e for e in audit[last + 1 :] if getattr(e, "action", None) not in EXPORT_ACTIONS]
    return Signature(str(entry.who), str(entry.when), len(later))


def sign_off(session: Session, who: str | None, threshold: float) -> AuditEntry:
    """Sign a case: audited, refused while a flagged cell is unreviewed (:class:`SignOffRefused`).

    Parameters
    ----------
    session : Session
    who : str, optional
        The signer (the system user when None).
    threshold : float
        The confidence threshold the flags follow (the document's).

    Returns
    -------
    AuditEntry
        The ``sign off`` entry.
    """
    diff = differential_count(session.analysis.cells, session.analysis.models, threshold)
    if diff.flagged:
        raise SignOffRefused(diff.flagged)
    note = f"{diff.reviewed} of {diff.total} white cells reviewed, no flagged cell left"
    return session.log(AuditAction.SIGN, note=note, who=who or current_user())


def set_report_fields(session: Session, fields: ReportFields, who: str | None) -> AuditEntry | None:
    """Change the case fields of a session; audited (each change named); None when nothing changed."""
    fields.validate()
    changes = session.settings.report.changes(fields)
    if not changes:
        return None
    session.settings.report = dataclasses.replace(fields)
    return session.log(AuditAction.SET_REPORT_DETAILS, note="; ".join(changes), who=who)


# ---------------------------------------------------------------- content


@dataclass(frozen=True)
class GalleryCell:
    """One cell image of the report's gallery."""

    id: int
    crop: np.ndarray
    flagged: bool
    reviewed: bool


@dataclass(frozen=True)
class GalleryGroup:
    """The images of one class (or of the unclassified cells: ``name`` None)."""

    name: str | None
    total: int
    cells: tuple[GalleryCell, ...]

    @property
    def title(self) -> str:
        code = abbreviation(self.name) if self.name else "—"
        return f"{display_name(self.name)} ({code})"


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
        Who made the report (the system user).
    created : str
        When the report was made (ISO 8601).
    snapshot : ndarray of uint8, shape (h, w, 3), optional
        RGB image with the overlays (:func:`report_snapshot`).
    fields : ReportFields
        Patient, specimen, ordering physician, reviewer.
    heatmap : bool
        The snapshot has the class-activation maps (chosen for this report).
    gallery : sequence of GalleryGroup
        Cell images by class.
    gallery_note : str
        Why there are no cell images, when there are none.
    class_list : str
        The class list's name and source.
    field_text : str
        Which part of the image the snapshot shows, when not all of it.
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
    fields: ReportFields = field(default_factory=ReportFields)
    heatmap: bool = False
    gallery: Sequence[GalleryGroup] = ()
    gallery_note: str = ""
    class_list: str = ""
    field_text: str = ""

    @property
    def signature(self) -> Signature | None:
        return signature(self.audit)

    @property
    def signed(self) -> bool:
        sign = self.signature
        return sign is not None and sign.valid


def provider_text(provider: str) -> str:
    """A short, user-facing name of an onnxruntime execution provider (``CUDAExecutionProvider`` -> ``GPU (CUDA)``)."""
    return {
        "CPUExecutionProvider": "CPU",
        "CUDAExecutionProvider": "GPU (CUDA)",
        "TensorrtExecutionProvider": "GPU (TensorRT)",
        "DmlExecutionProvider": "GPU (DirectML)",
        "CoreMLExecutionProvider": "CoreML",
    }.get(provider, provider or "?")


# ---------------------------------------------------------------- snapshot

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_OTHER_KINDS = {"rbc": (230, 80, 80), "platelet": (160, 60, 200)}


def _moved(cell: Cell, sx: float, sy: float, ox: float, oy: float) -> Cell:
    """The cell in the snapshot's pixels (contour, box, centroid, maps), its call unchanged."""
    factor = np.array([sx, sy])
    origin = np.array([ox, oy])
    contour = (np.asarray(cell.contour, np.float64).reshape(-1, 2) - origin) * factor
    x0, y0, x1, y1 = cell.bbox
    predictions = {}
    for name, pred in cell.predictions.items():
        box = pred.cam_box
        if box is not None:
            box = ((box[0] - ox) * sx, (box[1] - oy) * sy, (box[2] - ox) * sx, (box[3] - oy) * sy)
        predictions[name] = dataclasses.replace(pred, cam_box=box)
    area = cell.measurements.get("area")
    measurements = dict(cell.measurements)
    if area:
        measurements["area"] = area * sx * sy  # the diameter follows (the heatmap's margin)
    return dataclasses.replace(
        cell,
        contour=contour,
        bbox=(
            int(np.floor((x0 - ox) * sx)), int(np.floor((y0 - oy) * sy)),
            int(np.ceil((x1 - ox) * sx)), int(np.ceil((y1 - oy) * sy)),
        ),  # fmt: skip
        centroid=((cell.centroid[0] - ox) * sx, (cell.centroid[1] - oy) * sy),
        measurements=measurements,
        predictions=predictions,
    )


def snapshot_label_text(cell: Cell, models: Sequence[ModelRun], threshold: float) -> str:
    """The snapshot's label of a cell: its id and class abbreviation (``12 Neut``), ``?`` when flagged.

    The abbreviation is the table's, so a reader finds the class without its colour.
    A reviewed cell's tick is drawn after the text.
    """
    call = call_cell(cell, models, threshold)
    text = f"{cell.id} {abbreviation(call.label)}" if call.label else f"{cell.id}"
    return f"? {text}" if call.needs_review else text


def report_snapshot(
    image: np.ndarray,
    analysis: Analysis,
    threshold: float,
    *,
    heatmap: bool = False,
    side: int = SNAPSHOT_SIDE,
    region: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The field with its outlines and labels, drawn at one size for the page.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        What the snapshot shows: the analysed image, a reduced copy of it, or of ``region``.
    analysis : Analysis
    threshold : float
    heatmap : bool
        Blend the class-activation maps (off in reports unless chosen for the report).
    side : int
        The snapshot's longer side: ``image`` is scaled up or down to it, and
        outlines and labels are drawn for that size, so that they look the same
        on the page whatever the image's size.
    region : (x, y, width, height), optional
        The part of the analysed image that ``image`` shows (all of it when None).

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
        Labels (:func:`snapshot_label_text`) never overlap and never leave the
        image; a label that fits nowhere gives way to a smaller one (the id), or is left out.
    """
    from .explain import field_heatmap, heatmap_overlay

    height, width = image.shape[:2]
    rx, ry, rw, rh = region if region is not None else (0, 0, analysis.width, analysis.height)
    scale = side / max(height, width, 1)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(image[..., :3]), size, interpolation=interpolation)
    out_h, out_w = out.shape[:2]
    sx, sy = out_w / max(rw, 1), out_h / max(rh, 1)
    inside = [c for c in analysis.cells if _overlaps(c.bbox, (rx, ry, rx + rw, ry + rh))]
    moved = {c.id: _moved(c, sx, sy, rx, ry) for c in inside}
    models = analysis.models
    if heatmap and models:
        calls = {c.id: call_cell(c, models, threshold) for c in inside}
        for run in models:  # each cell's map from the model behind its call
            chosen = [moved[c.id] for c in inside if (calls[c.id].model or models[0].name) == run.name]
            heat = field_heatmap(chosen, run.name, out.shape[:2])
            if heat.any():
                out = heatmap_overlay(out, heat, 0.45)
    unit = side / 1800.0
    line = max(1, int(round(2.0 * unit)))
    requests: list[LabelRequest] = []
    texts: dict[int, tuple[str, str, tuple[int, int, int], bool, bool]] = {}
    font_scale = 0.95 * unit  # about 9 pt on the page
    thickness = max(1, int(round(2.0 * unit)))
    (_, text_h), base = cv2.getTextSize("0", _FONT, font_scale, thickness)
    box_h = text_h + base + int(round(8 * unit))
    for cell in inside:
        shown = moved[cell.id]
        points = np.round(np.asarray(shown.contour).reshape(-1, 2)).astype(np.int32).reshape(-1, 1, 2)
        if cell.kind != "wbc" and cell.review.label is None:
            cv2.polylines(out, [points], True, _OTHER_KINDS.get(cell.kind, (255, 255, 255)), 1, cv2.LINE_AA)
            continue
        call = call_cell(cell, models, threshold)
        colour = class_rgb(call.label)
        if call.needs_review:  # flagged: an amber halo as well as the ? mark
            cv2.polylines(out, [points], True, _hex(FLAG_COLOUR), line + 4, cv2.LINE_AA)
        cv2.polylines(out, [points], True, colour, line + (1 if call.reviewed else 0), cv2.LINE_AA)
        text = snapshot_label_text(cell, models, threshold)
        short = f"{cell.id}"
        widths = []
        for candidate in (text, short):
            (tw, _), _ = cv2.getTextSize(candidate, _FONT, font_scale, thickness)
            tick = box_h if call.reviewed else 0
            widths.append((tw + int(round(16 * unit)) + tick, box_h))
        texts[cell.id] = (text, short, colour, call.needs_review, call.reviewed)
        priority = 0.0 if call.needs_review else 1.0
        requests.append(LabelRequest(cell.id, shown.bbox, widths, priority + cell.id * 1e-6))
    for placed in place_labels(requests, (0, 0, out_w, out_h), gap=2.0 * unit, pad=2.0 * unit):
        text, short, colour, flagged, reviewed = texts[placed.key]
        _draw_tag(out, placed.rect, short if placed.form else text, colour, flagged, reviewed,
                  font_scale, thickness, unit)  # fmt: skip
    return out


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _overlaps(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    return box[0] < region[2] and region[0] < box[2] and box[1] < region[3] and region[1] < box[3]


def _draw_tag(
    out: np.ndarray, rect: tuple[float, float, float, float], text: str, colour: tuple[int, int, int],
    flagged: bool, reviewed: bool, font_scale: float, thickness: int, unit: float,
) -> None:  # fmt: skip
    # a dark tag with a class-coloured stripe, as in the viewer: readable on any stain
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (20, 20, 26), -1)
    if flagged:
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), _hex(FLAG_COLOUR), max(1, int(round(2 * unit))))
    stripe = max(2, int(round(5 * unit)))
    pad = max(1, int(round(3 * unit)))
    cv2.rectangle(out, (x0 + pad, y0 + pad), (x0 + pad + stripe, y1 - 1 - pad), colour, -1)
    (_, text_h), base = cv2.getTextSize("0", _FONT, font_scale, thickness)
    tx = x0 + pad + stripe + pad * 2
    ty = y0 + (y1 - y0 + text_h) // 2
    ink = _hex(FLAG_COLOUR) if flagged else (255, 255, 255)
    cv2.putText(out, text, (tx, ty), _FONT, font_scale, ink, thickness, cv2.LINE_AA)
    if reviewed:  # Hershey fonts are ASCII only: the tick is drawn
        (tw, _), _ = cv2.getTextSize(text + " ", _FONT, font_scale, thickness)
        h = text_h
        x, y = tx + tw, ty
        tick = np.array([[x, y - 0.45 * h], [x + 0.35 * h, y], [x + h, y - h]]).round().astype(np.int32)
        cv2.polylines(out, [tick.reshape(-1, 1, 2)], False, (90, 220, 120), thickness + 1, cv2.LINE_AA)


# ---------------------------------------------------------------- gallery


def report_gallery(
    cells: Sequence[Cell],
    models: Sequence[ModelRun],
    threshold: float,
    crop: Callable[[Cell], np.ndarray | None],
    *,
    per_class: int = MAX_GALLERY_PER_CLASS,
    side: int = GALLERY_SIDE,
) -> list[GalleryGroup]:
    """The review cells' images grouped by their call, classes in clinical order, unclassified last.

    Within a class, cells come in review order (flagged and least sure first);
    at most ``per_class`` of them (:attr:`GalleryGroup.total` says how many there are).
    """
    lab = active_classes()
    groups: dict[str | None, list[Cell]] = {}
    calls = {c.id: call_cell(c, models, threshold) for c in review_cells(cells)}
    for cell in review_order(cells, models, threshold):
        label = calls[cell.id].label
        groups.setdefault(None if label is None else lab.canonical(label), []).append(cell)
    order = [n for n in review_classes(models) if n in groups]
    order += [n for n in groups if n is not None and n not in order]
    names: list[str | None] = [*order, None] if None in groups else list(order)
    result = []
    for name in names:
        members = groups[name]
        shown = []
        for cell in members[:per_class]:
            array = crop(cell)
            if array is None or array.size == 0:
                continue
            image = cv2.resize(np.ascontiguousarray(array[..., :3]), (side, side), interpolation=cv2.INTER_AREA)
            call = calls[cell.id]
            shown.append(GalleryCell(cell.id, image, call.needs_review, call.reviewed))
        result.append(GalleryGroup(name, len(members), tuple(shown)))
    return result


def image_crops(image: np.ndarray, region: tuple[int, int, int, int] | None = None) -> Callable[[Cell], np.ndarray]:
    """Cut the report's cell images out of ``image`` (showing ``region`` of the analysed image)."""
    if region is None:
        return lambda cell: crop_cell(image, cell, GALLERY_RULE, GALLERY_SIDE)
    rx, ry, rw, rh = region
    sx, sy = image.shape[1] / max(rw, 1), image.shape[0] / max(rh, 1)
    return lambda cell: crop_cell(image, _moved(cell, sx, sy, rx, ry), GALLERY_RULE, GALLERY_SIDE)


# ---------------------------------------------------------------- building


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
    fields: ReportFields | None = None,
    region: tuple[int, int, int, int] | None = None,
    analysed_field: tuple[int, int, int, int] | None = None,
    crop: Callable[[Cell], np.ndarray | None] | None = None,
) -> ReportContent:
    """Gather the report of one analysed (and perhaps reviewed) field.

    Parameters
    ----------
    analysis : Analysis
        Cells with their reviews, the models that ran and the calibration.
    image : ndarray of uint8, shape (H, W, 3), optional
        The analysed image (or a reduced copy, or of ``region``), for the snapshot
        (:func:`report_snapshot`) and the cell images; None: neither.
    audit : sequence of AuditLike
        The session's audit log (its corrections are listed, its sign-off printed).
    threshold : float
        Confidence threshold of the flags (the session's).
    created, reviewer : str, optional
        Now and the system user when None.
    image_name : str, optional
        The file name of ``analysis.image`` when None.
    analysed : str
        When the analysis was made.
    heatmap : bool
        Blend the class-activation maps into the snapshot (chosen for this report only).
    fields : ReportFields, optional
        Patient, specimen, ordering physician and reviewer.
    region : (x, y, width, height), optional
        The part of the analysed image that ``image`` shows (all of it when None).
    analysed_field : (x, y, width, height), optional
        The field analysed, when not the whole image: the snapshot shows it only.
    crop : callable, optional
        A cell's image at any size (the viewer reads it from a large image); cut
        from ``image`` when None.

    Returns
    -------
    ReportContent
    """
    if image_name is None:
        image_name = Path(analysis.image).name if analysis.image else "image"
    field_text = ""
    if image is not None and analysed_field is not None and region is None:
        fx, fy, fw, fh = analysed_field
        if (fw, fh) != (analysis.width, analysis.height):
            sx, sy = image.shape[1] / max(analysis.width, 1), image.shape[0] / max(analysis.height, 1)
            image = image[int(fy * sy) : int(np.ceil((fy + fh) * sy)), int(fx * sx) : int(np.ceil((fx + fw) * sx))]
            region = analysed_field
    if region is not None and (region[2], region[3]) != (analysis.width, analysis.height):
        x, y, w, h = region
        field_text = f"the analysed field, x={x}, y={y}, {w} × {h} px"
    snapshot = None
    if image is not None and image.size:
        snapshot = report_snapshot(image, analysis, threshold, heatmap=heatmap, region=region)
    if crop is None and image is not None and image.size:
        crop = image_crops(image, region)
    gallery: list[GalleryGroup] = []
    note = ""
    if crop is not None:
        gallery = report_gallery(analysis.cells, analysis.models, threshold, crop)
    else:
        note = "The image was not available: no cell images."
    lab = active_classes()
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
        fields=fields if fields is not None else ReportFields(),
        heatmap=heatmap and snapshot is not None,
        gallery=gallery,
        gallery_note=note,
        class_list=f"{lab.name} ({len(lab)} classes, {lab.source})",
        field_text=field_text,
    )


def corrections(audit: Sequence[AuditLike]) -> list[AuditLike]:
    """The entries that changed a cell's call, oldest first."""
    return [
        e
        for e in audit
        if getattr(e, "cell", None) is not None and getattr(e, "before", None) != getattr(e, "after", None)
    ]


# ---------------------------------------------------------------- layout


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
    from .. import __version__

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
        f"<table cellspacing='0' cellpadding='2' width='100%'>{table}</table>{warn}"
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
    flaggers = flag_models(content.models)
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


__all__ = [
    "CORRECTIONS_PER_BLOCK",
    "DISCLAIMER",
    "GALLERY_RULE",
    "GALLERY_SIDE",
    "MAX_CORRECTIONS",
    "MAX_GALLERY_PER_CLASS",
    "SNAPSHOT_SIDE",
    "SNAPSHOT_URL",
    "AuditLike",
    "DifferentialRow",
    "GalleryCell",
    "GalleryGroup",
    "ReportBlock",
    "ReportContent",
    "SignOffRefused",
    "Signature",
    "build_report",
    "corrections",
    "differential_rows",
    "image_crops",
    "page_footer",
    "page_header",
    "provider_text",
    "report_blocks",
    "report_gallery",
    "report_html",
    "report_snapshot",
    "set_report_fields",
    "sign_off",
    "signature",
    "snapshot_label_text",
    "status_text",
    "when_text",
]
