"""``leukview report``: the viewer's CSV and PDF, headless, from an image or a session."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leukview.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from leukview.cli_report import run_report
from leukview.core.analysis import analyze_image
from leukview.core.calibration import Calibration
from leukview.core.calls import call_cell
from leukview.core.export import cells_csv
from leukview.core.io import read_image
from leukview.core.models import load_models
from leukview.core.session import Session, SessionSettings, load_session, save_session, session_path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "samples" / "BloodImage_00214.jpg"
OTHER = ROOT / "resources" / "samples" / "BloodImage_00262.jpg"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx_factory = pytest.importorskip("onnx_factory")
    models = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(models / "tiny", ["lymphocyte", "neutrophil"])
    return models


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "field.jpg"
    shutil.copy(SAMPLE, path)
    return path


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_report(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def reviewed_session(image: Path, models: Path, threshold: float = 0.9) -> Session:
    """A saved session of ``image`` with the first white cell relabelled by a reviewer."""
    analysis = analyze_image(read_image(image), load_models(None, models), calibration=Calibration.from_user(0.2))
    session = Session.new(analysis, image, SessionSettings(models=["tiny"], confidence_threshold=threshold), who="jdoe")
    first = next(c for c in analysis.cells if c.kind == "wbc")
    label = "lymphocyte" if call_cell(first, analysis.models).label != "lymphocyte" else "neutrophil"
    session.set_review(first.id, label, who="jdoe")
    save_session(session, session_path(image))
    return session


def test_an_image_without_a_session_is_analysed_now(image: Path, tmp_path: Path, tiny_models: Path):
    out = tmp_path / "cells.csv"
    code, stdout, err = run(str(image), "--csv", str(out), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert str(out) in stdout
    rows = rows_of(out)
    analysis = analyze_image(read_image(image), load_models(None, tiny_models))
    assert [int(r["id"]) for r in rows] == [c.id for c in analysis.cells]  # one row per cell
    assert [r["call"] for r in rows] == [call_cell(c, analysis.models).label or "" for c in analysis.cells]
    assert any(r["source"] == "tiny" for r in rows)
    assert not session_path(image).exists()  # a report never writes a session


def test_the_saved_session_is_used_with_its_review_threshold_and_calibration(
    image: Path, tmp_path: Path, tiny_models: Path
):
    session = reviewed_session(image, tiny_models, threshold=0.9)
    out = tmp_path / "cells.csv"
    code, _, err = run(str(image), "--csv", str(out))  # no models needed: the session has the calls
    assert code == EXIT_OK, err
    assert "note" not in err
    expected = cells_csv(
        session.analysis.cells, session.analysis.models, 0.9, calibration=session.analysis.calibration
    )
    assert out.read_text(encoding="utf-8") == expected  # the viewer's CSV, byte for byte
    rows = rows_of(out)
    reviewed = [r for r in rows if r["source"] == "review"]
    assert len(reviewed) == 1 and reviewed[0]["reviewer"] == "jdoe"
    wbc = next(r for r in rows if r["kind"] == "wbc" and r["area"])
    assert float(wbc["area_um2"]) == pytest.approx(float(wbc["area"]) * 0.04, rel=1e-3)

    # the session file itself gives the same CSV
    again = tmp_path / "again.csv"
    code, _, err = run(str(session_path(image)), "--csv", str(again))
    assert code == EXIT_OK, err
    assert again.read_text(encoding="utf-8") == expected


def test_a_session_of_another_image_is_not_used(image: Path, tmp_path: Path, tiny_models: Path):
    reviewed_session(image, tiny_models)
    shutil.copy(OTHER, image)  # same name and size, other pixels
    out = tmp_path / "cells.csv"
    code, _, err = run(str(image), "--csv", str(out), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert "not used" in err and "changed" in err and "analysing the image again" in err
    rows = rows_of(out)
    assert not any(r["source"] == "review" for r in rows)
    fresh = analyze_image(read_image(image), load_models(None, tiny_models))
    assert [r["call"] for r in rows] == [call_cell(c, fresh.models).label or "" for c in fresh.cells]


def test_a_damaged_session_is_named_and_the_image_analysed(image: Path, tmp_path: Path, tiny_models: Path):
    session_path(image).write_text('{"format": "leukview-session", "schema_version": 2, "analysis": {')
    out = tmp_path / "cells.csv"
    code, _, err = run(str(image), "--csv", str(out), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert "not used" in err and rows_of(out)
    assert session_path(image).read_text().endswith("{")  # left as it was


def test_pdf_from_an_image_and_from_a_session_without_its_image(image: Path, tmp_path: Path, tiny_models: Path):
    pytest.importorskip("PySide6")
    reviewed_session(image, tiny_models)
    pdf = tmp_path / "out" / "report.pdf"
    code, _, err = run(str(image), "--pdf", str(pdf), "--csv", str(tmp_path / "c.csv"))
    assert code == EXIT_OK, err
    assert pdf.read_bytes().startswith(b"%PDF")
    with_snapshot = pdf.stat().st_size

    moved = tmp_path / "elsewhere.leukview.json"
    shutil.move(session_path(image), moved)
    image.unlink()
    code, _, err = run(str(moved), "--pdf", str(pdf))
    assert code == EXIT_OK, err
    assert "no snapshot" in err
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size < with_snapshot
    assert load_session(moved).audit  # the session is read, never rewritten


def test_usage_and_failures(image: Path, tmp_path: Path, tiny_models: Path):
    code, _, err = run(str(image))
    assert code == EXIT_USAGE and "--csv" in err
    assert run()[0] == EXIT_USAGE
    code, _, err = run(str(tmp_path / "missing.jpg"), "--csv", str(tmp_path / "c.csv"))
    assert code == EXIT_FAILED and "missing.jpg" in err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    code, _, err = run(str(broken), "--csv", str(tmp_path / "c.csv"))
    assert code == EXIT_FAILED and "broken.jpg" in err and "Traceback" not in err
    code, _, err = run(str(image), "--csv", str(tmp_path / "c.csv"), "--model", "no-such-model",
                       "--models-dir", str(tiny_models))  # fmt: skip
    assert code == EXIT_USAGE and "no-such-model" in err
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = run(str(image), "--csv", str(blocker / "c.csv"), "--models-dir", str(tiny_models))
    assert code == EXIT_FAILED and "cannot write" in err
    bad = tmp_path / "bad.leukview.json"
    bad.write_text(json.dumps({"format": "leukview-session", "schema_version": 99}))
    code, _, err = run(str(bad), "--csv", str(tmp_path / "c.csv"))
    assert code == EXIT_FAILED and "update LeukView" in err


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "leukview", "report", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--csv" in result.stdout and "--pdf" in result.stdout and "session" in result.stdout
    top = subprocess.run([sys.executable, "-m", "leukview", "--help"], capture_output=True, text=True, timeout=60)
    assert "leukview report PATH" in top.stdout


def test_the_fallback_folder_session_is_found_like_the_viewer_finds_it(
    image: Path, tmp_path: Path, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
):
    from leukview.core.document import default_sessions_folder
    from leukview.core.session import fallback_session_path

    monkeypatch.setenv("LEUKVIEW_SESSIONS_DIR", str(tmp_path / "sessions"))
    reviewed_session(image, tiny_models)
    fallback = fallback_session_path(image, default_sessions_folder())
    fallback.parent.mkdir(parents=True)
    session_path(image).rename(fallback)  # as when the image's folder was read-only
    out = tmp_path / "cells.csv"
    code, _, err = run(str(image), "--csv", str(out), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert [r["reviewer"] for r in rows_of(out) if r["source"] == "review"] == ["jdoe"]
    assert fallback.is_file() and not session_path(image).exists()


def test_the_pdf_of_a_session_carries_its_case_fields_and_sign_off(
    image: Path, tmp_path: Path, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("PySide6")
    from leukview.core.report import sign_off
    from leukview.core.session import ReportFields
    from leukview.gui import report as gui_report

    session = reviewed_session(image, tiny_models, threshold=0.0)  # nothing flagged: it can be signed
    session.settings.report = ReportFields("P-0012345", "S-1", "Dr X", "J. Doe")
    sign_off(session, "J. Doe", 0.0)
    save_session(session, session_path(image))
    seen = []
    real = gui_report.write_pdf_report
    monkeypatch.setattr(gui_report, "write_pdf_report", lambda path, content: seen.append(content) or real(path, content))
    code, _, err = run(str(session_path(image)), "--pdf", str(tmp_path / "r.pdf"))
    assert code == EXIT_OK, err
    (content,) = seen
    assert content.fields.patient_id == "P-0012345" and content.signed and content.signature.who == "J. Doe"
    assert not content.heatmap and content.gallery  # the viewer's report: cell images, no heatmap
