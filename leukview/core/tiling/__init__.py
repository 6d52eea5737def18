"""Whole slides analysed tile by tile, in bounded memory, resumable, on one PC or a cluster.

Pipeline (:func:`analyse_slide`)
--------------------------------
1. **Overview** (:func:`slide_overview`): a thumbnail, the glass colour, the
   smear's extent; tiles without smear are not read.
2. **Plan** (:func:`plan_slide`): the red-cell diameter, median over a few
   regions spread over the smear, fixes the scale of every tile; a tile grid
   (:class:`TileGrid`) whose cores partition the slide and whose reads reach
   one white-cell diameter (``max_wbc_diameter`` x the red-cell diameter)
   beyond them; the level and thresholds white cells are located with; the
   tiles whose red cells are counted. The plan (:class:`SlidePlan`) is JSON:
   it goes to Dask workers and into the run's manifest.
3. **Tiles** (:func:`analyse_tile`), in ``lowres`` mode: white cells are
   located at the level where a red cell is about 12 pixels (a sixteenth or
   less of the pixels), each candidate's window (its stain plus one red-cell
   diameter) is read at full resolution, segmented and its white cells
   classified; a cell found in a window is kept when its nearest candidate
   belongs to a group the tile owns (candidates within reach of one cell form
   a group, owned by the tile whose core holds its first candidate's
   centroid; every tile sees the same groups), so no cell is kept twice. Red cells and platelets are
   segmented on one tile in ``rbc_every`` at full resolution (cells whose
   centroid lies in the core) and extrapolated by area, which cells.json
   says. ``full`` mode segments every tile at full resolution instead (cells
   whose centroid lies in the core).
4. **Streaming and resume** (:func:`load_run`, :func:`run_tiles`): each
   finished tile is a part file and a manifest line; memory is one tile per
   worker. A run of the same plan resumes.
5. **Assembly** (:func:`assemble`): cells.json (schema 2) streamed tile by
   tile, white cells renumbered in tile order (a cell that two neighbouring
   tiles both kept, their centroids a few pixels apart across the border,
   once: :func:`border_duplicates`), red cells and platelets in a
   side table past a size, and the automatic counting area
   (:func:`auto_counting_area`: the monolayer, from each block's red-cell
   coverage and overlap), a :class:`CountingArea` a person may replace.

Public API
----------
analyse_slide, render_overview, work_folder
TilingParams, SlidePlan, plan_slide, Overview, slide_overview
Tile, TileGrid
analyse_tile, TileResult
TileExecutor, SerialExecutor, TileFailure, RunState, load_run, run_tiles, read_part
assemble, border_duplicates, SlideSummary, merge_differentials, auto_counting_area, density_map,
SIDE_TABLE_MIN_CELLS
CountingArea, points_in_rings
"""

from ._analyse import analyse_slide, render_overview, work_folder
from ._area import AREA_SOURCES, CountingArea, points_in_rings
from ._assemble import (
    SIDE_COLUMNS,
    SIDE_TABLE_MIN_CELLS,
    SlideSummary,
    assemble,
    auto_counting_area,
    border_duplicates,
    density_map,
    merge_differentials,
)
from ._grid import Tile, TileGrid
from ._locate import LOCATE_RBC_PX, Candidate, locate_candidates
from ._plan import LOCATE_MODES, Overview, SlidePlan, TilingParams, plan_slide, slide_overview
from ._run import (
    MANIFEST_FILE,
    RunState,
    SerialExecutor,
    TileExecutor,
    TileFailure,
    load_run,
    read_part,
    run_tiles,
)
from ._tile import TileResult, analyse_tile

__all__ = [
    "AREA_SOURCES",
    "LOCATE_MODES",
    "LOCATE_RBC_PX",
    "MANIFEST_FILE",
    "SIDE_COLUMNS",
    "SIDE_TABLE_MIN_CELLS",
    "Candidate",
    "CountingArea",
    "Overview",
    "RunState",
    "SerialExecutor",
    "SlidePlan",
    "SlideSummary",
    "Tile",
    "TileExecutor",
    "TileFailure",
    "TileGrid",
    "TileResult",
    "TilingParams",
    "analyse_slide",
    "analyse_tile",
    "assemble",
    "auto_counting_area",
    "border_duplicates",
    "density_map",
    "load_run",
    "locate_candidates",
    "merge_differentials",
    "plan_slide",
    "points_in_rings",
    "read_part",
    "render_overview",
    "run_tiles",
    "slide_overview",
    "work_folder",
]
