"""Average the weights of several fine-tuned runs: ``python -m training.soup CONFIG``.

A model soup (Wortsman et al., "Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time",
ICML 2022): runs that start from the same pretrained weights, on the same
split, and differ only in their augmentation or schedule are averaged
parameter by parameter. The soup is one network of the same size and speed
as each run, and it is usually more robust to another microscope than any
single run, which is what a white-cell classifier needs.

The config's ``[soup]`` section lists the ingredients as overrides of the
config itself (the config unchanged is the first ingredient)::

    [soup]
    greedy = true                      # Wortsman's greedy soup
    select_on = ["val", "bccd-dev"]    # mean accuracy on these decides
    [[soup.ingredients]]
    name = "strong-colour"
    augment = { hed = 0.2, hue = 0.05 }

Each ingredient is trained with ``training.train`` in
``<run-dir>/ingredients/<name>/`` on the first ingredient's split (a finished
ingredient with the same settings is reused; an interrupted one resumes).
With ``greedy``, ingredients are ranked by their own selection score and
each joins the soup only if the soup's score does not fall; otherwise all
are averaged. The soup lands in ``<run-dir>`` like a training run
(``best.pt``, ``metrics.json``, ``result.json`` with the ingredients and
every greedy step), so ``python -m training.export <run-dir>`` ships it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leukview.core.errors import LeukViewError

from .config import Config, load_config
from .evaluate import expected_calibration_error, fit_temperature, softmax, write_json
from .models import CellNet, count_parameters, model_info
from .train import (
    command_line,
    evaluate_all,
    logit_offsets,
    machine,
    model_from_state,
    predict,
    prepare,
    run,
    setup_logging,
)

log = logging.getLogger("training.soup")

# keys that describe a model without changing how it is trained
DESCRIPTIVE_KEYS = ("version", "description", "licence", "soup")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Parameter-wise mean of state dicts of one architecture.

    Parameters
    ----------
    states : list of dict
        ``model.state_dict()`` of each network, all with the same keys and
        tensor shapes.

    Returns
    -------
    dict
        Floating-point tensors averaged (in float64, returned in their own
        dtype); integer buffers such as BatchNorm's ``num_batches_tracked``
        are taken from the first network.

    Raises
    ------
    LeukViewError
        When there is no state, or the keys or shapes differ.
    """
    if not states:
        raise LeukViewError("a soup needs at least one network")
    first = states[0]
    for i, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys():
            raise LeukViewError(f"network {i} has other parameters than the first: not the same architecture")
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise LeukViewError(f"network {i}: {key} has shape {tuple(value.shape)}, "
                                    f"the first {tuple(first[key].shape)}")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            out[key] = (sum(s[key].double() for s in states) / len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def training_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A config dictionary without the keys that do not change training."""
    return {k: v for k, v in raw.items() if k not in DESCRIPTIVE_KEYS}


def _entries(soup: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, overrides) of each ingredient, the config itself first as ``base``."""
    return [("base", {})] + [(str(e.get("name") or f"ingredient-{i + 1}"), {k: v for k, v in e.items() if k != "name"})
                             for i, e in enumerate(soup.get("ingredients", []))]


def ingredient_configs(config_path: str) -> tuple[Config, list[tuple[str, Config]]]:
    """The soup's config and (name, config) of each ingredient, the config itself first."""
    config = load_config(config_path)
    soup = config.soup
    if not soup:
        raise LeukViewError("the config has no [soup] section", config_path)
    unknown = set(soup) - {"greedy", "select_on", "calibrate", "ingredients", "note"}
    if unknown:
        raise LeukViewError(f"[soup] has unknown key(s): {', '.join(sorted(unknown))}", config_path)
    if model_info(config.model).xgboost:
        raise LeukViewError("a soup averages networks; an XGBoost head cannot be averaged", config_path)
    out: list[tuple[str, Config]] = []
    for i, (name, overrides) in enumerate(_entries(soup)):
        changing = set(overrides) - {"augment", "train"}
        if changing:
            # another model, size, crop or split would not average: only augmentation and schedule may differ
            raise LeukViewError(f"soup ingredient {i} may only change [augment] and [train], "
                                f"not {', '.join(sorted(changing))}", config_path)
        if name in {n for n, _ in out}:
            raise LeukViewError(f"two soup ingredients are named {name!r}", config_path)
        out.append((name, load_config(config_path, {**overrides, "soup": {}})))
    if len(out) < 2:
        raise LeukViewError("[soup] lists no ingredients besides the config itself", config_path)
    return config, out


def _finished(run_dir: Path, config: Config) -> bool:
    """Whether run_dir holds a finished run of exactly these training settings."""
    try:
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        raw = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    same = training_settings(raw) == training_settings(config.raw)
    return "metrics" in result and (run_dir / "best.pt").is_file() and same


def calibrate(config: Config, state: dict[str, torch.Tensor], crops: np.ndarray,
              y: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Fold a temperature fitted on validation cells into the classifier.

    An average of networks is less confident than each of them (its logits
    are smaller), so the confidence the app shows would understate it. The
    final logits, the config's ``logit_bias`` included, are divided by the
    temperature that fits the validation labels best, so no call changes.
    Because ``train.apply_logit_bias`` adds the unscaled offsets when the
    model is loaded, the saved bias is ``(b + offset) / T - offset``.

    Returns
    -------
    state : dict
        A new state dict with the scaled classifier.
    report : dict
        ``temperature`` and the validation ECE before and after.
    """
    model = model_from_state(config, state, logit_bias=False)
    offset = torch.from_numpy(logit_offsets(config))
    logits = predict(model, crops, config.mean, config.std) + offset.numpy()
    t = fit_temperature(logits, y)
    out = {k: v.clone() for k, v in state.items()}
    weight, bias = state["classifier.weight"], state["classifier.bias"]
    out["classifier.weight"] = (weight.double() / t).to(weight.dtype)
    out["classifier.bias"] = ((bias.double() + offset) / t - offset).to(bias.dtype)
    report = {"temperature": t, "val_ece_before": expected_calibration_error(softmax(logits), y),
              "val_ece_after": expected_calibration_error(softmax(logits / t), y)}
    log.info("temperature %.3f fitted on %d validation cells: ECE %.4f -> %.4f", t, len(y),
             report["val_ece_before"], report["val_ece_after"])
    return out, report


def _selection_sets(config: Config, prepared: Any, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = {}
    for name in names:
        if name == "val":
            idx = prepared.index["val"]
            sets[name] = (prepared.crops.crops[idx], prepared.y[idx])
        elif name in prepared.eval_sets:
            cs, y, _entry = prepared.eval_sets[name]
            sets[name] = (cs.crops, y)
        else:
            raise LeukViewError(f"[soup] select_on names {name!r}: neither 'val' nor a test set of the config")
    return sets


def selection_score(model: CellNet, config: Config, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Accuracy on each selection set and their mean (key ``score``)."""
    acc = {name: float((predict(model, crops, config.mean, config.std).argmax(1) == y).mean())
           for name, (crops, y) in sets.items()}
    return {**acc, "score": float(np.mean(list(acc.values())))}


def greedy_soup(states: dict[str, dict[str, torch.Tensor]], score: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Wortsman's greedy soup: add ingredients best first while the score does not fall.

    Parameters
    ----------
    states : dict
        Ingredient name -> state dict.
    score : callable
        State dict -> dict with a ``score`` (higher is better).

    Returns
    -------
    chosen : list of str
    steps : list of dict
        One per ingredient tried: its name, the soup's scores with it, kept or not.
    """
    alone = {name: score(state) for name, state in states.items()}
    order = sorted(states, key=lambda n: -alone[n]["score"])  # stable: ties keep the config's order
    chosen = [order[0]]
    best = alone[order[0]]
    steps = [{"ingredient": order[0], "scores": best, "kept": True}]
    for name in order[1:]:
        trial = score(average_state_dicts([states[n] for n in [*chosen, name]]))
        kept = trial["score"] >= best["score"]
        steps.append({"ingredient": name, "scores": trial, "kept": kept})
        log.info("greedy soup: + %s -> %s (%s)", name, {k: round(v, 4) for k, v in trial.items()},
                 "kept" if kept else "dropped")
        if kept:
            chosen.append(name)
            best = trial
    return chosen, steps


def make_soup(config_path: str, run_dir: Path | None = None, progress: bool = True,
              command: str = "") -> dict[str, Any]:
    """Train the missing ingredients, average them, evaluate; writes and returns ``result.json``."""
    started = time.time()
    config, ingredients = ingredient_configs(config_path)
    run_dir = Path(run_dir or Path(config.runs_dir) / f"{config.name}-soup")
    ingredient_dirs = {name: run_dir / "ingredients" / name for name, _ in ingredients}
    for name, ingredient in ingredients:
        folder = ingredient_dirs[name]
        if _finished(folder, ingredient):
            log.info("ingredient %s: finished run reused from %s", name, folder)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if name != "base":
            for pinned in ("split.json", "data.json"):  # every ingredient on the same split and crops
                if not (folder / pinned).is_file():
                    shutil.copyfile(ingredient_dirs["base"] / pinned, folder / pinned)
        run(ingredient, folder, progress=progress,
            command=f"python -m training.soup {config_path}  # ingredient {name}")
    splits = {json.dumps(json.loads((d / "split.json").read_text(encoding="utf-8"))["groups"], sort_keys=True)
              for d in ingredient_dirs.values()}
    if len(splits) != 1:
        raise LeukViewError("the soup's ingredients were trained on different splits", run_dir)
    setup_logging(run_dir)
    torch.set_num_threads(max(1, config.train.threads))
    log.info("soup of %s -> %s on %s", ", ".join(ingredient_dirs), run_dir, machine())
    for name in ("split.json", "data.json"):
        shutil.copyfile(ingredient_dirs["base"] / name, run_dir / name)
    prepared = prepare(config, run_dir, progress)
    states = {name: torch.load(d / "best.pt", map_location="cpu", weights_only=False)["model"]
              for name, d in ingredient_dirs.items()}
    soup = config.soup
    select_on = list(soup.get("select_on", ["val"]))
    sets = _selection_sets(config, prepared, select_on)
    results = {name: json.loads((d / "result.json").read_text(encoding="utf-8")) for name, d in ingredient_dirs.items()}

    def score(state: dict[str, torch.Tensor]) -> dict[str, float]:
        return selection_score(model_from_state(config, state), config, sets)

    if soup.get("greedy", True):
        chosen, steps = greedy_soup(states, score)
    else:
        chosen, steps = list(states), [{"ingredient": "all", "scores": score(average_state_dicts(list(states.values()))),
                                        "kept": True}]
    log.info("soup: %s", " + ".join(chosen))
    state = average_state_dicts([states[n] for n in chosen])
    calibration: dict[str, float] = {}
    if soup.get("calibrate", True) and len(prepared.index["val"]):
        val = prepared.index["val"]
        state, calibration = calibrate(config, state, prepared.crops.crops[val], prepared.y[val])
    torch.save({"model": state, "epoch": None, "soup": chosen}, run_dir / "best.pt")
    model = model_from_state(config, state)
    write_json(run_dir / "config.json", config.raw)
    metrics = evaluate_all(model, None, config, prepared, run_dir)
    write_json(run_dir / "metrics.json", metrics)
    train_seconds = sum(float(r.get("wall_time_s", 0.0)) for r in results.values())
    overrides = dict(_entries(soup))
    result = {
        "name": config.name,
        "model": config.model,
        "command": command,
        "config_source": config.source,
        "machine": machine(),
        "wall_time_s": round(train_seconds + time.time() - started, 1),
        "best_epoch": None,
        "history": [],
        "parameters": count_parameters(model),
        "split": results["base"].get("split", {}),
        "data_reports": prepared.reports,
        "metrics": metrics,
        "soup": {
            "method": "greedy" if soup.get("greedy", True) else "uniform",
            "select_on": select_on,
            "note": soup.get("note", ""),
            "chosen": chosen,
            "steps": steps,
            "calibration": calibration,
            "ingredients": [
                {"name": name, "overrides": overrides[name], "run_dir": str(d),
                 "wall_time_s": results[name].get("wall_time_s"), "best_epoch": results[name].get("best_epoch"),
                 "accuracy": {k: v.get("accuracy") for k, v in results[name].get("metrics", {}).items()}}
                for name, d in ingredient_dirs.items()
            ],
        },
    }
    write_json(run_dir / "result.json", result)
    log.info("soup done in %.0f s (ingredients' training included); results in %s", result["wall_time_s"], run_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="TOML or JSON training config with a [soup] section")
    parser.add_argument("--run-dir", help="output folder (default: runs/<name>-soup)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    command = command_line("training.soup", argv)
    try:
        make_soup(args.config, Path(args.run_dir) if args.run_dir else None, not args.no_progress, command)
    except LeukViewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
