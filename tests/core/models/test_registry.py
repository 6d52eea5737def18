"""The installed-model registry: listing (problems included), finding and loading by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from onnx_factory import make_tiny_classifier, read_sidecar_dict, write_sidecar

from leukview.core.errors import LeukViewError, ModelError
from leukview.core.models import (
    CPU,
    Classifier,
    ModelEntry,
    ModelRegistry,
    default_models_dir,
    find_models,
    load_entry,
    load_models,
)
from leukview.core.paths import models_dir

CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two good models, a graph without a sidecar, a broken sidecar, and things that are no models."""
    root = tmp_path / "models"
    make_tiny_classifier(root / "zeta", CLASSES)
    make_tiny_classifier(root / "alpha", ["blast", "normal"], name="all-blast", seed=3)
    bare = root / "bare"
    bare.mkdir()
    (bare / "model.onnx").write_bytes((root / "zeta" / "model.onnx").read_bytes())
    broken = make_tiny_classifier(root / "broken", CLASSES, seed=4)
    data = read_sidecar_dict(broken)
    del data["classes"]
    write_sidecar(broken, data)
    (root / "notes").mkdir()  # neither file: not a model
    (root / "README.txt").write_text("not a model")
    return root


def test_entries_list_every_model_folder_with_its_problems(root: Path) -> None:
    entries = {e.name: e for e in ModelRegistry(root).entries()}
    assert list(entries) == ["alpha", "bare", "broken", "zeta"]

    alpha, zeta = entries["alpha"], entries["zeta"]
    assert alpha.ok and alpha.problems == () and alpha.folder == root / "alpha"
    assert alpha.spec is not None and alpha.spec.name == "all-blast"
    assert (alpha.version, zeta.version) == ("0.0.1", "0.0.1") and zeta.ok

    bare, broken = entries["bare"], entries["broken"]
    assert not bare.ok and bare.spec is None and bare.version == ""
    assert bare.problems == ("model.onnx without its sidecar model.json",)
    assert not broken.ok and broken.spec is None
    assert len(broken.problems) == 1 and "lacks 'classes'" in broken.problems[0]
    assert "lacks 'classes'" in repr(broken) and "'alpha' 0.0.1, ok" in repr(alpha)


def test_a_sidecar_without_its_graph_is_listed_with_the_problem(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "models" / "lonely", CLASSES)
    (folder / "model.onnx").unlink()
    entry = ModelEntry.read(folder)
    assert entry.spec is not None and entry.spec.name == "lonely" and not entry.ok
    assert entry.problems == ("model.onnx not found beside its sidecar",)
    assert ModelRegistry(tmp_path / "models").entries() == [entry]


def test_missing_models_folder_lists_nothing(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "absent")
    assert registry.entries() == [] and registry.load() == []
    assert find_models(tmp_path / "absent") == []
    with pytest.raises(ModelError, match=r"no model named 'x' \(installed: none\)"):
        registry.find("x")


def test_find_by_folder_then_by_sidecar_name(root: Path) -> None:
    registry = ModelRegistry(root)
    assert registry.find("zeta").folder == root / "zeta"
    assert registry.find("all-blast").folder == root / "alpha"  # the sidecar's name
    assert registry.find("bare").problems  # found, even though it cannot be loaded


def test_a_folder_name_wins_over_another_models_sidecar_name(tmp_path: Path) -> None:
    root = tmp_path / "models"
    make_tiny_classifier(root / "a", CLASSES, name="b")
    make_tiny_classifier(root / "b", CLASSES, name="c", seed=1)
    assert ModelRegistry(root).find("b").folder == root / "b"
    assert ModelRegistry(root).find("c").folder == root / "b"


def test_load_by_name(root: Path) -> None:
    registry = ModelRegistry(root)
    loaded = registry.load(["zeta", "all-blast"], providers=[CPU])
    assert all(isinstance(c, Classifier) for c in loaded)
    assert [c.spec.name for c in loaded] == ["zeta", "all-blast"]  # the order asked for
    assert [c.path for c in loaded] == [root / "zeta", root / "alpha"]
    assert [c.provider for c in loaded] == [CPU, CPU]


def test_unknown_name_is_a_clear_error(root: Path) -> None:
    with pytest.raises(LeukViewError) as info:
        ModelRegistry(root).load(["wbc-type"])
    assert isinstance(info.value, ModelError)
    assert info.value.reason == "no model named 'wbc-type' (installed: alpha, bare, broken, zeta)"
    assert info.value.path == str(root)


