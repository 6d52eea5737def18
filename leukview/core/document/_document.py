"""The review document: one open image, its analysis and its review, with the rules that govern them.

Length (~620 lines): the document is the one owner of the review state; its undo,
field rule, session files and edits already live in sibling modules.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..analysis import Analysis, ModelRun
from ..calibration import Calibration
from ..calls import (
    CellCall,
    Differential,
    call_cell,
    differential_count,
    review_classes,
    review_order,
)
from ..cells import Cell
from ..errors import SessionError
from ..events import Event
from ..session import (
    SESSION_SUFFIX,
    AuditAction,
    AuditEntry,
    ReportFields,
    Session,
    SessionSettings,
)
from ._edit import SegmentationEditing
from ._fields import LARGE_IMAGE_PIXELS, MAX_FIELD_SIDE, FieldRect, field_rect
from ._files import (
    RestoreOutcome,
    RestoreStatus,
    SaveOutcome,
    SessionFiles,
    default_sessions_folder,
)
from ._undo import ReviewCommand, UndoStack

if TYPE_CHECKING:
    import numpy as np

    from ..report import ReportContent, Signature

__all__ = ["DocumentEvents", "ImageHeader", "ReviewDocument", "image_for"]

class ImageHeader(Protocol):
    """What the document needs of :class:`leukview.core.io.ImageInfo`."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def pixel_size_um(self) -> float | None: ...


def image_for(path: str | os.PathLike[str]) -> Path:
    """The image a path names: itself, or for ``<image>.leukview.json`` the image beside it."""
    path = Path(path)
    if path.name.endswith(SESSION_SUFFIX):
        return path.with_name(path.name[: -len(SESSION_SUFFIX)])
    return path


class DocumentEvents:
    """What a :class:`ReviewDocument` tells its views (callbacks run at once, see :class:`Event`).

    Attributes
    ----------
    image_changed : Event()
        An image was opened or closed.
    analysis_changed : Event()
        The session was replaced: analysed, restored, or gone with the image.
    cell_changed : Event(cell_id)
        A cell's review changed (a decision, an undo, a redo).
    cells_replaced : Event(removed_ids, added_ids)
        The segmentation was corrected (cells added, deleted, split or
        redrawn; or such an edit undone or redone): those cells went, these came.
    calibration_changed : Event(Calibration)
    threshold_changed : Event(float)
    audit_appended : Event(AuditEntry)
    dirty_changed : Event(bool)
        The review went from saved to unsaved or back.
    modified : Event()
        Every change that needs saving (an autosave timer restarts on it).
    undo_changed : Event()
        What can be undone or redone changed.
    saved : Event(SaveOutcome)
    """

    def __init__(self) -> None:
        self.image_changed = Event("image_changed")
        self.analysis_changed = Event("analysis_changed")
        self.cell_changed = Event("cell_changed")
        self.cells_replaced = Event("cells_replaced")
        self.calibration_changed = Event("calibration_changed")
        self.threshold_changed = Event("threshold_changed")
        self.audit_appended = Event("audit_appended")
        self.dirty_changed = Event("dirty_changed")
        self.modified = Event("modified")
        self.undo_changed = Event("undo_changed")
        self.saved = Event("saved")


