"""Train several backbones on the same split and compare them: ``python -m training.compare CONFIG``.

Prints a table like the EfficientNet+XGBoost paper's backbone comparison:
backbone, parameters, held-out accuracy and weighted F1, accuracy on each
other-source test set, ONNX size and cells/s at batch 32 in onnxruntime on
this CPU. Every model trains on the split of the first one (``split.json`` is
copied), so the figures compare like with like. Results go to
``runs/compare-<name>/`` (``compare.md``, ``compare.json``).

Example::

    python -m training.compare training/configs/wbc-type.toml \\
        --models effnet-lite0 mobilenetv3 effnetb0-xgboost --epochs 3 --steps 40
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from leukview.core.errors import LeukViewError

from .config import load_config
from .models import MODELS, weights_origin

log = logging.getLogger("training.compare")


def compare(config_path: str, models: list[str], out_dir: Path, epochs: int | None = None,
            steps: int | None = None, weights: dict[str, str] | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Train and export each model; returns one row per model."""
    from .export import export_run
    from .train import run

    rows = []
    split_file: Path | None = None
    for name in models:
        overrides: dict[str, Any] = {"model": name, "train": {}}
        if epochs:
            overrides["train"]["epochs"] = epochs
        if steps:
            overrides["train"]["steps_per_epoch"] = steps
        if weights and name in weights:
            overrides["weights"] = weights[name]
        config = load_config(config_path, overrides)
        run_dir = out_dir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        if split_file is not None:
            shutil.copyfile(split_file, run_dir / "split.json")
        result = run(config, run_dir, progress=progress, command=f"python -m training.compare {config_path}")
        split_file = split_file or run_dir / "split.json"
        with tempfile.TemporaryDirectory() as tmp:
            report = export_run(run_dir, Path(tmp) / name)
        metrics = result["metrics"]
        row = {
            "model": name,
            "backbones": "+".join(MODELS[name].backbones),
            "weights": weights_origin(name, config.weights),
            "parameters_m": round(result["parameters"] / 1e6, 2),
            "heldout_accuracy": metrics.get("heldout", {}).get("accuracy"),
            "heldout_weighted_f1": metrics.get("heldout", {}).get("weighted_f1"),
            "other": {k: v.get("accuracy") for k, v in metrics.items() if k != "heldout"},
            "size_mb": report["size_mb"],
            "cells_per_s": report["cells_per_s_batch32"],
            "wall_time_s": result["wall_time_s"],
        }
        rows.append(row)
        (out_dir / "compare.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    table = format_table(rows)
    (out_dir / "compare.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    others = sorted({k for r in rows for k in r["other"]})
    head = ["model", "backbone", "weights", "params (M)", "accuracy", "weighted F1",
            *[f"{o} acc." for o in others], "MB", "cells/s", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: Any, digits: int = 4) -> str:
        return f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v))

    for r in rows:
        cells = [r["model"], r["backbones"], r["weights"], f(r["parameters_m"], 2), f(r["heldout_accuracy"]),
                 f(r["heldout_weighted_f1"]), *[f(r["other"].get(o)) for o in others], f(r["size_mb"], 1),
                 f(r["cells_per_s"], 0), f(r["wall_time_s"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--models", nargs="+", default=["effnet-lite0", "mobilenetv3", "effnetb0-xgboost"],
                        choices=list(MODELS))
    parser.add_argument("--epochs", type=int, help="override [train] epochs")
    parser.add_argument("--steps", type=int, help="override [train] steps_per_epoch")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=FILE",
                        help="backbone checkpoint for one model (repeatable)")
    parser.add_argument("--out", help="output folder (default runs/compare-<config name>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        weights = dict(w.split("=", 1) for w in args.weights)
        out = Path(args.out) if args.out else Path("runs") / f"compare-{load_config(args.config).name}"
        compare(args.config, args.models, out, args.epochs, args.steps, weights)
    except (LeukViewError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
