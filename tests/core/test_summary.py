"""A batch run's files: inputs found safely, output names that fit, tables written as it goes."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from leukview.core.analysis import Analysis, ModelRun
from leukview.core.cells import Cell, Prediction
from leukview.core.export import cells_csv, write_cells_csv
from leukview.core.session import Session, load_session, save_session
from leukview.core.summary import (
    FAILURES_FILE,
    SUMMARY_FILE,
    SummaryWriter,
    csv_line,
    find_images,
    output_stems,
    printable,
    short_stem,
    spreadsheet_safe,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX links, pipes and modes")


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8", newline="")))


# ---------------------------------------------------------------- formula injection


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("=1+1", "'=1+1"),
        ("+1.jpg", "'+1.jpg"),
        ("-rf.jpg", "'-rf.jpg"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-0.25", "-0.25"),  # a plain number is not a formula
        ("+3", "+3"),
        ("-1e-3", "-1e-3"),
        ("lymphocyte", "lymphocyte"),
        ("a=1", "a=1"),
        ("", ""),
        (-3, -3),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_cells_a_spreadsheet_would_evaluate_are_escaped_numbers_are_not(value, expected):
    assert spreadsheet_safe(value) == expected


def test_a_csv_line_is_one_whole_line_and_reads_back():
    line = csv_line(["=1+1", -2, 'a "quoted", text', "line\nbreak"])
    assert line.endswith("\n")
    assert next(csv.reader(io.StringIO(line))) == ["'=1+1", "-2", 'a "quoted", text', "line\nbreak"]


def make_analysis() -> Analysis:
    run = ModelRun("=cmd|' /C calc'!A0", "1", "CPUExecutionProvider", ["@SUM(A1)", "-neutrophil"])
    cell = Cell(
        1, "wbc", np.zeros((0, 2), np.int32), (10, 10, 50, 50), (30.0, 30.0),
        measurements={"area": 1600.0},
        predictions={run.name: Prediction("@SUM(A1)", {"@SUM(A1)": 0.9, "-neutrophil": 0.1})},
    )  # fmt: skip
    return Analysis(width=64, height=48, cells=[cell], models=[run], image="x.jpg")


def test_a_crafted_sessions_reviewer_label_and_model_are_exported_escaped(tmp_path: Path):
    session = Session.new(make_analysis(), who="=1+1")
    session.set_review(1, "=1+1", who="=1+1")
    path = save_session(session, tmp_path / "x.jpg.leukview.json")
    loaded = load_session(path)  # what a crafted file goes through
    out = write_cells_csv(tmp_path / "cells.csv", loaded.analysis.cells, loaded.analysis.models)
    table = rows(out)
    header, row = table[0], dict(zip(table[0], table[1], strict=True))
    assert row["call"] == "'=1+1" and row["reviewer"] == "'=1+1"
    assert "'model:=cmd|' /C calc'!A0:label" not in header  # column names start with "model:"
    assert row["model:=cmd|' /C calc'!A0:label"] == "'@SUM(A1)"
    assert row["centroid_x"] == "30.0" and row["area"] == "1600.0"
    for cell in [c for r in table for c in r]:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        assert not cell.startswith("-") or cell.lstrip("-").replace(".", "").isdigit(), cell
    assert cells_csv(loaded.analysis.cells, loaded.analysis.models) == out.read_text()


# ---------------------------------------------------------------- names


def test_a_name_that_is_not_utf8_is_printable_and_its_bytes_are_said():
    name = os.fsdecode(b"caf\xe9-\xff.jpg")
    with pytest.raises(UnicodeEncodeError):
        name.encode("utf-8")
    assert printable(name) == "caf\\xe9-\\xff.jpg"
    assert printable("café.jpg") == "café.jpg"
    assert spreadsheet_safe(os.fsdecode(b"=\xe9")) == "'=\\xe9"


def test_long_stems_are_shortened_uniquely_and_fit_a_file_name():
    a = Path("good-long-" + "x" * 226 + "a.jpg")
    b = Path("good-long-" + "x" * 226 + "b.jpg")
    c = Path("é" * 150 + ".png")  # 300 bytes in UTF-8: cut between characters
    short = Path("short.jpg")
    stems = output_stems([a, b, c, short, Path("other/short.tif")])
    assert stems[short] == "short"
    assert stems[Path("other/short.tif")] == "short-2"
    assert len({stems[a], stems[b]}) == 2
    for path in (a, b, c):
        assert len(stems[path].encode()) <= 200
        assert len((stems[path] + ".overlay.png").encode()) <= 255
        assert path.stem.startswith(stems[path][:-11])
    assert stems[c].encode().decode("utf-8") == stems[c]
    assert short_stem(a.stem) == short_stem(a.stem)  # stable between runs


# ---------------------------------------------------------------- inputs


@pytest.fixture()
def odd_folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"x")
    (root / "sub" / "b.png").write_bytes(b"x")
    (root / "notes.txt").write_text("not an image")
    if os.name == "posix":
        os.mkfifo(root / "fifo.jpg")
        (root / "zero.tif").symlink_to("/dev/zero")
        (root / "loop-a.jpg").symlink_to(root / "loop-b.jpg")
        (root / "loop-b.jpg").symlink_to(root / "loop-a.jpg")
        (root / "broken.png").symlink_to(root / "gone.png")
        (root / "sub" / "up").symlink_to(root)  # a folder loop
        (root / "folder.jpg").mkdir()
        (root / "album.tif").mkdir()
        (root / "album.tif" / "c.jpg").write_bytes(b"x")
    return root


@posix_only
def test_a_folder_walk_takes_special_files_and_never_follows_a_folder_loop(odd_folder: Path):
    scan = find_images([odd_folder])
    names = [p.relative_to(odd_folder).as_posix() for p in scan.images]
    assert names == sorted(
        ["a.jpg", "album.tif/c.jpg", "broken.png", "fifo.jpg", "loop-a.jpg", "loop-b.jpg", "sub/b.png", "zero.tif"]
    )
    assert scan.failures == [(str(odd_folder / "folder.jpg"), "is a folder, not an image file")]
    assert scan.notes == [f"{odd_folder / 'sub' / 'up'}: a symbolic link to a folder, not followed"]


@posix_only
def test_special_files_named_are_taken_and_only_missing_ones_are_missing(odd_folder: Path):
    named = ["fifo.jpg", "zero.tif", "loop-a.jpg", "broken.png", "notes.txt", "a.jpg", "nothing.jpg"]
    scan = find_images([str(odd_folder / n) for n in named] + [str(odd_folder / "a.jpg")])
    assert [p.name for p in scan.images] == named[:-1]  # a.jpg once
    assert scan.failures == [(str(odd_folder / "nothing.jpg"), "no such file or folder")]


@posix_only
def test_a_name_that_is_not_utf8_is_found(tmp_path: Path):
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    assert [os.fsencode(p) for p in find_images([tmp_path]).images] == [raw]
    assert [os.fsencode(p) for p in find_images([raw]).images] == [raw]


# ---------------------------------------------------------------- summary.csv and failures.csv


def test_rows_are_on_disk_as_each_image_finishes(tmp_path: Path):
    columns = ["image", "status", "wbc", "blast_percent"]
    writer = SummaryWriter(tmp_path / "out", columns)
    assert rows(writer.summary_path) == [columns]
    assert rows(writer.failures_path) == [["image", "reason"]]
    writer.add({"image": "a.jpg", "status": "ok", "wbc": 3, "blast_percent": -0.0, "extra": "x"})
    # read by another handle before close: what a kill would leave
    assert rows(tmp_path / "out" / SUMMARY_FILE) == [columns, ["a.jpg", "ok", "3", "-0.0"]]
    writer.fail(os.fsdecode(b"=caf\xe9.jpg"), "the file is empty (0 bytes)")
    writer.fail("b.jpg", "not enough memory", status="error: out of memory")
    assert rows(tmp_path / "out" / SUMMARY_FILE)[2:] == [
        ["'=caf\\xe9.jpg", "error: the file is empty (0 bytes)", "", ""],
        ["b.jpg", "error: out of memory", "", ""],
    ]
    assert rows(tmp_path / "out" / FAILURES_FILE)[1:] == [
        ["'=caf\\xe9.jpg", "the file is empty (0 bytes)"],
        ["b.jpg", "not enough memory"],
    ]
    writer.close()
    assert writer.failures == [("=caf\\xe9.jpg", "the file is empty (0 bytes)"), ("b.jpg", "not enough memory")]


def test_a_new_run_replaces_the_last_summary_and_a_rewrite_is_whole(tmp_path: Path):
    with SummaryWriter(tmp_path, ["image", "status"]) as writer:
        writer.add({"image": "old.jpg", "status": "ok"})
    with SummaryWriter(tmp_path, ["image", "status", "wbc"]) as writer:
        writer.add({"image": "a.jpg", "status": "ok", "wbc": 1})
        writer.rewrite([*writer.rows, {"image": "case 1", "status": "ok", "wbc": 1}])
        writer.add({"image": "b.jpg", "status": "ok", "wbc": 2})
    assert rows(tmp_path / SUMMARY_FILE) == [
        ["image", "status", "wbc"], ["a.jpg", "ok", "1"], ["case 1", "ok", "1"], ["b.jpg", "ok", "2"]
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@posix_only
def test_the_tables_get_the_users_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        with SummaryWriter(tmp_path, ["image", "status"]) as writer:
            writer.add({"image": "a.jpg", "status": "ok"})
    finally:
        os.umask(old)
    for name in (SUMMARY_FILE, FAILURES_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


# ---------------------------------------------------------------- the checks of a row


def _scored_cells(atypical: int, total: int, start: int = 1) -> list[Cell]:
    """White cells with an open-set score, the first ``atypical`` over the threshold (atypicality > 1)."""
    from cell_factory import make_cell

    cells = []
    for k in range(total):
        cell = make_cell(start + k, x=30.0 + 25 * k)
        cell.predictions["wbc-type"] = Prediction(
            "neutrophil", {"neutrophil": 0.9, "lymphocyte": 0.1}, atypicality=2.5 if k < atypical else 0.4
        )
        cells.append(cell)
    return cells


def _warned_tiff(path: Path) -> Path:
    """A TIFF whose header's pixel size is implausible (2 nm): read, with a warning."""
    import tifffile

    tifffile.imwrite(path, np.full((40, 50), 200, np.uint8), imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "nm"})
    return path


