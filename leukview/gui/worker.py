"""Analysis off the GUI thread: model loading, the analysis job, the segmentation preview."""

from __future__ import annotations

import contextlib
import os
import threading
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from leukview.core.analysis import Analysis
from leukview.core.calibration import Calibration
from leukview.core.document import FieldRect, analyse_field, offset_cells
from leukview.core.errors import LeukViewError, ModelError
from leukview.core.models import ModelEntry, ModelRegistry, ModelSpec, load_entry
from leukview.core.progress import AnalysisCancelled

if TYPE_CHECKING:
    from leukview.core.segment import SegmentationParams

__all__ = [
    "AnalysisJob",
    "AnalysisOutcome",
    "AnalysisRequest",
    "AnalysisRunner",
    "InstalledModel",
    "LoadedModels",
    "ModelCache",
    "SegmentationPreview",
    "installed_models",
    "offset_cells",
]


@dataclass
class InstalledModel:
    """A model found in the models folder (sidecar read, ONNX not loaded), as the settings show it."""

    folder: str  # the folder's name: what the settings store
    spec: ModelSpec | None  # None when the model cannot be loaded
    error: str | None = None

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> InstalledModel:
        return cls(entry.name, entry.spec if entry.ok else None, "; ".join(entry.problems) or None)


def installed_models(models_dir: str | os.PathLike[str] | None) -> list[InstalledModel]:
    """Every model folder of the models folder, usable or not (the core's model registry)."""
    return [InstalledModel.from_entry(e) for e in ModelRegistry(models_dir).entries()]


@dataclass
class LoadedModels:
    classifiers: list[Any] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


class ModelCache:
    """Loads the chosen models once (in a worker thread) and keeps them for later analyses."""

    def __init__(self, models_dir: str | os.PathLike[str] | None = None) -> None:
        self.models_dir = None if models_dir is None else os.fspath(models_dir)
        self._key: tuple[str, ...] | None = None
        self._loaded = LoadedModels()
        self._lock = threading.Lock()

    def load(self, names: Sequence[str] | None) -> LoadedModels:
        """Classifiers for ``names`` (every installed model when None or empty).

        A model that fails to load is left out with a notice; the others still load.
        """
        entries = ModelRegistry(self.models_dir).entries()
        chosen = [e for e in entries if not names or any(e.matches(name) for name in names)]
        wanted = [e for e in chosen if e.ok]
        key = tuple(e.name for e in wanted)
        with self._lock:
            if key == self._key:
                return self._loaded
            loaded = LoadedModels()
            for entry in chosen:
                if not entry.ok:
                    loaded.notices.append(f"model '{entry.name}' skipped: {'; '.join(entry.problems)}")
            for entry in wanted:
                try:
                    loaded.classifiers.append(load_entry(entry))
                except ModelError as exc:
                    loaded.notices.append(f"model '{entry.name}' could not be loaded: {exc.reason}")
            self._key, self._loaded = key, loaded
            return loaded

    def invalidate(self) -> None:
        with self._lock:
            self._key = None
            self._loaded = LoadedModels()


@dataclass
class AnalysisRequest:
    """What to analyse: a field (the whole image, or a region of a large one)."""

    image: np.ndarray
    params: SegmentationParams | None = None
    calibration: Calibration = field(default_factory=Calibration.unknown)
    image_name: str | None = None
    model_names: list[str] | None = None
    use_models: bool = True
    offset: tuple[int, int] = (0, 0)
    full_size: tuple[int, int] | None = None  # (width, height) of the whole image


@dataclass
class AnalysisOutcome:
    analysis: Analysis
    classifiers: list[Any]
    notices: list[str]
    request: AnalysisRequest | None = None

    @property
    def field(self) -> FieldRect | None:
        """(x, y, width, height) of the analysed field in image pixels."""
        if self.request is None:
            return None
        height, width = self.request.image.shape[:2]
        return (*self.request.offset, width, height)


