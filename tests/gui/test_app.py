"""Starting the viewer: ``--screenshot`` mode and its arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from leukview.core.session import session_path

pytestmark = pytest.mark.gui


def test_screenshot_mode_writes_a_large_png(qtbot, tmp_path: Path, models_dir: Path, sample: Path):
    from leukview.gui.app import main

    out = tmp_path / "shot.png"
    assert main(["--screenshot", str(out), str(sample), "--models-dir", str(models_dir)]) == 0
    image = QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 800
    assert not session_path(sample).exists()  # screenshot mode writes no session
    # its throwaway settings must not be saved over os.devnull (as root that replaced the device)
    if os.name == "posix":
        import stat

        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert main(["--screenshot", str(tmp_path / "x.png"), "--size", "640x480"]) == 2
    assert main(["--models-dir", str(tmp_path / "nowhere")]) == 2
