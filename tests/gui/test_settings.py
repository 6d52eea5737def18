"""Per-user settings and the settings dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from leukview.gui.settings import AppSettings, SettingsDialog
from leukview.gui.worker import installed_models

pytestmark = pytest.mark.gui


def test_settings_persist_per_user(qtbot, tmp_path: Path, models_dir: Path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings = AppSettings(store)
    dialog = SettingsDialog(settings, installed_models(models_dir))
    qtbot.addWidget(dialog)
    # every installed model is ticked until the user chooses
    items = [dialog.model_list.item(i) for i in range(dialog.model_list.count())]
    assert [i.checkState() for i in items] == [Qt.CheckState.Checked] * 2
    dialog.threshold.setValue(0.85)
    items[0].setCheckState(Qt.CheckState.Unchecked)
    editor, _ = dialog.form.editors["nucleus_threshold_scale"]
    editor.setValue(1.2)
    changed = dialog.apply()
    assert changed == {"models": True, "threshold": True, "segmentation": True, "classes": False}
    again = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert again.confidence_threshold == pytest.approx(0.85)
    assert again.use_models and again.model_names == [items[1].data(Qt.ItemDataRole.UserRole)]
    assert again.segmentation["nucleus_threshold_scale"] == pytest.approx(1.2)
    # no model ticked: segmentation and manual review only
    items[1].setCheckState(Qt.CheckState.Unchecked)
    assert dialog.apply()["models"]
    again = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert not again.use_models and again.model_names == []


def test_bad_stored_values_fall_back_to_defaults(tmp_path: Path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    store.setValue("review/confidence_threshold", "lots")
    store.setValue("view/heat_mode", "sometimes")
    store.setValue("view/heat_opacity", 7)
    store.setValue("segmentation/params", "{not json")
    settings = AppSettings(store)
    assert settings.confidence_threshold == 0.7
    assert settings.heat_mode == "off" and settings.heat_opacity == 1.0
    assert settings.segmentation == {}


def test_the_class_list_is_shown_and_a_labs_file_installed_on_ok(qtbot, tmp_path: Path, monkeypatch):  # noqa: ANN001
    from leukview.core import classes

    monkeypatch.setenv(classes.CONFIG_DIR_ENV, str(tmp_path / "config"))
    monkeypatch.delenv(classes.CLASSES_ENV, raising=False)
    classes.set_active_classes(None)
    try:
        dialog = SettingsDialog(AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)), [])
        qtbot.addWidget(dialog)
        box = dialog.class_list
        assert box.table.rowCount() == 22 and "built in" in box.source.text()
        codes = [box.table.item(r, 1).text() for r in range(box.table.rowCount())]
        assert codes[:3] == ["Neut", "Band", "Lym"] and box.table.item(0, 0).text() == "1"
        smudge = codes.index("Smdg")
        assert box.table.item(smudge, 3).text() == "apart" and box.table.item(codes.index("NRBC"), 3).text() == (
            "apart, per 100 WBC"
        )
        bad = tmp_path / "bad.toml"
        bad.write_text("[[classes]]\nname = 'x'\ncolour = 'blue'\n", encoding="utf-8")
        assert not box.choose_file(bad) and "colour 'blue'" in box.source.text()
        good = tmp_path / "lab.toml"
        good.write_text(
            "name = 'Lab'\n[[classes]]\nname = 'seg'\ncolour = '#56B4E9'\naliases = ['neutrophil']\n"
            "[[classes]]\nname = 'artefact'\ncolour = '#999999'\ncounts_in_total = false\n",
            encoding="utf-8",
        )
        assert box.choose_file(good) and box.table.rowCount() == 2 and "used once you press OK" in box.source.text()
        assert classes.active_classes().source == "built in"  # nothing changes before OK
        assert dialog.apply()["classes"]
        assert (tmp_path / "config" / "classes.toml").is_file() and classes.active_classes().names == ["seg", "artefact"]
        assert not dialog.apply()["classes"]
        box._use_builtin()
        assert dialog.apply()["classes"] and classes.active_classes().source == "built in"
    finally:
        monkeypatch.undo()
        classes.set_active_classes(None)
