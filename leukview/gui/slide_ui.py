"""A whole slide in the viewer: opened at once, analysed tile by tile in the background, reviewed as a case.

This mixin of :class:`~leukview.gui.mainwindow.MainWindow` adds:

* **Opening** (:meth:`SlideUi.open_slide`): a vendor slide file, or a TIFF of
  more than :attr:`SlideUi.slide_min_pixels`, is shown through a
  :class:`~leukview.gui.slide_source.SlideTileSource` (header only at open;
  levels read as the view needs them), never read whole.
* **The Slide dock** (:class:`SlidePanel`): the slide's thumbnail with the
  tile grid (done, failed, pending drawn differently) and the automatic
  counting area; a click moves the main view there. *Analyse slide*, a
  progress bar per tile and *Cancel*.
* **Analysis** (:meth:`SlideUi.analyse_slide`): :func:`leukview.core.tiling.analyse_slide`
  in a QThread (:class:`SlideJob`), its run folder ``<out>/<stem>.tiles/``
  beside the slide (else in the user's sessions folder), so starting again
  resumes; each finished tile's white cells are drawn at once
  (:class:`LiveCells`); Esc or *Cancel* stops between tiles (the finished
  ones are kept).
* **Review**: the assembled cells.json becomes a one-slide case
  (:class:`~leukview.core.case.Case`, kind ``slide``, with the counting
  area) in the window's :class:`~leukview.core.document.CaseDocument`: the
  differential (counting area applied), the gallery, the report and the
  saved ``<stem>.case.leukview.json`` cover the whole slide, and reopening
  the slide brings that case back. That case file opened itself (File ▸ Open
  case, :meth:`SlideUi.open_slide_case`) opens the slide the same way, never
  read whole.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QThread
from PySide6.QtGui import QImage

from leukview.core.errors import LeukViewError
from leukview.core.io import SLIDE_MIN_PIXELS

from .analysis_ui import segmentation_params, wait_while
from .slide_job import SlideJob, SlideRelay, SlideRun
from .slide_source import SlidePixels, SlideTileSource
from .slide_view import LiveCells, SlidePanel
from .tiles import TiledImageItem, TileSource

if TYPE_CHECKING:
    from leukview.core.analysis import Analysis
    from leukview.core.case import Case
    from leukview.core.document import CaseDocument
    from leukview.core.tiling import SlidePlan, SlideSummary, TilingParams

__all__ = ["SlideUi", "is_slide_case", "slide_out_dir"]

def slide_out_dir(path: Path, fallback: Path) -> Path:
    """Where a slide's run and cells.json go: beside the slide, else (read-only folder) ``fallback/slides``."""
    folder = path.parent
    if os.access(folder, os.W_OK):
        return folder
    return fallback / "slides"


def is_slide_case(case: Case) -> bool:
    """Whether a case is one slide's (as :class:`SlideUi` saves it): opened through the slide's lazy source."""
    return len(case.images) == 1 and case.images[0].kind == "slide"


