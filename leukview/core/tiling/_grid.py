"""The tile grid of a slide: cores that partition it, reads that overlap by a margin."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Tile", "TileGrid"]


@dataclass(frozen=True)
class Tile:
    """One tile: the core it owns and the larger rectangle read to analyse it.

    Attributes
    ----------
    index : int
        Row-major position in the grid (the order results are assembled in).
    row, col : int
    x0, y0, x1, y1 : int
        The core, half-open, in level-0 pixels. Cores partition the slide:
        a cell belongs to the one tile whose core holds its centroid.
    rx0, ry0, rx1, ry1 : int
        What is read: the core grown by the grid's margin, cut to the slide.
    """

    index: int
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int
    rx0: int
    ry0: int
    rx1: int
    ry1: int

    @property
    def core(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def read(self) -> tuple[int, int, int, int]:
        return self.rx0, self.ry0, self.rx1, self.ry1

    @property
    def core_pixels(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def owns(self, x: float, y: float) -> bool:
        """Whether a point (level-0 pixels) lies in the core."""
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


@dataclass(frozen=True)
class TileGrid:
    """Square tiles of ``tile_size`` over a ``width`` x ``height`` slide, read with ``margin`` around.

    A margin of at least one white-cell diameter means a cell whose centroid
    lies in a core lies wholly inside that tile's read: no cell is cut at a
    tile border, and none is kept twice.
    """

    width: int
    height: int
    tile_size: int
    margin: int

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"slide size must be positive, got {self.width} x {self.height}")
        if self.tile_size < 16:
            raise ValueError(f"tile size must be at least 16 px, got {self.tile_size}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tile_size)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.tile_size)

    def __len__(self) -> int:
        return self.rows * self.cols

    def tile(self, index: int) -> Tile:
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} is outside the grid of {len(self)} tiles")
        row, col = divmod(index, self.cols)
        t, m = self.tile_size, self.margin
        x0, y0 = col * t, row * t
        x1, y1 = min(x0 + t, self.width), min(y0 + t, self.height)
        return Tile(
            index, row, col, x0, y0, x1, y1,
            max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, self.width), min(y1 + m, self.height),
        )

    def tiles(self) -> list[Tile]:
        return [self.tile(i) for i in range(len(self))]

    def index_at(self, x: float, y: float) -> int | None:
        """The tile whose core holds a point, None outside the slide."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        return int(y // self.tile_size) * self.cols + int(x // self.tile_size)

    def to_dict(self) -> dict[str, int]:
        return {"width": self.width, "height": self.height, "tile_size": self.tile_size, "margin": self.margin}
