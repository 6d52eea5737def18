"""Time to the first view of a whole slide in the viewer: a 5 Gpx pyramidal TIFF opened offscreen.

The slide is written once to ``--cache`` with tifffile: 512 px zlib tiles of
glass colour, with the bundled BCCD fields in a few of them (so it is cheap
to write and small on disk, ~70,000 px a side), and levels halving down to
about 1000 px (a scanner's pyramid). It is then opened in a
:class:`~leukview.gui.mainwindow.MainWindow` (``QT_QPA_PLATFORM=offscreen``)
``--repeat`` times and, for each, printed:

* ``painted``: from ``open_image`` to the first painted view (the thumbnail
  standing in for the tiles still loading);
* ``complete``: until every visible tile of the view's level is drawn;
* ``1:1``: after the first view, centring on a field at 1:1 until its
  tiles are drawn (a level-0 read).

A smaller slide (``--small``, 25 times fewer pixels by default) is measured
the same way, so that the times can be compared: the first view costs one
read of the coarsest level, not of the slide.

Usage::

    .venv/bin/python bench/bench_slide_open.py [--side 70711] [--cache /tmp] [--repeat 3]

Numbers, not a test: they depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TILE = 512
GLASS = (232, 226, 236)


def fields() -> list[np.ndarray]:
    out = []
    for path in sorted((ROOT / "resources" / "samples").glob("*.jpg")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tile = np.empty((TILE, TILE, 3), np.uint8)
        tile[:] = GLASS
        h, w = min(TILE, rgb.shape[0]), min(TILE, rgb.shape[1])
        tile[:h, :w] = rgb[:h, :w]
        out.append(tile)
    return out


def write_slide(path: Path, side: int) -> Path:
    """A pyramidal tiled TIFF ``side`` x ``side``: glass, a real field every 97th tile."""
    import tifffile

    glass = np.empty((TILE, TILE, 3), np.uint8)
    glass[:] = GLASS
    real = fields()

    def tiles(size: int):
        n = -(-size // TILE)
        for k in range(n * n):
            yield real[(k // 97) % len(real)] if k % 97 == 0 else glass

    tmp = path.with_suffix(".part")
    start = time.perf_counter()
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        size, level = side, 0
        while True:
            tw.write(tiles(size), shape=(size, size, 3), dtype=np.uint8, tile=(TILE, TILE), photometric="rgb",
                     compression="zlib", subfiletype=1 if level else 0,
                     resolution=(1e4 / (0.25 * 2**level),) * 2, resolutionunit="CENTIMETER")
            if size <= 1024:
                break
            size, level = (size + 1) // 2, level + 1
    tmp.replace(path)
    print(f"wrote {path} ({side} x {side} px, {side * side / 1e9:.2f} Gpx, {level + 1} levels, "
          f"{path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def wait_tiles(window, deadline: float) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QApplication

    item = window.image_item
    while True:
        QApplication.processEvents()
        if item.tiles_loaded(window.view.visible_rect(), window.view.scale_factor):
            return
        if time.perf_counter() > deadline:
            raise SystemExit("the visible tiles never loaded")
        time.sleep(0.001)


def measure(window, path: Path) -> tuple[float, float, float]:  # noqa: ANN001
    from PySide6.QtCore import QPointF

    start = time.perf_counter()
    if not window.open_image(path):
        raise SystemExit(f"cannot open {path}")
    window.view.viewport().grab()
    painted = time.perf_counter() - start
    wait_tiles(window, start + 60)
    complete = time.perf_counter() - start
    start = time.perf_counter()
    window.view.actual_size()
    window.view.centre_on(QPointF(TILE * 0.5, TILE * 0.5))  # the first tile holds a real field
    window.view.viewport().grab()
    wait_tiles(window, start + 60)
    return painted, complete, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=70711, help="slide side in px (70711: 5.0 Gpx)")
    parser.add_argument("--small", type=int, default=None, help="the smaller slide's side (default: side / 5)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    small_side = args.small or args.side // 5
    slides = []
    for side in (small_side, args.side):
        path = args.cache / f"leukview-bench-slide-{side}.tif"
        slides.append(path if path.is_file() else write_slide(path, side))

    from PySide6.QtCore import QSettings

    from leukview.gui.app import _application
    from leukview.gui.mainwindow import MainWindow
    from leukview.gui.settings import AppSettings

    app = _application()
    store = QSettings(str(args.cache / "leukview-bench-settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(AppSettings(store), args.cache / "no-models", read_only=True, interactive=False)
    window.resize(1440, 900)
    window.show()
    app.processEvents()
    measure(window, slides[0])  # warm: OpenSlide and Qt load once
    for path in slides:
        rows = [measure(window, path) for _ in range(args.repeat)]
        side = window.source.width
        best = np.min(np.array(rows), axis=0)
        print(f"{path.name}: {side} x {side} px ({side * side / 1e9:.2f} Gpx), {len(window.source.slide.levels)} "
              f"slide levels; best of {args.repeat}: painted {best[0] * 1000:.0f} ms, complete "
              f"{best[1] * 1000:.0f} ms, 1:1 {best[2] * 1000:.0f} ms; every run (painted/complete/1:1 ms): "
              + "  ".join("/".join(f"{v * 1000:.0f}" for v in r) for r in rows), flush=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
