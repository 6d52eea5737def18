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
    assert changed == {"models": True, "threshold": True, "segmentation": True}
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
