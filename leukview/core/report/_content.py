"""What the report shows (:class:`ReportContent`), gathered by :func:`build_report`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis import Analysis, ModelRun
from ..calibration import Calibration
from ..cells import Cell
from ..classes import active_classes
from ..domain import DomainCheck
from ..session import ReportFields, current_user, now_iso
from ._gallery import GalleryGroup, image_crops, report_gallery
from ._signoff import AuditLike, Signature, signature
from ._snapshot import report_snapshot

__all__ = ["ReportContent", "build_report", "corrections", "provider_text"]


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
    domain : DomainCheck, optional
        How unlike the training data the image's (or the case's) white cells
        are (``Analysis.domain``); the report warns near its top when it does.
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
    domain: DomainCheck | None = None

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
        domain=analysis.domain,
    )


def corrections(audit: Sequence[AuditLike]) -> list[AuditLike]:
    """The entries that changed a cell's call, oldest first."""
    return [
        e
        for e in audit
        if getattr(e, "cell", None) is not None and getattr(e, "before", None) != getattr(e, "after", None)
    ]
