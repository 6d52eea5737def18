"""leukview analyze of whole slides and cases: tiles, side tables, resume, Dask, case files."""

from __future__ import annotations

import csv
import io
import json
import shutil

import cv2
import pytest
from onnx_factory import make_tiny_classifier
from slide_factory import SAMPLES, mosaic, write_svs

from leukview.cli import EXIT_OK, EXIT_USAGE, run_analyze
from leukview.cli_report import run_report
from leukview.core.case import load_case
from leukview.core.distributed import dask_available
from leukview.core.io._openslide import openslide_available

pytestmark = pytest.mark.skipif(not openslide_available(), reason="OpenSlide is not installed")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    make_tiny_classifier(folder / "tiny", ["lymphocyte", "neutrophil", "blast"], seed=2)
    return folder


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    return write_svs(tmp_path_factory.mktemp("slide") / "smear.svs", mosaic(2, 3))


@pytest.fixture()
def folder(tmp_path):
    out = tmp_path / "fields"
    out.mkdir()
    for path in SAMPLES:
        shutil.copy(path, out / path.name)
    return out


def _run(argv, stderr=None):
    out, err = io.StringIO(), stderr or io.StringIO()
    code = run_analyze([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_folder_as_a_case_pools_one_differential(folder, models, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = _run([folder, "--out", out, "--case", "patient-7", "--models-dir", models, "--quiet"])
    assert code == EXIT_OK, stderr
    summary = json.loads((out / "patient-7.case.json").read_text())
    assert [i["id"] for i in summary["images"]] == [p.stem for p in SAMPLES]
    rows = _rows(out / "summary.csv")
    fields, case = rows[:-1], rows[-1]
    assert case["image"] == "case:patient-7" and len(fields) == 4
    for name, count in summary["differential"].items():
        assert count == sum(int(r[f"call:{name}"] or 0) for r in fields) == int(case[f"call:{name}"])
    assert summary["counts_by_kind"]["wbc"] == sum(int(r["wbc"]) for r in fields) == int(case["wbc"])
    leukocytes = sum(int(r["leukocytes"]) for r in fields)
    assert summary["leukocytes"] == leukocytes
    assert summary["blast_fraction"] == pytest.approx(summary["differential"]["blast"] / leukocytes, abs=1e-6)
    # the case session: every image with its fingerprint and analysis, one audit log
    case_file = load_case(out / "patient-7.case.leukview.json")
    assert case_file.ids() == [p.stem for p in SAMPLES] and all(i.session.fingerprint for i in case_file.images)
    pooled = case_file.differential().counts
    assert {name: pooled[name] for name in summary["differential"]} == summary["differential"]
    # and one report of the whole case
    report_csv = tmp_path / "case.csv"
    err = io.StringIO()
    assert run_report([str(out / "patient-7.case.leukview.json"), "--csv", str(report_csv)],
                      stdout=io.StringIO(), stderr=err) == EXIT_OK
    report = _rows(report_csv)
    assert len(report) == summary["differential"]["blast"] + sum(
        v for k, v in summary["differential"].items() if k != "blast") + summary["unclassified"] + summary["atypical"]
    assert {r["case_image"] for r in report} <= {p.stem for p in SAMPLES} and "case patient-7" in err.getvalue()


def test_a_slide_is_analysed_tile_by_tile_with_a_progress_bar_and_a_side_table(slide, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    out = tmp_path / "out"
    code, stdout, _ = _run([slide, "--out", out, "--no-models", "--tile-size", "768", "--rbc-every", "2",
                            "--side-table-after", "5"], stderr=terminal)
    assert code == EXIT_OK
    assert "tiles/s" in terminal.getvalue() and "6/6" in terminal.getvalue()
    doc = json.loads((out / "smear.cells.json").read_text())
    assert doc["schema_version"] == 2 and doc["width"] == 1920
    assert {c["kind"] for c in doc["cells"]} == {"wbc"} and len(doc["cells"]) >= 5
    assert doc["side_table"]["rows"] == doc["counts_by_kind"]["rbc"] + doc["counts_by_kind"]["platelet"]
    assert (out / doc["side_table"]["path"]).is_file() and (out / "smear.overview.png").is_file()
    row = _rows(out / "summary.csv")[0]
    assert row["status"] == "ok" and int(row["wbc"]) == len(doc["cells"])
    assert int(row["rbc"]) == doc["counts_by_kind"]["rbc"]
    # a second run resumes: no tile is analysed again, the same cells.json
    before = (out / "smear.cells.json").read_bytes()
    err = io.StringIO()
    code, _, _ = _run([slide, "--out", out, "--no-models", "--tile-size", "768", "--rbc-every", "2",
                       "--side-table-after", "5"], stderr=err)
    assert code == EXIT_OK and "resuming, 6 of 6 tiles already done" in err.getvalue()
    assert (out / "smear.cells.json").read_bytes() == before


def test_a_slide_case_counts_in_the_counting_area_unless_told_otherwise(slide, tmp_path):
    code, _, _ = _run([slide, "--out", tmp_path / "a", "--no-models", "--tile-size", "768", "--case", "s"])
    assert code == EXIT_OK
    area = json.loads((tmp_path / "a" / "s.case.json").read_text())
    code, _, _ = _run([slide, "--out", tmp_path / "b", "--no-models", "--tile-size", "768", "--case", "s", "--count-all"])
    everything = json.loads((tmp_path / "b" / "s.case.json").read_text())
    assert everything["images"][0]["kind"] == "slide" and everything["images"][0]["counting_area"] is None
    assert everything["images"][0]["white_cells_counted"] == everything["counts_by_kind"]["wbc"]
    assert area["images"][0]["counting_area"] == "auto"
    assert area["images"][0]["white_cells_counted"] <= everything["images"][0]["white_cells_counted"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
        ["--case", "../escape"],
        ["--tile-size", "10"],
        ["--rbc-every", "0"],
    ],
)
def test_bad_options_are_usage_errors(argv, folder, tmp_path):
    code, _, stderr = _run([folder, "--out", tmp_path, "--no-models", *argv])
    assert code == EXIT_USAGE and "error" in stderr


@pytest.mark.skipif(not dask_available(), reason="dask.distributed is not installed")
def test_two_local_dask_workers_write_the_same_files_as_one_process(folder, slide, models, tmp_path):
    shutil.copy(slide, folder / slide.name)
    common = ["--models-dir", models, "--tile-size", "768", "--case", "c", "--quiet"]
    assert _run([folder, "--out", tmp_path / "one", *common])[0] == EXIT_OK
    code, _, stderr = _run([folder, "--out", tmp_path / "two", "--workers", "2", *common])
    assert code == EXIT_OK, stderr
    names = sorted(p.name for p in (tmp_path / "one").glob("*.cells.json"))
    assert len(names) == 5
    for name in names + ["summary.csv", "c.case.json"]:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_an_unreachable_scheduler_is_a_failure_named_on_stderr(folder, tmp_path):
    if not dask_available():
        pytest.skip("dask.distributed is not installed")
    code, _, stderr = _run([folder, "--out", tmp_path, "--no-models", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 1 and "scheduler" in stderr


def test_geojson_is_written_per_image_for_qupath(folder, slide, models, tmp_path):
    shutil.copy(slide, folder / slide.name)
    code, _, stderr = _run([folder, "--out", tmp_path, "--models-dir", models, "--tile-size", "768", "--geojson",
                            "--quiet"])
    assert code == EXIT_OK, stderr
    for stem in [p.stem for p in SAMPLES] + ["smear"]:
        collection = json.loads((tmp_path / f"{stem}.geojson").read_text())
        cells = [c for c in json.loads((tmp_path / f"{stem}.cells.json").read_text())["cells"] if c["kind"] == "wbc"]
        assert collection["type"] == "FeatureCollection" and len(collection["features"]) == len(cells)
        for feature, cell in zip(collection["features"], cells, strict=True):
            assert feature["properties"]["objectType"] == "detection"
            assert feature["properties"]["classification"]["name"] == cell["call"]["label"]


def test_image_files_named_on_the_command_line_form_one_case(models, tmp_path):
    # a.jpg b.jpg c.png from different folders, one of them a PNG: one case, in the order given
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b, c = tmp_path / "x" / "a.jpg", tmp_path / "y" / "b.jpg", tmp_path / "y" / "c.png"
    shutil.copy(SAMPLES[0], a)
    shutil.copy(SAMPLES[1], b)
    bgr = cv2.imread(str(SAMPLES[2]), cv2.IMREAD_COLOR)
    assert bgr is not None and cv2.imwrite(str(c), bgr)
    paths = [b, c, a]
    out = tmp_path / "case"
    code, stdout, stderr = _run([*paths, "--case", "p-3", "--out", out, "--models-dir", models, "--quiet"])
    assert code == EXIT_OK, stderr
    assert "analysed 3 of 3" in stdout
    summary = json.loads((out / "p-3.case.json").read_text())
    assert [i["id"] for i in summary["images"]] == ["b", "c", "a"]
    assert all(i["kind"] == "field" for i in summary["images"])
    # each file analysed alone, as in a folder run: the same cells, and the case is their sum
    singles = []
    for path in paths:
        alone = tmp_path / f"alone-{path.stem}"
        code, _, stderr = _run([path, "--out", alone, "--models-dir", models, "--quiet"])
        assert code == EXIT_OK, stderr
        name = f"{path.stem}.cells.json"
        assert (alone / name).read_bytes() == (out / name).read_bytes(), name
        (row,) = _rows(alone / "summary.csv")
        singles.append(row)
    calls = [k[len("call:"):] for k in singles[0] if k.startswith("call:")]
    assert calls and set(summary["differential"]) <= set(calls)
    assert sum(summary["differential"].values()) > 0  # the tiny model calls something
    for name in calls:
        assert summary["differential"].get(name, 0) == sum(int(r[f"call:{name}"] or 0) for r in singles), name
    assert summary["counts_by_kind"]["wbc"] == sum(int(r["wbc"]) for r in singles)
    assert summary["leukocytes"] == sum(int(r["leukocytes"]) for r in singles)
    case_row_ = _rows(out / "summary.csv")[-1]
    assert case_row_["image"] == "case:p-3"
    assert all(int(case_row_[f"call:{n}"] or 0) == summary["differential"].get(n, 0) for n in calls)
    # the case session holds the three images, each with its own fingerprint
    case_file = load_case(out / "p-3.case.leukview.json")
    assert case_file.ids() == ["b", "c", "a"]
    assert len({i.session.fingerprint for i in case_file.images}) == 3
