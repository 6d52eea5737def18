"""How a second-stage run and a type model make one call together: ``python -m training.hierarchy``.

A run trained on the type model's classes plus ``blast`` (e.g.
``training/configs/wbc-mononuclear.toml``) can be shipped alone, or combined
with the type model it started from. This compares the ways, on the run's
own prepared crops (validation, held-out test and every eval set), so that
the choice is made on named development sets (``--select-on``) and the rest
are only reported:

``alone``
    The run's argmax over all its classes.
``gate-blast``
    The type model's call; a cell it calls one of ``--refines`` becomes blast
    when the run's argmax is blast.
``veto-blast``
    The run's call; a blast call stands only when the type model calls the
    cell one of ``--refines`` (else the run's best other class).
``refine``
    The type model's call; a cell it calls one of ``--refines`` is re-decided
    by the run among those classes and blast (the shipped rule:
    :mod:`leukview.core.calls`, a refining model).

Usage::

    python -m training.hierarchy runs/wbc-mononuclear --type-model models/wbc-type \\
        --refines lymphocyte monocyte erythroblast --select-on val bccd-dev
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from leukview.core.models import Classifier

Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]
BLAST = "blast"


def type_logits(classifier: Classifier, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """The type model's scores (N, K) on prepared crops (N, S, S, 3) uint8, as the app feeds them."""
    from leukview.core.preprocess import normalize

    spec = classifier.spec
    out = []
    for start in range(0, len(crops), batch):
        x = normalize(crops[start : start + batch], spec.mean, spec.std)
        out.append(classifier.session.run([spec.scores_output], {spec.input_name: x})[0])
    return np.concatenate(out) if out else np.zeros((0, len(spec.classes)), np.float32)


def rules(run_classes: Sequence[str], type_classes: Sequence[str], refines: Sequence[str]) -> dict[str, Rule]:
    """The ways to combine (run logits (N, R), type logits (N, T)) into call indices of ``run_classes``."""
    to_run = np.array([run_classes.index(c) if c in run_classes else -1 for c in type_classes])
    blast = run_classes.index(BLAST)
    gate = [type_classes.index(c) for c in refines]
    among = np.array([run_classes.index(c) for c in [*refines, BLAST]])
    others = np.array([i for i, c in enumerate(run_classes) if c != BLAST])

    def typed(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = t.argmax(1)
        return to_run[first], np.isin(first, gate)

    def alone(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        return r.argmax(1)

    def gate_blast(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        call, mono = typed(t)
        return np.where(mono & (r.argmax(1) == blast), blast, call)

    def veto_blast(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        _call, mono = typed(t)
        own = r.argmax(1)
        return np.where((own == blast) & ~mono, others[r[:, others].argmax(1)], own)

    def refine(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        call, mono = typed(t)
        return np.where(mono, among[r[:, among].argmax(1)], call)

    return {"alone": alone, "gate-blast": gate_blast, "veto-blast": veto_blast, "refine": refine}


def compare(run_dir: Path, type_model: Path, refines: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{rule: {set: {accuracy, blast_fraction, cells}}} on the run's validation, test and eval crops."""
    import torch

    from .export import load_run
    from .train import predict, prepare

    torch.set_num_threads(2)
    config, model, _booster, _result = load_run(run_dir)
    prepared = prepare(config, run_dir, progress=False)
    classifier = Classifier.load(type_model, providers=["CPUExecutionProvider"])
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {
        part: (prepared.crops.crops[prepared.index[part]], prepared.y[prepared.index[part]]) for part in ("val", "test")
    }
    sets.update({name: (cs.crops, y) for name, (cs, y, _entry) in prepared.eval_sets.items()})
    table = rules(list(config.classes), list(classifier.spec.classes), refines)
    blast = list(config.classes).index(BLAST)
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in table}
    for set_name, (crops, y) in sets.items():
        r = predict(model, crops, config.mean, config.std)
        t = type_logits(classifier, crops)
        for name, rule in table.items():
            call = rule(r, t)
            out[name][set_name] = {"cells": len(y), "accuracy": float((call == y).mean()) if len(y) else float("nan"),
                                   "blast_fraction": float((call == blast).mean()) if len(y) else float("nan")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.hierarchy", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--type-model", default="models/wbc-type")
    parser.add_argument("--refines", nargs="+", default=["lymphocyte", "monocyte", "erythroblast"])
    parser.add_argument("--select-on", nargs="+", default=["val", "bccd-dev"])
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args(argv)
    result = compare(Path(args.run_dir), Path(args.type_model), args.refines)
    names = list(next(iter(result.values())))
    print("| rule | " + " | ".join(names) + " | mean of " + ", ".join(args.select_on) + " |")
    print("|---" * (len(names) + 2) + "|")
    for rule, by_set in result.items():
        mean = float(np.mean([by_set[s]["accuracy"] for s in args.select_on]))
        cells = " | ".join(f"{by_set[s]['accuracy']:.3f} ({by_set[s]['blast_fraction']:.1%} blast)" for s in names)
        print(f"| {rule} | {cells} | {mean:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
