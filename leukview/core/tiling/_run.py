"""Running a plan's tiles: results streamed to disk as they finish, a manifest, resume.

A run keeps its work in a folder (``<out>/<stem>.tiles/``):

* ``manifest.jsonl``: the first line names the format and holds the plan
  (:meth:`SlidePlan.to_dict`) and its key; each later line records one
  finished tile (``{"tile": 12, "file": "tile-000012.json", "cells": {...},
  "sampled": true, "seconds": 1.9}``) or one that failed (``{"tile": 12,
  "error": "..."}``). Lines are appended after the tile's part file is in
  place, so a crash loses at most the tile that was running; a torn last
  line is ignored.
* ``tile-NNNNNN.json``: one :class:`TileResult` each, written atomically.

Starting a run where a manifest of the same plan key exists resumes it: the
tiles whose part file is there are not analysed again. Another key (another
slide, file, model, parameter) starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..atomic import atomic_write_text
from ..errors import LeukViewError
from ..progress import AnalysisCancelled, CancelCheck
from ._plan import SlidePlan
from ._tile import TileResult, analyse_tile

if TYPE_CHECKING:
    from ..io import Slide
    from ..models import Classifier

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "RunState",
    "SerialExecutor",
    "TileExecutor",
    "TileFailure",
    "load_run",
    "read_part",
    "run_tiles",
]

MANIFEST_FILE = "manifest.jsonl"
MANIFEST_FORMAT = "leukview-tiles"


@dataclass(frozen=True)
class TileFailure:
    """A tile that could not be analysed (a damaged region of the slide, say)."""

    index: int
    reason: str


class TileExecutor(Protocol):
    """Runs tiles of a plan, yielding each result (or failure) as it finishes, in any order."""

    def run(self, plan: SlidePlan, indices: Sequence[int]) -> Iterator[TileResult | TileFailure]: ...


class SerialExecutor:
    """Tiles one after the other in this process, with models already loaded.

    Parameters
    ----------
    classifiers : sequence of Classifier
        The plan's models, in its order.
    slide : Slide, optional
        The plan's slide, open (opened from ``plan.path`` when None).
    should_cancel : callable() -> bool, optional
        Also polled inside a tile, between its windows.
    """

    def __init__(
        self,
        classifiers: Sequence[Classifier] = (),
        slide: Slide | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        self.classifiers = list(classifiers)
        self.slide = slide
        self.should_cancel = should_cancel

    def run(self, plan: SlidePlan, indices: Sequence[int]) -> Iterator[TileResult | TileFailure]:
        from ..io import open_slide

        slide = self.slide or open_slide(plan.path)
        try:
            for index in indices:
                try:
                    yield analyse_tile(slide, self.classifiers, plan, index, should_cancel=self.should_cancel)
                except AnalysisCancelled:
                    raise
                except LeukViewError as exc:
                    yield TileFailure(index, exc.reason)
                except MemoryError:
                    yield TileFailure(index, "not enough memory to analyse this tile")
        finally:
            if self.slide is None:
                slide.close()


@dataclass
class RunState:
    """Where a run stands: which tiles are done (and their manifest records), which failed."""

    plan: SlidePlan
    folder: Path
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    resumed: int = 0

    @property
    def remaining(self) -> list[int]:
        return [i for i in self.plan.tiles if i not in self.done]

    @property
    def complete(self) -> bool:
        return not self.remaining

    def part(self, index: int) -> Path:
        return self.folder / f"tile-{index:06d}.json"


def part_name(index: int) -> str:
    return f"tile-{index:06d}.json"


def read_part(path: Path) -> TileResult:
    """One tile's part file."""
    try:
        return TileResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LeukViewError(f"tile result {path.name} cannot be read ({exc})", path) from exc


def load_run(folder: str | os.PathLike[str], plan: SlidePlan, *, resume: bool = True) -> RunState:
    """The state of a run of ``plan`` in ``folder``: resumed when its manifest has the same key.

    Otherwise (no manifest, another plan, ``resume`` False) the folder's old
    part files are removed and a new manifest is written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST_FILE
    state = RunState(plan, folder)
    key = plan.key()
    lines: list[dict[str, Any]] = []
    if resume and manifest.is_file():
        for raw in manifest.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                break  # a torn last line: everything before it stands
    if lines and lines[0].get("format") == MANIFEST_FORMAT and lines[0].get("key") == key:
        wanted = set(plan.tiles)
        for record in lines[1:]:
            index = record.get("tile")
            if not isinstance(index, int) or index not in wanted:
                continue
            if "error" in record:
                state.failed[index] = str(record["error"])
                state.done.pop(index, None)
            elif (folder / str(record.get("file", ""))).is_file():
                state.done[index] = record
                state.failed.pop(index, None)
        state.resumed = len(state.done)
        return state
    for old in folder.glob("tile-*.json"):
        with contextlib.suppress(OSError):
            old.unlink()
    header = {"format": MANIFEST_FORMAT, "version": 1, "key": key, "plan": plan.to_dict()}
    atomic_write_text(manifest, json.dumps(header, separators=(",", ":")) + "\n")
    return state


def _append(manifest: Path, record: dict[str, Any]) -> None:
    with manifest.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def run_tiles(
    state: RunState,
    executor: TileExecutor,
    *,
    on_tile: Callable[[TileResult | TileFailure, RunState], None] | None = None,
    should_cancel: CancelCheck | None = None,
) -> RunState:
    """Analyse the tiles a run still needs; each result goes to disk as it comes.

    Parameters
    ----------
    state : RunState
        From :func:`load_run` (done tiles are skipped; failed ones are retried).
    executor : TileExecutor
        :class:`SerialExecutor`, or :class:`leukview.core.distributed.DaskExecutor`.
    on_tile : callable(result, state), optional
        Told after each tile is on disk (a progress bar, a viewer showing cells as tiles finish).
    should_cancel : callable() -> bool, optional
        Polled between tiles; True stops with :class:`AnalysisCancelled`, the
        finished tiles kept for a resume.

    Returns
    -------
    RunState
    """
    manifest = state.folder / MANIFEST_FILE
    todo = state.remaining
    if not todo:
        return state
    results = executor.run(state.plan, todo)
    try:
        for item in results:
            if isinstance(item, TileFailure):
                state.failed[item.index] = item.reason
                _append(manifest, {"tile": item.index, "error": item.reason})
            else:
                name = part_name(item.index)
                atomic_write_text(state.folder / name, json.dumps(item.to_dict(), separators=(",", ":")))
                record = {
                    "tile": item.index,
                    "file": name,
                    "cells": item.counts(),
                    "sampled": item.sampled,
                    "seconds": round(item.seconds, 3),
                    "density": item.density,
                }
                _append(manifest, record)
                state.done[item.index] = record
                state.failed.pop(item.index, None)
            if on_tile is not None:
                on_tile(item, state)
            if should_cancel is not None and should_cancel():
                raise AnalysisCancelled()
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    return state
