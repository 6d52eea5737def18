"""The headless command ``leukview analyze`` (``leukview report`` is in :mod:`leukview.cli_report`).

``analyze`` runs the pipeline over files and folders and writes
``<stem>.cells.json`` per image, and ``summary.csv`` and ``failures.csv`` per
run, a line as each image finishes (:class:`leukview.core.summary.SummaryWriter`).

Exit codes (``analyze`` and ``report``): 0 when everything was written, 1 when anything failed
(named on stderr with its reason; ``analyze`` still analyses the other
images, and runs without an installed model that cannot be used), 2 for usage
errors (a model asked for by name that cannot be used is one).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .core.calls import DEFAULT_CONFIDENCE_THRESHOLD
from .core.errors import LeukViewError

if TYPE_CHECKING:
    import numpy as np

    from .core.analysis import Analysis, ModelRun
    from .core.calibration import Calibration

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _threshold(text: str) -> float:
    """argparse type of ``--confidence-threshold``: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``leukview analyze``."""
    parser = argparse.ArgumentParser(
        prog="leukview analyze",
        description=(
            "Segment, measure and classify every cell of blood-smear images. "
            "Writes <stem>.cells.json per image, summary.csv and failures.csv per run."
        ),
        epilog="Exit codes: 0 every image analysed, 1 some image failed, 2 usage error.",
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
    parser.add_argument(
        "--pixel-size",
        metavar="UM",
        help="µm per pixel (overrides what the files say; µm figures in cells.json derive from it)",
    )
    parser.add_argument(
        "--confidence-threshold",
        type=_threshold,
        default=DEFAULT_CONFIDENCE_THRESHOLD,
        metavar="T",
        help="a model's probability under T flags the cell low-confidence (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--geojson", action="store_true",
                        help="also write <stem>.geojson: the white cells as QuPath detections (File > Import objects)")
    parser.add_argument("--similar", type=_positive(1, 100), metavar="K",
                        help="write each white cell's K nearest reference-atlas cells into cells.json")  # fmt: skip
    case = parser.add_argument_group("cases: many fields (or a slide) of one specimen as one")
    case.add_argument(
        "--case",
        metavar="NAME",
        help="also write NAME.case.json (pooled differential) and NAME.case.leukview.json (the case "
        "session), and a case:NAME row in summary.csv",
    )
    case.add_argument(
        "--count-all",
        action="store_true",
        help="a case counts every white cell of a slide, not only those in its automatic counting area",
    )
    slides = parser.add_argument_group("whole slides (.svs, .ndpi, .mrxs, .scn, .bif, .dcm, large TIFFs)")
    slides.add_argument("--slide", action="store_true", help="analyse every TIFF tile by tile, whatever its size")
    slides.add_argument("--tile-size", type=_positive(256, 16384), default=2048, metavar="PX",
                        help="side of a tile in level-0 pixels (default: %(default)s)")
    slides.add_argument("--locate", choices=("lowres", "full"), default="lowres",
                        help="lowres: white cells located at low resolution, analysed in full-resolution "
                        "windows; full: every tile segmented at full resolution (default: %(default)s)")
    slides.add_argument("--rbc-every", type=_positive(1, 1000), default=4, metavar="K",
                        help="count red cells and platelets on one tile in K, extrapolated (default: %(default)s)")
    slides.add_argument("--side-table-after", type=_positive(0, 10**9), default=20_000, metavar="N",
                        help="red cells and platelets go to <stem>.cells.parquet past N (default: %(default)s)")
    slides.add_argument("--no-resume", action="store_true",
                        help="analyse every tile again instead of resuming an interrupted run")
    cluster = parser.add_argument_group("Dask (pip install leukview[cluster])")
    where = cluster.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="send the tiles and images to this Dask scheduler (workers read the files "
                       "from the same paths)")
    where.add_argument("--workers", type=_positive(1, 1024), metavar="N",
                       help="start a local Dask cluster of N worker processes")
    return parser


def _positive(low: int, high: int):
    """argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not between {low} and {high}")
        return value

    return parse


