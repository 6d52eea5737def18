"""``leukview analyze``: the headless pipeline over files and folders.

Exit codes: 0 when every image was analysed, 1 when any failed (each named on
stderr with its reason, the others still analysed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from .core.errors import LeukViewError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leukview analyze",
        description=(
            "Segment, measure and classify every cell of blood-smear images. "
            "Writes <stem>.cells.json per image and summary.csv per run."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="run only this installed model (repeatable; default: every installed model)",
    )
    parser.add_argument("--no-models", action="store_true", help="segment and measure only")
    parser.add_argument("--models-dir", type=Path, help="folder of installed models (default: the shipped models/)")
    parser.add_argument("--out", type=Path, default=Path("leukview-results"), help="output folder (default: %(default)s)")
    parser.add_argument("--overlay", action="store_true", help="also write <stem>.overlay.png with contours, labels, heatmaps")
    parser.add_argument("--pixel-size", type=float, metavar="UM", help="µm per pixel when the files do not say")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def collect_images(paths: Sequence[str], errors: list[tuple[str, str]]) -> list[Path]:
    """Image files named directly or found in folders; missing paths go to ``errors``."""
    from .core.io import is_supported

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_supported(p)))
        elif path.is_file():
            found.append(path)  # named explicitly: read_image says if it cannot be read
        else:
            errors.append((raw, "no such file or folder"))
    # the same file named twice is analysed once
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def output_stems(images: Iterable[Path]) -> dict[Path, str]:
    """A unique output stem per image (``name``, ``name-2``, ... when stems collide)."""
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for path in images:
        stem, n = path.stem, 1
        while stem in used:
            n += 1
            stem = f"{path.stem}-{n}"
        used.add(stem)
        stems[path] = stem
    return stems


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream = total, stream
        self.enabled = enabled and stream.isatty()
        self.start = time.monotonic()

    def update(self, done: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = done / max(time.monotonic() - self.start, 1e-6)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {rate:4.1f} img/s {name[:30]:<30}"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def summary_columns(models: Sequence) -> list[str]:
    columns = ["image", "status", "width", "height", "wbc", "rbc", "platelet"]
    for clf in models:
        columns += [f"{clf.spec.name}:{name}" for name in clf.spec.classes]
        if clf.spec.positive_class:
            columns.append(f"{clf.spec.name}:{clf.spec.positive_class}_fraction")
    return columns


def summary_row(path: Path, analysis, models: Sequence) -> dict[str, object]:
    row: dict[str, object] = {"image": str(path), "status": "ok", "width": analysis.width, "height": analysis.height}
    row.update(analysis.counts_by_kind())
    for clf in models:
        name = clf.spec.name
        for cls, count in analysis.counts_by_class(name).items():
            row[f"{name}:{cls}"] = count
        if clf.spec.positive_class:
            fraction = analysis.positive_fraction(name)
            row[f"{name}:{clf.spec.positive_class}_fraction"] = "" if fraction is None else round(fraction, 4)
    return row


def run_analyze(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse already printed the usage message
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.pixel_size is not None and args.pixel_size <= 0:
        parser.print_usage(stderr)
        stderr.write("leukview analyze: error: --pixel-size must be positive\n")
        return EXIT_USAGE

    from .core.analysis import analyze_image
    from .core.atomic import atomic_write_bytes, atomic_write_text
    from .core.io import image_info, read_image
    from .core.models import load_models

    try:
        classifiers = [] if args.no_models else load_models(args.models, args.models_dir)
    except LeukViewError as exc:
        stderr.write(f"leukview analyze: error: {exc}\n")
        return EXIT_USAGE if args.models else EXIT_FAILED
    if not classifiers and not args.no_models:
        stderr.write("leukview analyze: note: no model installed; segmenting and measuring only\n")

    failures: list[tuple[str, str]] = []
    images = collect_images(args.paths, failures)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        stderr.write(f"leukview analyze: error: cannot create output folder {args.out}: {exc.strerror}\n")
        return EXIT_FAILED
    stems = output_stems(images)
    columns = summary_columns(classifiers)
    rows: list[dict[str, object]] = []
    bar = ProgressBar(len(images), stderr, enabled=not args.quiet)
    for done, path in enumerate(images, start=1):
        try:
            image = read_image(path)
            pixel_size = args.pixel_size
            if pixel_size is None:
                try:
                    pixel_size = image_info(path).pixel_size_um
                except LeukViewError:
                    pixel_size = None
            analysis = analyze_image(image, classifiers, pixel_size_um=pixel_size, image_name=str(path))
            stem = stems[path]
            document = json.dumps(analysis.to_dict(), separators=(",", ":"))
            atomic_write_text(args.out / f"{stem}.cells.json", document)
            if args.overlay:
                atomic_write_bytes(args.out / f"{stem}.overlay.png", _png_bytes(image, analysis))
            rows.append(summary_row(path, analysis, classifiers))
        except LeukViewError as exc:
            failures.append((str(path), exc.reason))
            rows.append({"image": str(path), "status": f"error: {exc.reason}"})
        except MemoryError:
            failures.append((str(path), "not enough memory to analyse this image"))
            rows.append({"image": str(path), "status": "error: out of memory"})
        bar.update(done, path.name)
    bar.close()

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out / "summary.csv", buffer.getvalue())

    for name, reason in failures:
        stderr.write(f"leukview analyze: {name}: {reason}\n")
    ok = len(rows) - sum(1 for r in rows if str(r.get("status", "")).startswith("error"))
    stdout.write(f"analysed {ok} of {len(images)} image(s); results in {args.out}{os.sep}\n")
    if not images and not failures:
        stderr.write("leukview analyze: no supported image found\n")
        return EXIT_FAILED
    return EXIT_FAILED if failures else EXIT_OK


def _png_bytes(image, analysis) -> bytes:
    import cv2

    from .core.overlay import render_overlay

    overlay = render_overlay(image, analysis)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LeukViewError("could not encode the overlay PNG")
    return encoded.tobytes()
