"""The review document without Qt: open, analyse, review with undo and redo, calibrate, save, restore."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from leukview.core.calibration import Calibration
from leukview.core.document import (
    RestoreStatus,
    ReviewDocument,
    analyse_field,
    field_rect,
    image_for,
)
from leukview.core.errors import SessionError
from leukview.core.io import read_image
from leukview.core.session import (
    AuditAction,
    SessionSettings,
    fallback_session_path,
    load_session,
    save_session,
    session_path,
)

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> list:
    """A tiny type model and a tiny blast model (random weights, real ONNX)."""
    onnx_factory = pytest.importorskip("onnx_factory")
    from leukview.core.models import load_models

    root = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(root / "wbc-type", WBC_CLASSES, input_size=32, seed=3)
    onnx_factory.make_tiny_classifier(root / "all-blast", ["blast", "normal"], input_size=32, seed=5, positive_class="blast")
    return load_models(["wbc-type", "all-blast"], root)


@pytest.fixture(scope="module")
def analysed(classifiers: list) -> tuple[np.ndarray, object]:
    """The bundled sample analysed once (each test copies the cells it changes)."""
    image = read_image(SAMPLES / "BloodImage_00214.jpg")
    return image, analyse_field(image, classifiers)


@pytest.fixture()
def image_path(tmp_path: Path) -> Path:
    path = tmp_path / "slides" / "BloodImage_00214.jpg"
    path.parent.mkdir()
    shutil.copy(SAMPLES / path.name, path)
    return path


class Recorder:
    """Every event a document emits, in order, with its arguments."""

    def __init__(self, document: ReviewDocument) -> None:
        self.seen: list[tuple[str, tuple]] = []
        events = document.events
        for name, event in vars(events).items():
            event.connect(lambda *args, n=name: self.seen.append((n, args)))

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    def of(self, name: str) -> list[tuple]:
        return [args for n, args in self.seen if n == name]

    def clear(self) -> None:
        self.seen.clear()


def fresh(analysed) -> object:  # noqa: ANN001
    import copy

    return copy.deepcopy(analysed[1])


def open_analysed(image_path: Path, analysed, tmp_path: Path, **kwargs) -> ReviewDocument:  # noqa: ANN001
    document = ReviewDocument(sessions_folder=tmp_path / "fallback", reviewer="tester", **kwargs)
    document.open(image_path)
    assert document.restore().status is RestoreStatus.NO_SESSION
    document.set_analysis(fresh(analysed), segmentation={"nucleus_threshold_scale": 1.0})
    return document


def test_open_analyse_review_undo_redo_with_audit_and_events(image_path: Path, analysed, tmp_path: Path):
    document = ReviewDocument(sessions_folder=tmp_path / "fallback", reviewer="tester", autosave=False)
    events = Recorder(document)
    document.open(image_path)
    assert document.size == (640, 480) and document.path == image_path
    assert not document.calibration.known  # a JPEG says nothing of its pixel size
    assert events.names() == ["image_changed", "calibration_changed"]
    assert document.restore().status is RestoreStatus.NO_SESSION

    events.clear()
    session = document.set_analysis(fresh(analysed), field=(0, 0, 640, 480))
    assert document.session is session and session.settings.models == ["wbc-type", "all-blast"]
    assert session.settings.analysed_field == (0, 0, 640, 480)
    assert events.names()[:2] == ["analysis_changed", "audit_appended"]
    assert events.of("audit_appended")[0][0].action is AuditAction.ANALYSE
    assert document.dirty and events.of("dirty_changed") == [(True,)]

    order = document.review_order()
    assert order and all(c.kind == "wbc" for c in order)
    cell = order[0]
    model_call = document.call(cell)
    events.clear()
    assert document.review(cell.id, "lymphocyte")
    assert document.call(cell).label == "lymphocyte" and document.call(cell).reviewed
    assert cell.review.reviewer == "tester"
    assert events.of("cell_changed") == [(cell.id,)]
    entry = events.of("audit_appended")[0][0]
    assert (entry.action, entry.cell, entry.before, entry.after) == (
        AuditAction.RECLASSIFY, cell.id, model_call.label, "lymphocyte",
    )  # fmt: skip
    assert entry.models == {"wbc-type": "0.0.1", "all-blast": "0.0.1"}
    assert document.undo_stack.can_undo and document.undo_stack.undo_text == f"Classify cell {cell.id} as lymphocyte"
    assert document.differential().counts["lymphocyte"] >= 1

    assert document.undo()
    assert cell.review.label is None and document.call(cell).label == model_call.label
    assert document.session.audit[-1].action is AuditAction.UNDO
    assert document.redo()
    assert cell.review.label == "lymphocyte" and document.session.audit[-1].action is AuditAction.REDO
    assert not document.redo()  # nothing left to redo
    assert [e.action for e in document.session.audit] == [
        AuditAction.ANALYSE, AuditAction.RECLASSIFY, AuditAction.UNDO, AuditAction.REDO,
    ]  # fmt: skip
    # accept the call of another cell, then clear it again
    other = order[1] if len(order) > 1 else order[0]
    if other is not cell:
        assert document.confirm(other.id) and other.review.label == document.model_call(other).label
        assert document.clear_review(other.id) and other.review.label is None
        assert not document.clear_review(other.id)  # nothing to clear
    with pytest.raises(KeyError):
        document.review(10_000, "lymphocyte")


def test_calibration_change_is_audited_emitted_and_saved(image_path: Path, analysed, tmp_path: Path):
    document = open_analysed(image_path, analysed, tmp_path)
    events = Recorder(document)
    calibration = Calibration.from_user(0.25)
    document.set_calibration(calibration)
    assert events.of("calibration_changed") == [(calibration,)]
    assert document.analysis.calibration == calibration == document.calibration
    entry = document.session.audit[-1]
    assert entry.action is AuditAction.SET_CALIBRATION
    assert entry.detail == {"pixel_size_um": 0.25, "source": "user"}
    assert entry.describe() == "set pixel size: 0.25 µm/px (set by the user)"
    events.clear()
    document.set_calibration(calibration)  # no change: no entry, no event
    assert events.seen == [] and document.session.audit[-1] is entry
    saved = document.save()
    assert saved.saved and saved.path == session_path(image_path)
    assert load_session(saved.path).analysis.calibration == calibration


def test_the_threshold_lives_in_the_settings_and_drives_every_call(image_path: Path, analysed, tmp_path: Path):
    document = open_analysed(image_path, analysed, tmp_path)
    events = Recorder(document)
    wbcs = document.review_order()
    low = min(wbcs, key=lambda c: min(p.confidence for p in c.predictions.values()))
    lowest = min(p.confidence for p in low.predictions.values())
    document.set_threshold(lowest - 0.01)
    assert "low-confidence" not in document.call(low).flags
    document.set_threshold(min(1.0, lowest + 0.01))
    assert "low-confidence" in document.call(low).flags
    assert document.session.settings.confidence_threshold == document.threshold == pytest.approx(lowest + 0.01)
    assert [args[0] for args in events.of("threshold_changed")] == [
        pytest.approx(lowest - 0.01), pytest.approx(lowest + 0.01),
    ]  # fmt: skip
    assert document.session.audit[-1].detail == {"confidence_threshold": pytest.approx(lowest + 0.01)}
    with pytest.raises(SessionError):
        document.set_threshold(1.5)


def test_a_re_analysis_keeps_the_history_and_the_calibration(image_path: Path, analysed, tmp_path: Path):
    document = open_analysed(image_path, analysed, tmp_path)
    cell = document.review_order()[0]
    document.review(cell.id, "monocyte")
    document.set_calibration(Calibration.from_user(0.2))
    before = len(document.session.audit)
    document.set_analysis(fresh(analysed))
    assert len(document.session.audit) == before + 1 and document.session.audit[-1].action is AuditAction.ANALYSE
    assert document.calibration.pixel_size_um == pytest.approx(0.2)
    assert not document.undo_stack.can_undo  # the cells undone would be gone


def test_large_images_are_analysed_one_capped_field_at_a_time():
    assert field_rect(640, 480, (100, 100, 50, 50)) == (0, 0, 640, 480)
    # one rule, one cap: the view's rectangle, at least 512 and at most 4096 a side, inside the image
    assert field_rect(10_000, 8_000, (1000, 1000, 300, 200)) == (894, 844, 512, 512)
    assert field_rect(10_000, 8_000, (-5000, -5000, 30_000, 30_000)) == (2952, 1952, 4096, 4096)
    assert field_rect(10_000, 8_000, None) == (4744, 3744, 512, 512)  # nothing in view: the centre
    x, y, w, h = field_rect(10_000, 8_000, (9_900, 7_900, 1_000, 1_000))
    assert x + w == 10_000 and y + h == 8_000 and (w, h) == (512, 512)
    assert field_rect(2000, 1500, (0, 0, 2000, 1500), large_image_pixels=1_000_000, max_side=800) == (600, 350, 800, 800)
    document = ReviewDocument()
    document.large_image_pixels = 1_000
    assert document.is_large(640, 480) and not ReviewDocument().is_large(640, 480)


def test_analyse_field_puts_cells_in_image_coordinates(classifiers: list):
    from leukview.core.segment import segment

    image = read_image(SAMPLES / "BloodImage_00262.jpg")
    region = np.ascontiguousarray(image[100:400, 150:550])
    expected = segment(region).cells
    analysis = analyse_field(region, (), offset=(150, 100), full_size=(640, 480))
    assert (analysis.width, analysis.height) == (640, 480)
    assert len(analysis.cells) == len(expected) > 0
    for got, want in zip(analysis.cells, expected, strict=True):
        assert got.centroid == pytest.approx((want.centroid[0] + 150, want.centroid[1] + 100))
        assert got.bbox == (want.bbox[0] + 150, want.bbox[1] + 100, want.bbox[2] + 150, want.bbox[3] + 100)


def test_autosave_tracks_dirtiness_and_restores_the_review(image_path: Path, analysed, tmp_path: Path):
    document = open_analysed(image_path, analysed, tmp_path)
    assert document.dirty
    outcome = document.autosave()
    assert outcome is not None and outcome.saved and not outcome.fell_back
    assert not document.dirty and document.autosave() is None  # nothing new to save
    cell = document.review_order()[0]
    document.review(cell.id, "eosinophil")
    assert document.dirty
    document.close()  # autosave is on: closing saves
    assert document.session is None and document.path is None and not document.dirty

    again = ReviewDocument(sessions_folder=tmp_path / "fallback", reviewer="tester")
    events = Recorder(again)
    again.open(session_path(image_path))  # a session file opens its image
    assert again.path == image_path and image_for(session_path(image_path)) == image_path
    restored = again.restore()
    assert restored.status is RestoreStatus.RESTORED and restored.path == session_path(image_path)
    assert again.cell(cell.id).review.label == "eosinophil" and not again.dirty
    assert "analysis_changed" in events.names() and not again.undo_stack.can_undo
    assert [e.action for e in again.session.audit][-1] is AuditAction.RECLASSIFY


def test_a_read_only_folder_saves_to_the_fallback_folder(image_path: Path, analysed, tmp_path: Path, monkeypatch):
    import leukview.core.document._files as document_mod

    real = document_mod.save_session
    beside = session_path(image_path)

    def refuse_beside(session, path):  # noqa: ANN001 - the image's folder is read-only
        if Path(path) == beside:
            raise SessionError("cannot save the session (Permission denied)", path)
        return real(session, path)

    monkeypatch.setattr(document_mod, "save_session", refuse_beside)
    document = open_analysed(image_path, analysed, tmp_path)
    outcome = document.save()
    fallback = fallback_session_path(image_path, tmp_path / "fallback")
    assert outcome.path == fallback and outcome.fell_back and "Permission denied" in outcome.errors[0]
    assert not beside.exists() and load_session(fallback).analysis.width == 640
    # the next image open finds it there
    document.close()
    document.open(image_path)
    assert document.restore().status is RestoreStatus.RESTORED and document.session_file == fallback


def test_read_only_mode_never_writes(image_path: Path, analysed, tmp_path: Path):
    document = open_analysed(image_path, analysed, tmp_path, read_only=True)
    outcome = document.save()
    assert not outcome.saved and "read-only" in outcome.errors[0]
    document.close()
    assert list(image_path.parent.iterdir()) == [image_path]


def saved_session(image_path: Path, analysed, tmp_path: Path) -> Path:
    document = open_analysed(image_path, analysed, tmp_path)
    document.review(document.review_order()[0].id, "basophil")
    path = document.save().path
    document.close()
    return path


def test_restore_with_a_note_when_the_image_file_changed(image_path: Path, analysed, tmp_path: Path):
    path = saved_session(image_path, analysed, tmp_path)
    # same size, other content: the review is restored, and the user told
    shutil.copy(SAMPLES / "BloodImage_00056.jpg", image_path)
    document = ReviewDocument(sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.RESTORED_WITH_NOTE and outcome.restored
    assert outcome.path == path and "changed" in outcome.reason
    assert any(c.review.label == "basophil" for c in document.cells)


def test_a_session_of_another_image_is_not_restored_and_not_overwritten(image_path: Path, analysed, tmp_path: Path):
    path = saved_session(image_path, analysed, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["analysis"]["width"] = 1280  # made for another image of this name
    path.write_text(json.dumps(data), encoding="utf-8")
    before = path.read_bytes()
    document = ReviewDocument(sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.NOT_THIS_IMAGE and not outcome.restored
    assert "1280x480" in outcome.reason and document.session is None
    document.set_analysis(fresh(analysed))
    saved = document.save()
    assert saved.path == fallback_session_path(image_path, tmp_path / "fallback") and saved.fell_back
    assert path.read_bytes() == before  # the other image's review is intact
    # opened again: the beside file is still not this image's, the fallback one is restored
    document.close()
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.RESTORED and outcome.path == saved.path
    assert [s.status for s in outcome.skipped] == [RestoreStatus.NOT_THIS_IMAGE]


def test_a_damaged_session_is_kept_aside_as_damaged(image_path: Path, analysed, tmp_path: Path):
    path = session_path(image_path)
    path.write_text('{"format": "leukview-session", "schema_version": 2, "analysis": {')
    document = ReviewDocument(sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.DAMAGED and "not valid JSON" in outcome.reason
    assert outcome.kept_as == path.with_name(path.name + ".damaged") and outcome.kept_as.is_file()
    assert not path.exists()
    # the fresh analysis is saved beside the image again
    document.set_analysis(fresh(analysed))
    assert document.save().path == path


def test_a_session_from_a_newer_version_is_kept_untouched(image_path: Path, analysed, tmp_path: Path):
    path = saved_session(image_path, analysed, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["schema_version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    before = path.read_bytes()
    document = ReviewDocument(sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.NEWER_VERSION and "update LeukView" in outcome.reason
    assert outcome.kept_as is None and path.read_bytes() == before
    document.set_analysis(fresh(analysed))
    assert document.save().path != path and path.read_bytes() == before


def check_unreadable_is_kept(image_path: Path, analysed, tmp_path: Path, path: Path, before: bytes) -> None:
    document = ReviewDocument(sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    outcome = document.restore()
    assert outcome.status is RestoreStatus.UNREADABLE and "cannot read" in outcome.reason
    assert outcome.kept_as is None and not path.with_name(path.name + ".damaged").exists()
    document.set_analysis(fresh(analysed))
    saved = document.save()
    assert saved.saved and saved.path != path  # never written over
    path.chmod(0o644)
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_an_unreadable_session_is_said_so_and_kept_untouched(image_path: Path, analysed, tmp_path: Path):
    path = saved_session(image_path, analysed, tmp_path)
    before = path.read_bytes()
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user reads files whatever their permissions (root)")
        check_unreadable_is_kept(image_path, analysed, tmp_path, path, before)
    finally:
        path.chmod(0o644)


def test_an_unreadable_session_is_kept_even_as_root(image_path: Path, analysed, tmp_path: Path, monkeypatch):
    """The same policy where permissions cannot make a file unreadable: the read fails instead."""
    path = saved_session(image_path, analysed, tmp_path)
    before = path.read_bytes()
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    check_unreadable_is_kept(image_path, analysed, tmp_path, path, before)


def test_defaults_seed_a_new_image_and_view_settings_are_recorded(image_path: Path, analysed, tmp_path: Path):
    defaults = SessionSettings(confidence_threshold=0.9, target=200, heat_mode="selected")
    document = ReviewDocument(defaults, sessions_folder=tmp_path / "fallback")
    document.open(image_path)
    assert document.threshold == 0.9
    document.set_analysis(fresh(analysed))
    assert document.session.settings.target == 200 and document.session.settings.heat_mode == "selected"
    document.set_view_settings(heat_mode="all", heat_opacity=0.3)
    assert (document.settings.heat_mode, document.settings.heat_opacity) == ("all", 0.3)
    with pytest.raises(SessionError):
        document.set_view_settings(heat_mode="sometimes")
    assert document.settings.heat_mode == "all"  # a refused value changes nothing
    assert defaults.heat_mode == "selected"  # the document works on its own copy


def test_report_content_uses_the_documents_threshold_and_calibration(image_path: Path, analysed, tmp_path: Path):
    pytest.importorskip("leukview.core.report")
    document = open_analysed(image_path, analysed, tmp_path)
    document.set_threshold(0.95)
    document.set_calibration(Calibration.from_user(0.1))
    image, _ = analysed
    content = document.report_content(image)
    assert content.threshold == 0.95 and content.calibration.pixel_size_um == pytest.approx(0.1)
    assert content.image_name == image_path.name and content.snapshot is not None
    assert content.snapshot.shape[2] == 3
    ready = np.zeros((10, 20, 3), np.uint8)
    assert document.report_content(None, snapshot=ready).snapshot is ready
    save_session(document.session, tmp_path / "x.leukview.json")  # still a valid session
