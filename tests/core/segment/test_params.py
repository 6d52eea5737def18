"""SegmentationParams: persistence, descriptions, validation."""

from __future__ import annotations

import json

import pytest

from leukview.core.errors import LeukViewError
from leukview.core.segment import SegmentationParams


def test_params_round_trip_and_validation() -> None:
    params = SegmentationParams(rbc_diameter=80.0, nucleus_threshold_scale=1.1, detect_rbc=False)
    data = json.loads(json.dumps(params.to_dict()))
    assert SegmentationParams.from_dict(data) == params
    # Unknown keys (older or newer settings files) are ignored.
    assert SegmentationParams.from_dict({**data, "no_such_setting": 3}) == params
    assert SegmentationParams.from_dict({}) == SegmentationParams()
    described = SegmentationParams.describe()
    assert set(described) == set(SegmentationParams().to_dict())
    assert all(described.values())
    with pytest.raises(LeukViewError):
        SegmentationParams(rbc_diameter=-1.0)
    with pytest.raises(LeukViewError):
        SegmentationParams(work_rbc_diameter=2.0)


def test_from_dict_restores_types_and_none() -> None:
    """Settings files hold JSON numbers: ints, floats and booleans come back as the field's type."""
    saved = {
        "black_background_level": 30.0, "smoothing": 2, "detect_platelets": 0, "rbc_diameter": None,
    }
    params = SegmentationParams.from_dict(saved)
    assert params.black_background_level == 30 and type(params.black_background_level) is int
    assert params.smoothing == 2.0 and type(params.smoothing) is float
    assert params.detect_platelets is False
    assert params.rbc_diameter is None
