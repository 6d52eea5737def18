"""The README's screenshot of a whole slide being analysed in the viewer.

``python -m leukview.gui.slide_screenshot OUT_DIR [--models-dir DIR]`` writes
a slide-like pyramidal TIFF made of the bundled fields (5 rows of 8, on glass)
into a temporary folder, opens it offscreen, starts *Analyse slide* and, once
about half of its tiles are done, saves ``OUT_DIR/slide.png``: the cells of
the finished tiles on the view, the Slide dock's tile grid (done, pending),
the progress per tile. Nothing is written beside OUT_DIR's images, and the
user's settings are neither read nor changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2
import numpy as np

SIZE = (1440, 900)
GLASS = (233, 228, 238)


def smear(rows: int = 5, cols: int = 8, margin: int = 384) -> np.ndarray:
    """The bundled fields side by side (mirrored on alternate passes) on a margin of glass, RGB."""
    from leukview.core.paths import resources_dir

    fields = []
    for path in sorted((resources_dir() / "samples").glob("*.jpg")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            fields.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    h, w = fields[0].shape[:2]
    out = np.empty((rows * h + 2 * margin, cols * w + 2 * margin, 3), np.uint8)
    out[:] = GLASS
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            field = fields[k % len(fields)]
            if (k // len(fields)) % 2:
                field = field[:, ::-1]
            out[margin + r * h : margin + (r + 1) * h, margin + c * w : margin + (c + 1) * w] = field
    return out


def write_slide(path: Path, image: np.ndarray, mpp: float = 0.1) -> Path:
    """A pyramidal tiled TIFF (levels as pages, the pixel size in its resolution tag)."""
    import tifffile

    with tifffile.TiffWriter(path) as tw:
        level, i = image, 0
        while True:
            tw.write(level, tile=(256, 256), compression="jpeg", photometric="rgb", subfiletype=1 if i else 0,
                     resolution=(1e4 / (mpp * 2**i),) * 2, resolutionunit="CENTIMETER")
            if max(level.shape[:2]) <= 1024:
                break
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
            i += 1
    return path


def run(out_dir: Path, models_dir: str | None) -> int:
    from PySide6.QtCore import Qt

    from leukview.core.tiling import TilingParams

    from .app import _application
    from .mainwindow import MainWindow
    from .screenshots import _save
    from .settings import AppSettings, throwaway_store

    app = _application()
    window = MainWindow(AppSettings(throwaway_store()), models_dir, read_only=True, interactive=False)
    window.resize(*SIZE)
    window.show()
    app.processEvents()
    with tempfile.TemporaryDirectory(prefix="leukview-slide-") as tmp:
        path = write_slide(Path(tmp) / "smear-17.tif", smear())
        window.slide_min_pixels = 1_000_000  # this small slide opens as a slide
        window.slide_tiling = TilingParams(tile_size=1024)
        window.slide_out = Path(tmp) / "out"
        if not window.open_slide(path):
            return 1
        window.slide_dock.raise_()
        window.resizeDocks([window.slide_dock], [340], Qt.Orientation.Horizontal)
        window.resizeDocks([window.slide_dock, window.layers_dock], [420, 380], Qt.Orientation.Vertical)
        window.view.fit()
        window.analyse_slide()
        deadline = time.monotonic() + 600
        while window.slide_busy:
            app.processEvents()
            run = window.slide_run
            if run.total and len(run.done) >= run.total // 2 and window.slide_live is not None:
                break
            if time.monotonic() > deadline:
                print("the slide's analysis did not get half way", file=sys.stderr)
                return 1
            time.sleep(0.01)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        window.view.fit()
        for _ in range(10):
            app.processEvents()
        if window.image_item is not None:
            window.image_item.synchronous = True  # no placeholder tiles in the picture
        _save(window, out_dir / "slide.png")
        window.stop_slide_analysis()
        window.close()
    app.processEvents()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leukview.gui.slide_screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models-dir")
    args = parser.parse_args(argv)
    return run(args.out_dir, args.models_dir)


if __name__ == "__main__":
    sys.exit(main())