def test_a_damaged_model_is_refused_with_its_problem(root: Path) -> None:
    registry = ModelRegistry(root)
    with pytest.raises(ModelError, match="model.onnx without its sidecar") as info:
        registry.load(["bare"])
    assert info.value.path == str(root / "bare")
    with pytest.raises(ModelError, match="lacks 'classes'"):
        load_entry(registry.find("broken"))
    with pytest.raises(ModelError, match="without its sidecar"):
        registry.load()  # every listed model, the damaged ones included


def test_load_everything_when_all_are_good(tmp_path: Path) -> None:
    root = tmp_path / "models"
    make_tiny_classifier(root / "zeta", CLASSES)
    make_tiny_classifier(root / "alpha", ["blast", "normal"], name="all-blast", seed=3)
    assert [c.spec.name for c in ModelRegistry(root).load()] == ["all-blast", "zeta"]


def test_default_folder_follows_the_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEUKVIEW_MODELS", str(root))
    assert default_models_dir() == root == models_dir()
    assert ModelRegistry().root == root
    assert [p.name for p in find_models()] == ["alpha", "broken", "zeta"]  # those with a sidecar


def test_find_models_and_load_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    make_tiny_classifier(root / "zeta", CLASSES)
    make_tiny_classifier(root / "alpha", ["blast", "normal"], name="all-blast", seed=3)
    (root / "notes").mkdir()
    assert [p.name for p in find_models(root)] == ["alpha", "zeta"]
    monkeypatch.setenv("LEUKVIEW_MODELS", str(root))
    assert [m.spec.name for m in load_models()] == ["all-blast", "zeta"]
    assert [m.spec.name for m in load_models(["zeta", "alpha"], root)] == ["zeta", "all-blast"]
    assert [m.path.name for m in load_models(["all-blast"], root)] == ["alpha"]  # by sidecar name
    with pytest.raises(ModelError, match=r"no model named 'wbc-type' \(installed: alpha, zeta\)"):
        load_models(["wbc-type"], root)


