"""Screenshots of the viewer's main states, for the documentation.

``python -m leukview.gui.screenshots OUT_DIR [IMAGE] [--models-dir DIR]`` opens
IMAGE (the bundled sample by default) offscreen, goes through the states a
pathologist sees and writes one PNG per state into OUT_DIR:

``1-opened``, ``2-analysed``, ``3-heatmap``, ``4-review-gallery``,
``5-review-table``, ``6-differential``, ``7-settings-preview``, ``8-report``
(``3-heatmap`` only when a model gives class-activation maps). ``--review
neutrophil,eosinophil`` gives the first cells in review order those classes
(the truth of the field shown), else the models' calls are accepted.

Nothing is written beside the image (read-only session) and the user's
settings are neither read nor changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1440, 900)


def _save(widget_or_image, path: Path, max_width: int = 1440) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    image = widget_or_image if isinstance(widget_or_image, QImage) else widget_or_image.grab().toImage()
    if image.width() > max_width:
        image = image.scaledToWidth(max_width, Qt.TransformationMode.SmoothTransformation)
    # an adaptive 256-colour palette keeps the files small and the smear's colours true
    import numpy as np
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    array = np.array(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
    array = array[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3)
    palette = Image.fromarray(array).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette.save(path, optimize=True)
    image = rgb
    print(f"{path} ({image.width()}x{image.height()}, {path.stat().st_size // 1024} KB)")


def run(out_dir: Path, image: Path | None, models_dir: str | None, review: Sequence[str] = ()) -> int:
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from .app import _application
    from .mainwindow import MainWindow, default_sample
    from .report import render_report_page
    from .settings import AppSettings, SettingsDialog, throwaway_store
    from .worker import installed_models

    app = _application()
    window = MainWindow(
        AppSettings(throwaway_store()), models_dir, read_only=True, interactive=False
    )
    window.resize(*SIZE)
    window.show()
    app.processEvents()

    def settle() -> None:
        for _ in range(10):
            app.processEvents()

    path = image or default_sample()
    if not window.open_image(path, analyse=False):
        return 1
    settle()
    window.view.fit()
    settle()
    _save(window, out_dir / "1-opened.png")

    window.analyse()
    if not window.wait_for_analysis(300000) or window.session is None:
        print("analysis failed", file=sys.stderr)
        return 1
    window.view.fit()
    settle()
    _save(window, out_dir / "2-analysed.png")

    order = window.review.visible_order()
    if order and window.overlay.has_heatmaps():
        window.select_cell(order[0])
        cell = window.session.cell(order[0])
        window.set_heat_mode("all" if window.models else "off")
        window.view.centre_on(QPointF(*cell.centroid))
        window.view.set_scale(min(4.0, 380.0 / max(cell.diameter, 1.0)), QPointF(*cell.centroid))
        window.view.centerOn(QPointF(*cell.centroid))
        settle()
        _save(window, out_dir / "3-heatmap.png")
        window.set_heat_mode("selected")

    # a few review decisions, by the same code the keys call: the given labels in review
    # order, else the models' calls accepted
    for index, cell_id in enumerate(order[:3]):
        window.select_cell(cell_id)
        if review and index < len(review):
            window.classify(review[index])
        elif window.models:
            window.accept_call()
    if order:
        window.select_cell(order[min(len(order) - 1, len(review or ()))])
    window.view.fit()
    window.review.tabs.setCurrentWidget(window.review.gallery)
    settle()
    _save(window, out_dir / "4-review-gallery.png")

    window.review.tabs.setCurrentWidget(window.review.table)
    settle()
    _save(window, out_dir / "5-review-table.png")

    window.review.tabs.setCurrentWidget(window.review.gallery)
    window.differential_dock.raise_()
    settle()
    _save(window, out_dir / "6-differential.png")

    dialog = SettingsDialog(window.settings, installed_models(models_dir), window)
    window._settings_dialog = dialog
    dialog.preview_requested.connect(window._request_preview)
    dialog.preview_closed.connect(window.overlay.clear_preview)
    dialog.show()
    editor, _ = dialog.form.editors["nucleus_threshold_scale"]
    dialog.preview_box.setChecked(True)
    editor.setValue(1.15)
    dialog._emit_preview()
    window.preview.wait(20000)
    settle()
    _save(dialog, out_dir / "7-settings-preview.png")
    _save(window, out_dir / "7-settings-preview-image.png")
    dialog.reject()
    window._settings_dialog = None

    report = render_report_page(window.report_content(), width=820)
    _save(report.copy(0, 0, report.width(), min(report.height(), 1500)), out_dir / "8-report.png", 820)
    window.close()
    QApplication.processEvents()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leukview.gui.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("--models-dir")
    parser.add_argument(
        "--review", default="", metavar="LABEL,...", help="classes to give the first cells in review order"
    )
    args = parser.parse_args(argv)
    review = [label for label in args.review.split(",") if label]
    return run(args.out_dir, args.image, args.models_dir, review)


if __name__ == "__main__":
    sys.exit(main())
