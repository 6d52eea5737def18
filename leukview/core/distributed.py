"""Analysis on a Dask cluster: the tiles of a slide and the images of a folder, one task each.

The client (``leukview analyze --scheduler tcp://HOST:PORT`` or ``--workers N``)
sends each worker a small task: a tile of a slide (:func:`tile_task`, with the
plan as JSON) or a field image (:func:`field_task`, with its path). Workers
read the pixels themselves from a path they share with the client (a network
share, the same container volume), load the models once per worker process
(:func:`worker_models`, cached) and open each slide once (:func:`worker_slide`,
cached), and send back only the results: JSON of cells, never pixels. The
client writes them to disk as they come (:mod:`leukview.core.tiling`'s part
files and manifest), so an interrupted run resumes.

The results are the same as a single-process run's: a task runs exactly the
function the single-process run calls (:func:`~leukview.core.tiling.analyse_tile`,
:func:`analyse_field_file`), and cell ids are given in tile order when the
slide is assembled, whatever order the tiles finished in.

Dask is optional (``pip install leukview[cluster]``): this module imports it
only when a cluster is used.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calibration import Calibration
from .calls import DEFAULT_CONFIDENCE_THRESHOLD
from .errors import LeukViewError

if TYPE_CHECKING:
    from .analysis import Analysis
    from .io import Slide
    from .models import Classifier
    from .tiling import SlidePlan, TileFailure, TileResult

__all__ = [
    "DaskExecutor",
    "FieldOptions",
    "analyse_field_file",
    "cluster_client",
    "dask_available",
    "field_task",
    "tile_task",
    "worker_models",
    "worker_slide",
]

_LOCK = threading.Lock()
_MODELS: dict[tuple[tuple[str, ...], str | None], list[Classifier]] = {}
_SLIDES: OrderedDict[tuple[str, int, int], Slide] = OrderedDict()
_MAX_OPEN_SLIDES = 4


def dask_available() -> bool:
    """Whether ``dask.distributed`` can be imported here."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- worker side


def worker_models(names: Sequence[str], models_dir: str | None) -> list[Classifier]:
    """The models of a task, loaded once per process and kept (a worker's cache).

    Parameters
    ----------
    names : sequence of str
        Model names in the order they run; empty: none.
    models_dir : str, optional
        The models folder as the workers see it (the installed ``models/`` when None).
    """
    key = (tuple(names), models_dir)
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is None:
            from .models import load_models

            cached = load_models(list(names), models_dir) if names else []
            _MODELS[key] = cached
        return cached


def worker_slide(path: str) -> Slide:
    """An open slide, kept per process (re-opened when the file changes)."""
    from .io import open_slide

    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        slide = _SLIDES.get(key)
        if slide is None:
            slide = open_slide(path)
            _SLIDES[key] = slide
            while len(_SLIDES) > _MAX_OPEN_SLIDES:
                _, old = _SLIDES.popitem(last=False)
                old.close()
        else:
            _SLIDES.move_to_end(key)
        return slide


def tile_task(plan: dict[str, Any], index: int) -> dict[str, Any]:
    """One tile of a plan, on a worker: :meth:`TileResult.to_dict`, or ``{"index", "error"}``."""
    from .tiling import SlidePlan, analyse_tile

    try:
        p = SlidePlan.from_dict(plan)
        slide = worker_slide(p.path)
        classifiers = worker_models(p.models, p.models_dir)
        return analyse_tile(slide, classifiers, p, index).to_dict()
    except LeukViewError as exc:
        return {"index": index, "error": exc.reason}
    except MemoryError:
        return {"index": index, "error": "not enough memory to analyse this tile"}


@dataclass(frozen=True)
class FieldOptions:
    """How the field images of a run are analysed (sent to every worker).

    Attributes
    ----------
    models : tuple of str
        Names, in order.
    models_dir : str, optional
    pixel_size_um : float, optional
        The user's pixel size (overrides the files').
    confidence_threshold : float
    overlay : bool
        Also render the overlay PNG.
    """

    models: tuple[str, ...] = ()
    models_dir: str | None = None
    pixel_size_um: float | None = None
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    overlay: bool = False


def file_calibration(path: str | os.PathLike[str], user: float | None = None) -> Calibration:
    """The user's pixel size when given, else what the file's metadata say (unknown when nothing usable)."""
    from .io import image_info

    if user is not None:
        return Calibration.from_user(user)
    try:
        return Calibration.from_file(image_info(path).pixel_size_um)
    except LeukViewError:
        return Calibration.unknown()


def analyse_field_file(
    path: str | os.PathLike[str],
    classifiers: Sequence[Classifier],
    *,
    image_name: str | None = None,
    pixel_size_um: float | None = None,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
) -> tuple[Analysis, Any]:
    """Read a field image and analyse it whole (what ``leukview analyze`` does per image).

    Returns
    -------
    analysis : Analysis
    image : ndarray of uint8, shape (H, W, 3)
        The pixels (for an overlay).
    """
    from .analysis import analyze_image
    from .io import read_image

    image = read_image(path)
    analysis = analyze_image(
        image,
        classifiers,
        calibration=file_calibration(path, pixel_size_um),
        confidence_threshold=confidence_threshold,
        image_name=image_name if image_name is not None else os.fspath(path),
    )
    return analysis, image


