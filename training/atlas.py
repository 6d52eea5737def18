"""Build a model's default reference atlas, and measure it as a second opinion.

Build (the default atlases shipped in ``models/<name>/atlas``)::

    python -m training.atlas --model models/wbc-type --out models/wbc-type/atlas
    python -m training.atlas --model models/all-blast --out models/all-blast/atlas --include cnmc

Only cells whose licence allows redistribution (:data:`REDISTRIBUTABLE`) go
in: from the model's own training sets, the cells its ``split.json`` put in
``train`` (never the held-out test cells, so the agreement measured on them
is honest), and from evaluation sets named with ``--include`` (all their
cells; they are then evaluated leaving each cell's whole group, e.g. its
C-NMC subject, out of the search). Cells are balanced per class (the same
number of each, spread over data sets and sub-types) and shrunk to JPEG
thumbnails.

Evaluate (how often the majority label of the k nearest atlas cells is the
truth, beside the classifier's own accuracy on the same cells)::

    python -m training.atlas --model models/wbc-type --evaluate [--json out.json]

The crops are cut by the app's own segmentation and
:func:`leukview.core.preprocess.crop_cell` (training.data's finders and
cache), exactly as for training and evaluation of the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from leukview.core.atlas import Atlas, majority_label, pooled_embeddings
from leukview.core.models import Classifier, softmax
from leukview.core.preprocess import normalize

from .config import loader_args
from .data import CropSet, Source, extract_crops, load_sources

log = logging.getLogger("training.atlas")
T = TypeVar("T")

# licences under which cell images may be shipped with the app (with attribution)
REDISTRIBUTABLE = ("CC BY 4.0", "CC BY 3.0", "CC0", "CC0 1.0", "MIT", "Apache-2.0")
DEFAULT_DATA = os.environ.get("LEUKVIEW_DATA", "../shared/data")


@dataclass
class Part:
    """Cells of one data set of a model's config: for the atlas or for evaluation."""

    name: str
    entry: dict[str, Any]
    sources: list[Source]
    role: str  # 'train' (the split's train groups), 'heldout' (its test groups), 'eval', 'include'
    crops: CropSet | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def redistributable(licence: str) -> bool:
    """Whether a data set's licence lets its images ship inside the app."""
    return licence.strip() in REDISTRIBUTABLE


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _split_groups(model_dir: Path, part: str, name: str) -> set[str]:
    split = _read_json(model_dir / "split.json")
    prefix = f"{name}:"
    return {g[len(prefix):] for g in split["groups"][part] if g.startswith(prefix)}


def model_parts(
    model_dir: Path, data_root: Path, role: str, include: Sequence[str] = (), dedupe: bool = True
) -> list[Part]:
    """The data sets of a model's training config, restricted to one role.

    Parameters
    ----------
    role : {'atlas', 'evaluate'}
        'atlas': redistributable training sets (train groups only) and the
        redistributable evaluation sets named in ``include``. 'evaluate': the
        held-out (test) groups of every training set and every evaluation
        set (with ``dedupe``, one per distinct listing: BCCD's halves are
        not repeated).
    """
    config = _read_json(model_dir / "training-config.json")
    parts: list[Part] = []
    for entry in config.get("train_data", []):
        name = entry["name"]
        keep = "train" if role == "atlas" else "test"
        if role == "atlas" and not redistributable(entry.get("licence", "")):
            log.info("%s: not in the atlas (licence: %s)", name, entry.get("licence", "?"))
            continue
        groups = _split_groups(model_dir, keep, name)
        sources = [s for s in load_sources(loader_args(entry), data_root) if s.group in groups]
        parts.append(Part(name, entry, sources, "train" if role == "atlas" else "heldout"))
    seen = set()
    for entry in config.get("eval_data", []):
        name = entry["name"]
        args = loader_args(entry)
        if role == "atlas":
            if name not in include:
                continue
            if not redistributable(entry.get("licence", "")):
                raise SystemExit(f"{name}: licence '{entry.get('licence')}' does not allow shipping its cells")
            parts.append(Part(name, entry, load_sources(args, data_root), "include"))
            continue
        key = json.dumps({k: v for k, v in args.items() if k not in ("half", "split_at")}, sort_keys=True)
        if key in seen and dedupe:
            continue
        seen.add(key)
        parts.append(Part(name, entry, load_sources(args, data_root), "eval"))
    missing = set(include) - {p.name for p in parts}
    if missing:
        raise SystemExit(f"--include: no evaluation set named {', '.join(sorted(missing))} in the config")
    return parts


