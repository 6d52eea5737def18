"""``leukview report PATH [--csv OUT] [--pdf OUT]``: the viewer's cell CSV and PDF report, headless.

PATH is an image (its saved review session is used when it belongs to the
image, read-only, by the viewer's own restore rule; otherwise the image is
analysed now), a session file or a case file. Apart from :mod:`leukview.cli`
(``analyze``) so that neither module carries the other's options.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _parse, _usage_error, file_calibration
from .core.errors import LeukViewError

if TYPE_CHECKING:
    import numpy as np

    from .core.analysis import Analysis
    from .core.session import Session


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of ``leukview report``."""
    parser = argparse.ArgumentParser(
        prog="leukview report",
        description=(
            "Write the viewer's cell CSV and PDF report, headless. PATH is an image (its saved "
            "review session <image>.leukview.json is used when there is one and it belongs to the "
            "image; otherwise the image is analysed now with the installed models) or a session file."
        ),
        epilog="Exit codes: 0 written, 1 PATH could not be read or a file could not be written, 2 usage error.",
    )
    parser.add_argument("path", metavar="PATH", help="an image, or a <image>.leukview.json session")
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write the cells as CSV (one row per cell)")
    parser.add_argument("--pdf", type=Path, metavar="OUT", help="write the PDF report")
    parser.add_argument(
        "--models-dir", type=Path, metavar="DIR", help="folder of installed models, when analysing (default: models/)"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="when analysing, run only this installed model (repeatable; default: every installed model)",
    )
    return parser


@dataclass
class ReportSource:
    """What a report is made of: the analysis, its review, and where they came from."""

    analysis: Analysis
    image_path: Path | None
    threshold: float
    audit: Sequence[Any] = ()
    analysed: str = ""
    image: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    settings: Any = None  # the session's SessionSettings: case fields and analysed field of the report
    refs: list[Any] | None = None  # a case's report: the (image, cell id) of each pooled cell


def is_session_file(path: Path) -> bool:
    from .core.session import SESSION_SUFFIX

    return path.name.endswith(SESSION_SUFFIX) or path.suffix.lower() == ".json"


def load_report_source(
    path: Path, models: Sequence[str] | None, models_dir: Path | None, *, need_image: bool
) -> ReportSource:
    """The session or fresh analysis a report of ``path`` is made from.

    Parameters
    ----------
    path : Path
        An image or a session file.
    models, models_dir
        The models to run when the image has to be analysed.
    need_image : bool
        Read the image's pixels (for the PDF's snapshot) even when a session has the cells.

    Raises
    ------
    LeukViewError
        When neither the image nor the session can be read, or the models cannot be loaded.
    """
    from .core.case import CASE_SUFFIX
    from .core.document import RestoreStatus, SessionFiles, default_sessions_folder
    from .core.io import image_info, read_image
    from .core.session import ImageMatch, load_session

    if path.name.endswith(CASE_SUFFIX):
        return _from_case(path)
    if is_session_file(path):
        session = load_session(path)
        source = _from_session(session)
        image_path = Path(session.image_path) if session.image_path else None
        if need_image:
            problem = "the session names no image"
            if image_path is not None and image_path.is_file():
                try:
                    info = image_info(image_path)
                    match, problem = session.check_image(image_path, info.width, info.height)
                    problem = "" if match is ImageMatch.SAME else problem
                except LeukViewError as exc:
                    problem = exc.reason
            elif image_path is not None:
                problem = f"its image {image_path} is not there"
            if problem:
                source.notes.append(f"no snapshot in the report: {problem}")
            else:
                assert image_path is not None
                source.image = read_image(image_path)
        source.image_path = image_path
        return source

    info = image_info(path)  # LeukViewError when the image cannot be read
    # the viewer's own restore rule, read-only: a report never moves or writes a session
    files = SessionFiles(default_sessions_folder(), read_only=True)
    outcome, session = files.restore(path, (info.width, info.height))
    # Unattended, a review is used only for the very same file: the viewer restores one whose
    # image changed (same size) with a note a person reads; a batch report has no such reader.
    usable = outcome.status is RestoreStatus.RESTORED
    notes = [
        f"{o.path.name if o.path else 'session'} not used ({o.reason})"
        for o in outcome.all()
        if o.path is not None and not (usable and o is outcome)
    ]
    if session is not None and usable:
        source = _from_session(session)
        source.image_path = path
        source.notes.extend(notes)
        if need_image:
            source.image = read_image(path)
        return source
    if notes:
        notes[-1] += "; analysing the image again"
    return _analyse_now(path, models, models_dir, notes)


