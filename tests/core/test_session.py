"""Review sessions: corrections, audit log, versioned JSON, atomic saves."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from leukview.core.analysis import Analysis, ModelRun
from leukview.core.cells import Cell, Prediction, ReviewState
from leukview.core.errors import SessionError
from leukview.core.session import (
    AuditAction,
    AuditEntry,
    ImageMatch,
    Session,
    SessionDamaged,
    SessionNewerVersion,
    SessionNotFound,
    SessionSettings,
    SessionUnreadable,
    current_user,
    fallback_session_path,
    load_session,
    save_session,
    session_path,
)

TYPE = ModelRun("wbc-type", "1.2.0", "CPUExecutionProvider", ["lymphocyte", "monocyte", "neutrophil"])


SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    """A bundled BCCD field, copied so that sessions are written beside the copy."""
    path = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(SAMPLES / "BloodImage_00214.jpg", path)
    return path


def make_analysis() -> Analysis:
    cells = []
    for i, (label, conf) in enumerate([("monocyte", 0.55), ("neutrophil", 0.97)], start=1):
        x, y = 100.0 * i, 80.0
        probs = {c: (conf if c == label else (1 - conf) / 2) for c in TYPE.classes}
        cam = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
        cells.append(
            Cell(
                id=i,
                kind="wbc",
                contour=np.array([[x - 20, y - 20], [x + 20, y - 20], [x + 20, y + 20], [x - 20, y + 20]], np.int32),
                bbox=(int(x - 20), int(y - 20), int(x + 21), int(y + 21)),
                centroid=(x, y),
                measurements={"area": 1600.0},
                predictions={TYPE.name: Prediction(label, probs, cam=cam, cam_box=(x - 30, y - 30, x + 30, y + 30))},
            )
        )
    cells.append(Cell(3, "rbc", np.zeros((0, 2), np.int32), (10, 10, 20, 20), (15.0, 15.0)))
    return Analysis(width=640, height=480, cells=cells, models=[TYPE], image="BloodImage_00214.jpg")


def test_session_is_saved_beside_the_image(image: Path):
    assert session_path(image) == image.parent / "BloodImage_00214.jpg.leukview.json"
    other = fallback_session_path(image, image.parent / "elsewhere")
    assert other.parent.name == "elsewhere" and other.name.endswith(".leukview.json")
    assert fallback_session_path(image.parent / "a" / image.name, "x") != fallback_session_path(image, "x")


def test_corrections_are_audited_and_survive_a_round_trip(image: Path):
    session = Session.new(make_analysis(), image, settings={"confidence_threshold": 0.7}, who="tester")
    previous, entry = session.set_review(1, "lymphocyte", who="jdoe")
    assert previous == ReviewState()
    assert (entry.who, entry.action, entry.cell) == ("jdoe", "reclassify", 1)
    assert (entry.before, entry.after) == ("monocyte", "lymphocyte")
    assert (entry.model, entry.model_version) == ("wbc-type", "1.2.0")
    assert session.cell(1).review.label == "lymphocyte" and session.cell(1).review.reviewer == "jdoe"
    assert "T" in entry.when and ("+" in entry.when or "-" in entry.when[10:])  # ISO with offset
    session.set_review(2, "neutrophil", action="confirm")
    undo = session.restore_review(1, previous, action="undo")
    assert (undo.before, undo.after) == ("lymphocyte", "monocyte")
    assert session.cell(1).review.label is None

    path = save_session(session, session_path(image))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "leukview-session" and document["schema_version"] == 2
    assert document["image"]["name"] == image.name

    restored = load_session(path)
    assert [e.action for e in restored.audit] == ["analyse", "reclassify", "confirm", "undo"]
    assert restored.audit[0].reviewer == "tester" and restored.audit[0].detail == {
        "cells": 3,
        "models": [{"name": "wbc-type", "version": "1.2.0", "provider": "CPUExecutionProvider"}],
    }
    assert restored.audit[0].describe() == "analyse: 3 cells; wbc-type 1.2.0 on CPUExecutionProvider"
    assert restored.cell(2).review.label == "neutrophil"
    assert restored.cell(1).review.label is None
    assert [len(c.contour) for c in restored.analysis.cells] == [4, 4, 0]
    # class-activation maps come back (quantised to 1/255)
    cam = restored.cell(1).predictions["wbc-type"].cam
    assert cam is not None and cam.shape == (4, 4)
    np.testing.assert_allclose(cam, session.cell(1).predictions["wbc-type"].cam, atol=1 / 255)
    assert restored.cell(1).predictions["wbc-type"].cam_box == (70.0, 50.0, 130.0, 110.0)
    assert restored.settings == SessionSettings(confidence_threshold=0.7)
    assert restored.matches_image(image, 640, 480) is None
    assert len(restored.corrections) == 2  # reclassify and undo changed a call; confirm did not


def test_session_detects_another_image(image: Path):
    session = Session.new(make_analysis(), image)
    assert session.check_image(image, 640, 480) == (ImageMatch.SAME, "")
    match, reason = session.check_image(image, 480, 640)
    assert match is ImageMatch.OTHER_SIZE and "480" in reason
    assert session.matches_image(image, 480, 640) == reason
    shutil.copy(SAMPLES / "BloodImage_00056.jpg", image)
    match, reason = session.check_image(image, 640, 480)
    assert match is ImageMatch.CHANGED and "changed" in reason
    image.unlink()
    assert session.check_image(image, 640, 480)[0] is ImageMatch.UNREADABLE


def test_a_failed_save_leaves_the_last_session_intact(image: Path, monkeypatch: pytest.MonkeyPatch):
    session = Session.new(make_analysis(), image)
    path = save_session(session, session_path(image))
    good = path.read_bytes()
    session.set_review(1, "neutrophil")

    def crash(src, dst):  # the machine dies between writing the temporary file and the rename
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SessionError, match="No space left"):
        save_session(session, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert load_session(path).cell(1).review.label is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "not found"),
        (b"", "not valid JSON"),
        (b'{"format": "leukview-session", "schema_version": 1, "analysis": {"sch', "not valid JSON"),
        (b'{"cells": []}', "not a LeukView session"),
        (b'{"format": "leukview-session", "schema_version": 99}', "update LeukView"),
        (b'{"format": "leukview-session", "schema_version": 1, "analysis": {"schema_version": 1}}', "damaged"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_bad_session_files_give_a_reason(tmp_path: Path, content: bytes | None, reason: str):
    path = tmp_path / "x.jpg.leukview.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SessionError, match=reason) as info:
        load_session(path)
    assert info.value.path == str(path)
    # typed, so that a caller decides on the kind of failure, not on the message
    expected = {"not found": SessionNotFound, "update LeukView": SessionNewerVersion}.get(reason, SessionDamaged)
    assert type(info.value) is expected


def test_an_unreadable_session_is_told_apart_from_a_damaged_one(image: Path):
    path = save_session(Session.new(make_analysis(), image), session_path(image))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user reads files whatever their permissions (root)")
        with pytest.raises(SessionUnreadable, match="cannot read"):
            load_session(path)
    finally:
        path.chmod(0o644)


def test_current_user_is_the_os_user(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOGNAME", "pathologist1")
    monkeypatch.setenv("USER", "pathologist1")
    assert current_user() == "pathologist1"

    def fail():
        raise OSError("no user")

    monkeypatch.setattr(getpass, "getuser", fail)
    assert current_user() == "unknown"


def test_settings_are_typed_and_round_trip(image: Path):
    settings = SessionSettings(
        models=["wbc-type"],
        segmentation={"nucleus_threshold_scale": 1.2, "rbc_diameter": None, "detect_rbc": True},
        confidence_threshold=0.85,
        analysed_field=(10, 20, 300, 200),
        target=200,
        heat_mode="all",
        heat_opacity=0.25,
    )
    session = Session.new(make_analysis(), image, settings=settings)
    path = save_session(session, session_path(image))
    stored = json.loads(path.read_text(encoding="utf-8"))["settings"]
    assert stored["field"] == [10, 20, 300, 200] and stored["target"] == 200
    assert "pixel_size_um" not in stored  # the pixel size lives in the analysis's calibration
    restored = load_session(path).settings
    assert restored == settings
    assert restored.segmentation_params().nucleus_threshold_scale == pytest.approx(1.2)


def test_an_old_untyped_session_still_loads_and_its_pixel_size_becomes_the_calibration(image: Path):
    session = Session.new(make_analysis(), image)
    document = session.to_dict()
    # schema 1 as the viewer wrote it before typed settings: six keys, the pixel size among them
    document["settings"] = {
        "models": ["wbc-type"],
        "segmentation": {"nucleus_threshold_scale": 1.1},
        "confidence_threshold": 0.6,
        "pixel_size_um": 0.25,
        "pixel_size_source": "estimated from red cells",
        "field": [0, 0, 640, 480],
    }
    document["analysis"]["pixel_size_um"] = None
    path = session_path(image)
    path.write_text(json.dumps(document), encoding="utf-8")
    restored = load_session(path)
    assert restored.settings.confidence_threshold == 0.6
    assert restored.settings.analysed_field == (0, 0, 640, 480)
    assert restored.settings.target == 100  # not recorded then: the default
    calibration = restored.analysis.calibration
    assert (calibration.pixel_size_um, calibration.source) == (0.25, "rbc-estimate")
    assert calibration.estimated
    # a newer app's unknown key survives a save
    document["settings"]["reviewed_on"] = "scope 2"
    path.write_text(json.dumps(document), encoding="utf-8")
    again = load_session(save_session(load_session(path), path))
    assert again.settings.extra == {"reviewed_on": "scope 2"}


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"confidence_threshold": "high"}, "confidence_threshold must be a number"),
        ({"confidence_threshold": 1.5}, "between 0 and 1"),
        ({"confidence_threshold": True}, "must be a number"),
        ({"models": "wbc-type"}, "models must be a list"),
        ({"field": [0, 0, 0, 10]}, "field"),
        ({"field": [0, 0, 10]}, r"\[x, y, width, height\]"),
        ({"target": 2.5}, "target"),
        ({"heat_mode": "sometimes"}, "heat_mode"),
        ({"heat_opacity": -0.1}, "heat_opacity"),
        ({"segmentation": {"nucleus_threshold_scale": "big"}}, "nucleus_threshold_scale"),
        ({"pixel_size_um": -3, "pixel_size_source": "set by the user"}, "pixel size"),
        ([1, 2], "settings must be an object"),
    ],
)
def test_bad_settings_are_a_damaged_session_not_a_crash(image: Path, settings: object, reason: str):
    document = Session.new(make_analysis(), image).to_dict()
    document["settings"] = settings
    path = session_path(image)
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(SessionError, match=reason) as info:
        load_session(path)
    assert "damaged session" in str(info.value)


def test_audit_entries_are_structured_and_read_as_text(image: Path):
    session = Session.new(make_analysis(), image, who="tester")
    _, entry = session.set_review(1, "lymphocyte", who="jdoe")
    assert entry.action is AuditAction.RECLASSIFY and entry.action == "reclassify"
    assert entry.models == {"wbc-type": "1.2.0"} and entry.model_version == "1.2.0"
    assert entry.describe() == "reclassify cell 1: monocyte -> lymphocyte (wbc-type 1.2.0)"
    cal = session.log(AuditAction.SET_CALIBRATION, detail={"pixel_size_um": 0.25, "source": "user"})
    assert cal.describe() == "set pixel size: 0.25 µm/px (set by the user)"
    unknown = session.log(AuditAction.SET_CALIBRATION, detail={"pixel_size_um": None, "source": None})
    assert unknown.describe() == "set pixel size: pixel size unknown"
    threshold = session.log(AuditAction.SET_THRESHOLD, detail={"confidence_threshold": 0.85})
    assert threshold.describe() == "set confidence threshold: 0.85"
    export = session.log(AuditAction.EXPORT_CSV, detail={"path": "/tmp/x.csv"})
    assert export.describe() == "export CSV: /tmp/x.csv"
    restored = load_session(save_session(session, session_path(image)))
    assert [e.to_dict() for e in restored.audit] == [e.to_dict() for e in session.audit]
    assert restored.audit[2].detail == {"pixel_size_um": 0.25, "source": "user"}
    # the set of actions is closed, and each action's payload has its own keys
    with pytest.raises(SessionError, match="unknown audit action"):
        session.log("rename cell")
    with pytest.raises(SessionError, match="keys"):
        session.log(AuditAction.EXPORT_PDF, detail={"pixel_size_um": 1.0, "source": "user"})  # type: ignore[arg-type]


def test_schema_1_audit_entries_with_prose_still_load():
    old = {
        "when": "2024-05-02T10:14:03+02:00", "who": "jdoe", "action": "set pixel size", "cell": None,
        "before": None, "after": None, "model": None, "model_version": None,
        "detail": "0.25 µm/px, set by the user",
    }  # fmt: skip
    entry = AuditEntry.from_dict(old)
    assert (entry.time, entry.reviewer, entry.when, entry.who) == (old["when"], "jdoe", old["when"], "jdoe")
    assert entry.action is AuditAction.SET_CALIBRATION and entry.detail is None
    assert entry.describe() == "set pixel size; 0.25 µm/px, set by the user"
    review = AuditEntry.from_dict(
        {"when": "t", "who": "jdoe", "action": "reclassify", "cell": 7, "before": "monocyte",
         "after": "lymphocyte", "model": "wbc-type", "model_version": "1.0.0", "detail": ""}
    )  # fmt: skip
    assert review.models == {"wbc-type": "1.0.0"} and review.note == ""
    assert review.describe() == "reclassify cell 7: monocyte -> lymphocyte (wbc-type 1.0.0)"
