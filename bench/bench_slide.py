"""Whole-slide bench: a ~1 Gpx slide made of real BCCD fields, analysed by ``leukview analyze``.

The slide is an SVS-like pyramidal TIFF written tile by tile with tifffile
(JPEG tiles, Aperio description with the pixel size, levels down to about
1000 px): the 264 BCCD fields cycled over a grid (mirrored on alternate
passes), their white-cell boxes offset (and mirrored) into slide coordinates.
It is written once to ``--cache`` and reused.

Printed: for each run (one process; ``--workers 1`` and ``--workers 2``, Dask
LocalClusters, measured in the same invocation because the machine is
shared), the wall time, Mpx/s of the slide, the peak RSS of the largest
process and of the process tree, and the ratios; then white-cell recall
against the boxes (matching as ``bench/eval_segmentation.py``: the predicted
centroid inside the box and the box's centre inside the predicted box, one
to one) and duplicates (two white cells closer than half a red-cell
diameter). Targets (issue 15): peak RSS <= 1.5 GB whatever the slide size,
>= 10 Mpx/s on 2 cores, recall >= 0.97, 0 duplicates.

Usage::

    .venv/bin/python bench/bench_slide.py [--cols 57 --rows 57] [--runs serial,1,2] [--locate lowres] [--json OUT]
    .venv/bin/python bench/bench_slide.py --cols 12 --rows 12 --runs serial --no-models   # quick

Numbers, not a test: they depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LEUKVIEW_DATA", ROOT.parent / "shared" / "data"))
FIELD_W, FIELD_H = 640, 480
TILE = 256
MPP = 0.1  # BCCD red cells are about 75-95 px: roughly 0.1 µm per pixel


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] != (FIELD_H, FIELD_W):
        rgb = cv2.resize(rgb, (FIELD_W, FIELD_H), interpolation=cv2.INTER_AREA)
    return rgb


def wbc_boxes(xml: Path) -> list[tuple[float, float, float, float]]:
    out = []
    for obj in ET.parse(xml).getroot().iter("object"):
        if (obj.findtext("name") or "").strip().upper() != "WBC":
            continue
        bb = obj.find("bndbox")
        assert bb is not None
        out.append(tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")))  # type: ignore[misc]
    return out  # type: ignore[return-value]


class FieldGrid:
    """The layout: which field (and whether mirrored) sits at each grid cell, and the boxes."""

    def __init__(self, rows: int, cols: int) -> None:
        paths = sorted((DATA / "bccd" / "JPEGImages").glob("*.jpg"))
        if not paths:
            raise SystemExit(f"no BCCD fields under {DATA / 'bccd'}")
        self.paths = paths
        self.rows, self.cols = rows, cols
        self.width, self.height = cols * FIELD_W, rows * FIELD_H
        self.fields = [read_rgb(p) for p in paths]

    def cell(self, r: int, c: int) -> tuple[int, bool]:
        i = r * self.cols + c
        return i % len(self.paths), bool((i // len(self.paths)) % 2)

    def field(self, r: int, c: int) -> np.ndarray:
        k, flip = self.cell(r, c)
        f = self.fields[k]
        return f[:, ::-1] if flip else f

    def boxes(self) -> np.ndarray:
        out = []
        cache: dict[int, list] = {}
        for r in range(self.rows):
            for c in range(self.cols):
                k, flip = self.cell(r, c)
                if k not in cache:
                    cache[k] = wbc_boxes(DATA / "bccd" / "Annotations" / f"{self.paths[k].stem}.xml")
                for x0, y0, x1, y1 in cache[k]:
                    if flip:
                        x0, x1 = FIELD_W - x1, FIELD_W - x0
                    out.append((x0 + c * FIELD_W, y0 + r * FIELD_H, x1 + c * FIELD_W, y1 + r * FIELD_H))
        return np.asarray(out, float)

    def band(self, level: int, y0: int, rows: int) -> np.ndarray:
        """Rows [y0, y0 + rows) of a pyramid level, made from the fields shrunk by 2**level."""
        s = 2**level
        fw, fh = FIELD_W // s, FIELD_H // s
        width = self.cols * fw
        out = np.full((rows, width, 3), 255, np.uint8)
        for r in range(y0 // fh, min(self.rows, math.ceil((y0 + rows) / fh))):
            top = r * fh
            strip = np.empty((fh, width, 3), np.uint8)
            for c in range(self.cols):
                f = self.field(r, c)
                if s > 1:
                    f = cv2.resize(f, (fw, fh), interpolation=cv2.INTER_AREA)
                strip[:, c * fw : (c + 1) * fw] = f
            a, b = max(y0, top), min(y0 + rows, top + fh)
            out[a - y0 : b - y0] = strip[a - top : b - top]
        return out


def write_slide(grid: FieldGrid, path: Path) -> None:
    """An SVS-like pyramid, tile by tile (memory: one band of tiles)."""
    import tifffile

    levels = []
    s = 1
    while True:
        fw, fh = FIELD_W // s, FIELD_H // s
        if fw < 1 or fh < 1 or FIELD_W % s or FIELD_H % s:
            break
        levels.append((grid.cols * fw, grid.rows * fh))
        if max(levels[-1]) <= 2048:
            break
        s *= 2
    w0, h0 = levels[0]
    desc = (f"Aperio Image Library v12.0.15\r\n{w0}x{h0} [0,0 {w0}x{h0}] ({TILE}x{TILE}) JPEG/RGB Q=90|"
            f"AppMag = 40|MPP = {MPP}")

    def tiles(level: int):
        lw, lh = levels[level]
        for ty in range(0, lh, TILE):
            band = grid.band(level, ty, min(TILE, lh - ty))
            if band.shape[0] < TILE:
                band = np.vstack([band, np.full((TILE - band.shape[0], lw, 3), 255, np.uint8)])
            for tx in range(0, lw, TILE):
                tile = band[:, tx : tx + TILE]
                if tile.shape[1] < TILE:
                    tile = np.hstack([tile, np.full((TILE, TILE - tile.shape[1], 3), 255, np.uint8)])
                yield np.ascontiguousarray(tile)

    tmp = path.with_suffix(".tmp")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for level, (lw, lh) in enumerate(levels):
            tw.write(tiles(level), shape=(lh, lw, 3), dtype=np.uint8, tile=(TILE, TILE),
                     compression="jpeg", compressionargs={"level": 90}, photometric="rgb",
                     description=desc, metadata=None)
            if level == 0:  # an Aperio file's second page is its thumbnail
                smallest = grid.band(len(levels) - 1, 0, levels[-1][1])
                thumb = cv2.resize(smallest, (max(1, lw // 64), max(1, lh // 64)))
                tw.write(thumb, photometric="rgb", compression="jpeg", metadata=None,
                         description=f"Aperio Image Library v12.0.15\r\n{w0}x{h0} -> thumbnail")
    os.replace(tmp, path)


# ---------------------------------------------------------------- measuring


class TreeRSS:
    """Peak RSS of a process and its descendants, sampled (psutil)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak_tree = self.peak_single = 0
        self.cpu: dict[int, float] = {}  # last CPU seconds seen per process (where the time goes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                sizes = []
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        sizes.append(p.memory_info().rss)
                        t = p.cpu_times()
                        self.cpu[p.pid] = t.user + t.system
                if sizes:
                    self.peak_tree = max(self.peak_tree, sum(sizes))
                    self.peak_single = max(self.peak_single, max(sizes))
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_analyze(slide: Path, out: Path, extra: list[str]) -> dict:
    import resource

    cmd = [str(ROOT / ".venv" / "bin" / "leukview"), "analyze", str(slide), "--out", str(out), "--quiet", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = TreeRSS(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    rss.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and every process it waited for
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(stdout, stderr, file=sys.stderr)
        raise SystemExit(f"leukview analyze failed ({proc.returncode})")
    main_cpu = rss.cpu.get(proc.pid, 0.0)
    return {"wall": wall, "cpu": cpu, "rss_single": rss.peak_single, "rss_tree": rss.peak_tree,
            "cpu_main": main_cpu, "cpu_others": sum(v for k, v in rss.cpu.items() if k != proc.pid),
            "cmd": " ".join(cmd[1:])}


def evaluate(cells_json: Path, boxes: np.ndarray) -> dict:
    from scipy.optimize import linear_sum_assignment

    doc = json.loads(cells_json.read_text())
    d = float(doc.get("rbc_diameter_px") or 80.0)
    wbc = [c for c in doc["cells"] if c["kind"] == "wbc"]
    pc = np.array([c["centroid"] for c in wbc], float).reshape(-1, 2)
    pb = np.array([c["bbox"] for c in wbc], float).reshape(-1, 4)
    # candidate pairs through a grid of buckets (a dense matrix would be 3000 x 3000)
    bucket = 256.0
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(pc):
        buckets.setdefault((int(x // bucket), int(y // bucket)), []).append(i)
    pairs = []
    for j, (x0, y0, x1, y1) in enumerate(boxes):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for bx in range(int(x0 // bucket), int(x1 // bucket) + 1):
            for by in range(int(y0 // bucket), int(y1 // bucket) + 1):
                for i in buckets.get((bx, by), []):
                    px, py = pc[i]
                    q = pb[i]
                    if x0 <= px <= x1 and y0 <= py <= y1 and q[0] <= cx <= q[2] and q[1] <= cy <= q[3]:
                        pairs.append((i, j, math.hypot(px - cx, py - cy)))
    matched = 0
    if pairs:
        ii = sorted({p[0] for p in pairs})
        jj = sorted({p[1] for p in pairs})
        ri = {v: k for k, v in enumerate(ii)}
        rj = {v: k for k, v in enumerate(jj)}
        cost = np.full((len(ii), len(jj)), 1e9)
        for i, j, dist in pairs:
            cost[ri[i], rj[j]] = dist
        rows, cols = linear_sum_assignment(cost)
        matched = int(sum(cost[r, c] < 1e9 for r, c in zip(rows, cols, strict=True)))
    # duplicates: two white cells closer than half a red-cell diameter
    dup = 0
    for i, (x, y) in enumerate(pc):
        bx, by = int(x // bucket), int(y // bucket)
        for nx in (bx - 1, bx, bx + 1):
            for ny in (by - 1, by, by + 1):
                for k in buckets.get((nx, ny), []):
                    if k > i and math.hypot(*(pc[k] - pc[i])) < 0.5 * d:
                        dup += 1
    return {"found": len(wbc), "boxes": len(boxes), "matched": matched, "recall": matched / max(len(boxes), 1),
            "duplicates": dup, "rbc_diameter": d, "counts": doc.get("counts_by_kind"),
            "rbc_sampling": doc.get("slide", {}).get("rbc_sampling", {}).get("note")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=57)
    parser.add_argument("--cols", type=int, default=57)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/leukview-bench"))
    parser.add_argument("--runs", default="serial,1,2", help="comma list: serial, or a number of Dask workers")
    parser.add_argument("--locate", default="lowres", choices=["lowres", "full"])
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--tile-size", type=int, default=2048)
    parser.add_argument("--rbc-every", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="models to use (default: a copy of models/ taken at the start, so that every "
                             "run of this invocation uses the same ones)")
    args = parser.parse_args()
    load_before = os.getloadavg()

    args.cache.mkdir(parents=True, exist_ok=True)
    slide = args.cache / f"bccd-{args.rows}x{args.cols}.svs"
    grid = FieldGrid(args.rows, args.cols)
    mpx = grid.width * grid.height / 1e6
    if not slide.exists():
        start = time.perf_counter()
        write_slide(grid, slide)
        print(f"wrote {slide} ({grid.width} x {grid.height}, {mpx:,.0f} Mpx, "
              f"{slide.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s")
    boxes = grid.boxes()
    print(f"slide {slide.name}: {grid.width} x {grid.height} = {mpx:,.0f} Mpx, {grid.rows * grid.cols} fields, "
          f"{len(boxes)} white-cell boxes; {os.cpu_count()} CPUs, load average "
          + " ".join(f"{v:.2f}" for v in load_before))
    extra = ["--locate", args.locate, "--tile-size", str(args.tile_size)]
    if args.rbc_every:
        extra += ["--rbc-every", str(args.rbc_every)]
    if args.no_models:
        extra.append("--no-models")
    else:
        models = args.models_dir
        if models is None:  # a snapshot: models/ may change while the runs go on
            import shutil

            models = args.cache / "models"
            shutil.rmtree(models, ignore_errors=True)
            shutil.copytree(ROOT / "models", models)
        names = sorted(p.parent.name for p in models.glob("*/model.json"))
        print(f"models: {', '.join(names) or 'none'} (from {models})")
        extra += ["--models-dir", str(models)]
    results = {}
    for run in args.runs.split(","):
        out = args.cache / f"out-{run}"
        opts = list(extra) + ["--no-resume"]
        if run != "serial":
            opts += ["--workers", run]
        r = run_analyze(slide, out, opts)
        r["eval"] = evaluate(out / f"{slide.stem}.cells.json", boxes)
        results[run] = r
        e = r["eval"]
        print(f"{run:>7}: {r['wall']:7.1f} s wall ({mpx / r['wall']:5.1f} Mpx/s), {r['cpu']:7.1f} s CPU "
              f"({mpx / r['cpu']:5.1f} Mpx per CPU-second), peak RSS "
              f"{r['rss_single'] / 1e9:.2f} GB (largest process), {r['rss_tree'] / 1e9:.2f} GB (tree); "
              f"recall {e['recall']:.3f} ({e['matched']}/{e['boxes']}), {e['found']} white cells, "
              f"{e['duplicates']} duplicates")
        print(f"         CPU seen: {r['cpu_main']:.1f} s in the leukview process, {r['cpu_others']:.1f} s in "
              "its child processes (Dask nanny and workers)")
        print(f"         {r['cmd']}")
    if "1" in results and "2" in results:
        print(f"speed-up 2 workers vs 1: {results['1']['wall'] / results['2']['wall']:.2f}x")
    if "serial" in results and "2" in results:
        print(f"speed-up 2 workers vs one process: {results['serial']['wall'] / results['2']['wall']:.2f}x")
    first = next(iter(results.values()))["eval"]
    print(f"cells: {first['counts']}; {first['rbc_sampling']}")
    files = [args.cache / f"out-{run}" / f"{slide.stem}.cells.json" for run in results]
    same = None
    if len(files) > 1:
        same = len({_cells_only(f) for f in files}) == 1
        print(f"cells.json identical across runs: {same}")
    for run, r in results.items():
        e = r["eval"]
        checks = [
            ("peak RSS <= 1.5 GB (largest process)", r["rss_single"] <= 1.5e9),
            ("recall >= 0.97", e["recall"] >= 0.97),
            ("0 duplicates", e["duplicates"] == 0),
            (">= 10 Mpx/s", mpx / r["wall"] >= 10),
        ]
        print(f"targets, {run}: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))
    if args.json is not None:
        record = {"slide": str(slide), "width": grid.width, "height": grid.height, "mpx": mpx,
                  "boxes": len(boxes), "cpus": os.cpu_count(), "load_before": load_before,
                  "identical": same,
                  "runs": {k: {**v, "mpx_per_s": mpx / v["wall"]} for k, v in results.items()}}
        args.json.write_text(json.dumps(record, indent=1, default=str))


def _cells_only(path: Path) -> str:
    doc = json.loads(path.read_text())
    doc["slide"].pop("resumed_tiles", None)
    return json.dumps(doc, sort_keys=True)


if __name__ == "__main__":
    main()