def _crops(part: Part, classifier: Classifier, cache_dir: str | None) -> CropSet:
    if part.crops is None:
        spec = classifier.spec
        part.crops = extract_crops(
            part.sources, spec.crop, spec.input_size, cache_dir=cache_dir,
            name=f"atlas-{spec.name}-{part.name}-{part.role}", progress=False,
        )
    return part.crops


def run_crops(classifier: Classifier, crops: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, K) and embeddings (N, D) of uint8 crops, in one inference pass."""
    spec = classifier.spec
    probs, embeddings = [], []
    for start in range(0, len(crops), batch_size):
        batch = normalize(crops[start : start + batch_size], spec.mean, spec.std)
        scores, features = classifier.run(batch, with_features=True)
        assert features is not None
        probs.append(softmax(scores) if spec.scores_kind == "logits" else scores)
        embeddings.append(pooled_embeddings(features))
    if not probs:
        return np.zeros((0, len(spec.classes)), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probs), np.concatenate(embeddings)


def _detail(source_path: str, label: str) -> str:
    # a PBC cell labelled 'normal' keeps its type (its folder) as detail
    folder = Path(source_path).parent.name
    return folder if folder and folder != label and folder not in ("all", "hem") else ""


def round_robin(pools: dict[str, dict[str, list[T]]], count: int) -> list[T]:
    """Up to ``count`` items taken in turn from each data set, and within it from each sub-type.

    Parameters
    ----------
    pools : dict
        Data set -> sub-type -> items (taken from the end).
    """
    queues = {name: {k: list(v) for k, v in sorted(kinds.items())} for name, kinds in sorted(pools.items())}
    turn = {name: 0 for name in queues}
    taken: list[T] = []
    while len(taken) < count and any(any(q.values()) for q in queues.values()):
        for name, kinds in queues.items():
            if len(taken) >= count:
                break
            names = [k for k in kinds if kinds[k]]
            if not names:
                continue
            kind = names[turn[name] % len(names)]
            turn[name] += 1
            taken.append(kinds[kind].pop())
    return taken


def balanced_selection(
    labels: np.ndarray, strata: np.ndarray, per_class: int, classes: Sequence[str], seed: int = 0
) -> np.ndarray:
    """The same number of cells of each class, spread evenly over data sets, then sub-types.

    Parameters
    ----------
    labels, strata : ndarray of str, shape (N,)
        Class and stratum ``"<data set>/<sub-type>"`` of each candidate.
    per_class : int
        At most this many per class; fewer when the rarest class has fewer.
    classes : sequence of str
        Classes to fill (each must have candidates).

    Returns
    -------
    index : ndarray of int, shape (n * len(classes),)
    """
    rng = np.random.default_rng(seed)
    available = {c: int(np.sum(labels == c)) for c in classes}
    empty = [c for c, n in available.items() if n == 0]
    if empty:
        raise SystemExit(f"no redistributable cells of class {', '.join(empty)}")
    n = min(per_class, *available.values())
    chosen: list[int] = []
    for cls in classes:
        pools: dict[str, dict[str, list[int]]] = {}
        for stratum in sorted(set(strata[labels == cls])):
            members = np.flatnonzero((labels == cls) & (strata == stratum))
            dataset, _, kind = str(stratum).partition("/")
            pools.setdefault(dataset, {})[kind] = [int(i) for i in rng.permutation(members)]
        chosen += round_robin(pools, n)
    return np.array(chosen, np.int64)


def _presample(parts: Sequence[Part], per_class: int, seed: int) -> None:
    """Keep a few more source images per class than the atlas needs, so that only those are segmented."""
    rng = np.random.default_rng(seed)
    want = int(per_class * 1.3) + 5  # spares for images where no cell is found
    pools: dict[str, dict[str, dict[str, list[Source]]]] = {}
    for part in parts:
        for source in part.sources:
            kind = _detail(str(source.path), source.label)
            pools.setdefault(source.label, {}).setdefault(part.name, {}).setdefault(kind, []).append(source)
    keep: set[int] = set()
    for by_set in pools.values():
        shuffled = {
            name: {k: [m[i] for i in rng.permutation(len(m))] for k, m in kinds.items()}
            for name, kinds in by_set.items()
        }
        keep |= {id(s) for s in round_robin(shuffled, want)}
    for part in parts:
        part.sources = [s for s in part.sources if id(s) in keep]


def _relative(path: str, data_root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(data_root.resolve()))
    except ValueError:
        return Path(path).name


def build_atlas(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    data_root: str | os.PathLike[str] = DEFAULT_DATA,
    *,
    per_class: int = 100,
    include: Sequence[str] = (),
    cache_dir: str | None = "cache",
    thumbnail_size: int = 80,
    seed: int = 0,
    command: str = "",
) -> Atlas:
    """Build the default atlas of a model from its redistributable training cells.

    Returns
    -------
    Atlas
        Written to ``out_dir`` (replacing an atlas there).
    """
    model_dir, data_root = Path(model_dir), Path(data_root)
    classifier = Classifier.load(model_dir)
    spec = classifier.spec
    parts = model_parts(model_dir, data_root, "atlas", include)
    _presample(parts, per_class, seed)
    crops, labels, strata, hows, owners = [], [], [], [], []
    for p_index, part in enumerate(parts):
        found = _crops(part, classifier, cache_dir)
        keep = found.how != "fallback"  # a centred guess is not a reference cell
        log.info("%s: %d cells (%d fallbacks left out)", part.name, int(keep.sum()), int((~keep).sum()))
        for i in np.flatnonzero(keep):
            crops.append(found.crops[i])
            labels.append(str(found.labels[i]))
            strata.append(f"{part.name}/{_detail(str(found.sources[i]), str(found.labels[i]))}")
            hows.append(str(found.how[i]))
            owners.append((p_index, int(i)))
    label_arr, strata_arr = np.array(labels), np.array(strata)
    chosen = balanced_selection(label_arr, strata_arr, per_class, spec.classes, seed)
    probs, embeddings = run_crops(classifier, np.stack([crops[i] for i in chosen]))

    atlas = Atlas.create(
        out_dir, classifier,
        name=f"{spec.name} reference atlas",
        description=(
            f"Reference cells for {spec.name} {spec.version}: "
            + ", ".join(f"{p.name} ({'train split' if p.role == 'train' else 'all cells'})" for p in parts)
            + f"; {len(chosen) // len(spec.classes)} per class, balanced; redistributable licences only."
        ),
        thumbnail_size=thumbnail_size,
        build={
            "command": command,
            "per_class": per_class,
            "seed": seed,
            "parts": [{"name": p.name, "role": p.role, "licence": p.entry.get("licence", "")} for p in parts],
            "classifier_agrees_with_label": float(
                np.mean(np.array(spec.classes)[probs.argmax(1)] == label_arr[chosen])
            ),
        },
        overwrite=True,
    )
    for p_index, part in enumerate(parts):
        rows = [j for j, i in enumerate(chosen) if owners[i][0] == p_index]
        if not rows:
            continue
        found = part.crops
        assert found is not None
        picks = [owners[chosen[j]][1] for j in rows]
        result = atlas.add(
            embeddings[rows], found.crops[picks], [str(found.labels[i]) for i in picks],
            source=part.name, licence=part.entry.get("licence", ""),
            attribution=part.entry.get("citation", ""), note=part.entry.get("note", ""),
            files=[_relative(str(found.sources[i]), data_root) for i in picks],
            groups=[str(found.groups[i]) for i in picks],
            details=[_detail(str(found.sources[i]), str(found.labels[i])) for i in picks],
        )
        if result.duplicates:
            log.warning("%s: %d duplicate crops skipped", part.name, len(result.duplicates))
    return atlas


def exclusions(
    atlas: Atlas, source: str, groups: Sequence[str], files: Sequence[str] | None = None
) -> list[set[str]]:
    """Per query cell of data set ``source``, the atlas cells it must not be compared with.

    Those of the same source and group (a subject's other cells), and those
    cut from the same image file under any source name (BCCD and its halves
    list the same images): nothing vouches for itself.
    """
    by_group: dict[tuple[str, str], set[str]] = {}
    by_file: dict[str, set[str]] = {}
    for e in atlas.entries:
        if e.group:
            by_group.setdefault((e.source, e.group), set()).add(e.atlas_id)
        if e.file:
            by_file.setdefault(e.file, set()).add(e.atlas_id)
    out = []
    for i, group in enumerate(groups):
        banned = set(by_group.get((source, group), set()))
        if files is not None:
            banned |= by_file.get(files[i], set())
        out.append(banned)
    return out


def grow_atlas(
    atlas: Atlas, classifier: Classifier, parts: Sequence[Part], data_root: Path, cache_dir: str | None
) -> None:
    """Add every cell of these data sets to an atlas, as a lab adds its reviewed cells."""
    for part in parts:
        found = _crops(part, classifier, cache_dir)
        _, embeddings = run_crops(classifier, found.crops)
        result = atlas.add(
            embeddings, found.crops, [str(v) for v in found.labels],
            source=part.name, licence=part.entry.get("licence", "") or "local",
            attribution=part.entry.get("citation", ""),
            files=[_relative(str(v), data_root) for v in found.sources],
            groups=[str(v) for v in found.groups],
        )
        log.info("grown by %s: %d cells (%d duplicates)", part.name, len(result.added), len(result.duplicates))


def evaluate_atlas(
    model_dir: str | os.PathLike[str],
    atlas_dir: str | os.PathLike[str] | None = None,
    data_root: str | os.PathLike[str] = DEFAULT_DATA,
    *,
    k: int = 5,
    cache_dir: str | None = "cache",
    sets: Sequence[str] | None = None,
    grow: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Agreement of the atlas's k-nearest majority with the truth, per evaluation set.

    A cell of a data set that is also in the atlas (``--include``) is
    searched without every atlas cell of its own group (subject) and image.

    Parameters
    ----------
    sets : sequence of str, optional
        Only these sets (``"pbc held out"`` or a config name such as
        ``bccd-test``); every distinct set by default.
    grow : sequence of str
        Evaluation sets whose cells are first added to a temporary copy of
        the atlas (what a lab's own reviewed cells would do); evaluate
        another set (e.g. grow ``bccd-dev``, evaluate ``bccd-test``).

    Returns
    -------
    rows : list of dict
        Per set: ``set``, ``n``, ``classifier_accuracy``, ``atlas_accuracy``
        (majority of k), ``atlas_agrees_with_classifier``, ``accuracy_when_agree``,
        ``accuracy_when_disagree``, ``n_disagree``, ``left_out`` (what was excluded).
    """
    model_dir = Path(model_dir)
    data_root = Path(data_root)
    classifier = Classifier.load(model_dir)
    atlas_dir = Path(atlas_dir or model_dir / "atlas")
    atlas = Atlas.load(atlas_dir, classifier)
    classes = np.array(classifier.spec.classes)
    parts = model_parts(model_dir, data_root, "evaluate", dedupe=not sets)
    with tempfile.TemporaryDirectory() as tmp:
        if grow:
            unknown = set(grow) - {p.name for p in parts}
            if unknown:
                raise SystemExit(f"--grow: no data set named {', '.join(sorted(unknown))}")
            shutil.copytree(atlas_dir, Path(tmp) / "atlas")
            atlas = Atlas.load(Path(tmp) / "atlas", classifier)
            grow_atlas(atlas, classifier, [p for p in parts if p.name in grow], data_root, cache_dir)
        return _evaluate(atlas, classifier, parts, classes, data_root, k, cache_dir, sets, grow)


def _evaluate(
    atlas: Atlas, classifier: Classifier, parts: Sequence[Part], classes: np.ndarray, data_root: Path,
    k: int, cache_dir: str | None, sets: Sequence[str] | None, grow: Sequence[str],
) -> list[dict[str, Any]]:
    rows = []
    for part in parts:
        if part.name in grow:
            continue
        label = f"{part.name} held out" if part.role == "heldout" else part.name
        if sets and part.name not in sets and label not in sets:
            continue
        if not part.sources:
            continue
        found = _crops(part, classifier, cache_dir)
        if len(found) == 0:
            continue
        probs, embeddings = run_crops(classifier, found.crops)
        truth = found.labels.astype(str)
        called = classes[probs.argmax(1)]
        exclude = exclusions(atlas, part.name, [str(g) for g in found.groups],
                             [_relative(str(f), data_root) for f in found.sources])
        excluded = sum(1 for e in exclude if e)
        neighbours = atlas.search(embeddings, k, exclude=exclude)
        votes = np.array([majority_label(n)[0] or "" for n in neighbours])
        agree = votes == called
        right = called == truth
        rows.append({
            "set": label,
            "n": int(len(truth)),
            "truth": dict(Counter(truth.tolist())),
            "classifier_accuracy": float(right.mean()),
            "atlas_accuracy": float((votes == truth).mean()),
            "atlas_agrees_with_classifier": float(agree.mean()),
            "accuracy_when_agree": float(right[agree].mean()) if agree.any() else None,
            "accuracy_when_disagree": float(right[~agree].mean()) if (~agree).any() else None,
            "atlas_right_when_disagree": float((votes == truth)[~agree].mean()) if (~agree).any() else None,
            "n_disagree": int((~agree).sum()),
            "left_out": (f"own group (subject) or image left out for {excluded} cells" if excluded else ""),
            "atlas": {"count": len(atlas), "grown_by": list(grow)},
            "k": k,
        })
        log.info("%s: %s", label, rows[-1])
    return rows


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def agreement_table(rows: Sequence[dict[str, Any]], k: int = 5) -> str:
    """The evaluation as a Markdown table."""
    lines = [
        f"| cells | n | classifier accuracy | majority of {k} nearest atlas cells | atlas agrees with the call | accuracy when they agree | when they disagree (n) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['n']} | {_pct(r['classifier_accuracy'])} | {_pct(r['atlas_accuracy'])} | "
            f"{_pct(r['atlas_agrees_with_classifier'])} | {_pct(r['accuracy_when_agree'])} | "
            f"{_pct(r['accuracy_when_disagree'])} ({r['n_disagree']}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.atlas", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (models/<name>)")
    parser.add_argument("--out", help="build the atlas into this folder")
    parser.add_argument("--evaluate", action="store_true", help="measure agreement on held-out cells")
    parser.add_argument("--atlas", help="atlas to evaluate (default: MODEL/atlas)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="data root (default: %(default)s)")
    parser.add_argument("--cache", default="cache", help="crop cache folder ('' for none)")
    parser.add_argument("--per-class", type=int, default=100, help="cells per class (at most)")
    parser.add_argument("--include", action="append", default=[], help="also ship this evaluation set's cells")
    parser.add_argument("--thumbnail-size", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5, help="neighbours that vote (evaluate)")
    parser.add_argument("--set", action="append", dest="sets", help="evaluate only this set (repeatable)")
    parser.add_argument("--grow", action="append", default=[],
                        help="evaluate with this data set's cells added to a copy of the atlas")
    parser.add_argument("--json", help="write the evaluation rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.out and not args.evaluate:
        parser.error("nothing to do: give --out to build and/or --evaluate")
    cache = args.cache or None
    if args.out:
        started = time.perf_counter()
        command = "python -m training.atlas " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:])
        )
        atlas = build_atlas(
            args.model, args.out, args.data, per_class=args.per_class, include=args.include,
            cache_dir=cache, thumbnail_size=args.thumbnail_size, seed=args.seed, command=command,
        )
        info = atlas.info()
        print(f"{info['folder']}: {info['count']} cells, {info['size_bytes'] / 1e6:.2f} MB, "
              f"{time.perf_counter() - started:.0f} s")
        print(json.dumps({"by_label": info["by_label"], "by_source": info["by_source"]}, indent=1))
    if args.evaluate:
        rows = evaluate_atlas(
            args.model, args.atlas or args.out, args.data, k=args.k, cache_dir=cache, sets=args.sets,
            grow=args.grow,
        )
        print(agreement_table(rows, args.k))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
