"""What the PDF report of a reviewed field says, without Qt.

:func:`build_report` gathers a :class:`ReportContent`: the differential and
blast percentage from :mod:`leukview.core.calls` (rows in the class list's
clinical order, :func:`differential_rows`), a snapshot drawn for the page
(:func:`report_snapshot`: the whole field at one size whatever the image's,
labels that never overlap, no heatmap unless asked), the cells' images by
class (:func:`report_gallery`), the case fields and the sign-off
(:func:`signature`, from the audit log), and the image's or the case's
domain check (:func:`domain_html`: a boxed warning near the top when its
cells are unlike the training data). :func:`report_blocks` lays it out as
HTML blocks that the renderer keeps whole on a page
(:func:`leukview.gui.report.write_pdf_report`); :func:`report_html` joins
them for a single page. The viewer and ``leukview report`` both call them, so
their reports say the same.

Sign-off follows CellaVision's rule: a case is signed only when no cell
flagged for review is left unreviewed (:func:`sign_off` refuses with the
count left); the signature is an audit entry, and any change to the review
after it makes the report a draft again.
"""

from ..calls import DifferentialRow, differential_rows
from ._blocks import (
    CORRECTIONS_PER_BLOCK,
    DISCLAIMER,
    MAX_CORRECTIONS,
    SNAPSHOT_URL,
    ReportBlock,
    domain_html,
    page_footer,
    page_header,
    report_blocks,
    report_html,
    status_text,
    when_text,
)
from ._content import ReportContent, build_report, corrections, provider_text
from ._gallery import (
    GALLERY_RULE,
    GALLERY_SIDE,
    MAX_GALLERY_PER_CLASS,
    GalleryCell,
    GalleryGroup,
    image_crops,
    report_gallery,
)
from ._signoff import AuditLike, Signature, SignOffRefused, set_report_fields, sign_off, signature
from ._snapshot import SNAPSHOT_SIDE, report_snapshot, snapshot_label_text

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
    "domain_html",
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