def is_slide_input(path: Path, force: bool = False) -> bool:
    """Whether an input is analysed as a whole slide (tile by tile): :func:`leukview.core.io.reads_as_slide`."""
    from .core.io import reads_as_slide

    return reads_as_slide(path, force)


def collect_images(
    paths: Sequence[str], errors: list[tuple[str, str]], notes: list[str] | None = None
) -> list[Path]:
    """Image files named directly or found in folders (:func:`leukview.core.summary.find_images`).

    Missing paths (and unreadable folders) go to ``errors``; special files are
    kept, for read_image to name; links to folders inside a folder are not
    followed (said in ``notes``).
    """
    from .core.io import is_slide_file, is_supported
    from .core.summary import find_images

    scan = find_images(paths, lambda name: is_supported(name) or is_slide_file(name))
    errors.extend(scan.failures)
    if notes is not None:
        notes.extend(scan.notes)
    return scan.images


def output_stems(images: Iterable[Path]) -> dict[Path, str]:
    """A unique output stem per image (``name``, ``name-2``, ...; long ones cut with a hash)."""
    from .core.summary import output_stems as stems

    return stems(images)


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, unit: str = "img") -> None:
        self.total, self.stream, self.unit = total, stream, unit
        self.enabled = enabled and stream.isatty()
        self.start = time.monotonic()

    def update(self, done: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = done / max(time.monotonic() - self.start, 1e-6)
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {rate:4.1f} {self.unit}/s "
            f"{name[:30]:<30}"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------- summary.csv


def model_runs(classifiers: Sequence[Any]) -> list[ModelRun]:
    """The :class:`~leukview.core.analysis.ModelRun` each loaded classifier will record."""
    from .core.analysis import ModelRun

    return [ModelRun.of(c) for c in classifiers]


def summary_columns(models: Sequence[ModelRun]) -> list[str]:
    """summary.csv's header for a run of these models.

    ``call:<class>`` per class of :func:`~leukview.core.calls.review_classes`
    and ``call:unclassified`` (the differential of the cells' calls),
    ``leukocytes`` (its denominator), ``blast_percent``, ``flagged``; then
    ``model:<name>:<class>``: each model's own labels, before the call rule.
    """
    from .core.calls import review_classes

    columns = ["image", "status", "width", "height", "wbc", "rbc", "platelet"]
    columns += [f"call:{name}" for name in review_classes(models)]
    columns += ["call:unclassified", "leukocytes", "blast_percent", "flagged"]
    for run in models:
        columns += [f"model:{run.name}:{name}" for name in run.classes]
    from .core.summary import CHECK_COLUMNS  # the domain check and the header's warnings, last

    return columns + list(CHECK_COLUMNS)


def summary_row(path: Path, analysis: Analysis, threshold: float) -> dict[str, object]:
    """One image's row of summary.csv (see :func:`summary_columns`)."""
    from .core.calls import differential_count

    row: dict[str, object] = {"image": str(path), "status": "ok", "width": analysis.width, "height": analysis.height}
    row.update(analysis.counts_by_kind())
    diff = differential_count(analysis.cells, analysis.models, threshold)
    row.update({f"call:{name}": count for name, count in diff.counts.items()})
    blast = diff.blast_percent
    row.update(
        {
            "call:unclassified": diff.unclassified,
            "leukocytes": diff.leukocytes,
            "blast_percent": "" if blast is None else round(blast, 2),
            "flagged": diff.flagged,
        }
    )
    for run in analysis.models:
        labels = Counter(c.predictions[run.name].label for c in analysis.cells if run.name in c.predictions)
        row.update({f"model:{run.name}:{name}": labels.get(name, 0) for name in run.classes})
    from .core.summary import image_check_columns

    row.update(image_check_columns(path, analysis.domain))
    return row


# ---------------------------------------------------------------- analyze


def _parse(
    parser: argparse.ArgumentParser, argv: Sequence[str], stdout: TextIO, stderr: TextIO
) -> argparse.Namespace | int | None:
    """Parsed arguments; EXIT_OK after ``--help``; None after a usage error (printed to ``stderr``)."""
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            return parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed the help or the usage message
        return None if exc.code else EXIT_OK


def _usage_error(parser: argparse.ArgumentParser, stderr: TextIO, message: str) -> int:
    parser.print_usage(stderr)
    stderr.write(f"{parser.prog}: error: {message}\n")
    return EXIT_USAGE


def file_calibration(path: Path) -> Calibration:
    """What the file's metadata say about its pixel size (unknown when nothing usable)."""
    from .core.calibration import Calibration
    from .core.io import image_info

    try:
        return Calibration.from_file(image_info(path).pixel_size_um)
    except LeukViewError:
        return Calibration.unknown()


def run_analyze(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """``leukview analyze``; returns the exit code."""
    parser = build_parser()
    args = _parse(parser, argv, stdout, stderr)
    if args is None:
        return EXIT_USAGE
    if isinstance(args, int):
        return args

    from .core.calibration import Calibration

    user_calibration = None
    if args.pixel_size is not None:
        try:
            user_calibration = Calibration.from_user(args.pixel_size)
        except LeukViewError as exc:
            return _usage_error(parser, stderr, f"--pixel-size: {exc.reason}")

    from .core.models import ModelRegistry
    from .core.summary import SummaryWriter, printable

    classifiers: list[Any] = []
    if not args.no_models:
        # one broken model is named and the run goes on with the others; one asked for is a usage error
        classifiers, problems = ModelRegistry(args.models_dir).load_usable(args.models)
        for problem in problems:
            stderr.write(f"leukview analyze: {'error' if args.models else 'skipped'}: {printable(str(problem))}\n")
        if problems and args.models:
            return EXIT_USAGE
        if not classifiers:
            what = "usable" if problems else "installed"
            stderr.write(f"leukview analyze: note: no model {what}; segmenting and measuring only\n")
    else:
        problems = []

    if args.case is not None:
        from .core.case import Case

        try:
            Case.new(args.case)
        except LeukViewError as exc:
            return _usage_error(parser, stderr, f"--case: {exc.reason}")
    if (args.scheduler or args.workers) and not _dask_ready(stderr):
        return EXIT_USAGE

    failures: list[tuple[str, str]] = []
    notes: list[str] = []
    images = collect_images(args.paths, failures, notes)
    for note in notes:
        stderr.write(f"leukview analyze: note: {note}\n")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        # header first, then one whole line per image as it finishes: a killed run keeps its rows
        summary = SummaryWriter(args.out, summary_columns(model_runs(classifiers)))
    except OSError as exc:
        out_name = printable(str(args.out))
        stderr.write(f"leukview analyze: error: cannot write in the output folder {out_name}: {exc.strerror}\n")
        return EXIT_FAILED
    for name, reason in failures:
        summary.fail(name, reason)
    run = _Run(args, classifiers, user_calibration, summary, stderr)
    try:
        with _executor(args) as executor:
            run.executor = executor
            run.analyse(images)
    except LeukViewError as exc:  # the cluster could not be reached or started
        stderr.write(f"leukview analyze: error: {exc.reason}\n")
        summary.close()
        return EXIT_FAILED
    if args.case is not None:
        run.write_case(images)
    summary.close()

    for name, reason in summary.failures:
        stderr.write(f"leukview analyze: {name}: {reason}\n")
    ok = len([r for r in summary.rows if not str(r.get("image", "")).startswith("case:")]) - len(summary.failures)
    stdout.write(f"analysed {ok} of {len(images)} image(s); results in {printable(str(args.out))}{os.sep}\n")
    if not images and not failures:
        stderr.write("leukview analyze: no supported image found\n")
        return EXIT_FAILED
    return EXIT_FAILED if summary.failures or problems else EXIT_OK


def _dask_ready(stderr: TextIO) -> bool:
    from .core.distributed import dask_available

    if dask_available():
        return True
    stderr.write("leukview analyze: error: --scheduler and --workers need Dask: pip install 'leukview[cluster]'\n")
    return False


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Any:
    """A :class:`~leukview.core.distributed.DaskExecutor` for ``--scheduler``/``--workers``, else None."""
    if not (args.scheduler or args.workers):
        yield None
        return
    from .core.distributed import DaskExecutor, cluster_client

    with cluster_client(args.scheduler, args.workers) as client:
        yield DaskExecutor(client)


class _Run:
    """One ``leukview analyze`` run over fields and slides, on this machine or a Dask cluster."""

    def __init__(
        self, args: argparse.Namespace, classifiers: Sequence[Any], user_calibration: Calibration | None,
        summary: Any, stderr: TextIO,
    ) -> None:
        self.args, self.classifiers, self.user, self.summary, self.stderr = args, classifiers, user_calibration, summary, stderr
        self.threshold = args.confidence_threshold
        self.executor: Any = None
        self.results: dict[Path, dict[str, Any]] = {}  # what a case is made of, per image
        self.stems: dict[Path, str] = {}
        self.similar: Any = None  # --similar: the atlases searched (core.similar)
        if args.similar:
            from .core.similar import similar_search_for

            self.similar, notes = similar_search_for(classifiers)
            for note in notes:
                stderr.write(f"leukview analyze: note: --similar: {note}\n")

    def analyse(self, images: Sequence[Path]) -> None:
        from .core.summary import printable

        self.stems = output_stems(images)
        slides = [p for p in images if is_slide_input(p, self.args.slide)]
        fields = [p for p in images if p not in set(slides)]
        if self.executor is None:
            self._fields_here(fields)
        else:
            self._fields_on_cluster(fields)
        for path in slides:
            self._slide(path)
        if self.executor is not None:  # rows came in the order images finished: put them in input order
            order = {printable(str(p)): k for k, p in enumerate(images)}
            self.summary.rewrite(sorted(self.summary.rows, key=lambda r: order.get(str(r.get("image")), -1)))

    # -- fields, read whole

    def _field_done(self, path: Path, analysis: Analysis, overlay: bytes | None, image: Any = None) -> None:
        from .core.atomic import atomic_write_bytes, atomic_write_text, json_text

        stem = self.stems[path]
        data = analysis.to_dict()
        if self.similar is not None:
            from .core.io import read_image
            from .core.similar import add_similar

            add_similar(data, analysis, read_image(path) if image is None else image, self.similar, self.args.similar)
        document = json_text(data, ensure_ascii=True)  # never NaN or Infinity
        atomic_write_text(self.args.out / f"{stem}.cells.json", document)
        if overlay is not None:
            atomic_write_bytes(self.args.out / f"{stem}.overlay.png", overlay)
        if self.args.geojson:
            self._geojson(stem, analysis)
        self.summary.add(summary_row(path, analysis, self.threshold))
        if self.args.case is not None:
            self.results[path] = {"analysis": analysis, "kind": "field"}

    def _geojson(self, stem: str, analysis: Analysis) -> None:
        from .core.geojson import cells_geojson, write_geojson

        write_geojson(self.args.out / f"{stem}.geojson", cells_geojson(analysis, threshold=self.threshold, image_id=stem))

    def _failed(self, path: Path, exc: BaseException) -> None:
        if isinstance(exc, LeukViewError):
            self.summary.fail(path, exc.reason)
        elif isinstance(exc, MemoryError):
            self.summary.fail(path, "not enough memory to analyse this image", status="error: out of memory")
        elif isinstance(exc, OSError):  # the output folder: full, or no longer writable
            self.summary.fail(path, f"cannot write its results ({exc.strerror or exc})")
        else:  # a bug must not lose the other images; its traceback is shown
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.stderr)
            self.summary.fail(path, f"analysis failed unexpectedly ({type(exc).__name__}: {exc})")

    def _fields_here(self, fields: Sequence[Path]) -> None:
        from .core.distributed import analyse_field_file, overlay_png
        from .core.summary import printable

        bar = ProgressBar(len(fields), self.stderr, enabled=not self.args.quiet and bool(fields))
        for done, path in enumerate(fields, start=1):
            try:
                analysis, image = analyse_field_file(
                    path, self.classifiers, image_name=str(path),
                    pixel_size_um=None if self.user is None else self.user.pixel_size_um,
                    confidence_threshold=self.threshold,
                )
                self._field_done(path, analysis, overlay_png(image, analysis) if self.args.overlay else None, image)
            except Exception as exc:
                self._failed(path, exc)
            bar.update(done, printable(path.name))
        bar.close()

    def _fields_on_cluster(self, fields: Sequence[Path]) -> None:
        from .core.analysis import Analysis
        from .core.distributed import FieldOptions, shared_path
        from .core.summary import printable

        if not fields:
            return
        options = FieldOptions(
            models=tuple(c.spec.name for c in self.classifiers),
            models_dir=None if self.args.models_dir is None else shared_path(self.args.models_dir),
            pixel_size_um=None if self.user is None else self.user.pixel_size_um,
            confidence_threshold=self.threshold,
            overlay=self.args.overlay,
        )
        items = [(shared_path(p), str(p)) for p in fields]
        bar = ProgressBar(len(fields), self.stderr, enabled=not self.args.quiet)
        for done, (k, result) in enumerate(self.executor.fields(items, options), start=1):
            path = fields[k]
            try:
                if "error" in result:
                    raise LeukViewError(str(result["error"]))
                self._field_done(path, Analysis.from_dict(result["document"]), result.get("overlay"))
            except Exception as exc:
                self._failed(path, exc)
            bar.update(done, printable(path.name))
        bar.close()

    # -- slides, tile by tile

    def _slide(self, path: Path) -> None:
        from .core.calibration import Calibration
        from .core.distributed import shared_path
        from .core.io import open_slide
        from .core.summary import printable
        from .core.tiling import TilingParams, analyse_slide

        args = self.args
        bar: list[ProgressBar] = []

        def on_plan(plan: Any, state: Any) -> None:
            bar.append(ProgressBar(len(plan.tiles), self.stderr, enabled=not args.quiet, unit="tiles"))
            if state.resumed:
                self.stderr.write(f"leukview analyze: {printable(path.name)}: resuming, {state.resumed} of "
                                  f"{len(plan.tiles)} tiles already done\n")
            bar[0].update(len(state.done), printable(path.name))

        def on_tile(item: Any, state: Any) -> None:
            bar[0].update(len(state.done) + len(state.failed), f"{printable(path.name)} tile {item.index}")

        try:
            with open_slide(path) as slide:
                calibration = self.user or Calibration.from_file(slide.pixel_size_um)
                result, plan, _ = analyse_slide(
                    slide, args.out, self.classifiers,
                    stem=self.stems[path], image=str(path),
                    tiling=TilingParams(tile_size=args.tile_size, locate=args.locate, rbc_every=args.rbc_every),
                    calibration=calibration, confidence_threshold=self.threshold,
                    models_dir=None if args.models_dir is None else shared_path(args.models_dir),
                    executor=self.executor, resume=not args.no_resume,
                    side_table_min=args.side_table_after, on_plan=on_plan, on_tile=on_tile,
                )
        except Exception as exc:
            if bar:
                bar[0].close()
            self._failed(path, exc)
            return
        bar[0].close()
        if args.geojson:
            import json

            from .core.analysis import Analysis

            try:
                doc = json.loads(Path(result.cells_json).read_text(encoding="utf-8"))
                self._geojson(self.stems[path], Analysis.from_dict(doc))
            except (OSError, ValueError, LeukViewError) as exc:
                self._failed(path, exc if isinstance(exc, LeukViewError) else LeukViewError(f"GeoJSON not written ({exc})"))
                return
        if result.failed:
            first = next(iter(result.failed.values()))
            self.summary.fail(path, f"{len(result.failed)} of {result.tiles} tiles could not be analysed ({first}); "
                              "cells.json holds the others, and a new run retries them")
        else:
            self.summary.add(slide_row(path, result, plan, self.threshold))
        if args.case is not None:
            self.results[path] = {"cells_json": result.cells_json, "kind": "slide", "summary": result}

    # -- the case

    def write_case(self, images: Sequence[Path]) -> None:
        from .core.analysis import Analysis
        from .core.atomic import atomic_write_text, json_text
        from .core.case import Case, case_path, case_summary, save_case
        from .core.session import SessionSettings

        args = self.args
        settings = SessionSettings.from_dict({"confidence_threshold": self.threshold,
                                              "models": [c.spec.name for c in self.classifiers]})
        case = Case.new(args.case, settings)
        try:
            for path in images:
                result = self.results.get(path)
                if result is None:
                    continue  # failed: named in failures.csv
                if result["kind"] == "field":
                    case.add_image(result["analysis"], path, image_id=self.stems[path])
                    continue
                import json

                doc = json.loads(Path(result["cells_json"]).read_text(encoding="utf-8"))
                slide_summary = result["summary"]
                side = doc.get("side_table") or {}
                case.add_image(
                    Analysis.from_dict(doc), path, kind="slide", image_id=self.stems[path],
                    counting_area=None if args.count_all or slide_summary.counting_area.empty
                    else slide_summary.counting_area,
                    side_table=side.get("path"), estimated_counts=slide_summary.estimated_counts,
                )
            save_case(case, case_path(args.out, case.name))
            summary = case_summary(case)
            atomic_write_text(args.out / f"{case.name}.case.json", json_text(summary, ensure_ascii=True))
            self.summary.add(case_row(case, self.threshold))
        except (LeukViewError, OSError) as exc:
            reason = exc.reason if isinstance(exc, LeukViewError) else f"cannot write it ({exc})"
            self.summary.fail(f"case:{args.case}", reason)


def slide_row(path: Path, result: Any, plan: Any, threshold: float) -> dict[str, object]:
    """A slide's row of summary.csv: cells found (red cells on the sampled tiles), its differential."""
    row: dict[str, object] = {"image": str(path), "status": "ok", "width": plan.width, "height": plan.height}
    row.update(result.counts_by_kind)
    diff = result.differential
    if diff is not None:
        row.update(_differential_columns(diff))
    for name, labels in result.model_labels.items():
        run = next((m for m in result.models if m.name == name), None)
        for cls in run.classes if run is not None else labels:
            row[f"model:{name}:{cls}"] = labels.get(cls, 0)
    from .core.summary import image_check_columns

    row.update(image_check_columns(path, result.domain, slide=True))
    return row


def _differential_columns(diff: Any) -> dict[str, object]:
    blast = diff.blast_percent
    out: dict[str, object] = {f"call:{name}": count for name, count in diff.counts.items()}
    out.update({
        "call:unclassified": diff.unclassified,
        "leukocytes": diff.leukocytes,
        "blast_percent": "" if blast is None else round(blast, 2),
        "flagged": diff.flagged,
    })
    return out


def case_row(case: Any, threshold: float) -> dict[str, object]:
    """The ``case:NAME`` row of summary.csv: cells of every image, the pooled differential (counting areas applied)."""
    row: dict[str, object] = {"image": f"case:{case.name}", "status": "ok"}
    row.update(case.counts_by_kind())
    row.update(_differential_columns(case.differential(threshold)))
    labels: dict[str, Counter[str]] = {}
    for _, cell in case.counted():
        for name, prediction in cell.predictions.items():
            labels.setdefault(name, Counter())[prediction.label] += 1
    for name, counter in labels.items():
        for cls, n in counter.items():
            row[f"model:{name}:{cls}"] = n
    from .core.summary import case_check_columns

    row.update(case_check_columns(case))
    return row


def overlay_png(image: np.ndarray, analysis: Analysis) -> bytes:
    """The overlay PNG of ``analyze --overlay`` (:func:`leukview.core.overlay.render_overlay`), encoded."""
    import cv2

    from .core.overlay import render_overlay

    overlay = render_overlay(image, analysis)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LeukViewError("could not encode the overlay PNG")
    return encoded.tobytes()