def test_the_check_columns_carry_the_domain_check_and_the_header_warnings():
    from leukview.core.domain import WARNING, domain_check
    from leukview.core.summary import CHECK_COLUMNS, check_columns

    odd = domain_check(_scored_cells(6, 20), 0.02)  # 30 % atypical where 2 % are expected
    assert odd.warning == WARNING
    columns = check_columns(odd, ["pixel size ignored", "", "tifffile: odd strip"])
    assert tuple(columns) == CHECK_COLUMNS
    assert columns == {"domain_score": 15.0, "domain_warning": WARNING,
                       "warnings": "pixel size ignored; tifffile: odd strip"}
    fine = domain_check(_scored_cells(1, 20), 0.02)
    assert fine.warning is None
    assert check_columns(fine) == {"domain_score": 2.5, "domain_warning": "", "warnings": ""}
    assert check_columns(None) == {"domain_score": "", "domain_warning": "", "warnings": ""}


def test_image_warnings_are_the_headers(tmp_path: Path):
    from leukview.core.io import image_info
    from leukview.core.summary import image_check_columns, image_warnings

    odd = _warned_tiff(tmp_path / "odd.tif")
    expected = image_info(odd).warnings
    assert expected and image_warnings(odd) == expected
    assert image_check_columns(odd, None)["warnings"] == "; ".join(expected)
    sample = Path(__file__).resolve().parents[2] / "resources" / "samples" / "BloodImage_00056.jpg"
    assert image_warnings(sample) == ()
    assert image_warnings(tmp_path / "gone.jpg") == ()  # its row says what happened to it


