"""The review document: what the viewer shows and edits, without Qt.

A :class:`ReviewDocument` owns the open image (its path and header), its
analysis and review (a :class:`~leukview.core.session.Session`), the undo
stack of review decisions, the calibration, the confidence threshold, the
analysed-field rule of large images, where the session file lives and how a
saved one is restored. It emits :class:`DocumentEvents`; the GUI connects its
widgets to them and forwards the reviewer's actions (napari's model/view
split, QuPath's image data + workflow history are the models).

Data flow: a file -> :meth:`ReviewDocument.open` (header, calibration from the
file) -> :meth:`~ReviewDocument.restore` (a typed :class:`RestoreOutcome`) or
an analysis (:func:`analyse_field` -> :meth:`~ReviewDocument.set_analysis`) ->
review decisions (:meth:`~ReviewDocument.review`, :meth:`~ReviewDocument.undo`,
audited) -> :meth:`~ReviewDocument.save` (atomic, beside the image or in the
fallback folder).

Public API
----------
ReviewDocument, DocumentEvents, image_for
    The document, its events, the image a session file belongs to.
RestoreStatus, RestoreOutcome, SaveOutcome, SessionFiles
    The session-file policy and its typed outcomes.
UndoStack, ReviewCommand, Command
    Undo and redo of review decisions.
EditCommand, SegmentationEditing
    Corrections of the segmentation (cells added, deleted, split, redrawn) as
    undoable, audited commands (the geometry: :mod:`leukview.core.edit`).
field_rect, analyse_field, offset_cells, LARGE_IMAGE_PIXELS, MAX_FIELD_SIDE
    The analysed-field rule and the analysis of one field.
session_candidates, default_sessions_folder
    Where a session may be.
CaseDocument, new_case, is_analysed, contact_sheet, FieldHeader
    A case of many fields (or a slide) in the document: the current field
    shown, the differential, gallery, undo, session and report of the case.
"""

from ._case import CaseDocument, FieldHeader, contact_sheet, is_analysed, new_case
from ._document import DocumentEvents, ImageHeader, ReviewDocument, image_for
from ._edit import EditCommand, SegmentationEditing
from ._fields import (
    LARGE_IMAGE_PIXELS,
    MAX_FIELD_SIDE,
    MIN_FIELD_SIDE,
    FieldRect,
    analyse_field,
    field_rect,
    offset_cells,
)
from ._files import (
    RestoreOutcome,
    RestoreStatus,
    SaveOutcome,
    SessionFiles,
    default_sessions_folder,
    session_candidates,
)
from ._undo import Command, ReviewCommand, UndoStack

__all__ = [
    "LARGE_IMAGE_PIXELS",
    "MAX_FIELD_SIDE",
    "MIN_FIELD_SIDE",
    "CaseDocument",
    "Command",
    "DocumentEvents",
    "EditCommand",
    "FieldHeader",
    "FieldRect",
    "ImageHeader",
    "RestoreOutcome",
    "RestoreStatus",
    "ReviewCommand",
    "ReviewDocument",
    "SaveOutcome",
    "SegmentationEditing",
    "SessionFiles",
    "UndoStack",
    "analyse_field",
    "contact_sheet",
    "default_sessions_folder",
    "field_rect",
    "image_for",
    "is_analysed",
    "new_case",
    "offset_cells",
    "session_candidates",
]
