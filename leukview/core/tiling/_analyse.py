"""A whole slide analysed: plan, tiles (resumable), assembly; and its overview picture."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..calibration import Calibration
from ..calls import DEFAULT_CONFIDENCE_THRESHOLD
from ..progress import CancelCheck
from ._area import CountingArea
from ._assemble import SIDE_TABLE_MIN_CELLS, SlideSummary, assemble
from ._plan import Overview, SlidePlan, TilingParams, plan_slide
from ._run import RunState, SerialExecutor, TileExecutor, TileFailure, load_run, run_tiles
from ._tile import TileResult

if TYPE_CHECKING:
    from ..io import Slide
    from ..models import Classifier

__all__ = ["analyse_slide", "render_overview", "work_folder"]


def work_folder(out_dir: str | os.PathLike[str], stem: str) -> Path:
    """Where a slide's run keeps its manifest and part files: ``<out>/<stem>.tiles/``."""
    return Path(out_dir) / f"{stem}.tiles"


def render_overview(
    overview: Overview,
    plan: SlidePlan | None = None,
    area: CountingArea | None = None,
    done: Sequence[int] = (),
    failed: Sequence[int] = (),
) -> np.ndarray:
    """The overview with the smear's extent, the tiles (done green, failed red) and the counting area.

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
    """
    img = overview.image.copy()
    s = overview.downsample
    contours, _ = cv2.findContours(overview.extent.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (90, 90, 90), 1)
    if plan is not None:
        done_set, failed_set = set(done), set(failed)
        for index in plan.tiles:
            t = plan.grid.tile(index)
            colour = (0, 170, 0) if index in done_set else (200, 0, 0) if index in failed_set else (170, 170, 170)
            p0 = (int(t.x0 / s), int(t.y0 / s))
            p1 = (max(int(t.x1 / s) - 1, p0[0]), max(int(t.y1 / s) - 1, p0[1]))
            cv2.rectangle(img, p0, p1, colour, 1)
    if area is not None:
        for polygon in area.polygons:
            rings = [np.round(r / s).astype(np.int32).reshape(-1, 1, 2) for r in polygon]
            cv2.polylines(img, rings, True, (0, 90, 255), 2)
    return img


def analyse_slide(
    slide: Slide,
    out_dir: str | os.PathLike[str],
    classifiers: Sequence[Classifier] = (),
    *,
    stem: str | None = None,
    image: str | None = None,
    params: Any | None = None,
    tiling: TilingParams | None = None,
    calibration: Calibration | None = None,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    models_dir: str | None = None,
    executor: TileExecutor | None = None,
    resume: bool = True,
    side_table_min: int = SIDE_TABLE_MIN_CELLS,
    on_plan: Callable[[SlidePlan, RunState], None] | None = None,
    on_tile: Callable[[TileResult | TileFailure, RunState], None] | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[SlideSummary, SlidePlan, Overview]:
    """Analyse a whole slide in bounded memory and write ``<out>/<stem>.cells.json``.

    Parameters
    ----------
    slide : Slide
    out_dir : path
        Gets ``<stem>.cells.json``, the side table past ``side_table_min``
        red cells and platelets, ``<stem>.overview.png`` and the run's folder
        ``<stem>.tiles/`` (kept: a later run of the same plan reuses it).
    classifiers : sequence of Classifier
        Loaded models, in order (used by the serial executor; a Dask
        executor's workers load the same names from ``models_dir``).
    stem : str, optional
        The file stem (the slide's when None).
    image : str, optional
        cells.json's ``image`` (the slide's path as given when None).
    params, tiling, calibration, confidence_threshold
        See :func:`plan_slide`.
    models_dir : str, optional
        Where workers load the models from.
    executor : TileExecutor, optional
        :class:`SerialExecutor` with ``classifiers`` when None.
    resume : bool
        Reuse the finished tiles of an interrupted run of the same plan.
    on_plan : callable(plan, state), optional
        Told once the plan is made and the run loaded (how many tiles, how many resumed).
    on_tile : callable(result, state), optional
        Told after each tile is on disk.
    should_cancel : callable() -> bool, optional
        Stops between tiles with :class:`~leukview.core.progress.AnalysisCancelled`;
        a later call resumes.

    Returns
    -------
    summary : SlideSummary
    plan : SlidePlan
    overview : Overview
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or slide.path.stem
    plan, overview = plan_slide(
        slide,
        image=image,
        params=params,
        tiling=tiling,
        calibration=calibration,
        confidence_threshold=confidence_threshold,
        models=[c.spec.name for c in classifiers],
        models_dir=models_dir,
    )
    state = load_run(work_folder(out, stem), plan, resume=resume)
    if on_plan is not None:
        on_plan(plan, state)
    executor = executor or SerialExecutor(classifiers, slide, should_cancel)
    run_tiles(state, executor, on_tile=on_tile, should_cancel=should_cancel)
    extra = {
        "vendor": slide.vendor,
        "backend": slide.backend,
        "levels": [list(level) for level in slide.levels],
    }
    summary = assemble(state, out / stem, side_table_min=side_table_min, extra=extra)
    picture = render_overview(overview, plan, summary.counting_area, list(state.done), list(state.failed))
    ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if ok:
        from ..atomic import atomic_write_bytes

        atomic_write_bytes(out / f"{stem}.overview.png", png.tobytes())
    return summary, plan, overview