def field_task(path: str, image_name: str, options: FieldOptions) -> dict[str, Any]:
    """One field image on a worker: ``{"document": cells.json, "overlay": PNG bytes or None}`` or ``{"error"}``."""
    try:
        classifiers = worker_models(options.models, options.models_dir)
        analysis, image = analyse_field_file(
            path,
            classifiers,
            image_name=image_name,
            pixel_size_um=options.pixel_size_um,
            confidence_threshold=options.confidence_threshold,
        )
        overlay = None
        if options.overlay:
            overlay = overlay_png(image, analysis)
        return {"document": analysis.to_dict(), "overlay": overlay}
    except LeukViewError as exc:
        return {"error": exc.reason}
    except MemoryError:
        return {"error": "not enough memory to analyse this image"}


def overlay_png(image: Any, analysis: Analysis) -> bytes:
    """The overlay PNG of ``analyze --overlay`` (:func:`leukview.core.overlay.render_overlay`), encoded."""
    import cv2

    from .overlay import render_overlay

    overlay = render_overlay(image, analysis)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LeukViewError("could not encode the overlay PNG")
    return bytes(encoded.tobytes())


# ---------------------------------------------------------------- client side


@contextmanager
def cluster_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: of an existing scheduler, or of a local cluster of ``workers`` processes.

    A local cluster runs one thread per worker process; each worker's
    onnxruntime gets the cores divided among the workers
    (``LEUKVIEW_THREADS``, unless set already).

    Raises
    ------
    LeukViewError
        Dask is not installed, or the scheduler cannot be reached.
    """
    if not dask_available():
        raise LeukViewError("Dask is not installed: pip install 'leukview[cluster]' (dask[distributed])")
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            n = max(1, int(workers or 1))
            from .models import physical_cores

            os.environ.setdefault("LEUKVIEW_THREADS", str(max(1, physical_cores() // n)))
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
            )
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        raise LeukViewError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class DaskExecutor:
    """Runs tiles (and field images) as Dask tasks; results come back as they finish.

    Parameters
    ----------
    client : distributed.Client
    max_in_flight : int, optional
        Tasks submitted ahead of the results taken (default: twice the
        cluster's threads), so a huge slide does not queue thousands of
        results in the workers' memory.
    """

    def __init__(self, client: Any, max_in_flight: int | None = None) -> None:
        self.client = client
        if max_in_flight is None:
            threads = sum(self.client.nthreads().values()) or 1
            max_in_flight = 2 * threads
        self.max_in_flight = max(1, int(max_in_flight))

    def _stream(self, calls: Iterator[tuple[Any, tuple[Any, ...], str]]) -> Iterator[tuple[str, Any]]:
        from distributed import as_completed

        pending = as_completed()
        keys: dict[Any, str] = {}
        for _ in range(self.max_in_flight):
            item = next(calls, None)
            if item is None:
                break
            fn, args, key = item
            future = self.client.submit(fn, *args, key=key, pure=False)
            keys[future] = key
            pending.add(future)
        for future in pending:
            key = keys.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # a worker died or the task raised: name it, go on
                result = {"error": f"the task failed on the cluster ({type(exc).__name__}: {exc})"}
            future.release()
            yield key, result
            item = next(calls, None)
            if item is not None:
                fn, args, new_key = item
                new = self.client.submit(fn, *args, key=new_key, pure=False)
                keys[new] = new_key
                pending.add(new)

    def run(self, plan: SlidePlan, indices: Sequence[int]) -> Iterator[TileResult | TileFailure]:
        """Tiles of a plan (the :class:`~leukview.core.tiling.TileExecutor` protocol)."""
        from .tiling import TileFailure, TileResult

        payload = plan.to_dict()
        prefix = f"leukview-tile-{plan.key()[:16]}"
        calls = ((tile_task, (payload, i), f"{prefix}-{i}") for i in indices)
        for key, result in self._stream(calls):
            index = int(key.rsplit("-", 1)[1])
            if "error" in result:
                yield TileFailure(index, str(result["error"]))
            else:
                yield TileResult.from_dict(result)

    def fields(self, items: Sequence[tuple[str, str]], options: FieldOptions) -> Iterator[tuple[int, dict[str, Any]]]:
        """Field images ``(path, image name)``: ``(position in items, field_task's result)`` as they finish."""
        import uuid

        run = uuid.uuid4().hex[:12]
        calls = ((field_task, (path, name, options), f"leukview-field-{run}-{k}") for k, (path, name) in enumerate(items))
        for key, result in self._stream(calls):
            yield int(key.rsplit("-", 1)[1]), result


def shared_path(path: str | os.PathLike[str]) -> str:
    """The absolute path a worker is given (workers must see the same file system there)."""
    return str(Path(path).resolve())