def _from_case(path: Path) -> ReportSource:
    """A case file's report: every counted cell of its images pooled (numbered over the case)."""
    from .core.case import load_case

    case = load_case(path)
    analysis, refs = case.pooled_analysis()
    notes = [f"case {case.name}: {len(case.images)} image(s), {len(refs)} white cells counted; "
             "cell ids run over the case (the CSV's case_image and image_cell columns give each cell's own)"]
    for image_id, _match, reason in case.check_images():
        if reason:
            notes.append(f"{image_id}: {reason}")
    return ReportSource(
        analysis=analysis, image_path=None, threshold=case.threshold, audit=case.audit_log(),
        analysed=case.created, notes=notes, settings=case.settings, refs=refs,
    )


def _from_session(session: Session) -> ReportSource:
    return ReportSource(
        analysis=session.analysis,
        image_path=None,
        threshold=session.settings.confidence_threshold,
        audit=list(session.audit),
        analysed=session.created,
        settings=session.settings,
    )


def _analyse_now(path: Path, models: Sequence[str] | None, models_dir: Path | None, notes: list[str]) -> ReportSource:
    from .core.analysis import analyze_image
    from .core.io import read_image
    from .core.models import load_models
    from .core.session import now_iso

    image = read_image(path)
    classifiers = load_models(models, models_dir)
    if not classifiers:
        notes.append("no model installed; the report has segmentation only")
    analysis = analyze_image(
        image, classifiers, calibration=file_calibration(path), image_name=str(path)
    )
    return ReportSource(
        analysis=analysis,
        image_path=path,
        threshold=analysis.confidence_threshold,
        analysed=now_iso(),
        image=image,
        notes=notes,
    )


def write_report_pdf(path: Path, source: ReportSource) -> Path:
    """The viewer's PDF report of ``source`` (Qt is imported here, offscreen unless a platform is set)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .core.report import build_report
    from .gui.report import ensure_application, write_pdf_report

    ensure_application()
    image_name = source.image_path.name if source.image_path is not None else None
    content = build_report(
        source.analysis,
        source.image,
        audit=source.audit,
        threshold=source.threshold,
        image_name=image_name,
        analysed=source.analysed,
        fields=None if source.settings is None else source.settings.report,
        analysed_field=None if source.settings is None else source.settings.analysed_field,
    )
    return write_pdf_report(path, content)


def run_report(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """``leukview report``; returns the exit code."""
    parser = build_report_parser()
    args = _parse(parser, argv, stdout, stderr)
    if args is None:
        return EXIT_USAGE
    if isinstance(args, int):
        return args
    if args.csv is None and args.pdf is None:
        return _usage_error(parser, stderr, "nothing to write: give --csv OUT and/or --pdf OUT")
    path = Path(args.path)
    if not path.exists():
        stderr.write(f"leukview report: {path}: no such file\n")
        return EXIT_FAILED

    from .core.errors import ModelError
    from .core.export import write_cells_csv

    try:
        source = load_report_source(path, args.models, args.models_dir, need_image=args.pdf is not None)
    except ModelError as exc:  # as analyze: a model asked for by name is a usage error
        stderr.write(f"leukview report: error: {exc}\n")
        return EXIT_USAGE if args.models else EXIT_FAILED
    except LeukViewError as exc:
        stderr.write(f"leukview report: {path}: {exc.reason}\n")
        return EXIT_FAILED
    except MemoryError:
        stderr.write(f"leukview report: {path}: not enough memory to analyse this image\n")
        return EXIT_FAILED
    for note in source.notes:
        stderr.write(f"leukview report: note: {note}\n")

    failed = False
    analysis = source.analysis
    if args.csv is not None:
        try:
            origins = None if source.refs is None else [(ref.image, ref.cell) for ref in source.refs]
            written = write_cells_csv(args.csv, analysis.cells, analysis.models, source.threshold,
                                      calibration=analysis.calibration, origins=origins)
            stdout.write(f"written {written}\n")
        except OSError as exc:
            stderr.write(f"leukview report: {args.csv}: cannot write ({exc.strerror or exc})\n")
            failed = True
    if args.pdf is not None:
        try:
            stdout.write(f"written {write_report_pdf(args.pdf, source)}\n")
        except LeukViewError as exc:
            stderr.write(f"leukview report: {args.pdf}: {exc.reason}\n")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK
