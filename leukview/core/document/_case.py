"""A case in the review document: many fields (or a slide) reviewed as one.

:class:`CaseDocument` is a :class:`~leukview.core.document.ReviewDocument`
that holds a :class:`~leukview.core.case.Case` and a *current field*. The
document's one session is the current field's session (the same object as
``case.image_session(current)``), so every per-image view, the overlays, the
review table, the edit tools and the calibration, works unchanged on the field
shown, while what concerns the whole case is pooled:

* :meth:`~CaseDocument.differential` is the case's (all fields, counting areas applied);
* :meth:`~CaseDocument.case_review_order` and :meth:`~CaseDocument.next_unreviewed`
  give the next cell across fields;
* the undo stack is one for the case: undoing a decision made on another
  field shows that field first (:attr:`~CaseDocument.switch_field`);
* :meth:`~CaseDocument.save` writes one case file (:func:`~leukview.core.case.save_case`);
* :meth:`~CaseDocument.sign` signs the case (refused while a flagged cell of any field is
  left, or a field is not analysed) and :meth:`~CaseDocument.signature` reads the case's
  one audit log, whichever field is shown; the report's fields are the case's;
* :meth:`~CaseDocument.report_content` reports the pooled cells, with a contact
  sheet of every field as the snapshot and the case's one audit log;
  :meth:`~CaseDocument.export_csv` writes the pooled cells and exports are audited in the case's log.

Fields not analysed yet hold an empty analysis and no ``analyse`` entry in
their audit (:meth:`~CaseDocument.pending`); :meth:`~CaseDocument.set_field_analysis`
puts an analysis in (from a background job, one field at a time).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import Analysis
from ..calibration import Calibration
from ..calls import Differential, call_cell
from ..case import Case, CaseImage, CellRef, load_case, save_case
from ..cells import Cell
from ..errors import LeukViewError, SessionError
from ..events import Event
from ..preprocess import CropRule, crop_box
from ..session import AuditAction, AuditEntry, Session
from ._document import ReviewDocument
from ._edit import EditCommand
from ._files import RestoreOutcome, RestoreStatus, SaveOutcome
from ._undo import ReviewCommand

if TYPE_CHECKING:
    from ..report import ReportContent, Signature
    from ..session import ReportFields

__all__ = ["CaseDocument", "FieldHeader", "contact_sheet", "is_analysed", "new_case"]

_CROP = CropRule(scale=1.4, min_side=24, background="keep")


@dataclass(frozen=True)
class FieldHeader:
    """The header of a field (an :class:`~leukview.core.document.ImageHeader`) when the file is not read."""

    width: int
    height: int
    pixel_size_um: float | None = None


def is_analysed(image: CaseImage) -> bool:
    """Whether a field of the case has been analysed (its audit has an ``analyse`` entry)."""
    return any(entry.action is AuditAction.ANALYSE for entry in image.session.audit)


def new_case(
    name: str, paths: Sequence[str | os.PathLike[str]], *, settings: Any = None,
) -> Case:
    """A case of image files not analysed yet (headers read now, pixels not).

    Parameters
    ----------
    name : str
        The case's name (a plain file name).
    paths : sequence of path
        The fields, in reading order.
    settings : SessionSettings, optional

    Raises
    ------
    ImageReadError
        A file is not an image LeukView reads.
    """
    from ..io import image_info

    case = Case.new(name, settings)
    used: set[str] = set()
    for raw in paths:
        path = Path(raw)
        info = image_info(path)
        image_id = _unique(path.stem, used)
        analysis = Analysis(int(info.width), int(info.height), [], image=str(path),
                            calibration=Calibration.from_file(info.pixel_size_um))
        session = Session(analysis=analysis, image_path=os.fspath(path), settings=case.settings,
                          app_version=case.app_version)
        case.images.append(CaseImage(image_id, session))
    return case


def _unique(stem: str, used: set[str]) -> str:
    base, n, candidate = stem or "image", 1, stem or "image"
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    used.add(candidate)
    return candidate


def contact_sheet(
    thumbnails: Sequence[np.ndarray], *, columns: int = 6, side: int = 160, gap: int = 6
) -> np.ndarray:
    """Field thumbnails side by side on white, row by row (the case report's snapshot).

    Parameters
    ----------
    thumbnails : sequence of ndarray of uint8, shape (h, w, 3)
        Each fitted (nearest neighbour) into a ``side`` x ``side`` cell.
    columns, side, gap : int

    Returns
    -------
    ndarray of uint8, shape (rows * (side + gap) + gap, columns' * (side + gap) + gap, 3)
    """
    n = len(thumbnails)
    if n == 0:
        return np.full((side, side, 3), 255, np.uint8)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    sheet = np.full((rows * (side + gap) + gap, cols * (side + gap) + gap, 3), 255, np.uint8)
    for k, thumb in enumerate(thumbnails):
        h, w = thumb.shape[:2]
        scale = min(side / max(h, 1), side / max(w, 1))
        th, tw = max(1, int(h * scale)), max(1, int(w * scale))
        ys = np.minimum((np.arange(th) / scale).astype(int), h - 1)
        xs = np.minimum((np.arange(tw) / scale).astype(int), w - 1)
        small = thumb[ys][:, xs, :3]
        r, c = divmod(k, cols)
        y0, x0 = gap + r * (side + gap), gap + c * (side + gap)
        sheet[y0 : y0 + th, x0 : x0 + tw] = small
    return sheet


class CaseDocument(ReviewDocument):
    """A review document that may hold a case of many fields (see the module docstring).

    Without a case it is a plain :class:`ReviewDocument`. With one,
    :attr:`case` and :attr:`current` say what is shown, and ``events`` gains
    ``field_changed(image_id)`` and ``case_changed()`` (a field analysed, the
    pooled figures to redraw).

    Attributes
    ----------
    switch_field : callable(image_id)
        How the document brings another field on screen (an undo of a
        decision made there, a jump): :meth:`show_field` by default; the
        viewer puts its own (which swaps the image shown, then calls
        :meth:`show_field`).
    read_pixels : callable(image_id) -> ndarray, optional
        A field's pixels for the report's thumbnails and cell images (read
        from its file with :func:`leukview.core.io.read_image` by default).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.case: Case | None = None
        self.current: str | None = None
        self.case_file: Path | None = None
        self.events.field_changed = Event("field_changed")
        self.events.case_changed = Event("case_changed")
        self.switch_field: Callable[[str], None] = self.show_field
        self.read_pixels: Callable[[str], np.ndarray] = self._read_pixels

    # ------------------------------------------------------------ the case

    @property
    def is_case(self) -> bool:
        return self.case is not None

    def open_case(self, case: Case, path: str | os.PathLike[str] | None = None, *, field: str | None = None) -> None:
        """Make ``case`` the open case and show its first field (or ``field``).

        Parameters
        ----------
        case : Case
        path : path, optional
            Its case file (where :meth:`save` writes; ``<first image's folder>/<name>.case.leukview.json``
            when None).
        """
        if not case.images:
            raise SessionError("a case needs at least one image")
        self.close()
        self.case = case
        self.case_file = Path(path) if path is not None else None
        self._settings = case.settings
        self.show_field(field or case.images[0].id)

    def open_case_file(self, path: str | os.PathLike[str]) -> Case:
        """Read a case file (:func:`load_case`: SessionError when it cannot be used) and open it."""
        case = load_case(path)
        self.open_case(case, path)
        return case

    def show_field(self, image_id: str, info: Any = None) -> None:
        """Show one field of the case: its session becomes the document's (the undo stack stays)."""
        if self.case is None:
            raise SessionError("no case is open")
        image = self.case.image(image_id)  # KeyError for an unknown field
        analysis = image.analysis
        if info is None:
            info = FieldHeader(analysis.width, analysis.height, analysis.calibration.pixel_size_um)
        changed = image_id != self.current
        self.current = image_id
        self.path = Path(image.path) if image.path else Path(image.id)
        self.info = info
        self.session = image.session if is_analysed(image) else None
        self._calibration = analysis.calibration
        self._audit_seen = len(image.session.audit)
        self.events.image_changed.emit()
        self.events.analysis_changed.emit()
        self.events.calibration_changed.emit(self.calibration)
        if changed:
            self.events.field_changed.emit(image_id)

    def step_field(self, step: int = 1) -> str | None:
        """Show the field ``step`` places on (wrapping); returns its id (None without a case)."""
        if self.case is None or self.current is None:
            return None
        ids = self.case.ids()
        target = ids[(ids.index(self.current) + step) % len(ids)]
        if target != self.current:
            self.switch_field(target)
        return target

    def current_image(self) -> CaseImage | None:
        return None if self.case is None or self.current is None else self.case.image(self.current)

    def pending(self) -> list[str]:
        """The fields not analysed yet, in case order."""
        return [] if self.case is None else [i.id for i in self.case.images if not is_analysed(i)]

    def set_field_analysis(self, image_id: str, analysis: Analysis, *, segmentation: dict[str, Any] | None = None) -> Session:
        """Put a field's analysis into the case (a re-analysis keeps the field's audit log).

        The session shares the case's settings; the pooled figures follow
        (``case_changed``), and the views when it is the field shown.
        """
        if self.case is None:
            raise SessionError("no case is open")
        image = self.case.image(image_id)
        previous = image.session
        calibration = previous.analysis.calibration
        if calibration.known and not analysis.calibration.known:
            analysis.calibration = calibration
        if segmentation is not None:
            self.case.settings.segmentation = dict(segmentation)
        self.case.settings.models = [m.name for m in analysis.models]
        session = Session.new(analysis, image.path or None, settings=self.case.settings, who=self.reviewer)
        session.audit = previous.audit + session.audit
        if is_analysed(image):
            session.created = previous.created
        image.session = session
        if image_id == self.current:
            self.session = session
            self._audit_seen = len(previous.audit)
            self.events.analysis_changed.emit()
            self._flush_audit()
        self._touch_case()
        self.events.case_changed.emit()
        return session

    # ------------------------------------------------------------ overrides: what is pooled

    def set_analysis(self, analysis: Analysis, **kwargs: Any) -> Session:
        if self.case is None or self.current is None:
            return super().set_analysis(analysis, **kwargs)
        segmentation = kwargs.get("segmentation")
        return self.set_field_analysis(self.current, analysis, segmentation=None if segmentation is None else dict(segmentation))

    def differential(self) -> Differential:
        if self.case is None:
            return super().differential()
        return self.case.differential(self.threshold)

    @property
    def threshold(self) -> float:
        return self.case.threshold if self.case is not None else super().threshold

    def case_review_order(self) -> list[CellRef]:
        """Every counted cell of the case in review order (flagged and unreviewed first)."""
        return [] if self.case is None else self.case.review_order(self.threshold)

    def next_unreviewed(self, after: CellRef | None = None) -> CellRef | None:
        """The next unreviewed cell in field order: later in the current field, then in the next fields.

        Within a field the case's review order; wraps round to the first field.
        None when every counted cell of the case is reviewed.
        """
        if self.case is None:
            return None
        by_field: dict[str, list[CellRef]] = {}
        for ref in self.case_review_order():
            if not self.case.cell(ref).review.reviewed:
                by_field.setdefault(ref.image, []).append(ref)
        if not by_field:
            return None
        ids = self.case.ids()
        start = ids.index(after.image if after is not None else (self.current or ids[0]))
        for k in range(len(ids) + 1):
            image_id = ids[(start + k) % len(ids)]
            refs = [r for r in by_field.get(image_id, []) if not (k == 0 and after is not None and r == after)]
            if refs:
                return refs[0]
        return None

    def gallery(self) -> dict[str | None, list[CellRef]]:
        """One gallery across the case (:meth:`Case.gallery`)."""
        return {} if self.case is None else self.case.gallery(self.threshold)

    def call_ref(self, ref: CellRef) -> Any:
        assert self.case is not None
        image = self.case.image(ref.image)
        return call_cell(image.cell(ref.cell), image.analysis.models, self.threshold)

    # ------------------------------------------------------------ sign-off and report fields: the case's

    def _case_log_session(self) -> Session:
        """The session a case-wide entry (sign-off, report fields) is written to.

        The field of the latest entry of the case's log: that log is ordered by
        time (to the second), then field by field, so an entry appended there
        comes after every entry before it, whichever field they concern.
        """
        assert self.case is not None
        lines = [line for line in self.case.audit_log() if isinstance(line.entry, AuditEntry)]
        image_id = lines[-1].image if lines and lines[-1].image else (self.current or self.case.images[0].id)
        return self.case.image(image_id).session

    def _logged(self, session: Session) -> None:
        if session is self.session:
            self._flush_audit()
        self._touch_case()

    def sign(self, who: str | None = None) -> AuditEntry:
        """Sign the whole case (audited); refused while a field is not analysed or a flagged cell is left."""
        if self.case is None:
            return super().sign(who)
        from ..report import SignOffRefused
        from ..session import current_user

        pending = self.pending()
        if pending:
            raise SessionError(f"{len(pending)} field(s) of the case not analysed yet ({', '.join(pending[:3])}"
                               + (", ..." if len(pending) > 3 else "") + ")")
        diff = self.case.differential(self.threshold)
        if diff.flagged:
            raise SignOffRefused(diff.flagged)
        session = self._case_log_session()
        note = (f"case {self.case.name}: {diff.reviewed} of {diff.total} white cells reviewed over "
                f"{len(self.case.images)} field(s), no flagged cell left")
        entry = session.log(AuditAction.SIGN, note=note, who=who or self.reviewer or current_user())
        self._logged(session)
        return entry

    def signature(self) -> Signature | None:
        """The case's last sign-off, read from the case's one audit log (any field may hold it)."""
        if self.case is None:
            return super().signature()
        from ..report import signature

        return signature(self.case.audit_log())

    def set_report_fields(self, fields: ReportFields) -> bool:
        """The case's patient, specimen, physician and reviewer (one for all fields); audited."""
        if self.case is None:
            return super().set_report_fields(fields)
        from ..report import set_report_fields

        session = self._case_log_session()  # its settings are the case's
        if set_report_fields(session, fields, self.reviewer) is None:
            return False
        self._logged(session)
        return True

    # ------------------------------------------------------------ exports: the case's

    def log_export(self, action: AuditAction, path: str | os.PathLike[str]) -> AuditEntry | None:
        """Audit a file written from the case in the case's log, whichever field is shown."""
        if self.case is None:
            return super().log_export(action, path)
        session = self._case_log_session()
        entry = session.log(action, detail={"path": os.fspath(path)}, who=self.reviewer)
        self._logged(session)
        return entry

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """The case's pooled cells as CSV (as ``leukview report --csv`` writes a case), audited.

        The columns ``case_image`` and ``image_cell`` (each cell's field and its
        id there) come first; SessionError while no field is analysed.
        """
        if self.case is None:
            return super().export_csv(path)
        from ..export import write_cells_csv

        if len(self.pending()) == len(self.case.images):
            raise SessionError("nothing to export: no field of the case is analysed")
        pooled, refs = self.case.pooled_analysis()
        written = write_cells_csv(path, pooled.cells, pooled.models, self.threshold, calibration=pooled.calibration,
                                  origins=[(ref.image, ref.cell) for ref in refs])
        self.log_export(AuditAction.EXPORT_CSV, written)
        return written

    # ------------------------------------------------------------ undo across fields

    def _command_session(self, index: int) -> Session | None:
        commands = getattr(self.undo_stack, "_commands", [])
        if 0 <= index < len(commands) and isinstance(commands[index], ReviewCommand | EditCommand):
            return commands[index].session
        return None

    def _show_session(self, session: Session | None) -> None:
        if self.case is None or session is None or session is self.session:
            return
        for image in self.case.images:
            if image.session is session:
                self.switch_field(image.id)
                return

    def undo(self) -> bool:
        if self.case is not None and self.undo_stack.can_undo:
            self._show_session(self._command_session(self.undo_stack.index - 1))
        return super().undo()

    def redo(self) -> bool:
        if self.case is not None and self.undo_stack.can_redo:
            self._show_session(self._command_session(self.undo_stack.index))
        return super().redo()

    # ------------------------------------------------------------ files

    def default_case_file(self) -> Path | None:
        if self.case is None:
            return None
        from ..case import case_path

        first = self.case.images[0].path
        return case_path(Path(first).parent if first else self.files.folder, self.case.name)

    def restore(self) -> RestoreOutcome:
        if self.case is None:
            return super().restore()
        return RestoreOutcome(RestoreStatus.RESTORED, self.case_file)

    def save(self) -> SaveOutcome:
        if self.case is None:
            return super().save()
        errors: list[str] = []
        targets = [self.case_file] if self.case_file is not None else []
        default = self.default_case_file()
        if default is not None and default not in targets:
            targets.append(default)
        from ..case import case_path

        targets.append(case_path(self.files.folder, self.case.name))
        written: Path | None = None
        for target in targets:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                written = save_case(self.case, target)
                break
            except (OSError, LeukViewError) as exc:
                errors.append(f"{target}: {exc}")
        outcome = SaveOutcome(written, errors=tuple(errors))
        if written is not None:
            self.case_file = written
            self._set_dirty(False)
        self.events.saved.emit(outcome)
        return outcome

    def autosave(self, force: bool = False) -> SaveOutcome | None:
        if self.case is not None and self.read_only:
            return None
        return super().autosave(force)

    def close(self) -> None:
        if self.case is not None:
            if self._dirty and self.autosave_enabled:
                self.autosave()
            self._set_dirty(False)  # a case is saved as a case, never as its field's session
        self.case = None
        self.current = None
        self.case_file = None
        super().close()

    def _touch_case(self) -> None:
        self._set_dirty(True)
        self.events.modified.emit()

    def _touch(self) -> None:
        if self.case is not None:
            self._touch_case()
            return
        super()._touch()

    # ------------------------------------------------------------ report

    def _read_pixels(self, image_id: str) -> np.ndarray:
        from ..io import read_image

        assert self.case is not None
        return read_image(self.case.image(image_id).path)

    def report_content(self, image: np.ndarray | None = None, **kwargs: Any) -> ReportContent:
        """The PDF report of the whole case: the pooled cells, each field's thumbnail, one audit log.

        Without a case, :meth:`ReviewDocument.report_content`. With one, the
        snapshot is :func:`contact_sheet` of the fields (in case order), the
        cell images are read from each cell's field, and the audit is the
        case's :meth:`Case.audit_log`.
        """
        if self.case is None:
            return super().report_content(image, **kwargs)
        from ..report import build_report

        case = self.case
        pooled, refs = case.pooled_analysis()
        pixels: dict[str, np.ndarray | None] = {}

        def field_pixels(image_id: str) -> np.ndarray | None:
            if image_id not in pixels:
                try:
                    pixels[image_id] = self.read_pixels(image_id)
                except (LeukViewError, OSError):
                    pixels[image_id] = None
            return pixels[image_id]

        def crop(cell: Cell) -> np.ndarray | None:
            ref = refs[cell.id - 1]
            array = field_pixels(ref.image)
            if array is None:
                return None
            x0, y0, x1, y1 = crop_box(cell, _CROP)
            h, w = array.shape[:2]
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                return None
            return np.ascontiguousarray(array[cy0:cy1, cx0:cx1, :3])

        thumbs = [a for a in (field_pixels(i.id) for i in case.images) if a is not None]
        content = build_report(
            pooled, None, audit=case.audit_log(), threshold=self.threshold, reviewer=self.reviewer,
            image_name=f"case {case.name} ({len(case.images)} fields)", analysed=case.created,
            fields=case.settings.report, crop=crop,
        )
        return replace(
            content, snapshot=contact_sheet(thumbs),
            field_text=f"{len(case.images)} fields: " + ", ".join(case.ids()),
        )