def test_summary_rows_end_with_the_checks_of_each_image_and_of_the_case(tmp_path: Path):
    from cell_factory import TYPE

    from leukview.cli import case_row, summary_columns, summary_row
    from leukview.core.case import Case
    from leukview.core.domain import WARNING, domain_check
    from leukview.core.io import image_info
    from leukview.core.summary import CHECK_COLUMNS

    def analysis(atypical: int, name: str) -> Analysis:
        cells = _scored_cells(atypical, 10)
        return Analysis(640, 480, cells, models=[TYPE], image=name, domain=domain_check(cells, 0.02))

    odd_path = _warned_tiff(tmp_path / "odd.tif")
    # two atypical cells per image: no pattern in either alone, but 4 of 20 over the case (10 x 2 %)
    first, second = analysis(2, str(odd_path)), analysis(2, "b.jpg")
    alone = analysis(0, "c.jpg")
    assert first.domain.warning is None and second.domain.warning is None  # type: ignore[union-attr]
    columns = summary_columns([TYPE])
    assert columns[-3:] == list(CHECK_COLUMNS)
    assert columns[: -3] == [c for c in columns if c not in CHECK_COLUMNS]
    case = Case.new("p1")
    case.add_image(first, odd_path, image_id="odd")
    case.add_image(second, tmp_path / "b.jpg", image_id="b")
    assert case.domain().warning == WARNING
    with SummaryWriter(tmp_path / "out", columns) as writer:
        writer.add(summary_row(odd_path, first, 0.7))
        writer.add(summary_row(tmp_path / "c.jpg", alone, 0.7))
        writer.add(case_row(case, 0.7))
    table = list(csv.DictReader((tmp_path / "out" / SUMMARY_FILE).open(encoding="utf-8", newline="")))
    assert list(table[0])[: len(columns) - 3] == columns[:-3]
    odd, fine, pooled = table
    header_warnings = image_info(odd_path).warnings
    assert header_warnings
    assert odd["domain_score"] == "10.0" and odd["domain_warning"] == ""
    assert odd["warnings"] == "; ".join(header_warnings)
    assert fine["domain_score"] == "0.0" and fine["domain_warning"] == "" and fine["warnings"] == ""
    assert pooled["image"] == "case:p1"
    assert pooled["domain_score"] == "10.0" and pooled["domain_warning"] == WARNING
    assert pooled["warnings"] == "; ".join(f"odd: {w}" for w in header_warnings)
    # an image that warns alone says so on its own row
    warned = analysis(5, "d.jpg")
    assert summary_row(tmp_path / "d.jpg", warned, 0.7)["domain_warning"] == WARNING