class AnalysisJob(QObject):
    """Runs :func:`leukview.core.document.analyse_field` in a QThread; cancel() stops it between stages."""

    progress = Signal(float, str)
    succeeded = Signal(object)  # AnalysisOutcome
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, request: AnalysisRequest, models: ModelCache) -> None:
        super().__init__()
        self.request = request
        self.models = models
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        req = self.request
        try:
            self.progress.emit(0.0, "loading models")
            loaded = self.models.load(req.model_names) if req.use_models else LoadedModels()
            if self._cancel.is_set():
                raise AnalysisCancelled()
            analysis = analyse_field(
                req.image,
                loaded.classifiers,
                req.params,
                offset=req.offset,
                full_size=req.full_size,
                calibration=req.calibration,
                image_name=req.image_name,
                progress=lambda fraction, message: self.progress.emit(fraction, message),
                should_cancel=self._cancel.is_set,
            )
            self.succeeded.emit(AnalysisOutcome(analysis, loaded.classifiers, loaded.notices, req))
        except AnalysisCancelled:
            self.cancelled.emit()
        except LeukViewError as exc:
            self.failed.emit(str(exc.reason))
        except MemoryError:
            self.failed.emit("not enough memory to analyse this image")
        except Exception as exc:  # a bug must reach the user as a message, not kill the window
            traceback.print_exc()
            self.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self.finished.emit()


class AnalysisRunner(QObject):
    """Owns the analysis thread.

    Starting a job, or opening another image, retires the running job: it is
    cancelled and disconnected, and finishes on its own (cancellation is
    polled between stages), so the window never waits for it.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job: AnalysisJob | None = None
        self.thread: QThread | None = None
        self._retired: list[tuple[AnalysisJob, QThread]] = []

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(self, job: AnalysisJob) -> None:
        self.retire()
        thread = QThread()
        job.moveToThread(thread)
        thread.started.connect(job.run)
        job.finished.connect(thread.quit)
        self.job, self.thread = job, thread
        thread.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def retire(self) -> None:
        """Let go of the current job without waiting: its results will not be delivered."""
        if self.thread is None or self.job is None:
            return
        job, thread = self.job, self.thread
        job.cancel()
        for signal in (job.progress, job.succeeded, job.failed, job.cancelled):
            # nothing connected is fine: PySide warns or raises then
            with warnings.catch_warnings(), contextlib.suppress(RuntimeError, TypeError):
                warnings.simplefilter("ignore")
                signal.disconnect()
        self._retired.append((job, thread))
        self.job = self.thread = None
        self._reap()

    def _reap(self) -> None:
        self._retired = [(j, t) for j, t in self._retired if not t.wait(0)]

    def stop(self, wait_ms: int = 30000) -> None:
        """Cancel everything and wait for the threads (on close)."""
        self.retire()
        for _, thread in self._retired:
            thread.quit()
            thread.wait(wait_ms)
        self._retired = []


class _PreviewSignals(QObject):
    done = Signal(int, object, str)  # sequence number, cells, error


class _PreviewTask(QRunnable):
    def __init__(
        self,
        seq: int,
        image: np.ndarray,
        params: SegmentationParams,
        offset: tuple[int, int],
        signals: _PreviewSignals,
    ) -> None:
        super().__init__()
        self.seq, self.image, self.params, self.offset, self.signals = seq, image, params, offset, signals

    def run(self) -> None:
        from leukview.core.segment import segment

        try:
            cells = segment(self.image, self.params).cells
            offset_cells(cells, *self.offset)
            self.signals.done.emit(self.seq, cells, "")
        except LeukViewError as exc:
            self.signals.done.emit(self.seq, [], exc.reason)
        except Exception as exc:  # a bad parameter mix must not close the dialog
            self.signals.done.emit(self.seq, [], f"{type(exc).__name__}: {exc}")


class SegmentationPreview(QObject):
    """Runs trial segmentations in the background; only the newest result is delivered."""

    ready = Signal(object, str)  # cells, error

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._seq = 0
        self._signals = _PreviewSignals()
        self._signals.done.connect(self._done)
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(1)

    def request(self, image: np.ndarray, params: SegmentationParams, offset: tuple[int, int] = (0, 0)) -> None:
        self._seq += 1
        self._pool.clear()  # a newer request makes queued ones pointless
        self._pool.start(_PreviewTask(self._seq, image, params, offset, self._signals))

    def _done(self, seq: int, cells: object, error: str) -> None:
        if seq == self._seq:
            self.ready.emit(cells, error)

    def wait(self, msecs: int = 10000) -> None:
        self._pool.waitForDone(msecs)
