"""Training configs: unknown keys, models and optimizers are refused; style data go with style mixing."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from training.config import config_from_dict  # noqa: E402
from training.data import DataError  # noqa: E402


def test_config_errors() -> None:
    base = {"name": "x", "model": "effnet-lite0", "classes": ["a", "b"], "train_data": []}
    config_from_dict(base)
    with pytest.raises(DataError, match="unknown key"):
        config_from_dict({**base, "epochs": 3})
    with pytest.raises(DataError, match="unknown model"):
        config_from_dict({**base, "model": "resnet9000"})
    with pytest.raises(DataError, match="optimizer"):
        config_from_dict({**base, "train": {"optimizer": "lbfgs"}})
    with pytest.raises(DataError, match="style_data"):
        config_from_dict({**base, "augment": {"style_mix": 0.5}})
    styled = config_from_dict({**base, "augment": {"style_mix": 0.5},
                               "style_data": [{"name": "t", "kind": "txl", "root": "txl/bcdd"}]})
    assert styled.augment.style_mix == 0.5 and styled.style_data[0]["kind"] == "txl"
