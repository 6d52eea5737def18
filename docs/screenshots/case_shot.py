"""The README's screenshot of a case: 12 normal BCCD fields opened and analysed as one case.

``.venv/bin/python docs/screenshots/case_shot.py docs/screenshots [FIELD]`` (from the repository
root) copies the first 3 BCCD fields labelled neutrophil, eosinophil, lymphocyte and monocyte in
``bccd/wbc_types.csv`` of the real data (``$LEUKVIEW_DATA``, else ``../shared/data``) into a
temporary folder as ``patient-17/field-01.jpg`` ... ``field-12.jpg`` (the four classes in turn),
opens the folder as a case offscreen, analyses every field with the shipped models, shows field
FIELD (4 by default: the first monocyte field), selects its first cell in review order and writes
``case.png``. The fields picked are printed. Sessions and settings stay in the temporary folder;
the user's settings are neither read nor changed.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
WORK = Path(tempfile.mkdtemp(prefix="leukview-case-"))
os.environ["LEUKVIEW_SESSIONS_DIR"] = str(WORK / "sessions")
os.environ["LEUKVIEW_CONFIG_DIR"] = str(WORK / "config")
ROOT = Path(__file__).resolve().parents[2]
BCCD = Path(os.environ.get("LEUKVIEW_DATA", ROOT.parent / "shared" / "data")) / "bccd"
TYPES = ("NEUTROPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE")


def case_folder(per_type: int = 3) -> Path:
    """``per_type`` BCCD fields of each of :data:`TYPES`, copied in turn into a case folder."""
    picked: dict[str, list[str]] = {t: [] for t in TYPES}
    with open(BCCD / "wbc_types.csv", newline="") as table:
        for row in csv.DictReader(table):
            kind = row["wbc_type"]
            if kind in picked and len(picked[kind]) < per_type and (BCCD / "JPEGImages" / row["image"]).is_file():
                picked[kind].append(row["image"])
    folder = WORK / "patient-17"
    folder.mkdir()
    order = [picked[t][i] for i in range(per_type) for t in TYPES if i < len(picked[t])]
    for n, name in enumerate(order, 1):
        shutil.copy(BCCD / "JPEGImages" / name, folder / f"field-{n:02d}.jpg")
        print(f"field-{n:02d}", name)
    return folder


def main(out: Path, field: int = 4) -> int:
    from leukview.gui.app import _application
    from leukview.gui.mainwindow import MainWindow
    from leukview.gui.screenshots import _save
    from leukview.gui.settings import AppSettings, throwaway_store

    if not (BCCD / "wbc_types.csv").is_file():
        print(f"no BCCD data at {BCCD}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    folder = case_folder()
    app = _application()
    window = MainWindow(AppSettings(throwaway_store()), None, read_only=True, interactive=False)
    window.resize(1440, 1134)  # taller than the other shots: the case strip under the view
    window.show()

    def settle(rounds: int = 10) -> None:
        for _ in range(rounds):
            app.processEvents()

    settle()
    if not window.open_case([folder], name="patient-17", analyse=False):
        return 1
    window.analyse_case()
    if not window.wait_for_case(900000):
        return 1
    settle()
    case = window.document.case
    if case is None:
        return 1
    window.show_field(case.images[field - 1].id)
    settle()
    order = window.review.visible_order()
    if order:
        window.select_cell(order[0])
    window.view.fit()
    settle(20)
    _save(window, out / "case.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"),
                  int(sys.argv[2]) if len(sys.argv) > 2 else 4))
