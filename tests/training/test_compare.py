"""training.compare: several backbones trained on one split, one table row each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")


@pytest.mark.slow
@pytest.mark.real_data
def test_compare_trains_backbones_on_one_split(tiny_cnmc_config, tmp_path: Path) -> None:
    """Two backbones on the same C-NMC subject split, one row each in the printed table."""
    from training.compare import compare

    raw = tiny_cnmc_config("tiny-compare")
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(raw))
    rows = compare(str(config_path), ["effnet-lite0", "mobilenetv3"], tmp_path / "cmp", epochs=1, steps=2)
    assert [r["model"] for r in rows] == ["effnet-lite0", "mobilenetv3"]
    # the second model trained on the first one's split, not a new one
    splits = [json.loads((tmp_path / "cmp" / m / "split.json").read_text())["groups"] for m in ("effnet-lite0", "mobilenetv3")]
    assert splits[0] == splits[1]
    assert rows[0]["weights"] == "imagenet" and rows[1]["weights"] == "random"
    assert rows[0]["parameters_m"] != rows[1]["parameters_m"]
    for row in rows:
        assert 0.0 <= row["heldout_accuracy"] <= 1.0 and row["cells_per_s"] > 0 and row["size_mb"] > 0
    table = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| effnet-lite0 |")
