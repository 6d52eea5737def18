"""The slide's analysis off the UI thread: :class:`SlideJob` (in a QThread) and :class:`SlideRun` (its state).

The job runs :func:`leukview.core.tiling.analyse_slide` with its ``on_plan``,
``on_tile`` and ``should_cancel`` hooks: each finished tile (and, on a resumed
run, each tile an earlier run finished) is a signal carrying its white cells,
so the viewer draws them as they come; cancelling stops between tiles and
inside one (:class:`~leukview.core.progress.AnalysisCancelled`), the finished
tiles kept in the run folder for the next start.
"""

from __future__ import annotations

import json
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot

from leukview.core.errors import LeukViewError

if TYPE_CHECKING:
    from leukview.core.tiling import SlidePlan, TilingParams

    from .worker import ModelCache

__all__ = ["SlideJob", "SlideRelay", "SlideRun"]


@dataclass
class SlideRun:
    """Where the slide's analysis stands, as the window sees it.

    Attributes
    ----------
    plan : SlidePlan or None
        Once planned.
    done, failed : set of int
        Tile indices.
    resumed : int
        Tiles found finished by an earlier run (not analysed again).
    analysed : list of int
        Tiles analysed by this run, in the order they finished.
    """

    plan: SlidePlan | None = None
    done: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    resumed: int = 0
    analysed: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return 0 if self.plan is None else len(self.plan.tiles)


class SlideJob(QObject):
    """Analyses a slide tile by tile in a QThread (:func:`leukview.core.tiling.analyse_slide`).

    Signals
    -------
    planned(plan, done: list of int, failed: list of int)
        The plan is made and the run loaded (``done``: finished by an earlier run).
    tile_done(index, ok: bool, cells: list of dict, resumed: bool)
        A tile is on disk (or, ``resumed``, was already); ``cells`` its white cells.
    ended(status, payload)
        ``'done'`` with ``(analysis, summary, side_table, notices)``, ``'cancelled'`` with None,
        ``'failed'`` with the reason.
    """

    planned = Signal(object, object, object)
    tile_done = Signal(int, bool, object, bool)
    ended = Signal(str, object)

    def __init__(self, path: Path, out_dir: Path, models: ModelCache, names: list[str] | None, use_models: bool,
                 params: Any, tiling: TilingParams | None, calibration: Any, threshold: float) -> None:
        super().__init__()
        self.path, self.out_dir = path, out_dir
        self.models, self.names, self.use_models = models, names, use_models
        self.params, self.tiling, self.calibration, self.threshold = params, tiling, calibration, threshold
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _on_plan(self, plan: SlidePlan, state: Any) -> None:
        from leukview.core.tiling import read_part

        self.planned.emit(plan, sorted(state.done), sorted(state.failed))
        for index in sorted(state.done):  # a resumed run: its finished tiles' cells on screen at once
            try:
                self.tile_done.emit(index, True, read_part(state.part(index)).wbc, True)
            except LeukViewError:
                continue

    def _on_tile(self, item: Any, state: Any) -> None:
        from leukview.core.tiling import TileFailure

        ok = not isinstance(item, TileFailure)
        self.tile_done.emit(item.index, ok, item.wbc if ok else [], False)

    @Slot()
    def run(self) -> None:
        from leukview.core.analysis import Analysis
        from leukview.core.io import open_slide
        from leukview.core.progress import AnalysisCancelled
        from leukview.core.tiling import analyse_slide

        from .worker import LoadedModels

        try:
            loaded = self.models.load(self.names) if self.use_models else LoadedModels()
            with open_slide(self.path) as slide:
                summary, _, _ = analyse_slide(
                    slide, self.out_dir, loaded.classifiers, stem=self.path.stem, image=str(self.path),
                    params=self.params, tiling=self.tiling, calibration=self.calibration,
                    confidence_threshold=self.threshold, on_plan=self._on_plan, on_tile=self._on_tile,
                    should_cancel=self._cancel.is_set,
                )
            doc = json.loads(Path(summary.cells_json).read_text(encoding="utf-8"))
            analysis = Analysis.from_dict(doc)
            side = (doc.get("side_table") or {}).get("path")
            self.ended.emit("done", (analysis, summary, side, list(loaded.notices)))
        except AnalysisCancelled:
            self.ended.emit("cancelled", None)
        except LeukViewError as exc:
            self.ended.emit("cancelled" if self._cancel.is_set() else "failed", exc.reason)
        except MemoryError:
            self.ended.emit("failed", "not enough memory to analyse the slide")
        except Exception as exc:  # a bug must reach the user as a message
            traceback.print_exc()
            self.ended.emit("failed", f"unexpected error: {type(exc).__name__}: {exc}")


class SlideRelay(QObject):
    """Receives the job's signals in the GUI thread (the window's slots live in a mixin)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window

    @Slot(object, object, object)
    def planned(self, plan: object, done: object, failed: object) -> None:
        self.window._slide_planned(plan, done, failed)

    @Slot(int, bool, object, bool)
    def tile_done(self, index: int, ok: bool, cells: object, resumed: bool) -> None:
        self.window._slide_tile_done(index, ok, cells, resumed)

    @Slot(str, object)
    def ended(self, status: str, payload: object) -> None:
        self.window._slide_ended(status, payload)
