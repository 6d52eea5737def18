"""The registry over the hostile model corpus: every damaged model named with its reason, no crash.

The corpus (``tests/hostile/make_models.py``) is a good tiny model and some 60
variants damaged one way each. Whatever the damage, listing and loading raise
nothing but :class:`LeukViewError`, never hang (a FIFO or ``/dev/zero`` posing
as a model is not opened), name each damaged model with a reason that says
what is wrong, and still load the good ones.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile.make_models import GOOD, LISTED, LOAD, Entry, make_damaged_models

from leukview.core.errors import ModelError
from leukview.core.models import CPU, ModelRegistry

HANG_S = 120  # far beyond what the whole corpus takes (a few seconds)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Entry]]:
    root = tmp_path_factory.mktemp("hostile") / "models"
    return root, make_damaged_models(root)


@contextlib.contextmanager
def no_hang() -> Iterator[None]:
    """Kill the test run, with every thread's traceback, if the block hangs."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_the_corpus_is_what_it_says(corpus: tuple[Path, list[Entry]]) -> None:
    root, entries = corpus
    damaged = [e for e in entries if not e.usable]
    assert len(damaged) >= 36 and entries[0].name == GOOD and entries[0].usable
    assert len({e.name for e in entries}) == len(entries)
    assert all(e.reason for e in damaged) and all((root / e.name).exists() or
                                                  (root / e.name).is_symlink() for e in entries)
    kinds = {e.outcome for e in damaged}
    assert kinds == {LISTED, LOAD}


def test_listing_never_opens_a_graph_nor_imports_onnxruntime(
    corpus: tuple[Path, list[Entry]],
) -> None:
    root, entries = corpus
    code = (
        "import json, sys\n"
        "from leukview.core.models import ModelRegistry\n"
        f"listed = {{e.name: list(e.problems) for e in ModelRegistry({str(root)!r}).entries()}}\n"
        "print(json.dumps([listed, 'onnxruntime' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=HANG_S
    )
    listed, imported = json.loads(out.stdout)
    assert not imported
    assert sorted(listed) == sorted(e.name for e in entries)  # every one listed, nothing else
    for entry in entries:
        problems = listed[entry.name]
        if entry.outcome == LISTED:
            assert len(problems) == 1 and entry.reason in problems[0], (entry, problems)
        else:  # usable, or refused only when its graph is read
            assert problems == [], (entry, problems)


_LOAD_EACH = """
import json, sys
from leukview.core.errors import LeukViewError
from leukview.core.models import CPU, Classifier
for folder in sys.argv[1:]:
    print(json.dumps(["start", folder]), flush=True)
    try:
        Classifier.load(folder, [CPU])
        result = ["loaded", ""]
    except LeukViewError as exc:
        result = [type(exc).__name__, exc.reason]
    print(json.dumps([folder, *result]), flush=True)
"""


def test_classifier_load_of_each_folder_raises_only_model_errors(
    corpus: tuple[Path, list[Entry]],
) -> None:
    """Loading a folder directly, without the registry's listing first, is as safe.

    In a child process, so that a graph file that blocks (a FIFO) fails the
    test, naming the folder, instead of hanging the suite; any exception but
    a LeukViewError is a traceback there and a failure here.
    """
    root, entries = corpus
    folders = [e for e in entries if (root / e.name).is_dir()]
    args = [sys.executable, "-c", _LOAD_EACH, *(str(root / e.name) for e in folders)]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=HANG_S)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or b""  # bytes, even with text=True
        lines = (partial.decode() if isinstance(partial, bytes) else partial).splitlines()
        pytest.fail(f"Classifier.load hangs: {lines[-1] if lines else 'at start'}")
    assert out.returncode == 0, out.stderr[-3000:]
    results = {}
    for line in out.stdout.splitlines():
        record = json.loads(line)
        if record[0] != "start":
            results[Path(record[0]).name] = (record[1], record[2])
    assert sorted(results) == sorted(e.name for e in folders)
    for entry in folders:
        kind, reason = results[entry.name]
        if entry.usable or entry.name.startswith("twin-"):  # only the registry can tell a duplicate
            assert kind == "loaded", (entry, reason)
        else:
            assert kind == "ModelError", (entry, kind, reason)
            if entry.outcome == LOAD:
                assert entry.reason in reason, (entry, reason)


def test_load_usable_loads_the_good_ones_and_names_every_other(
    corpus: tuple[Path, list[Entry]],
) -> None:
    root, entries = corpus
    with no_hang():
        classifiers, problems = ModelRegistry(root).load_usable(providers=[CPU])
    assert sorted(c.path.name for c in classifiers) == sorted(e.name for e in entries if e.usable)
    reasons = {p.folder.name: p.reason for p in problems}
    assert len(reasons) == len(problems)  # one problem each
    for entry in entries:
        if entry.usable:
            assert entry.name not in reasons
        else:
            assert entry.reason in reasons[entry.name], (entry, reasons.get(entry.name))
    good = next(c for c in classifiers if c.path.name == GOOD)
    assert good.spec.name == GOOD and good.cam_exact is True


def test_load_usable_by_name_names_each_model_asked_for(corpus: tuple[Path, list[Entry]]) -> None:
    root, entries = corpus
    asked = [e.name for e in entries] + ["not-installed"]
    with no_hang():
        classifiers, problems = ModelRegistry(root).load_usable(asked, providers=[CPU])
    assert [c.path.name for c in classifiers] == [e.name for e in entries if e.usable]  # in order
    damaged = [e for e in entries if not e.usable]
    assert [p.folder.name for p in problems[:-1]] == [e.name for e in damaged]
    for entry, problem in zip(damaged, problems, strict=False):
        assert entry.reason in problem.reason
        assert problem.name in (entry.name, "twin")  # the sidecar's name, else the name asked
    assert (problems[-1].folder, problems[-1].name) == (root, "not-installed")
    assert problems[-1].reason.startswith("no model named 'not-installed' (installed: ")


def test_a_duplicated_name_is_a_clear_error(corpus: tuple[Path, list[Entry]]) -> None:
    root, _ = corpus
    registry = ModelRegistry(root)
    with pytest.raises(ModelError, match="duplicate model name 'twin', also in .*twin-b"):
        registry.load(["twin"], providers=[CPU])
    _, problems = registry.load_usable(["twin"], providers=[CPU])
    assert [(p.folder.name, p.name) for p in problems] == [("twin-a", "twin")]
