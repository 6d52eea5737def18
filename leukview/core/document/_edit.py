"""Corrections of the segmentation as undoable, audited document commands.

The geometry is turned into cells by :mod:`leukview.core.edit`; here each
correction becomes one :class:`EditCommand` on the document's undo stack and
one audit entry (:class:`~leukview.core.session.EditDetail`: the cells that
went and came, their calls, how they were drawn, the models' versions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cells import Cell
from ..edit import (
    EditContext,
    EditError,
    Points,
    absorbed_cells,
    cell_from_click,
    cell_from_outline,
    cell_to_split,
    classify_cells,
    redraw_cell,
    split_cell,
)
from ..errors import LeukViewError
from ..session import EDIT_ACTIONS, AuditAction, EditDetail, Session

if TYPE_CHECKING:
    from ..calls import CellCall
    from ..models import Classifier
    from ..runs import ModelRun
    from ._undo import UndoStack

__all__ = ["EditCommand", "SegmentationEditing"]

_VERBS = {
    AuditAction.ADD_CELL: "Add",
    AuditAction.DELETE_CELL: "Delete",
    AuditAction.SPLIT_CELL: "Split",
    AuditAction.REDRAW_CELL: "Redraw",
}


class EditCommand:
    """Replace some cells of the analysis by others (none, or new ones), undoably.

    The first :meth:`redo` logs ``action``; later redos log ``redo
    segmentation edit`` and undos ``undo segmentation edit``, each with the
    same :class:`~leukview.core.session.EditDetail`. Undo puts back the very
    cell list there was (the same records, in the same order).

    Parameters
    ----------
    session : Session
    removed, added : list of Cell
    action : AuditAction
        One of the edit actions.
    detail : EditDetail
    changed : callable(removed_ids, added_ids)
        Told after every do and undo.
    who : str, optional
    """

    def __init__(
        self,
        session: Session,
        removed: Sequence[Cell],
        added: Sequence[Cell],
        action: AuditAction,
        detail: EditDetail,
        changed: Callable[[list[int], list[int]], None],
        who: str | None = None,
    ) -> None:
        if action not in EDIT_ACTIONS:
            raise ValueError(f"{action} is not a segmentation edit")
        self.session = session
        self.removed = list(removed)
        self.added = list(added)
        self.action = AuditAction(action)
        self.detail = detail
        self.changed = changed
        self.who = who
        self._before: list[Cell] | None = None
        self._after: list[Cell] | None = None
        self.text = _command_text(self.action, [c.id for c in self.removed], [c.id for c in self.added])

    def redo(self) -> None:
        cells = self.session.analysis.cells
        if self._after is None:
            self._before = list(cells)
            self._after = _replaced(cells, self.removed, self.added)
            action = self.action
        else:
            action = AuditAction.REDO_EDIT
        cells[:] = self._after
        self.session.log(action, detail=self.detail, who=self.who)
        self.changed([c.id for c in self.removed], [c.id for c in self.added])

    def undo(self) -> None:
        if self._before is None:
            return
        self.session.analysis.cells[:] = self._before
        self.session.log(AuditAction.UNDO_EDIT, detail=self.detail, who=self.who)
        self.changed([c.id for c in self.added], [c.id for c in self.removed])


class SegmentationEditing:
    """The segmentation corrections of :class:`~leukview.core.document.ReviewDocument` (a mixin).

    Each method changes nothing and raises :class:`~leukview.core.edit.EditError`
    (a message for the reviewer) when the geometry does not make a cell.
    New cells get ids never used on this image before, are measured as the
    pipeline measures, and are classified by the analysis's models found in
    the context (with their maps); the calls and the differential follow.
    """

    session: Session | None
    reviewer: str | None
    undo_stack: UndoStack
    events: Any

    if TYPE_CHECKING:

        @property
        def cells(self) -> list[Cell]: ...

        @property
        def models(self) -> list[ModelRun]: ...

        @property
        def size(self) -> tuple[int, int]: ...

        def cell(self, cell_id: int) -> Cell: ...

        def call(self, cell: Cell | int) -> CellCall: ...

        def _flush_audit(self) -> None: ...

        def _touch(self) -> None: ...

    # ------------------------------------------------------------ context

    def edit_context(
        self,
        read: Callable[[int, int, int, int], np.ndarray],
        classifiers: Sequence[Classifier] = (),
    ) -> EditContext:
        """The context of edits on the open image: its pixels (``read(x, y, w, h)``),
        the analysis's red-cell diameter and segmentation parameters, the stain
        levels of the analysed field, and the classifiers loaded."""
        from ..segment import SegmentationParams

        if self.session is None:
            raise EditError("analyse the image first")
        settings = self.session.settings
        try:
            params = SegmentationParams.from_dict(dict(settings.segmentation or {}))
        except (LeukViewError, TypeError, ValueError):
            params = SegmentationParams()  # the analysis ran with the defaults then
        return EditContext.from_reader(
            read,
            self.size,
            rbc_diameter=self.session.analysis.rbc_diameter_px,
            params=params,
            classifiers=classifiers,
            field=settings.analysed_field,
        )

    def next_cell_id(self) -> int:
        """An id no cell of this image has had: above every id of the cells and of the edits' audit."""
        used = {c.id for c in self.cells}
        for entry in self.session.audit if self.session is not None else []:
            if entry.action in EDIT_ACTIONS and entry.detail:
                detail: Any = entry.detail
                used.update(int(i) for i in detail.get("cells_before", []))
                used.update(int(i) for i in detail.get("cells_after", []))
        return max(used, default=0) + 1

    # ------------------------------------------------------------ the edits

    def add_cell(
        self,
        context: EditContext,
        *,
        outline: Points | None = None,
        point: Sequence[float] | None = None,
        kind: str | None = None,
    ) -> Cell:
        """Add a missed cell from a drawn outline or a click inside it.

        Red cells and platelets whose centre the new cell covers go in the
        same command (they were pieces of it). Returns the new cell.
        """
        session = self._editable()
        if (outline is None) == (point is None):
            raise EditError("add a cell by its outline or by a click")
        cell_id = self.next_cell_id()
        if outline is not None:
            cell = cell_from_outline(context, outline, cell_id, others=self.cells, kind=kind)
            method, geometry = "outline", outline
        else:
            assert point is not None
            cell = cell_from_click(context, point, cell_id, others=self.cells, kind=kind)
            method, geometry = "click", [point]
        removed = absorbed_cells([cell], self.cells)
        self._push(session, context, AuditAction.ADD_CELL, removed, [cell], method, geometry)
        return cell

    def delete_cells(self, cell_ids: Sequence[int]) -> bool:
        """Delete false cells (one command for all); False when there is nothing to delete."""
        session = self._editable()
        ids = list(dict.fromkeys(int(i) for i in cell_ids))
        if not ids:
            return False
        removed = [self.cell(i) for i in ids]  # KeyError before anything changes
        self._push(session, None, AuditAction.DELETE_CELL, removed, [], "selection", [])
        return True

    def split_cell(
        self,
        context: EditContext,
        cell_id: int | None = None,
        *,
        line: Points | None = None,
        seeds: Points | None = None,
    ) -> list[Cell]:
        """Split a merged cell by a line across it or by seeds (two or more) inside it.

        ``cell_id`` None: the cell under the line's middle (else the one it
        crosses most), or the cell under the first seed. Returns the new cells.
        """
        session = self._editable()
        if cell_id is None:
            where = line if line is not None else np.asarray(seeds if seeds is not None else [], float)[:1]
            found = cell_to_split(self.cells, where)
            if found is None:
                raise EditError("no cell there: draw the line across the cell to split")
            cell = found
        else:
            cell = self.cell(cell_id)
        parts = split_cell(context, cell, self.next_cell_id(), line=line, seeds=seeds)
        method = "line" if line is not None else "seeds"
        geometry = line if line is not None else seeds
        assert geometry is not None  # split_cell refused neither
        self._push(session, context, AuditAction.SPLIT_CELL, [cell], parts, method, geometry)
        return parts

    def redraw_cell(self, context: EditContext, cell_id: int, outline: Points) -> Cell:
        """Give a cell a new outline: it becomes a new cell (new id, measured and classified again)."""
        session = self._editable()
        old = self.cell(cell_id)
        new = redraw_cell(context, old, outline, self.next_cell_id(), others=self.cells)
        removed = [old, *(c for c in absorbed_cells([new], self.cells) if c is not old)]
        self._push(session, context, AuditAction.REDRAW_CELL, removed, [new], "outline", outline)
        return new

    # ------------------------------------------------------------ internals

    def _editable(self) -> Session:
        if self.session is None:
            raise EditError("analyse the image first")
        return self.session

    def _push(
        self,
        session: Session,
        context: EditContext | None,
        action: AuditAction,
        removed: list[Cell],
        added: list[Cell],
        method: str,
        geometry: Points | Sequence[Sequence[float]],
    ) -> None:
        unclassified = classify_cells(context, added, self.models) if context is not None and added else []
        detail: EditDetail = {
            "cells_before": [c.id for c in removed],
            "cells_after": [c.id for c in added],
            "calls_before": [self.call(c).label for c in removed],
            "calls_after": [self.call(c).label for c in added],
            "method": method,
            "geometry": [[round(float(x), 1), round(float(y), 1)] for x, y in np.asarray(geometry, float).reshape(-1, 2)],
            "unclassified": unclassified,
        }
        command = EditCommand(session, removed, added, action, detail, self._cells_replaced, self.reviewer)
        self.undo_stack.push(command)

    def _cells_replaced(self, removed: list[int], added: list[int]) -> None:
        self._flush_audit()
        self.events.cells_replaced.emit(removed, added)
        self._touch()


