"""The hostile model corpus: damaged, lying and odd model folders that LeukView must refuse clearly.

:func:`make_damaged_models` writes, into one models folder, a tiny good model
(:func:`onnx_factory.make_tiny_classifier`) and variants of it damaged one way
each: the graph file (wrong sha256, truncated, random bytes, empty, external
weights, NaN weights, a FIFO, a folder, links to a device, to nothing, in a
loop), the sidecar (not JSON, not an object, too deep, too large, not UTF-8,
each required field missing, wrong types, NaN, infinity, huge numbers,
out-of-range values), a sidecar that lies about its graph (scores kind, class
count, input size and names, outputs, CAM weight), the folder layout (graph
only, sidecar only, a misnamed graph, a loose graph file, two sidecars with
one name) and a few that must still load (a graph linked from outside its
folder, honest probabilities). Each comes with its expected outcome.

Links: a ``model.onnx`` that is a link to a regular file is **allowed**,
wherever the file lies (a shared store, git-annex): its bytes must match the
sidecar's sha256 all the same, and nothing of the file but that comparison
reaches the user. A link to anything else (a device, a FIFO, a folder,
nothing, itself) is refused before it is opened.

Run as a script to write the corpus and print the table::

    python tests/hostile/make_models.py OUT_FOLDER
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GOOD", "Entry", "make_damaged_models"]

GOOD = "good"
CLASSES = ["lymphocyte", "monocyte", "neutrophil"]
USABLE, LISTED, LOAD = "usable", "listed", "load"


@dataclass(frozen=True)
class Entry:
    """One model folder of the corpus and what LeukView must make of it.

    Attributes
    ----------
    name : str
        Its folder's name in the corpus (a file's name for a loose ``.onnx``).
    damage : str
        What was done to it, for a person.
    outcome : {'usable', 'listed', 'load'}
        ``usable``: it loads. ``listed``: listing the models folder already
        gives it this problem. ``load``: it is listed as loadable, and loading
        it is refused.
    reason : str
        Text the problem's reason must contain ('' for a usable one).
    """

    name: str
    damage: str
    outcome: str
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.outcome == USABLE


def make_damaged_models(folder: str | os.PathLike[str]) -> list[Entry]:
    """Write the corpus into a models folder (created) and return its entries.

    Parameters
    ----------
    folder : path
        The models folder: one sub-folder per variant (and one loose file,
        ``loose.onnx``); its hidden ``.store`` holds the targets of links.

    Returns
    -------
    entries : list of Entry
        In the order written, the good model first. Variants the platform
        cannot make (FIFOs, links) are left out.
    """
    from onnx_factory import make_tiny_classifier, read_sidecar_dict, sha256_file, write_sidecar

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    good = make_tiny_classifier(root / GOOD, CLASSES)
    graph = (good / "model.onnx").read_bytes()
    store = root / ".store"  # targets of the links "outside the folder"
    store.mkdir(exist_ok=True)
    entries = [Entry(GOOD, "the tiny good model", USABLE)]

    def variant(
        name: str,
        damage: str,
        outcome: str,
        reason: str = "",
        *,
        sidecar: Callable[[dict[str, Any]], None] | None = None,
        text: str | bytes | None = None,
        onnx: bytes | None = None,
        resign: bool = False,
        make: Callable[[Path], None] | None = None,
    ) -> None:
        """Copy the good model to ``name`` (its sidecar's name too) and damage it."""
        target = root / name
        shutil.copytree(good, target)
        data = read_sidecar_dict(target)
        data["name"] = name  # one name each: no variant is a duplicate of another by accident
        if onnx is not None:
            (target / "model.onnx").write_bytes(onnx)
            if resign:
                data["sha256"] = sha256_file(target / "model.onnx")
        if sidecar is not None:
            sidecar(data)
        write_sidecar(target, data)
        if text is not None:
            path = target / "model.json"
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        try:
            if make is not None:
                make(target)
        except (OSError, NotImplementedError):  # no FIFOs or links here: leave the variant out
            shutil.rmtree(target)
            return
        entries.append(Entry(name, damage, outcome, reason))

    def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def edit(data: dict[str, Any]) -> None:
            *parents, key = path.split(".")
            target = data
            for parent in parents:
                target = target[parent]
            if value is _DELETE:
                del target[key]
            else:
                target[key] = value

        return edit

    def raw_sidecar(name: str, path: str, raw: str) -> str:
        """The good sidecar, renamed, with one field written as raw JSON text (NaN, 1e400, ...)."""
        data = {**read_sidecar_dict(good), "name": name}
        setting(path, "@@RAW@@")(data)
        return json.dumps(data, indent=2).replace('"@@RAW@@"', raw)

    # -- the graph file ------------------------------------------------------
    variant(
        "wrong-sha256",
        "sidecar sha256 of another file",
        LOAD,
        "does not match its sidecar",
        sidecar=setting("sha256", "0" * 64),
    )
    variant("no-sha256", "sidecar sha256 empty", LOAD, "no sha256", sidecar=setting("sha256", ""))
    variant(
        "truncated-onnx",
        "graph cut at half, sidecar re-signed",
        LOAD,
        "not a valid ONNX model",
        onnx=graph[: len(graph) // 2],
        resign=True,
    )
    variant(
        "truncated-onnx-unsigned",
        "graph cut at half",
        LOAD,
        "does not match its sidecar",
        onnx=graph[: len(graph) // 2],
    )
    noise = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    variant(
        "random-bytes-onnx",
        "4 KiB of random bytes, sidecar re-signed",
        LOAD,
        "not a valid ONNX model",
        onnx=noise,
        resign=True,
    )
    variant("empty-onnx", "a 0-byte graph", LISTED, "model.onnx is empty (0 bytes)", onnx=b"")
    variant(
        "external-weights",
        "weights in an external file naming ../../etc/passwd, re-signed",
        LOAD,
        "keeps its weights in external files",
        onnx=_external_weights(graph),
        resign=True,
    )
    variant(
        "nan-weights",
        "a NaN in the classifier bias, re-signed",
        LOAD,
        "non-finite scores",
        onnx=_nan_bias(graph),
        resign=True,
    )
    variant(
        "fifo-onnx",
        "model.onnx is a FIFO (reading it would block for ever)",
        LISTED,
        "model.onnx is not a regular file (a FIFO)",
        make=replace_graph_with(lambda t: os.mkfifo(t / "model.onnx")),
    )
    variant(
        "folder-onnx",
        "model.onnx is a folder",
        LISTED,
        "model.onnx is not a regular file (a folder)",
        make=replace_graph_with(lambda t: (t / "model.onnx").mkdir()),
    )
    if os.path.exists("/dev/zero"):
        variant(
            "link-to-dev-zero",
            "model.onnx links to /dev/zero (reading it would never end)",
            LISTED,
            "model.onnx is not a regular file (a character device)",
            make=replace_graph_with(lambda t: (t / "model.onnx").symlink_to("/dev/zero")),
        )
    variant(
        "link-dangling",
        "model.onnx links to a file that does not exist",
        LISTED,
        "model.onnx is a link to a missing file",
        make=replace_graph_with(lambda t: (t / "model.onnx").symlink_to("../.store/gone.onnx")),
    )
    variant(
        "link-loop",
        "model.onnx links to itself",
        LISTED,
        "cannot read model.onnx",
        make=replace_graph_with(lambda t: (t / "model.onnx").symlink_to("model.onnx")),
    )
    (store / "notes.txt").write_text("not a model: a file the link should never pass off as one\n")
    variant(
        "link-to-other-file",
        "model.onnx links to a text file outside its folder",
        LOAD,
        "does not match its sidecar",
        make=replace_graph_with(lambda t: (t / "model.onnx").symlink_to("../.store/notes.txt")),
    )
    (store / "sha256-blob").write_bytes(graph)
    variant(
        "link-outside",
        "model.onnx links to the good graph in a store outside its folder: allowed",
        USABLE,
        make=replace_graph_with(lambda t: (t / "model.onnx").symlink_to("../.store/sha256-blob")),
    )

    # -- the sidecar file ----------------------------------------------------
    variant("sidecar-not-json", "sidecar is not JSON", LISTED, "not valid JSON", text="{name: x,")
    variant(
        "sidecar-not-object",
        "sidecar is a JSON list",
        LISTED,
        "not a JSON object (it is a list)",
        text='["name", "classes"]',
    )
    variant(
        "sidecar-not-utf8",
        "sidecar bytes are not UTF-8",
        LISTED,
        "not UTF-8",
        text=b'{"name": "\xff\xfe"}',
    )
    variant(
        "sidecar-too-deep",
        "sidecar nests 100000 lists",
        LISTED,
        "nested too deeply",
        text="[" * 100_000 + "]" * 100_000,
    )
    variant(
        "sidecar-huge-number",
        "a 5000-digit number in the sidecar",
        LISTED,
        "not valid JSON",
        text=raw_sidecar("sidecar-huge-number", "opset", "1" * 5000),
    )
    variant(
        "sidecar-too-large",
        "a 5 MiB description",
        LISTED,
        "model sidecar is larger than 4.0 MiB",
        sidecar=setting("description", "x" * (5 << 20)),
    )
    if os.path.exists("/dev/zero"):
        variant(
            "sidecar-link-to-dev-zero",
            "model.json links to /dev/zero",
            LISTED,
            "model sidecar is not a regular file (a character device)",
            make=lambda t: _relink(t / "model.json", "/dev/zero"),
        )
    for field in ("name", "version", "classes", "input", "input.size", "input.mean", "input.std"):
        variant(
            f"missing-{field.replace('.', '-')}",
            f"sidecar without {field}",
            LISTED,
            f"lacks '{field}'",
            sidecar=setting(field, _DELETE),
        )
    for name, field, value, reason in [
        ("bool-schema-version", "schema_version", True, "'schema_version' is true"),
        ("newer-schema-version", "schema_version", 2, "schema_version 2 is not supported"),
        ("bool-input-size", "input.size", True, "'input.size' is true"),
        ("string-input-size", "input.size", "128", "'input.size' is \"128\""),
        ("string-crop-scale", "crop.scale", "1.5", "'crop.scale' is \"1.5\""),
        ("int-version", "version", 1, "'version' is 1"),
        (
            "crop-scale-1000",
            "crop.scale",
            1000,
            "'crop.scale' is 1000; it must be a number from 0.5 to 4",
        ),
        ("huge-min-side", "crop.min_side", 10**40, "'crop.min_side' is 1000000"),
        ("huge-input-size", "input.size", 100_000, "'input.size' is 100000"),
        ("zero-std", "input.std", [0.25, 0.0, 0.25], "'input.std' is [0.25, 0.0, 0.25]"),
        ("one-class", "classes", ["lymphocyte"], "'classes' is [\"lymphocyte\"]"),
        ("twice-a-class", "classes", ["a", "b", "a"], "(a twice)"),
        ("control-in-class", "classes", ["a\nb", "c", "d"], "control characters"),
        ("unknown-positive-class", "positive_class", "blast", "'positive_class' is \"blast\""),
        ("unknown-cell-kind", "applies_to", ["neutrophil"], "'applies_to' is [\"neutrophil\"]"),
        ("sha256-not-hex", "sha256", "not a hash", "'sha256' is \"not a hash\""),
        ("scores-kind-odds", "outputs.scores_kind", "odds", "'outputs.scores_kind' is \"odds\""),
    ]:
        variant(
            name, f"sidecar {field} = {value!r}"[:80], LISTED, reason, sidecar=setting(field, value)
        )
    for name, field, raw, reason in [
        ("nan-mean", "input.mean", "[0.5, NaN, 0.5]", "'input.mean' is [0.5, NaN, 0.5]"),
        ("infinite-std", "input.std", "[0.25, Infinity, 0.25]", "'input.std' is [0.25, Infinity"),
        ("overflowing-size", "input.size", "1e400", "'input.size' is Infinity"),
        ("nan-crop-scale", "crop.scale", "NaN", "'crop.scale' is NaN"),
    ]:
        variant(name, f"sidecar {field} = {raw}", LISTED, reason, text=raw_sidecar(name, field, raw))

    # -- a sidecar that lies about its graph ---------------------------------
    variant(
        "scores-kind-lie",
        "logits declared as probabilities",
        LOAD,
        "outputs.scores_kind 'probabilities' does not fit",
        sidecar=setting("outputs.scores_kind", "probabilities"),
    )
    variant(
        "class-count-mismatch",
        "4 classes for a 3-class graph",
        LOAD,
        "but the sidecar lists 4 classes",
        sidecar=setting("classes", [*CLASSES, "basophil"]),
    )
    variant(
        "input-size-mismatch",
        "sidecar input 64 for a 32-pixel graph",
        LOAD,
        "but the sidecar says (N, 3, 64, 64)",
        sidecar=setting("input.size", 64),
    )
    variant(
        "input-name-mismatch",
        "sidecar input 'pixels'",
        LOAD,
        "model has no input 'pixels'",
        sidecar=setting("input.name", "pixels"),
    )
    variant(
        "scores-output-mismatch",
        "sidecar scores output 'scores'",
        LOAD,
        "model has no output 'scores'",
        sidecar=setting("outputs.scores", "scores"),
    )
    variant(
        "cam-weight-mismatch",
        "sidecar cam.weight names no initialiser",
        LOAD,
        "model has no initialiser 'head.weight'",
        sidecar=setting("cam", {"weight": "head.weight"}),
    )

    # -- the folder layout ---------------------------------------------------
    for twin in ("twin-a", "twin-b"):
        variant(
            twin,
            "two sidecars named 'twin'",
            LISTED,
            "duplicate model name 'twin', also in",
            sidecar=setting("name", "twin"),
        )
    variant(
        "onnx-only",
        "a folder with only model.onnx",
        LISTED,
        "model.onnx without its sidecar model.json",
        make=lambda t: (t / "model.json").unlink(),
    )
    variant(
        "sidecar-only",
        "a folder with only model.json",
        LISTED,
        "model.onnx not found beside its sidecar",
        make=lambda t: (t / "model.onnx").unlink(),
    )
    variant(
        "misnamed-onnx",
        "a folder with only wbc.onnx",
        LISTED,
        "no model.onnx or model.json here (found wbc.onnx)",
        make=lambda t: ((t / "model.onnx").rename(t / "wbc.onnx"), (t / "model.json").unlink()),
    )
    (root / "loose.onnx").write_bytes(graph)
    entries.append(
        Entry(
            "loose.onnx",
            "a graph file loose in the models folder",
            LISTED,
            "outside a model folder",
        )
    )

    # -- what must still load ------------------------------------------------
    honest = make_tiny_classifier(
        root / "honest-probabilities", CLASSES, scores_kind="probabilities"
    )
    entries.append(Entry(honest.name, "a softmax output declared as probabilities", USABLE))
    modest = make_tiny_classifier(
        root / "modest-probabilities", CLASSES, scores_kind="probabilities"
    )
    data = read_sidecar_dict(modest)
    data["outputs"]["scores_kind"] = "logits"  # cannot be told from logits: allowed
    write_sidecar(modest, data)
    entries.append(Entry(modest.name, "a softmax output declared as logits: allowed", USABLE))
    return entries


_DELETE = object()


def replace_graph_with(make: Callable[[Path], object]) -> Callable[[Path], None]:
    """A ``make`` step: remove the copied ``model.onnx``, then put something else in its place."""

    def step(target: Path) -> None:
        (target / "model.onnx").unlink()
        make(target)

    return step


def _relink(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


def _external_weights(graph: bytes) -> bytes:
    """The graph with its largest initialiser moved to an "external file" outside any folder."""
    import onnx

    model = onnx.load_model_from_string(graph)
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data) or t.ByteSize())
    tensor.ClearField("float_data")
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "128")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _nan_bias(graph: bytes) -> bytes:
    import onnx
    from onnx import numpy_helper
    from onnx_factory import BIAS_NAME

    model = onnx.load_model_from_string(graph)
    bias = next(t for t in model.graph.initializer if t.name == BIAS_NAME)
    values = numpy_helper.to_array(bias).copy()
    values[0] = np.nan
    bias.CopyFrom(numpy_helper.from_array(values, BIAS_NAME))
    return model.SerializeToString()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_models.py OUT_FOLDER", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # onnx_factory lives in tests/
    entries = make_damaged_models(argv[0])
    for entry in entries:
        print(f"{entry.name:28} {entry.outcome:7} {entry.damage}")
    print(f"{len(entries)} models, {sum(not e.usable for e in entries)} damaged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
