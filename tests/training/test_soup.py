"""training.soup: weight averaging of runs that differ only in augmentation or schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from leukview.core.models import read_sidecar  # noqa: E402
from training.config import config_from_dict  # noqa: E402
from training.models import build_model  # noqa: E402


def test_average_state_dicts_is_the_parameter_mean() -> None:
    from leukview.core.errors import LeukViewError
    from training.soup import average_state_dicts

    torch.manual_seed(0)
    a = build_model("effnet-lite0", 3, 64, weights=None).state_dict()
    torch.manual_seed(1)
    b = build_model("effnet-lite0", 3, 64, weights=None).state_dict()
    soup = average_state_dicts([a, b])
    assert soup.keys() == a.keys()
    key = "classifier.weight"
    assert not torch.equal(a[key], b[key])
    assert torch.allclose(soup[key], (a[key] + b[key]) / 2, atol=1e-7)
    counter = next(k for k in a if k.endswith("num_batches_tracked"))
    assert soup[counter].dtype == a[counter].dtype
    assert all(torch.equal(average_state_dicts([a, a])[k], a[k]) for k in a)
    with pytest.raises(LeukViewError, match="architecture"):
        average_state_dicts([a, build_model("mobilenetv3", 3, 64, weights=None).state_dict()])
    with pytest.raises(LeukViewError, match="shape"):
        average_state_dicts([a, build_model("effnet-lite0", 4, 64, weights=None).state_dict()])


def test_greedy_soup_keeps_only_ingredients_that_help() -> None:
    from training.soup import greedy_soup

    states = {"a": {"w": torch.tensor(1.0)}, "b": {"w": torch.tensor(3.0)}, "c": {"w": torch.tensor(-5.0)}}
    chosen, steps = greedy_soup(states, lambda s: {"score": -float((s["w"] - 2.0) ** 2)})
    # a and b alone score -1 each, their mean (w = 2) is best; adding c (w = -1/3) would make it worse
    assert chosen == ["a", "b"]
    assert [(s["ingredient"], s["kept"]) for s in steps] == [("a", True), ("b", True), ("c", False)]
    assert steps[1]["scores"]["score"] == 0.0


@pytest.mark.slow
@pytest.mark.real_data
def test_tiny_soup_trains_averages_and_exports(tiny_cnmc_config, tmp_path: Path) -> None:
    """Three one-epoch C-NMC runs on one split, greedily averaged, exported with its card."""
    from leukview.core.errors import LeukViewError
    from training.export import export_run
    from training.soup import average_state_dicts, make_soup
    from training.train import apply_logit_bias

    raw = tiny_cnmc_config("tiny-soup")
    raw["logit_bias"] = {"normal": -1.0}
    raw["soup"] = {"greedy": True, "select_on": ["val"], "ingredients": [
        {"name": "no-flip", "augment": {"flip": False, "rot90": False}},
        {"name": "slow", "train": {"lr": 1e-4}},
    ]}
    config_path = tmp_path / "tiny-soup.json"
    config_path.write_text(json.dumps(raw))
    result = make_soup(str(config_path), tmp_path / "soup", progress=False, command="test")
    folders = {n: tmp_path / "soup" / "ingredients" / n for n in ("base", "no-flip", "slow")}
    splits = [json.loads((f / "split.json").read_text())["groups"] for f in folders.values()]
    assert splits[0] == splits[1] == splits[2]
    soup = result["soup"]
    assert soup["method"] == "greedy" and set(soup["chosen"]) <= set(folders) and soup["chosen"]
    assert [s["ingredient"] for s in soup["steps"]][0] == soup["chosen"][0]
    states = [torch.load(folders[n] / "best.pt", weights_only=False)["model"] for n in soup["chosen"]]
    saved = torch.load(tmp_path / "soup" / "best.pt", weights_only=False)["model"]
    expected = average_state_dicts(states)
    t = soup["calibration"]["temperature"]
    assert 0.05 <= t <= 20
    assert all(torch.equal(saved[k], expected[k]) for k in expected if not k.startswith("classifier."))
    # the temperature divides the final logits, prior correction included: no call changes
    config = config_from_dict(raw)
    nets = []
    for state in (expected, saved):
        net = build_model("effnet-lite0", 2, 64, weights=None, colour_norm="instance")
        net.load_state_dict(state)
        apply_logit_bias(net, config)
        nets.append(net.eval())
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (16, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        plain, scaled = (net(x)[0] for net in nets)
    assert torch.allclose(scaled, plain / t, atol=1e-4)
    assert result["metrics"]["heldout"]["n"] > 0
    # a second call reuses the finished ingredients instead of training them again
    stamp = (folders["slow"] / "best.pt").stat().st_mtime_ns
    make_soup(str(config_path), tmp_path / "soup", progress=False, command="test")
    assert (folders["slow"] / "best.pt").stat().st_mtime_ns == stamp
    report = export_run(tmp_path / "soup", tmp_path / "model")
    assert max(report["parity_max_abs_diff"].values()) <= 1e-4
    spec = read_sidecar(tmp_path / "model" / "model.json")
    assert spec.training["soup"]["chosen"] == soup["chosen"]
    assert "## Weight averaging (model soup)" in (tmp_path / "model" / "README.md").read_text()
    # only augmentation and schedule may differ between ingredients
    raw["soup"]["ingredients"].append({"name": "bigger", "input_size": 96})
    config_path.write_text(json.dumps(raw))
    with pytest.raises(LeukViewError, match="may only change"):
        make_soup(str(config_path), tmp_path / "soup2", progress=False)


def test_wbc_1x_soup_config_differs_only_in_augmentation_and_schedule(repo_root: Path) -> None:
    """wbc-type 1.3.0's config (the soup 2.0.0 starts from) parses, and each ingredient changes only [augment] or [train]."""
    from training.soup import ingredient_configs

    config, ingredients = ingredient_configs(str(repo_root / "training/configs/wbc-type-1.x.toml"))
    assert ingredients[0][0] == "base" and len(ingredients) >= 3
    assert set(config.soup["select_on"]) <= {"val", *(e["name"] for e in config.eval_data)}
    for name, ingredient in ingredients:
        assert (ingredient.model, ingredient.input_size, ingredient.crop) == (config.model, config.input_size, config.crop)
        assert ingredient.split == config.split and ingredient.train_data == config.train_data
        assert not ingredient.soup, name
    assert len({json.dumps(i.raw, sort_keys=True) for _, i in ingredients}) == len(ingredients)
