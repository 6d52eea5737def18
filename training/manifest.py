"""Write a CSV manifest of a hospital's own cells: ``python -m training.manifest ROOT --out cells.csv``.

``ROOT/<class>/<patient>/*.jpg`` (or ``ROOT/<class>/*.jpg``) becomes rows
``path,label,group``: the label is the class folder, the group the patient
folder (the image itself when there is none). Groups keep a patient on one
side of every split, so give each patient (or slide) its own folder.
Edit the CSV freely afterwards (add ``x0,y0,x1,y1`` boxes for cells in larger
fields); :func:`training.data.manifest_dataset` reads it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

from .data import IMAGE_SUFFIXES, DataError


def scan(root: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """Rows (path relative to root, label, group) of a class/patient folder tree.

    Raises
    ------
    DataError
        When ``root`` is missing or holds no images in class folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("folder not found", root)
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(class_dir.rglob("*")):
            if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            parts = image.relative_to(class_dir).parts
            group = parts[0] if len(parts) > 1 else image.stem
            rows.append((image.relative_to(root).as_posix(), class_dir.name, group))
    if not rows:
        raise DataError("no images found in class folders (expected ROOT/<class>/[<patient>/]*.jpg)", root)
    return rows


def write_manifest(rows: list[tuple[str, str, str]], out: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """Write rows as CSV; paths are made relative to the CSV's folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.relpath(Path(root).resolve(), out.parent.resolve()))
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group"])
        for path, label, group in rows:
            writer.writerow([(base / path).as_posix(), label, group])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.manifest", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder with one sub-folder per class (and per patient inside it)")
    parser.add_argument("--out", default="cells.csv", help="CSV to write (default cells.csv)")
    args = parser.parse_args(argv)
    try:
        rows = scan(args.root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = write_manifest(rows, args.out, args.root)
    labels = Counter(r[1] for r in rows)
    groups = {r[2] for r in rows}
    print(f"{path}: {len(rows)} images, {len(groups)} groups, classes {dict(labels)}")
    if len(groups) == len(rows):
        print("note: no patient folders, so every image is its own group; cells of one patient may "
              "end up on both sides of the split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