def _replaced(cells: Sequence[Cell], removed: Sequence[Cell], added: Sequence[Cell]) -> list[Cell]:
    """The cell list with ``removed`` taken out and ``added`` put where the first of them was
    (else after the last cell of the same kind, so white cells stay first)."""
    gone = {id(c) for c in removed}
    # the first removed cell's index is also its place among the kept ones
    position = next((i for i, c in enumerate(cells) if id(c) in gone), None)
    kept = [c for c in cells if id(c) not in gone]
    if position is None and added:
        same = [i for i, c in enumerate(kept) if c.kind == added[0].kind]
        position = same[-1] + 1 if same else (0 if added[0].kind == "wbc" else len(kept))
    elif position is None:
        position = len(kept)
    return kept[:position] + list(added) + kept[position:]


def _command_text(action: AuditAction, removed: list[int], added: list[int]) -> str:
    """What the Edit menu's Undo names: ``Split cell 12 into 107, 108``."""
    verb = _VERBS.get(action, "Edit")
    new = ", ".join(str(i) for i in added)
    if action is AuditAction.ADD_CELL:
        return f"Add cell {new}"
    if action is AuditAction.DELETE_CELL:
        return f"Delete cell{'s' if len(removed) > 1 else ''} {', '.join(str(i) for i in removed)}"
    if action is AuditAction.SPLIT_CELL:
        return f"Split cell {removed[0]} into {new}"
    return f"{verb} cell {removed[0] if removed else ''} (now {new})"