class ReviewDocument(SegmentationEditing):
    """One open image, its analysis, its review and where they are saved (no Qt).

    The viewer presents a document and forwards the reviewer's actions to it;
    ``leukview report`` and the tests drive the same object headless.
    Corrections of the segmentation (:meth:`add_cell`, :meth:`delete_cells`,
    :meth:`split_cell`, :meth:`redraw_cell`) are undoable and audited like
    review decisions (:class:`SegmentationEditing`).

    Parameters
    ----------
    defaults : SessionSettings, optional
        Settings of an image without a session (the user's preferences: the
        confidence threshold, the differential's target, the heatmap).
    sessions_folder : path, optional
        Where sessions go when the image's folder is read-only
        (:func:`default_sessions_folder` when None).
    read_only : bool
        Never write or move session files (screenshots).
    autosave : bool
        :meth:`autosave` saves a dirty review (when False only :meth:`save` does).
    reviewer : str, optional
        Who the audit log names (the system user when None).

    Notes
    -----
    The rules that live here, once:

    * **the call** of a cell is :func:`leukview.core.calls.call_cell` with the
      document's :attr:`threshold`, which is ``settings.confidence_threshold``;
    * **the calibration** is the analysis's (the file's until there is one);
      :meth:`set_calibration` audits and emits;
    * **the field** of a large image is :func:`field_rect` with one cap;
    * **the session file** is beside the image, else in ``sessions_folder``;
      a file this document could not use (unreadable, newer, another image's)
      is never overwritten;
    * **restoring** decides on typed outcomes (:class:`RestoreStatus`).
    """

    large_image_pixels = LARGE_IMAGE_PIXELS
    max_field_side = MAX_FIELD_SIDE

    def __init__(
        self,
        defaults: SessionSettings | None = None,
        *,
        sessions_folder: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        autosave: bool = True,
        reviewer: str | None = None,
    ) -> None:
        self.defaults = defaults if defaults is not None else SessionSettings()
        folder = Path(sessions_folder) if sessions_folder is not None else default_sessions_folder()
        self.files = SessionFiles(folder, read_only=read_only)
        self.autosave_enabled = autosave
        self.reviewer = reviewer
        self.events = DocumentEvents()
        self.undo_stack = UndoStack()
        self.undo_stack.changed.connect(self.events.undo_changed.emit)
        self.path: Path | None = None
        self.info: ImageHeader | None = None
        self.session: Session | None = None
        self.session_file: Path | None = None
        self._settings = copy.deepcopy(self.defaults)
        self._calibration = Calibration.unknown()
        self._audit_seen = 0
        self._dirty = False

    # ------------------------------------------------------------ state

    @property
    def analysis(self) -> Analysis | None:
        return self.session.analysis if self.session is not None else None

    @property
    def models(self) -> list[ModelRun]:
        return self.session.analysis.models if self.session is not None else []

    @property
    def cells(self) -> list[Cell]:
        return self.session.analysis.cells if self.session is not None else []

    @property
    def settings(self) -> SessionSettings:
        """The session's settings; the defaults' copy for an image not analysed yet."""
        return self.session.settings if self.session is not None else self._settings

    @property
    def threshold(self) -> float:
        """The confidence threshold: the one every view, export and report uses."""
        return self.settings.confidence_threshold

    @property
    def calibration(self) -> Calibration:
        """The pixel size in effect: the analysis's, else what the file says."""
        return self.session.analysis.calibration if self.session is not None else self._calibration

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the open image; (0, 0) when none is open."""
        return (int(self.info.width), int(self.info.height)) if self.info is not None else (0, 0)

    @property
    def dirty(self) -> bool:
        """The review has changes that are not saved."""
        return self._dirty

    def cell(self, cell_id: int) -> Cell:
        """The cell with this id; KeyError if there is none (or no analysis)."""
        if self.session is None:
            raise KeyError(cell_id)
        return self.session.cell(cell_id)

    def call(self, cell: Cell | int) -> CellCall:
        """The cell's call under the document's threshold (:func:`~leukview.core.calls.call_cell`)."""
        if isinstance(cell, int):
            cell = self.cell(cell)
        return call_cell(cell, self.models, self.threshold)

    def model_call(self, cell: Cell) -> CellCall:
        """What the models called, as if nobody had reviewed the cell."""
        return call_cell(cell, self.models, self.threshold, use_review=False)

    def classes(self) -> list[str]:
        """The classes a reviewer assigns, in key order (1-9, then 0 for artefact)."""
        return review_classes(self.models)

    def differential(self) -> Differential:
        return differential_count(self.cells, self.models, self.threshold)

    def review_order(self) -> list[Cell]:
        return review_order(self.cells, self.models, self.threshold)

    # ------------------------------------------------------------ image

    def is_large(self, width: int | None = None, height: int | None = None) -> bool:
        """Whether an image (the open one by default) is shown in tiles and analysed by fields."""
        w, h = self.size if width is None or height is None else (width, height)
        return w * h > self.large_image_pixels

    def open(self, path: str | os.PathLike[str], info: ImageHeader | None = None) -> None:
        """Make ``path`` (an image, or its ``.leukview.json``) the open image, without a session yet.

        The previous image is closed first (:meth:`close`). Call :meth:`restore`
        next to bring its saved review back.

        Parameters
        ----------
        path : path
        info : ImageInfo, optional
            Its header (read with :func:`leukview.core.io.image_info` when None;
            ImageReadError when that fails).
        """
        path = image_for(path)
        if info is None:
            from ..io import image_info

            info = image_info(path)
        self.close()
        self.path = path
        self.info = info
        self._calibration = Calibration.from_file(info.pixel_size_um)
        self.events.image_changed.emit()
        self.events.calibration_changed.emit(self.calibration)

    def close(self) -> None:
        """Forget the image and its review (saved first when autosave is on and it is dirty)."""
        if self._dirty and self.autosave_enabled:
            self.autosave()
        had_image = self.path is not None
        had_session = self.session is not None
        self.path = None
        self.info = None
        self.session = None
        self.session_file = None
        self._settings = copy.deepcopy(self.defaults)
        self._calibration = Calibration.unknown()
        self.files.forget()
        self._audit_seen = 0
        self.undo_stack.clear()
        self._set_dirty(False)
        if had_session:
            self.events.analysis_changed.emit()
        if had_image:
            self.events.image_changed.emit()

    def analysis_field(self, visible: tuple[float, float, float, float] | None = None) -> FieldRect:
        """The field to analyse next: the whole image, or for a large one the part in view."""
        width, height = self.size
        return field_rect(
            width, height, visible, large_image_pixels=self.large_image_pixels, max_side=self.max_field_side
        )

    # ------------------------------------------------------------ analysis

    def set_analysis(
        self,
        analysis: Analysis,
        *,
        segmentation: Mapping[str, Any] | None = None,
        field: FieldRect | None = None,
    ) -> Session:
        """Adopt a new analysis of the open image; a re-analysis keeps the image's audit log.

        Parameters
        ----------
        analysis : Analysis
            Its calibration becomes the document's (set before it ran, or since).
        segmentation : dict, optional
            The parameters used (:meth:`SegmentationParams.to_dict`).
        field : (x, y, w, h), optional
            The field analysed (the whole image when None).
        """
        previous = self.session
        analysis.calibration = self.calibration
        settings = replace(
            self.settings,
            models=[m.name for m in analysis.models],
            segmentation=dict(segmentation or {}),
            analysed_field=None if field is None else tuple(int(v) for v in field),  # type: ignore[arg-type]
            extra=dict(self.settings.extra),
        )
        session = Session.new(analysis, self.path, settings=settings, who=self.reviewer)
        if previous is not None:
            session.audit = previous.audit + session.audit
            session.created = previous.created
            self._audit_seen = len(previous.audit)
        else:
            self._audit_seen = 0
        self.session = session
        self.undo_stack.clear()
        self.events.analysis_changed.emit()
        self._flush_audit()
        self._touch()
        return session

    # ------------------------------------------------------------ review

    def review(self, cell_id: int, label: str | None, action: AuditAction = AuditAction.RECLASSIFY) -> bool:
        """Give a cell the reviewer's label (None clears it), undoably and audited.

        Returns False when there is no analysis; KeyError for an unknown cell.
        """
        if self.session is None:
            return False
        self.cell(cell_id)  # KeyError before anything is logged
        self.undo_stack.push(ReviewCommand(self.session, cell_id, label, action, self._cell_changed, self.reviewer))
        return True

    def confirm(self, cell_id: int) -> bool:
        """Accept the cell's current call; False when it has none (nothing to accept)."""
        if self.session is None:
            return False
        label = self.call(cell_id).label
        if label is None:
            return False
        return self.review(cell_id, label, AuditAction.CONFIRM)

    def clear_review(self, cell_id: int) -> bool:
        """Take the reviewer's label off a cell; False when it had none."""
        if self.session is None or not self.cell(cell_id).review.reviewed:
            return False
        return self.review(cell_id, None, AuditAction.CLEAR)

    def undo(self) -> bool:
        return self.undo_stack.undo()

    def redo(self) -> bool:
        return self.undo_stack.redo()

    def _cell_changed(self, cell_id: int) -> None:
        self._flush_audit()
        self.events.cell_changed.emit(cell_id)
        self._touch()

    # ------------------------------------------------------------ calibration, threshold, settings

    def set_calibration(self, calibration: Calibration) -> None:
        """Change the pixel size; audited (with the new value and its source) when analysed."""
        if calibration == self.calibration:
            return
        if self.session is None:
            self._calibration = calibration
        else:
            self.session.analysis.calibration = calibration
            self.session.log(
                AuditAction.SET_CALIBRATION,
                detail={"pixel_size_um": calibration.pixel_size_um, "source": calibration.source},
                who=self.reviewer,
            )
            self._flush_audit()
            self._touch()
        self.events.calibration_changed.emit(calibration)

    def set_threshold(self, threshold: float) -> None:
        """Change the confidence threshold of the flags; audited when analysed."""
        value = float(threshold)
        if not 0.0 <= value <= 1.0:
            raise SessionError(f"the confidence threshold must be between 0 and 1, got {threshold!r}")
        if abs(value - self.threshold) < 1e-12:
            return
        self.settings.confidence_threshold = value
        if self.session is not None:
            self.session.log(AuditAction.SET_THRESHOLD, detail={"confidence_threshold": value}, who=self.reviewer)
            self._flush_audit()
            self._touch()
        self.events.threshold_changed.emit(value)

    def set_view_settings(
        self, *, target: int | None = None, heat_mode: str | None = None, heat_opacity: float | None = None
    ) -> None:
        """Record how the review is shown (saved with the session; not a change that needs saving)."""
        settings = self.settings
        before = (settings.target, settings.heat_mode, settings.heat_opacity)
        if target is not None:
            settings.target = target
        if heat_mode is not None:
            settings.heat_mode = heat_mode
        if heat_opacity is not None:
            settings.heat_opacity = heat_opacity
        try:
            settings.validate()
        except SessionError:
            settings.target, settings.heat_mode, settings.heat_opacity = before
            raise

    def log_export(self, action: AuditAction, path: str | os.PathLike[str]) -> AuditEntry | None:
        """Audit a file written from the review (CSV, PNG, PDF)."""
        if self.session is None:
            return None
        entry = self.session.log(action, detail={"path": os.fspath(path)}, who=self.reviewer)
        self._flush_audit()
        self._touch()
        return entry

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write every cell as CSV (:func:`leukview.core.export.write_cells_csv`) and audit it.

        The calls and flags follow the document's threshold, the µm columns its
        calibration, exactly as ``leukview report --csv`` writes them. OSError
        when the file cannot be written.
        """
        from ..export import write_cells_csv

        if self.session is None:
            raise SessionError("nothing to export: the image is not analysed")
        written = write_cells_csv(path, self.cells, self.models, self.threshold, calibration=self.calibration)
        self.log_export(AuditAction.EXPORT_CSV, written)
        return written

    def report_content(
        self,
        image: np.ndarray | None,
        *,
        snapshot: np.ndarray | None = None,
        heatmap: bool = False,
        region: tuple[int, int, int, int] | None = None,
        crop: Callable[[Cell], np.ndarray | None] | None = None,
    ) -> ReportContent:
        """What the PDF report of the review says (:func:`leukview.core.report.build_report`).

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3), optional
            The whole image (or a reduced copy, or of ``region``), for the
            snapshot and the cell images the CLI's report also draws.
        snapshot : ndarray of uint8, shape (h, w, 3), optional
            A ready snapshot instead.
        heatmap : bool
            Blend the class-activation maps in: chosen for this report only (never
            carried over from the view).
        region : (x, y, width, height), optional
            The part of the image ``image`` shows.
        crop : callable, optional
            A cell's image (read from a large image).
        """
        from ..report import build_report

        if self.session is None or self.path is None:
            raise SessionError("nothing to report: the image is not analysed")
        content = build_report(
            self.session.analysis,
            None if snapshot is not None else image,
            audit=self.session.audit,
            threshold=self.threshold,
            reviewer=self.reviewer,
            image_name=self.path.name,
            analysed=self.session.created,
            heatmap=heatmap,
            fields=self.settings.report,
            region=region,
            analysed_field=self.settings.analysed_field,
            crop=crop,
        )
        return content if snapshot is None else replace(content, snapshot=snapshot)

    def set_report_fields(self, fields: ReportFields) -> bool:
        """Patient, specimen, physician and reviewer for the report; audited; False when unchanged."""
        from ..report import set_report_fields

        if self.session is None:
            self.settings.report = replace(fields)
            return False
        if set_report_fields(self.session, fields, self.reviewer) is None:
            return False
        self._flush_audit()
        self._touch()
        return True

    def sign(self, who: str | None = None) -> AuditEntry:
        """Sign the case (audited); :class:`~leukview.core.report.SignOffRefused` while flagged cells are left."""
        from ..report import sign_off

        if self.session is None:
            raise SessionError("nothing to sign: the image is not analysed")
        entry = sign_off(self.session, who or self.reviewer, self.threshold)
        self._flush_audit()
        self._touch()
        return entry

    def signature(self) -> Signature | None:
        """The case's last sign-off and whether the review is still as signed (None: never signed)."""
        from ..report import signature

        return None if self.session is None else signature(self.session.audit)

    # ------------------------------------------------------------ session files

    def session_candidates(self) -> list[Path]:
        """Where the open image's session may be: beside it, then in :attr:`sessions_folder`."""
        return [] if self.path is None else self.files.candidates(self.path)

    @property
    def sessions_folder(self) -> Path:
        return self.files.folder

    @property
    def read_only(self) -> bool:
        return self.files.read_only

    def restore(self) -> RestoreOutcome:
        """Bring back the open image's saved review (:meth:`SessionFiles.restore` decides on each file).

        The first usable file is restored, even when the image file changed
        since (same size: a note); the calibration the file states wins over a
        saved estimate, not over a pixel size the user set.
        """
        if self.path is None or self.info is None:
            return RestoreOutcome(RestoreStatus.NO_SESSION)
        outcome, session = self.files.restore(self.path, self.size)
        if session is not None and outcome.path is not None:
            self._adopt(session, outcome.path)
        return outcome

    def _adopt(self, session: Session, candidate: Path) -> None:
        saved = session.analysis.calibration
        if self._calibration.known and saved.source != "user":
            session.analysis.calibration = self._calibration
        self.session = session
        self.session_file = candidate
        self._audit_seen = len(session.audit)
        self.undo_stack.clear()
        self._set_dirty(False)
        self.events.analysis_changed.emit()
        self.events.calibration_changed.emit(self.calibration)
        self.events.threshold_changed.emit(self.threshold)

    def save(self) -> SaveOutcome:
        """Write the session atomically (:meth:`SessionFiles.save`: where it was found or saved,
        else beside the image, else in the fallback folder, never over a file kept untouched)."""
        if self.session is None or self.path is None:
            return SaveOutcome(None, errors=("nothing to save: the image is not analysed",))
        outcome = self.files.save(self.session, self.path, self.session_file)
        if outcome.path is not None:
            self.session_file = outcome.path
            self._set_dirty(False)
        self.events.saved.emit(outcome)
        return outcome

    def autosave(self, force: bool = False) -> SaveOutcome | None:
        """Save a dirty review when autosave is on (or ``force``); None when nothing was tried."""
        if not self._dirty or self.read_only or not (self.autosave_enabled or force):
            return None
        return self.save()

    def discard_changes(self) -> None:
        """Leave the unsaved changes unsaved: the review is no longer dirty."""
        self._set_dirty(False)

    # ------------------------------------------------------------ internals

    def _flush_audit(self) -> None:
        if self.session is None:
            return
        new = self.session.audit[self._audit_seen :]
        self._audit_seen = len(self.session.audit)
        for entry in new:
            self.events.audit_appended.emit(entry)

    def _touch(self) -> None:
        if self.session is None:
            return
        self._set_dirty(True)
        self.events.modified.emit()

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.events.dirty_changed.emit(dirty)

