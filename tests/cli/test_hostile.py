"""``leukview analyze`` under hostile input: odd names, special files, kills, broken models, the corpus.

The corpus (tests/hostile/make_corpus.py) and the damaged models
(tests/hostile/make_models.py) are generated here; the whole corpus runs in one
``leukview analyze`` process, bounded in time and memory: no traceback, every
bad file named with its reason, every good one analysed, summary.csv and
failures.csv complete. A run killed midway leaves both complete up to the last
image it finished.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile.make_corpus import REASON_WORDS, Entry, make_corpus

from leukview.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_analyze

try:
    import resource
except ImportError:  # Windows: no peak memory of children
    resource = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
SAMPLE = SAMPLES / "BloodImage_00056.jpg"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX names, pipes, links and signals")

#: Seconds the whole corpus may take in one process (about 30 s on two cores), and its peak memory.
CORPUS_SECONDS = 240
PEAK_RSS_BYTES = 2 * 2**30


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_analyze(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def analyze_process(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "leukview", "analyze", "--quiet", *args],
        cwd=cwd, env=env, capture_output=True, timeout=timeout,
    )  # fmt: skip


def summary(out_dir: Path, name: str = "summary.csv") -> list[dict[str, str]]:
    with (out_dir / name).open(encoding="utf-8", newline="") as fh:  # strict UTF-8: must decode
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx_factory = pytest.importorskip("onnx_factory")
    models = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(models / "tiny", ["lymphocyte", "neutrophil"])
    return models


# ---------------------------------------------------------------- names


def test_a_240_byte_file_name_is_analysed_with_a_shortened_output_name(tmp_path: Path):
    name = "good-long-" + "x" * 226 + ".jpg"
    assert len(name.encode()) == 240
    shutil.copy(SAMPLE, tmp_path / name)
    shutil.copy(SAMPLE, tmp_path / (name[:-5] + "y.jpg"))  # starts alike: must not collide
    out = tmp_path / "out"
    code, _, err = run(str(tmp_path), "--out", str(out), "--no-models", "--overlay")
    assert code == EXIT_OK, err
    written = sorted(p.name for p in out.glob("*.cells.json"))
    assert len(written) == 2 and all(len(n.encode()) <= 255 for n in written)
    assert all(n.startswith("good-long-xxx") for n in written)
    assert len(list(out.glob("*.overlay.png"))) == 2
    assert [r["status"] for r in summary(out)] == ["ok", "ok"]
    images = {json.loads(p.read_text())["image"] for p in out.glob("*.cells.json")}
    assert images == {str(p) for p in tmp_path.glob("good-long-*")}


@posix_only
def test_a_name_that_is_not_utf8_is_analysed_and_written_escaped(tmp_path: Path):
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.jpg")
    shutil.copy(SAMPLE, raw)
    (tmp_path / "empty-\udce9.jpg").write_bytes(b"")  # a bad one too: named on stderr
    out = tmp_path / "out"
    proc = analyze_process(str(tmp_path), "--out", str(out), "--no-models")
    err = proc.stderr.decode("utf-8")  # strict: every message is UTF-8
    assert proc.returncode == EXIT_FAILED, err
    assert "Traceback" not in err
    assert "empty-\\xe9.jpg: the file is empty" in err
    rows = {r["image"]: r["status"] for r in summary(out)}
    assert rows[str(tmp_path / "caf\\xe9-\\xff.jpg")] == "ok"
    assert rows[str(tmp_path / "empty-\\xe9.jpg")].startswith("error: the file is empty")
    assert [r["image"] for r in summary(out, "failures.csv")] == [str(tmp_path / "empty-\\xe9.jpg")]
    (cells,) = out.glob("*.cells.json")
    assert os.fsencode(cells.name) == b"caf\xe9-\xff.cells.json"
    assert json.loads(cells.read_text("utf-8"))["image"] == os.fsdecode(raw)


def test_a_formula_file_name_is_escaped_in_summary_and_failures(tmp_path: Path):
    good, bad = '=HYPERLINK("x.com","y").jpg', "@SUM(A1).jpg"  # a name cannot hold "/"
    shutil.copy(SAMPLE, tmp_path / good)
    (tmp_path / bad).write_bytes(b"")
    out = tmp_path / "out"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # relative names: the cells begin with = and @
    try:
        code, _, err = run("--out", str(out), "--no-models", "--", good, bad, "-rf.jpg")
    finally:
        os.chdir(cwd)
    assert code == EXIT_FAILED, err
    rows = summary(out)
    assert [r["image"] for r in rows] == ["'-rf.jpg", "'" + good, "'" + bad]
    assert rows[1]["status"] == "ok" and rows[1]["wbc"].isdigit()
    assert [r["image"] for r in summary(out, "failures.csv")] == ["'-rf.jpg", "'" + bad]
    for line in (out / "summary.csv").read_text().splitlines():
        assert not line.startswith(("=", "+", "-", "@"))


def test_a_non_finite_value_fails_that_image_only_and_json_never_holds_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from leukview.core.analysis import Analysis

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("BloodImage_00056.jpg", "BloodImage_00214.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    to_dict = Analysis.to_dict

    def poisoned(self, *args, **kwargs):
        doc = to_dict(self, *args, **kwargs)
        if "00056" in str(doc.get("image")):
            doc["cells"][0]["measurements"]["area"] = float("inf")
        return doc

    monkeypatch.setattr(Analysis, "to_dict", poisoned)
    out = tmp_path / "out"
    code, _, err = run(str(folder), "--out", str(out), "--no-models")
    assert code == EXIT_FAILED and "Traceback" not in err
    assert "BloodImage_00056.jpg: a value is not a finite number (cells[0].measurements.area = inf)" in err
    assert [p.name for p in out.glob("*.cells.json")] == ["BloodImage_00214.cells.json"]
    assert "Infinity" not in (out / "BloodImage_00214.cells.json").read_text()
    assert [r["status"][:6] for r in summary(out)] == ["error:", "ok"]


# ---------------------------------------------------------------- special files


@posix_only
def test_special_files_are_in_the_summary_with_their_reason_named_or_found(tmp_path: Path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(SAMPLE, folder / "good.jpg")
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.tif").symlink_to("/dev/zero")
    (folder / "loop-a.jpg").symlink_to(folder / "loop-b.jpg")
    (folder / "loop-b.jpg").symlink_to(folder / "loop-a.jpg")
    (folder / "sub" / "up").symlink_to(folder)  # a folder loop: not followed
    expected = {
        "fifo.jpg": "named pipe",
        "zero.tif": "character device",
        "loop-a.jpg": "symbolic link loop",
        "loop-b.jpg": "symbolic link loop",
    }
    for args in ([str(folder)], [str(folder / n) for n in ("good.jpg", *expected)]):
        out = tmp_path / f"out{len(args)}"
        proc = analyze_process(*args, "--out", str(out), "--no-models", timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode == EXIT_FAILED, err
        assert "no such file" not in err and "Traceback" not in err
        rows = {Path(r["image"]).name: r["status"] for r in summary(out)}
        assert rows.pop("good.jpg") == "ok"
        assert set(rows) == set(expected)
        failures = {Path(r["image"]).name: r["reason"] for r in summary(out, "failures.csv")}
        for name, words in expected.items():
            assert words in rows[name] and words in failures[name], (name, rows[name])
            assert f"{name}: " in err
        if len(args) == 1:
            assert "a symbolic link to a folder, not followed" in err


def test_a_missing_path_is_in_the_summary_too(tmp_path: Path):
    out = tmp_path / "out"
    code, _, err = run(str(SAMPLE), str(tmp_path / "gone.jpg"), "--out", str(out), "--no-models")
    assert code == EXIT_FAILED and "gone.jpg: no such file or folder" in err
    rows = summary(out)
    assert [(Path(r["image"]).name, r["status"]) for r in rows] == [
        ("gone.jpg", "error: no such file or folder"), (SAMPLE.name, "ok")
    ]  # fmt: skip


# ---------------------------------------------------------------- permissions


@posix_only
def test_outputs_get_the_users_umask(tmp_path: Path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        code, _, err = run(str(SAMPLE), "--out", str(out), "--no-models", "--overlay")
    finally:
        os.umask(old)
    assert code == EXIT_OK, err
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == dict.fromkeys(
        ["BloodImage_00056.cells.json", "BloodImage_00056.overlay.png", "summary.csv", "failures.csv"], 0o644
    )


# ---------------------------------------------------------------- models


def test_one_broken_model_is_named_and_the_run_goes_on_with_the_others(tmp_path: Path, tiny_models: Path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    shutil.copytree(models / "tiny", models / "broken")
    sidecar = json.loads((models / "broken" / "model.json").read_text())
    sidecar["name"], sidecar["sha256"] = "broken", "0" * 64
    (models / "broken" / "model.json").write_text(json.dumps(sidecar))
    out = tmp_path / "out"
    code, _, err = run(str(SAMPLE), "--out", str(out), "--models-dir", str(models))
    assert code == EXIT_FAILED, err  # something failed: the broken model
    assert "model 'broken'" in err and "sha256" in err and "Traceback" not in err
    (row,) = summary(out)
    assert row["status"] == "ok" and "model:tiny:lymphocyte" in row
    assert not any(k.startswith("model:broken") for k in row)
    doc = json.loads((out / "BloodImage_00056.cells.json").read_text())
    assert [m["name"] for m in doc["models"]] == ["tiny"]
    # asked for by name, a broken or unknown model is still a usage error
    for name in ("broken", "nothing-such"):
        code, _, err = run(str(SAMPLE), "--out", str(out), "--models-dir", str(models), "--model", name)
        assert code == EXIT_USAGE and name in err, err


# ---------------------------------------------------------------- killed midway


@posix_only
def test_a_killed_run_leaves_summary_and_failures_complete_to_the_last_image(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        shutil.copy(sorted(SAMPLES.glob("*.jpg"))[i % 4], folder / f"f{i}.jpg")
    (folder / "f1-bad.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leukview", "analyze", "--quiet", "--no-models", str(folder), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.cells.json"))) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = {p.name.removesuffix(".cells.json") for p in out.glob("*.cells.json")}
    assert 3 <= len(done) < 8
    text = (out / "summary.csv").read_text()
    assert text.endswith("\n")  # whole lines only
    rows = summary(out)
    ok = {Path(r["image"]).stem for r in rows if r["status"] == "ok"}
    # each finished image has its row (one may be written and not yet in the summary)
    assert done - ok <= {max(done)} and ok <= done
    assert all(len(r) == len(rows[0]) and None not in r.values() for r in rows)
    assert [Path(r["image"]).name for r in summary(out, "failures.csv")] == ["f1-bad.jpg"]


# ---------------------------------------------------------------- the hostile corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Entry]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, make_corpus(folder)


@pytest.fixture(scope="module")
def damaged_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path | None, list]:
    """The damaged-model corpus and its entries; (None, []) where onnx is not installed."""
    try:
        from hostile.make_models import make_damaged_models
    except ImportError:
        return None, []
    folder = tmp_path_factory.mktemp("hostile-models") / "models"
    return folder, make_damaged_models(folder)


def peak_rss_of_children() -> int:
    """The largest peak resident memory of a finished child process, in bytes (0: unknown)."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def test_the_hostile_corpus_in_one_run(corpus, damaged_models, tmp_path: Path):
    folder, entries = corpus
    models_dir, models = damaged_models
    out = tmp_path / "out"
    model_args = ["--no-models"] if models_dir is None else ["--models-dir", str(models_dir)]
    before = peak_rss_of_children()
    start = time.monotonic()
    proc = analyze_process(str(folder), "--out", str(out), *model_args, timeout=CORPUS_SECONDS)
    seconds = time.monotonic() - start
    peak = peak_rss_of_children()
    err = proc.stderr.decode("utf-8")
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == EXIT_FAILED, err[-3000:]
    assert seconds < CORPUS_SECONDS
    if before < PEAK_RSS_BYTES:  # an earlier child's larger peak would hide this one's
        assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / 2**30:.2f} GiB"

    from leukview.core.summary import printable

    rows = {r["image"]: r for r in summary(out)}
    failures = {r["image"]: r["reason"] for r in summary(out, "failures.csv")}
    documents = {json.loads(p.read_text("utf-8"))["image"] for p in out.glob("*.cells.json")}
    usable = [m for m in models if m.usable]
    for entry in entries:
        name = printable(str(entry.path))
        label = f"{entry.name!r} ({entry.note})"
        if entry.good:
            assert rows[name]["status"] == "ok", (label, rows.get(name))
            assert str(entry.path) in documents, label
            assert sum(1 for k in rows[name] if k.startswith("model:")) >= len(usable)
            continue
        words = REASON_WORDS[entry.kind]
        assert name in failures, label
        assert any(w in failures[name].lower() for w in words), (label, failures[name])
        assert rows[name]["status"] == f"error: {failures[name]}"
        assert f"{name}: {failures[name]}" in err, label
    assert len(rows) == len(entries)  # nothing else, nothing twice
    # every damaged model is named, the usable ones ran
    for model in models:
        if not model.usable:
            assert f"({models_dir / model.name})" in err, model.name
    ran = {m["name"] for m in json.loads(next(out.glob("*.cells.json")).read_text())["models"]}
    assert len(ran) == len(usable)
