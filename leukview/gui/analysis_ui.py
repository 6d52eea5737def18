"""Analysing from the window: the job in its thread, progress, cancel, settings and their preview.

The field analysed is the document's rule (:meth:`ReviewDocument.analysis_field`);
the result goes to :meth:`ReviewDocument.set_analysis`, whose events put it on screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from leukview.core.errors import LeukViewError

from .settings import SettingsDialog
from .tiles import ArrayTileSource
from .worker import AnalysisJob, AnalysisOutcome, AnalysisRequest, installed_models

if TYPE_CHECKING:
    from PySide6.QtWidgets import QProgressBar, QPushButton, QStatusBar

    from leukview.core.document import ReviewDocument
    from leukview.core.segment import SegmentationParams

    from .overlays import CellOverlay
    from .settings import AppSettings
    from .tiles import TileSource
    from .viewer import SlideView
    from .worker import AnalysisRunner, ModelCache, SegmentationPreview

__all__ = ["AnalysisUi", "segmentation_params", "wait_while"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def wait_while(busy: Callable[[], bool], timeout_ms: int) -> bool:
    """Process events until ``busy()`` is False (a background job ended); False after ``timeout_ms``.

    For tests and screenshots, which wait for an analysis (a field's, a case's, a slide's).
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while busy():
        QApplication.processEvents()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    QApplication.processEvents()
    return True


def segmentation_params(
    values: dict[str, Any], warn: Callable[[str, str], None] | None = None
) -> SegmentationParams:
    """The settings' segmentation parameters; the defaults when they are invalid (said through ``warn``)."""
    from leukview.core.segment import SegmentationParams

    try:
        return SegmentationParams.from_dict(values)
    except (LeukViewError, TypeError, ValueError) as exc:
        if warn is not None:
            warn("Segmentation settings", f"Invalid segmentation settings ({exc}); using the defaults.")
        return SegmentationParams()


class _JobRelay(QObject):
    """Receives a job's signals in the GUI thread and hands them to the window.

    The window's slots live in a mixin, which Qt does not see as a QObject's:
    connected directly they would run in the job's thread.
    """

    def __init__(self, window: AnalysisUi) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window

    @Slot(float, str)
    def progress(self, fraction: float, message: str) -> None:
        self.window._analysis_progress(fraction, message)

    @Slot(object)
    def succeeded(self, outcome: AnalysisOutcome) -> None:
        self.window._analysis_done(outcome)
        self.deleteLater()

    @Slot(str)
    def failed(self, reason: str) -> None:
        self.window._analysis_failed(reason)
        self.deleteLater()

    @Slot()
    def cancelled(self) -> None:
        self.window._analysis_cancelled()
        self.deleteLater()


class AnalysisUi:
    """Analysis and settings of the main window (a mixin of :class:`MainWindow`)."""

    document: ReviewDocument
    settings: AppSettings
    interactive: bool
    source: TileSource | None
    runner: AnalysisRunner
    model_cache: ModelCache
    preview: SegmentationPreview
    progress: QProgressBar
    cancel_button: QPushButton
    view: SlideView
    overlay: CellOverlay
    notices: list[str]
    _settings_dialog: SettingsDialog | None

    if TYPE_CHECKING:  # provided by MainWindow (stubs here would hide QMainWindow's)

        def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

        def warn(self, title: str, text: str) -> None: ...

        def error(self, title: str, text: str) -> None: ...

        def _update_enabled(self) -> None: ...

        def _update_models_label(self) -> None: ...

    def _visible_rect(self) -> tuple[float, float, float, float]:
        rect = self.view.visible_rect()
        return rect.x(), rect.y(), rect.width(), rect.height()

    def _confirm_analysing_again(self, title: str, cells: str, reviewed: int) -> bool:
        """Whether to analyse again, replacing ``cells`` and their ``reviewed`` reviews (asked when interactive)."""
        if not reviewed or not self.interactive:
            return True
        answer = QMessageBox.question(
            self,  # type: ignore[arg-type]
            title,
            f"Analysing again replaces {cells} and their {reviewed} review(s). "
            "The audit log keeps what was done. Continue?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def analyse(self) -> None:
        """Analyse the image (or, for a large image, the field in view) in a worker thread."""
        document = self.document
        if self.source is None or document.path is None:
            return
        reviewed = sum(1 for c in document.cells if c.review.reviewed)
        if not self._confirm_analysing_again("Analyse again?", "the current cells", reviewed):
            return
        params = segmentation_params(self.settings.segmentation, self.warn)
        x, y, w, h = document.analysis_field(self._visible_rect())
        try:
            field = self._read_field(x, y, w, h)
        except LeukViewError as exc:
            self.error("Cannot analyse", exc.reason)
            return
        request = AnalysisRequest(
            image=field,
            params=params,
            calibration=document.calibration,
            image_name=str(document.path),
            model_names=self.settings.model_names or None,
            use_models=self.settings.use_models,
            offset=(x, y),
            full_size=document.size,
        )
        job = AnalysisJob(request, self.model_cache)
        relay = _JobRelay(self)
        job.progress.connect(relay.progress)
        job.succeeded.connect(relay.succeeded)
        job.failed.connect(relay.failed)
        job.cancelled.connect(relay.cancelled)
        self.runner.start(job)
        self._set_busy(True)

    def _read_field(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        assert self.source is not None
        if isinstance(self.source, ArrayTileSource):
            return self.source.image[y : y + h, x : x + w]
        return np.ascontiguousarray(self.source.read_level(0, x, y, w, h))

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat("analysing…")
        self._update_enabled()

    def cancel_analysis(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling…")

    def _analysis_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(fraction * 100)))
        self.progress.setFormat(f"{message} %p%")

    def _job_ended(self) -> None:
        self._set_busy(False)
        self.runner.retire()  # the job is done; its thread ends on its own
        self._update_enabled()

    def _analysis_done(self, outcome: AnalysisOutcome) -> None:
        self._job_ended()
        analysis = outcome.analysis
        if self.source is None or (analysis.width, analysis.height) != self.document.size:
            return  # the image was closed meanwhile
        self.notices = list(outcome.notices)
        params = outcome.request.params if outcome.request is not None else None
        self.document.set_analysis(
            analysis, segmentation=params.to_dict() if params is not None else {}, field=outcome.field
        )
        if outcome.notices:
            self.warn("Models", "\n".join(outcome.notices))
        counts = analysis.counts_by_kind()
        self.statusBar().showMessage(
            f"Analysed: {_plural(counts['wbc'], 'white cell')}, {_plural(counts['rbc'], 'red cell')}, "
            f"{_plural(counts['platelet'], 'platelet')}",
            8000,
        )

    def _analysis_failed(self, reason: str) -> None:
        self._job_ended()
        self.error("Analysis failed", reason)

    def _analysis_cancelled(self) -> None:
        self._job_ended()
        self.statusBar().showMessage("Analysis cancelled; nothing was changed", 5000)

    def wait_for_analysis(self, timeout_ms: int = 120000) -> bool:
        """Process events until the running analysis ends (screenshots, tests)."""
        return wait_while(lambda: self.runner.busy or self.progress.isVisible(), timeout_ms)

    # -- settings -----------------------------------------------------------

    def settings_dialog(self) -> None:
        dialog = SettingsDialog(self.settings, installed_models(self.model_cache.models_dir), self)  # type: ignore[arg-type]
        self._settings_dialog = dialog
        dialog.preview_requested.connect(self._request_preview)
        dialog.preview_closed.connect(self.overlay.clear_preview)
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        self._settings_dialog = None
        self.overlay.clear_preview()
        if accepted:
            self.apply_settings(dialog.apply())

    def apply_settings(self, changed: dict[str, bool]) -> None:
        """React to stored settings that changed (threshold, models, segmentation)."""
        document = self.document
        document.autosave_enabled = self.settings.autosave
        if changed.get("threshold"):
            threshold = self.settings.confidence_threshold
            document.defaults.confidence_threshold = threshold  # for the next images
            document.set_threshold(threshold)  # this one: audited, every view follows
        if changed.get("models"):
            self.model_cache.invalidate()
            self._update_models_label()
        if changed.get("classes"):  # the lab's class list: keys, legend, differential, colours
            self._show_analysis()  # type: ignore[attr-defined]
        if not (changed.get("models") or changed.get("segmentation")) or self.source is None:
            return
        if not self.interactive or (
            QMessageBox.question(self, "Analyse again?", "Settings changed. Analyse the image again now?")  # type: ignore[arg-type]
            == QMessageBox.StandardButton.Yes
        ):
            self.analyse()

    def _request_preview(self, params: Any) -> None:
        if self.source is None:
            if self._settings_dialog is not None:
                self._settings_dialog.show_preview_result({}, "Open an image first.")
            return
        # the same field an analysis would take (one rule for large images)
        x, y, w, h = self.document.analysis_field(self._visible_rect())
        try:
            field = self._read_field(x, y, w, h)
        except LeukViewError as exc:
            if self._settings_dialog is not None:
                self._settings_dialog.show_preview_result({}, exc.reason)
            return
        self.preview.request(field, params, (x, y))

    def _preview_ready(self, cells: object, error: str) -> None:
        if self._settings_dialog is None:
            return
        found = list(cells)  # type: ignore[call-overload]
        self.overlay.set_preview(found)
        counts: dict[str, int] = {}
        for cell in found:
            counts[cell.kind] = counts.get(cell.kind, 0) + 1
        self._settings_dialog.show_preview_result(counts, error)