def test_listing_models_does_not_import_onnxruntime(root: Path) -> None:
    code = (
        "import sys\n"
        "from leukview.core.models import ModelRegistry\n"
        f"names = [e.name for e in ModelRegistry({str(root)!r}).entries()]\n"
        "print(names, 'onnxruntime' in sys.modules, 'onnx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['alpha', 'bare', 'broken', 'zeta'] False False"


def test_two_sidecars_with_one_name_are_both_listed_with_the_problem(tmp_path: Path) -> None:
    root = tmp_path / "models"
    make_tiny_classifier(root / "wbc-type", CLASSES)
    make_tiny_classifier(root / "wbc-type-copy", CLASSES, name="wbc-type", seed=1)
    make_tiny_classifier(root / "other", ["blast", "normal"], seed=2)
    registry = ModelRegistry(root)
    entries = {e.name: e for e in registry.entries()}
    assert entries["other"].ok
    first, copy = entries["wbc-type"], entries["wbc-type-copy"]
    assert not first.ok and not copy.ok and first.spec is not None  # the sidecar is still shown
    assert first.problems == (f"duplicate model name 'wbc-type', also in {root / 'wbc-type-copy'}",)
    assert copy.problems == (f"duplicate model name 'wbc-type', also in {root / 'wbc-type'}",)
    # loading by that name, or by either folder, is a clear error: neither loads, none twice
    for name in ("wbc-type", "wbc-type-copy"):
        with pytest.raises(ModelError, match="duplicate model name 'wbc-type'"):
            registry.load([name], providers=[CPU])
    with pytest.raises(ModelError, match="duplicate model name 'wbc-type'"):
        registry.load(providers=[CPU])
    assert [c.spec.name for c in registry.load(["other"], providers=[CPU])] == ["other"]


def test_three_sidecars_with_one_name_name_the_other_two(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for index, folder in enumerate(("a", "b", "c")):
        make_tiny_classifier(root / folder, CLASSES, name="same", seed=index)
    problems = {e.name: e.problems for e in ModelRegistry(root).entries()}
    assert problems["b"] == (f"duplicate model name 'same', also in {root / 'a'}, {root / 'c'}",)


def test_folders_that_only_look_like_models_are_listed_with_a_hint(tmp_path: Path) -> None:
    import os

    root = tmp_path / "models"
    good = make_tiny_classifier(root / "good", CLASSES)
    graph = (good / "model.onnx").read_bytes()
    misnamed = root / "misnamed"
    misnamed.mkdir()
    (misnamed / "wbc.onnx").write_bytes(graph)
    renamed = make_tiny_classifier(root / "renamed", CLASSES)
    (renamed / "model.onnx").rename(renamed / "weights.onnx")
    (root / "loose.onnx").write_bytes(graph)
    dangling = make_tiny_classifier(root / "dangling", CLASSES)
    (dangling / "model.onnx").unlink()
    (dangling / "model.onnx").symlink_to(tmp_path / "gone.onnx")
    fifo = root / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "model.json")
    (fifo / "model.onnx").write_bytes(graph)

    entries = {e.name: e for e in ModelRegistry(root).entries()}
    assert sorted(entries) == ["dangling", "fifo", "good", "loose.onnx", "misnamed", "renamed"]
    assert entries["good"].ok
    assert entries["misnamed"].problems == (
        "no model.onnx or model.json here (found wbc.onnx): a model folder holds model.onnx "
        "and its sidecar model.json",
    )
    assert entries["renamed"].problems == ("model.onnx not found beside its sidecar (found weights.onnx)",)
    assert entries["loose.onnx"].problems == (
        "a model file outside a model folder: put it in its own folder as model.onnx, "
        "with its sidecar model.json",
    )
    assert entries["dangling"].problems == (
        f"model.onnx is a link to a missing file ({tmp_path / 'gone.onnx'})",
    )
    assert entries["fifo"].spec is None and "not a regular file (a FIFO)" in entries["fifo"].problems[0]


def test_a_models_folder_that_is_itself_a_model_says_so(tmp_path: Path) -> None:
    folder = make_tiny_classifier(tmp_path / "wbc-type", CLASSES)
    entries = ModelRegistry(folder).entries()
    assert len(entries) == 1 and entries[0].folder == folder and not entries[0].ok
    assert entries[0].problems == (
        "this models folder is itself a model folder: the models folder holds one folder per "
        f"model (use {tmp_path})",
    )


def test_load_usable_loads_the_good_models_and_reports_the_rest(root: Path) -> None:
    from leukview.core.models import ModelProblem

    changed = make_tiny_classifier(root / "changed", CLASSES, seed=5)
    (changed / "model.onnx").write_bytes((root / "zeta" / "model.onnx").read_bytes())
    classifiers, problems = ModelRegistry(root).load_usable(providers=[CPU])
    assert [c.spec.name for c in classifiers] == ["all-blast", "zeta"]
    assert all(isinstance(p, ModelProblem) for p in problems)
    assert [(p.folder, p.name) for p in problems] == [
        (root / "bare", None),  # no sidecar: no name known
        (root / "broken", None),
        (root / "changed", "changed"),  # found when loading
    ]
    assert problems[0].reason == "model.onnx without its sidecar model.json"
    assert "lacks 'classes'" in problems[1].reason
    assert "does not match its sidecar" in problems[2].reason
    assert str(problems[0]) == f"model 'bare' ({root / 'bare'}): model.onnx without its sidecar model.json"
    error = problems[2].error
    assert isinstance(error, ModelError) and error.reason == problems[2].reason
    assert error.path == str(root / "changed")


def test_load_usable_by_name_reports_unknown_and_broken_names(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import leukview.core.models._runtime as runtime

    calls = []
    monkeypatch.setattr(runtime, "select_providers", lambda: calls.append(1) or [CPU])
    asked = ["zeta", "nope", "bare", "all-blast", "alpha", "zeta"]
    classifiers, problems = ModelRegistry(root).load_usable(asked)
    # in the order asked, each model once (alpha is all-blast's folder)
    assert [c.path.name for c in classifiers] == ["zeta", "alpha"]
    assert calls == [1]  # providers chosen once
    assert [(p.folder, p.name) for p in problems] == [(root, "nope"), (root / "bare", "bare")]
    assert problems[0].reason == "no model named 'nope' (installed: alpha, bare, broken, zeta)"
    assert problems[1].reason == "model.onnx without its sidecar model.json"


def test_load_usable_with_nothing_to_load_needs_no_onnxruntime(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from leukview.core.models import ModelRegistry\n"
        f"print(ModelRegistry({str(tmp_path / 'absent')!r}).load_usable(), "
        f"ModelRegistry({str(tmp_path)!r}).load_usable(['x'])[1][0].name, "
        "'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "([], []) x False"


def test_load_usable_turns_an_unexpected_failure_into_a_problem(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(folder: object, providers: object = None) -> Classifier:
        if str(folder).endswith("zeta"):
            raise ValueError("a bug while checking the graph")
        return real(folder, providers)

    real = Classifier.load
    monkeypatch.setattr(Classifier, "load", explode)
    classifiers, problems = ModelRegistry(root).load_usable(["zeta", "all-blast"], providers=[CPU])
    assert [c.spec.name for c in classifiers] == ["all-blast"]
    assert problems[0].name == "zeta"
    assert problems[0].reason == "cannot be loaded (ValueError: a bug while checking the graph)"
    assert "a bug while checking the graph" in caplog.text  # logged with its traceback
