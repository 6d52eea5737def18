"""What a dataset is made of: :class:`Source` records, and the error its loaders raise."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leukview.core.errors import LeukViewError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
FINDERS = ("centre", "all", "box", "mask")


class DataError(LeukViewError):
    """A dataset folder, manifest or split is missing or malformed."""


@dataclass
class Source:
    """One image and what to take from it.

    Attributes
    ----------
    path : Path
        The image file.
    label : str
        Class of its cell(s).
    group : str
        Unit that must not straddle a split: subject when known, else field
        or image.
    finder : {'centre', 'all', 'box', 'mask'}
    boxes : list of (x0, y0, x1, y1)
        Annotated white-cell boxes (``box`` finder only).
    labels : list of str
        Label per box (``box`` finder only; ``label`` when empty).
    """

    path: Path
    label: str
    group: str
    finder: str = "centre"
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.finder not in FINDERS:
            raise ValueError(f"finder must be one of {FINDERS}, got {self.finder!r}")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file, then a rename), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def repo_path(path: str | os.PathLike[str]) -> Path:
    """A path named in a config: as given when it exists (absolute or from the current folder), else from
    the repository root, so ``training/configs/...`` and ``models/...`` work from any folder."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    return Path(__file__).resolve().parents[2] / given