class SlideUi:
    """A whole slide in the main window (a mixin of :class:`MainWindow`; see the module docstring)."""

    document: CaseDocument
    source: TileSource | None
    image_item: TiledImageItem | None
    #: A TIFF with more pixels than this opens as a slide (vendor formats always do).
    slide_min_pixels = SLIDE_MIN_PIXELS

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    def _build_slide(self) -> None:
        self.slide_panel = SlidePanel()
        self.slide_panel.overview.navigate.connect(lambda p: self.view.centre_on(p))
        self.view.view_changed.connect(self.slide_panel.overview.set_visible_rect)
        self.slide_panel.analyse_button.clicked.connect(self.analyse_slide)
        self.slide_panel.cancel_button.clicked.connect(self.cancel_slide_analysis)
        self.slide_dock = self._dock("Slide", self.slide_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.overview_dock, self.slide_dock)  # the Slide dock is the overview and more
        self.slide_dock.setVisible(False)
        self.slide_path: Path | None = None
        self.slide_source: SlideTileSource | None = None
        self.slide_live: LiveCells | None = None
        self.slide_run = SlideRun()
        #: How tiles are cut (None: the core's defaults); where runs go (None: beside the slide).
        self.slide_tiling: TilingParams | None = None
        self.slide_out: Path | None = None
        self._slide_job: SlideJob | None = None
        self._slide_thread: QThread | None = None
        self._slide_retired: list[tuple[SlideJob | None, QThread]] = []

    # ------------------------------------------------------------ opening

    def opens_as_slide(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file is shown as a whole slide: a vendor format, or a TIFF above :attr:`slide_min_pixels`."""
        from leukview.core.io import reads_as_slide

        return reads_as_slide(path, min_pixels=self.slide_min_pixels)

    def open_slide(self, path: str | os.PathLike[str], analyse: bool | None = None, *,
                   case: Case | None = None, case_file: str | os.PathLike[str] | None = None) -> bool:
        """Show a whole slide at once (levels read as the view needs them); bring its saved case back.

        The slide is analysed on open only when ``analyse`` is True (a slide
        takes minutes to hours): *Analyse slide* starts it. False, with an
        error, when the file cannot be opened.

        ``case`` (read from ``case_file``): the slide's case to review, instead
        of the one found beside the slide.
        """
        from leukview.core.document import FieldHeader

        path = Path(path)
        try:
            source = SlideTileSource.open(path)
            item = TiledImageItem(source)
        except LeukViewError as exc:
            self.error("Cannot open slide", f"{path.name}\n\n{exc.reason}")
            return False
        except (OSError, MemoryError) as exc:
            self.error("Cannot open slide", f"{path.name}\n\n{exc}")
            return False
        if not self.maybe_save():
            item.close()
            return False
        self.close_image()
        self.source, self.image_item = source, item
        self.slide_path, self.slide_source = path, source
        self.scene.addItem(item)
        self.view.set_image_rect(item.boundingRect())
        self._slide_thumbnail(item.thumbnail)
        item.thumbnail_changed.append(self._slide_thumbnail)
        self.stack.setCurrentWidget(self.view)
        self.document.open(path, FieldHeader(source.width, source.height, source.slide.pixel_size_um))
        self.settings.add_recent(str(path.resolve()))
        self.view.fit()
        self.slide_dock.setVisible(True)
        self.slide_dock.raise_()
        if case is not None:
            self._adopt_slide_case(case, None if case_file is None else Path(case_file))
            restored = True
        else:
            restored = self._restore_slide_case()
        mpx = source.width * source.height / 1e6
        self.slide_panel.status.setText(
            f"<b>{path.name}</b>: {source.slide.vendor}, {source.width:,} × {source.height:,} px ({mpx:,.0f} Mpx), "
            f"{source.slide.level_count} level(s)" + ("; its case is restored" if restored else "; not analysed")
        )
        if not restored:
            self.notices = ["<b>Whole slide</b>: Image ▸ Analyse the whole slide (Ctrl+Alt+R) analyses it tile "
                            "by tile in the background; cells appear as tiles finish, and starting again resumes."]
        self._show_calibration()
        self._update_enabled()
        self._update_models_label()
        self._update_banner()
        self._update_title()
        self.statusBar().showMessage(f"Opened slide {path.name}: {source.width} × {source.height} px", 5000)
        if analyse:
            self.analyse_slide()
        return True

    def open_slide_case(self, case: Case, path: str | os.PathLike[str]) -> bool:
        """A one-slide case file (:func:`is_slide_case`): its slide shown lazily, as :meth:`open_slide` shows it."""
        return self.open_slide(case.images[0].path, case=case, case_file=path)

    def _slide_thumbnail(self, image: QImage) -> None:
        if self.slide_source is None:
            return
        w, h = self.slide_source.width, self.slide_source.height
        self.overview.set_image(image, w, h)
        self.slide_panel.overview.set_image(image, w, h)

    def _slide_case_files(self) -> list[Path]:
        from leukview.core.case import case_path

        assert self.slide_path is not None
        folders = [self.slide_path.parent, self._slide_out_dir(), self.document.files.folder]
        return [case_path(f, self.slide_path.stem) for f in dict.fromkeys(folders)]

    def _restore_slide_case(self) -> bool:
        """The slide's saved case (its reviews), when one beside it names this slide."""
        from leukview.core.case import load_case

        for file in self._slide_case_files():
            if not file.is_file():
                continue
            try:
                case = load_case(file)
            except LeukViewError:
                continue
            if len(case.images) != 1 or Path(case.images[0].path).resolve() != self.slide_path.resolve():  # type: ignore[union-attr]
                continue
            self._adopt_slide_case(case, file)
            return True
        return False

    def _adopt_slide_case(self, case: Any, file: Path | None) -> None:
        image = case.images[0]
        self.document.read_pixels = self._slide_pixels
        self.document.open_case(case, file)
        area = image.counting_area
        self.slide_panel.overview.set_area([] if area is None else area.polygons)

    def _slide_pixels(self, image_id: str) -> Any:
        case = self.document.case
        if self.slide_source is not None and case is not None and Path(case.image(image_id).path) == self.slide_path:
            return SlidePixels(self.slide_source)
        return self.document._read_pixels(image_id)

    def _slide_out_dir(self) -> Path:
        assert self.slide_path is not None
        if self.slide_out is not None:
            return Path(self.slide_out)
        return slide_out_dir(self.slide_path, self.document.files.folder)

    def close_slide(self) -> None:
        """Forget the slide (the window's close_image calls this first): stop its run, clear its layer."""
        self.stop_slide_analysis(wait_ms=5000)
        if self.slide_live is not None:
            self.scene.removeItem(self.slide_live)
        self.slide_live = None
        self.slide_path = self.slide_source = None
        self.slide_run = SlideRun()
        self.slide_panel.overview.clear()
        self.slide_panel.status.setText("No slide open")
        self.slide_dock.setVisible(False)
        self.document.read_pixels = self.document._read_pixels

    # ------------------------------------------------------------ analysis

    @property
    def slide_busy(self) -> bool:
        return self._slide_thread is not None and self._slide_thread.isRunning()

    def analyse(self) -> None:
        """Ctrl+R: a slide is analysed whole (tile by tile); any other image as before."""
        if self.slide_source is not None:
            self.analyse_slide()
        else:
            super().analyse()  # type: ignore[misc]

    def analyse_slide(self) -> None:
        """Analyse the open slide tile by tile in the background (resumes an earlier run of the same plan)."""
        if self.slide_source is None or self.slide_path is None or self.slide_busy:
            return
        reviewed = sum(1 for c in self.document.cells if c.review.reviewed) if self.document.session else 0
        if not self._confirm_analysing_again("Analyse the slide again?", "the slide's cells", reviewed):
            return
        params = segmentation_params(self.settings.segmentation)
        calibration = self.document.calibration
        job = SlideJob(
            self.slide_path, self._slide_out_dir(), self.model_cache, self.settings.model_names or None,
            self.settings.use_models, params, self.slide_tiling, calibration if calibration.known else None,
            self.document.threshold,
        )
        thread = QThread()
        job.moveToThread(thread)
        relay = SlideRelay(self)
        thread.started.connect(job.run)
        job.planned.connect(relay.planned)
        job.tile_done.connect(relay.tile_done)
        job.ended.connect(relay.ended)
        job.ended.connect(thread.quit)
        self._slide_job, self._slide_thread, self._slide_relay = job, thread, relay
        self.slide_run = SlideRun()
        if self.slide_live is not None:
            self.scene.removeItem(self.slide_live)
        self.slide_live = LiveCells(self.slide_source.width, self.slide_source.height)
        self.scene.addItem(self.slide_live)
        self.notices = []
        self._update_banner()
        self.slide_panel.set_busy(True)
        self.slide_panel.status.setText("Planning: the overview, the smear's extent, the red-cell size…")
        self._slide_started = time.monotonic()
        thread.start()
        self._update_enabled()

    def cancel_analysis(self) -> None:
        """Esc: the slide's analysis when it runs, else the case's or the field's."""
        if not self.cancel_slide_analysis():
            super().cancel_analysis()  # type: ignore[misc]

    def cancel_slide_analysis(self) -> bool:
        if self._slide_job is not None and self.slide_busy:
            self._slide_job.cancel()
            self.statusBar().showMessage("Cancelling the slide's analysis (the finished tiles are kept)…")
            return True
        return False

    def stop_slide_analysis(self, wait_ms: int = 30000) -> None:
        """Cancel the slide's analysis and wait for its thread (the slide or the window closes)."""
        job, thread = self._slide_job, self._slide_thread
        if job is not None:
            job.cancel()
        if thread is not None:
            thread.quit()
            if not thread.wait(wait_ms):
                self._slide_retired.append((job, thread))  # never destroyed while it runs
        self._slide_job = self._slide_thread = None

    def _slide_planned(self, plan: SlidePlan, done: list[int], failed: list[int]) -> None:
        run = self.slide_run
        run.plan, run.done, run.failed, run.resumed = plan, set(done), set(failed), len(done)
        overview = self.slide_panel.overview
        overview.set_plan(plan)
        for index in done:
            overview.set_state(index, "done")
        for index in failed:
            overview.set_state(index, "failed")
        self.slide_panel.progress.setRange(0, run.total)
        self._slide_progress()

    def _slide_tile_done(self, index: int, ok: bool, cells: list[dict[str, Any]], resumed: bool) -> None:
        if self._slide_job is None:
            return  # a run stopped meanwhile
        run = self.slide_run
        if not resumed:
            run.analysed.append(index)
            (run.done if ok else run.failed).add(index)
            (run.failed if ok else run.done).discard(index)
            self.slide_panel.overview.set_state(index, "done" if ok else "failed")
        if self.slide_live is not None and cells:
            self.slide_live.add(cells)
        self._slide_progress()

    def _slide_progress(self) -> None:
        run = self.slide_run
        finished = len(run.done) + len(run.failed)
        cells = len(self.slide_live.cells) if self.slide_live is not None else 0
        bar = self.slide_panel.progress
        bar.setValue(finished)
        bar.setFormat(f"{finished}/{run.total} tiles")
        text = (f"Slide: {finished} of {run.total} tiles" + (f" ({run.resumed} from the earlier run)" if run.resumed else "")
                + (f", {len(run.failed)} failed" if run.failed else "") + f", {cells} white cells so far")
        self.slide_panel.status.setText(text)
        self.statusBar().showMessage(text)

    def _slide_ended(self, status: str, payload: object) -> None:
        thread = self._slide_thread
        if thread is not None:
            thread.quit()
            if not thread.wait(10000):
                self._slide_retired.append((self._slide_job, thread))
        self._slide_job = self._slide_thread = None
        self.slide_panel.set_busy(False)
        run = self.slide_run
        if status == "done":
            assert isinstance(payload, tuple)
            analysis: Analysis = payload[0]
            summary: SlideSummary = payload[1]
            side: str | None = payload[2]
            notices: list[str] = payload[3]
            self._slide_assembled(analysis, summary, side)
            seconds = time.monotonic() - self._slide_started
            msg = (f"Slide analysed: {len(run.analysed)} tiles in {seconds:.0f} s"
                   + (f", {run.resumed} resumed" if run.resumed else "")
                   + f"; {summary.counts_by_kind.get('wbc', 0)} white cells")
            if summary.failed:
                msg += f"; {len(summary.failed)} tile(s) failed (Analyse slide retries them)"
            self.slide_panel.status.setText(msg)
            self.statusBar().showMessage(msg, 10000)
            if notices:
                self.warn("Models", "\n".join(notices))
        elif status == "cancelled":
            left = run.total - len(run.done)
            msg = f"Slide analysis cancelled: {len(run.done)} of {run.total} tiles done, {left} left (Analyse slide resumes)"
            self.slide_panel.status.setText(msg)
            self.statusBar().showMessage(msg, 10000)
        else:
            self.slide_panel.status.setText(f"Slide analysis failed: {payload}")
            self.error("Slide analysis failed", str(payload))
        self._update_enabled()

    def _slide_assembled(self, analysis: Analysis, summary: SlideSummary, side_table: str | None) -> None:
        """The assembled cells become the slide's case: one review document over the whole slide."""
        from leukview.core.case import Case

        assert self.slide_path is not None
        area = None if summary.counting_area.empty else summary.counting_area
        case = self.document.case
        mine = case is not None and len(case.images) == 1 and Path(case.images[0].path) == self.slide_path
        if mine:  # analysed again: the case keeps its audit log
            image = case.images[0]  # type: ignore[union-attr]
            self.document.set_field_analysis(image.id, analysis)
            image.side_table, image.estimated_counts = side_table, dict(summary.estimated_counts)
            case.set_counting_area(image.id, area, self.document.reviewer)  # type: ignore[union-attr]
            self.slide_panel.overview.set_area([] if area is None else area.polygons)
            self.document.events.case_changed.emit()
            self._update_differential()
        else:
            case = Case.new(self.slide_path.stem, self._preferred_settings())
            case.add_image(analysis, self.slide_path, kind="slide", image_id=self.slide_path.stem,
                           counting_area=area, side_table=side_table, estimated_counts=summary.estimated_counts)
            self._adopt_slide_case(case, None)
        if self.slide_live is not None:  # the overlay has every cell now
            self.scene.removeItem(self.slide_live)
            self.slide_live = None
        self.notices = []
        self._update_banner()
        if not self.read_only:
            self.save_session_file()

    def wait_for_slide(self, timeout_ms: int = 120000) -> bool:
        """Process events until the slide's analysis ends (tests, screenshots)."""
        return wait_while(lambda: self.slide_busy or self._slide_job is not None, timeout_ms)
